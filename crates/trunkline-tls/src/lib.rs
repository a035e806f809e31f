//! TLS for Trunkline, in one place for the node, trunkctl, the client and the tests.
//!
//! - **Names** ([`node_name`], [`node_of`]): a node's certificate carries the DNS name
//!   `node-<id>.<cluster>.trunkline`. A peer is verified by that name (not by the address it
//!   was dialled at, which proxies and NAT change), and the peer listener reads the sending
//!   node's id and cluster from it: a certificate is bound to one node of one cluster.
//! - **Files** ([`TlsFiles`], [`Material`]): the node's certificate chain, its key and the
//!   cluster CA, read from PEM files with errors that name the file and say what to do.
//! - **Configurations** ([`Material::server_config`], [`Material::client_config`]): rustls
//!   with the ring provider, TLS 1.2 and 1.3, ALPN `h2`.
//! - **A small CA** ([`ca`]): what `trunkctl certs init|issue` makes for deployments that
//!   bring no PKI of their own.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rustls::{
    client::{danger::ServerCertVerifier, WebPkiServerVerifier},
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::WebPkiClientVerifier,
    ClientConfig, RootCertStore, ServerConfig,
};

pub mod ca;
pub mod connect;

pub use rustls;

/// The last label of every node name.
pub const NAME_SUFFIX: &str = "trunkline";

/// The DNS name in the certificate of node `node` of cluster `cluster`.
pub fn node_name(cluster: &str, node: u64) -> String {
    format!("node-{node}.{cluster}.{NAME_SUFFIX}")
}

/// The node of cluster `cluster` that `name` names, if it is a node name of that cluster.
/// DNS names compare without regard to case.
pub fn parse_node_name(name: &str, cluster: &str) -> Option<u64> {
    let name = name.to_ascii_lowercase();
    let rest = name.strip_prefix("node-")?;
    let (id, domain) = rest.split_once('.')?;
    let expected_domain = format!("{cluster}.{NAME_SUFFIX}");
    if !domain.eq_ignore_ascii_case(&expected_domain)
        || id.is_empty()
        || !id.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    id.parse().ok().filter(|id| *id > 0)
}

/// The node of cluster `cluster` that the (already verified) certificate `cert` is for. A
/// certificate naming two nodes of the cluster is for none: it can't be bound to one.
pub fn node_of(cert: &CertificateDer<'_>, cluster: &str) -> Option<u64> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    let mut nodes = cert
        .valid_dns_names()
        .filter_map(|name| parse_node_name(name, cluster));
    let node = nodes.next()?;
    match nodes.all(|other| other == node) {
        true => Some(node),
        false => None,
    }
}

/// The crypto every configuration here uses: ring, named rather than the process default so
/// nothing depends on which crate installed one first.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {}: can't read it: {source}", .path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {}: {reason}", .path.display())]
    Bad {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
}

/// Where a node's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The node's certificate, then any intermediates (PEM).
    pub cert: PathBuf,
    /// The node's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The cluster CA that issued every member's certificate (PEM); peers and client
    /// certificates are verified against it.
    pub ca: PathBuf,
}

/// The configuration keys of [`TlsFiles`], named in errors.
pub const CERT_KEY: &str = "tls.cert_file";
pub const KEY_KEY: &str = "tls.key_file";
pub const CA_KEY: &str = "tls.ca_file";

/// A node's TLS material, read and checked.
#[derive(Debug, Clone)]
pub struct Material {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
    pub roots: Arc<RootCertStore>,
}

/// Every certificate in a PEM file; at least one.
pub fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })?;
    let bad = |reason: String| TlsError::Bad {
        key,
        path: path.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(format!("not PEM certificates: {error}")))?;
    if certificates.is_empty() {
        return Err(bad(
            "holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)".to_owned(),
        ));
    }
    Ok(certificates)
}

/// The trust anchors of a CA file.
pub fn read_roots(key: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(key, path)? {
        roots.add(certificate).map_err(|error| TlsError::Bad {
            key,
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {error}"),
        })?;
    }
    Ok(roots)
}

/// The private key of a PEM file.
pub fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|error| TlsError::Bad {
        key,
        path: path.to_owned(),
        reason: format!(
            "no private key in it ({error}); expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC \
             PRIVATE KEY block"
        ),
    })
}

/// Whether a client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// The peer listener: only members, each with a certificate from the cluster CA.
    Required,
    /// The client listener: a certificate from the cluster CA is checked if given; callers
    /// without one authenticate with a token.
    Optional,
}

impl Material {
    pub fn load(files: &TlsFiles) -> Result<Material, TlsError> {
        let chain = read_certificates(CERT_KEY, &files.cert)?;
        let key = read_key(KEY_KEY, &files.key)?;
        let roots = read_roots(CA_KEY, &files.ca)?;
        let material = Material {
            chain,
            key: Arc::new(key),
            roots: Arc::new(roots),
        };
        // A certificate that doesn't match its key would only fail at the first handshake.
        material.server_config(ClientCertificates::Optional)?;
        Ok(material)
    }

