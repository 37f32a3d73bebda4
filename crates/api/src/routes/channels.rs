//! Channels: guild channel list/create/reorder, get/modify/delete of any channel
//! (guild channels, threads, DMs and group DMs), and permission overwrites. Each
//! change emits CHANNEL_* (or THREAD_*) events; when overwrites change who can
//! see a channel, those who lost it get CHANNEL_DELETE and those who gained it
//! CHANNEL_CREATE, as on Discord.

use std::collections::HashSet;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, put};
use guildhall_domain::GuildState;
use guildhall_domain::entity::{Channel, Overwrite, channel_type};
use guildhall_domain::permissions::{channel_permissions, guild_permissions};
use guildhall_domain::wire::{ChannelView, UserView};
use guildhall_model::error_code;
use guildhall_model::id::{ChannelId, GenericMarker, GuildId, Id, UserId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::{Change, ChannelHome, Error, Event, FormErrors, GuildActor, PrivateActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::access::{guild_channel_access, private_channel_access};
use crate::auth::Caller;
use crate::error::{ApiResult, created_json, no_content, ok_json};
use crate::extract::{DiscordJson, path_id};
use crate::routes::guild_common::{
    channel_viewers, event_to_users, guild_of_channel, is_admin, nullable, require_guild_permission, require_member,
};
use crate::routes::guilds::render_guild;

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_channels,
    create_channel,
    reorder_channels,
    get_channel,
    modify_channel,
    delete_channel,
    put_overwrite,
    delete_overwrite
))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/guilds/{guild_id}/channels", get(list_channels).post(create_channel).patch(reorder_channels))
        .route("/channels/{channel_id}", get(get_channel).patch(modify_channel).delete(delete_channel))
        .route("/channels/{channel_id}/permissions/{overwrite_id}", put(put_overwrite).delete(delete_overwrite))
}

/// Discord's per-guild channel limit.
const MAX_CHANNELS: usize = 500;

fn channel_json(c: &Channel) -> serde_json::Value {
    serde_json::to_value(ChannelView::new(c)).unwrap_or_default()
}

/// A private channel as `viewer` sees it (recipients other than the viewer).
pub fn private_channel_json(shared: &guildhall_runtime::Shared, c: &Channel, viewer: UserId) -> serde_json::Value {
    shared.directory.with_users(|users| {
        let mut view = ChannelView::new(c);
        view.recipients = c
            .recipients
            .iter()
            .filter(|u| **u != viewer)
            .filter_map(|u| users.get(u))
            .map(|u| UserView::new(u))
            .collect();
        serde_json::to_value(&view).unwrap_or_default()
    })
}

// ---------------------------------------------------------------------------
// Bodies and validation

/// An overwrite as clients send it; `type` may be 0/1 or "role"/"member".
#[derive(Deserialize, Clone, utoipa::ToSchema)]
pub struct OverwriteBody {
    #[schema(value_type = crate::openapi::schema::Snowflake)]
    pub id: Id<GenericMarker>,
    #[serde(rename = "type")]
    pub kind: serde_json::Value,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::PermissionBits>)]
    pub allow: Option<Permissions>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::PermissionBits>)]
    pub deny: Option<Permissions>,
}

fn overwrite_kind(v: &serde_json::Value) -> Option<u8> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().filter(|k| *k <= 1).map(|k| k as u8),
        serde_json::Value::String(s) => match s.as_str() {
            "0" | "role" => Some(0),
            "1" | "member" => Some(1),
            _ => None,
        },
        _ => None,
    }
}

