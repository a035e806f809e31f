//! Posts fraud alerts to the operator's webhook (the replicated setting `alerts/webhook_url`,
//! `http://host:port/path`): one HTTP/1.1 POST of a JSON object per alert, oldest first.
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trunkline_core::alerts::{Alert, AlertCommand};
use trunkline_core::Command;

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

/// Where to post: host:port for the connection, the Host header and the path.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub address: String,
    pub host: String,
    pub path: String,
}

/// Reads `http://host[:port][/path]`.
pub fn parse_url(url: &str) -> Result<Target, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or("must start with http:// (https is not supported yet: put a TLS proxy in front)")?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['@', ' ']) || path.contains([' ', '\r', '\n']) {
        return Err("is not an http://host[:port]/path URL".to_owned());
    }
    let address = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok(Target {
        address,
        host: authority.to_owned(),
        path: path.to_owned(),
    })
}

/// Posts `body` and returns the status code.
pub async fn post(target: &Target, body: &[u8]) -> Result<u16, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(&target.address)
            .await
            .map_err(|error| format!("can't connect to {}: {error}", target.address))?;
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
    };
    tokio::time::timeout(POST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no reply within {POST_TIMEOUT:?}"))?
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

/// Starts the delivery task; it ends when the cluster is dropped.
pub fn start(cluster: Arc<Cluster>) {
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
                match post(&target, &body(alert)).await {
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
            }
        );
        assert_eq!(
            parse_url("http://127.0.0.1").unwrap().address,
            "127.0.0.1:80"
        );
        assert_eq!(parse_url("http://h").unwrap().path, "/");
        assert!(parse_url("https://h/").unwrap_err().contains("https"));
        assert!(parse_url("http:///x").is_err());
        assert!(parse_url("http://a b/").is_err());
        assert!(parse_url("http://h/x\r\nInjected: 1").is_err());
        assert!(parse_url(&format!("http://h/{}", "a".repeat(3_000))).is_err());
    }
}
