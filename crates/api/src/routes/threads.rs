//! Threads: start one from a message or on its own (public, private,
//! announcement), join / leave / add / remove thread members, list members,
//! active threads of a guild and archived public threads of a channel, and the
//! rules a send into a thread follows ([`before_send`]: locked threads refuse,
//! archived ones unarchive, the sender joins). Editing and deleting a thread
//! are `PATCH` / `DELETE /channels/{id}` (routes/channels.rs).
//!
//! A thread is a guild `Channel` with `thread_metadata`, `owner_id` and
//! `parent_id`; its permissions are its parent's (domain::permissions). A thread
//! started from a message takes the message's id, as on Discord.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use guildhall_domain::entity::{Channel, MessageReference, ThreadMember, ThreadMetadata, channel_type, message_type};
use guildhall_domain::wire::{ChannelView, MemberView};
use guildhall_model::id::{ChannelId, GuildId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp, error_code};
use guildhall_runtime::{Change, ChannelHome, Error, ErrorKind, Event, FormErrors, GuildActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::access::guild_channel_access;
use crate::auth::Caller;
use crate::error::{ApiResult, created_json, no_content, ok_json};
use crate::extract::{DiscordJson, DiscordQuery, message_path, path_id, query_id, query_limit, query_timestamp};
use crate::routes::guild_common::{guild_of_channel, query_bool};
use crate::routes::host::{Host, system_message};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    start_from_message,
    start_without_message,
    list_members,
    get_member,
    add_member,
    remove_member,
    active_threads,
    archived_public
))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/channels/{channel_id}/messages/{message_id}/threads", post(start_from_message))
        .route("/channels/{channel_id}/threads", post(start_without_message))
        .route("/channels/{channel_id}/thread-members", get(list_members))
        .route("/channels/{channel_id}/thread-members/{user_id}", get(get_member).put(add_member).delete(remove_member))
        .route("/guilds/{guild_id}/threads/active", get(active_threads))
        .route("/channels/{channel_id}/threads/archived/public", get(archived_public))
}

/// Message flag set on a message a thread was started from.
const HAS_THREAD: u64 = 1 << 5;
const INVALID_CHANNEL_TYPE: u32 = 50024;
const THREAD_ARCHIVED: u32 = 50083;

fn thread_json(c: &Channel) -> serde_json::Value {
    serde_json::to_value(ChannelView::new(c)).unwrap_or_default()
}

/// A thread member object (`member` added when asked for).
fn member_json(a: &GuildActor, tm: &ThreadMember, with_member: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": tm.thread_id,
        "user_id": tm.user_id,
        "join_timestamp": tm.join_timestamp,
        "flags": tm.flags,
    });
    if with_member
        && let Some(m) = a.state.guild.members.get(&tm.user_id)
        && let Some(u) = a.shared.directory.user(tm.user_id)
    {
        v["member"] = serde_json::to_value(MemberView::new(m, Some(&u))).unwrap_or_default();
    }
    v
}

fn thread_event(gid: GuildId, name: &'static str, thread: &Channel, body: &impl serde::Serialize) -> Event {
    Event::channel(name, gid, thread.id, Intents::GUILDS, body)
}

/// THREAD_MEMBERS_UPDATE for a join or a leave (GUILD_MEMBERS, thread viewers).
fn members_update(a: &GuildActor, thread: &Channel, added: Option<&ThreadMember>, removed: Option<UserId>) -> Event {
    let gid = a.state.guild.guild.id;
    let mut body = serde_json::json!({
        "id": thread.id,
        "guild_id": gid,
        "member_count": thread.member_count.min(50),
    });
    if let Some(tm) = added {
        body["added_members"] = serde_json::json!([member_json(a, tm, true)]);
    }
    if let Some(u) = removed {
        body["removed_member_ids"] = serde_json::json!([u]);
    }
    Event::channel("THREAD_MEMBERS_UPDATE", gid, thread.id, Intents::GUILD_MEMBERS, &body)
}

/// Adds `user` to a thread in the actor's state; `None` if already a member.
fn join(a: &mut GuildActor, thread: ChannelId, user: UserId) -> Option<(ThreadMember, Channel)> {
    let members = a.state.guild.thread_members.entry(thread).or_default();
    if members.contains_key(&user) {
        return None;
    }
    let tm = ThreadMember { thread_id: thread, user_id: user, join_timestamp: Timestamp::now(), flags: 0 };
    members.insert(user, tm.clone());
    let c = a.state.guild.channels.get_mut(&thread)?;
    c.member_count += 1;
    Some((tm, c.clone()))
}

