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
use trunkline_api::v1::metadata::{parse_idempotency_key, FIELD_HEADER, IDEMPOTENCY_HEADER};
use trunkline_core::{
    audit::{Actor, AuditCommand, AuditRecord, MAX_RECORDS_PER_COMMAND},
    auth::{
        guard::{Consequence, Guard},
        need,
        tokens::{self, SecretHash},
        Access, Area, Need, Principal, Role, Scope, TENANT_CHECKED,
    },
    Command,
};
use trunkline_store::StateReader;

use crate::listener::ConnectionInfo;

/// The file in the data folder that holds a node's bootstrap secret.
pub const BOOTSTRAP_FILE: &str = "bootstrap.token";
/// The environment variable that gives it instead.
pub const BOOTSTRAP_ENV: &str = "TRUNKLINE_BOOTSTRAP_TOKEN";
/// The longest `authorization` header looked at.
const MAX_HEADER_BYTES: usize = 256;
/// Refusals and failures waiting to be written to the audit log; beyond it they are counted.
const MAX_PENDING_RECORDS: usize = MAX_RECORDS_PER_COMMAND;
/// How often waiting refusals and failures are written, as one log entry.
pub const AUDIT_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

tokio::task_local! {
    /// Who made the admin request being served: `Cluster::write` records its changes in the
    /// audit log with it.
    pub static ACTOR: Actor;
}

/// The actor of the admin request this task serves, if it serves one.
pub fn current_actor() -> Option<Actor> {
    ACTOR.try_with(Actor::clone).ok()
}

/// The idempotency key of the admin request being served, and how many writes it made.
#[derive(Debug)]
pub struct KeyedCall {
    client: u64,
    sequence: u64,
    writes: std::sync::atomic::AtomicU32,
}

tokio::task_local! {
    /// The idempotency key the client sent with the admin request being served.
    pub static IDEMPOTENCY: KeyedCall;
}

