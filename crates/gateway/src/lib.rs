//! The WebSocket gateway: the async shell around the sans-IO session machine in
//! `guildhall-proto`. It owns the upgrade handshake ([`handshake`]), one task per
//! connection ([`conn`]), the registry that keeps sessions resumable after their
//! socket is gone ([`registry`]), and the gateway-side handling of op 3 (presence)
//! and op 8 (request guild members, [`members`]).
//!
//! The server crate owns the listener: it reads each connection's request head
//! with [`handshake::sniff`] and hands WebSocket upgrades to [`Gateway::serve`].
//!
//! # Run loop of a connection task ([`conn`])
//! 1. Write `101 Switching Protocols` (the server already read the request head),
//!    wrap the socket in a `WebSocketStream` with small buffers, create the proto
//!    `Session` and the transport `Encoder`, and send HELLO. A bad `v` or a
//!    non-JSON `encoding` is closed right after HELLO with 4012.
//! 2. Check the queue-overflow flag (a full queue always wakes the task through the
//!    queue), then wait for the first of: shutdown, a RESUME on another socket taking
//!    this session over, an inbound WebSocket message, the next item of the runtime's
//!    outbound queue (once identified), the heartbeat deadline
//!    (`Session::poll_timeout`), and the compressor idle timer. After a delivery the
//!    queue is polled before the socket (an event's wake-up skips the read path);
//!    after 8 deliveries in a row the socket goes first again.
//! 3. Inbound message → `Session::handle_frame`: a close code closes the socket;
//!    op 1 is answered with op 11; IDENTIFY checks the token (4004), privileged
//!    intents (4014) and, for bots, the session start limits in
//!    `guildhall_runtime::session_starts` (op 9 `false`, the client may retry on the
//!    same socket), registers the session, writes READY, then
//!    `Runtime::attach_session` makes every guild actor queue GUILD_CREATE; RESUME
//!    takes the session's [`registry::Core`] from its current owner, replays what
//!    the client missed and sends RESUMED (or op 9 `false` / 4007); op 3 updates the
//!    presence; op 8 runs a member query on the guild actor; op 4/31/43 are ignored.
//! 4. Outbound item → drain everything else ready in the queue (up to
//!    `max_batch`), number each dispatch (`Session::dispatch`), encode it (plain
//!    frames stay as head + shared body + `}`), and write the whole batch with
//!    vectored writes straight to the socket (`batch`): one `writev` for many frames,
//!    no per-session copy of a plain body. The write races the write timeout and the
//!    overflow flag, so a client that stopped reading cannot hold the task.
//! 5. Overflow (a push found the queue full) → the session missed an event: drop
//!    the socket and end the session, so its RESUME gets op 9 `false`.
//! 6. Heartbeat deadline passed → close 4009 (the session stays resumable).
//!    Compressor idle for `compressor_idle` since the last dispatch (heartbeats do
//!    not count) → `Encoder::release` (a zstd-stream context; zlib-stream holds no
//!    per-session compressor: bodies are deflated once per event and spliced, see
//!    `guildhall_proto::compress`). Control frames (HELLO, op 11, 7, 9) go out as
//!    stored deflate blocks / raw zstd blocks, so a connect allocates no compressor.
//! 7. End: a client close with 1000/1001, an overflow, an invalidation or shutdown
//!    ends the session (`Runtime::detach_session`). A takeover hands the session to
//!    the resuming socket. Any other end (dropped TCP, another close code, our own
//!    resumable close) drops the socket and keeps the session in this task for
//!    `resume_window`, pushing queued events into the replay outbox, until a RESUME
//!    takes it or the window ends.
//!
//! Shutdown ([`Gateway::shutdown`]): every live connection gets op 7 RECONNECT and a
//! 4000 close; the function returns once every connection task has ended.

mod batch;
pub mod conn;
pub mod handshake;
pub mod members;
pub mod presence;
pub mod registry;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use guildhall_proto::{EncoderConfig, SessionConfig};
use guildhall_runtime::Runtime;
use guildhall_runtime::tokens::Tokens;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

pub use handshake::{Sniffed, Upgrade, sniff};
pub use registry::Registry;
pub use stats::{GatewayStats, StatsSnapshot};