/// Parses overwrites (last one per target wins), reporting bad `type`s.
fn parse_overwrites(list: &[OverwriteBody], errors: &mut FormErrors) -> Vec<Overwrite> {
    let mut out: Vec<Overwrite> = Vec::new();
    for (i, o) in list.iter().enumerate() {
        let Some(kind) = overwrite_kind(&o.kind) else {
            errors.add(&format!("permission_overwrites.{i}.type"), "BASE_TYPE_CHOICES", "Value must be one of {0, 1}.");
            continue;
        };
        let ow = Overwrite {
            id: o.id,
            kind,
            allow: o.allow.unwrap_or_default().truncate(),
            deny: o.deny.unwrap_or_default().truncate(),
        };
        out.retain(|x| x.id != ow.id);
        out.push(ow);
    }
    if out.len() > 100 {
        errors.add("permission_overwrites", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.");
    }
    out
}

/// Overwrite targets must exist: roles of this guild, users Guildhall knows.
fn check_overwrite_targets(a: &GuildActor, list: &[Overwrite]) -> Result<(), Error> {
    let mut errors = FormErrors::default();
    for (i, o) in list.iter().enumerate() {
        let ok = match o.kind {
            0 => a.state.guild.roles.contains_key(&o.id.cast()),
            _ => a.shared.directory.user(o.id.cast()).is_some(),
        };
        if !ok {
            let what = if o.kind == 0 { "Unknown role" } else { "Unknown user" };
            errors.add(&format!("permission_overwrites.{i}.id"), "UNKNOWN_OVERWRITE_TARGET", what);
        }
    }
    errors.finish()
}

/// What an actor may put in overwrites: without ADMINISTRATOR, only permissions
/// it has in the guild or the parent channel — unless it holds MANAGE_ROLES
/// through an overwrite on the channel itself. On create, MANAGE_ROLES itself is
/// reserved to administrators.
fn grantable(
    state: &GuildState,
    actor: UserId,
    channel: Option<&Channel>,
    parent: Option<ChannelId>,
    creating: bool,
) -> Permissions {
    if is_admin(state, actor) {
        return Permissions::ALL;
    }
    let now = Timestamp::now();
    let mut p = guild_permissions(state, actor, now);
    if let Some(par) = parent {
        p |= channel_permissions(state, actor, par, now);
    }
    if let (Some(c), Some(m)) = (channel, state.members.get(&actor)) {
        let has_manage_roles_overwrite = c.permission_overwrites.iter().any(|o| {
            o.allow.contains(Permissions::MANAGE_ROLES)
                && ((o.kind == 1 && o.id.get() == actor.get())
                    || (o.kind == 0
                        && (o.id.get() == state.guild.id.get() || m.roles.iter().any(|r| r.get() == o.id.get()))))
        });
        if has_manage_roles_overwrite
            && channel_permissions(state, actor, c.id, now).contains(Permissions::MANAGE_ROLES)
        {
            return Permissions::ALL;
        }
    }
    if creating {
        p &= !Permissions::MANAGE_ROLES;
    }
    p
}

fn check_grantable(list: &[Overwrite], allowed: Permissions) -> Result<(), Error> {
    if list.iter().all(|o| allowed.contains(o.allow | o.deny)) { Ok(()) } else { Err(Error::missing_permissions()) }
}

fn validate_name(name: &str, kind: u8, errors: &mut FormErrors) -> String {
    let trimmed = name.trim();
    let len = trimmed.chars().count();
    if !(1..=100).contains(&len) {
        errors.add("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.");
    }
    // Text-like channel names are lower-case with dashes for spaces, as on Discord.
    if matches!(kind, channel_type::GUILD_TEXT | channel_type::GUILD_ANNOUNCEMENT | channel_type::GUILD_FORUM) {
        trimmed.to_lowercase().split_whitespace().collect::<Vec<_>>().join("-")
    } else {
        trimmed.to_string()
    }
}

fn validate_topic(topic: &str, kind: u8, errors: &mut FormErrors) {
    let max = if kind == channel_type::GUILD_FORUM { 4096 } else { 1024 };
    if topic.chars().count() > max {
        errors.add("topic", "BASE_TYPE_MAX_LENGTH", &format!("Must be {max} or fewer in length."));
    }
}

fn validate_numbers(
    bitrate: Option<u32>,
    user_limit: Option<u32>,
    slowmode: Option<u32>,
    kind: u8,
    errors: &mut FormErrors,
) {
    if let Some(b) = bitrate
        && !(8_000..=384_000).contains(&b)
    {
        errors.add("bitrate", "NUMBER_TYPE_MIN", "int value should be between 8000 and 384000.");
    }
    if let Some(u) = user_limit {
        let max = if kind == channel_type::GUILD_STAGE_VOICE { 10_000 } else { 99 };
        if u > max {
            errors.add("user_limit", "NUMBER_TYPE_MAX", &format!("int value should be less than or equal to {max}."));
        }
    }
    if let Some(r) = slowmode
        && r > 21_600
    {
        errors.add("rate_limit_per_user", "NUMBER_TYPE_MAX", "int value should be less than or equal to 21600.");
    }
}

/// The parent must be a category of this guild (and categories have no parent).
fn check_parent(state: &GuildState, kind: u8, parent: Option<ChannelId>, errors: &mut FormErrors) {
    let Some(p) = parent else { return };
    if kind == channel_type::GUILD_CATEGORY {
        errors.add("parent_id", "CHANNEL_PARENT_INVALID_TYPE", "Categories cannot have subcategories");
        return;
    }
    match state.channels.get(&p) {
        Some(c) if c.kind == channel_type::GUILD_CATEGORY => {}
        Some(_) => errors.add("parent_id", "CHANNEL_PARENT_INVALID_TYPE", "Parent must be a category channel"),
        None => errors.add("parent_id", "CHANNEL_PARENT_INVALID", "Unknown channel"),
    }
}

/// Events for a changed guild channel. When `before` (who could see it) is
/// given, those who lost sight get CHANNEL_DELETE and those who gained it
/// CHANNEL_CREATE; everyone else who sees it gets CHANNEL_UPDATE.
fn update_events(state: &GuildState, channel: &Channel, before: Option<Vec<UserId>>) -> Vec<Event> {
    let gid = state.guild.id;
    let body = channel_json(channel);
    let Some(before) = before else {
        return vec![Event::channel("CHANNEL_UPDATE", gid, channel.id, Intents::GUILDS, &body)];
    };
    let before: HashSet<UserId> = before.into_iter().collect();
    let after: HashSet<UserId> = channel_viewers(state, channel.id).into_iter().collect();
    let mut events = Vec::new();
    let stayed: Vec<UserId> = after.intersection(&before).copied().collect();
    events.push(event_to_users("CHANNEL_UPDATE", gid, stayed, Intents::GUILDS, &body));
    let lost: Vec<UserId> = before.difference(&after).copied().collect();
    if !lost.is_empty() {
        events.push(event_to_users("CHANNEL_DELETE", gid, lost, Intents::GUILDS, &body));
    }
    let gained: Vec<UserId> = after.difference(&before).copied().collect();
    if !gained.is_empty() {
        events.push(event_to_users("CHANNEL_CREATE", gid, gained, Intents::GUILDS, &body));
    }
    events
}

/// Puts `c` in place of the guild's channel with its id and returns the write
/// and the events: CHANNEL_UPDATE to its viewers and, when its overwrites may
/// have changed who sees it, CHANNEL_DELETE / CHANNEL_CREATE to those who lost
/// or gained sight of it (viewers are taken before the swap).
fn replace_channel(a: &mut GuildActor, c: Channel, visibility_may_change: bool) -> (Mutation, Vec<Event>) {
    let viewers = visibility_may_change.then(|| channel_viewers(&a.state.guild, c.id));
    a.state.guild.channels.insert(c.id, c.clone());
    let events = update_events(&a.state.guild, &c, viewers);
    (Mutation::PutChannel(c), events)
}

// ---------------------------------------------------------------------------
// /guilds/{guild_id}/channels

#[utoipa::path(get, path = "/guilds/{guild_id}/channels", tag = "channels", responses((status = 200, description = "The Channel list", body = [crate::openapi::schema::Channel])))]
async fn list_channels(State(s): State<AppState>, caller: Caller, Path(guild_id): Path<String>) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                let state = &a.state.guild;
                require_member(state, me)?;
                let now = Timestamp::now();
                let mut list: Vec<&Channel> = state
                    .channels
                    .values()
                    .filter(|c| !channel_type::is_thread(c.kind))
                    .filter(|c| channel_permissions(state, me, c.id, now).contains(Permissions::VIEW_CHANNEL))
                    .collect();
                list.sort_by_key(|c| (c.position, c.id));
                Ok(Change::read(list.into_iter().map(channel_json).collect::<Vec<_>>()))
            })
            .await?;
    Ok(ok_json(&value))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateChannel {
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    #[serde(rename = "type", default)]
    #[schema(value_type = Option<crate::openapi::schema::CreatableChannelType>)]
    kind: Option<u8>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    bitrate: Option<u32>,
    #[serde(default)]
    user_limit: Option<u32>,
    #[serde(default)]
    #[schema(maximum = 21600)]
    rate_limit_per_user: Option<u32>,
    #[serde(default)]
    position: Option<i32>,
    #[serde(default)]
    #[schema(max_items = 100)]
    permission_overwrites: Option<Vec<OverwriteBody>>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::Snowflake>)]
    parent_id: Option<ChannelId>,
    #[serde(default)]
    nsfw: Option<bool>,
}

