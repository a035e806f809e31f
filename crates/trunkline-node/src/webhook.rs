//! Posts fraud alerts to the operator's webhook (the replicated setting `alerts/webhook_url`,
//! `https://host[:port]/path` or `http://...`): one HTTP/1.1 POST of a JSON object per alert,
//! oldest first. An https receiver's certificate is checked against the node's webhook trust
//! roots (`alerts.webhook_ca_file`, else the system's CA bundle; see [`trust`]).
//!
//! Only the leader posts. What was delivered is replicated (`AlertCommand::Delivered`, the id
//! of the last alert the receiver accepted with a 2xx), so a new leader carries on where the
//! old one stopped: every alert is delivered at least once (an alert the old leader posted
//! just before it failed may be posted again; receivers deduplicate by `id`). A receiver that
//! fails or is unreachable is retried with exponential back-off (1 s doubling to
//! [`MAX_BACKOFF`]). The queue is the cluster's alert list, bounded
//! (`trunkline_core::alerts::MAX_ALERTS`), so a receiver down for long loses the oldest.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use trunkline_core::alerts::{Alert, AlertCommand};
use trunkline_core::Command;
use trunkline_tls::rustls::{pki_types::ServerName, ClientConfig};

use crate::admin::WEBHOOK_SETTING;
use crate::cluster::Cluster;

/// How often the leader looks for alerts to deliver.
const POLL: Duration = Duration::from_millis(250);
/// Longest wait between two tries at a failing receiver.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// One POST's deadline: connect, send and read the status line.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// Alerts posted before the delivery mark is written.
const PER_ROUND: usize = 100;
/// Longest webhook URL used.
const MAX_URL_BYTES: usize = 2_048;
/// Where Debian (and most distributions) keep the system's trusted CAs.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The JSON body of one alert.
#[derive(Serialize)]
struct Body<'a> {
    id: u64,
    tenant: &'a str,
    rule: &'a str,
    raised_ms: u64,
    observed: u64,
    limit: u64,
    action: Option<String>,
    message: &'a str,
}

/// Where to post: host:port for the connection, the Host header and the path, and whether
/// over TLS (then `host` without its port is the name the certificate must carry).
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub address: String,
    pub host: String,
    pub path: String,
    pub tls: bool,
}

/// Reads `https://host[:port][/path]` or `http://host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    let (rest, tls, default_port) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, true, 443)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, false, 80)
    } else {
        return Err("must start with https:// or http://".to_owned());
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) || path.contains([' ', '\r', '\n']) {
        return Err("is not an https://host[:port]/path URL".to_owned());
    }
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    Ok(Target {
        address,
        host: authority.to_owned(),
        path: path.to_owned(),
        tls,
    })
}

impl Target {
    /// The name an https receiver's certificate must carry: the host without its port (an IP
    /// address is checked as one).
    fn server_name(&self) -> Result<ServerName<'static>, String> {
        let host = match self.host.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => &self.host,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned()).map_err(|error| {
            format!("{host:?} is not a host name a certificate can carry: {error}")
        })
    }
}

