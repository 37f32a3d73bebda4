//! One gateway connection: the task that owns the socket, the proto `Session` and
//! the transport encoder, and (once identified) the session's runtime queue. The
//! numbered run loop is in the crate docs; the steps are marked below.

use std::future::{Future, pending, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use guildhall_domain::entity::{Application, User};
use guildhall_domain::wire::CurrentUserView;
use guildhall_model::Intents;
use guildhall_model::gateway::CloseCode;
use guildhall_proto::frame::{self, DispatchFrame};
use guildhall_proto::{Command, Compression, Encoder, Identify, Resume, ResumeError, Session, ZstdRelease};
use guildhall_runtime::SessionHandle;
use guildhall_runtime::event::{Outbound, to_bytes};
use guildhall_runtime::session::{SessionReceiver, SessionShared};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::batch::{self, OutMsg};
use crate::handshake::{self, Upgrade};
use crate::registry::{self, Core, Kick};
use crate::stats::GatewayStats;
use crate::{Gateway, members, presence};

/// The byte stream under a session: a plain TCP socket, or an HTTP connection
/// that hyper upgraded (an upgrade on a keep-alive connection).
pub(crate) trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

/// Consecutive deliveries after which the socket is polled before the queue again.
const INBOUND_EVERY: u32 = 8;

/// How long a RESUME waits for the session's previous owner to hand it over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the socket part of a connection ended.
enum End {
    /// The client sent a close frame (with this code, if any).
    ClientClosed(Option<u16>),
    /// We closed the socket with this code.
    ServerClosed(CloseCode),
    /// EOF, a socket error, or a write that timed out.
    Dropped,
    /// The session's queue overflowed: it missed an event.
    Overflow,
    /// The runtime invalidated the session.
    Invalidated,
    /// A RESUME on another socket asked for the session.
    Kicked(Kick),
    Shutdown,
}

/// The identified part of a connection.
struct Live {
    handle: SessionHandle,
    rx: SessionReceiver,
    shared: Arc<SessionShared>,
    session_id: Box<str>,
    generation: u64,
    kick: Option<oneshot::Receiver<Kick>>,
    bot: bool,
}

struct Conn {
    gw: Arc<Gateway>,
    ws: Ws,
    session: Session,
    encoder: Encoder,
    live: Option<Live>,
}

enum Wake {
    Shutdown,
    Kick(Result<Kick, oneshot::error::RecvError>),
    Inbound(Option<Result<Message, WsError>>),
    Outbound(Option<Outbound>),
    Heartbeat,
    Idle,
}

/// What a connection keeps alive: the gateway's drain guard, held until the session is
/// over (a session kept for RESUME included, so shutdown waits for it to end), and the
/// listener's per-IP slot, if any, held only while the socket is open.
pub(crate) struct Hold {
    pub(crate) drain: mpsc::Sender<()>,
    pub(crate) slot: Option<Box<dyn Send>>,
}

pub(crate) async fn run(gw: Arc<Gateway>, mut stream: TcpStream, up: Upgrade, hold: Hold) {
    if let Some(reason) = up.reject {
        let _ = handshake::reject(&mut stream, reason).await;
        return;
    }
    // Step 1.
    if let Some(size) = gw.config.send_buffer_size {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(lowat) = gw.config.notsent_lowat {
        let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(lowat);
    }
    if handshake::accept(&mut stream, &up.key).await.is_err() {
        return;
    }
    start(gw, Box::new(stream), up, hold).await;
}

/// Starts a connection whose `101 Switching Protocols` has already been sent: its
/// long-lived part runs in a task of its own, whose future holds the [`Conn`] and
/// the run loop and nothing of the accept path (the request-head reading and the
/// handshake states of the caller's future would otherwise stay in every idle
/// connection's task, ~1 KB).
pub(crate) async fn start(gw: Arc<Gateway>, stream: Box<dyn Io>, up: Upgrade, hold: Hold) {
    let cfg = &gw.config;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(cfg.read_buffer_size)
        .write_buffer_size(cfg.write_buffer_size)
        .max_message_size(Some(cfg.max_message_size))
        .max_frame_size(Some(cfg.max_message_size));
    let ws = WebSocketStream::from_partially_read(stream, up.leftover, Role::Server, Some(ws_config)).await;
    GatewayStats::add(&gw.stats.connections_open, 1);
    let conn = Conn {
        session: guildhall_proto::Session::new(cfg.session, Instant::now()),
        encoder: Encoder::new(up.compression, cfg.encoder),
        gw: gw.clone(),
        ws,
        live: None,
    };
    let refuse = if up.bad_encoding {
        Some("Only encoding=json is supported.")
    } else if up.bad_version {
        Some(CloseCode::InvalidApiVersion.reason())
    } else {
        None
    };
    tokio::spawn(conn.run_to_end(refuse, hold));
}

/// The WebSocket message of one dispatch: plain frames keep their parts (the shared
/// body is not copied), compressed ones are encoded.
fn out_dispatch(encoder: &mut Encoder, frame: DispatchFrame) -> OutMsg {
    match encoder.compression() {
        Compression::None => OutMsg::text(frame),
        _ => OutMsg::from_ws(encoder.encode_dispatch(&frame)),
    }
}

/// Runs a write, giving up after `limit`, as soon as the session overflows, or when a
/// RESUME elsewhere asks for the session (a zombie socket's full send buffer must
/// not hold the session hostage).
async fn guarded(
    limit: Duration,
    shared: Option<&SessionShared>,
    kick: Option<&mut Option<oneshot::Receiver<Kick>>>,
    write: impl Future<Output = Result<(), WsError>>,
) -> Result<(), End> {
    let kicked = async {
        match kick {
            Some(slot) => match slot.as_mut() {
                Some(k) => match k.await {
                    Ok(reply) => reply,
                    Err(_) => {
                        // Completed receivers must not be polled again.
                        *slot = None;
                        pending().await
                    }
                },
                None => pending().await,
            },
            None => pending().await,
        }
    };
    let overflow = async {
        match shared {
            Some(s) => loop {
                if s.overflowed.load(Ordering::Acquire) {
                    break;
                }
                s.notify.notified().await;
            },
            None => pending().await,
        }
    };
    tokio::select! {
        // The write first: when it completes at once (the usual case), the guards are
        // never polled and register nothing.
        biased;
        r = timeout(limit, write) => match r {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Dropped),
        },
        () = overflow => Err(End::Overflow),
        reply = kicked => Err(End::Kicked(reply)),
    }
}

impl Conn {
    /// Steps 2-7: serves the connection (or refuses it with 4012 after HELLO),
    /// then ends or keeps the session.
    ///
    /// An `async` block rather than an `async fn`: an `async fn` moves its
    /// arguments into locals, and the future would hold the 680-byte `Conn`
    /// twice (rust-lang/rust#62958); the block uses its capture in place.
    fn run_to_end(self, refuse: Option<&'static str>, hold: Hold) -> impl Future<Output = ()> + Send {
        let mut conn = self;
        async move {
            let end = match refuse {
                Some(reason) => {
                    let hello = conn.session.hello_frame();
                    match Box::pin(conn.send_now(hello)).await {
                        Ok(()) => Box::pin(conn.close_with(CloseCode::InvalidApiVersion, reason, true)).await,
                        Err(end) => end,
                    }
                }
                None => conn.serve().await,
            };
            // Boxed (as are the rare steps in `serve`): the task's own state stays
            // small while the connection idles.
            let kept = Box::pin(conn.finish(end)).await;
            let Hold { drain, slot } = hold;
            drop(slot);
            // A session kept for RESUME waits in a task of its own: this one, sized for a
            // live connection (~1.3 KB), ends with its socket.
            if let Some(kept) = kept {
                tokio::spawn(async move {
                    keep(kept).await;
                    drop(drain);
                });
            }
        }
    }

    fn idle_release_applies(&self) -> bool {
        self.encoder.is_holding_state()
            && !(self.encoder.compression() == Compression::ZstdStream
                && self.gw.config.encoder.zstd_release == ZstdRelease::Keep)
    }

    /// Encodes and writes one control frame (HELLO, ACK, op 7, op 9).
    async fn send_now(&mut self, frame: Bytes) -> Result<(), End> {
        let msg = OutMsg::from_ws(self.encoder.encode_control(frame));
        self.write(vec![msg]).await
    }

    /// Sends a close frame; with `wait`, reads until the client answers (bounded).
    async fn close_with(&mut self, code: CloseCode, reason: &str, wait: bool) -> End {
        let frame = CloseFrame { code: WsCloseCode::from(code.code()), reason: reason.into() };
        let ws = &mut self.ws;
        let _ = timeout(self.gw.config.close_timeout, async {
            if ws.send(Message::Close(Some(frame))).await.is_ok() && wait {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
        End::ServerClosed(code)
    }

    async fn close(&mut self, code: CloseCode) -> End {
        self.close_with(code, code.reason(), true).await
    }

    /// Steps 2-6.
    async fn serve(&mut self) -> End {
        let hello = self.session.hello_frame();
        // Boxed like the other writes: a write's state (its `writev` slices, the
        // guards) must not become part of the idle task's own size.
        if let Err(end) = Box::pin(self.send_now(hello)).await {
            return end;
        }
        let mut shutdown = self.gw.shutdown_signal();
        if *shutdown.borrow_and_update() {
            return Box::pin(self.shutdown()).await;
        }
        // Created once, not per wake-up: each new `changed()` would register and
        // unregister a waiter on the shutdown channel.
        let shutdown_changed = shutdown.changed();
        let heartbeat = sleep_until(self.session.poll_timeout().into());
        tokio::pin!(shutdown_changed, heartbeat);
        // The compressor's idle timer exists only once a compressor is in use (a
        // plain-JSON session never has one), so it is not part of every task.
        let mut idle: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut idle_armed = false;
        let mut outbound_streak = 0u32;
        loop {
            // A full queue wakes the task through `rx` (it holds `queue_capacity`
            // items), so the overflow flag needs no wait of its own here.
            if let Some(live) = &self.live
                && live.shared.overflowed.load(Ordering::Acquire)
            {
                return Box::pin(self.overflowed()).await;
            }
            // Step 2.
            // Polled by hand rather than with `select!`: after a delivery the queue is
            // polled before the socket, so a wake-up for an event does not also go
            // through tungstenite's read path (waker proxies, readiness check). The
            // socket's read waker stays registered meanwhile, and it is polled first
            // again after `INBOUND_EVERY` consecutive deliveries, so a flood of events
            // cannot starve heartbeats.
            let inbound_first = outbound_streak >= INBOUND_EVERY;
            let wake = {
                let (mut rx, mut kick) = match &mut self.live {
                    Some(l) => (Some(&mut l.rx), l.kick.as_mut()),
                    None => (None, None),
                };
                let ws = &mut self.ws;
                poll_fn(|cx| {
                    if shutdown_changed.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Shutdown);
                    }
                    if let Some(k) = kick.as_deref_mut()
                        && let Poll::Ready(r) = Pin::new(k).poll(cx)
                    {
                        return Poll::Ready(Wake::Kick(r));
                    }
                    if inbound_first && let Poll::Ready(m) = ws.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Inbound(m));
                    }
                    if let Some(rx) = rx.as_deref_mut()
                        && let Poll::Ready(item) = rx.poll_recv(cx)
                    {
                        return Poll::Ready(Wake::Outbound(item));
                    }
                    if !inbound_first && let Poll::Ready(m) = ws.poll_next_unpin(cx) {
                        return Poll::Ready(Wake::Inbound(m));
                    }
                    if heartbeat.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Heartbeat);
                    }
                    if idle_armed
                        && let Some(i) = idle.as_mut()
                        && i.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Wake::Idle);
                    }
                    Poll::Pending
                })
                .await
            };
            outbound_streak = match wake {
                Wake::Outbound(_) if !inbound_first => outbound_streak + 1,
                _ => 0,
            };
            // Only dispatches (and the first use of a compressor) restart the idle
            // timer: a heartbeat every `heartbeat_interval` must not keep an otherwise
            // idle session's compressor alive; after release its ACKs need none.
            let was_holding = self.encoder.is_holding_state();
            let dispatching = matches!(wake, Wake::Outbound(Some(_)));
            let result = match wake {
                // The flag only ever turns true (or the gateway is gone): shut down.
                Wake::Shutdown => return Box::pin(self.shutdown()).await,
                Wake::Kick(Ok(reply)) => {
                    Box::pin(self.close_with(CloseCode::UnknownError, "Session resumed on another connection.", false))
                        .await;
                    return End::Kicked(reply);
                }
                Wake::Kick(Err(_)) => {
                    if let Some(l) = &mut self.live {
                        l.kick = None;
                    }
                    Ok(())
                }
                // Step 3.
                Wake::Inbound(None) => Err(End::Dropped),
                Wake::Inbound(Some(Err(WsError::Capacity(_)))) => {
                    Err(Box::pin(self.close(CloseCode::DecodeError)).await)
                }
                Wake::Inbound(Some(Err(_))) => Err(End::Dropped),
                Wake::Inbound(Some(Ok(msg))) => {
                    let r = match msg {
                        Message::Text(t) => Box::pin(self.inbound(t.as_bytes())).await,
                        Message::Binary(b) => Box::pin(self.inbound(&b)).await,
                        Message::Close(frame) => Err(End::ClientClosed(frame.map(|f| u16::from(f.code)))),
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
                    };
                    heartbeat.as_mut().reset(self.session.poll_timeout().into());
                    r
                }
                // Step 4.
                Wake::Outbound(None) => Err(End::Invalidated),
                Wake::Outbound(Some(item)) => Box::pin(self.deliver(item)).await,
                // Step 5.
                Wake::Heartbeat => match self.session.handle_timeout(Instant::now()) {
                    Err(code) => Err(Box::pin(self.close(code)).await),
                    Ok(()) => {
                        heartbeat.as_mut().reset(self.session.poll_timeout().into());
                        Ok(())
                    }
                },
                // Step 6.
                Wake::Idle => {
                    self.encoder.release();
                    idle_armed = false;
                    continue;
                }
            };
            if let Err(end) = result {
                return match end {
                    End::Overflow => Box::pin(self.overflowed()).await,
                    end => end,
                };
            }
            if self.idle_release_applies() && (dispatching || !was_holding || !idle_armed) {
                let at = (Instant::now() + self.gw.config.compressor_idle).into();
                match idle.as_mut() {
                    Some(i) => i.as_mut().reset(at),
                    None => idle = Some(Box::pin(sleep_until(at))),
                }
                idle_armed = true;
            }
        }
    }

    async fn shutdown(&mut self) -> End {
        if self.send_now(Bytes::from_static(frame::RECONNECT)).await.is_ok() {
            self.close_with(CloseCode::UnknownError, "Server restarting; reconnect.", false).await;
        }
        End::Shutdown
    }

    async fn overflowed(&mut self) -> End {
        GatewayStats::add(&self.gw.stats.overflows, 1);
        // The socket may be stalled: do not wait for it.
        let _ = timeout(
            Duration::from_millis(100),
            self.close_with(CloseCode::UnknownError, "Too slow: events were dropped.", false),
        )
        .await;
        End::Overflow
    }

    async fn inbound(&mut self, payload: &[u8]) -> Result<(), End> {
        let command = match self.session.handle_frame(payload, Instant::now()) {
            Ok(c) => c,
            Err(code) => return Err(self.close(code).await),
        };
        match command {
            Command::Reply(bytes) => self.send_now(bytes).await,
            Command::Identify(identify) => self.identify(*identify).await,
            Command::Resume(resume) => self.resume(resume).await,
            Command::PresenceUpdate(update) => {
                if let Some(live) = &self.live {
                    let p = presence::from_update(live.handle.user_id, live.bot, &update);
                    self.gw.rt.update_presence(live.handle.user_id, p);
                }
                Ok(())
            }
            Command::RequestGuildMembers(req) => {
                if let Some(live) = &self.live {
                    members::request(&self.gw.rt, &live.handle, req).await;
                }
                Ok(())
            }
            // Voice, soundboard and channel info are not served: accepted and ignored.
            Command::VoiceStateUpdate(_) | Command::RequestSoundboardSounds(_) | Command::RequestChannelInfo(_) => {
                Ok(())
            }
        }
    }

    async fn identify(&mut self, id: Identify) -> Result<(), End> {
        let gw = self.gw.clone();
        let token = id.token.strip_prefix("Bot ").unwrap_or(&id.token);
        let Some(user) = gw.tokens.verify(token, &gw.rt.directory) else {
            return Err(self.close(CloseCode::AuthenticationFailed).await);
        };
        let app = if user.bot { gw.rt.directory.application_of_bot(user.id) } else { None };
        if user.bot {
            let allowed = app.as_ref().map_or(Intents(0), |a| a.allowed_privileged_intents());
            let asked = Intents(id.intents.0 & Intents::PRIVILEGED.0);
            if !allowed.contains(asked) {
                return Err(self.close(CloseCode::DisallowedIntents).await);
            }
            // Session start limits (bots only, as Discord's `session_start_limit`):
            // over a limit, op 9 `d:false`; the client may IDENTIFY again later.
            if gw.rt.session_starts.try_start(user.id, id.shard, Instant::now()).is_err() {
                self.session.identify_rejected();
                return self.send_now(Bytes::from_static(frame::INVALID_SESSION)).await;
            }
        }
        let session_id = registry::new_session_id();
        let (handle, rx, shared) = SessionHandle::new(
            gw.rt.ids.next(),
            user.id,
            id.intents,
            id.shard,
            id.large_threshold,
            gw.config.queue_capacity,
        );
        self.session.identified(session_id.as_str());
        let ready = ready_body(&gw, &user, app.as_deref(), &handle, &session_id);
        let frame = self.session.dispatch("READY", &ready);
        // READY is never replayed (a RESUME needs the session_id READY carries), so the
        // idle session does not keep its body.
        self.session.forget_replay_through(frame.seq());
        let msg = out_dispatch(&mut self.encoder, frame);
        let (generation, kick) = gw.registry.insert(&session_id, user.id);
        GatewayStats::add(&gw.stats.sessions_open, 1);
        GatewayStats::add(&gw.stats.identifies, 1);
        self.live = Some(Live {
            handle: handle.clone(),
            rx,
            shared,
            session_id: session_id.into(),
            generation,
            kick: Some(kick),
            bot: user.bot,
        });
        self.write(vec![msg]).await?;
        let presence = presence::from_identify(user.id, user.bot, id.presence.as_deref());
        gw.rt.attach_session(handle, presence).await;
        Ok(())
    }

    async fn resume(&mut self, r: Resume) -> Result<(), End> {
        let gw = self.gw.clone();
        let token = r.token.strip_prefix("Bot ").unwrap_or(&r.token);
        let Some(user) = gw.tokens.verify(token, &gw.rt.directory) else {
            return Err(self.close(CloseCode::AuthenticationFailed).await);
        };
        let core = match gw.registry.take(&r.session_id, user.id) {
            Ok(kick) => {
                let (tx, rx) = oneshot::channel();
                if kick.send(tx).is_ok() { timeout(HANDOVER_TIMEOUT, rx).await.ok().and_then(Result::ok) } else { None }
            }
            Err(_) => None,
        };
        let Some(core) = core else {
            self.session.resume_rejected();
            return self.send_now(Bytes::from_static(frame::INVALID_SESSION)).await;
        };
        if core.overflowed() {
            gw.end_session(&core.handle, None);
            self.session.resume_rejected();
            return self.send_now(Bytes::from_static(frame::INVALID_SESSION)).await;
        }
        let Core { handle, rx, shared, outbox } = core;
        let mut msgs = Vec::new();
        match self.session.resume(outbox, r.seq) {
            Ok(replay) => {
                for f in replay {
                    msgs.push(out_dispatch(&mut self.encoder, f));
                }
            }
            Err(ResumeError::SeqAhead { .. }) => {
                gw.end_session(&handle, None);
                return Err(self.close(CloseCode::InvalidSeq).await);
            }
            Err(ResumeError::Expired { .. } | ResumeError::NoSession) => {
                gw.end_session(&handle, None);
                return self.send_now(Bytes::from_static(frame::INVALID_SESSION)).await;
            }
        }
        GatewayStats::add(&gw.stats.dispatches_delivered, msgs.len() as u64);
        let resumed = self.session.resumed_frame();
        msgs.push(out_dispatch(&mut self.encoder, resumed));
        let (generation, kick) = gw.registry.insert(&r.session_id, user.id);
        GatewayStats::add(&gw.stats.resumes, 1);
        self.live = Some(Live {
            handle,
            rx,
            shared,
            session_id: r.session_id.into(),
            generation,
            kick: Some(kick),
            bot: user.bot,
        });
        self.write(msgs).await
    }

    /// Writes `msgs` with vectored writes straight to the socket ([`batch`]), guarded
    /// like every write. tungstenite itself only ever writes pongs and close frames, so
    /// its write buffer stays unallocated.
    async fn write(&mut self, msgs: Vec<OutMsg>) -> Result<(), End> {
        let bytes: usize = msgs.iter().map(OutMsg::len).sum();
        GatewayStats::add(&self.gw.stats.bytes_written, bytes as u64);
        let ws = &mut self.ws;
        let (shared, kick) = match &mut self.live {
            Some(l) => (Some(&*l.shared), Some(&mut l.kick)),
            None => (None, None),
        };
        let work = async {
            // Anything tungstenite still holds (a queued pong) goes first, so these
            // frames never interleave with a partly written one.
            ws.flush().await?;
            batch::write_batch(ws.get_mut(), &msgs).await.map_err(WsError::Io)
        };
        // Most writes complete at once: try once before arming the guards (a timer,
        // a notify waiter), which only a full socket needs.
        let mut work = pin!(work);
        if let Poll::Ready(r) = poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
            return r.map_err(|_| End::Dropped);
        }
        guarded(self.gw.config.write_timeout, shared, kick, work).await
    }

    /// Step 4: writes `first` and everything else already queued (up to
    /// `max_batch`) with vectored writes straight to the socket (see [`batch`]): plain
    /// frames go out as their parts, so the shared body is never copied per session.
    async fn deliver(&mut self, first: Outbound) -> Result<(), End> {
        let Some(live) = self.live.as_mut() else { return Ok(()) };
        let max_batch = self.gw.config.max_batch.max(1);
        let mut items = Vec::new();
        items.push(first);
        if matches!(items[0], Outbound::Dispatch(..)) {
            live.rx.take_batch(&mut items, max_batch);
        }
        let mut msgs = Vec::with_capacity(items.len());
        let mut control = None;
        for it in items {
            match it {
                Outbound::Dispatch(d) => {
                    let frame = self.session.dispatch_shared(d);
                    msgs.push(out_dispatch(&mut self.encoder, frame));
                }
                other => control = Some(other),
            }
        }
        GatewayStats::add(&self.gw.stats.dispatches_delivered, msgs.len() as u64);
        self.write(msgs).await?;
        match control {
            None => Ok(()),
            Some(Outbound::Invalidate) => {
                self.send_now(Bytes::from_static(frame::INVALID_SESSION)).await?;
                self.close_with(CloseCode::UnknownError, "Session invalidated.", true).await;
                Err(End::Invalidated)
            }
            Some(_) => Err(self.close(CloseCode::UnknownError).await),
        }
    }

    /// Step 7. Returns the session if it is to be kept for RESUME.
    async fn finish(self, end: End) -> Option<Kept> {
        let Conn { gw, ws, session, encoder, live } = self;
        if let End::ServerClosed(code) = &end {
            tracing::debug!(code = code.code(), "gateway closed a connection");
        }
        drop(ws);
        drop(encoder);
        GatewayStats::sub(&gw.stats.connections_open, 1);
        let live = live?;
        let Some(outbox) = session.into_outbox() else {
            gw.end_session(&live.handle, Some((&live.session_id, live.generation)));
            return None;
        };
        let core = Core { handle: live.handle, rx: live.rx, shared: live.shared, outbox };
        match end {
            End::Kicked(reply) => {
                if let Err(core) = reply.send(core) {
                    gw.end_session(&core.handle, None);
                }
            }
            End::ClientClosed(Some(1000 | 1001)) | End::Overflow | End::Invalidated | End::Shutdown => {
                gw.end_session(&core.handle, Some((&live.session_id, live.generation)));
            }
            End::ClientClosed(_) | End::ServerClosed(_) | End::Dropped => {
                return Some(Kept {
                    gw,
                    core,
                    session_id: live.session_id,
                    generation: live.generation,
                    kick: live.kick,
                });
            }
        }
        None
    }
}

