//! Discord's permission algorithm, exactly as Discord computes it: owner,
//! @everyone, roles, ADMINISTRATOR, then channel overwrites (@everyone, roles
//! combined, member) and the implicit rules. A pure function of a guild snapshot.

use guildhall_model::id::{ChannelId, UserId};
use guildhall_model::{Permissions, Timestamp};

use crate::entity::{Channel, Member, channel_type};
use crate::state::GuildState;

/// Guild-level permissions of `user`; `NONE` for a non-member.
pub fn base_permissions(state: &GuildState, user: UserId) -> Permissions {
    if state.is_owner(user) {
        return Permissions::ALL;
    }
    let Some(member) = state.members.get(&user) else {
        return Permissions::NONE;
    };
    base_for_member(state, member)
}

fn base_for_member(state: &GuildState, member: &Member) -> Permissions {
    let mut p = state.roles.get(&state.everyone_role_id()).map(|r| r.permissions).unwrap_or(Permissions::NONE);
    for role_id in &member.roles {
        if let Some(role) = state.roles.get(role_id) {
            p |= role.permissions;
        }
    }
    if p.contains(Permissions::ADMINISTRATOR) { Permissions::ALL } else { p }
}

/// Guild-level permissions with the timeout rule applied (what a member may do
/// right now outside any channel).
pub fn guild_permissions(state: &GuildState, user: UserId, now: Timestamp) -> Permissions {
    let p = base_permissions(state, user);
    match state.members.get(&user) {
        Some(m) if !p.contains(Permissions::ADMINISTRATOR) && state.is_timed_out(m, now) => {
            p & (Permissions::VIEW_CHANNEL | Permissions::READ_MESSAGE_HISTORY)
        }
        _ => p,
    }
}

/// Permissions of `user` in `channel_id`; `NONE` when the channel is unknown or the
/// user is not a member. Threads use their parent's overwrites, with
/// SEND_MESSAGES_IN_THREADS standing in for SEND_MESSAGES.
pub fn channel_permissions(state: &GuildState, user: UserId, channel_id: ChannelId, now: Timestamp) -> Permissions {
    let Some(channel) = state.channels.get(&channel_id) else {
        return Permissions::NONE;
    };
    if channel_type::is_thread(channel.kind) {
        let Some(parent) = state.parent_of(channel) else {
            return Permissions::NONE;
        };
        let mut p = permissions_in(state, user, parent, now);
        let in_threads = p.contains(Permissions::SEND_MESSAGES_IN_THREADS);
        p &= !Permissions::SEND_MESSAGES;
        if in_threads {
            p |= Permissions::SEND_MESSAGES;
        }
        // A private thread is visible only to its members and to thread managers.
        if channel.kind == channel_type::PRIVATE_THREAD
            && !p.contains(Permissions::MANAGE_THREADS)
            && !state.thread_members.get(&channel.id).is_some_and(|m| m.contains_key(&user))
        {
            return Permissions::NONE;
        }
        return p;
    }
    permissions_in(state, user, channel, now)
}

/// The overwrite steps and implicit rules for one (non-thread) channel.
pub fn permissions_in(state: &GuildState, user: UserId, channel: &Channel, now: Timestamp) -> Permissions {
    if state.is_owner(user) {
        return Permissions::ALL;
    }
    let Some(member) = state.members.get(&user) else {
        return Permissions::NONE;
    };
    let base = base_for_member(state, member);
    if base.contains(Permissions::ADMINISTRATOR) {
        return Permissions::ALL;
    }
    let mut p = apply_overwrites(state, member, channel, base);

    if !p.contains(Permissions::SEND_MESSAGES) {
        p &= !(Permissions::SEND_TTS_MESSAGES
            | Permissions::MENTION_EVERYONE
            | Permissions::EMBED_LINKS
            | Permissions::ATTACH_FILES);
    }
    if !p.contains(Permissions::VIEW_CHANNEL) {
        p &= !Permissions::CHANNEL_SCOPED;
    }
    if channel_type::is_voice(channel.kind) && !p.contains(Permissions::CONNECT) {
        // As discord.py does: without CONNECT the voice permissions, and managing
        // the channel, go too.
        p &= !(Permissions::CONNECT
            | Permissions::SPEAK
            | Permissions::MUTE_MEMBERS
            | Permissions::DEAFEN_MEMBERS
            | Permissions::MOVE_MEMBERS
            | Permissions::USE_VAD
            | Permissions::PRIORITY_SPEAKER
            | Permissions::STREAM
            | Permissions::REQUEST_TO_SPEAK
            | Permissions::USE_EMBEDDED_ACTIVITIES
            | Permissions::USE_SOUNDBOARD
            | Permissions::USE_EXTERNAL_SOUNDS
            | Permissions::SET_VOICE_CHANNEL_STATUS
            | Permissions::MANAGE_CHANNELS
            | Permissions::MANAGE_ROLES);
    }
    if state.is_timed_out(member, now) {
        p &= Permissions::VIEW_CHANNEL | Permissions::READ_MESSAGE_HISTORY;
    }
    p
}

