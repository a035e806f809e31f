//! What every subcommand gets: a client for the cluster and the output format, plus the
//! failures a subcommand can end with and how client errors become messages with a hint.

use std::{path::PathBuf, sync::Arc, time::Duration};

use std::future::Future;

use trunkline_client::{proto, Client, ClientError, Retry};
use trunkline_tls::rustls::ClientConfig;

use crate::output::Format;

pub struct Context {
    pub client: Client,
    pub format: Format,
}

#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong; nothing was sent.
    Usage(String),
    /// The request failed.
    Request(String),
    /// The request ran but what it checks did not hold.
    ConditionFailed(String),
    /// Standard output was closed (`trunkctl ... | head`).
    BrokenPipe,
}

impl Context {
    pub fn new(
        endpoints: &[String],
        format: Format,
        timeout_ms: u64,
        token: Option<String>,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Context, Failure> {
        if timeout_ms == 0 {
            return Err(Failure::Usage("--timeout-ms must be above 0".into()));
        }
        let mut client = Client::new(endpoints.iter().cloned())
            .map_err(|error| Failure::Usage(error.to_string()))?
            .with_request_timeout(Duration::from_millis(timeout_ms));
        if let Some(token) = token {
            client = client
                .with_token(&token)
                .map_err(|error| Failure::Usage(format!("--token: {error}")))?;
        }
        match tls {
            Some(tls) => client = client.with_tls(tls),
            None => {
                if let Some(endpoint) = endpoints.iter().find(|e| e.starts_with("https://")) {
                    return Err(Failure::Usage(format!(
                        "{endpoint}: TLS needs the cluster CA: pass --ca-file (or TRUNKLINE_CA_FILE)"
                    )));
                }
            }
        }
        Ok(Context { client, format })
    }

    /// How long writes try again while no node can take them (`--leader-wait-ms`).
    pub fn with_leader_wait(mut self, wait: Duration) -> Context {
        self.client = self.client.with_leader_wait(wait);
        self
    }
}

impl Context {
    /// Calls an `AdminService` method with `request` (sent again, cloned, where `retry`
    /// allows), with the client's failover.
    pub async fn admin<R, T, F, Fut>(
        &self,
        retry: Retry,
        request: R,
        call: F,
    ) -> Result<T, ClientError>
    where
        R: Clone,
        F: Fn(Admin, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.client
            .admin(retry, |admin| call(admin, request.clone()))
            .await
    }

    /// [`Context::admin`] for a `RouteService` method.
    pub async fn route<R, T, F, Fut>(
        &self,
        retry: Retry,
        request: R,
        call: F,
    ) -> Result<T, ClientError>
    where
        R: Clone,
        F: Fn(RouteClient, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.client
            .route(retry, |route| call(route, request.clone()))
            .await
    }
}

/// A client of the admin service, as [`Context::admin`] calls with.
pub type Admin = proto::admin_service_client::AdminServiceClient<trunkline_client::Transport>;
/// A client of the route service, as [`Context::route`] calls with.
pub type RouteClient = proto::route_service_client::RouteServiceClient<trunkline_client::Transport>;

/// The TLS configuration `--ca-file` (and a client certificate) make; `None`: plaintext.
pub fn tls(
    ca_file: Option<PathBuf>,
    identity: Option<(PathBuf, PathBuf)>,
) -> Result<Option<Arc<ClientConfig>>, Failure> {
    let Some(ca_file) = ca_file else {
        if identity.is_some() {
            return Err(Failure::Usage(
                "--cert-file: a client certificate goes over TLS: pass --ca-file as well".into(),
            ));
        }
        return Ok(None);
    };
    let identity = identity
        .as_ref()
        .map(|(cert, key)| (cert.as_path(), key.as_path()));
    trunkline_tls::client_config_from_files(&ca_file, identity)
        .map(|config| Some(Arc::new(config)))
        .map_err(|error| Failure::Usage(error.to_string()))
}

/// Where `trunkline dev` writes its first admin token, from the folder it was started in.
pub const DEV_TOKEN_FILE: &str = "trunkline-dev-data/admin.token";

/// The token to call with: `--token`, else the contents of `--token-file`, else the dev
/// node's admin token when trunkctl runs where `trunkline dev` did; `None`: call without.
pub fn token(
    token: Option<String>,
    token_file: Option<std::path::PathBuf>,
) -> Result<Option<String>, Failure> {
    if let Some(token) = token {
        return Ok(Some(token));
    }
    let (path, given) = match token_file {
        Some(path) => (path, true),
        None => (std::path::PathBuf::from(DEV_TOKEN_FILE), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(error) if given => Err(Failure::Usage(format!(
            "--token-file {}: {error}; give the file the token was saved to",
            path.display()
        ))),
        Err(_) => Ok(None),
    }
}

/// What to check when no node could be reached.
pub const UNREACHABLE_HINT: &str = "\nIs trunkline running there? Check --endpoints (or \
     TRUNKCTL_ENDPOINTS). A node serving TLS needs the cluster CA: --ca-file (TRUNKLINE_CA_FILE).";

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        let hint = match &error {
            ClientError::Unreachable { .. } => UNREACHABLE_HINT,
            ClientError::Status { status, .. } if status.code() == tonic::Code::Unavailable => {
                "\nThe cluster may be without a leader; see `trunkctl cluster status` on each node."
            }
            ClientError::Status { status, .. } if status.code() == tonic::Code::Unauthenticated => {
                "\nGive a valid token with --token, TRUNKLINE_TOKEN or --token-file (for \
                 `cluster init`: the node's bootstrap.token)."
            }
            _ => "",
        };
        Failure::Request(format!("{error}{hint}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Request(format!("can't write the output: {error}"))
        }
    }
}

/// A node id given on the command line, checked with the node's rule.
pub fn require_node_id(node_id: u64) -> Result<u64, Failure> {
    trunkline_api::node_id("node_id", node_id)
        .map_err(|error| Failure::Usage(format!("node id {}", error.reason())))
}
