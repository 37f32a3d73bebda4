//! Pins: list (the paged `GET /channels/{id}/messages/pins` and the deprecated
//! array form `GET /channels/{id}/pins`), pin and unpin (both path forms) with
//! the CHANNEL_PINNED_MESSAGE system message, CHANNEL_PINS_UPDATE and the
//! pinned message's MESSAGE_UPDATE.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use guildhall_domain::entity::{Message, MessageReference, message_type};
use guildhall_model::id::{ChannelId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp, error_code};
use guildhall_runtime::event::to_bytes;
use guildhall_runtime::{Change, Error, FormErrors};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, no_content, ok_json};
use crate::extract::{DiscordQuery, message_path, path_id, query_limit, query_timestamp};
use crate::routes::host::{Host, on_channel, render_message, system_message};
use crate::routes::messages::strip_null_guild;

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_pins, pin, unpin, list_pins_legacy, pin_legacy, unpin_legacy))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels/{channel_id}/messages/pins", get(list_pins))
        .route("/channels/{channel_id}/messages/pins/{message_id}", put(pin).delete(unpin))
        .route("/channels/{channel_id}/pins", get(list_pins_legacy))
        .route("/channels/{channel_id}/pins/{message_id}", put(pin_legacy).delete(unpin_legacy))
}

/// Pins per channel.
const MAX_PINS: usize = 250;

/// Pinning and unpinning: the caller must see the channel and have
/// MANAGE_MESSAGES or PIN_MESSAGES (50013 without).
fn require_pin_permission(h: &dyn Host, me: UserId, channel: ChannelId) -> Result<(), Error> {
    let access = h.access(me, channel, Permissions::NONE)?;
    if !access.permissions.intersects(Permissions::MANAGE_MESSAGES | Permissions::PIN_MESSAGES) {
        return Err(Error::missing_permissions());
    }
    Ok(())
}

fn pins_update(
    h: &dyn Host,
    channel: &guildhall_domain::entity::Channel,
    last: Option<Timestamp>,
) -> guildhall_runtime::Event {
    let body = serde_json::json!({ "guild_id": h.guild_id(), "channel_id": channel.id, "last_pin_timestamp": last });
    h.channel_event(
        "CHANNEL_PINS_UPDATE",
        channel,
        Intents::GUILDS,
        Intents::DIRECT_MESSAGES,
        to_bytes(&strip_null_guild(body)),
    )
}

/// `PUT …/pins/{msg}`: MANAGE_MESSAGES or PIN_MESSAGES; at most 250 (30003);
/// 204. Pinning an already pinned message changes nothing.
#[utoipa::path(put, path = "/channels/{channel_id}/messages/pins/{message_id}", tag = "pins", responses((status = 204, description = "Done; no body")))]
async fn pin(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        require_pin_permission(h, me, channel)?;
        let mut msg = h.message(channel, id)?;
        if !message_type::is_deletable(msg.kind) {
            return Err(Error::bad_request(error_code::SYSTEM_MESSAGE, "Cannot execute action on a system message"));
        }
        if msg.pinned {
            return Ok(Change::read(()));
        }
        if h.shared().store.pinned_messages(channel)?.len() >= MAX_PINS {
            return Err(Error::bad_request(error_code::MAX_PINS, "Maximum number of pins reached (250)"));
        }
        let now = Timestamp::now();
        msg.pinned = true;
        msg.pinned_at = Some(now);
        let notice = system_message(
            h.shared().next_id(),
            channel,
            h.guild_id(),
            me,
            message_type::CHANNEL_PINNED_MESSAGE,
            String::new(),
            MessageReference { kind: 0, message_id: Some(id), channel_id: Some(channel), guild_id: h.guild_id() },
        );
        let Some(c) = h.channel_mut(channel) else { return Err(Error::unknown_channel()) };
        c.last_pin_timestamp = Some(now);
        c.last_message_id = Some(notice.id);
        let c = c.clone();
        let events = vec![
            h.message_event("MESSAGE_UPDATE", &msg, &c),
            pins_update(h, &c, Some(now)),
            h.message_event("MESSAGE_CREATE", &notice, &c),
        ];
        let mutations = vec![Mutation::PutMessage(msg), Mutation::PutChannel(c), Mutation::PutMessage(notice)];
        Ok(Change::write(mutations, events, ()))
    })
    .await?;
    Ok(no_content())
}

