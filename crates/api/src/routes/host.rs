//! Running one job on whichever actor owns a channel: the guild actor for guild
//! channels and threads, the private actor for DMs. Message, reaction and pin
//! routes are written once against [`Host`] instead of twice, and the helpers
//! here render messages and build the events both homes share.

use std::sync::Arc;

use bytes::Bytes;
use guildhall_domain::GuildState;
use guildhall_domain::entity::{Channel, Member, Message, MessageReference};
use guildhall_domain::wire::{MemberView, MessageView, UserView};
use guildhall_model::id::{ChannelId, GuildId, MessageId, UserId};
use guildhall_model::{Intents, Permissions};
use guildhall_runtime::event::{Redacted, to_bytes};
use guildhall_runtime::{Audience, Change, ChannelHome, Event, GuildActor, PrivateActor, Result, Runtime, Shared};
use serde::Serialize;

use crate::access::{ChannelAccess, guild_channel_access, private_channel_access};
use crate::render::Ctx;

/// What a channel job needs from the actor it runs on.
pub trait Host {
    fn shared(&self) -> &Arc<Shared>;
    /// The guild this actor owns; `None` on the private actor.
    fn guild_id(&self) -> Option<GuildId>;
    /// The guild's state; `None` on the private actor.
    fn guild_state(&self) -> Option<&GuildState>;
    fn guild_state_mut(&mut self) -> Option<&mut GuildState>;
    /// The caller's access to a channel of this actor (10003 / 50001 / 50013).
    fn access(&self, user: UserId, channel: ChannelId, required: Permissions) -> Result<ChannelAccess>;
    fn channel_mut(&mut self, id: ChannelId) -> Option<&mut Channel>;
    /// An event about `channel`: guild subscribers who can see it with
    /// `guild_intent`, or the DM's recipients with `dm_intent`.
    fn channel_event(
        &self,
        name: &'static str,
        channel: &Channel,
        guild_intent: Intents,
        dm_intent: Intents,
        body: Bytes,
    ) -> Event;
    /// Publishes an event that describes no write (typing).
    fn publish_now(&mut self, event: Event);
}

impl Host for GuildActor {
    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
    fn guild_id(&self) -> Option<GuildId> {
        Some(self.state.guild.guild.id)
    }
    fn guild_state(&self) -> Option<&GuildState> {
        Some(&self.state.guild)
    }
    fn guild_state_mut(&mut self) -> Option<&mut GuildState> {
        Some(&mut self.state.guild)
    }
    fn access(&self, user: UserId, channel: ChannelId, required: Permissions) -> Result<ChannelAccess> {
        guild_channel_access(self, user, channel, required)
    }
    fn channel_mut(&mut self, id: ChannelId) -> Option<&mut Channel> {
        self.state.guild.channels.get_mut(&id)
    }
    fn channel_event(
        &self,
        name: &'static str,
        channel: &Channel,
        guild_intent: Intents,
        _dm: Intents,
        body: Bytes,
    ) -> Event {
        Event {
            name,
            body,
            audience: Audience::Guild { intent: guild_intent, channel: Some(channel.id), extra: Permissions::NONE },
            redacted: None,
            guild_id: Some(self.state.guild.guild.id),
        }
    }
    fn publish_now(&mut self, event: Event) {
        guildhall_runtime::actor::Actor::publish_now(self, event);
    }
}

impl Host for PrivateActor {
    fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
    fn guild_id(&self) -> Option<GuildId> {
        None
    }
    fn guild_state(&self) -> Option<&GuildState> {
        None
    }
    fn guild_state_mut(&mut self) -> Option<&mut GuildState> {
        None
    }
    fn access(&self, user: UserId, channel: ChannelId, required: Permissions) -> Result<ChannelAccess> {
        private_channel_access(self, user, channel, required)
    }
    fn channel_mut(&mut self, id: ChannelId) -> Option<&mut Channel> {
        self.state.channels.get_mut(&id)
    }
    fn channel_event(
        &self,
        name: &'static str,
        channel: &Channel,
        _guild: Intents,
        dm_intent: Intents,
        body: Bytes,
    ) -> Event {
        Event {
            name,
            body,
            audience: Audience::Users { users: channel.recipients.clone(), intent: dm_intent },
            redacted: None,
            guild_id: None,
        }
    }
    fn publish_now(&mut self, event: Event) {
        guildhall_runtime::actor::Actor::publish_now(self, event);
    }
}