const CREATABLE: [u8; 6] = [
    channel_type::GUILD_TEXT,
    channel_type::GUILD_VOICE,
    channel_type::GUILD_CATEGORY,
    channel_type::GUILD_ANNOUNCEMENT,
    channel_type::GUILD_STAGE_VOICE,
    channel_type::GUILD_FORUM,
];

#[utoipa::path(post, path = "/guilds/{guild_id}/channels", tag = "channels", request_body = CreateChannel, responses((status = 201, description = "The new channel", body = crate::openapi::schema::Channel)))]
async fn create_channel(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordJson(body): DiscordJson<CreateChannel>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let kind = body.kind.unwrap_or(channel_type::GUILD_TEXT);
    let mut errors = FormErrors::default();
    if !CREATABLE.contains(&kind) {
        errors.add("type", "BASE_TYPE_CHOICES", "Value must be one of {0, 2, 4, 5, 13, 15}.");
    }
    let name = validate_name(&body.name, kind, &mut errors);
    if let Some(t) = &body.topic {
        validate_topic(t, kind, &mut errors);
    }
    validate_numbers(body.bitrate, body.user_limit, body.rate_limit_per_user, kind, &mut errors);
    let overwrites = parse_overwrites(body.permission_overwrites.as_deref().unwrap_or(&[]), &mut errors);
    errors.finish()?;
    let me = caller.id();
    let rt = s.rt.clone();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_guild_permission(&a.state.guild, me, Permissions::MANAGE_CHANNELS)?;
                let mut errors = FormErrors::default();
                check_parent(&a.state.guild, kind, body.parent_id, &mut errors);
                errors.finish()?;
                check_overwrite_targets(a, &overwrites)?;
                check_grantable(&overwrites, grantable(&a.state.guild, me, None, body.parent_id, true))?;
                if a.state.guild.channels.len() >= MAX_CHANNELS {
                    return Err(Error::bad_request(
                        error_code::MAX_CHANNELS,
                        "Maximum number of guild channels reached (500)",
                    ));
                }
                let position = body.position.unwrap_or_else(|| {
                    a.state
                        .guild
                        .channels
                        .values()
                        .filter(|c| !channel_type::is_thread(c.kind) && c.parent_id == body.parent_id)
                        .map(|c| c.position + 1)
                        .max()
                        .unwrap_or(0)
                });
                let mut c = Channel::new(rt.next_id(), kind, Some(gid));
                c.name = Some(name);
                c.topic = body.topic.filter(|t| !t.is_empty() && kind != channel_type::GUILD_CATEGORY);
                c.position = position;
                c.parent_id = body.parent_id;
                c.nsfw = body.nsfw.unwrap_or(false);
                c.rate_limit_per_user = body.rate_limit_per_user.unwrap_or(0);
                c.permission_overwrites = overwrites;
                if channel_type::is_voice(kind) {
                    c.bitrate = Some(body.bitrate.unwrap_or(64_000));
                    c.user_limit = Some(body.user_limit.unwrap_or(0));
                }
                a.state.guild.channels.insert(c.id, c.clone());
                a.shared.directory.set_channel_home(c.id, ChannelHome::Guild(gid));
                let body = channel_json(&c);
                let event = Event::channel("CHANNEL_CREATE", gid, c.id, Intents::GUILDS, &body);
                Ok(Change::write(vec![Mutation::PutChannel(c)], vec![event], body))
            })
            .await?;
    Ok(created_json(&value))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ChannelPosition)]
