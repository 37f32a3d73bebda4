//! Invites: create and list per channel, list per guild, resolve, accept (join
//! the guild) and delete. Invites live in `GuildState.invites`; the directory maps
//! each code to its guild so `/invites/{code}` finds the owning actor.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use guildhall_domain::entity::{Invite, Member, channel_type};
use guildhall_domain::wire::InviteView;
use guildhall_model::error_code;
use guildhall_model::id::{ChannelId, GuildId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::{Audience, Change, Error, ErrorKind, Event, FormErrors, GuildActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::access::guild_channel_access;
use crate::auth::Caller;
use crate::error::{ApiResult, ok_json};
use crate::extract::{DiscordJson, DiscordQuery, path_id};
use crate::routes::guild_common::{
    guild_of_channel, member_event_json, query_bool, random_code, require_guild_permission, require_member,
};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_channel_invites, create_invite, list_guild_invites, get_invite, accept_invite, delete_invite))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels/{channel_id}/invites", get(list_channel_invites).post(create_invite))
        .route("/guilds/{guild_id}/invites", get(list_guild_invites))
        .route("/invites/{code}", get(get_invite).post(accept_invite).delete(delete_invite))
}

/// Guilds a user may be in (as `POST /guilds`).
const MAX_GUILDS: usize = 100;

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct CreateInvite {
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800)]
    max_age: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    max_uses: Option<i64>,
    #[serde(default)]
    temporary: Option<bool>,
    #[serde(default)]
    unique: Option<bool>,
}

/// Renders an invite inside its guild's actor.
pub fn render_invite(a: &GuildActor, invite: &Invite, with_metadata: bool, counts: bool) -> serde_json::Value {
    let state = &a.state.guild;
    let Some(channel) = state.channels.get(&invite.channel_id) else {
        return serde_json::json!({ "code": invite.code });
    };
    let inviter = invite.inviter_id.and_then(|u| a.shared.directory.user(u));
    let counts = counts.then_some((state.members.len() as u64, a.state.presences.len() as u64));
    let view =
        InviteView { invite, guild: Some(&state.guild), channel, inviter: inviter.as_deref(), counts, with_metadata };
    serde_json::to_value(&view).unwrap_or_default()
}

/// INVITE_CREATE / INVITE_DELETE go to GUILD_INVITES sessions that can manage the channel.
fn invite_audience(channel: ChannelId) -> Audience {
    Audience::Guild { intent: Intents::GUILD_INVITES, channel: Some(channel), extra: Permissions::MANAGE_CHANNELS }
}

fn invite_delete_event(gid: GuildId, invite: &Invite) -> Event {
    let body = serde_json::json!({ "channel_id": invite.channel_id, "guild_id": gid, "code": invite.code });
    Event::new("INVITE_DELETE", &body, invite_audience(invite.channel_id), Some(gid))
}