/// A session whose socket dropped, to be held for RESUME by [`keep`].
struct Kept {
    gw: Arc<Gateway>,
    core: Core,
    session_id: Box<str>,
    generation: u64,
    kick: Option<oneshot::Receiver<Kick>>,
}

/// Step 7, after a resumable drop: holds the session for `resume_window`, pushing
/// what the runtime sends into the replay outbox, until a RESUME takes it.
async fn keep(kept: Kept) {
    let Kept { gw, mut core, session_id, generation, kick } = kept;
    let owned = Some((&*session_id, generation));
    let Some(mut kick) = kick else {
        gw.end_session(&core.handle, owned);
        return;
    };
    let mut shutdown = gw.shutdown_signal();
    if *shutdown.borrow_and_update() {
        gw.end_session(&core.handle, owned);
        return;
    }
    let deadline = sleep(gw.config.resume_window);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            r = &mut kick => {
                match r {
                    Ok(reply) => {
                        if let Err(core) = reply.send(core) {
                            gw.end_session(&core.handle, None);
                        }
                    }
                    Err(_) => gw.end_session(&core.handle, owned),
                }
                return;
            }
            () = core.shared.notify.notified() => {
                if core.overflowed() {
                    GatewayStats::add(&gw.stats.overflows, 1);
                    gw.end_session(&core.handle, owned);
                    return;
                }
            }
            item = core.rx.recv() => match item {
                Some(Outbound::Dispatch(d)) => {
                    core.outbox.push_shared(d);
                }
                Some(Outbound::CloseResumable) => {}
                Some(Outbound::Invalidate) | None => {
                    gw.end_session(&core.handle, owned);
                    return;
                }
            },
            () = &mut deadline => {
                gw.end_session(&core.handle, owned);
                return;
            }
            _ = shutdown.changed() => {
                gw.end_session(&core.handle, owned);
                return;
            }
        }
    }
}

