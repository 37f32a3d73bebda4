//! Events: a dispatch body serialized once, plus who may receive it. The guild
//! actor decides recipients; sessions only splice their sequence number around
//! the shared bytes.

use std::sync::Arc;

use bytes::Bytes;
use guildhall_model::id::{ChannelId, GuildId, UserId};
use guildhall_model::{Intents, Permissions};
use serde::Serialize;

/// What a session's outbound queue carries: 16 bytes, one reference count per
/// queued dispatch. A client that stops reading holds up to `queue_capacity` of
/// them until its queue overflows, so their size is most of its memory.
#[derive(Clone, Debug)]
pub enum Outbound {
    /// A dispatch, shared by every recipient of the event.
    Dispatch(Arc<Dispatch>),
    /// Close the connection; the session stays resumable.
    CloseResumable,
    /// The session is invalidated (user deleted, token revoked): close and forget it.
    Invalidate,
}

const _: () = assert!(std::mem::size_of::<Outbound>() == 16);

pub use guildhall_model::gateway::Dispatch;

impl Outbound {
    /// One dispatch; clone the result for each recipient.
    pub fn dispatch(name: &'static str, body: Bytes) -> Outbound {
        Outbound::Dispatch(Arc::new(Dispatch { name, body }))
    }
}

/// Who may receive an event.
#[derive(Clone, Debug)]
pub enum Audience {
    /// Sessions subscribed to the guild, with `intent`; if `channel` is set, only
    /// those who can see it (VIEW_CHANNEL plus `extra`).
    Guild { intent: Intents, channel: Option<ChannelId>, extra: Permissions },
    /// Only these users' sessions (DMs, self-only events) with `intent` (empty = always).
    Users { users: Vec<UserId>, intent: Intents },
    /// Guild subscribers who have `permission` in the guild (bans: BAN_MEMBERS).
    GuildWithPermission { intent: Intents, permission: Permissions },
}

/// A dispatch ready for fan-out.
#[derive(Clone, Debug)]
pub struct Event {
    pub name: &'static str,
    pub body: Bytes,
    pub audience: Audience,
    /// For message events: the body with content blanked, for recipients without
    /// MESSAGE_CONTENT who are neither the author nor mentioned.
    pub redacted: Option<Redacted>,
    /// For guild events: the guild's id, to route to the right shard.
    pub guild_id: Option<GuildId>,
}

#[derive(Clone, Debug)]
pub struct Redacted {
    pub body: Bytes,
    /// Users who always get the full body.
    pub exempt: Vec<UserId>,
}

impl Event {
    /// Serializes `body` once.
    pub fn new(name: &'static str, body: &impl Serialize, audience: Audience, guild_id: Option<GuildId>) -> Event {
        Event { name, body: to_bytes(body), audience, redacted: None, guild_id }
    }

    pub fn guild(name: &'static str, guild_id: GuildId, intent: Intents, body: &impl Serialize) -> Event {
        Event::new(name, body, Audience::Guild { intent, channel: None, extra: Permissions::NONE }, Some(guild_id))
    }

    pub fn channel(
        name: &'static str,
        guild_id: GuildId,
        channel: ChannelId,
        intent: Intents,
        body: &impl Serialize,
    ) -> Event {
        Event::new(
            name,
            body,
            Audience::Guild { intent, channel: Some(channel), extra: Permissions::NONE },
            Some(guild_id),
        )
    }

    pub fn users(name: &'static str, users: Vec<UserId>, intent: Intents, body: &impl Serialize) -> Event {
        Event::new(name, body, Audience::Users { users, intent }, None)
    }
}

/// Serializes a value that cannot fail to serialize (our own views).
pub fn to_bytes(v: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(v).expect("views always serialize"))
}
