//! Roles: list, get, create, reorder, modify and delete, with Discord's rules —
//! MANAGE_ROLES, only roles below the actor's highest role, never granting a
//! permission the actor lacks, @everyone undeletable, 250 roles at most.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use guildhall_domain::GuildState;
use guildhall_domain::entity::Role;
use guildhall_domain::permissions::guild_permissions;
use guildhall_domain::wire::RoleView;
use guildhall_model::error_code;
use guildhall_model::id::{GuildId, RoleId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::{Change, Error, Event, FormErrors, GuildActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, no_content, ok_json};
use crate::extract::{DiscordJson, path_id};
use crate::routes::guild_common::{
    channel_viewers, event_to_users, is_admin, nullable, require_guild_permission, require_member,
};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_roles, create_role, reorder_roles, get_role, modify_role, delete_role))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/guilds/{guild_id}/roles", get(list_roles).post(create_role).patch(reorder_roles))
        .route("/guilds/{guild_id}/roles/{role_id}", get(get_role).patch(modify_role).delete(delete_role))
}

/// Discord's per-guild role limit.
const MAX_ROLES: usize = 250;
/// Discord's "Invalid Role" code (e.g. deleting @everyone).
const INVALID_ROLE: u32 = 50028;

pub fn role_json(r: &Role) -> serde_json::Value {
    serde_json::to_value(RoleView::new(r)).unwrap_or_default()
}

fn roles_json(state: &GuildState) -> Vec<serde_json::Value> {
    state.roles_sorted().into_iter().map(role_json).collect()
}

fn role_event(name: &'static str, gid: GuildId, r: &Role) -> Event {
    Event::guild(name, gid, Intents::GUILDS, &serde_json::json!({ "guild_id": gid, "role": role_json(r) }))
}

/// The highest role position the actor may place or edit roles under;
/// `i32::MAX` for the owner.
fn ceiling(state: &GuildState, actor: UserId) -> i32 {
    if state.is_owner(actor) {
        return i32::MAX;
    }
    state.members.get(&actor).map_or(0, |m| state.highest_role(m).0)
}

/// New permission bits must be ones the actor has (administrators may grant any).
fn check_grant(state: &GuildState, actor: UserId, old: Permissions, new: Permissions) -> Result<(), Error> {
    if is_admin(state, actor) {
        return Ok(());
    }
    let added = new & !old;
    if guild_permissions(state, actor, Timestamp::now()).contains(added) {
        Ok(())
    } else {
        Err(Error::missing_permissions())
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = RoleColorsBody)]
struct ColorsBody {
    #[serde(default)]
    primary_color: Option<u32>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct RoleBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 100)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::PermissionBits>>)]
    permissions: Option<Option<Permissions>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(maximum = 16777215)]
    color: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    colors: Option<Option<ColorsBody>>,
    #[serde(default, deserialize_with = "nullable")]
    hoist: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    icon: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 32)]
    unicode_emoji: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    mentionable: Option<Option<bool>>,
}

impl RoleBody {
    fn validate(&self) -> Result<(), Error> {
        let mut errors = FormErrors::default();
        if let Some(Some(n)) = &self.name
            && n.chars().count() > 100
        {
            errors.add("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.");
        }
        let color =
            self.color.flatten().or(self.colors.as_ref().and_then(|c| c.as_ref()).and_then(|c| c.primary_color));
        if color.is_some_and(|c| c > 0xFF_FFFF) {
            errors.add("color", "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215.");
        }
        if let Some(Some(e)) = &self.unicode_emoji
            && e.chars().count() > 32
        {
            errors.add("unicode_emoji", "BASE_TYPE_MAX_LENGTH", "Must be 32 or fewer in length.");
        }
        errors.finish()
    }

    /// Applies the body's fields to `r` (permissions handled by the caller).
    fn apply(&self, r: &mut Role) {
        if let Some(n) = &self.name
            && (r.position != 0 || r.name != "@everyone")
        {
            r.name = n.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| "new role".into());
        }
        if let Some(c) = self.color {
            r.color = c.unwrap_or(0);
        }
        if let Some(Some(c)) = &self.colors
            && let Some(p) = c.primary_color
        {
            r.color = p;
        }
        if let Some(h) = self.hoist {
            r.hoist = h.unwrap_or(false);
        }
        if let Some(i) = &self.icon {
            r.icon = i.clone();
        }
        if let Some(e) = &self.unicode_emoji {
            r.unicode_emoji = e.clone();
        }
        if let Some(m) = self.mentionable {
            r.mentionable = m.unwrap_or(false);
        }
    }
}

#[utoipa::path(get, path = "/guilds/{guild_id}/roles", tag = "roles", responses((status = 200, description = "The Role list", body = [crate::openapi::schema::Role])))]
async fn list_roles(State(s): State<AppState>, caller: Caller, Path(guild_id): Path<String>) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_member(&a.state.guild, me)?;
                Ok(Change::read(roles_json(&a.state.guild)))
            })
            .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(get, path = "/guilds/{guild_id}/roles/{role_id}", tag = "roles", responses((status = 200, description = "The Role", body = crate::openapi::schema::Role)))]
