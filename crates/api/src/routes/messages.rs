//! Messages: send (JSON or multipart, see `attachments`), history, fetch, edit,
//! delete, bulk delete and typing, in guild channels, threads and DMs.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use guildhall_domain::entity::{Message, MessageReference, message_type};
use guildhall_domain::wire::{MemberView, MessageView};
use guildhall_model::error_code;
use guildhall_model::id::{ChannelId, MessageId, RoleId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::event::{Redacted, to_bytes};
use guildhall_runtime::page_cache::PageKey;
use guildhall_runtime::{Audience, Change, ChannelHome, Error, ErrorKind, Event, FormErrors, GuildActor, PrivateActor};
use guildhall_store::{HistoryQuery, Mutation};
use serde::Deserialize;

use crate::AppState;
use crate::access::{guild_channel_access, private_channel_access};
use crate::auth::Caller;
use crate::error::{ApiResult, no_content, ok_json, ok_json_bytes};
use crate::extract::{DiscordJson, DiscordQuery, message_path, path_id, query_id, query_limit};
use crate::render::Ctx;
use crate::routes::guild_common::guild_of_channel;
use crate::routes::host::{Host, on_channel, render_message};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_messages,
    super::attachments::create_message,
    get_message,
    super::attachments::edit_message,
    delete_message,
    bulk_delete,
    bulk_delete_legacy,
    typing
))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/channels/{channel_id}/messages",
            get(list_messages)
                .post(crate::routes::attachments::create_message)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/channels/{channel_id}/messages/{message_id}",
            get(get_message)
                .patch(crate::routes::attachments::edit_message)
                .delete(delete_message)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/channels/{channel_id}/messages/bulk-delete", post(bulk_delete))
        .route("/channels/{channel_id}/messages/bulk_delete", post(bulk_delete_legacy))
        .route("/channels/{channel_id}/typing", post(typing))
}

/// A validated new message, before it has an id.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub content: String,
    pub nonce: Option<serde_json::Value>,
    pub tts: bool,
    pub embeds: Vec<serde_json::Value>,
    pub allowed_mentions: Option<AllowedMentions>,
    pub reply_to: Option<MessageId>,
    pub fail_if_not_exists: bool,
    pub attachments: Vec<guildhall_domain::entity::Attachment>,
    pub flags: u64,
}

#[derive(Deserialize, Debug, Clone, Default, utoipa::ToSchema)]
pub struct AllowedMentions {
    #[serde(default)]
    pub parse: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::openapi::schema::Snowflake>>)]
    pub users: Option<Vec<UserId>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::openapi::schema::Snowflake>>)]
    pub roles: Option<Vec<RoleId>>,
    #[serde(default)]
    pub replied_user: Option<bool>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct CreateMessageBody {
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub content: Option<String>,
    #[serde(default)]
    pub nonce: Option<serde_json::Value>,
    #[serde(default)]
    pub tts: Option<bool>,
    #[serde(default)]
    #[schema(max_items = 10)]
    pub embeds: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub embed: Option<serde_json::Value>,
    #[serde(default)]
    pub allowed_mentions: Option<AllowedMentions>,
    #[serde(default)]
    pub message_reference: Option<MessageReferenceBody>,
    #[serde(default)]
    pub flags: Option<u64>,
    #[serde(default)]
    pub sticker_ids: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub components: Option<Vec<serde_json::Value>>,
    /// Multipart only: metadata of the uploaded `files[n]`.
    #[serde(default)]
    pub attachments: Option<Vec<AttachmentRef>>,
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct MessageReferenceBody {
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::Snowflake>)]
    pub message_id: Option<MessageId>,
    #[serde(default)]
    pub fail_if_not_exists: Option<bool>,
}

