//! The per-connection gateway session machine: parses each client frame's envelope,
//! enforces the payload size and send-rate limits, tracks the authentication phase and
//! heartbeat liveness, and (once identified or resumed) numbers outgoing dispatches through
//! its [`Outbox`]. It does no I/O and never reads the clock: every method that needs time
//! takes `now: Instant` from the shell.
//!
//! Close-code policy (what [`Session::handle_frame`] returns as `Err`):
//!
//! | case | code |
//! | --- | --- |
//! | more than `send_limit` frames in one `send_window` (checked first, every frame counts) | 4008 |
//! | frame longer than `max_payload_bytes` | 4002 |
//! | not JSON, not a JSON object, or `op` missing / not an unsigned integer | 4002 |
//! | `op` that is not a client op (including server-only ops 0, 7, 9, 10, 11) | 4001 |
//! | `d` that does not fit its op (see [`crate::command`]) | 4001 |
//! | op 3/4/8/31/43 before IDENTIFY or RESUME | 4003 |
//! | IDENTIFY or RESUME after a successful IDENTIFY or RESUME on this socket | 4005 |
//! | undefined intent bits | 4013 |
//! | bad `shard` array | 4010 |
//! | no heartbeat for `heartbeat_interval + heartbeat_grace` ([`Session::handle_timeout`]) | 4009 |
//!
//! Heartbeat timeout uses 4009 ("Session timed out"), Discord's own code for this case.
//! discord.py and @discordjs/ws answer 4009 by RESUMING, so the shell should keep the
//! [`Outbox`] (via [`Session::into_outbox`]) as after any other non-1000/1001 drop; a client
//! that re-identifies instead just starts a new session. Binary and text frames are parsed
//! alike: clients never compress what they send, so a binary frame must hold JSON too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use guildhall_model::gateway::{
    CloseCode, Dispatch, HEARTBEAT_INTERVAL_MS, MAX_PAYLOAD_BYTES, OpCode, SEND_LIMIT, SEND_LIMIT_WINDOW_MS,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::command::{
    Command, Identify, PresenceUpdate, RequestGuildMembers, RequestSoundboardSounds, Resume, VoiceStateUpdate,
};
use crate::frame::{self, DispatchFrame};
use crate::outbox::{Outbox, Replay, ReplayLimits, ResumeError};

/// op 43 Request Channel Info; not in `guildhall_model::gateway::OpCode`.
const OP_REQUEST_CHANNEL_INFO: u64 = 43;

/// Tunables of a session. `Default` is Discord's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Sent in HELLO.
    pub heartbeat_interval: Duration,
    /// Extra time after `heartbeat_interval` before a silent client is closed with 4009.
    /// Default 10 s: the first heartbeat may come a full interval after HELLO (jitter), and
    /// discord.py only warns about a blocked event loop after 10 s.
    pub heartbeat_grace: Duration,
    /// Longest client frame accepted.
    pub max_payload_bytes: usize,
    /// Client frames allowed per `send_window` (fixed window starting at the first frame).
    pub send_limit: u32,
    pub send_window: Duration,
    /// Bounds of the replay buffer created on IDENTIFY.
    pub replay: ReplayLimits,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat_interval: Duration::from_millis(HEARTBEAT_INTERVAL_MS),
            heartbeat_grace: Duration::from_secs(10),
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            send_limit: SEND_LIMIT,
            send_window: Duration::from_millis(SEND_LIMIT_WINDOW_MS),
            replay: ReplayLimits::default(),
        }
    }
}

/// Where the connection stands in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// HELLO sent; waiting for IDENTIFY or RESUME.
    Connected,
    /// IDENTIFY accepted; the shell is checking the token.
    Identifying,
    /// RESUME accepted; the shell is looking up the session.
    Resuming,
    /// READY sent or RESUME replayed: dispatches flow.
    Ready,
}

/// One gateway connection's protocol state. See the crate docs for the run loop.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    /// Present from `identified` / `resume` on.
    outbox: Option<Outbox>,
    /// Last client op 1, or the connection time before the first one.
    last_heartbeat: Instant,
    /// Start of the current send-limit window, and frames seen in it.
    window_start: Instant,
    window_count: u32,
    /// Set once a close code was returned; every later call returns it again.
    closed: Option<CloseCode>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    op: u64,
    #[serde(default, borrow)]
    d: Option<&'a RawValue>,
}

impl Session {
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        Session {
            config,
            phase: Phase::Connected,
            outbox: None,
            last_heartbeat: now,
            window_start: now,
            window_count: 0,
            closed: None,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The close code this session already asked for, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.closed
    }

    /// The op 10 frame to send first.
    pub fn hello_frame(&self) -> Bytes {
        // Intervals above u64::MAX ms are not meaningful; saturate.
        frame::hello(u64::try_from(self.config.heartbeat_interval.as_millis()).unwrap_or(u64::MAX))
    }