/// Gateway tunables. `Default` is what `guildhall serve` uses.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub session: SessionConfig,
    pub encoder: EncoderConfig,
    /// Capacity of each session's outbound queue; a full queue ends the session.
    pub queue_capacity: usize,
    /// How long a session whose socket dropped stays resumable.
    pub resume_window: Duration,
    /// Release a zstd-stream context after this long without a dispatch.
    pub compressor_idle: Duration,
    /// Longest time one batched write may take before the connection is dropped.
    pub write_timeout: Duration,
    /// tungstenite's read buffer (allocated per connection up front, kept for the
    /// connection's life). Small: client payloads are a few hundred bytes (IDENTIFY, op 1)
    /// and a bigger frame makes tungstenite reserve what it needs.
    pub read_buffer_size: usize,
    /// Frames are buffered up to this many bytes before a write; a flush writes the
    /// rest. Lets a batch go out in one syscall.
    pub write_buffer_size: usize,
    /// Largest inbound WebSocket message (proto closes with 4002 above 4096 bytes;
    /// this bounds what tungstenite buffers before that check).
    pub max_message_size: usize,
    /// Most dispatches written per flush.
    pub max_batch: usize,
    /// Time a client has to finish the WebSocket closing handshake.
    pub close_timeout: Duration,
    /// `SO_SNDBUF` for gateway sockets; `None` keeps the kernel's autotuning. A fixed
    /// small buffer also bounds a stalled client's kernel memory, but it caps data
    /// in flight too, and at 64 KiB one READY in 20 over loopback (64 KiB segments)
    /// took 200 ms instead of 2-10 ms. `notsent_lowat` bounds only what is not yet
    /// sent.
    pub send_buffer_size: Option<usize>,
    /// `TCP_NOTSENT_LOWAT` (Linux): unsent bytes a socket may hold before it stops
    /// taking writes. A client that stopped reading then holds about this much of
    /// kernel memory and shows as stalled after as many bytes, instead of after
    /// the up to 4 MiB an autotuned buffer grows to; a reading client's data in
    /// flight is not limited. Until a stalled socket is full the server writes to
    /// it like to any reader, so the smaller this is, the less a thousand clients
    /// that stop at once cost the others: 32 KiB met the stalled bench's target
    /// where 128 KiB did not (BENCHMARKS.md, stalled).
    pub notsent_lowat: Option<u32>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            session: SessionConfig::default(),
            encoder: EncoderConfig::default(),
            queue_capacity: 2048,
            resume_window: Duration::from_secs(120),
            compressor_idle: Duration::from_secs(45),
            write_timeout: Duration::from_secs(15),
            read_buffer_size: 512,
            write_buffer_size: 16 * 1024,
            max_message_size: 16 * 1024,
            max_batch: 256,
            close_timeout: Duration::from_secs(2),
            send_buffer_size: None,
            notsent_lowat: Some(32 * 1024),
        }
    }
}

/// The gateway of one node. Shared by every connection task.
pub struct Gateway {
    pub rt: Runtime,
    pub tokens: Arc<Tokens>,
    pub config: GatewayConfig,
    pub registry: Registry,
    pub stats: GatewayStats,
    shutdown: watch::Sender<bool>,
    /// Every connection task holds a clone; shutdown waits until all are dropped.
    task_guard: std::sync::Mutex<Option<mpsc::Sender<()>>>,
    drained: tokio::sync::Mutex<Option<mpsc::Receiver<()>>>,
}

impl Gateway {
    pub fn new(rt: Runtime, tokens: Arc<Tokens>, config: GatewayConfig) -> Arc<Gateway> {
        let (guard_tx, guard_rx) = mpsc::channel(1);
        Arc::new(Gateway {
            rt,
            tokens,
            config,
            registry: Registry::default(),
            stats: GatewayStats::default(),
            shutdown: watch::Sender::new(false),
            task_guard: std::sync::Mutex::new(Some(guard_tx)),
            drained: tokio::sync::Mutex::new(Some(guard_rx)),
        })
    }

    /// Serves one upgraded connection. `stream` is positioned right after the request head;
    /// `upgrade.leftover` holds any bytes read past it.
    ///
    /// Returns once the connection is established (or refused): the connection
    /// then runs in a task of its own, which keeps `hold` (e.g. the listener's
    /// per-IP connection slot) until its socket closes.
    pub async fn serve(self: Arc<Self>, stream: TcpStream, upgrade: Upgrade, hold: Box<dyn Send>) {
        let Some(guard) = self.task_guard.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return; // shutting down: drop the socket
        };
        conn::run(self, stream, upgrade, conn::Hold { drain: guard, slot: Some(hold) }).await;
    }

    /// Serves an upgrade that arrived on an HTTP keep-alive connection: the HTTP
    /// server validated it with [`handshake::parse_upgrade`], answered `101` itself
    /// and hands over the upgraded byte stream.
    pub async fn serve_upgraded<S>(self: Arc<Self>, stream: S, upgrade: Upgrade)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Some(guard) = self.task_guard.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return; // shutting down: drop the connection
        };
        conn::start(self, Box::new(stream), upgrade, conn::Hold { drain: guard, slot: None }).await;
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Sends op 7 + close 4000 to every live connection, ends every kept session,
    /// and waits (at most `limit`) for every connection task to finish.
    pub async fn shutdown(&self, limit: Duration) {
        self.shutdown.send_replace(true);
        self.task_guard.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut rx) = self.drained.lock().await.take() {
            let _ = tokio::time::timeout(limit, async { while rx.recv().await.is_some() {} }).await;
        }
    }
}