async fn get_role(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, role_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let rid: RoleId = path_id(&role_id, "role_id")?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_member(&a.state.guild, me)?;
                let r = a.state.guild.roles.get(&rid).ok_or_else(Error::unknown_role)?;
                Ok(Change::read(role_json(r)))
            })
            .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(post, path = "/guilds/{guild_id}/roles", tag = "roles", request_body = RoleBody, responses((status = 200, description = "The new role", body = crate::openapi::schema::Role)))]
async fn create_role(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordJson(body): DiscordJson<RoleBody>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    body.validate()?;
    let me = caller.id();
    let rt = s.rt.clone();
    let value = s
        .rt
        .guild(gid)?
        .call(move |a: &mut GuildActor| {
            require_guild_permission(&a.state.guild, me, Permissions::MANAGE_ROLES)?;
            if a.state.guild.roles.len() >= MAX_ROLES {
                return Err(Error::bad_request(error_code::MAX_ROLES, "Maximum number of guild roles reached (250)"));
            }
            let everyone = a.state.guild.roles.get(&a.state.guild.everyone_role_id()).map(|r| r.permissions);
            let permissions = match body.permissions {
                Some(Some(p)) => p.truncate(),
                _ => everyone.unwrap_or(Permissions::DEFAULT_EVERYONE),
            };
            check_grant(&a.state.guild, me, Permissions::NONE, permissions)?;
            let mut role = Role {
                id: rt.next_id(),
                name: "new role".into(),
                color: 0,
                hoist: false,
                icon: None,
                unicode_emoji: None,
                position: 1,
                permissions,
                managed: false,
                mentionable: false,
                flags: 0,
                bot_id: None,
            };
            body.apply(&mut role);
            // New roles go to position 1, just above @everyone; the rest move up.
            let mut mutations = Vec::new();
            let mut events = Vec::new();
            let everyone_id = a.state.guild.everyone_role_id();
            for r in a.state.guild.roles.values_mut() {
                if r.id != everyone_id && r.position >= 1 {
                    r.position += 1;
                    mutations.push(Mutation::PutRole(gid, r.clone()));
                    events.push(role_event("GUILD_ROLE_UPDATE", gid, r));
                }
            }
            a.state.guild.roles.insert(role.id, role.clone());
            mutations.push(Mutation::PutRole(gid, role.clone()));
            events.insert(0, role_event("GUILD_ROLE_CREATE", gid, &role));
            Ok(Change::write(mutations, events, role_json(&role)))
        })
        .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(patch, path = "/guilds/{guild_id}/roles/{role_id}", tag = "roles", request_body = RoleBody, responses((status = 200, description = "The Role", body = crate::openapi::schema::Role)))]
async fn modify_role(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, role_id)): Path<(String, String)>,
    DiscordJson(body): DiscordJson<RoleBody>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let rid: RoleId = path_id(&role_id, "role_id")?;
    body.validate()?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_guild_permission(&a.state.guild, me, Permissions::MANAGE_ROLES)?;
                let before = a.state.guild.roles.get(&rid).cloned().ok_or_else(Error::unknown_role)?;
                let everyone_by_admin = rid == a.state.guild.everyone_role_id() && is_admin(&a.state.guild, me);
                if !(a.state.guild.can_manage_role(me, &before) || everyone_by_admin) {
                    return Err(Error::missing_permissions());
                }
                let mut r = before.clone();
                body.apply(&mut r);
                if let Some(p) = body.permissions {
                    r.permissions = p.unwrap_or(Permissions::NONE).truncate();
                }
                check_grant(&a.state.guild, me, before.permissions, r.permissions)?;
                if r == before {
                    return Ok(Change::read(role_json(&r)));
                }
                a.state.guild.roles.insert(rid, r.clone());
                let event = role_event("GUILD_ROLE_UPDATE", gid, &r);
                Ok(Change::write(vec![Mutation::PutRole(gid, r.clone())], vec![event], role_json(&r)))
            })
            .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(delete, path = "/guilds/{guild_id}/roles/{role_id}", tag = "roles", responses((status = 204, description = "Done; no body")))]
