//! Reactions: add and remove one's own, remove others' (MANAGE_MESSAGES), list
//! who reacted, clear all or one emoji — in guild channels, threads and DMs.
//! Reactions live inside the stored message; every change is a
//! read-modify-write of that message on the channel's actor.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get};
use guildhall_domain::entity::{Channel, Message, Reaction, ReactionEmoji};
use guildhall_domain::wire::{ReactionEmojiView, UserView};
use guildhall_model::error_code;
use guildhall_model::id::{ChannelId, MessageId, UserId};
use guildhall_model::{Intents, Permissions};
use guildhall_runtime::event::to_bytes;
use guildhall_runtime::{Change, Error, FormErrors};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, no_content, ok_json};
use crate::extract::{DiscordQuery, message_path, path_id, query_id, query_limit};
use crate::routes::host::{Host, on_channel};
use crate::routes::messages::strip_null_guild;

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(remove_all, list_users, remove_emoji, add, remove_user))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    const BASE: &str = "/channels/{channel_id}/messages/{message_id}/reactions";
    Router::new()
        .route(BASE, delete(remove_all))
        .route(&format!("{BASE}/{{emoji}}"), get(list_users).delete(remove_emoji))
        .route(&format!("{BASE}/{{emoji}}/{{user}}"), axum::routing::put(add).delete(remove_user))
}

/// Distinct emoji a message may carry.
const MAX_REACTIONS: usize = 20;

/// Whether `c` may appear in a unicode emoji sequence.
fn is_emoji_char(c: char) -> bool {
    matches!(c as u32,
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21AA | 0x231A..=0x23FF | 0x24C2
        | 0x25AA..=0x27BF | 0x2934..=0x2935 | 0x2B05..=0x2B55 | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0x1F000..=0x1FAFF | 0x200D | 0xFE0E | 0xFE0F | 0x20E3 | 0xE0020..=0xE007F)
        || c.is_ascii_digit()
        || c == '#'
        || c == '*'
}

/// Parses the `{emoji}` path segment (already percent-decoded): a unicode emoji,
/// or `name:id` / `a:name:id` for a custom one. Guildhall has no custom emoji,
/// so every custom form — and anything that is not an emoji — is 10014.
pub fn parse_emoji(raw: &str) -> Result<ReactionEmoji, Error> {
    if raw.contains(':') {
        return Err(Error::unknown_emoji());
    }
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw.chars().all(is_emoji_char)
        && raw.chars().any(|c| !c.is_ascii() && !matches!(c, '\u{200D}' | '\u{FE0E}' | '\u{FE0F}'));
    if !ok {
        return Err(Error::unknown_emoji());
    }
    Ok(ReactionEmoji { id: None, name: raw.to_string(), animated: false })
}

type ReactionPath = Path<(String, String, String)>;

/// The write every reaction change ends with: the message stored as it now is,
/// and `name` dispatched to those who can see the channel (reaction intents).
fn reaction_write(
    h: &dyn Host,
    name: &'static str,
    channel: &Channel,
    msg: Message,
    body: serde_json::Value,
) -> Change<()> {
    let event = h.channel_event(
        name,
        channel,
        Intents::GUILD_MESSAGE_REACTIONS,
        Intents::DIRECT_MESSAGE_REACTIONS,
        to_bytes(&strip_null_guild(body)),
    );
    Change::write(vec![Mutation::PutMessage(msg)], vec![event], ())
}

/// `PUT …/reactions/{emoji}/@me`: READ_MESSAGE_HISTORY, plus ADD_REACTIONS for
/// an emoji not yet on the message; at most 20 distinct; idempotent.
#[utoipa::path(put, path = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}", tag = "reactions", responses((status = 204, description = "Done; no body")))]
async fn add(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id, emoji, user)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    if user != "@me" {
        return Ok(crate::error::json_response(
            axum::http::StatusCode::NOT_FOUND,
            &serde_json::json!({ "message": "404: Not Found", "code": 0 }),
        ));
    }
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let emoji = parse_emoji(&emoji)?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let access = h.access(me, channel, Permissions::READ_MESSAGE_HISTORY)?;
        let mut msg = h.message(channel, id)?;
        match msg.reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(r) if r.users.contains(&me) => return Ok(Change::read(())),
            Some(r) => r.users.push(me),
            None => {
                if !access.permissions.contains(Permissions::ADD_REACTIONS) {
                    return Err(Error::missing_permissions());
                }
                if msg.reactions.len() >= MAX_REACTIONS {
                    return Err(Error::bad_request(
                        error_code::MAX_REACTIONS,
                        "Maximum number of reactions reached (20)",
                    ));
                }
                msg.reactions.push(Reaction { emoji: emoji.clone(), users: vec![me], burst_users: Vec::new() });
            }
        }
        let mut body = serde_json::json!({
            "user_id": me,
            "channel_id": channel,
            "message_id": id,
            "guild_id": h.guild_id(),
            "emoji": ReactionEmojiView::new(&emoji),
            "message_author_id": msg.author_id,
            "burst": false,
            "burst_colors": [],
            "type": 0,
        });
        if let Some(m) = h.member_json(me) {
            body["member"] = m;
        }
        Ok(reaction_write(h, "MESSAGE_REACTION_ADD", &access.channel, msg, body))
    })
    .await?;
    Ok(no_content())
}

