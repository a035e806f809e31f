//! The node's TLS: the configurations both listeners serve and peers are dialled with, kept
//! current as the certificate files change.
//!
//! - The **client listener** serves the node's certificate and checks a client certificate
//!   against the cluster CA when one is shown (callers without one use a token).
//! - The **peer listener** requires a certificate from the cluster CA naming a node of this
//!   cluster (`node-<id>.<cluster>.trunkline`); the id it names is the sender, and
//!   `peer_service` refuses a Raft message that claims another (mTLS bound to node id and
//!   cluster name).
//! - **Dialling a peer** trusts only the cluster CA and expects the certificate of the node
//!   it means to reach, whatever address (proxy, NAT) it dials; it shows this node's own.
//!
//! The files are read again on SIGHUP and when their content changes (checked every
//! [`limits::TLS_RELOAD_POLL`]): new handshakes use the new certificate at once, open
//! connections keep theirs. A reload that fails (a half-written file, a certificate for
//! another node) is logged and changes nothing.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio_rustls::rustls::{
    pki_types::{CertificateDer, UnixTime},
    server::WebPkiClientVerifier,
    ClientConfig, RootCertStore, ServerConfig,
};
use trunkline_tls::{ClientCertificates, Material, TlsError, TlsFiles};

use crate::limits;

/// The configurations made from one reading of the files.
struct Loaded {
    /// The cluster CA, to check a client certificate before a token is bound to it.
    roots: Arc<RootCertStore>,
    api: Arc<ServerConfig>,
    /// The client listener's, offering HTTP/1.1 instead of HTTP/2 (ALPN): the HTTP JSON and
    /// metrics listeners speak HTTP/1.1, and a client offered only `h2` would speak HTTP/2.
    http1: Arc<ServerConfig>,
    peer: Arc<ServerConfig>,
    dial: Arc<ClientConfig>,
    /// The files' bytes when read, to notice a change.
    content: Vec<u8>,
}

pub struct NodeTls {
    files: TlsFiles,
    cluster_name: String,
    node_id: u64,
    loaded: ArcSwap<Loaded>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("files", &self.files)
            .field("cluster_name", &self.cluster_name)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Api,
    /// The HTTP/1.1 listeners (JSON endpoint, metrics): the client listener's certificate
    /// and client-certificate rule, ALPN `http/1.1`.
    Http1,
    Peer,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Api => "client",
            Side::Http1 => "http",
            Side::Peer => "peer",
        }
    }
}

/// Why a handshake failed, when it failed on the client's certificate (one from another CA,
/// expired, or none where one is required): what is worth recording. Other failures (a
/// plaintext client, a scanner closing early) are noise.
pub fn certificate_refusal(error: &std::io::Error) -> Option<String> {
    use tokio_rustls::rustls::Error;
    match error.get_ref()?.downcast_ref::<Error>()? {
        Error::InvalidCertificate(reason) => {
            use tokio_rustls::rustls::CertificateError as Why;
            Some(match reason {
                Why::UnknownIssuer | Why::BadSignature => {
                    "certificate refused: not issued by the cluster CA".to_owned()
                }
                Why::Expired | Why::ExpiredContext { .. } => {
                    "certificate refused: expired".to_owned()
                }
                Why::NotValidYet | Why::NotValidYetContext { .. } => {
                    "certificate refused: not valid yet".to_owned()
                }
                Why::InvalidPurpose | Why::InvalidPurposeContext { .. } => {
                    "certificate refused: not for client authentication".to_owned()
                }
                other => format!("certificate refused: {other:?}"),
            })
        }
        Error::NoCertificatesPresented => Some("no client certificate".to_owned()),
        _ => None,
    }
}

impl NodeTls {
    /// Reads and checks the files: the certificate must be this node's, issued by the CA.
    pub fn load(files: TlsFiles, cluster_name: &str, node_id: u64) -> Result<NodeTls, TlsError> {
        let loaded = load(&files, cluster_name, node_id)?;
        Ok(NodeTls {
            files,
            cluster_name: cluster_name.to_owned(),
            node_id,
            loaded: ArcSwap::from_pointee(loaded),
        })
    }

    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    pub fn server_config(&self, side: Side) -> Arc<ServerConfig> {
        let loaded = self.loaded.load();
        match side {
            Side::Api => loaded.api.clone(),
            Side::Http1 => loaded.http1.clone(),
            Side::Peer => loaded.peer.clone(),
        }
    }

    pub fn dial_config(&self) -> Arc<ClientConfig> {
        self.loaded.load().dial.clone()
    }

    /// The node of this cluster a verified peer certificate names.
    pub fn node_of(&self, certificate: &CertificateDer<'_>) -> Option<u64> {
        trunkline_tls::node_of(certificate, &self.cluster_name)
    }

