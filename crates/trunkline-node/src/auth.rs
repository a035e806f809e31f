//! Authentication and authorisation on the client listener, in one layer before any handler:
//! the gRPC path is looked up in [`trunkline_core::auth::RPCS`] (a path not there is refused
//! to everyone), the bearer token is checked against the replicated token records, and the
//! caller's role must allow what the path needs. The caller ([`Principal`]) goes into the
//! request's extensions; handlers of tenant data check the tenant of what they touch with
//! [`require_tenant`].
//!
//! A failure says only "unauthenticated", whatever was wrong, and does the same work (one
//! hash, one constant-time compare) whether the token's id is known or not. Failures are
//! counted per source address and per token ([`Guard`]); locks and limits are logged.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr},
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tonic::{codegen::http, transport::server::TcpConnectInfo, Status};
use tower::Service;
use trunkline_core::auth::{
    guard::{Consequence, Guard},
    need,
    tokens::{self, SecretHash},
    Access, Area, Need, Principal, Role, Scope, TENANT_CHECKED,
};
use trunkline_store::StateReader;

/// The file in the data folder that holds a node's bootstrap secret.
pub const BOOTSTRAP_FILE: &str = "bootstrap.token";
/// The environment variable that gives it instead.
pub const BOOTSTRAP_ENV: &str = "TRUNKLINE_BOOTSTRAP_TOKEN";
/// The longest `authorization` header looked at.
const MAX_HEADER_BYTES: usize = 256;

/// What the layer checks with, shared by every connection.
pub struct Authenticator {
    required: bool,
    reader: StateReader,
    guard: Mutex<Guard>,
    /// The hash of the secret that may initialise the cluster, while it has no token.
    bootstrap: Option<SecretHash>,
}

impl Authenticator {
    pub fn new(required: bool, reader: StateReader, bootstrap: Option<SecretHash>) -> Self {
        Authenticator {
            required,
            reader,
            guard: Mutex::new(Guard::default()),
            bootstrap,
        }
    }

    /// Who may make the call to `path` with these headers from `source`, or why not.
    pub fn check(
        &self,
        path: &str,
        authorization: Option<&http::HeaderValue>,
        source: IpAddr,
        now_ms: u64,
    ) -> Result<Option<Principal>, Status> {
        if !self.required {
            return Ok(None);
        }
        let Some(need) = need(path) else {
            return Err(Status::permission_denied(
                "permission denied: this method is not open to any role",
            ));
        };
        if need == Need::Nothing {
            return Ok(None);
        }
        let principal = self.authenticate(need, authorization, source, now_ms)?;
        let allowed = match need {
            Need::Nothing | Need::Authenticated | Need::InHandler => true,
            Need::Bootstrap => principal.role == Role::Admin,
            Need::Permission(area, access) => {
                principal.allows(area, access)
                    && (principal.scope == Scope::All
                        || TENANT_CHECKED.contains(&path.trim_start_matches('/')))
            }
        };
        if allowed {
            Ok(Some(principal))
        } else {
            Err(denied(&principal))
        }
    }

    fn authenticate(
        &self,
        need: Need,
        authorization: Option<&http::HeaderValue>,
        source: IpAddr,
        now_ms: u64,
    ) -> Result<Principal, Status> {
        let mut guard = self
            .guard
            .lock()
            .map_err(|_| Status::internal("the authentication guard is poisoned"))?;
        if guard.source_limited(source, now_ms) {
            return Err(unauthenticated());
        }
        let presented = authorization
            .filter(|value| value.len() <= MAX_HEADER_BYTES)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(tokens::parse);
        let Some(presented) = presented else {
            record(guard.failed(source, None, now_ms));
            return Err(unauthenticated());
        };
        let applied = self.reader.current();
        let records = applied.state.tokens();
        let verified = records.verify(&presented, now_ms);
        if guard.token_locked(&presented.id, now_ms) {
            record(guard.failed(source, Some(&presented.id), now_ms));
            return Err(unauthenticated());
        }
        if let Some(record) = verified {
            guard.succeeded(&presented.id);
            return Ok(record.principal());
        }
        if need == Need::Bootstrap && records.is_empty() {
            if let Some(hash) = &self.bootstrap {
                if tokens::matches_hash(&presented, hash) {
                    return Ok(Principal {
                        name: "bootstrap".into(),
                        role: Role::Admin,
                        scope: Scope::All,
                    });
                }
            }
        }
        record(guard.failed(source, Some(&presented.id), now_ms));
        Err(unauthenticated())
    }
}