async fn delete_role(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, role_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let rid: RoleId = path_id(&role_id, "role_id")?;
    let me = caller.id();
    s.rt.guild(gid)?
        .call(move |a: &mut GuildActor| {
            require_guild_permission(&a.state.guild, me, Permissions::MANAGE_ROLES)?;
            let role = a.state.guild.roles.get(&rid).cloned().ok_or_else(Error::unknown_role)?;
            if rid == a.state.guild.everyone_role_id() {
                return Err(Error::bad_request(INVALID_ROLE, "Invalid Role"));
            }
            if !a.state.guild.can_manage_role(me, &role) {
                return Err(Error::missing_permissions());
            }
            if role.managed {
                return Err(Error::bad_request(INVALID_ROLE, "Cannot delete a managed role"));
            }
            let mut mutations = vec![Mutation::DeleteRole(gid, rid)];
            let mut events = Vec::new();
            // Viewers per channel with an overwrite for this role, before the change.
            let touched: Vec<_> = a
                .state
                .guild
                .channels
                .values()
                .filter(|c| c.permission_overwrites.iter().any(|o| o.kind == 0 && o.id.get() == rid.get()))
                .map(|c| c.id)
                .collect();
            let viewers: Vec<_> = touched.iter().map(|c| channel_viewers(&a.state.guild, *c)).collect();
            a.state.guild.roles.remove(&rid);
            for m in a.state.guild.members.values_mut() {
                if m.roles.contains(&rid) {
                    m.roles.retain(|r| *r != rid);
                    mutations.push(Mutation::PutMember(gid, m.clone()));
                }
            }
            let role_delete = serde_json::json!({ "guild_id": gid, "role_id": rid });
            events.push(Event::guild("GUILD_ROLE_DELETE", gid, Intents::GUILDS, &role_delete));
            for (cid, before) in touched.into_iter().zip(viewers) {
                let Some(c) = a.state.guild.channels.get_mut(&cid) else { continue };
                c.permission_overwrites.retain(|o| !(o.kind == 0 && o.id.get() == rid.get()));
                let c = c.clone();
                let body = serde_json::to_value(guildhall_domain::wire::ChannelView::new(&c)).unwrap_or_default();
                let after = channel_viewers(&a.state.guild, cid);
                let stayed: Vec<UserId> = after.iter().copied().filter(|u| before.contains(u)).collect();
                let gained: Vec<UserId> = after.iter().copied().filter(|u| !before.contains(u)).collect();
                let lost: Vec<UserId> = before.iter().copied().filter(|u| !after.contains(u)).collect();
                events.push(event_to_users("CHANNEL_UPDATE", gid, stayed, Intents::GUILDS, &body));
                if !gained.is_empty() {
                    events.push(event_to_users("CHANNEL_CREATE", gid, gained, Intents::GUILDS, &body));
                }
                if !lost.is_empty() {
                    events.push(event_to_users("CHANNEL_DELETE", gid, lost, Intents::GUILDS, &body));
                }
                mutations.push(Mutation::PutChannel(c));
            }
            Ok(Change::write(mutations, events, ()))
        })
        .await?;
    Ok(no_content())
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RolePosition {
    #[schema(value_type = crate::openapi::schema::Snowflake)]
    id: RoleId,
    #[serde(default, deserialize_with = "nullable")]
    position: Option<Option<i32>>,
}

#[utoipa::path(patch, path = "/guilds/{guild_id}/roles", tag = "roles", request_body = Vec<RolePosition>, responses((status = 200, description = "The guild's roles", body = [crate::openapi::schema::Role])))]
async fn reorder_roles(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordJson(body): DiscordJson<Vec<RolePosition>>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_guild_permission(&a.state.guild, me, Permissions::MANAGE_ROLES)?;
                let state = &a.state.guild;
                let everyone = state.everyone_role_id();
                let mut errors = FormErrors::default();
                for (i, p) in body.iter().enumerate() {
                    if !state.roles.contains_key(&p.id) || p.id == everyone {
                        errors.add(&format!("{i}.id"), "ROLE_INVALID", "Invalid role");
                    }
                    if p.position.flatten().is_some_and(|pos| pos < 1) {
                        errors.add(
                            &format!("{i}.position"),
                            "NUMBER_TYPE_MIN",
                            "int value should be greater than or equal to 1.",
                        );
                    }
                }
                errors.finish()?;
                let top = ceiling(state, me);
                for p in &body {
                    let r = &state.roles[&p.id];
                    let target = p.position.flatten().unwrap_or(r.position);
                    if !state.can_manage_role(me, r) || (target >= top && top != i32::MAX) {
                        return Err(Error::missing_permissions());
                    }
                }
                // Requested roles take their new positions, then positions are renumbered 1..n.
                let mut order: Vec<(i32, u8, i32, RoleId)> = state
                    .roles
                    .values()
                    .filter(|r| r.id != everyone)
                    .map(|r| match body.iter().find(|p| p.id == r.id).and_then(|p| p.position.flatten()) {
                        // A role moved up lands above the one it meets, one moved down below.
                        Some(pos) => (pos, if pos > r.position { 2 } else { 0 }, r.position, r.id),
                        None => (r.position, 1, r.position, r.id),
                    })
                    .collect();
                order.sort();
                let mut mutations = Vec::new();
                let mut events = Vec::new();
                for (i, (_, _, _, id)) in order.into_iter().enumerate() {
                    let r = a.state.guild.roles.get_mut(&id).expect("listed roles exist");
                    let pos = i as i32 + 1;
                    if r.position != pos {
                        r.position = pos;
                        mutations.push(Mutation::PutRole(gid, r.clone()));
                        events.push(role_event("GUILD_ROLE_UPDATE", gid, r));
                    }
                }
                Ok(Change::write(mutations, events, roles_json(&a.state.guild)))
            })
            .await?;
    Ok(ok_json(&value))
}