/// The READY body (protocol notes 1.6).
fn ready_body(gw: &Gateway, user: &User, app: Option<&Application>, handle: &SessionHandle, session_id: &str) -> Bytes {
    let guilds: Vec<serde_json::Value> = gw
        .rt
        .directory
        .guilds_of(user.id)
        .into_iter()
        .filter(|g| handle.wants_guild(Some(*g)))
        .map(|id| serde_json::json!({ "id": id, "unavailable": true }))
        .collect();
    let mut body = serde_json::json!({
        "v": 10,
        "user": CurrentUserView::new(user),
        "guilds": guilds,
        "session_id": session_id,
        "resume_gateway_url": gw.rt.config.gateway_url,
        "private_channels": [],
        "relationships": [],
        "user_settings": {},
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
        "session_type": "normal",
        "auth_session_id_hash": "",
    });
    if let Some((id, count)) = handle.shard {
        body["shard"] = serde_json::json!([id, count]);
    }
    if let Some(app) = app {
        body["application"] = serde_json::json!({ "id": app.id, "flags": app.flags });
    }
    to_bytes(&body)
}

impl Gateway {
    /// Ends a session for good: forgets it for RESUME (if `owned` still names
    /// this owner) and detaches it from the runtime.
    pub(crate) fn end_session(&self, handle: &SessionHandle, owned: Option<(&str, u64)>) {
        if let Some((session_id, generation)) = owned {
            self.registry.remove(session_id, generation);
        }
        self.rt.detach_session(handle.user_id, handle.id);
        GatewayStats::sub(&self.stats.sessions_open, 1);
    }
}
