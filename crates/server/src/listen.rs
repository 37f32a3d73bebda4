//! One listener for REST and the gateway. Each accepted connection gets a task that
//! reads its request head once (bounded by [`Limits::header_timeout`]): a WebSocket
//! upgrade goes to the gateway with the socket itself; anything else goes to axum
//! through a channel-backed [`axum::serve::Listener`], wrapped in [`Rewind`] so hyper
//! reads the bytes already consumed first.
//!
//! Slowloris: every request head must arrive whole within `header_timeout` of its
//! first byte — the first one (read here, before routing) and every later one on
//! a keep-alive connection ([`Rewind`] watches the bytes hyper reads: after a
//! response is written, the next byte read starts a head, and `\r\n\r\n` ends
//! it; a head still incomplete at its deadline fails the read and hyper closes
//! the connection; request bodies have their own deadlines, `body_timeout.rs`). An idle keep-alive connection that has sent no byte of a next
//! request is not timed; a connection upgraded to a WebSocket inside HTTP (a
//! `101` response) is no longer watched.
//!
//! Per-IP connection cap: at most [`Limits::max_conns_per_ip`] open connections
//! (REST and gateway alike) per client IP; a connection over the cap gets a 429
//! with Discord's rate-limit body and `Connection: close` at once, without its
//! request being read, and is closed. The count lives in one map of IPs with open
//! connections, each connection holding a slot that frees itself on drop.
//!
//! Shutdown: stop accepting, tell the gateway (op 7 + close to every session), and
//! let axum finish in-flight HTTP requests; returns when both are done.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use guildhall_gateway::{Gateway, Sniffed, sniff};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Limits on connections, from the server's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Time a request head has, from its first byte (a new connection: from accept).
    pub header_timeout: Duration,
    /// Open connections allowed per client IP (0 = no cap).
    pub max_conns_per_ip: u32,
    /// Deadlines for request bodies (`body_timeout.rs`).
    pub body: crate::body_timeout::BodyLimits,
}

/// Open connections per client IP.
struct ConnCounts {
    max: u32,
    open: std::sync::Mutex<HashMap<IpAddr, u32>>,
}

/// One open connection's place in [`ConnCounts`]; freed on drop.
pub(crate) struct ConnSlot {
    counts: Arc<ConnCounts>,
    ip: IpAddr,
}

impl ConnCounts {
    /// A slot for a new connection from `ip`, or `None` over the cap.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ConnSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ConnSlot { counts: self.clone(), ip })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The body a connection over the per-IP cap is told before it is closed.
const TOO_MANY_CONNECTIONS: &str =
    r#"{"message": "Too many connections from this address.", "retry_after": 1.0, "global": false, "code": 0}"#;

/// Answers a refused connection and closes it: the write half first, then the
/// read half once the client is done sending (bounded), so the 429 is not lost
/// to a reset caused by unread request bytes.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let res = format!(
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{TOO_MANY_CONNECTIONS}",
            TOO_MANY_CONNECTIONS.len()
        );
        stream.write_all(res.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 512];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}
/// Longest wait for gateway connections to close at shutdown.
const GATEWAY_DRAIN: Duration = Duration::from_secs(10);

/// Serves REST and the gateway on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    gateway: Arc<Gateway>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (conn_tx, conn_rx) = mpsc::channel(1024);
    let accept = tokio::spawn(accept_loop(listener, gateway.clone(), limits, conn_tx, stop_rx.clone()));
    let mut http_stop = stop_rx;
    // An upgrade can also arrive later on a keep-alive connection that began as
    // REST (discord.py does this): hyper upgrades it and the gateway takes over.
    let app = app.layer(axum::middleware::from_fn_with_state(gateway.clone(), upgrade_in_http));
    // Request bodies must keep arriving (slowloris on the body).
    let app = app.layer(axum::middleware::from_fn_with_state(limits.body, crate::body_timeout::limit_body));
    // ConnectInfo carries the peer address to handlers (per-IP rate limits).
    let app = app.into_make_service_with_connect_info::<guildhall_api::PeerAddr>();
    let http =
        axum::serve(guildhall_api::ChannelListener { rx: conn_rx, addr }, app).with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        });
    let stopper = async move {
        shutdown.await;
        stop_tx.send_replace(true);
        gateway.shutdown(GATEWAY_DRAIN).await;
    };
    let (served, ()) = tokio::join!(http.into_future(), stopper);
    let _ = accept.await;
    served
}

async fn accept_loop(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    limits: Limits,
    conns: mpsc::Sender<(Rewind, SocketAddr)>,
    mut stop: watch::Receiver<bool>,
) {
    let counts = Arc::new(ConnCounts { max: limits.max_conns_per_ip, open: Default::default() });
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Set once, to true, at shutdown (or the sender is gone): stop either way.
            _ = stop.changed() => break,
        };
        match counts.acquire(peer.ip()) {
            Some(slot) => tokio::spawn(route(stream, peer, slot, gateway.clone(), limits, conns.clone())),
            None => tokio::spawn(refuse(stream)),
        };
    }
}