/// The writes and events of a join (thread member, count, events).
fn join_change(
    a: &mut GuildActor,
    thread: ChannelId,
    user: UserId,
    mutations: &mut Vec<Mutation>,
    events: &mut Vec<Event>,
) {
    let gid = a.state.guild.guild.id;
    if let Some((tm, c)) = join(a, thread, user) {
        let mut self_body = member_json(a, &tm, false);
        self_body["guild_id"] = serde_json::json!(gid);
        events.push(members_update(a, &c, Some(&tm), None));
        // Someone added to a thread whose parent they cannot view is not told of it.
        let sees = guildhall_domain::permissions::channel_permissions(&a.state.guild, user, thread, Timestamp::now())
            .contains(Permissions::VIEW_CHANNEL);
        if sees {
            events.push(Event::new(
                "THREAD_MEMBER_UPDATE",
                &self_body,
                guildhall_runtime::Audience::Users { users: vec![user], intent: Intents::GUILDS },
                Some(gid),
            ));
        }
        mutations.push(Mutation::PutThreadMember(gid, tm));
        mutations.push(Mutation::PutChannel(c));
    }
}

/// Rules for a send into `channel` when it is a thread, inside the guild job
/// that sends: a locked thread refuses (160005) unless the sender has
/// MANAGE_THREADS; an archived one is unarchived (THREAD_UPDATE); the sender
/// joins the thread. Returns the extra writes and events, to go before the
/// message's own.
pub fn before_send(
    a: &mut GuildActor,
    channel: ChannelId,
    author: UserId,
    perms: Permissions,
) -> Result<(Vec<Mutation>, Vec<Event>), Error> {
    let mut mutations = Vec::new();
    let mut events = Vec::new();
    let gid = a.state.guild.guild.id;
    let Some(c) = a.state.guild.channels.get_mut(&channel) else { return Ok((mutations, events)) };
    let Some(meta) = c.thread_metadata.as_mut() else { return Ok((mutations, events)) };
    if meta.locked && !perms.contains(Permissions::MANAGE_THREADS) {
        return Err(Error::new(ErrorKind::Forbidden, error_code::THREAD_LOCKED, "Thread is locked"));
    }
    if meta.archived {
        meta.archived = false;
        meta.archive_timestamp = Timestamp::now();
        let c = c.clone();
        events.push(thread_event(gid, "THREAD_UPDATE", &c, &thread_json(&c)));
        mutations.push(Mutation::PutChannel(c));
    }
    join_change(a, channel, author, &mut mutations, &mut events);
    Ok((mutations, events))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct StartBody {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::ArchiveDuration>)]
    auto_archive_duration: Option<u32>,
    #[serde(default)]
    #[schema(maximum = 21600)]
    rate_limit_per_user: Option<u32>,
    #[serde(default, rename = "type")]
    #[schema(maximum = 255)]
    kind: Option<u8>,
    #[serde(default)]
    invitable: Option<bool>,
}

struct ValidStart {
    name: String,
    auto_archive_duration: u32,
    rate_limit_per_user: u32,
    kind: Option<u8>,
    invitable: bool,
}

fn validate_start(body: StartBody) -> Result<ValidStart, Error> {
    let mut errors = FormErrors::default();
    let name = body.name.trim().to_string();
    if !(1..=100).contains(&name.chars().count()) {
        errors.add("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.");
    }
    let duration = body.auto_archive_duration.unwrap_or(1440);
    if ![60, 1440, 4320, 10080].contains(&duration) {
        errors.add("auto_archive_duration", "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}.");
    }
    let slowmode = body.rate_limit_per_user.unwrap_or(0);
    if slowmode > 21600 {
        errors.add("rate_limit_per_user", "NUMBER_TYPE_MAX", "int value should be less than or equal to 21600.");
    }
    if let Some(k) = body.kind
        && !matches!(k, channel_type::ANNOUNCEMENT_THREAD | channel_type::PUBLIC_THREAD | channel_type::PRIVATE_THREAD)
    {
        errors.add("type", "BASE_TYPE_CHOICES", "Value must be one of {10, 11, 12}.");
    }
    errors.finish()?;
    Ok(ValidStart {
        name,
        auto_archive_duration: duration,
        rate_limit_per_user: slowmode,
        kind: body.kind,
        invitable: body.invitable.unwrap_or(true),
    })
}

