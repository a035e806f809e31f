//! A listener-wide budget of request bytes read from the network and not yet decoded.
//!
//! tonic reads a request's body into a buffer until a whole message is there. A client that
//! sends most of a 4 MiB message and stalls makes the node hold those bytes until the request
//! times out; a thousand such clients held 3 GB, and glibc kept most of it after they left.
//! [`BodyBudgetLayer`] charges every data frame of every request body against one semaphore
//! whose permits are bytes. A frame that does not fit fails its request with
//! RESOURCE_EXHAUSTED naming the limit, and the request's bytes are given back at once;
//! otherwise they are given back when tonic can no longer hold them: when the body is dropped
//! (the request ended), and, for the bytes of whole messages, when tonic asks for the next
//! frame. tonic asks the body for more only when its buffer holds no whole message, so by
//! then every whole message read has been decoded and handed on; only the part of a message
//! still arriving is held ([`Framing`] follows the gRPC message framing to know how much). So
//! a stream of many small messages (`RouteStream`) holds its budget for one message at a
//! time, not for everything it ever sent, while a sender stalled inside one big message holds
//! all of it. The peak is bounded in the first place: memory that was never taken need not be
//! returned.
//!
//! Bytes received but not yet read by a request are bounded separately, by the HTTP/2
//! flow-control windows set on the server.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::{http, Body as HttpBody, Bytes, Service};

/// Charges the bodies of a listener's requests to one byte budget.
#[derive(Debug, Clone)]
pub struct BodyBudgetLayer {
    budget: Arc<Budget>,
}

#[derive(Debug)]
struct Budget {
    bytes: Arc<Semaphore>,
    limit_bytes: usize,
    /// The configuration key (or constant) of the limit, named in the error a client gets.
    limit_name: &'static str,
}

impl BodyBudgetLayer {
    /// A budget of `limit_bytes` for one listener. `limit_bytes` is capped at what a tokio
    /// semaphore can count (2^61 - 1), far beyond any real memory.
    pub fn new(limit_bytes: usize, limit_name: &'static str) -> Self {
        let limit_bytes = limit_bytes.min(Semaphore::MAX_PERMITS);
        BodyBudgetLayer {
            budget: Arc::new(Budget {
                bytes: Arc::new(Semaphore::new(limit_bytes)),
                limit_bytes,
                limit_name,
            }),
        }
    }

    /// Bytes of the budget not held by any request now (for tests).
    pub fn available_bytes(&self) -> usize {
        self.budget.bytes.available_permits()
    }
}

impl<S> tower::Layer<S> for BodyBudgetLayer {
    type Service = BodyBudget<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyBudget {
            inner,
            budget: self.budget.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BodyBudget<S> {
    inner: S,
    budget: Arc<Budget>,
}

impl<S> Service<http::Request<tonic::body::Body>> for BodyBudget<S>
where
    S: Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let budget = self.budget.clone();
        self.inner.call(request.map(|body| {
            tonic::body::Body::new(BudgetedBody {
                body,
                budget,
                held: None,
                framing: Framing::default(),
            })
        }))
    }
}

/// A request body whose data frames are charged to the listener's budget.
struct BudgetedBody {
    body: tonic::body::Body,
    budget: Arc<Budget>,
    /// The bytes of this request read and possibly still in tonic's buffer.
    held: Option<OwnedSemaphorePermit>,
    /// Where the body is in its gRPC messages.
    framing: Framing,
}

/// The gRPC length-prefixed message framing of a body (a flag byte, a 4-byte big-endian
/// length, the message), followed as its bytes pass: how many bytes of the message still
/// arriving have been read.
#[derive(Debug, Default)]
struct Framing {
    /// Prefix bytes of the next message read so far (0 to 4; at 5 the prefix is whole).
    prefix: [u8; 5],
    prefix_read: usize,
    /// Bytes of the current message still to come after its prefix.
    message_left: usize,
    /// Bytes read of a message not yet whole (its prefix included).
    partial: usize,
}

