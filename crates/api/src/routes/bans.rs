//! Bans: list, get, ban (with deletion of the user's recent messages) and unban.
//! GUILD_BAN_ADD/REMOVE go to sessions with BAN_MEMBERS; a ban also removes the
//! member (GUILD_MEMBER_REMOVE, GUILD_DELETE to the banned user's sessions).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use guildhall_domain::entity::{Ban, channel_type};
use guildhall_model::id::{GuildId, MessageId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::{Audience, Change, Error, Event, FormErrors, GuildActor};
use guildhall_store::{HistoryQuery, Mutation};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, no_content, ok_json};
use crate::extract::{DiscordJson, DiscordQuery, path_id, query_id, query_limit};
use crate::routes::guild_common::{audit_reason, remove_member, require_guild_permission, user_json};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_bans, get_ban, ban, unban))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/guilds/{guild_id}/bans", get(list_bans))
        .route("/guilds/{guild_id}/bans/{user_id}", get(get_ban).put(ban).delete(unban))
}

/// Longest message-deletion window a ban accepts (7 days).
const MAX_DELETE_SECONDS: u64 = 604_800;

fn ban_json(a: &GuildActor, b: &Ban) -> serde_json::Value {
    serde_json::json!({ "reason": b.reason, "user": user_json(a, b.user_id) })
}

fn ban_event(name: &'static str, a: &GuildActor, user: UserId) -> Event {
    let gid = a.state.guild.guild.id;
    let body = serde_json::json!({ "guild_id": gid, "user": user_json(a, user) });
    Event::new(
        name,
        &body,
        Audience::GuildWithPermission { intent: Intents::GUILD_MODERATION, permission: Permissions::BAN_MEMBERS },
        Some(gid),
    )
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Cursor>)]
    before: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Cursor>)]
    after: Option<String>,
}

#[utoipa::path(get, path = "/guilds/{guild_id}/bans", tag = "bans", params(ListQuery), responses((status = 200, description = "The Ban list", body = [crate::openapi::schema::Ban])))]
async fn list_bans(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordQuery(q): DiscordQuery<ListQuery>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 1000, 1000, "limit", &mut errors);
    let before: Option<u64> = query_id(q.before.as_deref(), "before", &mut errors);
    let after: Option<u64> = query_id(q.after.as_deref(), "after", &mut errors);
    errors.finish()?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_guild_permission(&a.state.guild, me, Permissions::BAN_MEMBERS)?;
                let mut ids: Vec<UserId> = a.state.guild.bans.keys().copied().collect();
                ids.sort_unstable();
                // `before` without `after` pages backwards: the newest `limit` below it.
                let picked: Vec<UserId> = match (before, after) {
                    (Some(b), None) => {
                        let below: Vec<UserId> = ids.into_iter().filter(|u| u.get() < b).collect();
                        below[below.len().saturating_sub(limit)..].to_vec()
                    }
                    (b, a) => ids
                        .into_iter()
                        .filter(|u| a.is_none_or(|a| u.get() > a) && b.is_none_or(|b| u.get() < b))
                        .take(limit)
                        .collect(),
                };
                let list: Vec<serde_json::Value> = picked.iter().map(|u| ban_json(a, &a.state.guild.bans[u])).collect();
                Ok(Change::read(list))
            })
            .await?;
    Ok(ok_json(&value))
}

#[utoipa::path(get, path = "/guilds/{guild_id}/bans/{user_id}", tag = "bans", responses((status = 200, description = "The Ban", body = crate::openapi::schema::Ban)))]
async fn get_ban(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let uid: UserId = path_id(&user_id, "user_id")?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_guild_permission(&a.state.guild, me, Permissions::BAN_MEMBERS)?;
                let b = a.state.guild.bans.get(&uid).ok_or_else(Error::unknown_ban)?;
                Ok(Change::read(ban_json(a, b)))
            })
            .await?;
    Ok(ok_json(&value))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct BanBody {
    #[serde(default)]
    #[schema(minimum = 0, maximum = 604800)]
    delete_message_seconds: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 7)]
    delete_message_days: Option<i64>,
}

/// The user's messages in `channel` newer than `cutoff_ms`, newest first.
fn recent_messages_of(
    a: &GuildActor,
    channel: guildhall_model::id::ChannelId,
    user: UserId,
    cutoff_ms: u64,
) -> Result<Vec<MessageId>, Error> {
    let mut out = Vec::new();
    let mut query = HistoryQuery::Latest;
    loop {
        let page = a.shared.store.messages(channel, query, 100)?;
        let Some(oldest) = page.last() else { break };
        for m in page.iter() {
            if m.timestamp().as_ms() >= cutoff_ms && m.author_id == user {
                out.push(m.id);
            }
        }
        if oldest.timestamp().as_ms() < cutoff_ms || page.len() < 100 {
            break;
        }
        query = HistoryQuery::Before(oldest.id);
    }
    Ok(out)
}

