//! Members: list, search, get, modify (nick, roles, mute/deaf, timeout), role
//! add/remove, kick, leave, and the caller's own member. Each change emits
//! GUILD_MEMBER_UPDATE or GUILD_MEMBER_REMOVE; hierarchy rules as Discord's.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, patch, put};
use guildhall_domain::entity::Member;
use guildhall_domain::permissions::guild_permissions;
use guildhall_model::id::{ChannelId, GuildId, RoleId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::{Change, Error, ErrorKind, Event, FormErrors, GuildActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, no_content, ok_json};
use crate::extract::{DiscordJson, DiscordQuery, path_id, query_id, query_limit};
use crate::routes::guild_common::{
    member_event_json, member_json, nullable, remove_member, require_guild_permission, require_member,
};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_members,
    search_members,
    modify_me,
    get_member,
    modify_member,
    kick_member,
    add_role,
    remove_role,
    leave_guild,
    my_member
))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/guilds/{guild_id}/members", get(list_members))
        .route("/guilds/{guild_id}/members/search", get(search_members))
        .route("/guilds/{guild_id}/members/@me", patch(modify_me))
        .route("/guilds/{guild_id}/members/{user_id}", get(get_member).patch(modify_member).delete(kick_member))
        .route("/guilds/{guild_id}/members/{user_id}/roles/{role_id}", put(add_role).delete(remove_role))
        .route("/users/@me/guilds/{guild_id}", delete(leave_guild))
        .route("/users/@me/guilds/{guild_id}/member", get(my_member))
}

/// Longest timeout Discord allows.
const MAX_TIMEOUT_MS: u64 = 28 * 24 * 3600 * 1000;
/// Discord's "Target user is not connected to voice".
const NOT_IN_VOICE: u32 = 40032;
/// Discord's "Invalid Guild" (the owner cannot leave).
const INVALID_GUILD: u32 = 50055;

fn parse_user(raw: &str) -> Result<UserId, Error> {
    path_id::<guildhall_model::id::UserMarker>(raw, "user_id").map_err(|e| e.0)
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Cursor>)]
    after: Option<String>,
}

/// Listing members needs the GUILD_MEMBERS privileged intent for bots.
fn check_members_intent(s: &AppState, caller: &Caller) -> Result<(), Error> {
    if !caller.is_bot() {
        return Ok(());
    }
    let allowed =
        s.rt.directory
            .application_of_bot(caller.id())
            .is_some_and(|app| app.allowed_privileged_intents().contains(Intents::GUILD_MEMBERS));
    if allowed { Ok(()) } else { Err(Error::missing_access()) }
}

#[utoipa::path(get, path = "/guilds/{guild_id}/members", tag = "members", params(ListQuery), responses((status = 200, description = "Members by user id", body = [crate::openapi::schema::Member])))]
async fn list_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordQuery(q): DiscordQuery<ListQuery>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 1, 1000, "limit", &mut errors);
    let after: u64 = query_id(q.after.as_deref(), "after", &mut errors).unwrap_or(0);
    errors.finish()?;
    check_members_intent(&s, &caller)?;
    let me = caller.id();
    let value = s
        .rt
        .guild(gid)?
        .call(move |a: &mut GuildActor| {
            require_member(&a.state.guild, me)?;
            let mut ids: Vec<UserId> = a.state.guild.members.keys().copied().filter(|u| u.get() > after).collect();
            ids.sort_unstable();
            ids.truncate(limit);
            let list: Vec<serde_json::Value> = ids.iter().map(|u| member_json(a, &a.state.guild.members[u])).collect();
            Ok(Change::read(list))
        })
        .await?;
    Ok(ok_json(&value))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    #[serde(default)]
    #[param(value_type = String, max_length = 100)]
    query: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[utoipa::path(get, path = "/guilds/{guild_id}/members/search", tag = "members", params(SearchQuery), responses((status = 200, description = "Members whose username or nick starts with the query", body = [crate::openapi::schema::Member])))]