/// Validates a create body (content ≤ 2000, ≤ 10 embeds of ≤ 6000 chars, nonce
/// ≤ 25 chars). Emptiness is checked later, once attachments are known.
pub fn validate_create(body: CreateMessageBody) -> Result<NewMessage, Error> {
    let mut errors = FormErrors::default();
    let content = body.content.unwrap_or_default();
    if content.chars().count() > 2000 {
        errors.add("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.");
    }
    let mut embeds = body.embeds.unwrap_or_default();
    if let Some(e) = body.embed {
        embeds.push(e);
    }
    if embeds.len() > 10 {
        errors.add("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.");
    }
    if embeds.iter().any(|e| !e.is_object()) {
        errors.add("embeds", "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType");
    }
    let embed_chars: usize = embeds.iter().map(|e| e.to_string().len()).sum();
    if embed_chars > 6000 * 2 {
        errors.add("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000");
    }
    match &body.nonce {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(s)) if s.chars().count() <= 25 => {}
        Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        Some(_) => errors.add("nonce", "BASE_TYPE_BAD_LENGTH", "Must be 25 or fewer in length."),
    }
    errors.finish()?;
    let reply_to = body.message_reference.as_ref().and_then(|r| r.message_id);
    Ok(NewMessage {
        content,
        nonce: body.nonce.filter(|n| !n.is_null()),
        tts: body.tts.unwrap_or(false),
        embeds,
        allowed_mentions: body.allowed_mentions,
        reply_to,
        fail_if_not_exists: body.message_reference.and_then(|r| r.fail_if_not_exists).unwrap_or(true),
        attachments: Vec::new(),
        flags: body.flags.unwrap_or(0) & ((1 << 2) | (1 << 12)),
    })
}

/// `<@123>` / `<@!123>` user mentions and `<@&123>` role mentions in content.
pub fn parse_mentions(content: &str) -> (Vec<UserId>, Vec<RoleId>) {
    let mut users = Vec::new();
    let mut roles = Vec::new();
    let mut rest = content;
    while let Some(start) = rest.find("<@") {
        rest = &rest[start + 2..];
        let (is_role, body) = match rest.as_bytes().first() {
            Some(b'&') => (true, &rest[1..]),
            Some(b'!') => (false, &rest[1..]),
            _ => (false, rest),
        };
        if let Some(end) = body.find('>')
            && let Ok(id) = body[..end].parse::<u64>()
            && let Some(id) = guildhall_model::Id::new_checked(id)
        {
            if is_role {
                if !roles.contains(&id) {
                    roles.push(id);
                }
            } else if !users.contains(&id.cast()) {
                users.push(id.cast());
            }
        }
    }
    (users, roles)
}

/// Applies allowed_mentions to the parsed mentions.
fn filter_mentions(new: &NewMessage, users: Vec<UserId>, roles: Vec<RoleId>) -> (Vec<UserId>, Vec<RoleId>, bool) {
    let everyone_in_text = new.content.contains("@everyone") || new.content.contains("@here");
    match &new.allowed_mentions {
        None => (users, roles, everyone_in_text),
        Some(am) => {
            let parse = am.parse.clone().unwrap_or_default();
            let users = if parse.iter().any(|p| p == "users") {
                users
            } else {
                users.into_iter().filter(|u| am.users.as_ref().is_some_and(|l| l.contains(u))).collect()
            };
            let roles = if parse.iter().any(|p| p == "roles") {
                roles
            } else {
                roles.into_iter().filter(|r| am.roles.as_ref().is_some_and(|l| l.contains(r))).collect()
            };
            (users, roles, everyone_in_text && parse.iter().any(|p| p == "everyone"))
        }
    }
}

