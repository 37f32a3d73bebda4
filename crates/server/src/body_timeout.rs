//! Slow request bodies. A request body must keep arriving: at most
//! [`BodyLimits::idle`] may pass without a byte while a handler waits for it, and
//! the whole body must arrive within [`BodyLimits::total`] of the handler's first
//! read. A body that breaks either limit fails the handler's read; the handler's
//! answer is then replaced by `408 Request Timeout` with `Connection: close`, so
//! a client trickling bytes (slowloris on the body) holds a connection, a task
//! and a partly filled buffer for a bounded time only.
//!
//! Only requests that announce a body (`Content-Length` > 0 or
//! `Transfer-Encoding`) are wrapped; the clock starts when the handler first
//! polls the body, so time spent waiting for an actor is not counted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use tokio::time::{Instant, Sleep};

/// The limits on one request body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimits {
    /// Longest wait for the next bytes of a body.
    pub idle: Duration,
    /// Longest time from the first read of a body to its end.
    pub total: Duration,
}

/// Middleware: wraps the body of every request that has one.
pub(crate) async fn limit_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().parse::<u64>().map_or(true, |n| n > 0));
    if !has_body {
        return next.run(req).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = Body::new(TimedBody { inner: body, limits, expired: expired.clone(), clock: None });
    let res = next.run(Request::from_parts(parts, body)).await;
    if !expired.load(Ordering::Relaxed) {
        return res;
    }
    let body = serde_json::json!({ "message": "The request body was not received in time.", "code": 0 });
    let mut res = (StatusCode::REQUEST_TIMEOUT, body.to_string()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The body of a request, failing once the client is too slow.
struct TimedBody {
    inner: Body,
    limits: BodyLimits,
    expired: Arc<AtomicBool>,
    /// Set at the first poll: the total deadline and the timer for the nearer
    /// of it and the idle deadline.
    clock: Option<(Instant, Pin<Box<Sleep>>)>,
}

#[derive(Debug)]
struct TooSlow;

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body too slow")
    }
}

impl std::error::Error for TooSlow {}

impl hyper::body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if this.expired.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(axum::Error::new(TooSlow))));
        }
        let limits = this.limits;
        let (end, timer) = this.clock.get_or_insert_with(|| {
            let now = Instant::now();
            let end = now + limits.total;
            (end, Box::pin(tokio::time::sleep_until(end.min(now + limits.idle))))
        });
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                // Progress: the next bytes have `idle` again, within the total.
                let next = (Instant::now() + limits.idle).min(*end);
                timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.expired.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(axum::Error::new(TooSlow))))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