async fn search_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordQuery(q): DiscordQuery<SearchQuery>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 1, 1000, "limit", &mut errors);
    let query = q.query.unwrap_or_default();
    if query.is_empty() {
        errors.add("query", "BASE_TYPE_REQUIRED", "This field is required");
    } else if query.chars().count() > 100 {
        errors.add("query", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.");
    }
    errors.finish()?;
    let needle = query.to_lowercase();
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_member(&a.state.guild, me)?;
                let mut hits: Vec<&Member> = a
                    .state
                    .guild
                    .members
                    .values()
                    .filter(|m| {
                        let nick = m.nick.as_deref().is_some_and(|n| n.to_lowercase().starts_with(&needle));
                        nick || a.shared.directory.user(m.user_id).is_some_and(|u| {
                            u.username.to_lowercase().starts_with(&needle)
                                || u.global_name.as_deref().is_some_and(|g| g.to_lowercase().starts_with(&needle))
                        })
                    })
                    .collect();
                hits.sort_by_key(|m| m.user_id);
                hits.truncate(limit);
                Ok(Change::read(hits.into_iter().map(|m| member_json(a, m)).collect::<Vec<_>>()))
            })
            .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(get, path = "/guilds/{guild_id}/members/{user_id}", tag = "members", responses((status = 200, description = "The Member", body = crate::openapi::schema::Member)))]
async fn get_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let uid = parse_user(&user_id)?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_member(&a.state.guild, me)?;
                let m = a.state.guild.members.get(&uid).ok_or_else(Error::unknown_member)?;
                Ok(Change::read(member_json(a, m)))
            })
            .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(get, path = "/users/@me/guilds/{guild_id}/member", tag = "members", responses((status = 200, description = "The Member", body = crate::openapi::schema::Member)))]
async fn my_member(State(s): State<AppState>, caller: Caller, Path(guild_id): Path<String>) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                let m = require_member(&a.state.guild, me)?;
                Ok(Change::read(member_json(a, m)))
            })
            .await?;
    Ok(ok_json(&value))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct ModifyMember {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 32)]
    nick: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<Vec<crate::openapi::schema::Snowflake>>>)]
    roles: Option<Option<Vec<RoleId>>>,
    #[serde(default, deserialize_with = "nullable")]
    mute: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    deaf: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::Snowflake>>)]
    channel_id: Option<Option<ChannelId>>,
    #[serde(default, deserialize_with = "nullable")]
    communication_disabled_until: Option<Option<String>>,
}

/// Validated body: `timeout` is `Some(None)` to clear.
struct MemberChanges {
    nick: Option<Option<String>>,
    roles: Option<Vec<RoleId>>,
    mute: Option<bool>,
    deaf: Option<bool>,
    timeout: Option<Option<Timestamp>>,
}