/// The same as `PUT …/messages/pins/{msg}` (the path before API v10's pins rework).
#[utoipa::path(put, path = "/channels/{channel_id}/pins/{message_id}", tag = "pins", responses((status = 204, description = "Done; no body")))]
async fn pin_legacy(state: State<AppState>, caller: Caller, path: Path<(String, String)>) -> ApiResult<Response> {
    pin(state, caller, path).await
}

/// The same as `DELETE …/messages/pins/{msg}`.
#[utoipa::path(delete, path = "/channels/{channel_id}/pins/{message_id}", tag = "pins", responses((status = 204, description = "Done; no body")))]
async fn unpin_legacy(state: State<AppState>, caller: Caller, path: Path<(String, String)>) -> ApiResult<Response> {
    unpin(state, caller, path).await
}

/// `DELETE …/pins/{msg}`: same permissions; 204; CHANNEL_PINS_UPDATE with the
/// newest remaining pin's time.
#[utoipa::path(delete, path = "/channels/{channel_id}/messages/pins/{message_id}", tag = "pins", responses((status = 204, description = "Done; no body")))]
async fn unpin(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        require_pin_permission(h, me, channel)?;
        let mut msg = h.message(channel, id)?;
        if !msg.pinned {
            return Ok(Change::read(()));
        }
        let last =
            h.shared().store.pinned_messages(channel)?.into_iter().find(|m| m.id != id).and_then(|m| m.pinned_at);
        msg.pinned = false;
        msg.pinned_at = None;
        let Some(c) = h.channel_mut(channel) else { return Err(Error::unknown_channel()) };
        c.last_pin_timestamp = last;
        let c = c.clone();
        let events = vec![h.message_event("MESSAGE_UPDATE", &msg, &c), pins_update(h, &c, last)];
        Ok(Change::write(vec![Mutation::PutMessage(msg), Mutation::PutChannel(c)], events, ()))
    })
    .await?;
    Ok(no_content())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PinParams {
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    before: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    limit: Option<String>,
}

/// Pinned messages the caller may read, most recently pinned first (empty
/// without READ_MESSAGE_HISTORY, as message history is).
async fn readable_pins(s: &AppState, caller: &Caller, channel: ChannelId) -> ApiResult<Vec<Message>> {
    let access = crate::access::channel_access(&s.rt, caller.id(), channel, Permissions::NONE).await?;
    if !access.permissions.contains(Permissions::READ_MESSAGE_HISTORY) {
        return Ok(Vec::new());
    }
    Ok(s.rt.store.pinned_messages(channel)?)
}

/// `GET /channels/{id}/messages/pins`: `before` (ISO timestamp), `limit` 1–50
/// (default 50) → `{items: [{pinned_at, message}], has_more}`.
#[utoipa::path(get, path = "/channels/{channel_id}/messages/pins", tag = "pins", params(PinParams), responses((status = 200, description = "The PinsPage", body = crate::openapi::schema::PinsPage)))]
async fn list_pins(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordQuery(q): DiscordQuery<PinParams>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 50, 50, "limit", &mut errors);
    let before = query_timestamp(q.before.as_deref(), "before", &mut errors);
    errors.finish()?;
    let me = caller.id();
    let mut pins = readable_pins(&s, &caller, channel).await?;
    if let Some(b) = before {
        pins.retain(|m| m.pinned_at.is_some_and(|t| t < b));
    }
    let has_more = pins.len() > limit;
    pins.truncate(limit);
    let items: Vec<serde_json::Value> = pins
        .iter()
        .map(|m| serde_json::json!({ "pinned_at": m.pinned_at, "message": render_message(&s.rt, m, me) }))
        .collect();
    Ok(ok_json(&serde_json::json!({ "items": items, "has_more": has_more })))
}

/// `GET /channels/{id}/pins` (deprecated): an array of messages.
#[utoipa::path(get, path = "/channels/{channel_id}/pins", tag = "pins", responses((status = 200, description = "Pinned messages, newest pin first", body = [crate::openapi::schema::Message])))]
async fn list_pins_legacy(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let pins = readable_pins(&s, &caller, channel).await?;
    let me = caller.id();
    let list: Vec<serde_json::Value> = pins.iter().map(|m| render_message(&s.rt, m, me)).collect();
    Ok(ok_json(&list))
}
