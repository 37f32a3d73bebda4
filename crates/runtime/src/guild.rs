//! The guild actor's state: the domain's `GuildState`, the sessions subscribed to
//! the guild, and the presences of its online members. Fan-out lives here because
//! only this actor knows the roles and overwrites that decide who sees what.

use std::collections::HashMap;

use bytes::Bytes;
use guildhall_domain::GuildState;
use guildhall_domain::entity::User;
use guildhall_domain::permissions::channel_permissions;
use guildhall_domain::wire::{self, ChannelView, MemberView};
use guildhall_model::id::UserId;
use guildhall_model::{Intents, Permissions, Timestamp};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::Shared;
use crate::actor::{Actor, Handle, Scope};
use crate::event::{Audience, Event, Outbound, to_bytes};
use crate::presence::Presence;
use crate::session::SessionHandle;

pub type GuildHandle = Handle<GuildScope>;
pub type GuildActor = Actor<GuildScope>;

pub struct GuildScope {
    pub guild: GuildState,
    /// Sessions that receive this guild's events. Pruned when a push finds the
    /// session gone.
    pub subscribers: Vec<SessionHandle>,
    /// Online (non-offline) members and their presence.
    pub presences: HashMap<UserId, Presence>,
}

impl GuildScope {
    pub fn new(guild: GuildState) -> GuildScope {
        GuildScope { guild, subscribers: Vec::new(), presences: HashMap::new() }
    }

    /// Whether `session` may receive `event` (intents, shard, visibility).
    fn admits(&self, session: &SessionHandle, event: &Event, now: Timestamp) -> bool {
        if !session.wants_guild(event.guild_id) {
            return false;
        }
        match &event.audience {
            Audience::Guild { intent, channel, extra } => {
                if !session.intents.contains(*intent) {
                    return false;
                }
                match channel {
                    Some(ch) => channel_permissions(&self.guild, session.user_id, *ch, now)
                        .contains(Permissions::VIEW_CHANNEL | *extra),
                    None => self.guild.members.contains_key(&session.user_id),
                }
            }
            Audience::GuildWithPermission { intent, permission } => {
                session.intents.contains(*intent)
                    && guildhall_domain::permissions::base_permissions(&self.guild, session.user_id)
                        .contains(*permission)
            }
            Audience::Users { users, intent } => session.intents.contains(*intent) && users.contains(&session.user_id),
        }
    }
}

impl Scope for GuildScope {
    fn publish(&mut self, _shared: &Shared, event: &Event) {
        let now = Timestamp::now();
        let mut gone = false;
        for s in &self.subscribers {
            if !self.admits(s, event, now) {
                continue;
            }
            let body = match &event.redacted {
                Some(r) if !s.intents.contains(Intents::MESSAGE_CONTENT) && !r.exempt.contains(&s.user_id) => {
                    r.body.clone()
                }
                _ => event.body.clone(),
            };
            gone |= !s.push(Outbound::Dispatch(event.name, body));
        }
        if gone {
            self.subscribers.retain(|s| !s.is_closed());
        }
    }
}

impl GuildActor {
    /// Adds a session and sends it GUILD_CREATE. Called once per guild after READY.
    pub fn subscribe(&mut self, session: SessionHandle) {
        if !self.state.guild.members.contains_key(&session.user_id) {
            return;
        }
        self.state.subscribers.retain(|s| s.id != session.id && !s.is_closed());
        if session.intents.contains(Intents::GUILDS) && session.wants_guild(Some(self.state.guild.guild.id)) {
            let body = self.guild_create(&session);
            session.push(Outbound::Dispatch("GUILD_CREATE", body));
        }
        self.state.subscribers.push(session);
    }

    pub fn unsubscribe(&mut self, session_id: u64) {
        self.state.subscribers.retain(|s| s.id != session_id);
    }

    /// Subscribes every live session of `user` (after they join the guild).
    pub fn subscribe_user(&mut self, user: UserId) {
        for s in self.shared.sessions.of_user(user) {
            self.subscribe(s);
        }
    }

    /// Unsubscribes `user`'s sessions and tells them the guild is gone for them.
    pub fn drop_user(&mut self, user: UserId) {
        let guild_id = self.state.guild.guild.id;
        let body = to_bytes(&serde_json::json!({ "id": guild_id }));
        self.state.subscribers.retain(|s| {
            if s.user_id == user {
                s.push(Outbound::Dispatch("GUILD_DELETE", body.clone()));
                false
            } else {
                true
            }
        });
    }

    /// GUILD_CREATE as `session` sees it.
    pub fn guild_create(&self, session: &SessionHandle) -> Bytes {
        let users = &self.shared.directory;
        users.with_users(|users| to_bytes(&GuildCreate { scope: &self.state, session, users }))
    }
}

struct GuildCreate<'a> {
    scope: &'a GuildScope,
    session: &'a SessionHandle,
    users: &'a HashMap<UserId, std::sync::Arc<User>>,
}

impl Serialize for GuildCreate<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let state = &self.scope.guild;
        let viewer = self.session.user_id;
        let now = Timestamp::now();
        let roles = state.roles_sorted();
        let mut m = s.serialize_map(None)?;
        wire::write_guild_fields(&mut m, &state.guild, &roles)?;
        let member_count = state.members.len();
        let large = member_count > self.session.large_threshold as usize;
        m.serialize_entry("joined_at", &state.members.get(&viewer).map(|m| m.joined_at))?;
        m.serialize_entry("large", &large)?;
        m.serialize_entry("unavailable", &false)?;
        m.serialize_entry("member_count", &member_count)?;
        m.serialize_entry("voice_states", &[(); 0])?;
        let presences_on = self.session.intents.contains(Intents::GUILD_PRESENCES);
        // Small guilds: every member. Large ones: the viewer and online members
        // (when the session may see presences), as Discord does.
        let members: Vec<MemberView> = state
            .members
            .values()
            .filter(|mem| {
                !large || mem.user_id == viewer || (presences_on && self.scope.presences.contains_key(&mem.user_id))
            })
            .filter_map(|mem| self.users.get(&mem.user_id).map(|u| MemberView::new(mem, Some(u))))
            .collect();
        m.serialize_entry("members", &members)?;
        let visible = |id| channel_permissions(state, viewer, id, now).contains(Permissions::VIEW_CHANNEL);
        let channels: Vec<ChannelView> = state
            .channels
            .values()
            .filter(|c| !guildhall_domain::entity::channel_type::is_thread(c.kind) && visible(c.id))
            .map(ChannelView::new)
            .collect();
        m.serialize_entry("channels", &channels)?;
        let threads: Vec<ChannelView> =
            state.active_threads().filter(|c| visible(c.id)).map(ChannelView::new).collect();
        m.serialize_entry("threads", &threads)?;
        let presences: Vec<&Presence> = if presences_on { self.scope.presences.values().collect() } else { Vec::new() };
        m.serialize_entry("presences", &presences)?;
        m.serialize_entry("stage_instances", &[(); 0])?;
        m.serialize_entry("guild_scheduled_events", &[(); 0])?;
        m.serialize_entry("soundboard_sounds", &[(); 0])?;
        m.end()
    }
}