/// The guild a channel lives in; threads do not exist in DMs (50003).
/// Creates the thread in state and returns its writes and events (THREAD_CREATE
/// with `newly_created`, the creator's membership).
fn create_thread(
    a: &mut GuildActor,
    id: ChannelId,
    parent: &Channel,
    kind: u8,
    me: UserId,
    v: &ValidStart,
) -> (Channel, Vec<Mutation>, Vec<Event>) {
    let gid = a.state.guild.guild.id;
    let now = Timestamp::now();
    let mut c = Channel::new(id, kind, Some(gid));
    c.name = Some(v.name.clone());
    c.parent_id = Some(parent.id);
    c.owner_id = Some(me);
    c.rate_limit_per_user = v.rate_limit_per_user;
    c.thread_metadata = Some(ThreadMetadata {
        archived: false,
        auto_archive_duration: v.auto_archive_duration,
        archive_timestamp: now,
        locked: false,
        invitable: (kind == channel_type::PRIVATE_THREAD).then_some(v.invitable),
        create_timestamp: Some(now),
    });
    a.state.guild.channels.insert(id, c.clone());
    a.shared.directory.set_channel_home(id, ChannelHome::Guild(gid));
    let mut mutations = Vec::new();
    let mut events = Vec::new();
    // The creator joins first, so a private thread is visible to them when
    // THREAD_CREATE is fanned out.
    let tm = join(a, id, me).map(|(tm, after)| {
        c = after;
        tm
    });
    let mut view = ChannelView::new(&c);
    view.newly_created = true;
    let mut body = serde_json::to_value(&view).unwrap_or_default();
    if let Some(tm) = &tm {
        body["member"] = member_json(a, tm, false);
    }
    events.push(thread_event(gid, "THREAD_CREATE", &c, &body));
    mutations.push(Mutation::PutChannel(c.clone()));
    if let Some(tm) = tm {
        events.push(members_update(a, &c, Some(&tm), None));
        mutations.push(Mutation::PutThreadMember(gid, tm));
    }
    (c, mutations, events)
}

/// `POST /channels/{id}/messages/{msg}/threads`: CREATE_PUBLIC_THREADS; one
/// thread per message (160004); the message gets `thread` and MESSAGE_UPDATE.
#[utoipa::path(post, path = "/channels/{channel_id}/messages/{message_id}/threads", tag = "threads", request_body = StartBody, responses((status = 201, description = "The new thread", body = crate::openapi::schema::Channel)))]
async fn start_from_message(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id)): Path<(String, String)>,
    DiscordJson(body): DiscordJson<StartBody>,
) -> ApiResult<Response> {
    let (channel, message) = message_path(&channel_id, &message_id)?;
    let v = validate_start(body)?;
    let g = guild_of_channel(&s, channel)?;
    let me = caller.id();
    let value = s
        .rt
        .guild(g)?
        .call(move |a: &mut GuildActor| {
            let access = guild_channel_access(a, me, channel, Permissions::NONE)?;
            let kind = match access.channel.kind {
                channel_type::GUILD_TEXT => channel_type::PUBLIC_THREAD,
                channel_type::GUILD_ANNOUNCEMENT => channel_type::ANNOUNCEMENT_THREAD,
                _ => {
                    return Err(Error::bad_request(INVALID_CHANNEL_TYPE, "Cannot execute action on this channel type"));
                }
            };
            if !access.permissions.contains(Permissions::CREATE_PUBLIC_THREADS | Permissions::READ_MESSAGE_HISTORY) {
                return Err(Error::missing_permissions());
            }
            let mut msg = a.shared.store.message(channel, message)?.ok_or_else(Error::unknown_message)?;
            if msg.thread_id.is_some() || a.state.guild.channels.contains_key(&message.cast()) {
                return Err(Error::bad_request(
                    error_code::THREAD_ALREADY_CREATED,
                    "A thread has already been created for this message",
                ));
            }
            let (thread, mut mutations, mut events) = create_thread(a, message.cast(), &access.channel, kind, me, &v);
            msg.thread_id = Some(thread.id);
            msg.flags |= HAS_THREAD;
            let host: &dyn Host = a;
            events.push(host.message_event("MESSAGE_UPDATE", &msg, &access.channel));
            mutations.push(Mutation::PutMessage(msg));
            Ok(Change::write(mutations, events, thread_json(&thread)))
        })
        .await?;
    Ok(created_json(&value))
}

