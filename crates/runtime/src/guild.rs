//! The guild actor's state: the domain's `GuildState`, the sessions subscribed to
//! the guild, and the presences of its online members. Fan-out lives here because
//! only this actor knows the roles and overwrites that decide who sees what.

use std::collections::HashMap;

use bytes::Bytes;
use guildhall_domain::GuildState;
use guildhall_domain::entity::{Channel, User, channel_type};
use guildhall_domain::permissions::channel_permissions;
use guildhall_domain::wire::{self, ChannelView, MemberView};
use guildhall_model::id::{ChannelId, RoleId, UserId};
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
    /// Sessions that receive this guild's events.
    pub subscribers: Subscribers,
    /// Online (non-offline) members and their presence.
    pub presences: HashMap<UserId, Presence>,
}

impl GuildScope {
    pub fn new(guild: GuildState) -> GuildScope {
        GuildScope { guild, subscribers: Subscribers::default(), presences: HashMap::new() }
    }

    /// Whether `session` may receive `event` (intents, shard, visibility). `memo`
    /// answers channel visibility for this event (see [`ViewMemo`]).
    fn admits(&self, session: &SessionHandle, event: &Event, memo: &mut Option<ViewMemo<'_>>) -> bool {
        if !session.wants_guild(event.guild_id) {
            return false;
        }
        match &event.audience {
            Audience::Guild { intent, channel, .. } => {
                if !session.intents.contains(*intent) {
                    return false;
                }
                match (channel, memo) {
                    (Some(_), Some(memo)) => memo.admits(session.user_id),
                    (Some(_), None) => false,
                    (None, _) => self.guild.members.contains_key(&session.user_id),
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

/// The sessions subscribed to a guild, with what the actor asks of them often.
///
/// Removal is deferred: a session that ends is noted and dropped from the list in
/// one pass, before the next fan-out or once enough have ended, rather than one
/// O(subscribers) pass each. When 1,000 sessions of a guild end at once (a mass
/// disconnect, or clients that stalled together and overflowed together) that is
/// one pass over the list instead of 1,000, all on the actor every other member's
/// events wait behind. A session noted for removal may still be pushed to until
/// then; its queue is about to be dropped, so nothing reaches a client.
#[derive(Default)]
pub struct Subscribers {
    list: Vec<SessionHandle>,
    /// Sessions in `list` with GUILD_PRESENCES.
    presence_takers: usize,
    /// Ids of sessions to drop from `list` at the next compaction.
    ended: Vec<u64>,
}

impl Subscribers {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, SessionHandle> {
        self.list.iter()
    }

    /// Whether any subscriber takes PRESENCE_UPDATE (ended ones may still count).
    pub fn any_takes_presences(&self) -> bool {
        self.presence_takers > 0
    }

    /// Adds `session`, replacing an entry with its id and dropping closed ones.
    pub fn add(&mut self, session: SessionHandle) {
        self.ended.retain(|id| *id != session.id);
        self.retain(|s| s.id != session.id && !s.is_closed());
        self.presence_takers += usize::from(session.intents.contains(Intents::GUILD_PRESENCES));
        self.list.push(session);
    }

    /// Notes that a session ended; it leaves the list at the next compaction.
    pub fn remove_later(&mut self, session_id: u64) {
        self.ended.push(session_id);
        if self.ended.len() > 64.max(self.list.len() / 8) {
            self.compact();
        }
    }

    /// Drops the sessions noted as ended and those whose receiver is gone.
    pub fn compact(&mut self) {
        let mut ended = std::mem::take(&mut self.ended);
        ended.sort_unstable();
        self.retain(|s| ended.binary_search(&s.id).is_err() && !s.is_closed());
        ended.clear();
        // Keep the (emptied) buffer: a guild with churn needs it again.
        self.ended = ended;
    }

    /// Whether a compaction is due before the next fan-out.
    pub fn has_ended(&self) -> bool {
        !self.ended.is_empty()
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&SessionHandle) -> bool) {
        let mut takers = 0;
        self.list.retain(|s| {
            let k = keep(s);
            takers += usize::from(k && s.intents.contains(Intents::GUILD_PRESENCES));
            k
        });
        self.presence_takers = takers;
    }
}

/// Subscribers beyond which the actor lets an answered caller run before fanning
/// out (see `Actor::complete`).
const LARGE_FANOUT: usize = 256;

impl Scope for GuildScope {
    fn fanout_is_large(&self) -> bool {
        self.subscribers.len() > LARGE_FANOUT
    }

    fn publish(&mut self, _shared: &Shared, event: &Event) {
        let now = Timestamp::now();
        let mut memo = match &event.audience {
            Audience::Guild { channel: Some(ch), extra, .. } => {
                Some(ViewMemo::new(&self.guild, *ch, Permissions::VIEW_CHANNEL | *extra, now))
            }
            _ => None,
        };
        if self.subscribers.has_ended() {
            self.subscribers.compact();
        }
        let mut gone = false;
        let full = Outbound::dispatch(event.name, event.body.clone());
        let redacted = event.redacted.as_ref().map(|r| (r, Outbound::dispatch(event.name, r.body.clone())));
        for s in self.subscribers.iter() {
            if !self.admits(s, event, &mut memo) {
                continue;
            }
            let item = match &redacted {
                Some((r, item)) if !s.intents.contains(Intents::MESSAGE_CONTENT) && !r.exempt.contains(&s.user_id) => {
                    item.clone()
                }
                _ => full.clone(),
            };
            gone |= !s.push(item);
        }
        if gone {
            self.subscribers.retain(|s| !s.is_closed());
        }
    }
}

/// "May this user see the channel (VIEW_CHANNEL plus extra)?" for one event's
/// fan-out, equal to `channel_permissions(..).contains(need)` for every user but
/// computed once per distinct key rather than once per subscriber.
///
/// With the guild state fixed (it is, during one publish), `channel_permissions`
/// for a member who is not the owner and has no member overwrite on the channel
/// (or on a thread's parent) depends only on the member's role list, whether the
/// member is timed out at `now`, and, for a private thread, whether the member is
/// in the thread: that triple is the key. Owners, non-members and members with a
/// personal overwrite are answered directly.
pub(crate) struct ViewMemo<'a> {
    state: &'a GuildState,
    channel: ChannelId,
    need: Permissions,
    now: Timestamp,
    /// The channel whose overwrites apply: the channel, or a thread's parent.
    /// `None` (unknown channel or orphan thread): answered directly.
    overwrites: Option<&'a Channel>,
    private_thread: bool,
    known: HashMap<(&'a [RoleId], bool, bool), bool>,
}

impl<'a> ViewMemo<'a> {
    pub(crate) fn new(state: &'a GuildState, channel: ChannelId, need: Permissions, now: Timestamp) -> Self {
        let ch = state.channels.get(&channel);
        let overwrites = ch.and_then(|c| if channel_type::is_thread(c.kind) { state.parent_of(c) } else { Some(c) });
        let private_thread = ch.is_some_and(|c| c.kind == channel_type::PRIVATE_THREAD);
        ViewMemo { state, channel, need, now, overwrites, private_thread, known: HashMap::new() }
    }

    fn direct(&self, user: UserId) -> bool {
        channel_permissions(self.state, user, self.channel, self.now).contains(self.need)
    }

    pub(crate) fn admits(&mut self, user: UserId) -> bool {
        let state = self.state;
        let Some(overwrites) = self.overwrites else { return self.direct(user) };
        if state.is_owner(user) {
            return self.direct(user);
        }
        let Some(member) = state.members.get(&user) else { return self.direct(user) };
        if overwrites.permission_overwrites.iter().any(|o| o.kind == 1 && o.id.get() == user.get()) {
            return self.direct(user);
        }
        let timed_out = state.is_timed_out(member, self.now);
        let in_thread =
            self.private_thread && state.thread_members.get(&self.channel).is_some_and(|m| m.contains_key(&user));
        let key = (member.roles.as_slice(), timed_out, in_thread);
        if let Some(v) = self.known.get(&key) {
            return *v;
        }
        let v = self.direct(user);
        self.known.insert(key, v);
        v
    }
}

impl GuildActor {
    /// Adds a session and sends it GUILD_CREATE. Called once per guild after READY.
    pub fn subscribe(&mut self, session: SessionHandle) {
        if !self.state.guild.members.contains_key(&session.user_id) {
            return;
        }
        if session.intents.contains(Intents::GUILDS) && session.wants_guild(Some(self.state.guild.guild.id)) {
            let body = self.guild_create(&session);
            session.push(Outbound::dispatch("GUILD_CREATE", body));
        }
        self.state.subscribers.add(session);
    }

    /// Stops fanning out to an ended session (deferred, see [`Subscribers`]).
    pub fn unsubscribe(&mut self, session_id: u64) {
        self.state.subscribers.remove_later(session_id);
    }

    /// Subscribes every live session of `user` (after they join the guild).
    pub fn subscribe_user(&mut self, user: UserId) {
        for s in self.shared.sessions.of_user(user) {
            self.subscribe(s);
        }
    }

    /// Unsubscribes `user`'s sessions and tells them the guild is gone for them,
    /// and forgets their presence here (it is no longer the guild's to show).
    pub fn drop_user(&mut self, user: UserId) {
        let guild_id = self.state.guild.guild.id;
        if !self.state.guild.members.contains_key(&user) {
            self.state.presences.remove(&user);
        }
        let delete = Outbound::dispatch("GUILD_DELETE", to_bytes(&serde_json::json!({ "id": guild_id })));
        self.state.subscribers.retain(|s| {
            if s.user_id == user {
                s.push(delete.clone());
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
        // Members only: a presence recorded before a member left is not shown.
        let presences: Vec<&Presence> = if presences_on {
            self.scope.presences.values().filter(|p| state.members.contains_key(&p.user.id)).collect()
        } else {
            Vec::new()
        };
        m.serialize_entry("presences", &presences)?;
        m.serialize_entry("stage_instances", &[(); 0])?;
        m.serialize_entry("guild_scheduled_events", &[(); 0])?;
        m.serialize_entry("soundboard_sounds", &[(); 0])?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildhall_domain::entity::{Guild, Member, Overwrite, Role, ThreadMember};
    use guildhall_model::id::{GuildId, Id};
    use proptest::prelude::*;

    #[test]
    fn ended_subscribers_leave_in_one_pass_and_the_presence_count_follows() {
        let session = |id: u64, intents: Intents| {
            let (h, rx, _) = SessionHandle::new(id, UserId::new(id), intents, None, 50, 8);
            (h, rx)
        };
        let mut subs = Subscribers::default();
        let mut receivers = Vec::new();
        for id in 1..=200 {
            let intents = if id % 50 == 0 { Intents::GUILD_PRESENCES } else { Intents::GUILDS };
            let (h, rx) = session(id, intents);
            subs.add(h);
            receivers.push(rx);
        }
        assert_eq!((subs.len(), subs.presence_takers), (200, 4));
        // Re-adding an id replaces its entry.
        let (again, rx) = session(7, Intents::GUILDS);
        subs.add(again);
        receivers[6] = rx;
        assert_eq!(subs.len(), 200);
        // Ended sessions are noted, not removed one pass each ...
        for id in [50, 100, 150, 3] {
            subs.remove_later(id);
        }
        assert_eq!(subs.len(), 200);
        assert!(subs.has_ended());
        // ... until a compaction, which also drops sessions whose receiver is gone.
        receivers.remove(9); // session 10
        subs.compact();
        assert!(!subs.has_ended());
        let ids: Vec<u64> = subs.iter().map(|s| s.id).collect();
        assert_eq!(ids.len(), 195);
        assert!(![3, 10, 50, 100, 150].iter().any(|id| ids.contains(id)));
        assert_eq!(subs.presence_takers, 1, "only session 200 still takes presences");
        assert!(subs.any_takes_presences());
        // Many ended at once: compacted without waiting for a fan-out.
        for id in 11..=100 {
            subs.remove_later(id);
        }
        assert!(subs.len() < 195 && subs.len() >= 195 - 90);
    }

    const GUILD: u64 = 1000;
    const OWNER: u64 = 1;
    const TEXT: u64 = 500;
    const PUBLIC_THREAD: u64 = 600;
    const PRIVATE_THREAD: u64 = 601;
    const ORPHAN_THREAD: u64 = 602;
    const ROLES: [u64; 4] = [10, 11, 12, 13];
    const USERS: std::ops::Range<u64> = 1..12;

    fn role(id: u64, permissions: Permissions) -> Role {
        Role::new(RoleId::new(id), format!("r{id}"), id as i32, permissions)
    }

    fn state() -> GuildState {
        let g = Guild::new(GuildId::new(GUILD), "g", Id::new(OWNER));
        let mut s = GuildState::new(g);
        s.roles.insert(RoleId::new(GUILD), role(GUILD, Permissions::DEFAULT_EVERYONE));
        for r in ROLES {
            s.roles.insert(RoleId::new(r), role(r, Permissions::NONE));
        }
        let gid = Some(GuildId::new(GUILD));
        s.channels.insert(Id::new(TEXT), Channel::new(Id::new(TEXT), channel_type::GUILD_TEXT, gid));
        for (id, kind, parent) in [
            (PUBLIC_THREAD, channel_type::PUBLIC_THREAD, TEXT),
            (PRIVATE_THREAD, channel_type::PRIVATE_THREAD, TEXT),
            (ORPHAN_THREAD, channel_type::PUBLIC_THREAD, 999),
        ] {
            let mut c = Channel::new(Id::new(id), kind, gid);
            c.parent_id = Some(Id::new(parent));
            s.channels.insert(Id::new(id), c);
        }
        for u in USERS {
            s.members.insert(Id::new(u), Member::new(Id::new(u), Timestamp(0)));
        }
        s
    }

    /// One random change to the guild: what role/overwrite/member/owner edits do.
    #[derive(Debug, Clone)]
    enum Edit {
        RolePermissions(usize, u64),
        MemberRoles(u64, Vec<usize>),
        Overwrite { target: u64, kind: u8, allow: u64, deny: u64 },
        ClearOverwrites,
        Timeout(u64, Option<u64>),
        ThreadMember(u64, bool),
        Owner(u64),
        Leave(u64),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let user = USERS.start..USERS.end + 1;
        prop_oneof![
            (0..ROLES.len() + 1, any::<u64>()).prop_map(|(r, p)| Edit::RolePermissions(r, p)),
            (user.clone(), proptest::collection::vec(0..ROLES.len(), 0..4)).prop_map(|(u, r)| Edit::MemberRoles(u, r)),
            (prop_oneof![Just(GUILD), 10u64..14, user.clone()], 0u8..2, any::<u64>(), any::<u64>())
                .prop_map(|(target, kind, allow, deny)| Edit::Overwrite { target, kind, allow, deny }),
            Just(Edit::ClearOverwrites),
            (user.clone(), proptest::option::of(0u64..20)).prop_map(|(u, t)| Edit::Timeout(u, t)),
            (user.clone(), any::<bool>()).prop_map(|(u, b)| Edit::ThreadMember(u, b)),
            user.clone().prop_map(Edit::Owner),
            user.prop_map(Edit::Leave),
        ]
    }

    fn apply(s: &mut GuildState, e: &Edit) {
        let mask = |v: u64| {
            // Keep ADMINISTRATOR rare so the overwrite paths are exercised.
            let p = Permissions(v).truncate();
            if v.is_multiple_of(8) { p } else { p & !Permissions::ADMINISTRATOR }
        };
        let role_id = |i: usize| RoleId::new(if i == ROLES.len() { GUILD } else { ROLES[i] });
        match e {
            Edit::RolePermissions(r, p) => s.roles.get_mut(&role_id(*r)).unwrap().permissions = mask(*p),
            Edit::MemberRoles(u, roles) => {
                if let Some(m) = s.members.get_mut(&Id::new(*u)) {
                    m.roles = roles.iter().map(|r| RoleId::new(ROLES[*r])).collect();
                }
            }
            Edit::Overwrite { target, kind, allow, deny } => {
                let c = s.channels.get_mut(&Id::new(TEXT)).unwrap();
                c.permission_overwrites.retain(|o| o.id.get() != *target);
                c.permission_overwrites.push(Overwrite {
                    id: Id::new(*target),
                    kind: *kind,
                    allow: mask(*allow),
                    deny: mask(*deny),
                });
            }
            Edit::ClearOverwrites => s.channels.get_mut(&Id::new(TEXT)).unwrap().permission_overwrites.clear(),
            Edit::Timeout(u, t) => {
                if let Some(m) = s.members.get_mut(&Id::new(*u)) {
                    m.communication_disabled_until = t.map(Timestamp);
                }
            }
            Edit::ThreadMember(u, add) => {
                let members = s.thread_members.entry(Id::new(PRIVATE_THREAD)).or_default();
                if *add {
                    let tm = ThreadMember {
                        thread_id: Id::new(PRIVATE_THREAD),
                        user_id: Id::new(*u),
                        join_timestamp: Timestamp(0),
                        flags: 0,
                    };
                    members.insert(Id::new(*u), tm);
                } else {
                    members.remove(&Id::new(*u));
                }
            }
            Edit::Owner(u) => s.guild.owner_id = Id::new(*u),
            Edit::Leave(u) => {
                s.members.remove(&Id::new(*u));
            }
        }
    }

    proptest! {
        /// After any sequence of edits, the memoized answer equals
        /// `channel_permissions` for every user, channel and requirement, whatever
        /// order the users are asked in (so cached entries are reused).
        #[test]
        fn view_memo_equals_channel_permissions(
            edits in proptest::collection::vec(edit(), 0..40),
            order in Just((USERS.start..USERS.end + 2).collect::<Vec<u64>>()).prop_shuffle(),
        ) {
            let mut s = state();
            let now = Timestamp(10);
            for (i, e) in edits.iter().enumerate() {
                apply(&mut s, e);
                if i % 4 != 3 && i + 1 != edits.len() {
                    continue;
                }
                for ch in [TEXT, PUBLIC_THREAD, PRIVATE_THREAD, ORPHAN_THREAD, 777] {
                    for need in [Permissions::VIEW_CHANNEL, Permissions::VIEW_CHANNEL | Permissions::SEND_MESSAGES] {
                        let mut memo = ViewMemo::new(&s, Id::new(ch), need, now);
                        for _ in 0..2 {
                            for &u in &order {
                                let direct = channel_permissions(&s, Id::new(u), Id::new(ch), now).contains(need);
                                prop_assert_eq!(memo.admits(Id::new(u)), direct, "user {} channel {}", u, ch);
                            }
                        }
                    }
                }
            }
        }
    }
}
