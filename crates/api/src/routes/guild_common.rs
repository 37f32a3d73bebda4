//! Helpers shared by the guild-management routes (channels, roles, members, bans,
//! invites, guild modify/delete): membership and permission gates, member
//! removal with its events, rendering of members and users with `guild_id`, and
//! small body/query parsers (nullable fields, query booleans, random codes).

use guildhall_domain::GuildState;
use guildhall_domain::entity::Member;
use guildhall_domain::permissions::{channel_permissions, guild_permissions};
use guildhall_domain::wire::{MemberView, UserView};
use guildhall_model::id::{ChannelId, GuildId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp, error_code};
use guildhall_runtime::{Audience, ChannelHome, Error, Event, GuildActor};
use guildhall_store::Mutation;
use serde::{Deserialize, Deserializer, Serialize};

use crate::AppState;

/// The caller's membership, or 10004 Unknown Guild (Discord hides guilds the
/// caller is not in).
pub fn require_member(state: &GuildState, user: UserId) -> Result<&Member, Error> {
    state.members.get(&user).ok_or_else(Error::unknown_guild)
}

/// The caller's guild-level permissions (timeouts applied) if they include
/// `required`; 10004 for a non-member, 50013 otherwise.
pub fn require_guild_permission(state: &GuildState, user: UserId, required: Permissions) -> Result<Permissions, Error> {
    require_member(state, user)?;
    let p = guild_permissions(state, user, Timestamp::now());
    if !p.contains(required) {
        return Err(Error::missing_permissions());
    }
    Ok(p)
}

/// Whether `user` is the owner or has ADMINISTRATOR.
pub fn is_admin(state: &GuildState, user: UserId) -> bool {
    state.is_owner(user) || guild_permissions(state, user, Timestamp::now()).contains(Permissions::ADMINISTRATOR)
}

/// A member with its user, as REST returns it.
pub fn member_json(actor: &GuildActor, member: &Member) -> serde_json::Value {
    let user = actor.shared.directory.user(member.user_id);
    serde_json::to_value(MemberView::new(member, user.as_deref())).unwrap_or_default()
}

/// A member with its user and `guild_id`, as GUILD_MEMBER_ADD/UPDATE carry it.
pub fn member_event_json(actor: &GuildActor, member: &Member) -> serde_json::Value {
    let mut v = member_json(actor, member);
    v["guild_id"] = serde_json::json!(actor.state.guild.guild.id);
    v
}

/// A user as others see it, or a minimal `{id}` when the account is gone.
pub fn user_json(actor: &GuildActor, user: UserId) -> serde_json::Value {
    match actor.shared.directory.user(user) {
        Some(u) => serde_json::to_value(UserView::new(&u)).unwrap_or_default(),
        None => {
            serde_json::json!({ "id": user, "username": "Deleted User", "discriminator": "0", "avatar": null, "global_name": null })
        }
    }
}

/// Removes `user` from the guild's state and the directory, and queues the
/// writes and GUILD_MEMBER_REMOVE. The caller must later run `drop_user` (after
/// the write is durable) so the user's sessions get GUILD_DELETE.
pub fn remove_member(actor: &mut GuildActor, user: UserId, mutations: &mut Vec<Mutation>, events: &mut Vec<Event>) {
    let gid = actor.state.guild.guild.id;
    if actor.state.guild.members.remove(&user).is_none() {
        return;
    }
    mutations.push(Mutation::DeleteMember(gid, user));
    for (thread, members) in actor.state.guild.thread_members.iter_mut() {
        if members.remove(&user).is_some() {
            mutations.push(Mutation::DeleteThreadMember(gid, *thread, user));
        }
    }
    actor.shared.directory.remove_membership(user, gid);
    let body = serde_json::json!({ "guild_id": gid, "user": user_json(actor, user) });
    events.push(Event::guild("GUILD_MEMBER_REMOVE", gid, Intents::GUILD_MEMBERS, &body));
}

/// The guild that owns `channel`, for routes that act on guild channels only:
/// 50024 for a DM (and the channel lookup's own error for an unknown one).
pub fn guild_of_channel(s: &AppState, channel: ChannelId) -> Result<GuildId, Error> {
    match s.rt.channel_home(channel)? {
        ChannelHome::Guild(g) => Ok(g),
        ChannelHome::Private => {
            Err(Error::bad_request(error_code::CANNOT_EXECUTE_ON_DM, "Cannot execute action on a DM channel"))
        }
    }
}

/// Members who can see `channel` right now.
pub fn channel_viewers(state: &GuildState, channel: ChannelId) -> Vec<UserId> {
    let now = Timestamp::now();
    state
        .members
        .keys()
        .copied()
        .filter(|u| channel_permissions(state, *u, channel, now).contains(Permissions::VIEW_CHANNEL))
        .collect()
}

/// An event for exactly these users' guild sessions (e.g. CHANNEL_DELETE to those
/// who could see a channel that is now gone).
pub fn event_to_users(
    name: &'static str,
    gid: GuildId,
    users: Vec<UserId>,
    intent: Intents,
    body: &impl Serialize,
) -> Event {
    Event::new(name, body, Audience::Users { users, intent }, Some(gid))
}

/// `true|True|1` as Discord parses query booleans.
pub fn query_bool(v: Option<&str>) -> bool {
    matches!(v, Some("true" | "True" | "1"))
}

/// For `Option<Option<T>>` fields: absent → `None`, `null` → `Some(None)`.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Random alphanumeric code (invites).
pub fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = crate::auth::random_bytes::<32>();
    bytes.iter().take(len).map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect()
}

/// The `X-Audit-Log-Reason` header (percent-encoded by the libraries), ≤ 512 chars.
pub fn audit_reason(headers: &axum::http::HeaderMap) -> Option<String> {
    let raw = headers.get("x-audit-log-reason")?.to_str().ok()?;
    let decoded = crate::extract::percent_decode(&raw.replace('+', "%2B"));
    Some(decoded.chars().take(512).collect())
}

/// Validates an image data URI (`data:image/png;base64,...`) and returns the hash
/// Discord-style clients use to name it (`a_` prefix for animated GIFs).
pub fn image_hash(data: &str) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let rest = data.strip_prefix("data:image/")?;
    let (format, payload) = rest.split_once(";base64,")?;
    if !matches!(format, "png" | "jpeg" | "jpg" | "gif" | "webp") || payload.is_empty() || payload.len() > 14_000_000 {
        return None;
    }
    if !payload.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
        return None;
    }
    let mut out = String::new();
    for seed in [0u8, 1] {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        payload.hash(&mut h);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    Some(if format == "gif" { format!("a_{out}") } else { out })
}