/// `POST /channels/{id}/threads`: type 11 (CREATE_PUBLIC_THREADS) or 12
/// (CREATE_PRIVATE_THREADS; default), 10 in announcement channels. A public
/// thread leaves a THREAD_CREATED (type 18) notice in the parent.
#[utoipa::path(post, path = "/channels/{channel_id}/threads", tag = "threads", request_body = StartBody, responses((status = 201, description = "The new thread", body = crate::openapi::schema::Channel)))]
async fn start_without_message(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordJson(body): DiscordJson<StartBody>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let v = validate_start(body)?;
    let g = guild_of_channel(&s, channel)?;
    let me = caller.id();
    let value =
        s.rt.guild(g)?
            .call(move |a: &mut GuildActor| {
                let access = guild_channel_access(a, me, channel, Permissions::NONE)?;
                let parent = access.channel.kind;
                let kind = v.kind.unwrap_or(channel_type::PRIVATE_THREAD);
                let valid = match parent {
                    channel_type::GUILD_TEXT => kind != channel_type::ANNOUNCEMENT_THREAD,
                    channel_type::GUILD_ANNOUNCEMENT => kind == channel_type::ANNOUNCEMENT_THREAD,
                    _ => false,
                };
                if !valid {
                    return Err(Error::bad_request(INVALID_CHANNEL_TYPE, "Cannot execute action on this channel type"));
                }
                let required = if kind == channel_type::PRIVATE_THREAD {
                    Permissions::CREATE_PRIVATE_THREADS
                } else {
                    Permissions::CREATE_PUBLIC_THREADS
                };
                if !access.permissions.contains(required) {
                    return Err(Error::missing_permissions());
                }
                let id: ChannelId = a.shared.next_id();
                let (thread, mut mutations, mut events) = create_thread(a, id, &access.channel, kind, me, &v);
                if kind != channel_type::PRIVATE_THREAD {
                    let gid = Some(a.state.guild.guild.id);
                    let notice = system_message(
                        a.shared.next_id(),
                        channel,
                        gid,
                        me,
                        message_type::THREAD_CREATED,
                        v.name.clone(),
                        MessageReference { kind: 0, message_id: None, channel_id: Some(id), guild_id: gid },
                    );
                    if let Some(p) = a.state.guild.channels.get_mut(&channel) {
                        p.last_message_id = Some(notice.id);
                    }
                    let host: &dyn Host = a;
                    events.push(host.message_event("MESSAGE_CREATE", &notice, &access.channel));
                    mutations.push(Mutation::PutMessage(notice));
                }
                Ok(Change::write(mutations, events, thread_json(&thread)))
            })
            .await?;
    Ok(created_json(&value))
}

/// The thread a thread-member route names, with the caller's permissions in it;
/// 10003 for channels that are not threads.
fn thread_access(a: &GuildActor, me: UserId, thread: ChannelId) -> Result<(Channel, Permissions), Error> {
    let access = guild_channel_access(a, me, thread, Permissions::NONE)?;
    if !channel_type::is_thread(access.channel.kind) {
        return Err(Error::bad_request(INVALID_CHANNEL_TYPE, "Cannot execute action on this channel type"));
    }
    Ok((access.channel, access.permissions))
}

fn archived_error() -> Error {
    Error::bad_request(THREAD_ARCHIVED, "Thread is archived")
}

/// `PUT /channels/{thread}/thread-members/@me` and `…/{user}` (adding someone
/// else needs SEND_MESSAGES_IN_THREADS, and MANAGE_THREADS for a private thread
/// that is not invitable). 204.
#[utoipa::path(put, path = "/channels/{channel_id}/thread-members/{user_id}", tag = "threads", operation_id = "add_thread_member", responses((status = 204, description = "Done; no body")))]
async fn add_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    let thread: ChannelId = path_id(&channel_id, "channel_id")?;
    let me = caller.id();
    let target: UserId = if user == "@me" { me } else { path_id(&user, "user_id")? };
    let g = guild_of_channel(&s, thread)?;
    s.rt.guild(g)?
        .call(move |a: &mut GuildActor| {
            let (c, perms) = thread_access(a, me, thread)?;
            let meta = c.thread_metadata.clone();
            if meta.as_ref().is_some_and(|m| m.archived || m.locked) && !perms.contains(Permissions::MANAGE_THREADS) {
                return Err(archived_error());
            }
            if target != me {
                if !perms.contains(Permissions::SEND_MESSAGES) {
                    return Err(Error::missing_permissions());
                }
                let invitable = meta.as_ref().and_then(|m| m.invitable).unwrap_or(true);
                if c.kind == channel_type::PRIVATE_THREAD && !invitable && !perms.contains(Permissions::MANAGE_THREADS)
                {
                    return Err(Error::missing_permissions());
                }
                if !a.state.guild.members.contains_key(&target) {
                    return Err(Error::unknown_member());
                }
            }
            let mut mutations = Vec::new();
            let mut events = Vec::new();
            join_change(a, thread, target, &mut mutations, &mut events);
            Ok(Change::write(mutations, events, ()))
        })
        .await?;
    Ok(no_content())
}