struct PositionBody {
    #[schema(value_type = crate::openapi::schema::Snowflake)]
    id: ChannelId,
    #[serde(default, deserialize_with = "nullable")]
    position: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    lock_permissions: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::Snowflake>>)]
    parent_id: Option<Option<ChannelId>>,
}

#[utoipa::path(patch, path = "/guilds/{guild_id}/channels", tag = "channels", request_body = Vec<PositionBody>, responses((status = 204, description = "Done; no body")))]
async fn reorder_channels(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordJson(body): DiscordJson<Vec<PositionBody>>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    s.rt.guild(gid)?
        .call(move |a: &mut GuildActor| {
            require_guild_permission(&a.state.guild, me, Permissions::MANAGE_CHANNELS)?;
            let mut errors = FormErrors::default();
            for (i, p) in body.iter().enumerate() {
                match a.state.guild.channels.get(&p.id) {
                    Some(c) if !channel_type::is_thread(c.kind) => {
                        if let Some(parent) = p.parent_id {
                            let mut e = FormErrors::default();
                            check_parent(&a.state.guild, c.kind, parent, &mut e);
                            if !e.is_empty() {
                                errors.add(&format!("{i}.parent_id"), "CHANNEL_PARENT_INVALID_TYPE", "Invalid parent");
                            }
                        }
                    }
                    _ => errors.add(&format!("{i}.id"), "CHANNEL_INVALID", "Unknown channel"),
                }
            }
            errors.finish()?;
            let mut mutations = Vec::new();
            let mut events = Vec::new();
            for p in body {
                let before = a.state.guild.channels[&p.id].clone();
                let mut c = before.clone();
                if let Some(Some(pos)) = p.position {
                    c.position = pos;
                }
                if let Some(parent) = p.parent_id {
                    c.parent_id = parent;
                }
                let lock = p.lock_permissions.flatten().unwrap_or(false);
                let mut locked = false;
                if lock && let Some(parent) = c.parent_id.and_then(|id| a.state.guild.channels.get(&id)) {
                    locked = true;
                    c.permission_overwrites = parent.permission_overwrites.clone();
                }
                if c == before {
                    continue;
                }
                let (mutation, changed) = replace_channel(a, c, locked);
                events.extend(changed);
                mutations.push(mutation);
            }
            Ok(Change::write(mutations, events, ()))
        })
        .await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------
// /channels/{channel_id}

#[utoipa::path(get, path = "/channels/{channel_id}", tag = "channels", responses((status = 200, description = "The Channel", body = crate::openapi::schema::Channel)))]
async fn get_channel(State(s): State<AppState>, caller: Caller, Path(channel_id): Path<String>) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let me = caller.id();
    let value = match s.rt.channel_home(channel)? {
        ChannelHome::Guild(g) => {
            s.rt.guild(g)?
                .call(move |a: &mut GuildActor| {
                    let access = guild_channel_access(a, me, channel, Permissions::NONE)?;
                    Ok(Change::read(channel_json(&access.channel)))
                })
                .await?
        }
        ChannelHome::Private => {
            s.rt.private()
                .call(move |a: &mut PrivateActor| {
                    let access = private_channel_access(a, me, channel, Permissions::NONE)?;
                    Ok(Change::read(private_channel_json(&a.shared, &access.channel, me)))
                })
                .await?
        }
    };
    Ok(ok_json(&value))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct ModifyChannel {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<u8>,
    #[serde(default, deserialize_with = "nullable")]
    position: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    topic: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    nsfw: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(maximum = 21600)]
    rate_limit_per_user: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    bitrate: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    user_limit: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    permission_overwrites: Option<Option<Vec<OverwriteBody>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::Snowflake>>)]
    parent_id: Option<Option<ChannelId>>,
    #[serde(default)]
    lock_permissions: Option<bool>,
    // Threads.
    #[serde(default)]
    archived: Option<bool>,
    #[serde(default)]
    locked: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::ArchiveDuration>)]
    auto_archive_duration: Option<u32>,
    #[serde(default)]
    invitable: Option<bool>,
}

