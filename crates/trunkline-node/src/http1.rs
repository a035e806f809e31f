//! The HTTP/1.1 server both plain-HTTP listeners use (the JSON endpoint for proxies and
//! `/metrics`): connections from the shared accept loop ([`listener::accept`]: connection
//! cap, idle timeout, TLS), a bounded request head and header read deadline, keep-alive, and
//! a graceful stop.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{body::Bytes, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tokio_stream::StreamExt;
use tonic::transport::server::Connected;

use crate::{
    limits,
    listener::{self, ConnectionInfo, ListenerLimits},
};

/// Most bytes of a request's line and headers (hyper's smallest read buffer is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long a client may take to send a request's head once it starts one.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub type HttpResponse = hyper::Response<Full<Bytes>>;

/// Answers one request of a connection.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
        info: ConnectionInfo,
    ) -> impl Future<Output = HttpResponse> + Send;
}

/// Accepts and serves connections until `stop` turns true, then lets each connection finish
/// the request it is on (bounded by [`limits::SHUTDOWN_DRAIN`]).
pub async fn serve<H: Handler>(
    handler: Arc<H>,
    listener: TcpListener,
    limits: ListenerLimits,
    stop: watch::Receiver<bool>,
) {
    let mut incoming = listener::accept(listener, limits);
    let mut connections = JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            accepted = incoming.next() => match accepted {
                Some(Ok(connection)) => {
                    connections.spawn(serve_connection(handler.clone(), connection, stop.clone()));
                }
                Some(Err(error)) => tracing::debug!(%error, "an HTTP connection failed to start"),
                None => break,
            },
            () = stopped(&mut stopping) => break,
            // Reap finished connections so the set does not grow with the listener's life.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(incoming);
    let drained = tokio::time::timeout(limits::SHUTDOWN_DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection<H: Handler>(
    handler: Arc<H>,
    connection: listener::Connection,
    mut stop: watch::Receiver<bool>,
) {
    let info = connection.connect_info();
    let service = service_fn(move |request| {
        let answered = handler.clone().handle(request, info.clone());
        async move { Ok::<_, Infallible>(answered.await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(connection), service);
    tokio::pin!(served);
    tokio::select! {
        result = served.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        }
        () = stopped(&mut stop) => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await.map(|_| ());
}
