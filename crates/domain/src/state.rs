//! `GuildState`: everything one guild actor owns in memory. Messages are not here;
//! they live in the store, keyed by (channel, message).

use std::collections::{BTreeMap, HashMap};

use guildhall_model::Timestamp;
use guildhall_model::id::{ChannelId, RoleId, UserId};

use crate::entity::{Ban, Channel, Guild, Invite, Member, Role, ThreadMember};

#[derive(Clone, Debug)]
pub struct GuildState {
    pub guild: Guild,
    pub roles: BTreeMap<RoleId, Role>,
    pub channels: BTreeMap<ChannelId, Channel>,
    pub members: HashMap<UserId, Member>,
    pub bans: HashMap<UserId, Ban>,
    pub invites: HashMap<String, Invite>,
    /// Thread id → members of that thread.
    pub thread_members: HashMap<ChannelId, BTreeMap<UserId, ThreadMember>>,
}

impl GuildState {
    pub fn new(guild: Guild) -> GuildState {
        GuildState {
            guild,
            roles: BTreeMap::new(),
            channels: BTreeMap::new(),
            members: HashMap::new(),
            bans: HashMap::new(),
            invites: HashMap::new(),
            thread_members: HashMap::new(),
        }
    }

    /// The @everyone role's id (equal to the guild's id).
    pub fn everyone_role_id(&self) -> RoleId {
        self.guild.id.cast()
    }

    pub fn is_owner(&self, user: UserId) -> bool {
        self.guild.owner_id == user
    }

    /// Roles sorted as Discord lists them: by position, then id.
    pub fn roles_sorted(&self) -> Vec<&Role> {
        let mut roles: Vec<&Role> = self.roles.values().collect();
        roles.sort_by_key(|r| (r.position, r.id));
        roles
    }

    /// A member's highest role as (position, id); @everyone is (0, guild id).
    pub fn highest_role(&self, member: &Member) -> (i32, RoleId) {
        member
            .roles
            .iter()
            .filter_map(|id| self.roles.get(id))
            .map(|r| (r.position, r.id))
            .max()
            .unwrap_or((0, self.everyone_role_id()))
    }

    /// Whether `actor` outranks `target` for kicks, bans, nicknames and timeouts:
    /// the owner outranks everyone, nobody outranks the owner, and otherwise the
    /// actor's highest role must be strictly above the target's.
    pub fn outranks(&self, actor: UserId, target: UserId) -> bool {
        if self.is_owner(target) {
            return false;
        }
        if self.is_owner(actor) {
            return true;
        }
        match (self.members.get(&actor), self.members.get(&target)) {
            (Some(a), Some(t)) => self.highest_role(a).0 > self.highest_role(t).0,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// Whether `actor` may edit, assign or delete `role` (it must sit strictly below
    /// the actor's highest role; the owner may touch any role).
    pub fn can_manage_role(&self, actor: UserId, role: &Role) -> bool {
        if self.is_owner(actor) {
            return true;
        }
        match self.members.get(&actor) {
            Some(m) => self.highest_role(m) > (role.position, role.id),
            None => false,
        }
    }

    /// The channel's parent category or, for a thread, its parent channel.
    pub fn parent_of(&self, channel: &Channel) -> Option<&Channel> {
        channel.parent_id.and_then(|id| self.channels.get(&id))
    }

    /// Threads that are not archived.
    pub fn active_threads(&self) -> impl Iterator<Item = &Channel> {
        self.channels.values().filter(|c| {
            crate::entity::channel_type::is_thread(c.kind) && !c.thread_metadata.as_ref().is_some_and(|m| m.archived)
        })
    }

    pub fn is_timed_out(&self, member: &Member, now: Timestamp) -> bool {
        member.communication_disabled_until.is_some_and(|t| t > now)
    }
}