    /// Whether the client listener would accept `der` as a client certificate (issued by
    /// the cluster CA for client authentication, valid now); the reason if not.
    pub fn check_client_certificate(&self, der: &[u8]) -> Result<(), String> {
        let verifier = WebPkiClientVerifier::builder_with_provider(
            self.loaded.load().roots.clone(),
            trunkline_tls::provider(),
        )
        .build()
        .map_err(|error| error.to_string())?;
        verifier
            .verify_client_cert(&CertificateDer::from(der.to_vec()), &[], UnixTime::now())
            .map(drop)
            .map_err(|error| error.to_string())
    }

    /// Reads the files again and, if they changed and are good, serves them from now on.
    /// `Ok(false)`: nothing changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let content = content(&self.files);
        if content == self.loaded.load().content {
            return Ok(false);
        }
        let loaded = load(&self.files, &self.cluster_name, self.node_id)?;
        self.loaded.store(Arc::new(loaded));
        Ok(true)
    }
}

/// The three files' bytes; unreadable ones count as empty (the load then says why).
fn content(files: &TlsFiles) -> Vec<u8> {
    let mut content = Vec::new();
    for path in [&files.cert, &files.key, &files.ca] {
        content.extend(std::fs::read(path).unwrap_or_default());
        content.push(0);
    }
    content
}

fn load(files: &TlsFiles, cluster_name: &str, node_id: u64) -> Result<Loaded, TlsError> {
    // Read before parsing: a change between the two is seen at the next poll.
    let content = content(files);
    let material = Material::load(files)?;
    material.check_node(cluster_name, node_id, files)?;
    warn_if_expiring(&material, files, cluster_name, node_id);
    let api = material.server_config(ClientCertificates::Optional)?;
    let mut http1 = api.clone();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        roots: material.roots.clone(),
        api: Arc::new(api),
        http1: Arc::new(http1),
        peer: Arc::new(material.server_config(ClientCertificates::Required)?),
        dial: Arc::new(material.client_config()?),
        content,
    })
}

/// Logs a warning when the certificate (or its CA) expires within
/// [`limits::TLS_EXPIRY_WARNING`]: an expired certificate cuts the node off from its peers.
fn warn_if_expiring(material: &Material, files: &TlsFiles, cluster_name: &str, node_id: u64) {
    if material.expires_within(cluster_name, node_id, limits::TLS_EXPIRY_WARNING) {
        tracing::warn!(
            cert_file = %files.cert.display(),
            "the node's certificate (or its CA) expires within {} days: issue a new one \
             (`trunkctl certs issue node --node-id {node_id} --force`) and send SIGHUP, or the \
             node loses its peers when it expires",
            limits::TLS_EXPIRY_WARNING.as_secs() / 86_400
        );
    }
}

impl NodeTls {
    /// Whole days the certificate and its CA stay valid from now (0 within a day or
    /// expired); `None` when the files can't be read now. At most ten years is told apart.
    pub fn days_left(&self) -> Option<u32> {
        let material = Material::load(&self.files).ok()?;
        let valid_for = |days: u32| {
            !material.expires_within(
                &self.cluster_name,
                self.node_id,
                std::time::Duration::from_secs(u64::from(days) * 86_400),
            )
        };
        // The largest number of days it is still valid after: a binary search.
        let (mut low, mut high) = (0u32, 3_650u32);
        if !valid_for(low) {
            return Some(0);
        }
        if valid_for(high) {
            return Some(high);
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if valid_for(middle) {
                low = middle;
            } else {
                high = middle;
            }
        }
        Some(low)
    }

    /// Warns again if the certificate is close to expiry (run once a day).
    fn check_expiry(&self) {
        if let Ok(material) = Material::load(&self.files) {
            warn_if_expiring(&material, &self.files, &self.cluster_name, self.node_id);
        }
    }
}

/// Reloads on SIGHUP and when the files change, until the process ends.
pub fn watch(tls: Arc<NodeTls>) {
    tokio::spawn(async move {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(hangup) => Some(hangup),
            Err(error) => {
                tracing::warn!(%error, "can't handle SIGHUP; certificate files are still polled");
                None
            }
        };
        let mut poll = tokio::time::interval(limits::TLS_RELOAD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        let mut expiry_checked = tokio::time::Instant::now();
        loop {
            if expiry_checked.elapsed() >= limits::TLS_EXPIRY_CHECK_INTERVAL {
                expiry_checked = tokio::time::Instant::now();
                let tls = tls.clone();
                let _ = tokio::task::spawn_blocking(move || tls.check_expiry()).await;
            }
            let signalled = tokio::select! {
                _ = poll.tick() => false,
                Some(()) = async {
                    match hangup.as_mut() {
                        Some(hangup) => hangup.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            let tls = tls.clone();
            let reloaded = tokio::task::spawn_blocking(move || tls.reload()).await;
            match reloaded {
                Ok(Ok(true)) => {
                    tracing::info!("TLS certificates reloaded: new connections use them")
                }
                Ok(Ok(false)) if signalled => {
                    tracing::info!("SIGHUP: the TLS certificate files have not changed")
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => tracing::error!(
                    %error,
                    "can't reload the TLS certificates; still serving the previous ones"
                ),
                Err(error) => tracing::error!(%error, "the TLS reload task failed"),
            }
        }
    });
}