#[utoipa::path(patch, path = "/channels/{channel_id}", tag = "channels", request_body = ModifyChannel, responses((status = 200, description = "The Channel", body = crate::openapi::schema::Channel)))]
async fn modify_channel(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    DiscordJson(body): DiscordJson<ModifyChannel>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let me = caller.id();
    let value = match s.rt.channel_home(channel)? {
        ChannelHome::Guild(g) => {
            s.rt.guild(g)?
                .call(move |a: &mut GuildActor| {
                    let access = guild_channel_access(a, me, channel, Permissions::NONE)?;
                    if channel_type::is_thread(access.channel.kind) {
                        modify_thread(a, me, access.channel, access.permissions, body)
                    } else {
                        modify_guild_channel(a, me, access.channel, access.permissions, body)
                    }
                })
                .await?
        }
        ChannelHome::Private => {
            s.rt.private()
                .call(move |a: &mut PrivateActor| {
                    let access = private_channel_access(a, me, channel, Permissions::NONE)?;
                    let mut c = access.channel;
                    if c.kind != channel_type::GROUP_DM {
                        return Err(Error::bad_request(
                            error_code::CANNOT_EXECUTE_ON_DM,
                            "Cannot execute action on a DM channel",
                        ));
                    }
                    if let Some(name) = &body.name {
                        if name.chars().count() > 100 {
                            return Err(Error::form_field(
                                "name",
                                "BASE_TYPE_BAD_LENGTH",
                                "Must be between 1 and 100 in length.",
                            ));
                        }
                        c.name = Some(name.clone()).filter(|n| !n.trim().is_empty());
                    }
                    a.state.channels.insert(c.id, c.clone());
                    let events = c
                        .recipients
                        .iter()
                        .map(|u| {
                            let body = private_channel_json(&a.shared, &c, *u);
                            Event::users("CHANNEL_UPDATE", vec![*u], Intents(0), &body)
                        })
                        .collect();
                    let value = private_channel_json(&a.shared, &c, me);
                    Ok(Change::write(vec![Mutation::PutChannel(c)], events, value))
                })
                .await?
        }
    };
    Ok(ok_json(&value))
}