/// Sends a validated message: checks, persists, publishes MESSAGE_CREATE, and
/// returns the message as REST renders it. Shared by JSON and multipart sends.
pub async fn send_message(s: &AppState, caller: &Caller, channel: ChannelId, new: NewMessage) -> ApiResult<Response> {
    if new.content.trim().is_empty() && new.embeds.is_empty() && new.attachments.is_empty() {
        return Err(Error::bad_request(error_code::EMPTY_MESSAGE, "Cannot send an empty message").into());
    }
    let rt = s.rt.clone();
    let author = caller.id();
    let base = rt.config.public_url.clone();
    let value = match rt.channel_home(channel)? {
        ChannelHome::Guild(g) => {
            let base = base.clone();
            rt.guild(g)?
                .call(move |a: &mut GuildActor| {
                    let mut required = Permissions::SEND_MESSAGES;
                    if !new.attachments.is_empty() {
                        required |= Permissions::ATTACH_FILES;
                    }
                    let access = guild_channel_access(a, author, channel, required)?;
                    if !guildhall_domain::entity::channel_type::is_text_based(access.channel.kind) {
                        return Err(Error::bad_request(
                            error_code::NON_TEXT_CHANNEL,
                            "Cannot send messages in a non-text channel",
                        ));
                    }
                    let (mut mutations, mut events) =
                        crate::routes::threads::before_send(a, channel, author, access.permissions)?;
                    let (users, roles) = parse_mentions(&new.content);
                    let (mut mentions, mention_roles, everyone) = filter_mentions(&new, users, roles);
                    mentions.retain(|u| a.state.guild.members.contains_key(u));
                    let mention_everyone = everyone && access.permissions.contains(Permissions::MENTION_EVERYONE);
                    let referenced = match new.reply_to {
                        Some(id) => match a.shared.store.message(channel, id)? {
                            Some(m) => Some(m),
                            None if new.fail_if_not_exists => {
                                return Err(Error::form_field(
                                    "message_reference",
                                    "REPLIES_UNKNOWN_MESSAGE",
                                    "Unknown message",
                                ));
                            }
                            None => None,
                        },
                        None => None,
                    };
                    if let Some(r) = &referenced {
                        let ping = new.allowed_mentions.as_ref().and_then(|am| am.replied_user).unwrap_or(true);
                        if ping && !mentions.contains(&r.author_id) && r.author_id != author {
                            mentions.push(r.author_id);
                        }
                    }
                    let msg = Message {
                        id: a.shared.next_id(),
                        channel_id: channel,
                        guild_id: access.guild_id,
                        author_id: author,
                        content: new.content,
                        edited_timestamp: None,
                        tts: new.tts && access.permissions.contains(Permissions::SEND_TTS_MESSAGES),
                        mention_everyone,
                        mentions,
                        mention_roles,
                        attachments: new.attachments,
                        embeds: new.embeds,
                        reactions: Vec::new(),
                        pinned: false,
                        pinned_at: None,
                        kind: if referenced.is_some() { message_type::REPLY } else { message_type::DEFAULT },
                        flags: new.flags,
                        message_reference: new.reply_to.filter(|_| referenced.is_some()).map(|id| MessageReference {
                            kind: 0,
                            message_id: Some(id),
                            channel_id: Some(channel),
                            guild_id: access.guild_id,
                        }),
                        thread_id: None,
                        application_id: None,
                    };
                    if let Some(c) = a.state.guild.channels.get_mut(&channel) {
                        c.last_message_id = Some(msg.id);
                        if guildhall_domain::entity::channel_type::is_thread(c.kind) {
                            c.message_count += 1;
                        }
                    }
                    let gid = a.state.guild.guild.id;
                    let member = a.state.guild.members.get(&author).cloned();
                    let (event, rest) = a.shared.directory.with_users(|users| {
                        let ctx = Ctx { users, base: &base };
                        let mut view = MessageView::new(&msg, &ctx);
                        view.nonce = new.nonce.as_ref();
                        view.referenced = referenced.as_ref().map(Some);
                        let rest = to_bytes(&view);
                        // The event is the REST body plus guild_id and member:
                        // append them rather than render the message again.
                        let member_view = member.as_ref().map(|m| MemberView::new(m, None));
                        let body = with_entries(&rest, &EventExtras { guild_id: msg.guild_id, member: &member_view });
                        view.include_guild_id = true;
                        view.member = member_view;
                        view.redact_content = true;
                        let redacted = to_bytes(&view);
                        let mut exempt = msg.mentions.clone();
                        exempt.push(author);
                        let event = Event {
                            name: "MESSAGE_CREATE",
                            body,
                            audience: Audience::Guild {
                                intent: Intents::GUILD_MESSAGES,
                                channel: Some(channel),
                                extra: Permissions::NONE,
                            },
                            redacted: Some(Redacted { body: redacted, exempt }),
                            guild_id: Some(gid),
                        };
                        (event, rest)
                    });
                    mutations.push(Mutation::PutMessage(msg));
                    events.push(event);
                    Ok(Change::write(mutations, events, rest))
                })
                .await?
        }
        ChannelHome::Private => {
            rt.private()
                .call(move |a: &mut PrivateActor| {
                    let mut required = Permissions::SEND_MESSAGES;
                    if !new.attachments.is_empty() {
                        required |= Permissions::ATTACH_FILES;
                    }
                    let access = private_channel_access(a, author, channel, required)?;
                    let (users, _) = parse_mentions(&new.content);
                    let (mentions, _, _) = filter_mentions(&new, users, Vec::new());
                    let msg = Message {
                        id: a.shared.next_id(),
                        channel_id: channel,
                        guild_id: None,
                        author_id: author,
                        content: new.content,
                        edited_timestamp: None,
                        tts: new.tts,
                        mention_everyone: false,
                        mentions: mentions.into_iter().filter(|u| access.channel.recipients.contains(u)).collect(),
                        mention_roles: Vec::new(),
                        attachments: new.attachments,
                        embeds: new.embeds,
                        reactions: Vec::new(),
                        pinned: false,
                        pinned_at: None,
                        kind: message_type::DEFAULT,
                        flags: new.flags,
                        message_reference: None,
                        thread_id: None,
                        application_id: None,
                    };
                    if let Some(c) = a.state.channels.get_mut(&channel) {
                        c.last_message_id = Some(msg.id);
                    }
                    let recipients = access.channel.recipients.clone();
                    let (event, rest) = a.shared.directory.with_users(|users| {
                        let ctx = Ctx { users, base: &base };
                        let mut view = MessageView::new(&msg, &ctx);
                        view.nonce = new.nonce.as_ref();
                        let rest = to_bytes(&view);
                        let event = Event {
                            name: "MESSAGE_CREATE",
                            body: rest.clone(),
                            audience: Audience::Users { users: recipients, intent: Intents::DIRECT_MESSAGES },
                            redacted: None,
                            guild_id: None,
                        };
                        (event, rest)
                    });
                    Ok(Change::write(vec![Mutation::PutMessage(msg)], vec![event], rest))
                })
                .await?
        }
    };
    Ok(ok_json_bytes(value))
}