fn validate_member_body(body: ModifyMember) -> Result<MemberChanges, Error> {
    let mut errors = FormErrors::default();
    if let Some(Some(n)) = &body.nick
        && n.chars().count() > 32
    {
        errors.add("nick", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.");
    }
    let timeout = match body.communication_disabled_until {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => match Timestamp::parse(&raw) {
            Some(t) if t.as_ms() > Timestamp::now().as_ms() + MAX_TIMEOUT_MS => {
                errors.add(
                    "communication_disabled_until",
                    "COMMUNICATION_DISABLED_TIMESTAMP_TOO_LONG",
                    "Communication disabled timestamp cannot be more than 28 days in the future",
                );
                None
            }
            Some(t) => Some(Some(t)),
            None => {
                errors.add("communication_disabled_until", "DATE_TIME_TYPE_PARSE", "Could not parse the timestamp.");
                None
            }
        },
    };
    errors.finish()?;
    if body.channel_id.is_some() {
        return Err(Error::bad_request(NOT_IN_VOICE, "Target user is not connected to voice."));
    }
    Ok(MemberChanges {
        nick: body.nick.map(|n| n.filter(|n| !n.trim().is_empty())),
        roles: body.roles.map(|r| r.unwrap_or_default()),
        mute: body.mute.map(|m| m.unwrap_or(false)),
        deaf: body.deaf.map(|d| d.unwrap_or(false)),
        timeout,
    })
}

/// Applies member changes with Discord's checks; returns the new member's JSON.
fn apply_member_changes(
    a: &mut GuildActor,
    me: UserId,
    uid: UserId,
    ch: MemberChanges,
) -> Result<Change<serde_json::Value>, Error> {
    let gid = a.state.guild.guild.id;
    let state = &a.state.guild;
    require_member(state, me)?;
    let before = state.members.get(&uid).cloned().ok_or_else(Error::unknown_member)?;
    let perms = guild_permissions(state, me, Timestamp::now());
    let mut m = before.clone();
    if let Some(nick) = ch.nick {
        let allowed = if uid == me {
            state.is_owner(me) || perms.intersects(Permissions::CHANGE_NICKNAME | Permissions::MANAGE_NICKNAMES)
        } else {
            perms.contains(Permissions::MANAGE_NICKNAMES) && state.outranks(me, uid)
        };
        if !allowed {
            return Err(Error::missing_permissions());
        }
        m.nick = nick;
    }
    if let Some(roles) = ch.roles {
        if !perms.contains(Permissions::MANAGE_ROLES) {
            return Err(Error::missing_permissions());
        }
        let mut errors = FormErrors::default();
        let mut wanted: Vec<RoleId> = Vec::new();
        for (i, r) in roles.iter().enumerate() {
            if !state.roles.contains_key(r) || *r == state.everyone_role_id() {
                errors.add(&format!("roles.{i}"), "UNKNOWN_ROLE", "Unknown role");
            } else if !wanted.contains(r) {
                wanted.push(*r);
            }
        }
        errors.finish()?;
        let changed = wanted
            .iter()
            .filter(|r| !before.roles.contains(r))
            .chain(before.roles.iter().filter(|r| !wanted.contains(r)));
        for r in changed {
            let Some(role) = state.roles.get(r) else { continue };
            if role.managed || !state.can_manage_role(me, role) {
                return Err(Error::missing_permissions());
            }
        }
        m.roles = wanted;
    }
    if let Some(mute) = ch.mute {
        if !perms.contains(Permissions::MUTE_MEMBERS) {
            return Err(Error::missing_permissions());
        }
        m.mute = mute;
    }
    if let Some(deaf) = ch.deaf {
        if !perms.contains(Permissions::DEAFEN_MEMBERS) {
            return Err(Error::missing_permissions());
        }
        m.deaf = deaf;
    }
    if let Some(timeout) = ch.timeout {
        // Owners and administrators cannot be timed out.
        let target_admin = guild_permissions(state, uid, Timestamp::now()).contains(Permissions::ADMINISTRATOR);
        if !perms.contains(Permissions::MODERATE_MEMBERS) || !state.outranks(me, uid) || target_admin {
            return Err(Error::missing_permissions());
        }
        m.communication_disabled_until = timeout;
    }
    if m == before {
        return Ok(Change::read(member_json(a, &m)));
    }
    a.state.guild.members.insert(uid, m.clone());
    let event = Event::guild("GUILD_MEMBER_UPDATE", gid, Intents::GUILD_MEMBERS, &member_event_json(a, &m));
    Ok(Change::write(vec![Mutation::PutMember(gid, m.clone())], vec![event], member_json(a, &m)))
}

#[utoipa::path(patch, path = "/guilds/{guild_id}/members/{user_id}", tag = "members", request_body = ModifyMember, responses((status = 200, description = "The Member", body = crate::openapi::schema::Member)))]
async fn modify_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, user_id)): Path<(String, String)>,
    DiscordJson(body): DiscordJson<ModifyMember>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let uid = parse_user(&user_id)?;
    let changes = validate_member_body(body)?;
    let me = caller.id();
    let value = s.rt.guild(gid)?.call(move |a: &mut GuildActor| apply_member_changes(a, me, uid, changes)).await?;
    Ok(ok_json(&value))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = ModifyCurrentMember)]
struct ModifyMe {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 32)]
    nick: Option<Option<String>>,
}

#[utoipa::path(patch, path = "/guilds/{guild_id}/members/@me", tag = "members", operation_id = "modify_current_member", request_body = ModifyMe, responses((status = 200, description = "The Member", body = crate::openapi::schema::Member)))]
async fn modify_me(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordJson(body): DiscordJson<ModifyMe>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let changes = validate_member_body(ModifyMember { nick: body.nick, ..ModifyMember::default() })?;
    let me = caller.id();
    let value = s.rt.guild(gid)?.call(move |a: &mut GuildActor| apply_member_changes(a, me, me, changes)).await?;
    Ok(ok_json(&value))
}