    /// Checks that the certificate is node `node`'s of cluster `cluster` and that the CA
    /// issued it (and that it is valid now), so a node never starts on another's certificate.
    pub fn check_node(&self, cluster: &str, node: u64, files: &TlsFiles) -> Result<(), TlsError> {
        let leaf = self.chain.first().ok_or_else(|| TlsError::Bad {
            key: CERT_KEY,
            path: files.cert.clone(),
            reason: "holds no certificate".to_owned(),
        })?;
        let name = node_name(cluster, node);
        if node_of(leaf, cluster) != Some(node) {
            return Err(TlsError::Bad {
                key: CERT_KEY,
                path: files.cert.clone(),
                reason: format!(
                    "is not node {node}'s certificate of cluster {cluster:?}: it must name {name} \
                     (and no other node); issue one with `trunkctl certs issue node --node-id \
                     {node} --cluster {cluster}`"
                ),
            });
        }
        self.verify_node_at(cluster, node, UnixTime::now())
            .map_err(|error| TlsError::Bad {
                key: CERT_KEY,
                path: files.cert.clone(),
                reason: format!(
                    "is not accepted by the CA in {}: {error}",
                    files.ca.display()
                ),
            })
    }

    /// Whether node `node`'s certificate (or one in its chain) will have expired `within`
    /// from now: a node whose certificate expires is cut off from its peers, so it says so
    /// ahead of time. Checked by verifying the chain at that moment.
    pub fn expires_within(&self, cluster: &str, node: u64, within: Duration) -> bool {
        let later = UnixTime::now().as_secs().saturating_add(within.as_secs());
        matches!(
            self.verify_node_at(
                cluster,
                node,
                UnixTime::since_unix_epoch(Duration::from_secs(later))
            ),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            ))
        )
    }

    fn verify_node_at(&self, cluster: &str, node: u64, at: UnixTime) -> Result<(), rustls::Error> {
        let leaf = self
            .chain
            .first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        let verifier = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        let name = ServerName::try_from(node_name(cluster, node))
            .map_err(|error| rustls::Error::General(error.to_string()))?;
        verifier
            .verify_server_cert(leaf, &self.chain[1..], &name, &[], at)
            .map(drop)
    }

    /// What a listener serves: this node's certificate, and a verifier of client
    /// certificates against the cluster CA.
    pub fn server_config(&self, clients: ClientCertificates) -> Result<ServerConfig, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider());
        let verifier = match clients {
            ClientCertificates::Required => verifier.build(),
            ClientCertificates::Optional => verifier.allow_unauthenticated().build(),
        }
        .map_err(|error| TlsError::Config(format!("{CA_KEY}: {error}")))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|error| {
                TlsError::Config(format!(
                    "{CERT_KEY} and {KEY_KEY} don't make a usable pair: {error}"
                ))
            })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// What this node dials its peers with: it trusts only the cluster CA and shows its own
    /// certificate.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        client_config(
            self.roots.clone(),
            Some((self.chain.clone(), self.key.clone_key())),
        )
    }
}

/// What a client (trunkctl, a proxy, a test) dials nodes with: it trusts the CA in `ca` and
/// shows the certificate and key in `identity`, if given.
pub fn client_config_from_files(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let roots = read_roots("--ca-file", ca)?;
    let identity = match identity {
        None => None,
        Some((cert, key)) => Some((
            read_certificates("--cert-file", cert)?,
            read_key("--key-file", key)?,
        )),
    };
    client_config(Arc::new(roots), identity)
}

/// A client configuration trusting `roots`, showing `identity` (a certificate chain and its
/// key) when given, speaking HTTP/2.
pub fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|error| {
            TlsError::Config(format!(
                "the client certificate and key don't make a usable pair: {error}"
            ))
        })?,
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_node_name_parses_back_only_for_its_cluster() {
        let name = node_name("prod_east.1", 7);
        assert_eq!(name, "node-7.prod_east.1.trunkline");
        assert_eq!(parse_node_name(&name, "prod_east.1"), Some(7));
        assert_eq!(
            parse_node_name("NODE-7.Prod_East.1.TRUNKLINE", "prod_east.1"),
            Some(7)
        );
        assert_eq!(
            parse_node_name("node-7.PROD_EAST.1.trunkline", "prod_east.1"),
            Some(7)
        );
        assert_eq!(parse_node_name(&name, "prod_east"), None);
        assert_eq!(parse_node_name(&name, "east.1"), None);
        for bad in [
            "node-.prod.trunkline",
            "node-0.prod.trunkline",
            "node-+7.prod.trunkline",
            "node-7x.prod.trunkline",
            "node-99999999999999999999.prod.trunkline",
            "node-7.prod.trunkline.evil",
            "client-7.prod.trunkline",
        ] {
            assert_eq!(parse_node_name(bad, "prod"), None, "{bad}");
        }
    }
}