/// The fields a guild MESSAGE_CREATE has on top of the REST message.
#[derive(serde::Serialize)]
struct EventExtras<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    guild_id: Option<guildhall_model::id::GuildId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: &'a Option<MemberView<'a>>,
}

/// `object` (a rendered JSON object) with the top-level entries of `extra` (an
/// object with none of the same keys) appended.
fn with_entries(object: &bytes::Bytes, extra: &impl serde::Serialize) -> bytes::Bytes {
    let extra = serde_json::to_vec(extra).expect("views always serialize");
    if extra.len() <= 2 || object.len() < 2 {
        return object.clone();
    }
    let mut out = Vec::with_capacity(object.len() + extra.len());
    out.extend_from_slice(&object[..object.len() - 1]);
    out.push(b',');
    out.extend_from_slice(&extra[1..]);
    out.into()
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryParams {
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Snowflake>)]
    before: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Snowflake>)]
    after: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Snowflake>)]
    around: Option<String>,
}

#[utoipa::path(get, path = "/channels/{channel_id}/messages", tag = "messages", params(HistoryParams), responses((status = 200, description = "Messages, newest first", body = [crate::openapi::schema::Message])))]
async fn list_messages(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordQuery(q): DiscordQuery<HistoryParams>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 50, 100, "limit", &mut errors);
    let around: Option<MessageId> = query_id(q.around.as_deref(), "around", &mut errors);
    let before: Option<MessageId> = query_id(q.before.as_deref(), "before", &mut errors);
    let after: Option<MessageId> = query_id(q.after.as_deref(), "after", &mut errors);
    let query = match (around, before, after) {
        (Some(id), _, _) => HistoryQuery::Around(id),
        (None, Some(id), _) => HistoryQuery::Before(id),
        (None, None, Some(id)) => HistoryQuery::After(id),
        _ => HistoryQuery::Latest,
    };
    errors.finish()?;
    let me = caller.id();
    let access = crate::access::channel_access(&s.rt, me, channel, Permissions::NONE).await?;
    if !access.permissions.contains(Permissions::READ_MESSAGE_HISTORY) {
        return Ok(ok_json(&[(); 0]));
    }
    // The latest page is served from its rendered bytes while neither the
    // channel's messages nor any user changed (runtime::page_cache).
    let cached_at = match query {
        HistoryQuery::Latest => s.rt.store.message_version(channel),
        _ => None,
    };
    let lookup = |users_version| PageKey { store_version: 0, users_version, limit, viewer: Some(me) };
    if let Some(store_version) = cached_at {
        let key = PageKey { store_version, ..lookup(s.rt.directory.users_version()) };
        if let Some(bytes) = s.rt.history_pages.get(channel, key) {
            return Ok(ok_json_bytes(bytes));
        }
    }
    let page = s.rt.store.messages(channel, query, limit)?;
    let (body, users_version) = s.rt.directory.with_users_at(|users, users_version| {
        let ctx = Ctx { users, base: &s.rt.config.public_url };
        let views: Vec<MessageView<Ctx>> = page
            .iter()
            .map(|m| {
                let mut v = MessageView::new(m, &ctx);
                v.viewer = Some(me);
                v
            })
            .collect();
        (bytes::Bytes::from(serde_json::to_vec(&views).unwrap_or_default()), users_version)
    });
    // Cached only if no write to the channel became visible since the version was
    // read (the page is then exactly that version's).
    if let Some(store_version) = cached_at
        && s.rt.store.message_version(channel) == Some(store_version)
    {
        // Only reactions (`me`) depend on the viewer.
        let viewer = page.iter().any(|m| !m.reactions.is_empty()).then_some(me);
        let key = PageKey { store_version, viewer, ..lookup(users_version) };
        s.rt.history_pages.put(channel, key, body.clone());
    }
    Ok(ok_json_bytes(body))
}

