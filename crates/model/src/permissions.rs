//! Discord's 64-bit permission bitfield, serialized as a decimal string.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(pub u64);

macro_rules! perms {
    ($($name:ident = $bit:expr),* $(,)?) => {
        impl Permissions {
            $(pub const $name: Permissions = Permissions(1 << $bit);)*
            /// Every defined bit, and nothing else.
            pub const ALL: Permissions = Permissions(0 $(| (1 << $bit))*);
            /// Names of the set bits, for error messages and debugging.
            pub fn names(self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(if self.contains(Self::$name) { out.push(stringify!($name)); })*
                out
            }
        }
    };
}

perms! {
    CREATE_INSTANT_INVITE = 0, KICK_MEMBERS = 1, BAN_MEMBERS = 2, ADMINISTRATOR = 3,
    MANAGE_CHANNELS = 4, MANAGE_GUILD = 5, ADD_REACTIONS = 6, VIEW_AUDIT_LOG = 7,
    PRIORITY_SPEAKER = 8, STREAM = 9, VIEW_CHANNEL = 10, SEND_MESSAGES = 11,
    SEND_TTS_MESSAGES = 12, MANAGE_MESSAGES = 13, EMBED_LINKS = 14, ATTACH_FILES = 15,
    READ_MESSAGE_HISTORY = 16, MENTION_EVERYONE = 17, USE_EXTERNAL_EMOJIS = 18,
    VIEW_GUILD_INSIGHTS = 19, CONNECT = 20, SPEAK = 21, MUTE_MEMBERS = 22,
    DEAFEN_MEMBERS = 23, MOVE_MEMBERS = 24, USE_VAD = 25, CHANGE_NICKNAME = 26,
    MANAGE_NICKNAMES = 27, MANAGE_ROLES = 28, MANAGE_WEBHOOKS = 29,
    MANAGE_GUILD_EXPRESSIONS = 30, USE_APPLICATION_COMMANDS = 31, REQUEST_TO_SPEAK = 32,
    MANAGE_EVENTS = 33, MANAGE_THREADS = 34, CREATE_PUBLIC_THREADS = 35,
    CREATE_PRIVATE_THREADS = 36, USE_EXTERNAL_STICKERS = 37, SEND_MESSAGES_IN_THREADS = 38,
    USE_EMBEDDED_ACTIVITIES = 39, MODERATE_MEMBERS = 40,
    VIEW_CREATOR_MONETIZATION_ANALYTICS = 41, USE_SOUNDBOARD = 42,
    CREATE_GUILD_EXPRESSIONS = 43, CREATE_EVENTS = 44, USE_EXTERNAL_SOUNDS = 45,
    SEND_VOICE_MESSAGES = 46, SET_VOICE_CHANNEL_STATUS = 48, SEND_POLLS = 49,
    USE_EXTERNAL_APPS = 50, PIN_MESSAGES = 51, BYPASS_SLOWMODE = 52,
}

impl Permissions {
    pub const NONE: Permissions = Permissions(0);

    /// What @everyone gets in a new guild (Discord's default for new servers).
    pub const DEFAULT_EVERYONE: Permissions = Permissions(
        Self::CREATE_INSTANT_INVITE.0
            | Self::ADD_REACTIONS.0
            | Self::STREAM.0
            | Self::VIEW_CHANNEL.0
            | Self::SEND_MESSAGES.0
            | Self::EMBED_LINKS.0
            | Self::ATTACH_FILES.0
            | Self::READ_MESSAGE_HISTORY.0
            | Self::MENTION_EVERYONE.0
            | Self::USE_EXTERNAL_EMOJIS.0
            | Self::CONNECT.0
            | Self::SPEAK.0
            | Self::USE_VAD.0
            | Self::CHANGE_NICKNAME.0
            | Self::USE_APPLICATION_COMMANDS.0
            | Self::REQUEST_TO_SPEAK.0
            | Self::CREATE_PUBLIC_THREADS.0
            | Self::CREATE_PRIVATE_THREADS.0
            | Self::USE_EXTERNAL_STICKERS.0
            | Self::SEND_MESSAGES_IN_THREADS.0
            | Self::USE_EMBEDDED_ACTIVITIES.0
            | Self::USE_SOUNDBOARD.0
            | Self::USE_EXTERNAL_SOUNDS.0
            | Self::SEND_VOICE_MESSAGES.0
            | Self::SEND_POLLS.0
            | Self::USE_EXTERNAL_APPS.0,
    );

