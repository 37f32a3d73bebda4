//! Typed snowflake ids. `Id<GuildMarker>` and `Id<ChannelMarker>` cannot be mixed up;
//! [`Id::cast`] is the explicit escape hatch for the places where Discord reuses an
//! id (the @everyone role has its guild's id). On the wire an id is a decimal string;
//! it is read from a string or an integer, as Discord accepts both.

use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! markers {
    ($($name:ident),* $(,)?) => {
        $(
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
            #[allow(missing_docs)]
            pub enum $name {}
        )*
    };
}

markers!(
    UserMarker,
    GuildMarker,
    ChannelMarker,
    RoleMarker,
    MessageMarker,
    ApplicationMarker,
    AttachmentMarker,
    EmojiMarker,
    GenericMarker,
);

/// A snowflake id tagged with what it identifies.
pub struct Id<M> {
    value: NonZeroU64,
    // `fn(M) -> M` keeps `Id` Send + Sync and invariant whatever `M` is.
    marker: PhantomData<fn(M) -> M>,
}

pub type UserId = Id<UserMarker>;
pub type GuildId = Id<GuildMarker>;
pub type ChannelId = Id<ChannelMarker>;
pub type RoleId = Id<RoleMarker>;
pub type MessageId = Id<MessageMarker>;
pub type ApplicationId = Id<ApplicationMarker>;
pub type AttachmentId = Id<AttachmentMarker>;
pub type EmojiId = Id<EmojiMarker>;

impl<M> Id<M> {
    /// Wraps a non-zero value.
    ///
    /// # Panics
    /// If `value` is zero: ids come from the generator or from parsing, both of
    /// which reject zero, so a zero here is a bug.
    #[track_caller]
    pub const fn new(value: u64) -> Self {
        match NonZeroU64::new(value) {
            Some(value) => Self { value, marker: PhantomData },
            None => panic!("an id is never zero"),
        }
    }

    /// Wraps `value`, or `None` when it is zero.
    pub const fn new_checked(value: u64) -> Option<Self> {
        match NonZeroU64::new(value) {
            Some(value) => Some(Self { value, marker: PhantomData }),
            None => None,
        }
    }

    pub const fn get(self) -> u64 {
        self.value.get()
    }

    /// Reinterprets the id as another kind, where Discord shares ids between kinds.
    pub const fn cast<N>(self) -> Id<N> {
        Id { value: self.value, marker: PhantomData }
    }

    /// Milliseconds since the Unix epoch encoded in the snowflake.
    pub const fn timestamp_ms(self) -> u64 {
        (self.get() >> 22) + crate::snowflake::DISCORD_EPOCH_MS
    }

    /// Big-endian bytes, so that byte order is numeric order in key-value stores.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.get().to_be_bytes()
    }
}

impl<M> Clone for Id<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Id<M> {}
impl<M> PartialEq for Id<M> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<M> Eq for Id<M> {}
impl<M> PartialOrd for Id<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Id<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl<M> std::hash::Hash for Id<M> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}
impl<M> fmt::Debug for Id<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.value)
    }
}
impl<M> fmt::Display for Id<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.value, f)
    }
}

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIdError;

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value is not a snowflake")
    }
}
impl std::error::Error for ParseIdError {}

impl<M> FromStr for Id<M> {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only plain decimal digits: `u64::from_str` would also take a leading '+'.
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseIdError);
        }
        let value: u64 = s.parse().map_err(|_| ParseIdError)?;
        Self::new_checked(value).ok_or(ParseIdError)
    }
}

impl<M> Serialize for Id<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 20];
        serializer.serialize_str(format_u64(self.get(), &mut buf))
    }
}

/// Formats without allocating; used for ids on the hot serialization path.
pub fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).expect("digits are ASCII")
}

impl<'de, M> Deserialize<'de> for Id<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor<M>(PhantomData<fn(M) -> M>);
        impl<M> Visitor<'_> for IdVisitor<M> {
            type Value = Id<M>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a snowflake as a string or integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Id::new_checked(v).ok_or_else(|| E::custom("snowflake must not be zero"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v).ok().and_then(Id::new_checked).ok_or_else(|| E::custom("snowflake must be positive"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map_err(|_| E::custom(format!("Value \"{v}\" is not snowflake.")))
            }
        }
        deserializer.deserialize_any(IdVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_string_and_reads_both_forms() {
        let id: GuildId = Id::new(175928847299117063);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"175928847299117063\"");
        let a: GuildId = serde_json::from_str("\"175928847299117063\"").unwrap();
        let b: GuildId = serde_json::from_str("175928847299117063").unwrap();
        assert_eq!(a, id);
        assert_eq!(b, id);
    }

    #[test]
    fn rejects_zero_signs_and_overflow() {
        assert!("0".parse::<UserId>().is_err());
        assert!("+5".parse::<UserId>().is_err());
        assert!("-5".parse::<UserId>().is_err());
        assert!("18446744073709551616".parse::<UserId>().is_err());
        assert!(serde_json::from_str::<UserId>("-1").is_err());
        assert!(serde_json::from_str::<UserId>("1.5").is_err());
    }

    #[test]
    fn timestamp_of_documented_example() {
        let id: UserId = Id::new(175928847299117063);
        assert_eq!(id.timestamp_ms(), 1462015105796);
    }
}