fn apply_overwrites(state: &GuildState, member: &Member, channel: &Channel, base: Permissions) -> Permissions {
    let mut p = base;
    let everyone = state.guild.id.get();
    if let Some(o) = channel.permission_overwrites.iter().find(|o| o.id.get() == everyone) {
        p &= !o.deny;
        p |= o.allow;
    }
    let mut allow = Permissions::NONE;
    let mut deny = Permissions::NONE;
    for o in &channel.permission_overwrites {
        if o.kind == 0 && o.id.get() != everyone && member.roles.iter().any(|r| r.get() == o.id.get()) {
            allow |= o.allow;
            deny |= o.deny;
        }
    }
    p &= !deny;
    p |= allow;
    if let Some(o) = channel.permission_overwrites.iter().find(|o| o.kind == 1 && o.id.get() == member.user_id.get()) {
        p &= !o.deny;
        p |= o.allow;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::{Guild, Overwrite, Role};
    use guildhall_model::id::{GuildId, Id, RoleId};
    use proptest::prelude::*;

    const GUILD: u64 = 1000;
    const OWNER: u64 = 1;
    const ALICE: u64 = 2;
    const CH: u64 = 500;

    fn guild() -> GuildState {
        let g = Guild::new(GuildId::new(GUILD), "g", Id::new(OWNER));
        let mut s = GuildState::new(g);
        s.roles.insert(RoleId::new(GUILD), role(GUILD, 0, Permissions::DEFAULT_EVERYONE));
        s.channels.insert(Id::new(CH), Channel::new(Id::new(CH), 0, Some(GuildId::new(GUILD))));
        for u in [OWNER, ALICE] {
            s.members.insert(Id::new(u), Member::new(Id::new(u), Timestamp(0)));
        }
        s
    }

    fn role(id: u64, position: i32, permissions: Permissions) -> Role {
        Role::new(RoleId::new(id), format!("r{id}"), position, permissions)
    }

    fn ow(id: u64, kind: u8, allow: Permissions, deny: Permissions) -> Overwrite {
        Overwrite { id: Id::new(id), kind, allow, deny }
    }

    fn chan(s: &mut GuildState) -> &mut Channel {
        s.channels.get_mut(&Id::new(CH)).unwrap()
    }

    #[test]
    fn owner_has_everything_and_non_member_nothing() {
        let s = guild();
        assert_eq!(channel_permissions(&s, Id::new(OWNER), Id::new(CH), Timestamp(0)), Permissions::ALL);
        assert_eq!(channel_permissions(&s, Id::new(99), Id::new(CH), Timestamp(0)), Permissions::NONE);
    }

    #[test]
    fn overwrite_order_everyone_then_roles_then_member() {
        let mut s = guild();
        s.roles.insert(RoleId::new(10), role(10, 1, Permissions::NONE));
        s.roles.insert(RoleId::new(11), role(11, 2, Permissions::NONE));
        s.members.get_mut(&Id::new(ALICE)).unwrap().roles = vec![RoleId::new(10), RoleId::new(11)];
        let send = Permissions::SEND_MESSAGES;
        chan(&mut s).permission_overwrites = vec![
            ow(GUILD, 0, Permissions::NONE, send),
            ow(10, 0, Permissions::NONE, send),
            ow(11, 0, send, Permissions::NONE),
        ];
        // Allow wins over deny between roles.
        assert!(channel_permissions(&s, Id::new(ALICE), Id::new(CH), Timestamp(0)).contains(send));
        // Member overwrite wins over roles.
        chan(&mut s).permission_overwrites.push(ow(ALICE, 1, Permissions::NONE, send));
        assert!(!channel_permissions(&s, Id::new(ALICE), Id::new(CH), Timestamp(0)).contains(send));
    }

    #[test]
    fn no_view_means_nothing_and_no_send_clears_dependents() {
        let mut s = guild();
        chan(&mut s).permission_overwrites = vec![ow(GUILD, 0, Permissions::NONE, Permissions::SEND_MESSAGES)];
        let p = channel_permissions(&s, Id::new(ALICE), Id::new(CH), Timestamp(0));
        assert!(!p.contains(Permissions::ATTACH_FILES));
        assert!(p.contains(Permissions::VIEW_CHANNEL));
        chan(&mut s).permission_overwrites = vec![ow(GUILD, 0, Permissions::NONE, Permissions::VIEW_CHANNEL)];
        let p = channel_permissions(&s, Id::new(ALICE), Id::new(CH), Timestamp(0));
        assert!(!p.intersects(Permissions::CHANNEL_SCOPED));
    }

    #[test]
    fn administrator_ignores_overwrites_and_timeout_restricts() {
        let mut s = guild();
        s.roles.insert(RoleId::new(10), role(10, 1, Permissions::ADMINISTRATOR));
        s.members.get_mut(&Id::new(ALICE)).unwrap().roles = vec![RoleId::new(10)];
        chan(&mut s).permission_overwrites = vec![ow(ALICE, 1, Permissions::NONE, Permissions::VIEW_CHANNEL)];
        assert_eq!(channel_permissions(&s, Id::new(ALICE), Id::new(CH), Timestamp(0)), Permissions::ALL);
        s.members.get_mut(&Id::new(ALICE)).unwrap().roles.clear();
        chan(&mut s).permission_overwrites.clear();
        s.members.get_mut(&Id::new(ALICE)).unwrap().communication_disabled_until = Some(Timestamp(10));
        let p = channel_permissions(&s, Id::new(ALICE), Id::new(CH), Timestamp(5));
        assert_eq!(p, Permissions::VIEW_CHANNEL | Permissions::READ_MESSAGE_HISTORY);
    }

    #[test]
    fn hierarchy() {
        let mut s = guild();
        s.members.insert(Id::new(3), Member::new(Id::new(3), Timestamp(0)));
        s.roles.insert(RoleId::new(10), role(10, 5, Permissions::KICK_MEMBERS));
        s.roles.insert(RoleId::new(11), role(11, 3, Permissions::NONE));
        s.members.get_mut(&Id::new(ALICE)).unwrap().roles = vec![RoleId::new(10)];
        s.members.get_mut(&Id::new(3)).unwrap().roles = vec![RoleId::new(11)];
        assert!(s.outranks(Id::new(ALICE), Id::new(3)));
        assert!(!s.outranks(Id::new(3), Id::new(ALICE)));
        assert!(!s.outranks(Id::new(ALICE), Id::new(OWNER)));
        assert!(s.outranks(Id::new(OWNER), Id::new(ALICE)));
        let r11 = s.roles[&RoleId::new(11)].clone();
        let r10 = s.roles[&RoleId::new(10)].clone();
        assert!(s.can_manage_role(Id::new(ALICE), &r11));
        assert!(!s.can_manage_role(Id::new(ALICE), &r10));
    }

    proptest! {
        /// Reference model: the algorithm written out bit by bit must agree with the
        /// calculator for random roles and overwrites.
        #[test]
        fn matches_reference(
            everyone in any::<u64>(), r1 in any::<u64>(), r2 in any::<u64>(),
            has1 in any::<bool>(), has2 in any::<bool>(),
            o in proptest::collection::vec((0u8..4, any::<u64>(), any::<u64>()), 0..4),
        ) {
            let mut s = guild();
            let mask = |v: u64| Permissions(v).truncate();
            s.roles.get_mut(&RoleId::new(GUILD)).unwrap().permissions = mask(everyone);
            s.roles.insert(RoleId::new(10), role(10, 1, mask(r1)));
            s.roles.insert(RoleId::new(11), role(11, 2, mask(r2)));
            let mut roles = vec![];
            if has1 { roles.push(RoleId::new(10)); }
            if has2 { roles.push(RoleId::new(11)); }
            s.members.get_mut(&Id::new(ALICE)).unwrap().roles = roles.clone();
            let targets = [(GUILD, 0u8), (10, 0), (11, 0), (ALICE, 1)];
            let mut seen = std::collections::HashSet::new();
            let ows: Vec<Overwrite> = o.into_iter()
                .filter(|(t, _, _)| seen.insert(*t))
                .map(|(t, a, d)| { let (id, k) = targets[t as usize]; ow(id, k, mask(a), mask(d)) })
                .collect();
            chan(&mut s).permission_overwrites = ows.clone();
            let got = channel_permissions(&s, Id::new(ALICE), Id::new(CH), Timestamp(0));

            let mut base = mask(everyone).0;
            if has1 { base |= mask(r1).0; }
            if has2 { base |= mask(r2).0; }
            let expected = if base & Permissions::ADMINISTRATOR.0 != 0 { Permissions::ALL.0 } else {
                let mut p = base;
                if let Some(o) = ows.iter().find(|o| o.id.get() == GUILD) { p = (p & !o.deny.0) | o.allow.0; }
                let (mut a, mut d) = (0, 0);
                for o in ows.iter().filter(|o| o.kind == 0 && o.id.get() != GUILD && roles.iter().any(|r| r.get() == o.id.get())) { a |= o.allow.0; d |= o.deny.0; }
                p = (p & !d) | a;
                if let Some(o) = ows.iter().find(|o| o.kind == 1) { p = (p & !o.deny.0) | o.allow.0; }
                if p & Permissions::SEND_MESSAGES.0 == 0 { p &= !(Permissions::SEND_TTS_MESSAGES.0 | Permissions::MENTION_EVERYONE.0 | Permissions::EMBED_LINKS.0 | Permissions::ATTACH_FILES.0); }
                if p & Permissions::VIEW_CHANNEL.0 == 0 { p &= !Permissions::CHANNEL_SCOPED.0; }
                p
            };
            prop_assert_eq!(got.0, expected);
        }
    }
}