#[utoipa::path(post, path = "/channels/{channel_id}/invites", tag = "invites", request_body = CreateInvite, responses((status = 200, description = "The Invite", body = crate::openapi::schema::Invite)))]
async fn create_invite(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordJson(body): DiscordJson<CreateInvite>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let mut errors = FormErrors::default();
    let max_age = body.max_age.unwrap_or(86_400);
    if !(0..=604_800).contains(&max_age) {
        errors.add("max_age", "NUMBER_TYPE_MAX", "int value should be less than or equal to 604800.");
    }
    let max_uses = body.max_uses.unwrap_or(0);
    if !(0..=100).contains(&max_uses) {
        errors.add("max_uses", "NUMBER_TYPE_MAX", "int value should be less than or equal to 100.");
    }
    errors.finish()?;
    let (max_age, max_uses) = (max_age as u32, max_uses as u32);
    let temporary = body.temporary.unwrap_or(false);
    let unique = body.unique.unwrap_or(false);
    let gid = guild_of_channel(&s, channel)?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                let access = guild_channel_access(a, me, channel, Permissions::CREATE_INSTANT_INVITE)?;
                if !matches!(
                    access.channel.kind,
                    channel_type::GUILD_TEXT
                        | channel_type::GUILD_VOICE
                        | channel_type::GUILD_ANNOUNCEMENT
                        | channel_type::GUILD_STAGE_VOICE
                        | channel_type::GUILD_FORUM
                ) {
                    return Err(Error::bad_request(50024, "Cannot execute action on this channel type"));
                }
                let now = Timestamp::now();
                if !unique {
                    // Discord hands back an equivalent unused invite of the same inviter.
                    let existing = a.state.guild.invites.values().find(|i| {
                        i.channel_id == channel
                            && i.inviter_id == Some(me)
                            && i.max_age == max_age
                            && i.max_uses == max_uses
                            && i.temporary == temporary
                            && i.uses == 0
                            && !i.is_expired(now)
                    });
                    if let Some(i) = existing {
                        return Ok(Change::read(render_invite(a, i, true, false)));
                    }
                }
                let code = loop {
                    let c = random_code(8);
                    if a.shared.directory.claim_invite(&c, gid) {
                        break c;
                    }
                };
                let invite = Invite {
                    code: code.clone(),
                    guild_id: Some(gid),
                    channel_id: channel,
                    inviter_id: Some(me),
                    created_at: now,
                    max_age,
                    max_uses,
                    uses: 0,
                    temporary,
                };
                let value = render_invite(a, &invite, true, false);
                let mut body = serde_json::json!({
                    "channel_id": channel, "code": code, "created_at": now, "guild_id": gid,
                    "max_age": max_age, "max_uses": max_uses, "temporary": temporary, "uses": 0,
                    "expires_at": invite.expires_at(),
                });
                if let Some(inviter) = value.get("inviter") {
                    body["inviter"] = inviter.clone();
                }
                let event = Event::new("INVITE_CREATE", &body, invite_audience(channel), Some(gid));
                a.state.guild.invites.insert(code, invite.clone());
                Ok(Change::write(vec![Mutation::PutInvite(invite)], vec![event], value))
            })
            .await?;
    Ok(ok_json(&value))
}

/// The guild's unexpired invites (only `channel`'s when given), oldest first,
/// rendered with their metadata as the list routes return them.
fn live_invites(a: &GuildActor, channel: Option<ChannelId>) -> Vec<serde_json::Value> {
    let now = Timestamp::now();
    let mut invites: Vec<&Invite> = a
        .state
        .guild
        .invites
        .values()
        .filter(|i| channel.is_none_or(|c| i.channel_id == c) && !i.is_expired(now))
        .collect();
    invites.sort_by_key(|i| (i.created_at, i.code.clone()));
    invites.into_iter().map(|i| render_invite(a, i, true, false)).collect()
}

#[utoipa::path(get, path = "/channels/{channel_id}/invites", tag = "invites", responses((status = 200, description = "The Invite list", body = [crate::openapi::schema::Invite])))]
async fn list_channel_invites(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let gid = guild_of_channel(&s, channel)?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                guild_channel_access(a, me, channel, Permissions::MANAGE_CHANNELS)?;
                Ok(Change::read(live_invites(a, Some(channel))))
            })
            .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(get, path = "/guilds/{guild_id}/invites", tag = "invites", responses((status = 200, description = "The Invite list", body = [crate::openapi::schema::Invite])))]
async fn list_guild_invites(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_guild_permission(&a.state.guild, me, Permissions::MANAGE_GUILD)?;
                Ok(Change::read(live_invites(a, None)))
            })
            .await?;
    Ok(ok_json(&value))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct GetInviteQuery {
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    with_counts: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    with_expiration: Option<String>,
}

/// The guild of a live code, or 10006.
fn invite_guild(s: &AppState, code: &str) -> Result<GuildId, Error> {
    if code.is_empty() || code.len() > 64 {
        return Err(Error::unknown_invite());
    }
    s.rt.directory.invite_guild(code).ok_or_else(Error::unknown_invite)
}

/// Anyone may resolve an invite, with or without a token (as on Discord).
#[utoipa::path(get, path = "/invites/{code}", tag = "invites", security((), ("bot" = []), ("bearer" = []), ("user" = [])), params(GetInviteQuery), responses((status = 200, description = "The Invite", body = crate::openapi::schema::Invite)))]
async fn get_invite(
    State(s): State<AppState>,
    Path(code): Path<String>,
    DiscordQuery(q): DiscordQuery<GetInviteQuery>,
) -> ApiResult<Response> {
    let gid = invite_guild(&s, &code)?;
    let counts = query_bool(q.with_counts.as_deref());
    let _ = q.with_expiration;
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                let invite = a
                    .state
                    .guild
                    .invites
                    .get(&code)
                    .filter(|i| !i.is_expired(Timestamp::now()))
                    .ok_or_else(Error::unknown_invite)?;
                Ok(Change::read(render_invite(a, invite, false, counts)))
            })
            .await?;
    Ok(ok_json(&value))
}