#[utoipa::path(put, path = "/guilds/{guild_id}/bans/{user_id}", tag = "bans", request_body = BanBody, responses((status = 204, description = "Done; no body")))]
async fn ban(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((guild_id, user_id)): Path<(String, String)>,
    DiscordJson(body): DiscordJson<BanBody>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let uid: UserId = path_id(&user_id, "user_id")?;
    let mut errors = FormErrors::default();
    let seconds = match (body.delete_message_seconds, body.delete_message_days) {
        (Some(sec), _) => {
            if !(0..=MAX_DELETE_SECONDS as i64).contains(&sec) {
                errors.add(
                    "delete_message_seconds",
                    "NUMBER_TYPE_MAX",
                    "int value should be less than or equal to 604800.",
                );
            }
            sec.max(0) as u64
        }
        (None, Some(days)) => {
            if !(0..=7).contains(&days) {
                errors.add("delete_message_days", "NUMBER_TYPE_MAX", "int value should be less than or equal to 7.");
            }
            days.max(0) as u64 * 86_400
        }
        (None, None) => 0,
    };
    errors.finish()?;
    let reason = audit_reason(&headers);
    if s.rt.directory.user(uid).is_none() {
        return Err(Error::unknown_user().into());
    }
    let me = caller.id();
    let handle = s.rt.guild(gid)?;
    let was_member = handle
        .call(move |a: &mut GuildActor| {
            require_guild_permission(&a.state.guild, me, Permissions::BAN_MEMBERS)?;
            let is_member = a.state.guild.members.contains_key(&uid);
            if a.state.guild.is_owner(uid) || uid == me || (is_member && !a.state.guild.outranks(me, uid)) {
                return Err(Error::missing_permissions());
            }
            let (mut mutations, mut events) = (Vec::new(), Vec::new());
            // Delete the user's messages within the window, one bulk event per channel.
            if seconds > 0 {
                let cutoff = Timestamp::now().as_ms().saturating_sub(seconds * 1000);
                let channels: Vec<_> = a
                    .state
                    .guild
                    .channels
                    .values()
                    .filter(|c| channel_type::is_text_based(c.kind) || c.kind == channel_type::GUILD_FORUM)
                    .map(|c| c.id)
                    .collect();
                for c in channels {
                    let ids = recent_messages_of(a, c, uid, cutoff)?;
                    if ids.is_empty() {
                        continue;
                    }
                    mutations.extend(ids.iter().map(|m| Mutation::DeleteMessage(c, *m)));
                    let body = serde_json::json!({ "ids": ids, "channel_id": c, "guild_id": gid });
                    events.push(Event::channel("MESSAGE_DELETE_BULK", gid, c, Intents::GUILD_MESSAGES, &body));
                }
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = a.state.guild.bans.entry(uid) {
                let b = Ban { user_id: uid, reason: reason.clone() };
                slot.insert(b.clone());
                mutations.push(Mutation::PutBan(gid, b));
                events.push(ban_event("GUILD_BAN_ADD", a, uid));
            }
            remove_member(a, uid, &mut mutations, &mut events);
            Ok(Change::write(mutations, events, is_member))
        })
        .await?;
    if was_member {
        handle.cast_wait(move |a: &mut GuildActor| a.drop_user(uid)).await;
    }
    Ok(no_content())
}

#[utoipa::path(delete, path = "/guilds/{guild_id}/bans/{user_id}", tag = "bans", responses((status = 204, description = "Done; no body")))]
async fn unban(
    State(s): State<AppState>,
    caller: Caller,
    Path((guild_id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let uid: UserId = path_id(&user_id, "user_id")?;
    let me = caller.id();
    s.rt.guild(gid)?
        .call(move |a: &mut GuildActor| {
            require_guild_permission(&a.state.guild, me, Permissions::BAN_MEMBERS)?;
            if a.state.guild.bans.remove(&uid).is_none() {
                return Err(Error::unknown_ban());
            }
            let event = ban_event("GUILD_BAN_REMOVE", a, uid);
            Ok(Change::write(vec![Mutation::DeleteBan(gid, uid)], vec![event], ()))
        })
        .await?;
    Ok(no_content())
}