/// The key of the next write the admin request this task serves makes, if the client sent
/// one: its writes are numbered in order, so a call sent again makes the same keys.
pub fn next_idempotency_key() -> Option<trunkline_core::sessions::IdempotencyKey> {
    IDEMPOTENCY
        .try_with(|call| trunkline_core::sessions::IdempotencyKey {
            client: call.client,
            sequence: call.sequence,
            part: call
                .writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
        .ok()
}

/// Refused and failed calls waiting for the next audit write: bounded, written once a
/// second by [`flush_audit`], so failures can't make the cluster write more than that.
#[derive(Debug, Default)]
pub struct PendingAudit {
    records: Mutex<(Vec<AuditRecord>, u64)>,
}

impl PendingAudit {
    /// Records a refusal (or, with `alert`, a security alert) for the next audit write.
    pub fn push(&self, actor: Actor, result: &str, alert: bool) {
        if let Ok(mut pending) = self.records.lock() {
            let (records, dropped) = &mut *pending;
            if records.len() < MAX_PENDING_RECORDS {
                records.push(AuditRecord {
                    actor,
                    result: result.to_owned(),
                    alert,
                });
            } else {
                *dropped += 1;
            }
        }
    }

    /// Puts back records a write did not take, ahead of newer ones, within the bound.
    fn requeue(&self, mut records: Vec<AuditRecord>) {
        if let Ok(mut pending) = self.records.lock() {
            let (newer, dropped) = &mut *pending;
            records.append(newer);
            if records.len() > MAX_PENDING_RECORDS {
                *dropped += (records.len() - MAX_PENDING_RECORDS) as u64;
                records.truncate(MAX_PENDING_RECORDS);
            }
            *newer = records;
        }
    }

    /// What waits, with a record of how many did not fit; empty when nothing does.
    fn take(&self) -> Vec<AuditRecord> {
        let Ok(mut pending) = self.records.lock() else {
            return Vec::new();
        };
        let (records, dropped) = &mut *pending;
        let mut taken = std::mem::take(records);
        if *dropped > 0 {
            // The summary takes the last place when the batch is full: that record is then
            // one more not recorded one by one.
            if taken.len() == MAX_RECORDS_PER_COMMAND {
                taken.pop();
                *dropped += 1;
            }
            let summary = AuditRecord {
                actor: Actor {
                    name: "-".into(),
                    source: "-".into(),
                    rpc: "-".into(),
                },
                result: format!("{dropped} more refused or failed calls, not recorded one by one"),
                alert: false,
            };
            taken.push(summary);
            *dropped = 0;
        }
        taken
    }
}

/// Writes what [`PendingAudit`] holds once every [`AUDIT_FLUSH_INTERVAL`], as one entry.
pub async fn flush_audit(cluster: Arc<crate::cluster::Cluster>, pending: Arc<PendingAudit>) {
    let mut interval = tokio::time::interval(AUDIT_FLUSH_INTERVAL);
    loop {
        interval.tick().await;
        let records = pending.take();
        if records.is_empty() {
            continue;
        }
        let count = records.len();
        let command = Command::Audit(AuditCommand::Record(records.clone()));
        if let Err(error) = cluster.write(command).await {
            // Kept for the next try: a refusal recorded twice (a write whose outcome was
            // unknown) is better than one lost while there is no leader.
            tracing::warn!(%error, count, "can't write refused calls to the audit log yet");
            pending.requeue(records);
        }
    }
}

/// What the layer checks with, shared by every connection.
pub struct Authenticator {
    required: bool,
    pending: Arc<PendingAudit>,
    reader: StateReader,
    guard: Mutex<Guard>,
    /// The hash of the secret that may initialise the cluster, while it has no token.
    bootstrap: Option<SecretHash>,
}

impl Authenticator {
    pub fn new(
        required: bool,
        reader: StateReader,
        bootstrap: Option<SecretHash>,
        pending: Arc<PendingAudit>,
    ) -> Self {
        Authenticator {
            required,
            pending,
            reader,
            guard: Mutex::new(Guard::default()),
            bootstrap,
        }
    }

    /// Records a refused call in the audit log.
    pub fn refused(&self, name: String, source: IpAddr, path: &str, status: &Status) {
        let result = match status.code() {
            tonic::Code::Unauthenticated => "unauthenticated".to_owned(),
            _ => status.message().to_owned(),
        };
        self.pending.push(
            Actor {
                name,
                source: source.to_string(),
                rpc: path.trim_start_matches('/').to_owned(),
            },
            &result,
            false,
        );
    }

    /// Logs a lock or a limit that a failure caused, and raises it as a security alert
    /// (audit entry and event) with the next audit write.
    fn consequence(&self, from: IpAddr, consequence: Consequence) {
        let (source, what) = match consequence {
            Consequence::Counted => return,
            Consequence::TokenLocked { id, until_ms } => {
                tracing::warn!(token = %id, until_ms, "a token was locked after repeated wrong secrets");
                (
                    from.to_string(),
                    format!(
                        "token {id} locked on this node for 30 minutes after {} wrong secrets in a row",
                        trunkline_core::auth::guard::TOKEN_FAILURES_TO_LOCK
                    ),
                )
            }
            Consequence::SourceLimited { source, until_ms } => {
                tracing::warn!(%source, until_ms, "a source address is refused after repeated failed authentication");
                (
                    source.to_string(),
                    format!(
                        "{source} refused on this node for the rest of the minute after {} failed \
                         calls",
                        trunkline_core::auth::guard::SOURCE_FAILURES_PER_WINDOW
                    ),
                )
            }
        };
        self.pending.push(
            Actor {
                name: "-".into(),
                source,
                rpc: "-".into(),
            },
            &what,
            true,
        );
    }

    /// Who may make the call to `path` with these headers from `source`, or why not; a
    /// refusal or failure is recorded in the audit log, named by the token when it was valid.
    pub fn check(
        &self,
        path: &str,
        authorization: Option<&http::HeaderValue>,
        certificate: Option<&(String, SecretHash)>,
        source: IpAddr,
        now_ms: u64,
    ) -> Result<Option<Principal>, Status> {
        if !self.required {
            return Ok(None);
        }
        let Some(need) = need(path) else {
            let status =
                Status::permission_denied("permission denied: this method is not open to any role");
            self.refused("-".into(), source, path, &status);
            return Err(status);
        };
        if need == Need::Nothing {
            return Ok(None);
        }
        let principal = self
            .authenticate(need, authorization, certificate, source, now_ms)
            .inspect_err(|status| self.refused("-".into(), source, path, status))?;
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
            let status = denied(&principal);
            self.refused(principal.name, source, path, &status);
            Err(status)
        }
    }

    /// Who the caller is: by its bearer token when it sends one, else by the client
    /// certificate it showed in the TLS handshake when a token is bound to it.
    fn authenticate(
        &self,
        need: Need,
        authorization: Option<&http::HeaderValue>,
        certificate: Option<&(String, SecretHash)>,
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
        if let (None, Some((id, hash))) = (authorization, certificate) {
            // The handshake proved the key; only the binding to a live token is checked.
            let applied = self.reader.current();
            if let Some(record) = applied.state.tokens().verify_certificate(id, hash, now_ms) {
                return Ok(record.principal());
            }
            self.consequence(source, guard.failed(source, None, now_ms));
            return Err(unauthenticated());
        }
        let presented = presented(authorization);
        let Some(presented) = presented else {
            // The same work as checking a well-formed token, so the time taken does not say
            // whether the token was malformed or wrong.
            self.reader.current().state.tokens().spend_a_check();
            self.consequence(source, guard.failed(source, None, now_ms));
            return Err(unauthenticated());
        };
        let applied = self.reader.current();
        let records = applied.state.tokens();
        let verified = records.verify(&presented, now_ms);
        if guard.token_locked(&presented.id, now_ms) {
            self.consequence(source, guard.failed(source, Some(&presented.id), now_ms));
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
                        token_id: String::new(),
                        name: "bootstrap".into(),
                        role: Role::Admin,
                        scope: Scope::All,
                    });
                }
            }
        }
        self.consequence(source, guard.failed(source, Some(&presented.id), now_ms));
        Err(unauthenticated())
    }
}