/// Reads the request head and hands the connection to the gateway or to axum.
async fn route(
    mut stream: TcpStream,
    peer: SocketAddr,
    slot: ConnSlot,
    gateway: Arc<Gateway>,
    limits: Limits,
    conns: mpsc::Sender<(Rewind, SocketAddr)>,
) {
    let _ = stream.set_nodelay(true);
    let sniffed = match tokio::time::timeout(limits.header_timeout, sniff(&mut stream)).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    match sniffed {
        Sniffed::Closed => {}
        Sniffed::Http(prefix) => {
            let head = HeadWatch::new(limits.header_timeout);
            let rewind = Rewind { prefix, pos: 0, inner: stream, head, _slot: slot };
            let _ = conns.send((rewind, peer)).await;
        }
        Sniffed::WebSocket(upgrade) => {
            // The connection task keeps the slot until the connection ends.
            gateway.serve(stream, upgrade, Box::new(slot)).await;
        }
    }
}

/// A TCP stream whose first reads return bytes that were already read from it,
/// and whose request heads after the first must arrive within the header timeout.
pub(crate) struct Rewind {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStream,
    head: HeadWatch,
    /// Counts this connection against its IP's cap while it lives (also after an
    /// upgrade inside HTTP, as hyper keeps this stream inside the upgraded one).
    _slot: ConnSlot,
}

/// Where the connection is in the request/response cycle, for the head deadline.
struct HeadWatch {
    timeout: Duration,
    /// A response has begun since the last head ended: the next byte read starts a head.
    responded: bool,
    /// Bytes of a head have arrived but not yet its blank line.
    in_head: bool,
    /// How much of `\r\n\r\n` the last bytes matched.
    matched: u8,
    /// The connection became a WebSocket (or another protocol): stop watching.
    upgraded: bool,
    /// The deadline of the current head; allocated at the first later head.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HeadWatch {
    fn new(timeout: Duration) -> HeadWatch {
        // The first head was read whole by `route`; its response comes next.
        HeadWatch { timeout, responded: false, in_head: false, matched: 0, upgraded: false, deadline: None }
    }

    /// Bytes were read from the client.
    fn on_read(&mut self, bytes: &[u8]) {
        if self.upgraded || bytes.is_empty() || !(self.responded || self.in_head) {
            return;
        }
        if !self.in_head {
            // A method starts a head; anything else is the rest of a body the
            // handler answered without reading (hyper drains it).
            if !bytes[0].is_ascii_uppercase() {
                return;
            }
            self.in_head = true;
            self.responded = false;
            self.matched = 0;
            let at = tokio::time::Instant::now() + self.timeout;
            match &mut self.deadline {
                Some(d) => d.as_mut().reset(at),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        for &b in bytes {
            self.matched = match (self.matched, b) {
                (0 | 2, b'\r') => self.matched + 1,
                (1 | 3, b'\n') => self.matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.matched == 4 {
                self.in_head = false;
                return;
            }
        }
    }

    /// A response is being written; `first` is the start of this write.
    fn on_write(&mut self, first: &[u8]) {
        if self.upgraded || self.responded || first.is_empty() {
            return;
        }
        self.responded = true;
        if first.starts_with(b"HTTP/1.1 101") || first.starts_with(b"HTTP/1.0 101") {
            self.upgraded = true;
            self.in_head = false;
        }
    }

    /// `Ready` once the current head has outlived its deadline.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.deadline {
            Some(d) if self.in_head && !self.upgraded => d.as_mut().poll(cx),
            _ => Poll::Pending,
        }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.head.poll_expired(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head too slow")));
        }
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.head.on_read(&buf.filled()[before..]);
        }
        r
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.head.on_write(buf);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            self.head.on_write(first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Hands a WebSocket upgrade that arrived inside an HTTP connection to the gateway;
/// every other request goes on to the REST routes.
async fn upgrade_in_http(
    axum::extract::State(gateway): axum::extract::State<Arc<Gateway>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;

    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let headers = req.headers();
    let up = guildhall_gateway::handshake::parse_upgrade(req.method().as_str(), &target, |name| {
        headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
    });
    let Some(up) = up else {
        return next.run(req).await;
    };
    if let Some(reason) = up.reject {
        let mut res =
            (StatusCode::BAD_REQUEST, serde_json::json!({ "message": reason, "code": 0 }).to_string()).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return res;
    }
    let accept = guildhall_gateway::handshake::accept_key(&up.key);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            gateway.serve_upgraded(hyper_util::rt::TokioIo::new(upgraded), up).await;
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}
