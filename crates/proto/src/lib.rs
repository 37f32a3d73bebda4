//! Sans-IO gateway protocol for Guildhall: the per-connection [`Session`] state machine
//! (HELLO, IDENTIFY/RESUME, heartbeats, payload and send-rate limits, sequence numbers and
//! the resume replay buffer) and per-connection transport compression
//! ([`compress::Encoder`] for `zlib-stream` / `zstd-stream`).
//!
//! Invariant: this crate never touches a socket, a task or the clock. Bytes and `Instant`s
//! come in; frames, close codes and deadlines go out. Everything is tested without I/O.
//!
//! # Layout
//! - [`session`]: [`Session`], the connection machine, and its close-code policy.
//! - [`command`]: typed client payloads ([`Identify`], [`Resume`], op 3/4/8/31) and their
//!   validation.
//! - [`outbox`]: [`Outbox`], the resumable part (sequence + replay buffer), which outlives a
//!   connection.
//! - [`frame`]: server→client frames; [`DispatchFrame`] splices a per-session envelope
//!   around a body serialized once.
//! - [`compress`]: transport compression and the memory rule for idle connections.
//!
//! # Run loop (what the async shell in `crates/gateway` does)
//! 1. On upgrade, read `?compress=`: [`Compression::from_query`] (unknown value → HTTP 400).
//!    Create `Session::new(config, now)` and `Encoder::new(compression, enc_config)`.
//!    Send `session.hello_frame()` through the encoder.
//! 2. Wait for the first of: an inbound message, an outbound event, `session.poll_timeout()`,
//!    and (if the shell uses one) an idle timer for `encoder.release()`.
//! 3. Inbound message → `session.handle_frame(&bytes, now)`:
//!    - `Err(code)` → send a close frame with `code` (reason: `code.reason()`), then go to 7.
//!    - `Ok(Command::Reply(bytes))` → send `encoder.encode(bytes)`.
//!    - `Ok(Command::Identify(id))` → check `id.token` (4004) and privileged intents (4014);
//!      on success `session.identified(session_id)` and send
//!      `encoder.encode_dispatch(&session.dispatch("READY", &ready_body))` (it gets `s = 1`),
//!      then GUILD_CREATEs.
//!    - `Ok(Command::Resume(r))` → look up `r.session_id` and check `r.token`; if unknown,
//!      send [`frame::INVALID_SESSION`] and call `session.resume_rejected()`. Otherwise
//!      `session.resume(stored_outbox, r.seq)`: on `Ok(replay)` send every frame of `replay`,
//!      then `session.resumed_frame()`; on `Err(ResumeError::SeqAhead)` close 4007; on
//!      `Err(ResumeError::Expired)` send op 9 `d:false`.
//!    - other commands → hand them to the runtime.
//! 4. Outbound event `(name, body: Bytes)` (body serialized once, shared by all sessions) →
//!    `encoder.encode_dispatch(&session.dispatch(name, &body))` and send.
//! 5. `poll_timeout()` reached → `session.handle_timeout(now)`; `Err(4009)` → close, go to 7.
//! 6. Idle timer reached (no message sent for a while) → `encoder.release()`.
//! 7. On close or a dropped socket: unless the client closed with 1000/1001,
//!    `session.into_outbox()` goes to the session registry; while the client is away the
//!    runtime keeps calling `outbox.push(name, &body)`, so a later RESUME replays everything.
//!    Drop it after the resume window (a few minutes).

pub mod command;
pub mod compress;
pub mod frame;
pub mod outbox;
pub mod session;

pub use command::{
    Command, ConnectionProperties, Identify, MemberQuery, PresenceUpdate, RequestGuildMembers, RequestSoundboardSounds,
    Resume, Status, VoiceStateUpdate,
};
pub use compress::{Compression, Encoder, EncoderConfig, UnknownCompression, WsMessage, ZstdRelease};
pub use frame::{DispatchFrame, EventName};
pub use outbox::{Outbox, Replay, ReplayLimits, ResumeError};
pub use session::{Phase, Session, SessionConfig};