/// Runs `f` on the actor that owns `channel` and waits for its value (after its
/// writes are durable). 10003 when the channel is unknown.
pub async fn on_channel<R, F>(rt: &Runtime, channel: ChannelId, f: F) -> Result<R>
where
    R: Send + 'static,
    F: FnOnce(&mut dyn Host) -> Result<Change<R>> + Send + 'static,
{
    match rt.channel_home(channel)? {
        ChannelHome::Guild(g) => rt.guild(g)?.call(move |a: &mut GuildActor| f(a)).await,
        ChannelHome::Private => rt.private().call(move |a: &mut PrivateActor| f(a)).await,
    }
}

impl dyn Host + '_ {
    /// A guild member, or `None` (DMs, non-members).
    pub fn member(&self, user: UserId) -> Option<&Member> {
        self.guild_state().and_then(|g| g.members.get(&user))
    }

    /// The message `id` of `channel`, or 10008.
    pub fn message(&self, channel: ChannelId, id: guildhall_model::id::MessageId) -> Result<Message> {
        self.shared().store.message(channel, id)?.ok_or_else(guildhall_runtime::Error::unknown_message)
    }

    /// A message as REST returns it, with `me` on reactions computed for `viewer`.
    pub fn render(&self, msg: &Message, viewer: UserId) -> serde_json::Value {
        render_message(self.shared(), msg, viewer)
    }

    /// A user's member object with `user` inside (reaction and typing events),
    /// or `None` outside guilds.
    pub fn member_json(&self, user: UserId) -> Option<serde_json::Value> {
        let member = self.member(user)?;
        let u = self.shared().directory.user(user)?;
        serde_json::to_value(MemberView::new(member, Some(&u))).ok()
    }

    /// MESSAGE_CREATE or MESSAGE_UPDATE for a message as it now is: the full
    /// message with `guild_id` and the author's partial `member`, and a redacted
    /// body for guild recipients without MESSAGE_CONTENT (not the author or
    /// someone mentioned).
    pub fn message_event(&self, name: &'static str, msg: &Message, channel: &Channel) -> Event {
        let shared = self.shared();
        let base = &shared.config.public_url;
        let member = self.member(msg.author_id);
        let (body, redacted) = shared.directory.with_users(|users| {
            let ctx = Ctx { users, base };
            let mut view = MessageView::new(msg, &ctx);
            view.include_guild_id = true;
            view.member = member.map(|m| MemberView::new(m, None));
            let body = to_bytes(&view);
            view.redact_content = true;
            (body, to_bytes(&view))
        });
        let mut event = self.channel_event(name, channel, Intents::GUILD_MESSAGES, Intents::DIRECT_MESSAGES, body);
        if self.guild_id().is_some() {
            let mut exempt = msg.mentions.clone();
            exempt.push(msg.author_id);
            event.redacted = Some(Redacted { body: redacted, exempt });
        }
        event
    }
}

/// A message as REST returns it.
pub fn render_message(shared: &Shared, msg: &Message, viewer: UserId) -> serde_json::Value {
    shared.directory.with_users(|users| {
        let ctx = Ctx { users, base: &shared.config.public_url };
        let mut view = MessageView::new(msg, &ctx);
        view.viewer = Some(viewer);
        serde_json::to_value(&view).unwrap_or_default()
    })
}

/// A system message (the pin notice, the thread-created notice): `content` and a
/// `reference` to what it is about, and nothing else (no mentions, attachments,
/// embeds or flags).
pub fn system_message(
    id: MessageId,
    channel: ChannelId,
    guild: Option<GuildId>,
    author: UserId,
    kind: u8,
    content: String,
    reference: MessageReference,
) -> Message {
    Message { kind, message_reference: Some(reference), ..Message::plain(id, channel, guild, author, content) }
}

/// A user as others see it, or `None` for an unknown id.
pub fn user_json(shared: &Shared, user: UserId) -> Option<serde_json::Value> {
    let u = shared.directory.user(user)?;
    serde_json::to_value(UserView::new(&u)).ok()
}

/// Serializes an event body.
pub fn body(v: &impl Serialize) -> Bytes {
    to_bytes(v)
}