fn modify_guild_channel(
    a: &mut GuildActor,
    me: UserId,
    before: Channel,
    perms: Permissions,
    body: ModifyChannel,
) -> Result<Change<serde_json::Value>, Error> {
    if !perms.contains(Permissions::MANAGE_CHANNELS) {
        return Err(Error::missing_permissions());
    }
    let mut c = before.clone();
    let mut errors = FormErrors::default();
    if let Some(kind) = body.kind {
        let text_swap = matches!(
            (c.kind, kind),
            (channel_type::GUILD_TEXT, channel_type::GUILD_ANNOUNCEMENT)
                | (channel_type::GUILD_ANNOUNCEMENT, channel_type::GUILD_TEXT)
        );
        if kind != c.kind && !text_swap {
            errors.add("type", "CHANNEL_TYPE_INVALID", "Only text and announcement channels can be converted.");
        } else {
            c.kind = kind;
        }
    }
    if let Some(name) = &body.name {
        c.name = Some(validate_name(name, c.kind, &mut errors));
    }
    if let Some(topic) = &body.topic {
        if let Some(t) = topic {
            validate_topic(t, c.kind, &mut errors);
        }
        c.topic = topic.clone().filter(|t| !t.is_empty());
    }
    validate_numbers(
        body.bitrate.flatten(),
        body.user_limit.flatten(),
        body.rate_limit_per_user.flatten(),
        c.kind,
        &mut errors,
    );
    if let Some(p) = body.position {
        c.position = p.unwrap_or(c.position);
    }
    if let Some(n) = body.nsfw {
        c.nsfw = n.unwrap_or(false);
    }
    if let Some(r) = body.rate_limit_per_user {
        c.rate_limit_per_user = r.unwrap_or(0);
    }
    if channel_type::is_voice(c.kind) {
        if let Some(b) = body.bitrate {
            c.bitrate = Some(b.unwrap_or(64_000));
        }
        if let Some(u) = body.user_limit {
            c.user_limit = Some(u.unwrap_or(0));
        }
    }
    if let Some(parent) = body.parent_id {
        check_parent(&a.state.guild, c.kind, parent, &mut errors);
        c.parent_id = parent;
    }
    let new_overwrites =
        body.permission_overwrites.as_ref().map(|o| parse_overwrites(o.as_deref().unwrap_or(&[]), &mut errors));
    errors.finish()?;
    if let Some(list) = new_overwrites {
        if !perms.contains(Permissions::MANAGE_ROLES) {
            return Err(Error::missing_permissions());
        }
        check_overwrite_targets(a, &list)?;
        check_grantable(&list, grantable(&a.state.guild, me, Some(&before), c.parent_id, false))?;
        c.permission_overwrites = list;
    }
    if body.lock_permissions == Some(true)
        && let Some(parent) = c.parent_id.and_then(|id| a.state.guild.channels.get(&id))
    {
        c.permission_overwrites = parent.permission_overwrites.clone();
    }
    if c == before {
        return Ok(Change::read(channel_json(&c)));
    }
    let visibility_may_change = c.permission_overwrites != before.permission_overwrites;
    let json = channel_json(&c);
    let (mutation, events) = replace_channel(a, c, visibility_may_change);
    Ok(Change::write(vec![mutation], events, json))
}

fn modify_thread(
    a: &mut GuildActor,
    me: UserId,
    before: Channel,
    perms: Permissions,
    body: ModifyChannel,
) -> Result<Change<serde_json::Value>, Error> {
    let manage = perms.contains(Permissions::MANAGE_THREADS);
    let meta = before.thread_metadata.clone();
    let locked = meta.as_ref().is_some_and(|m| m.locked);
    let owner = before.owner_id == Some(me);
    // Without MANAGE_THREADS: the creator may rename, (un)archive and change the
    // archive duration of an unlocked thread; anyone who can send may unarchive it.
    let only_unarchive = body.archived == Some(false)
        && body.name.is_none()
        && body.locked.is_none()
        && body.auto_archive_duration.is_none()
        && body.rate_limit_per_user.is_none()
        && body.invitable.is_none();
    let allowed = manage
        || (!locked
            && ((owner && body.locked.is_none() && body.invitable.is_none() && body.rate_limit_per_user.is_none())
                || (only_unarchive && perms.contains(Permissions::SEND_MESSAGES))));
    if !allowed {
        return Err(Error::missing_permissions());
    }
    let mut c = before.clone();
    let mut errors = FormErrors::default();
    if let Some(name) = &body.name {
        c.name = Some(validate_name(name, channel_type::PUBLIC_THREAD, &mut errors));
    }
    if let Some(Some(r)) = body.rate_limit_per_user {
        validate_numbers(None, None, Some(r), c.kind, &mut errors);
        c.rate_limit_per_user = r;
    }
    if let Some(d) = body.auto_archive_duration
        && ![60, 1440, 4320, 10080].contains(&d)
    {
        errors.add("auto_archive_duration", "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}.");
    }
    errors.finish()?;
    if let Some(m) = c.thread_metadata.as_mut() {
        if let Some(archived) = body.archived
            && archived != m.archived
        {
            m.archived = archived;
            m.archive_timestamp = Timestamp::now();
        }
        if let Some(l) = body.locked {
            m.locked = l;
        }
        if let Some(d) = body.auto_archive_duration {
            m.auto_archive_duration = d;
        }
        if let Some(i) = body.invitable
            && c.kind == channel_type::PRIVATE_THREAD
        {
            m.invitable = Some(i);
        }
    }
    if c == before {
        return Ok(Change::read(channel_json(&c)));
    }
    let gid = a.state.guild.guild.id;
    a.state.guild.channels.insert(c.id, c.clone());
    let body = channel_json(&c);
    let event = Event::channel("THREAD_UPDATE", gid, c.id, Intents::GUILDS, &body);
    Ok(Change::write(vec![Mutation::PutChannel(c)], vec![event], body))
}