/// `DELETE /channels/{thread}/thread-members/@me` and `…/{user}` (others:
/// MANAGE_THREADS, or the creator of an unlocked private thread). 204.
#[utoipa::path(delete, path = "/channels/{channel_id}/thread-members/{user_id}", tag = "threads", operation_id = "remove_thread_member", responses((status = 204, description = "Done; no body")))]
async fn remove_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, user)): Path<(String, String)>,
) -> ApiResult<Response> {
    let thread: ChannelId = path_id(&channel_id, "channel_id")?;
    let me = caller.id();
    let target: UserId = if user == "@me" { me } else { path_id(&user, "user_id")? };
    let g = guild_of_channel(&s, thread)?;
    s.rt.guild(g)?
        .call(move |a: &mut GuildActor| {
            let (c, perms) = thread_access(a, me, thread)?;
            let meta = c.thread_metadata.clone().expect("threads carry metadata");
            if meta.archived && !perms.contains(Permissions::MANAGE_THREADS) {
                return Err(archived_error());
            }
            if target != me {
                let creator_of_private =
                    c.kind == channel_type::PRIVATE_THREAD && c.owner_id == Some(me) && !meta.locked;
                if !perms.contains(Permissions::MANAGE_THREADS) && !creator_of_private {
                    return Err(Error::missing_permissions());
                }
            }
            let gid = a.state.guild.guild.id;
            let removed = a.state.guild.thread_members.get_mut(&thread).and_then(|m| m.remove(&target));
            if removed.is_none() {
                return if target == me { Ok(Change::read(())) } else { Err(Error::unknown_member()) };
            }
            let Some(ch) = a.state.guild.channels.get_mut(&thread) else { return Err(Error::unknown_channel()) };
            ch.member_count = ch.member_count.saturating_sub(1);
            let ch = ch.clone();
            let event = members_update(a, &ch, None, Some(target));
            Ok(Change::write(
                vec![Mutation::DeleteThreadMember(gid, thread, target), Mutation::PutChannel(ch)],
                vec![event],
                (),
            ))
        })
        .await?;
    Ok(no_content())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MemberParams {
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    with_member: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Cursor>)]
    after: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// `GET /channels/{thread}/thread-members`: `with_member`, `after`, `limit` (1–100).
#[utoipa::path(get, path = "/channels/{channel_id}/thread-members", tag = "threads", operation_id = "list_thread_members", params(MemberParams), responses((status = 200, description = "The ThreadMember list", body = [crate::openapi::schema::ThreadMember])))]
async fn list_members(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordQuery(q): DiscordQuery<MemberParams>,
) -> ApiResult<Response> {
    let thread: ChannelId = path_id(&channel_id, "channel_id")?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 100, 100, "limit", &mut errors);
    let after: u64 = query_id(q.after.as_deref(), "after", &mut errors).unwrap_or(0);
    errors.finish()?;
    let with_member = query_bool(q.with_member.as_deref());
    let me = caller.id();
    let g = guild_of_channel(&s, thread)?;
    let list =
        s.rt.guild(g)?
            .call(move |a: &mut GuildActor| {
                thread_access(a, me, thread)?;
                let list: Vec<serde_json::Value> = a
                    .state
                    .guild
                    .thread_members
                    .get(&thread)
                    .map(|m| {
                        m.values()
                            .filter(|tm| tm.user_id.get() > after)
                            .take(limit)
                            .map(|tm| member_json(a, tm, with_member))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Change::read(list))
            })
            .await?;
    Ok(ok_json(&list))
}