/// Accepting an invite: user accounts join the guild (bots get 20001).
#[utoipa::path(post, path = "/invites/{code}", tag = "invites", responses((status = 200, description = "The invite, with new_member", body = crate::openapi::schema::Invite)))]
async fn accept_invite(State(s): State<AppState>, caller: Caller, Path(code): Path<String>) -> ApiResult<Response> {
    caller.require_user_account()?;
    let gid = invite_guild(&s, &code)?;
    let me = caller.id();
    let at_limit = s.rt.directory.guild_count_of(me) >= MAX_GUILDS && !s.rt.directory.guilds_of(me).contains(&gid);
    let handle = s.rt.guild(gid)?;
    let (value, joined) = handle
        .call(move |a: &mut GuildActor| {
            let now = Timestamp::now();
            let invite = a
                .state
                .guild
                .invites
                .get(&code)
                .filter(|i| !i.is_expired(now))
                .cloned()
                .ok_or_else(Error::unknown_invite)?;
            if a.state.guild.bans.contains_key(&me) {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    error_code::ALREADY_BANNED_OR_MEMBER,
                    "You are banned from this guild.",
                ));
            }
            if a.state.guild.members.contains_key(&me) {
                let mut v = render_invite(a, &invite, false, false);
                v["new_member"] = serde_json::json!(false);
                return Ok(Change::read((v, false)));
            }
            if at_limit {
                return Err(Error::bad_request(error_code::MAX_GUILDS, "Maximum number of guilds reached (100)"));
            }
            let member = Member::new(me, now);
            a.state.guild.members.insert(me, member.clone());
            a.shared.directory.add_membership(me, gid);
            let mut events =
                vec![Event::guild("GUILD_MEMBER_ADD", gid, Intents::GUILD_MEMBERS, &member_event_json(a, &member))];
            let mut mutations = vec![Mutation::PutMember(gid, member)];
            let mut used = invite.clone();
            used.uses += 1;
            if used.max_uses > 0 && used.uses >= used.max_uses {
                // Used up: Discord deletes it.
                a.state.guild.invites.remove(&used.code);
                a.shared.directory.remove_invite(&used.code);
                mutations.push(Mutation::DeleteInvite(Some(gid), used.code.clone()));
                events.push(invite_delete_event(gid, &used));
            } else {
                a.state.guild.invites.insert(used.code.clone(), used.clone());
                mutations.push(Mutation::PutInvite(used.clone()));
            }
            let mut v = render_invite(a, &used, false, false);
            v["new_member"] = serde_json::json!(true);
            Ok(Change::write(mutations, events, (v, true)))
        })
        .await?;
    if joined {
        handle.cast_wait(move |a: &mut GuildActor| a.subscribe_user(me)).await;
    }
    Ok(ok_json(&value))
}

/// Deleting needs MANAGE_CHANNELS on the invite's channel or MANAGE_GUILD.
#[utoipa::path(delete, path = "/invites/{code}", tag = "invites", responses((status = 200, description = "The deleted invite", body = crate::openapi::schema::Invite)))]
async fn delete_invite(State(s): State<AppState>, caller: Caller, Path(code): Path<String>) -> ApiResult<Response> {
    let gid = invite_guild(&s, &code)?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                let invite = a.state.guild.invites.get(&code).cloned().ok_or_else(Error::unknown_invite)?;
                require_member(&a.state.guild, me).map_err(|_| Error::missing_access())?;
                let guild_ok = require_guild_permission(&a.state.guild, me, Permissions::MANAGE_GUILD).is_ok();
                if !guild_ok {
                    guild_channel_access(a, me, invite.channel_id, Permissions::MANAGE_CHANNELS)?;
                }
                let value = render_invite(a, &invite, false, false);
                a.state.guild.invites.remove(&code);
                a.shared.directory.remove_invite(&code);
                let event = invite_delete_event(gid, &invite);
                Ok(Change::write(vec![Mutation::DeleteInvite(Some(gid), code)], vec![event], value))
            })
            .await?;
    Ok(ok_json(&value))
}