/// `GET /channels/{id}/messages/{msg}`: needs READ_MESSAGE_HISTORY (50001 without).
#[utoipa::path(get, path = "/channels/{channel_id}/messages/{message_id}", tag = "messages", responses((status = 200, description = "The Message", body = crate::openapi::schema::Message)))]
async fn get_message(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let me = caller.id();
    let access = crate::access::channel_access(&s.rt, me, channel, Permissions::NONE).await?;
    if !access.permissions.contains(Permissions::READ_MESSAGE_HISTORY) {
        return Err(Error::missing_access().into());
    }
    let msg = s.rt.store.message(channel, id)?.ok_or_else(Error::unknown_message)?;
    Ok(ok_json(&render_message(&s.rt, &msg, me)))
}

/// A PATCH body: absent fields are untouched, `null` clears.
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct EditMessageBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(max_length = 2000)]
    pub content: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(max_items = 10)]
    pub embeds: Option<Option<Vec<serde_json::Value>>>,
    #[serde(default, deserialize_with = "present")]
    pub embed: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    pub flags: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_mentions: Option<Option<AllowedMentions>>,
    #[serde(default, deserialize_with = "present")]
    pub attachments: Option<Option<Vec<AttachmentRef>>>,
    #[serde(default, deserialize_with = "present")]
    pub components: Option<Option<Vec<serde_json::Value>>>,
}