/// `GET /channels/{thread}/thread-members/{user}`: 10007 when not a member.
#[utoipa::path(get, path = "/channels/{channel_id}/thread-members/{user_id}", tag = "threads", operation_id = "get_thread_member", params(MemberParams), responses((status = 200, description = "The ThreadMember", body = crate::openapi::schema::ThreadMember)))]
async fn get_member(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, user)): Path<(String, String)>,
    DiscordQuery(q): DiscordQuery<MemberParams>,
) -> ApiResult<Response> {
    let thread: ChannelId = path_id(&channel_id, "channel_id")?;
    let me = caller.id();
    let target: UserId = if user == "@me" { me } else { path_id(&user, "user_id")? };
    let with_member = query_bool(q.with_member.as_deref());
    let g = guild_of_channel(&s, thread)?;
    let v =
        s.rt.guild(g)?
            .call(move |a: &mut GuildActor| {
                thread_access(a, me, thread)?;
                let tm = a
                    .state
                    .guild
                    .thread_members
                    .get(&thread)
                    .and_then(|m| m.get(&target))
                    .ok_or_else(Error::unknown_member)?;
                Ok(Change::read(member_json(a, tm, with_member)))
            })
            .await?;
    Ok(ok_json(&v))
}

/// `{threads, members}` as the thread lists return them: the threads, and the
/// caller's own thread-member objects for those it has joined.
fn threads_with_own_members(a: &GuildActor, threads: Vec<&Channel>, me: UserId) -> serde_json::Value {
    let state = &a.state.guild;
    let members: Vec<serde_json::Value> = threads
        .iter()
        .filter_map(|c| state.thread_members.get(&c.id).and_then(|m| m.get(&me)))
        .map(|tm| member_json(a, tm, false))
        .collect();
    let threads: Vec<serde_json::Value> = threads.into_iter().map(thread_json).collect();
    serde_json::json!({ "threads": threads, "members": members })
}

/// `GET /guilds/{id}/threads/active`: `{threads, members}` — active threads the
/// caller can see, and the caller's own thread memberships among them.
#[utoipa::path(get, path = "/guilds/{guild_id}/threads/active", tag = "threads", responses((status = 200, description = "The ThreadList", body = crate::openapi::schema::ThreadList)))]
async fn active_threads(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
) -> ApiResult<Response> {
    let g: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let v =
        s.rt.guild(g)?
            .call(move |a: &mut GuildActor| {
                let state = &a.state.guild;
                if !state.members.contains_key(&me) {
                    return Err(Error::missing_access());
                }
                let now = Timestamp::now();
                let threads: Vec<&Channel> = state
                    .active_threads()
                    .filter(|c| {
                        guildhall_domain::permissions::channel_permissions(state, me, c.id, now)
                            .contains(Permissions::VIEW_CHANNEL)
                    })
                    .collect();
                Ok(Change::read(threads_with_own_members(a, threads, me)))
            })
            .await?;
    Ok(ok_json(&v))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ArchivedParams {
    #[serde(default)]
    #[param(value_type = Option<String>, format = DateTime)]
    before: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// `GET /channels/{id}/threads/archived/public`: archived public (and
/// announcement) threads of a channel, newest archive first; `before` (ISO
/// timestamp), `limit` (default 50) → `{threads, members, has_more}`.
#[utoipa::path(get, path = "/channels/{channel_id}/threads/archived/public", tag = "threads", params(ArchivedParams), responses((status = 200, description = "The ThreadList", body = crate::openapi::schema::ThreadList)))]
async fn archived_public(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordQuery(q): DiscordQuery<ArchivedParams>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let mut errors = FormErrors::default();
    let limit = query_limit(q.limit.as_deref(), 50, 100, "limit", &mut errors);
    let before = query_timestamp(q.before.as_deref(), "before", &mut errors);
    errors.finish()?;
    let me = caller.id();
    let g = guild_of_channel(&s, channel)?;
    let v =
        s.rt.guild(g)?
            .call(move |a: &mut GuildActor| {
                guild_channel_access(a, me, channel, Permissions::READ_MESSAGE_HISTORY)?;
                let state = &a.state.guild;
                let mut threads: Vec<&Channel> = state
                    .channels
                    .values()
                    .filter(|c| {
                        c.parent_id == Some(channel)
                            && matches!(c.kind, channel_type::PUBLIC_THREAD | channel_type::ANNOUNCEMENT_THREAD)
                            && c.thread_metadata
                                .as_ref()
                                .is_some_and(|m| m.archived && before.is_none_or(|b| m.archive_timestamp < b))
                    })
                    .collect();
                threads.sort_by_key(|c| std::cmp::Reverse(c.thread_metadata.as_ref().map(|m| m.archive_timestamp)));
                let has_more = threads.len() > limit;
                threads.truncate(limit);
                let mut body = threads_with_own_members(a, threads, me);
                body["has_more"] = serde_json::json!(has_more);
                Ok(Change::read(body))
            })
            .await?;
    Ok(ok_json(&v))
}
