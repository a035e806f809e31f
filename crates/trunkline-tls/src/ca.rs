//! A small certificate authority for deployments that bring none: what `trunkctl certs init`
//! and `trunkctl certs issue` make, and what the tests use.
//!
//! The CA is one ECDSA P-256 key and a self-signed certificate whose subject names the
//! cluster. Issuing needs the CA's key and cluster name: the CA certificate is rebuilt from
//! them (same subject, same key identifier), and every issued certificate is checked to
//! chain to the CA file before it is handed out, so a CA made elsewhere fails loudly here
//! instead of producing certificates no node accepts. Real deployments bring their own PKI;
//! nodes need only the names of [`crate::node_name`].

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{
    client::{danger::ServerCertVerifier, WebPkiServerVerifier},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    server::WebPkiClientVerifier,
    RootCertStore,
};
use time::OffsetDateTime;

use crate::{node_name, provider};

/// How long a CA made here is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a node or client certificate is valid unless told otherwise.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Issued certificates start this long before now, for clocks a little behind.
const BACKDATE: Duration = Duration::from_secs(3600);

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{0}")]
    Invalid(String),
    #[error("can't make the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "the CA certificate was not made from this key for cluster {cluster:?} by `trunkctl \
         certs init` (check --cluster, or issue with the tools that made the CA): {reason}"
    )]
    NotThisCa { cluster: String, reason: String },
}

fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Trunkline");
    name.push(
        DnType::CommonName,
        format!("Trunkline CA of cluster {cluster}"),
    );
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, valid_for: Duration) {
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

/// A new CA for `cluster`.
pub fn new_ca(cluster: &str) -> Result<Issued, CaError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params(cluster);
    validity(&mut params, OffsetDateTime::now_utc(), CA_VALIDITY);
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What an issued certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Node `id`: server on both listeners, client to its peers. `hosts` are the DNS names
    /// and IP addresses clients dial it at.
    Node { id: u64, hosts: Vec<String> },
    /// A client (trunkctl, a SIP proxy) known by `name`.
    Client { name: String },
}

/// Issues a certificate for `subject` in `cluster`, signed by the CA of `ca` (made by
/// [`new_ca`] for the same cluster), valid for `valid_for`.
pub fn issue(
    ca: &Issued,
    cluster: &str,
    subject: &Subject,
    valid_for: Duration,
) -> Result<Issued, CaError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)
        .map_err(|error| CaError::Invalid(format!("the CA key is not a PEM key: {error}")))?;
    // The issuer as rcgen needs it: the same subject and key as the CA file's certificate.
    let issuer = ca_params(cluster).self_signed(&ca_key)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Trunkline");
    let (names, usages) = match subject {
        Subject::Node { id, hosts } => {
            if *id == 0 {
                return Err(CaError::Invalid("node ids start at 1".to_owned()));
            }
            let node = node_name(cluster, *id);
            name.push(DnType::CommonName, node.clone());
            let mut names = vec![node];
            names.extend(hosts.iter().cloned());
            (
                names,
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
            )
        }
        Subject::Client { name: client } => {
            if client.is_empty() || client.len() > 64 || client.contains(char::is_control) {
                return Err(CaError::Invalid(format!(
                    "client name {client:?}: 1 to 64 printable characters"
                )));
            }
            name.push(DnType::CommonName, client.clone());
            (Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth])
        }
    };
    let mut params = CertificateParams::new(names)
        .map_err(|error| CaError::Invalid(format!("not a DNS name or IP address: {error}")))?;
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, OffsetDateTime::now_utc(), valid_for);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer, &ca_key)?;
    check_chains(ca, cluster, cert.der(), subject)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl Issued {
    /// Writes `<name>.pem` and `<name>.key` (readable by the owner only) into `dir`, which
    /// is made if missing; refuses to overwrite either unless `overwrite`. Returns the two
    /// paths.
    pub fn write(
        &self,
        dir: &Path,
        name: &str,
        overwrite: bool,
    ) -> std::io::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        if !overwrite {
            for path in [&cert, &key] {
                if path.exists() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("{} exists already; move it away first", path.display()),
                    ));
                }
            }
        }
        write_file(&key, &self.key_pem, 0o600)?;
        write_file(&cert, &self.cert_pem, 0o644)?;
        Ok((cert, key))
    }

    /// Reads `<name>.pem` and `<name>.key` from `dir`.
    pub fn read(dir: &Path, name: &str) -> std::io::Result<Issued> {
        Ok(Issued {
            cert_pem: std::fs::read_to_string(dir.join(format!("{name}.pem")))?,
            key_pem: std::fs::read_to_string(dir.join(format!("{name}.key")))?,
        })
    }
}

/// Writes `text` to `path` with `mode`, through a temporary file renamed over it, so a node
/// reloading its certificates never reads half a file.
fn write_file(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let temporary = path.with_extension(format!(
        "{}.tmp",
        path.extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Checks that `leaf` verifies against the CA certificate of `ca` for its purpose.
fn check_chains(
    ca: &Issued,
    cluster: &str,
    leaf: &CertificateDer<'_>,
    subject: &Subject,
) -> Result<(), CaError> {
    let not_this_ca = |reason: String| CaError::NotThisCa {
        cluster: cluster.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
        let cert = cert
            .map_err(|error| CaError::Invalid(format!("the CA certificate is not PEM: {error}")))?;
        roots
            .add(cert)
            .map_err(|error| not_this_ca(error.to_string()))?;
    }
    let roots = std::sync::Arc::new(roots);
    match subject {
        Subject::Node { id, .. } => {
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|error| not_this_ca(error.to_string()))?;
            let name = ServerName::try_from(node_name(cluster, *id))
                .map_err(|error| CaError::Invalid(error.to_string()))?;
            verifier
                .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
                .map(drop)
                .map_err(|error| not_this_ca(error.to_string()))
        }
        Subject::Client { .. } => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|error| not_this_ca(error.to_string()))?;
            verifier
                .verify_client_cert(leaf, &[], UnixTime::now())
                .map(drop)
                .map_err(|error| not_this_ca(error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::node_of;

    #[test]
    fn an_issued_node_certificate_names_its_node_and_chains_to_the_ca() {
        let ca = new_ca("prod").unwrap();
        let node = issue(
            &ca,
            "prod",
            &Subject::Node {
                id: 3,
                hosts: vec!["10.0.0.3".into(), "n3.example".into()],
            },
            DEFAULT_VALIDITY,
        )
        .unwrap();
        let der = CertificateDer::from_pem_slice(node.cert_pem.as_bytes()).unwrap();
        assert_eq!(node_of(&der, "prod"), Some(3));
        assert_eq!(node_of(&der, "staging"), None);
    }

    #[test]
    fn issuing_with_another_clusters_ca_fails_instead_of_making_a_useless_certificate() {
        let ca = new_ca("prod").unwrap();
        let error = issue(
            &ca,
            "staging",
            &Subject::Client { name: "ops".into() },
            DEFAULT_VALIDITY,
        )
        .unwrap_err();
        assert!(matches!(error, CaError::NotThisCa { .. }), "{error}");
    }

    #[test]
    fn a_node_certificate_close_to_its_end_says_so() {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path();
        let ca = new_ca("prod").unwrap();
        ca.write(dir, "ca", true).unwrap();
        let subject = Subject::Node {
            id: 1,
            hosts: vec![],
        };
        let ten_days = Duration::from_secs(10 * 24 * 3600);
        issue(&ca, "prod", &subject, ten_days)
            .unwrap()
            .write(dir, "node-1", true)
            .unwrap();
        let material = crate::Material::load(&crate::TlsFiles {
            cert: dir.join("node-1.pem"),
            key: dir.join("node-1.key"),
            ca: dir.join("ca.pem"),
        })
        .unwrap();
        let day = Duration::from_secs(24 * 3600);
        assert!(material.expires_within("prod", 1, 30 * day));
        assert!(!material.expires_within("prod", 1, 5 * day));
    }

    #[test]
    fn a_client_certificate_names_no_node() {
        let ca = new_ca("prod").unwrap();
        let client = issue(
            &ca,
            "prod",
            &Subject::Client {
                name: "node-1.prod.trunkline".into(),
            },
            DEFAULT_VALIDITY,
        )
        .unwrap();
        let der = CertificateDer::from_pem_slice(client.cert_pem.as_bytes()).unwrap();
        // Its common name looks like a node's, but only DNS names count.
        assert_eq!(node_of(&der, "prod"), None);
    }
}