    /// Permissions that only make sense on a channel; cleared when VIEW_CHANNEL is
    /// missing there.
    pub const CHANNEL_SCOPED: Permissions = Permissions(
        Self::CREATE_INSTANT_INVITE.0
            | Self::MANAGE_CHANNELS.0
            | Self::ADD_REACTIONS.0
            | Self::PRIORITY_SPEAKER.0
            | Self::STREAM.0
            | Self::VIEW_CHANNEL.0
            | Self::SEND_MESSAGES.0
            | Self::SEND_TTS_MESSAGES.0
            | Self::MANAGE_MESSAGES.0
            | Self::EMBED_LINKS.0
            | Self::ATTACH_FILES.0
            | Self::READ_MESSAGE_HISTORY.0
            | Self::MENTION_EVERYONE.0
            | Self::USE_EXTERNAL_EMOJIS.0
            | Self::CONNECT.0
            | Self::SPEAK.0
            | Self::MUTE_MEMBERS.0
            | Self::DEAFEN_MEMBERS.0
            | Self::MOVE_MEMBERS.0
            | Self::USE_VAD.0
            | Self::MANAGE_ROLES.0
            | Self::MANAGE_WEBHOOKS.0
            | Self::USE_APPLICATION_COMMANDS.0
            | Self::REQUEST_TO_SPEAK.0
            | Self::MANAGE_EVENTS.0
            | Self::MANAGE_THREADS.0
            | Self::CREATE_PUBLIC_THREADS.0
            | Self::CREATE_PRIVATE_THREADS.0
            | Self::USE_EXTERNAL_STICKERS.0
            | Self::SEND_MESSAGES_IN_THREADS.0
            | Self::USE_EMBEDDED_ACTIVITIES.0
            | Self::USE_SOUNDBOARD.0
            | Self::USE_EXTERNAL_SOUNDS.0
            | Self::SEND_VOICE_MESSAGES.0
            | Self::SET_VOICE_CHANNEL_STATUS.0
            | Self::SEND_POLLS.0
            | Self::USE_EXTERNAL_APPS.0
            | Self::PIN_MESSAGES.0
            | Self::BYPASS_SLOWMODE.0,
    );

    pub const fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: Permissions) -> bool {
        self.0 & other.0 != 0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Drops bits Discord does not define (clients may send any u64).
    pub const fn truncate(self) -> Permissions {
        Permissions(self.0 & Self::ALL.0)
    }
}

impl BitOr for Permissions {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Permissions(self.0 | rhs.0)
    }
}
impl BitOrAssign for Permissions {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}
impl BitAnd for Permissions {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Permissions(self.0 & rhs.0)
    }
}
impl BitAndAssign for Permissions {
    fn bitand_assign(&mut self, rhs: Self) {
        self.0 &= rhs.0;
    }
}
impl Not for Permissions {
    type Output = Self;
    fn not(self) -> Self {
        Permissions(!self.0)
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({})", self.names().join(" | "))
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 20];
        s.serialize_str(crate::id::format_u64(self.0, &mut buf))
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Permissions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a permission bitfield as a decimal string or integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Permissions, E> {
                Ok(Permissions(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Permissions, E> {
                u64::try_from(v).map(Permissions).map_err(|_| E::custom("negative permissions"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Permissions, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom("invalid permissions"));
                }
                v.parse().map(Permissions).map_err(|_| E::custom("invalid permissions"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_on_the_wire() {
        let p = Permissions::SEND_MESSAGES | Permissions::VIEW_CHANNEL;
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"3072\"");
        let back: Permissions = serde_json::from_str("\"3072\"").unwrap();
        assert_eq!(back, p);
        let int: Permissions = serde_json::from_str("3072").unwrap();
        assert_eq!(int, p);
        assert!(serde_json::from_str::<Permissions>("\"-1\"").is_err());
    }

    #[test]
    fn all_skips_bit_47() {
        assert_eq!(Permissions::ALL.0 & (1 << 47), 0);
        assert!(Permissions::ALL.contains(Permissions::BYPASS_SLOWMODE));
    }
}
