//! `RouteStream`: many `RouteService` calls on one HTTP/2 stream, for proxies at high rates.
//!
//! Each request on the stream is answered by the same handler as its unary RPC (validation,
//! tenant scope, limits, refusals, call records), called with the stream's principal, so the
//! two can't drift. A failure the unary RPC would return as a status comes back as a
//! `StreamError` tagged with the request's id, and the stream goes on.
//!
//! Bounds: the stream holds a slot of [`StreamKind::Route`] while open; it works on at most
//! [`limits::ROUTE_STREAM_WINDOW`] requests at a time, each under the unary deadline. The task
//! reading the stream polls each request once as it arrives: most (a lookup) are answered
//! then, costing no task of their own (a task spawned and woken a lookup was about a tenth of
//! a node's CPU under a RouteStream load); one that waits (a write, a read at an applied
//! index) goes on in its own task, so none waits behind it. A request takes a permit of the
//! window before it is read, and its answer gives it back only when the response stream
//! hands the answer to the transport. So a sender faster
//! than the node waits on HTTP/2 flow control (the node stops reading), and a reader that stops
//! reading stops the node taking requests: the node then holds at most a window of small
//! answers, and no request's task waits on the reader while holding the routing view.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};
use tracing::Instrument;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use trunkline_api::v1::{
    self as proto,
    metadata::{FIELD_HEADER, RETRY_HEADER},
    route_service_server::RouteService,
    route_stream_request::Request as Asked,
    route_stream_response::Response as Answered,
};
use trunkline_core::{auth::Principal, Error};

use crate::{
    auth, limits,
    route_service::{RouteApi, REFUSAL_HEADER, SIP_CODE_HEADER},
};

/// The answers of one `RouteStream`, in the order they are ready.
pub type RouteStreamAnswers =
    Pin<Box<dyn Stream<Item = Result<proto::RouteStreamResponse, Status>> + Send>>;

/// An answer on its way to the transport, with the window permit it gives back once taken.
type Ready = (
    Result<proto::RouteStreamResponse, Status>,
    OwnedSemaphorePermit,
);

/// Opens a stream: takes a slot (or refuses with RESOURCE_EXHAUSTED naming the limit) and
/// starts the task that reads the stream's requests.
pub fn open(
    api: &RouteApi,
    request: Request<Streaming<proto::RouteStreamRequest>>,
) -> Result<Response<RouteStreamAnswers>, Status> {
    let slot = api.route_stream_slot()?;
    let principal = auth::principal(&request);
    let requests = request.into_inner();
    let (sender, receiver) = mpsc::channel::<Ready>(limits::ROUTE_STREAM_WINDOW);
    let api = Arc::new(api.clone());
    // The stream's RPC span (none when traces are off): each request's span is its child.
    let stream_span = tracing::Span::current();
    tokio::spawn(async move {
        // The slot is held for as long as requests may still be read.
        let _slot = slot;
        read_requests(api, requests, principal, sender, stream_span).await;
    });
    let answers = ReceiverStream::new(receiver).map(|(answer, permit)| {
        drop(permit);
        answer
    });
    Ok(Response::new(Box::pin(answers)))
}

/// Reads requests while the window has room and answers each, in its own task if it waits;
/// ends when the client stops sending, the stream fails, or nobody reads the answers any more.
async fn read_requests(
    api: Arc<RouteApi>,
    mut requests: Streaming<proto::RouteStreamRequest>,
    principal: Option<Principal>,
    sender: mpsc::Sender<Ready>,
    stream_span: tracing::Span,
) {
    let window = Arc::new(Semaphore::new(limits::ROUTE_STREAM_WINDOW));
    loop {
        let permit = tokio::select! {
            permit = window.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed.
                Err(_) => return,
            },
            () = sender.closed() => return,
        };
        let request = tokio::select! {
            request = requests.message() => request,
            () = sender.closed() => return,
        };
        match request {
            Ok(Some(request)) => {
                let (api, principal, sender) = (api.clone(), principal.clone(), sender.clone());
                let span = stream_span.in_scope(|| {
                    crate::span!(
                        "stream_request",
                        id = request.id,
                        tenant = tracing::field::Empty,
                        call_id = tracing::field::Empty
                    )
                });
                let mut answering = Box::pin(
                    async move { answer(&api, request, &principal).await }.instrument(span),
                );
                // Most requests (a lookup of a tenant without limits) never wait: answered
                // here, they cost no task of their own. One that waits (a write, a read at an
                // applied index) goes on in its own task, which polls it again with a real
                // waker.
                let polled = answering
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()));
                // The channel holds a whole window, so a send never waits; it fails only when
                // the client has gone.
                match polled {
                    Poll::Ready(answer) => {
                        if sender.send((Ok(answer), permit)).await.is_err() {
                            return;
                        }
                    }
                    Poll::Pending => {
                        tokio::spawn(async move {
                            let answer = answering.await;
                            let _ = sender.send((Ok(answer), permit)).await;
                        });
                    }
                }
            }
            Ok(None) => return,
            Err(status) => {
                let _ = sender.send((Err(status), permit)).await;
                return;
            }
        }
    }
}