fn record(consequence: Consequence) {
    match consequence {
        Consequence::Counted => {}
        Consequence::TokenLocked { id, until_ms } => tracing::warn!(
            token = %id,
            until_ms,
            "a token was locked after repeated wrong secrets"
        ),
        Consequence::SourceLimited { source, until_ms } => tracing::warn!(
            %source,
            until_ms,
            "a source address is refused after repeated failed authentication"
        ),
    }
}

pub fn unauthenticated() -> Status {
    Status::unauthenticated("unauthenticated")
}

fn denied(principal: &Principal) -> Status {
    Status::permission_denied(format!(
        "permission denied: a {} token may not do this",
        principal.role.as_str()
    ))
}

/// The caller of a request, as the layer put it; `None` when the node does not require
/// authentication (every call may do everything).
pub fn principal<T>(request: &tonic::Request<T>) -> Option<Principal> {
    request.extensions().get::<Principal>().cloned()
}

/// Refuses a caller whose role does not allow `access` to `area` (for RPCs whose area
/// depends on the request).
pub fn require(principal: &Option<Principal>, area: Area, access: Access) -> Result<(), Status> {
    match principal {
        Some(principal) if !principal.allows(area, access) => Err(denied(principal)),
        _ => Ok(()),
    }
}

/// Refuses a caller limited to tenants other than `tenant`. Says no more than that, so a
/// caller can't learn whether the other tenant exists.
pub fn require_tenant(principal: &Option<Principal>, tenant: &str) -> Result<(), Status> {
    match principal {
        Some(principal) if !principal.covers(tenant) => Err(outside_scope()),
        _ => Ok(()),
    }
}

pub fn outside_scope() -> Status {
    Status::permission_denied("permission denied: outside this token's tenants")
}

/// Whether the caller sees `tenant`'s objects in a listing.
pub fn sees(principal: &Option<Principal>, tenant: &str) -> bool {
    principal
        .as_ref()
        .is_none_or(|principal| principal.covers(tenant))
}

/// Whether the caller sees everything (no tenant limit).
pub fn sees_all(principal: &Option<Principal>) -> bool {
    principal
        .as_ref()
        .is_none_or(|principal| principal.scope == Scope::All)
}

/// The node's bootstrap secret: from [`BOOTSTRAP_ENV`], else the file [`BOOTSTRAP_FILE`] in
/// the data folder, made (readable by the owner only) on the first start that needs it.
/// Returns the hash kept and, when the file was just made, its path to tell the operator.
pub fn bootstrap_secret(data_dir: &Path) -> anyhow::Result<(SecretHash, std::path::PathBuf)> {
    let path = data_dir.join(BOOTSTRAP_FILE);
    let text = match std::env::var(BOOTSTRAP_ENV) {
        Ok(text) => text,
        Err(_) => match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let minted = tokens::mint(rand::random(), rand::random());
                crate::dev::write_secret(&path, &minted.text)?;
                minted.text
            }
            Err(error) => return Err(error.into()),
        },
    };
    let presented = tokens::parse(text.trim()).ok_or_else(|| {
        anyhow::anyhow!(
            "the bootstrap secret ({BOOTSTRAP_ENV} or {}) is not a token: remove the file to \
             have a new one made",
            path.display()
        )
    })?;
    Ok((presented.hash(), path))
}

/// The layer that runs [`Authenticator::check`] on every client request.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>) -> Self {
        AuthLayer { authenticator }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, RequestBody> Service<http::Request<RequestBody>> for AuthService<S>
where
    S: Service<http::Request<RequestBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<RequestBody>) -> Self::Future {
        let source = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.ip());
        let checked = self.authenticator.check(
            request.uri().path(),
            request.headers().get(http::header::AUTHORIZATION),
            source,
            crate::cluster::now_ms(),
        );
        match checked {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}