#[utoipa::path(delete, path = "/channels/{channel_id}", tag = "channels", responses((status = 200, description = "The deleted channel", body = crate::openapi::schema::Channel)))]
async fn delete_channel(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let me = caller.id();
    let value = match s.rt.channel_home(channel)? {
        ChannelHome::Guild(g) => {
            s.rt.guild(g)?.call(move |a: &mut GuildActor| delete_guild_channel(a, me, channel)).await?
        }
        ChannelHome::Private => s.rt.private().call(move |a: &mut PrivateActor| close_private(a, me, channel)).await?,
    };
    Ok(ok_json(&value))
}

fn delete_guild_channel(
    a: &mut GuildActor,
    me: UserId,
    channel: ChannelId,
) -> Result<Change<serde_json::Value>, Error> {
    let access = guild_channel_access(a, me, channel, Permissions::NONE)?;
    let c = access.channel;
    let thread = channel_type::is_thread(c.kind);
    let required = if thread { Permissions::MANAGE_THREADS } else { Permissions::MANAGE_CHANNELS };
    if !access.permissions.contains(required) {
        return Err(Error::missing_permissions());
    }
    let gid = a.state.guild.guild.id;
    let viewers = channel_viewers(&a.state.guild, channel);
    let body = channel_json(&c);
    let mut mutations = Vec::new();
    let mut events = Vec::new();
    // The channel, its threads (with their members) and its invites go.
    let mut gone: Vec<Channel> = vec![c.clone()];
    gone.extend(
        a.state
            .guild
            .channels
            .values()
            .filter(|t| channel_type::is_thread(t.kind) && t.parent_id == Some(channel))
            .cloned(),
    );
    for g in &gone {
        if channel_type::is_thread(g.kind) && g.id != channel {
            let thread_viewers = channel_viewers(&a.state.guild, g.id);
            let tb = serde_json::json!({ "id": g.id, "guild_id": gid, "parent_id": g.parent_id, "type": g.kind });
            events.push(event_to_users("THREAD_DELETE", gid, thread_viewers, Intents::GUILDS, &tb));
        }
    }
    for g in &gone {
        a.state.guild.channels.remove(&g.id);
        if let Some(members) = a.state.guild.thread_members.remove(&g.id) {
            mutations.extend(members.keys().map(|u| Mutation::DeleteThreadMember(gid, g.id, *u)));
        }
        mutations.push(Mutation::DeleteChannel(Some(gid), g.id));
        a.shared.directory.remove_channel(g.id);
    }
    let codes: Vec<String> =
        a.state.guild.invites.values().filter(|i| i.channel_id == channel).map(|i| i.code.clone()).collect();
    for code in codes {
        a.state.guild.invites.remove(&code);
        a.shared.directory.remove_invite(&code);
        mutations.push(Mutation::DeleteInvite(Some(gid), code));
    }
    if thread {
        let tb = serde_json::json!({ "id": c.id, "guild_id": gid, "parent_id": c.parent_id, "type": c.kind });
        events.push(event_to_users("THREAD_DELETE", gid, viewers, Intents::GUILDS, &tb));
    } else {
        events.push(event_to_users("CHANNEL_DELETE", gid, viewers, Intents::GUILDS, &body));
    }
    // A category's children move to the top level.
    let children: Vec<ChannelId> = a
        .state
        .guild
        .channels
        .values()
        .filter(|x| !channel_type::is_thread(x.kind) && x.parent_id == Some(channel))
        .map(|x| x.id)
        .collect();
    for id in children {
        if let Some(child) = a.state.guild.channels.get_mut(&id) {
            child.parent_id = None;
            let child = child.clone();
            events.push(Event::channel("CHANNEL_UPDATE", gid, id, Intents::GUILDS, &channel_json(&child)));
            mutations.push(Mutation::PutChannel(child));
        }
    }
    // Guild settings that pointed at it are cleared.
    let g = &mut a.state.guild.guild;
    let mut guild_changed = false;
    for slot in
        [&mut g.system_channel_id, &mut g.afk_channel_id, &mut g.rules_channel_id, &mut g.public_updates_channel_id]
    {
        if *slot == Some(channel) {
            *slot = None;
            guild_changed = true;
        }
    }
    if guild_changed {
        mutations.push(Mutation::PutGuild(a.state.guild.guild.clone()));
        events.push(Event::guild("GUILD_UPDATE", gid, Intents::GUILDS, &render_guild(&a.state.guild, None)));
    }
    Ok(Change::write(mutations, events, body))
}