/// The trust roots https webhooks are checked against: the PEM bundle in `ca_file` (an error
/// if it can't be read), else the system's bundle when there is one, else none (an https
/// receiver is then refused, saying how to give roots). HTTP/1.1 only.
pub fn trust(ca_file: Option<&std::path::Path>) -> Result<Option<Arc<ClientConfig>>, String> {
    let roots = match ca_file {
        Some(path) => trunkline_tls::read_roots("alerts.webhook_ca_file", path)
            .map_err(|error| error.to_string())?,
        None => match trunkline_tls::read_roots("system CA bundle", SYSTEM_CA_BUNDLE.as_ref()) {
            Ok(roots) => roots,
            Err(error) => {
                tracing::debug!(%error, "no system CA bundle: https webhooks need alerts.webhook_ca_file");
                return Ok(None);
            }
        },
    };
    let mut config = ClientConfig::builder_with_provider(trunkline_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// Posts `body` and returns the status code; an https target needs `tls` (the trust roots).
pub async fn post(
    target: &Target,
    body: &[u8],
    tls: Option<&Arc<ClientConfig>>,
) -> Result<u16, String> {
    let exchange = async {
        let stream = TcpStream::connect(&target.address)
            .await
            .map_err(|error| format!("can't connect to {}: {error}", target.address))?;
        if !target.tls {
            return exchange(stream, target, body).await;
        }
        let Some(tls) = tls else {
            return Err(format!(
                "https needs trusted CAs and this node has none: give it alerts.webhook_ca_file \
                 (--webhook-ca-file) or a system bundle at {SYSTEM_CA_BUNDLE}"
            ));
        };
        let stream = TlsConnector::from(Arc::clone(tls))
            .connect(target.server_name()?, stream)
            .await
            .map_err(|error| format!("TLS with {} failed: {error}", target.address))?;
        exchange(stream, target, body).await
    };
    tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no reply within {POST_TIMEOUT:?}"))?
}

/// One POST on an open connection; the status code of the reply.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    body: &[u8],
) -> Result<u16, String> {
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: \
         {}\r\nUser-Agent: trunkline\r\nConnection: close\r\n\r\n",
        target.path,
        target.host,
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    stream
        .write_all(body)
        .await
        .map_err(|error| error.to_string())?;
    // The status line is all we need; read at most a small buffer of the reply.
    let mut reply = [0u8; 256];
    let mut read = 0;
    while read < reply.len() {
        let n = stream
            .read(&mut reply[read..])
            .await
            .map_err(|error| error.to_string())?;
        if n == 0 || reply[..read + n].contains(&b'\n') {
            read += n;
            break;
        }
        read += n;
    }
    let line = String::from_utf8_lossy(&reply[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("the reply is not HTTP: {:?}", line.lines().next()))
}

fn body(alert: &Alert) -> Vec<u8> {
    serde_json::to_vec(&Body {
        id: alert.id,
        tenant: &alert.tenant,
        rule: alert.rule.as_str(),
        raised_ms: alert.raised_ms,
        observed: alert.observed,
        limit: alert.limit,
        action: alert.action.map(|action| action.to_string()),
        message: &alert.message,
    })
    .unwrap_or_default()
}

/// Starts the delivery task; it ends when the cluster is dropped. `tls`: the trust roots of
/// https receivers ([`trust`]).
pub fn start(cluster: Arc<Cluster>, tls: Option<Arc<ClientConfig>>) {
    let weak = Arc::downgrade(&cluster);
    drop(cluster);
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        // Delivered by this node while leader, ahead of the replicated mark.
        let mut sent = 0u64;
        loop {
            tokio::time::sleep(POLL).await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            if cluster.metrics().state != ServerState::Leader {
                sent = 0;
                continue;
            }
            let applied = cluster.reader.current();
            let Some(url) = applied
                .state
                .settings()
                .get(WEBHOOK_SETTING)
                .map(|setting| setting.value.trim().to_owned())
                .filter(|url| !url.is_empty())
            else {
                continue;
            };
            let book = applied.state.alerts();
            let after = sent.max(book.delivered_through());
            let pending: Vec<Alert> = book
                .alerts()
                .filter(|alert| alert.id > after)
                .take(PER_ROUND)
                .cloned()
                .collect();
            drop(applied);
            if pending.is_empty() {
                continue;
            }
            let target = match parse_url(&url) {
                Ok(target) => target,
                Err(reason) => {
                    tracing::warn!(%url, %reason, "alerts/webhook_url is unusable");
                    tokio::time::sleep(MAX_BACKOFF).await;
                    continue;
                }
            };
            let mut failed = false;
            for alert in &pending {
                match post(&target, &body(alert), tls.as_ref()).await {
                    Ok(code) if (200..300).contains(&code) => sent = alert.id,
                    outcome => {
                        tracing::warn!(
                            ?outcome,
                            alert = alert.id,
                            retry_in = ?backoff,
                            "the alert webhook did not accept an alert"
                        );
                        failed = true;
                        break;
                    }
                }
            }
            if sent > after {
                let command = Command::Alerts(AlertCommand::Delivered { through: sent });
                if let Err(error) = cluster.write(command).await {
                    tracing::debug!(%error, "alert delivery mark not written");
                }
            }
            drop(cluster);
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                backoff = Duration::from_secs(1);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_or_refused_with_a_reason() {
        assert_eq!(
            parse_url("http://hooks.example:8080/fraud?x=1").unwrap(),
            Target {
                address: "hooks.example:8080".into(),
                host: "hooks.example:8080".into(),
                path: "/fraud?x=1".into(),
                tls: false,
            }
        );
        let secure = parse_url("https://hooks.example/fraud").unwrap();
        assert_eq!(secure.address, "hooks.example:443");
        assert!(secure.tls);
        assert_eq!(
            secure.server_name().unwrap(),
            ServerName::try_from("hooks.example").unwrap()
        );
        let by_address = parse_url("https://127.0.0.1:8443/").unwrap();
        assert_eq!(
            by_address.server_name().unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            parse_url("http://127.0.0.1").unwrap().address,
            "127.0.0.1:80"
        );
        assert_eq!(parse_url("http://h").unwrap().path, "/");
        assert!(parse_url("ftp://h/").unwrap_err().contains("https://"));
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("http://a b/").is_err());
        assert!(parse_url("http://h/x\r\nInjected: 1").is_err());
        assert!(parse_url(&format!("http://h/{}", "a".repeat(3_000))).is_err());
    }
}