    /// Handles one inbound WebSocket message (text or binary).
    ///
    /// # Errors
    /// The close code to close the socket with (see the module docs). After an error the
    /// session stays closed: further calls return the same code.
    pub fn handle_frame(&mut self, payload: &[u8], now: Instant) -> Result<Command, CloseCode> {
        if let Some(code) = self.closed {
            return Err(code);
        }
        let result = self.handle_frame_inner(payload, now);
        if let Err(code) = result {
            self.closed = Some(code);
        }
        result
    }

    fn handle_frame_inner(&mut self, payload: &[u8], now: Instant) -> Result<Command, CloseCode> {
        self.count_send(now)?;
        if payload.len() > self.config.max_payload_bytes {
            return Err(CloseCode::DecodeError);
        }
        // serde would also read a JSON array as a struct (`[1,null]`); Discord wants an object.
        if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(CloseCode::DecodeError);
        }
        let envelope: Envelope<'_> = serde_json::from_slice(payload).map_err(|_| CloseCode::DecodeError)?;
        let d = envelope.d;

        if envelope.op == OP_REQUEST_CHANNEL_INFO {
            self.require_auth()?;
            let d = d.ok_or(CloseCode::UnknownOpcode)?;
            return Ok(Command::RequestChannelInfo(d.to_owned()));
        }
        match OpCode::from_u64(envelope.op) {
            Some(OpCode::Heartbeat) => {
                // `d` is the client's last seq or null; anything else is a bad payload.
                // A client that has received `s` never asks for it again (it resumes from
                // its last `s`): the replay buffer lets go of it and everything before.
                if let Some(d) = d {
                    let acked = serde_json::from_str::<u64>(d.get()).map_err(|_| CloseCode::UnknownOpcode)?;
                    self.forget_replay_through(acked);
                }
                self.last_heartbeat = now;
                Ok(Command::Reply(Bytes::from_static(frame::HEARTBEAT_ACK)))
            }
            Some(OpCode::Identify) => {
                self.require_unauthenticated()?;
                let identify = Identify::parse(d)?;
                self.phase = Phase::Identifying;
                Ok(Command::Identify(Box::new(identify)))
            }
            Some(OpCode::Resume) => {
                self.require_unauthenticated()?;
                let resume = Resume::parse(d)?;
                self.phase = Phase::Resuming;
                Ok(Command::Resume(resume))
            }
            Some(OpCode::PresenceUpdate) => {
                self.require_auth()?;
                Ok(Command::PresenceUpdate(PresenceUpdate::parse(d)?))
            }
            Some(OpCode::VoiceStateUpdate) => {
                self.require_auth()?;
                Ok(Command::VoiceStateUpdate(VoiceStateUpdate::parse(d)?))
            }
            Some(OpCode::RequestGuildMembers) => {
                self.require_auth()?;
                Ok(Command::RequestGuildMembers(RequestGuildMembers::parse(d)?))
            }
            Some(OpCode::RequestSoundboardSounds) => {
                self.require_auth()?;
                Ok(Command::RequestSoundboardSounds(RequestSoundboardSounds::parse(d)?))
            }
            Some(
                OpCode::Dispatch | OpCode::Reconnect | OpCode::InvalidSession | OpCode::Hello | OpCode::HeartbeatAck,
            )
            | None => Err(CloseCode::UnknownOpcode),
        }
    }

    fn count_send(&mut self, now: Instant) -> Result<(), CloseCode> {
        if now.saturating_duration_since(self.window_start) >= self.config.send_window {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        if self.window_count > self.config.send_limit {
            return Err(CloseCode::RateLimited);
        }
        Ok(())
    }

    /// Ops other than heartbeat need an accepted IDENTIFY or RESUME. While the shell is
    /// still checking the token (`Identifying` / `Resuming`) they are passed on: the shell
    /// may queue them until READY.
    fn require_auth(&self) -> Result<(), CloseCode> {
        match self.phase {
            Phase::Connected => Err(CloseCode::NotAuthenticated),
            Phase::Identifying | Phase::Resuming | Phase::Ready => Ok(()),
        }
    }

    fn require_unauthenticated(&self) -> Result<(), CloseCode> {
        match self.phase {
            Phase::Connected => Ok(()),
            Phase::Identifying | Phase::Resuming | Phase::Ready => Err(CloseCode::AlreadyAuthenticated),
        }
    }

    /// The shell accepted the IDENTIFY. Creates the outbox; the next dispatch (READY) gets
    /// `s = 1`.
    ///
    /// # Panics
    /// If the session is not in [`Phase::Identifying`]: the shell called it out of order.
    pub fn identified(&mut self, session_id: impl Into<Box<str>>) {
        assert_eq!(self.phase, Phase::Identifying, "identified() without a pending IDENTIFY");
        self.outbox = Some(Outbox::new(session_id, self.config.replay));
        self.phase = Phase::Ready;
    }

    /// The shell refused the IDENTIFY without closing (it sent op 9 `d:false`, e.g. over the
    /// identify concurrency limit): the client may IDENTIFY again on this socket.
    pub fn identify_rejected(&mut self) {
        if self.phase == Phase::Identifying {
            self.phase = Phase::Connected;
        }
    }

    /// The shell found the session named in RESUME and hands over its outbox. On success the
    /// returned frames are every dispatch after `seq`, in order; send them, then
    /// [`Session::resumed_frame`].
    ///
    /// # Errors
    /// [`ResumeError::SeqAhead`] → close 4007; [`ResumeError::Expired`] → send op 9
    /// `d:false`. Either way the outbox is dropped (the session cannot be resumed) and the
    /// client may IDENTIFY again.
    ///
    /// # Panics
    /// If the session is not in [`Phase::Resuming`].
    pub fn resume(&mut self, outbox: Outbox, seq: u64) -> Result<Replay<'_>, ResumeError> {
        assert_eq!(self.phase, Phase::Resuming, "resume() without a pending RESUME");
        if let Err(error) = outbox.check_resume(seq) {
            self.phase = Phase::Connected;
            return Err(error);
        }
        self.phase = Phase::Ready;
        self.outbox.insert(outbox).replay_after(seq)
    }

    /// The shell could not find (or authenticate) the session named in RESUME and sent op 9
    /// `d:false`: the client may IDENTIFY on this socket.
    pub fn resume_rejected(&mut self) {
        if self.phase == Phase::Resuming {
            self.phase = Phase::Connected;
        }
    }

    /// Frames of every dispatch after `seq` still in this session's outbox.
    pub fn replay_after(&self, seq: u64) -> Result<Replay<'_>, ResumeError> {
        self.outbox.as_ref().ok_or(ResumeError::NoSession)?.replay_after(seq)
    }

    /// Numbers an event for this session and returns its frame (head + shared body + tail).
    /// `body` is the event's JSON serialized once for all recipients; only a refcount is
    /// taken.
    ///
    /// # Panics
    /// Before [`Session::identified`] / [`Session::resume`], or if `name` is not an
    /// upper-case event name: both are shell bugs.
    pub fn dispatch(&mut self, name: &'static str, body: &Bytes) -> DispatchFrame {
        self.outbox_mut().dispatch(name, body)
    }

    /// [`Session::dispatch`] of a dispatch shared with its other recipients
    /// ([`Outbox::dispatch_shared`]).
    pub fn dispatch_shared(&mut self, dispatch: Arc<Dispatch>) -> DispatchFrame {
        self.outbox_mut().dispatch_shared(dispatch)
    }

    /// [`Session::dispatch`] as one contiguous buffer.
    pub fn dispatch_frame(&mut self, name: &'static str, body: &Bytes) -> Bytes {
        self.dispatch(name, body).to_bytes()
    }

    /// The RESUMED dispatch (`d = {}`), with its own sequence number.
    pub fn resumed_frame(&mut self) -> DispatchFrame {
        self.dispatch("RESUMED", &Bytes::from_static(frame::RESUMED_BODY))
    }

    fn outbox_mut(&mut self) -> &mut Outbox {
        self.outbox.as_mut().expect("dispatch before identified() or resume()")
    }

    /// Stops keeping the dispatches with `s <= seq` for replay ([`Outbox::forget_through`]).
    pub fn forget_replay_through(&mut self, seq: u64) {
        if let Some(outbox) = self.outbox.as_mut() {
            outbox.forget_through(seq);
        }
    }

    /// The session's outbox, once identified or resumed.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    /// Ends the connection and keeps what RESUME needs. The shell stores it (keyed by
    /// `session_id`), keeps [`Outbox::push`]ing events into it while the client is away,
    /// and passes it to the next connection's [`Session::resume`].
    pub fn into_outbox(self) -> Option<Outbox> {
        self.outbox
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Instant {
        self.last_heartbeat + self.config.heartbeat_interval + self.config.heartbeat_grace
    }

    /// Checks heartbeat liveness.
    ///
    /// # Errors
    /// 4009 once `now` has reached [`Session::poll_timeout`] with no heartbeat.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), CloseCode> {
        if let Some(code) = self.closed {
            return Err(code);
        }
        if now >= self.poll_timeout() {
            self.closed = Some(CloseCode::SessionTimedOut);
            return Err(CloseCode::SessionTimedOut);
        }
        Ok(())
    }
}