impl Framing {
    fn read(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.message_left > 0 {
                let taken = self.message_left.min(data.len());
                self.message_left -= taken;
                self.partial += taken;
                data = &data[taken..];
                if self.message_left == 0 {
                    self.partial = 0;
                }
                continue;
            }
            let taken = (self.prefix.len() - self.prefix_read).min(data.len());
            self.prefix[self.prefix_read..self.prefix_read + taken].copy_from_slice(&data[..taken]);
            self.prefix_read += taken;
            self.partial += taken;
            data = &data[taken..];
            if self.prefix_read == self.prefix.len() {
                self.prefix_read = 0;
                let [_, a, b, c, d] = self.prefix;
                // A length beyond memory is refused by tonic's message size limit anyway.
                self.message_left =
                    usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
                if self.message_left == 0 {
                    self.partial = 0;
                }
            }
        }
    }
}

impl BudgetedBody {
    /// Gives back the bytes of whole messages: called when tonic asks for the next frame, so
    /// they have all been decoded.
    fn release_whole_messages(&mut self) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        let keep = self.framing.partial.min(held.num_permits());
        let release = held.num_permits() - keep;
        if release > 0 {
            drop(held.split(release));
        }
        if keep == 0 {
            self.held = None;
        }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), tonic::Status> {
        if bytes == 0 {
            return Ok(());
        }
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|bytes| self.budget.bytes.clone().try_acquire_many_owned(bytes).ok());
        match (permit, &mut self.held) {
            (Some(permit), Some(held)) => {
                held.merge(permit);
                Ok(())
            }
            (Some(permit), None) => {
                self.held = Some(permit);
                Ok(())
            }
            (None, _) => {
                let held = self.held.take().map_or(0, |held| held.num_permits());
                tracing::debug!(
                    limit = self.budget.limit_name,
                    held,
                    "a request body does not fit in the buffered request budget"
                );
                Err(tonic::Status::resource_exhausted(format!(
                    "the node is holding its limit of unfinished request bytes ({} = {} bytes) \
                     and can't take this request's; retry later, or another node",
                    self.budget.limit_name, self.budget.limit_bytes
                )))
            }
        }
    }
}