/// An entry of a body's `attachments`: an existing attachment's id (edits) or
/// the index of an uploaded file part (`files[n]`).
#[derive(Deserialize, Debug, Clone, utoipa::ToSchema)]
pub struct AttachmentRef {
    pub id: serde_json::Value,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl AttachmentRef {
    /// The id as a number, whether sent as a string or an integer.
    pub fn id_u64(&self) -> Option<u64> {
        match &self.id {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// Deserializes a field that is present (even as `null`) into `Some(..)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A validated edit, ready for the actor.
#[derive(Debug, Default)]
pub struct MessageEdit {
    pub content: Option<String>,
    pub embeds: Option<Vec<serde_json::Value>>,
    pub flags: Option<u64>,
    pub allowed_mentions: Option<AllowedMentions>,
    /// Existing attachments to keep (by id), when `attachments` was sent.
    pub keep_attachments: Option<Vec<u64>>,
    /// Newly uploaded files (already on disk).
    pub new_attachments: Vec<guildhall_domain::entity::Attachment>,
    /// Whether a field only the author may change was sent.
    pub author_fields: bool,
}

/// SUPPRESS_EMBEDS: the one flag an edit may toggle.
const SUPPRESS_EMBEDS: u64 = 1 << 2;

pub fn validate_edit(body: EditMessageBody) -> Result<MessageEdit, Error> {
    let mut errors = FormErrors::default();
    let author_fields = body.content.is_some()
        || body.embeds.is_some()
        || body.embed.is_some()
        || body.attachments.is_some()
        || body.allowed_mentions.is_some()
        || body.components.is_some();
    let content = body.content.map(Option::unwrap_or_default);
    if content.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        errors.add("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.");
    }
    let embeds = match (body.embeds, body.embed) {
        (None, None) => None,
        (e, one) => {
            let mut v = e.flatten().unwrap_or_default();
            v.extend(one.flatten());
            Some(v)
        }
    };
    if let Some(e) = &embeds {
        if e.len() > 10 {
            errors.add("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.");
        }
        if e.iter().any(|e| !e.is_object()) {
            errors.add("embeds", "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType");
        }
    }
    let mut keep = None;
    if let Some(list) = body.attachments {
        let list = list.unwrap_or_default();
        let mut ids = Vec::new();
        for (i, a) in list.iter().enumerate() {
            match a.id_u64() {
                Some(id) => ids.push(id),
                None => errors.add(&format!("attachments.{i}.id"), "NUMBER_TYPE_COERCE", "Value is not snowflake."),
            }
        }
        keep = Some(ids);
    }
    errors.finish()?;
    Ok(MessageEdit {
        content,
        embeds,
        flags: body.flags.map(Option::unwrap_or_default),
        allowed_mentions: body.allowed_mentions.flatten(),
        keep_attachments: keep,
        new_attachments: Vec::new(),
        author_fields,
    })
}

/// Applies an edit on the owning actor: author-only fields (50005 for anyone
/// else), SUPPRESS_EMBEDS by MANAGE_MESSAGES, `edited_timestamp`, MESSAGE_UPDATE.
/// Returns the message as REST renders it.
pub async fn apply_edit(
    s: &AppState,
    caller: &Caller,
    channel: ChannelId,
    id: MessageId,
    edit: MessageEdit,
) -> ApiResult<serde_json::Value> {
    let me = caller.id();
    let value = on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let access = h.access(me, channel, Permissions::NONE)?;
        let mut msg = h.message(channel, id)?;
        let mut edit = edit;
        if msg.author_id != me {
            if edit.author_fields || edit.flags.is_none() {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    error_code::CANNOT_EDIT_OTHER_USERS_MESSAGE,
                    "Cannot edit a message authored by another user",
                ));
            }
            if !access.permissions.contains(Permissions::MANAGE_MESSAGES) {
                return Err(Error::missing_permissions());
            }
        }
        if edit.author_fields && !matches!(msg.kind, message_type::DEFAULT | message_type::REPLY) {
            return Err(Error::bad_request(error_code::SYSTEM_MESSAGE, "Cannot execute action on a system message"));
        }
        if !edit.new_attachments.is_empty() && !access.permissions.contains(Permissions::ATTACH_FILES) {
            return Err(Error::missing_permissions());
        }
        if let Some(flags) = edit.flags {
            msg.flags = (msg.flags & !SUPPRESS_EMBEDS) | (flags & SUPPRESS_EMBEDS);
        }
        if let Some(content) = edit.content.take() {
            let new = NewMessage {
                content: content.clone(),
                allowed_mentions: edit.allowed_mentions.clone(),
                ..NewMessage::default()
            };
            let (users, roles) = parse_mentions(&content);
            let (mut users, roles, everyone) = filter_mentions(&new, users, roles);
            match h.guild_state() {
                Some(g) => users.retain(|u| g.members.contains_key(u)),
                None => users.retain(|u| access.channel.recipients.contains(u)),
            }
            msg.mentions = users;
            if h.guild_id().is_some() {
                msg.mention_roles = roles;
                msg.mention_everyone = everyone && access.permissions.contains(Permissions::MENTION_EVERYONE);
            }
            msg.content = content;
        }
        if let Some(embeds) = edit.embeds.take() {
            msg.embeds = embeds;
        }
        if let Some(keep) = &edit.keep_attachments {
            msg.attachments.retain(|a| keep.contains(&a.id.get()));
        }
        msg.attachments.append(&mut edit.new_attachments);
        if msg.attachments.len() > 10 {
            return Err(Error::form_field("attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."));
        }
        if edit.author_fields {
            if msg.content.trim().is_empty() && msg.embeds.is_empty() && msg.attachments.is_empty() {
                return Err(Error::bad_request(error_code::EMPTY_MESSAGE, "Cannot send an empty message"));
            }
            msg.edited_timestamp = Some(Timestamp::now());
        }
        let event = h.message_event("MESSAGE_UPDATE", &msg, &access.channel);
        let rest = h.render(&msg, me);
        Ok(Change::write(vec![Mutation::PutMessage(msg)], vec![event], rest))
    })
    .await?;
    Ok(value)
}