/// The answer to one request, as its unary RPC would give it, tagged with its id.
async fn answer(
    api: &RouteApi,
    request: proto::RouteStreamRequest,
    principal: &Option<Principal>,
) -> proto::RouteStreamResponse {
    let id = request.id;
    let Some(asked) = request.request else {
        return tagged(
            id,
            Err(invalid_request(
                "is required: one of route_outbound, report_leg, route_inbound, \
                 report_call_end, report_registration",
            )),
        );
    };
    let call = async {
        Ok(match asked {
            Asked::RouteOutbound(message) => Answered::RouteOutbound(
                api.route_outbound(auth::with_principal(message, principal))
                    .await?
                    .into_inner(),
            ),
            Asked::ReportLeg(message) => Answered::ReportLeg(
                api.report_leg(auth::with_principal(message, principal))
                    .await?
                    .into_inner(),
            ),
            Asked::RouteInbound(message) => Answered::RouteInbound(
                api.route_inbound(auth::with_principal(message, principal))
                    .await?
                    .into_inner(),
            ),
            Asked::ReportCallEnd(message) => Answered::ReportCallEnd(
                api.report_call_end(auth::with_principal(message, principal))
                    .await?
                    .into_inner(),
            ),
            Asked::ReportRegistration(message) => Answered::ReportRegistration(
                api.report_registration(auth::with_principal(message, principal))
                    .await?
                    .into_inner(),
            ),
        })
    };
    let answered = match tokio::time::timeout(limits::API_DEFAULT_TIMEOUT, call).await {
        Ok(answered) => answered,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the request was not answered within {:?}; it may still be applied",
            limits::API_DEFAULT_TIMEOUT
        ))),
    };
    tagged(id, answered)
}

fn invalid_request(reason: &str) -> Status {
    crate::error::ClusterError::Domain(Error::invalid("request", reason)).into()
}

fn tagged(id: u64, answered: Result<Answered, Status>) -> proto::RouteStreamResponse {
    proto::RouteStreamResponse {
        id,
        response: Some(answered.unwrap_or_else(|status| Answered::Error(stream_error(&status)))),
    }
}

/// A status as a stream answer: its code, message and the metadata a proxy reads.
pub fn stream_error(status: &Status) -> proto::StreamError {
    let metadata = |name: &str| {
        status
            .metadata()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    proto::StreamError {
        // A gRPC code is 0 to 16.
        code: u32::try_from(i32::from(status.code())).unwrap_or_default(),
        message: status.message().to_owned(),
        field: metadata(FIELD_HEADER),
        refusal: metadata(REFUSAL_HEADER),
        sip_code: metadata(SIP_CODE_HEADER).parse().unwrap_or_default(),
        retry: metadata(RETRY_HEADER),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tonic::{metadata::MetadataValue, Code};

    use super::*;

    #[test]
    fn a_status_keeps_its_code_and_the_metadata_a_proxy_reads() {
        let mut status = Status::new(Code::NotFound, "no tenant named nobody");
        status
            .metadata_mut()
            .insert(REFUSAL_HEADER, MetadataValue::from_static("unknown-tenant"));
        status
            .metadata_mut()
            .insert(SIP_CODE_HEADER, MetadataValue::from(403u32));
        status
            .metadata_mut()
            .insert(FIELD_HEADER, MetadataValue::from_static("tenant"));
        let error = stream_error(&status);
        assert_eq!(error.code, 5);
        assert_eq!(error.message, "no tenant named nobody");
        assert_eq!(error.refusal, "unknown-tenant");
        assert_eq!(error.sip_code, 403);
        assert_eq!(error.field, "tenant");
        assert_eq!(error.retry, "");
    }

    #[test]
    fn a_request_with_nothing_asked_names_the_field() {
        let status = invalid_request("is required");
        let error = stream_error(&status);
        assert_eq!(
            error.code,
            u32::try_from(i32::from(Code::InvalidArgument)).unwrap()
        );
        assert_eq!(error.field, "request");
    }
}
