//! Gateway opcodes and close codes, with the meaning each code carries, and the dispatch
//! every recipient of an event shares.

use bytes::Bytes;

/// One gateway event: its name (`MESSAGE_CREATE`) and its `d`, serialized once. Shared in an
/// `Arc` by every recipient: the runtime queues the same `Arc` to each session, and a session's
/// replay buffer keeps that `Arc` (8 bytes) rather than a copy of the name and a body handle.
#[derive(Debug)]
pub struct Dispatch {
    /// An upper-case event name from server code (checked where a session numbers it).
    pub name: &'static str,
    pub body: Bytes,
}

/// Main gateway opcodes (v10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    Dispatch = 0,
    Heartbeat = 1,
    Identify = 2,
    PresenceUpdate = 3,
    VoiceStateUpdate = 4,
    Resume = 6,
    Reconnect = 7,
    RequestGuildMembers = 8,
    InvalidSession = 9,
    Hello = 10,
    HeartbeatAck = 11,
    RequestSoundboardSounds = 31,
}

impl OpCode {
    pub fn from_u64(op: u64) -> Option<OpCode> {
        Some(match op {
            0 => Self::Dispatch,
            1 => Self::Heartbeat,
            2 => Self::Identify,
            3 => Self::PresenceUpdate,
            4 => Self::VoiceStateUpdate,
            6 => Self::Resume,
            7 => Self::Reconnect,
            8 => Self::RequestGuildMembers,
            9 => Self::InvalidSession,
            10 => Self::Hello,
            11 => Self::HeartbeatAck,
            31 => Self::RequestSoundboardSounds,
            _ => return None,
        })
    }
}

/// Gateway close codes (4000-4014) and the WebSocket codes a server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    Normal = 1000,
    GoingAway = 1001,
    UnknownError = 4000,
    UnknownOpcode = 4001,
    DecodeError = 4002,
    NotAuthenticated = 4003,
    AuthenticationFailed = 4004,
    AlreadyAuthenticated = 4005,
    InvalidSeq = 4007,
    RateLimited = 4008,
    SessionTimedOut = 4009,
    InvalidShard = 4010,
    ShardingRequired = 4011,
    InvalidApiVersion = 4012,
    InvalidIntents = 4013,
    DisallowedIntents = 4014,
}

impl CloseCode {
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Whether a client may reconnect after this close (Discord's table).
    pub const fn can_reconnect(self) -> bool {
        !matches!(
            self,
            Self::AuthenticationFailed
                | Self::InvalidShard
                | Self::ShardingRequired
                | Self::InvalidApiVersion
                | Self::InvalidIntents
                | Self::DisallowedIntents
        )
    }

    /// Whether the session survives this close and may be resumed.
    pub const fn keeps_session(self) -> bool {
        matches!(self, Self::UnknownError | Self::RateLimited | Self::DecodeError | Self::UnknownOpcode)
    }

    /// Discord's human-readable reason, sent in the close frame.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Normal => "",
            Self::GoingAway => "Going away",
            Self::UnknownError => "Unknown error.",
            Self::UnknownOpcode => "Unknown opcode.",
            Self::DecodeError => "Error while decoding payload.",
            Self::NotAuthenticated => "Not authenticated.",
            Self::AuthenticationFailed => "Authentication failed.",
            Self::AlreadyAuthenticated => "Already authenticated.",
            Self::InvalidSeq => "Invalid seq.",
            Self::RateLimited => "Rate limited.",
            Self::SessionTimedOut => "Session timed out.",
            Self::InvalidShard => "Invalid shard.",
            Self::ShardingRequired => "Sharding required.",
            Self::InvalidApiVersion => "Invalid API version.",
            Self::InvalidIntents => "Invalid intent(s).",
            Self::DisallowedIntents => "Disallowed intent(s).",
        }
    }
}

/// Main gateway HELLO interval, in milliseconds.
pub const HEARTBEAT_INTERVAL_MS: u64 = 41_250;
/// Largest client payload accepted, in bytes (4002 above it).
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Client payloads allowed per window before closing with 4008.
pub const SEND_LIMIT: u32 = 120;
/// The window of [`SEND_LIMIT`], in milliseconds.
pub const SEND_LIMIT_WINDOW_MS: u64 = 60_000;