/// `DELETE /channels/{id}/messages/{msg}`: the author, or MANAGE_MESSAGES for
/// others' messages (guilds only); undeletable system messages → 50021.
#[utoipa::path(delete, path = "/channels/{channel_id}/messages/{message_id}", tag = "messages", responses((status = 204, description = "Done; no body")))]
async fn delete_message(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let access = h.access(me, channel, Permissions::NONE)?;
        let msg = h.message(channel, id)?;
        if msg.author_id != me && !access.permissions.contains(Permissions::MANAGE_MESSAGES) {
            return Err(Error::missing_permissions());
        }
        if !message_type::is_deletable(msg.kind) {
            return Err(Error::bad_request(error_code::SYSTEM_MESSAGE, "Cannot execute action on a system message"));
        }
        let body = serde_json::json!({ "id": id, "channel_id": channel, "guild_id": h.guild_id() });
        let event = h.channel_event(
            "MESSAGE_DELETE",
            &access.channel,
            Intents::GUILD_MESSAGES,
            Intents::DIRECT_MESSAGES,
            to_bytes(&strip_null_guild(body)),
        );
        Ok(Change::write(vec![Mutation::DeleteMessage(channel, id)], vec![event], ()))
    })
    .await?;
    Ok(no_content())
}

/// Drops `guild_id: null` (DM events carry no guild_id key).
pub fn strip_null_guild(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut()
        && o.get("guild_id").is_some_and(serde_json::Value::is_null)
    {
        o.remove("guild_id");
    }
    v
}

#[derive(Deserialize, utoipa::ToSchema)]
struct BulkDeleteBody {
    #[schema(value_type = Vec<crate::openapi::schema::Snowflake>, min_items = 2, max_items = 100)]
    messages: Vec<MessageId>,
}

/// Messages older than this cannot be bulk deleted.
const BULK_DELETE_MAX_AGE_MS: u64 = 14 * 24 * 3600 * 1000;

/// The same as `…/bulk-delete`, under the older spelling some libraries use.
#[utoipa::path(post, path = "/channels/{channel_id}/messages/bulk_delete", tag = "messages", request_body = BulkDeleteBody, responses((status = 204, description = "Done; no body")))]
async fn bulk_delete_legacy(
    state: State<AppState>,
    caller: Caller,
    path: Path<String>,
    body: DiscordJson<BulkDeleteBody>,
) -> ApiResult<Response> {
    bulk_delete(state, caller, path, body).await
}