impl HttpBody for BudgetedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        this.release_whole_messages();
        let frame = match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            if let Err(status) = this.charge(data.len()) {
                return Poll::Ready(Some(Err(status)));
            }
            this.framing.read(data);
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{service_fn, Layer, ServiceExt};

    /// Reads a request body to its end or first error, returning the bytes read or the
    /// error's code, and the fewest bytes of the budget left after any frame.
    async fn read_body(
        layer: &BodyBudgetLayer,
        chunks: Vec<Bytes>,
    ) -> (Result<usize, tonic::Code>, usize) {
        let stream = tokio_stream::iter(
            chunks
                .into_iter()
                .map(|chunk| Ok::<_, tonic::Status>(http_body::Frame::data(chunk))),
        );
        let body = tonic::body::Body::new(StreamBody(Box::pin(stream)));
        let probe = layer.clone();
        let service = layer.layer(service_fn(
            move |request: http::Request<tonic::body::Body>| {
                let probe = probe.clone();
                async move {
                    let mut body = request.into_body();
                    let mut total = 0;
                    let mut fewest = probe.available_bytes();
                    while let Some(frame) =
                        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                    {
                        match frame {
                            Ok(frame) => {
                                total += frame.data_ref().map_or(0, |data| data.len());
                                fewest = fewest.min(probe.available_bytes());
                            }
                            Err(status) => {
                                return Ok::<_, std::convert::Infallible>((
                                    Err(status.code()),
                                    probe.available_bytes(),
                                ))
                            }
                        }
                    }
                    Ok((Ok(total), fewest))
                }
            },
        ));
        let request = http::Request::new(body);
        match service.oneshot(request).await {
            Ok(result) => result,
            Err(never) => match never {},
        }
    }

    struct StreamBody(
        Pin<
            Box<
                dyn tokio_stream::Stream<Item = Result<http_body::Frame<Bytes>, tonic::Status>>
                    + Send,
            >,
        >,
    );

    impl HttpBody for StreamBody {
        type Data = Bytes;
        type Error = tonic::Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
            self.0.as_mut().poll_next(cx)
        }
    }

    /// `count` gRPC messages of `size` bytes each (prefix included), back to back.
    fn messages(count: usize, size: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..count {
            bytes.push(0);
            bytes.extend_from_slice(&u32::try_from(size - 5).unwrap().to_be_bytes());
            bytes.extend(std::iter::repeat_n(7, size - 5));
        }
        bytes
    }

    fn frames(bytes: &[u8], frame: usize) -> Vec<Bytes> {
        bytes.chunks(frame).map(Bytes::copy_from_slice).collect()
    }

    #[tokio::test]
    async fn a_message_within_the_budget_is_read_and_its_bytes_held_until_dropped() {
        let layer = BodyBudgetLayer::new(100, "limits.test");
        // One 90-byte message arriving in two frames: all of it is held until it is whole.
        let (read, available_while_reading) = read_body(&layer, frames(&messages(1, 90), 45)).await;
        assert_eq!(read, Ok(90));
        assert_eq!(available_while_reading, 10);
        assert_eq!(
            layer.available_bytes(),
            100,
            "given back when the body is dropped"
        );
    }

    #[tokio::test]
    async fn a_message_beyond_the_budget_fails_with_resource_exhausted_and_gives_back_its_bytes() {
        let layer = BodyBudgetLayer::new(100, "limits.test");
        let (read, available_after_failure) =
            read_body(&layer, frames(&messages(1, 120), 60)).await;
        assert_eq!(read, Err(tonic::Code::ResourceExhausted));
        assert_eq!(
            available_after_failure, 100,
            "a failed request must not keep what it held"
        );
    }

    #[tokio::test]
    async fn a_stream_of_small_messages_holds_only_the_message_arriving() {
        // 1,000 messages of 20 bytes (20,000 bytes) in 50-byte frames, so most frames end in
        // the middle of a message, through a 100-byte budget: every message is read. Before,
        // a body held every byte it ever read until it was dropped, so a long `RouteStream`
        // ran out of the listener's whole budget.
        let layer = BodyBudgetLayer::new(100, "limits.test");
        let (read, fewest_available) = read_body(&layer, frames(&messages(1_000, 20), 50)).await;
        assert_eq!(read, Ok(20_000));
        // At most a frame and the 19 bytes of a message begun in the frame before.
        assert!(fewest_available >= 100 - 50 - 19, "{fewest_available}");
        assert_eq!(layer.available_bytes(), 100);
    }

    #[test]
    fn framing_counts_the_part_of_a_message_still_arriving() {
        let mut framing = Framing::default();
        let bytes = messages(2, 12);
        framing.read(&bytes[..3]);
        assert_eq!(framing.partial, 3, "part of a prefix");
        framing.read(&bytes[3..10]);
        assert_eq!(framing.partial, 10);
        framing.read(&bytes[10..15]);
        assert_eq!(framing.partial, 3, "the first message is whole");
        framing.read(&bytes[15..]);
        assert_eq!(framing.partial, 0);
        framing.read(&[0, 0, 0, 0, 0]);
        assert_eq!(
            framing.partial, 0,
            "an empty message is whole at its prefix"
        );
    }

    #[tokio::test]
    async fn the_error_names_the_limit() {
        let layer = BodyBudgetLayer::new(10, "limits.api_max_buffered_request_bytes");
        let mut body = BudgetedBody {
            body: tonic::body::Body::empty(),
            budget: layer.budget.clone(),
            held: None,
            framing: Framing::default(),
        };
        let status = body.charge(11).unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status
                .message()
                .contains("limits.api_max_buffered_request_bytes = 10"),
            "{}",
            status.message()
        );
    }
}