/// Removes `target`'s reaction; others' need MANAGE_MESSAGES. 204 either way.
async fn remove_one(
    s: &AppState,
    me: UserId,
    channel: ChannelId,
    id: MessageId,
    emoji: ReactionEmoji,
    target: UserId,
) -> ApiResult<()> {
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let required = if target == me { Permissions::NONE } else { Permissions::MANAGE_MESSAGES };
        let access = h.access(me, channel, required)?;
        let mut msg = h.message(channel, id)?;
        let Some(pos) = msg.reactions.iter().position(|r| r.emoji == emoji) else {
            return Ok(Change::read(()));
        };
        let r = &mut msg.reactions[pos];
        let before = r.users.len();
        r.users.retain(|u| *u != target);
        if r.users.len() == before {
            return Ok(Change::read(()));
        }
        if r.users.is_empty() && r.burst_users.is_empty() {
            msg.reactions.remove(pos);
        }
        let body = serde_json::json!({
            "user_id": target,
            "channel_id": channel,
            "message_id": id,
            "guild_id": h.guild_id(),
            "emoji": ReactionEmojiView::new(&emoji),
            "burst": false,
            "type": 0,
        });
        Ok(reaction_write(h, "MESSAGE_REACTION_REMOVE", &access.channel, msg, body))
    })
    .await?;
    Ok(())
}

/// `DELETE …/reactions/{emoji}/@me` and `…/{emoji}/{user}`.
#[utoipa::path(delete, path = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}", tag = "reactions", responses((status = 204, description = "Done; no body")))]
async fn remove_user(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id, emoji, user)): Path<(String, String, String, String)>,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let emoji = parse_emoji(&emoji)?;
    let target: UserId = if user == "@me" { caller.id() } else { path_id(&user, "user_id")? };
    remove_one(&s, caller.id(), channel, id, emoji, target).await?;
    Ok(no_content())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Cursor>)]
    after: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    #[serde(default, rename = "type")]
    #[param(value_type = Option<u8>, minimum = 0, maximum = 1)]
    kind: Option<String>,
}

/// `GET …/reactions/{emoji}`: users who reacted, by id, `after` / `limit`
/// (1–100, default 25) / `type` (0 normal, 1 burst).
#[utoipa::path(get, path = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", tag = "reactions", params(ListParams), responses((status = 200, description = "Users who reacted, by id", body = [crate::openapi::schema::User])))]
async fn list_users(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id, emoji)): ReactionPath,
    DiscordQuery(q): DiscordQuery<ListParams>,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 25, 100, "limit", &mut errors);
    let after: u64 = query_id(q.after.as_deref(), "after", &mut errors).unwrap_or(0);
    let burst = match q.kind.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => {
            errors.add("type", "ENUM_TYPE_COERCE", "Value is not a valid enum value.");
            false
        }
    };
    errors.finish()?;
    let emoji = parse_emoji(&emoji)?;
    let me = caller.id();
    let mut users: Vec<UserId> = on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        h.access(me, channel, Permissions::READ_MESSAGE_HISTORY)?;
        let msg = h.message(channel, id)?;
        let users = msg
            .reactions
            .into_iter()
            .find(|r| r.emoji == emoji)
            .map(|r| if burst { r.burst_users } else { r.users })
            .unwrap_or_default();
        Ok(Change::read(users))
    })
    .await?;
    users.sort_unstable();
    users.retain(|u| u.get() > after);
    users.truncate(limit);
    let body = s.rt.directory.with_users(|all| {
        let views: Vec<UserView> = users.iter().filter_map(|u| all.get(u)).map(|u| UserView::new(u)).collect();
        serde_json::to_value(&views).unwrap_or_default()
    });
    Ok(ok_json(&body))
}

/// `DELETE …/reactions`: MANAGE_MESSAGES; MESSAGE_REACTION_REMOVE_ALL.
#[utoipa::path(delete, path = "/channels/{channel_id}/messages/{message_id}/reactions", tag = "reactions", responses((status = 204, description = "Done; no body")))]
async fn remove_all(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let access = h.access(me, channel, Permissions::MANAGE_MESSAGES)?;
        let mut msg = h.message(channel, id)?;
        if msg.reactions.is_empty() {
            return Ok(Change::read(()));
        }
        msg.reactions.clear();
        let body = serde_json::json!({ "channel_id": channel, "message_id": id, "guild_id": h.guild_id() });
        Ok(reaction_write(h, "MESSAGE_REACTION_REMOVE_ALL", &access.channel, msg, body))
    })
    .await?;
    Ok(no_content())
}

/// `DELETE …/reactions/{emoji}`: MANAGE_MESSAGES; MESSAGE_REACTION_REMOVE_EMOJI.
#[utoipa::path(delete, path = "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", tag = "reactions", responses((status = 204, description = "Done; no body")))]
async fn remove_emoji(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id, emoji)): ReactionPath,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let emoji = parse_emoji(&emoji)?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let access = h.access(me, channel, Permissions::MANAGE_MESSAGES)?;
        let mut msg = h.message(channel, id)?;
        let before = msg.reactions.len();
        msg.reactions.retain(|r| r.emoji != emoji);
        if msg.reactions.len() == before {
            return Ok(Change::read(()));
        }
        let body = serde_json::json!({
            "channel_id": channel,
            "message_id": id,
            "guild_id": h.guild_id(),
            "emoji": ReactionEmojiView::new(&emoji),
        });
        Ok(reaction_write(h, "MESSAGE_REACTION_REMOVE_EMOJI", &access.channel, msg, body))
    })
    .await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emoji_forms() {
        for ok in ["👍", "❤️", "🇫🇷", "1️⃣", "👩‍👩‍👧", "👋🏽", "©️"] {
            assert_eq!(parse_emoji(ok).unwrap().name, ok, "{ok}");
        }
        for bad in ["", "abc", "1", "name:123", "a:name:123", "👍 ", "x👍", "\u{FE0F}"] {
            assert_eq!(parse_emoji(bad).unwrap_err().code, error_code::UNKNOWN_EMOJI, "{bad:?}");
        }
    }
}