/// `POST /channels/{id}/messages/bulk-delete`: 2–100 distinct ids, none older
/// than two weeks, MANAGE_MESSAGES; ids that name no message are skipped.
#[utoipa::path(post, path = "/channels/{channel_id}/messages/bulk-delete", tag = "messages", request_body = BulkDeleteBody, responses((status = 204, description = "Done; no body")))]
async fn bulk_delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordJson(body): DiscordJson<BulkDeleteBody>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let ids = body.messages;
    if ids.len() < 2 {
        return Err(Error::form_field("messages", "BASE_TYPE_MIN_LENGTH", "Must be 2 or more in length.").into());
    }
    if ids.len() > 100 {
        return Err(Error::form_field("messages", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.").into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(i) = ids.iter().position(|id| !seen.insert(*id)) {
        return Err(Error::form_field(
            &format!("messages.{i}"),
            "BASE_TYPE_DUPLICATE",
            "Duplicate message ids are not allowed.",
        )
        .into());
    }
    let now = Timestamp::now().as_ms();
    if ids.iter().any(|id| id.timestamp_ms() + BULK_DELETE_MAX_AGE_MS < now) {
        return Err(Error::bad_request(
            error_code::BULK_DELETE_TOO_OLD,
            "A message provided was too old to bulk delete",
        )
        .into());
    }
    guild_of_channel(&s, channel)?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let access = h.access(me, channel, Permissions::MANAGE_MESSAGES)?;
        let mut deleted = Vec::new();
        for id in ids {
            if let Some(m) = h.shared().store.message(channel, id)?
                && message_type::is_deletable(m.kind)
            {
                deleted.push(id);
            }
        }
        if deleted.is_empty() {
            return Ok(Change::read(()));
        }
        let body = serde_json::json!({ "ids": deleted, "channel_id": channel, "guild_id": h.guild_id() });
        let event = h.channel_event(
            "MESSAGE_DELETE_BULK",
            &access.channel,
            Intents::GUILD_MESSAGES,
            Intents::DIRECT_MESSAGES,
            to_bytes(&body),
        );
        let mutations = deleted.into_iter().map(|id| Mutation::DeleteMessage(channel, id)).collect();
        Ok(Change::write(mutations, vec![event], ()))
    })
    .await?;
    Ok(no_content())
}

/// `POST /channels/{id}/typing`: SEND_MESSAGES; 204 and TYPING_START.
#[utoipa::path(post, path = "/channels/{channel_id}/typing", tag = "messages", responses((status = 204, description = "Done; no body")))]
async fn typing(State(s): State<AppState>, caller: Caller, Path(channel_id): Path<String>) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let me = caller.id();
    on_channel(&s.rt, channel, move |h: &mut dyn Host| {
        let access = h.access(me, channel, Permissions::SEND_MESSAGES)?;
        let mut body = serde_json::json!({
            "channel_id": channel,
            "user_id": me,
            "timestamp": Timestamp::now().as_secs(),
        });
        if let Some(g) = h.guild_id() {
            body["guild_id"] = serde_json::json!(g);
            if let Some(m) = h.member_json(me) {
                body["member"] = m;
            }
        }
        let event = h.channel_event(
            "TYPING_START",
            &access.channel,
            Intents::GUILD_MESSAGE_TYPING,
            Intents::DIRECT_MESSAGE_TYPING,
            to_bytes(&body),
        );
        h.publish_now(event);
        Ok(Change::read(()))
    })
    .await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_entries_appends_top_level_fields() {
        let base = bytes::Bytes::from_static(br#"{"id":"1","content":"a}"}"#);
        let joined = with_entries(&base, &serde_json::json!({ "guild_id": "2", "member": { "roles": [] } }));
        let v: serde_json::Value = serde_json::from_slice(&joined).unwrap();
        assert_eq!(v, serde_json::json!({ "id": "1", "content": "a}", "guild_id": "2", "member": { "roles": [] } }));
        // Nothing to add: the same bytes.
        assert_eq!(with_entries(&base, &EventExtras { guild_id: None, member: &None }), base);
    }
}