/// The token an `authorization: Bearer ...` header carries, if it is one.
fn presented(authorization: Option<&http::HeaderValue>) -> Option<tokens::Presented> {
    authorization
        .filter(|value| value.len() <= MAX_HEADER_BYTES)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(tokens::parse)
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

/// A request of `principal` for a handler, as this layer would have passed it on: how the
/// HTTP endpoint and `RouteStream` call the unary handlers.
pub fn with_principal<T>(message: T, principal: &Option<Principal>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(principal) = principal.clone() {
        request.extensions_mut().insert(principal);
    }
    request
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

/// Refuses a caller limited to tenants unless `tenant` (the tenant of what the request
/// touches; `None` when it names nothing that exists) is one of its own. Something that does
/// not exist is refused like another tenant's, so a limited caller can't learn what exists.
pub fn require_owner(principal: &Option<Principal>, tenant: Option<&str>) -> Result<(), Status> {
    match tenant {
        Some(tenant) => require_tenant(principal, tenant),
        None if !sees_all(principal) => Err(outside_scope()),
        None => Ok(()),
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

/// Removes the bootstrap secret's file once the cluster has tokens (the secret then opens
/// nothing), checking once a second; a node started on an initialised folder removes it at
/// once.
pub async fn forget_spent_bootstrap(
    cluster: Arc<crate::cluster::Cluster>,
    path: std::path::PathBuf,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if cluster.reader.current().state.tokens().is_empty() {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed the spent bootstrap secret"),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "can't remove the spent bootstrap secret")
            }
        }
        return;
    }
}

/// The node's bootstrap secret: from [`BOOTSTRAP_ENV`], else the file [`BOOTSTRAP_FILE`] in
/// the data folder, made (readable by the owner only) on the first start that needs it.
/// Returns the hash the node keeps of it.
pub fn bootstrap_secret(data_dir: &Path) -> anyhow::Result<SecretHash> {
    let path = data_dir.join(BOOTSTRAP_FILE);
    let text = match std::env::var(BOOTSTRAP_ENV) {
        Ok(text) => text,
        Err(_) => match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let minted = tokens::mint(rand::random(), rand::random());
                write_secret(&path, &minted.text)?;
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
    Ok(presented.hash())
}

/// Writes a secret to a new file only its owner can read.
pub fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()
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
        let certificate = request
            .extensions()
            .get::<ConnectionInfo>()
            .and_then(|info| info.peer.as_ref())
            .map(|peer| peer.token.clone());
        let checked = self.authenticator.check(
            request.uri().path(),
            request.headers().get(http::header::AUTHORIZATION),
            certificate.as_ref(),
            source,
            crate::cluster::now_ms(),
        );
        let principal = match checked {
            Ok(principal) => principal,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        // Lookups and everything else but admin calls go straight on: no actor, no key.
        if !request
            .uri()
            .path()
            .starts_with("/trunkline.v1.AdminService/")
        {
            if let Some(principal) = principal {
                request.extensions_mut().insert(principal);
            }
            return Box::pin(self.inner.call(request));
        }
        // An admin request: its changes are recorded with who made them, and a refusal by
        // its handler (a tenant outside the token's) is recorded too. A malformed
        // idempotency key refuses it before the handler sees it.
        let keyed = match idempotency_key(request.headers()) {
            Ok(keyed) => keyed,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        let path = request.uri().path().to_owned();
        let name = principal.as_ref().map_or_else(
            || "anonymous".to_owned(),
            |principal| principal.name.clone(),
        );
        if let Some(principal) = principal {
            request.extensions_mut().insert(principal);
        }
        let response = self.inner.call(request);
        let actor = Actor {
            name: name.clone(),
            source: source.to_string(),
            rpc: path.trim_start_matches('/').to_owned(),
        };
        let authenticator = self.authenticator.clone();
        Box::pin(async move {
            let response = match keyed {
                Some(keyed) => {
                    IDEMPOTENCY
                        .scope(keyed, ACTOR.scope(actor, response))
                        .await?
                }
                None => ACTOR.scope(actor, response).await?,
            };
            if response
                .headers()
                .get("grpc-status")
                .map(|code| code.as_bytes())
                == Some(b"7".as_slice())
            {
                let status = Status::permission_denied("permission denied");
                authenticator.refused(name, source, &path, &status);
            }
            Ok(response)
        })
    }
}

/// The idempotency key an admin request carries, if any; INVALID_ARGUMENT naming the header
/// when it is malformed.
fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<KeyedCall>, Status> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(parse_idempotency_key)
        .map(|(client, sequence)| {
            Some(KeyedCall {
                client,
                sequence,
                writes: std::sync::atomic::AtomicU32::new(0),
            })
        })
        .ok_or_else(|| {
            let mut status = Status::invalid_argument(format!(
                "{IDEMPOTENCY_HEADER}: must be <client>-<sequence>, the client's id in hex (1 to \
                 16 digits) and the call's number in decimal"
            ));
            if let Ok(field) = tonic::metadata::MetadataValue::try_from(IDEMPOTENCY_HEADER) {
                status.metadata_mut().insert(FIELD_HEADER, field);
            }
            status
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(name: &str) -> Actor {
        Actor {
            name: name.into(),
            source: "192.0.2.1".into(),
            rpc: "trunkline.v1.AdminService/SetSetting".into(),
        }
    }

    #[test]
    fn pending_refusals_are_bounded_and_a_failed_write_keeps_them_in_order() {
        let pending = PendingAudit::default();
        for number in 0..MAX_PENDING_RECORDS + 5 {
            pending.push(actor(&number.to_string()), "unauthenticated", false);
        }
        let first = pending.take();
        assert_eq!(first.len(), MAX_PENDING_RECORDS);
        let summary = first.last().unwrap();
        assert!(summary.result.starts_with("6 more"), "{summary:?}");
        assert!(pending.take().is_empty());

        pending.push(actor("a"), "unauthenticated", false);
        pending.push(actor("b"), "unauthenticated", false);
        let taken = pending.take();
        pending.push(actor("c"), "unauthenticated", false);
        pending.requeue(taken);
        let names: Vec<String> = pending.take().into_iter().map(|r| r.actor.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