/// DELETE on a DM closes it (nothing is removed); on a group DM the caller leaves.
fn close_private(a: &mut PrivateActor, me: UserId, channel: ChannelId) -> Result<Change<serde_json::Value>, Error> {
    let access = private_channel_access(a, me, channel, Permissions::NONE)?;
    let mut c = access.channel;
    let value = private_channel_json(&a.shared, &c, me);
    if c.kind != channel_type::GROUP_DM {
        return Ok(Change::read(value));
    }
    c.recipients.retain(|u| *u != me);
    let mut events = vec![Event::users("CHANNEL_DELETE", vec![me], Intents(0), &value)];
    if c.recipients.is_empty() {
        a.state.channels.remove(&channel);
        a.shared.directory.remove_channel(channel);
        return Ok(Change::write(vec![Mutation::DeleteChannel(None, channel)], events, value));
    }
    if c.owner_id == Some(me) {
        c.owner_id = c.recipients.first().copied();
    }
    let user = a.shared.directory.user(me);
    let removed = serde_json::json!({
        "channel_id": channel,
        "user": user.as_deref().map(UserView::new),
    });
    events.push(Event::users("CHANNEL_RECIPIENT_REMOVE", c.recipients.clone(), Intents(0), &removed));
    a.state.channels.insert(channel, c.clone());
    Ok(Change::write(vec![Mutation::PutChannel(c)], events, value))
}

// ---------------------------------------------------------------------------
// /channels/{channel_id}/permissions/{overwrite_id}

#[derive(Deserialize, utoipa::ToSchema)]
struct PutOverwrite {
    #[serde(rename = "type")]
    kind: serde_json::Value,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::PermissionBits>)]
    allow: Option<Permissions>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::PermissionBits>)]
    deny: Option<Permissions>,
}

#[utoipa::path(put, path = "/channels/{channel_id}/permissions/{overwrite_id}", tag = "channels", request_body = PutOverwrite, responses((status = 204, description = "Done; no body")))]
async fn put_overwrite(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, overwrite_id)): Path<(String, String)>,
    DiscordJson(body): DiscordJson<PutOverwrite>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let target: Id<GenericMarker> = path_id(&overwrite_id, "overwrite_id")?;
    let Some(kind) = overwrite_kind(&body.kind) else {
        return Err(Error::form_field("type", "BASE_TYPE_CHOICES", "Value must be one of {0, 1}.").into());
    };
    let ow = Overwrite {
        id: target,
        kind,
        allow: body.allow.unwrap_or_default().truncate(),
        deny: body.deny.unwrap_or_default().truncate(),
    };
    let gid = guild_of_channel(&s, channel)?;
    let me = caller.id();
    s.rt.guild(gid)?
        .call(move |a: &mut GuildActor| {
            let access = guild_channel_access(a, me, channel, Permissions::MANAGE_ROLES)?;
            let before = access.channel;
            if channel_type::is_thread(before.kind) {
                return Err(Error::bad_request(50024, "Cannot execute action on this channel type"));
            }
            if kind == 0 && !a.state.guild.roles.contains_key(&target.cast()) {
                return Err(Error::unknown_role());
            }
            if kind == 1 && a.shared.directory.user(target.cast()).is_none() {
                return Err(Error::unknown_user());
            }
            check_grantable(&[ow], grantable(&a.state.guild, me, Some(&before), before.parent_id, false))?;
            let mut c = before.clone();
            c.permission_overwrites.retain(|o| o.id != target);
            c.permission_overwrites.push(ow);
            if c == before {
                return Ok(Change::read(()));
            }
            let (mutation, events) = replace_channel(a, c, true);
            Ok(Change::write(vec![mutation], events, ()))
        })
        .await?;
    Ok(no_content())
}

#[utoipa::path(delete, path = "/channels/{channel_id}/permissions/{overwrite_id}", tag = "channels", responses((status = 204, description = "Done; no body")))]
async fn delete_overwrite(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, overwrite_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    let target: Id<GenericMarker> = path_id(&overwrite_id, "overwrite_id")?;
    let gid = guild_of_channel(&s, channel)?;
    let me = caller.id();
    s.rt.guild(gid)?
        .call(move |a: &mut GuildActor| {
            let access = guild_channel_access(a, me, channel, Permissions::MANAGE_ROLES)?;
            let before = access.channel;
            let mut c = before.clone();
            c.permission_overwrites.retain(|o| o.id != target);
            if c == before {
                return Ok(Change::read(()));
            }
            let (mutation, events) = replace_channel(a, c, true);
            Ok(Change::write(vec![mutation], events, ()))
        })
        .await?;
    Ok(no_content())
}