async fn change_role(
    s: &AppState,
    caller: &Caller,
    guild_id: &str,
    user_id: &str,
    role_id: &str,
    add: bool,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(guild_id, "guild_id")?;
    let uid = parse_user(user_id)?;
    let rid: RoleId = path_id(role_id, "role_id")?;
    let me = caller.id();
    s.rt.guild(gid)?
        .call(move |a: &mut GuildActor| {
            let state = &a.state.guild;
            require_guild_permission(state, me, Permissions::MANAGE_ROLES)?;
            let before = state.members.get(&uid).cloned().ok_or_else(Error::unknown_member)?;
            let role =
                state.roles.get(&rid).filter(|r| r.id != state.everyone_role_id()).ok_or_else(Error::unknown_role)?;
            if role.managed || !state.can_manage_role(me, role) {
                return Err(Error::missing_permissions());
            }
            let mut m = before.clone();
            m.roles.retain(|r| *r != rid);
            if add {
                m.roles.push(rid);
            }
            if m.roles.len() == before.roles.len() && (add == before.roles.contains(&rid)) {
                return Ok(Change::read(()));
            }
            let gid = state.guild.id;
            a.state.guild.members.insert(uid, m.clone());
            let event = Event::guild("GUILD_MEMBER_UPDATE", gid, Intents::GUILD_MEMBERS, &member_event_json(a, &m));
            Ok(Change::write(vec![Mutation::PutMember(gid, m)], vec![event], ()))
        })
        .await?;
    Ok(no_content())
}

#[utoipa::path(put, path = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", tag = "members", responses((status = 204, description = "Done; no body")))]
async fn add_role(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, user_id, role_id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    change_role(&s, &caller, &guild_id, &user_id, &role_id, true).await
}

#[utoipa::path(delete, path = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", tag = "members", responses((status = 204, description = "Done; no body")))]
async fn remove_role(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, user_id, role_id)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    change_role(&s, &caller, &guild_id, &user_id, &role_id, false).await
}

#[utoipa::path(delete, path = "/guilds/{guild_id}/members/{user_id}", tag = "members", responses((status = 204, description = "Done; no body")))]
async fn kick_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let uid = parse_user(&user_id)?;
    let me = caller.id();
    let handle = s.rt.guild(gid)?;
    handle
        .call(move |a: &mut GuildActor| {
            require_guild_permission(&a.state.guild, me, Permissions::KICK_MEMBERS)?;
            if !a.state.guild.members.contains_key(&uid) {
                return Err(Error::unknown_member());
            }
            if !a.state.guild.outranks(me, uid) {
                return Err(Error::missing_permissions());
            }
            let (mut mutations, mut events) = (Vec::new(), Vec::new());
            remove_member(a, uid, &mut mutations, &mut events);
            Ok(Change::write(mutations, events, ()))
        })
        .await?;
    handle.cast_wait(move |a: &mut GuildActor| a.drop_user(uid)).await;
    Ok(no_content())
}

#[utoipa::path(delete, path = "/users/@me/guilds/{guild_id}", tag = "members", responses((status = 204, description = "Done; no body")))]
async fn leave_guild(State(s): State<AppState>, caller: Caller, Path(guild_id): Path<String>) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let handle = s.rt.guild(gid)?;
    handle
        .call(move |a: &mut GuildActor| {
            require_member(&a.state.guild, me)?;
            if a.state.guild.is_owner(me) {
                return Err(Error::new(ErrorKind::BadRequest, INVALID_GUILD, "Invalid Guild"));
            }
            let (mut mutations, mut events) = (Vec::new(), Vec::new());
            remove_member(a, me, &mut mutations, &mut events);
            Ok(Change::write(mutations, events, ()))
        })
        .await?;
    handle.cast_wait(move |a: &mut GuildActor| a.drop_user(me)).await;
    Ok(no_content())
}
