//! Dialling over TLS for tonic: a connector that opens TCP, completes the handshake with the
//! client configuration current at that moment, and hands tonic the stream. The node dials
//! its peers with it (expecting the target node's name, whatever address it dials) and the
//! client dials nodes with it (expecting the host it was given).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use rustls::{pki_types::ServerName, ClientConfig};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Where a connector gets its configuration for each new connection.
pub type ConfigSource = Arc<dyn Fn() -> Arc<ClientConfig> + Send + Sync>;

/// A `tower::Service<Uri>` for `Endpoint::connect_with_connector`.
#[derive(Clone)]
pub struct Connector {
    config: ConfigSource,
    server_name: ServerName<'static>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
}

impl Connector {
    /// Connects expecting a certificate valid for `server_name` (a DNS name or an IP
    /// address); `None` if it is neither.
    pub fn new(
        config: ConfigSource,
        server_name: &str,
        connect_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Option<Connector> {
        let server_name =
            ServerName::try_from(server_name.trim_matches(['[', ']']).to_owned()).ok()?;
        Some(Connector {
            config,
            server_name,
            connect_timeout,
            handshake_timeout,
        })
    }

    /// A connector with one fixed configuration.
    pub fn fixed(
        config: Arc<ClientConfig>,
        server_name: &str,
        connect_timeout: Duration,
        handshake_timeout: Duration,
    ) -> Option<Connector> {
        Connector::new(
            Arc::new(move || config.clone()),
            server_name,
            connect_timeout,
            handshake_timeout,
        )
    }
}

type Connecting =
    Pin<Box<dyn Future<Output = Result<TokioIo<TlsStream<TcpStream>>, std::io::Error>> + Send>>;

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = (self.config)();
        let connector = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::time::timeout(
                connector.connect_timeout,
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| timed_out("connect"))??;
            tcp.set_nodelay(true)?;
            let stream = tokio::time::timeout(
                connector.handshake_timeout,
                tokio_rustls::TlsConnector::from(config).connect(connector.server_name, tcp),
            )
            .await
            .map_err(|_| timed_out("TLS handshake"))??;
            Ok(TokioIo::new(stream))
        })
    }
}
