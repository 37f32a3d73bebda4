//! Guilds: create, get, modify (GUILD_UPDATE) and delete (GUILD_DELETE to every
//! member; the actor, its directory entries and its stored data go).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use guildhall_domain::GuildState;
use guildhall_domain::entity::{Channel, Guild, Member, Role, channel_type};
use guildhall_domain::wire::GuildView;
use guildhall_model::error_code;
use guildhall_model::id::{ChannelId, GuildId, UserId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::{Audience, Change, ChannelHome, Error, Event, FormErrors, GuildActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, created_json, no_content, ok_json};
use crate::extract::{DiscordJson, path_id};
use crate::routes::guild_common::{image_hash, nullable, require_guild_permission, require_member};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_guild, get_guild, modify_guild, delete_guild))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/guilds", post(create_guild))
        .route("/guilds/{guild_id}", get(get_guild).patch(modify_guild).delete(delete_guild))
}

/// Guilds a user may own or be in (Discord's limit for non-boosted accounts).
const MAX_GUILDS: usize = 100;

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateGuild {
    #[schema(min_length = 2, max_length = 100)]
    name: String,
    #[serde(default)]
    icon: Option<String>,
    #[serde(default)]
    #[schema(maximum = 4)]
    verification_level: Option<u8>,
    #[serde(default)]
    #[schema(maximum = 1)]
    default_message_notifications: Option<u8>,
    #[serde(default)]
    #[schema(maximum = 2)]
    explicit_content_filter: Option<u8>,
}

pub fn validate_guild_name(name: &str, errors: &mut FormErrors) {
    let len = name.trim().chars().count();
    if !(2..=100).contains(&len) {
        errors.add("name", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.");
    }
}

#[utoipa::path(post, path = "/guilds", tag = "guilds", request_body = CreateGuild, responses((status = 201, description = "The Guild", body = crate::openapi::schema::Guild)))]
async fn create_guild(
    State(s): State<AppState>,
    caller: Caller,
    DiscordJson(body): DiscordJson<CreateGuild>,
) -> ApiResult<Response> {
    let mut errors = FormErrors::default();
    validate_guild_name(&body.name, &mut errors);
    errors.finish()?;
    if s.rt.directory.guild_count_of(caller.id()) >= MAX_GUILDS {
        return Err(Error::bad_request(error_code::MAX_GUILDS, "Maximum number of guilds reached (100)").into());
    }
    let rt = &s.rt;
    let id: GuildId = rt.next_id();
    let owner = caller.id();
    let guild = Guild {
        icon: body.icon,
        verification_level: body.verification_level.unwrap_or(0).min(4),
        default_message_notifications: body.default_message_notifications.unwrap_or(0).min(1),
        explicit_content_filter: body.explicit_content_filter.unwrap_or(0).min(2),
        ..Guild::new(id, body.name.trim(), owner)
    };
    let mut state = GuildState::new(guild);
    let everyone = Role::everyone(id);
    state.roles.insert(everyone.id, everyone);
    // Discord's default layout: a text and a voice category, #general in each.
    let text_cat = named_channel(rt.next_id(), channel_type::GUILD_CATEGORY, id, "Text Channels", 0, None);
    let general = named_channel(rt.next_id(), channel_type::GUILD_TEXT, id, "general", 0, Some(text_cat.id));
    let voice_cat = named_channel(rt.next_id(), channel_type::GUILD_CATEGORY, id, "Voice Channels", 1, None);
    let voice = named_channel(rt.next_id(), channel_type::GUILD_VOICE, id, "General", 0, Some(voice_cat.id));
    state.guild.system_channel_id = Some(general.id);
    for c in [text_cat, general, voice_cat, voice] {
        state.channels.insert(c.id, c);
    }
    state.members.insert(owner, Member::new(owner, Timestamp::now()));

    let mut mutations = vec![Mutation::PutGuild(state.guild.clone())];
    mutations.extend(state.roles.values().map(|r| Mutation::PutRole(id, r.clone())));
    mutations.extend(state.channels.values().map(|c| Mutation::PutChannel(c.clone())));
    mutations.extend(state.members.values().map(|m| Mutation::PutMember(id, m.clone())));
    for c in state.channels.keys() {
        rt.directory.set_channel_home(*c, ChannelHome::Guild(id));
    }
    rt.directory.add_membership(owner, id);
    let handle = rt.spawn_guild(state);
    let body = handle
        .call(move |a: &mut GuildActor| {
            let view = render_guild(&a.state.guild, None);
            Ok(Change::write(mutations, Vec::new(), view))
        })
        .await?;
    handle.cast_wait(move |a: &mut GuildActor| a.subscribe_user(owner)).await;
    Ok(created_json(&body))
}

pub fn named_channel(
    id: guildhall_model::id::ChannelId,
    kind: u8,
    guild: GuildId,
    name: &str,
    position: i32,
    parent: Option<guildhall_model::id::ChannelId>,
) -> Channel {
    let mut c = Channel::new(id, kind, Some(guild));
    c.name = Some(name.to_string());
    c.position = position;
    c.parent_id = parent;
    if channel_type::is_voice(kind) {
        c.bitrate = Some(64_000);
        c.user_limit = Some(0);
    }
    c
}

/// The guild object as REST returns it.
pub fn render_guild(state: &GuildState, counts: Option<(u64, u64)>) -> serde_json::Value {
    let view = GuildView { guild: &state.guild, roles: state.roles_sorted(), approximate_counts: counts };
    serde_json::to_value(&view).unwrap_or_default()
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct GetGuildQuery {
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    with_counts: Option<String>,
}

#[utoipa::path(get, path = "/guilds/{guild_id}", tag = "guilds", params(GetGuildQuery), responses((status = 200, description = "The Guild", body = crate::openapi::schema::Guild)))]
async fn get_guild(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    crate::extract::DiscordQuery(q): crate::extract::DiscordQuery<GetGuildQuery>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let with_counts = matches!(q.with_counts.as_deref(), Some("true" | "True" | "1"));
    let body = s
        .rt
        .guild(gid)?
        .call(move |a: &mut GuildActor| {
            if !a.state.guild.members.contains_key(&me) {
                return Err(Error::unknown_guild());
            }
            let counts = with_counts.then_some((a.state.guild.members.len() as u64, a.state.presences.len() as u64));
            Ok(Change::read(render_guild(&a.state.guild, counts)))
        })
        .await?;
    Ok(ok_json(&body))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct ModifyGuild {
    #[serde(default)]
    #[schema(min_length = 2, max_length = 100)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    icon: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 120)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::Snowflake>>)]
    afk_channel_id: Option<Option<ChannelId>>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::AfkTimeout>)]
    afk_timeout: Option<u32>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(maximum = 4)]
    verification_level: Option<Option<u8>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(maximum = 1)]
    default_message_notifications: Option<Option<u8>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(maximum = 2)]
    explicit_content_filter: Option<Option<u8>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::Snowflake>>)]
    system_channel_id: Option<Option<ChannelId>>,
    #[serde(default)]
    system_channel_flags: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::Snowflake>>)]
    rules_channel_id: Option<Option<ChannelId>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Option<crate::openapi::schema::Snowflake>>)]
    public_updates_channel_id: Option<Option<ChannelId>>,
    #[serde(default, deserialize_with = "nullable")]
    preferred_locale: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::Snowflake>)]
    owner_id: Option<UserId>,
    #[serde(default)]
    premium_progress_bar_enabled: Option<bool>,
}

/// Checks that a guild setting names a channel of this guild of an allowed kind.
fn check_channel_setting(
    state: &GuildState,
    field: &str,
    id: Option<ChannelId>,
    kinds: &[u8],
    errors: &mut FormErrors,
) {
    let Some(id) = id else { return };
    match state.channels.get(&id) {
        Some(c) if kinds.contains(&c.kind) => {}
        Some(_) => errors.add(field, "CHANNEL_TYPE_INVALID", "Channel is of the wrong type"),
        None => errors.add(field, "CHANNEL_INVALID", "Unknown channel"),
    }
}

#[utoipa::path(patch, path = "/guilds/{guild_id}", tag = "guilds", request_body = ModifyGuild, responses((status = 200, description = "The Guild", body = crate::openapi::schema::Guild)))]
async fn modify_guild(
    State(s): State<AppState>,
    caller: Caller,
    Path(guild_id): Path<String>,
    DiscordJson(body): DiscordJson<ModifyGuild>,
) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let mut errors = FormErrors::default();
    if let Some(name) = &body.name {
        validate_guild_name(name, &mut errors);
    }
    if let Some(Some(d)) = &body.description
        && d.chars().count() > 120
    {
        errors.add("description", "BASE_TYPE_MAX_LENGTH", "Must be 120 or fewer in length.");
    }
    if body.afk_timeout.is_some_and(|t| ![60, 300, 900, 1800, 3600].contains(&t)) {
        errors.add("afk_timeout", "BASE_TYPE_CHOICES", "Value must be one of {60, 300, 900, 1800, 3600}.");
    }
    for (field, value, max) in [
        ("verification_level", body.verification_level.flatten(), 4),
        ("default_message_notifications", body.default_message_notifications.flatten(), 1),
        ("explicit_content_filter", body.explicit_content_filter.flatten(), 2),
    ] {
        if value.is_some_and(|v| v > max) {
            errors.add(field, "BASE_TYPE_CHOICES", &format!("Value must be between 0 and {max}."));
        }
    }
    if let Some(Some(l)) = &body.preferred_locale
        && (l.is_empty() || l.len() > 16)
    {
        errors.add("preferred_locale", "LOCALE_INVALID", "Invalid locale");
    }
    let icon = match &body.icon {
        Some(Some(data)) => match image_hash(data) {
            Some(h) => Some(Some(h)),
            None => {
                errors.add("icon", "IMAGE_INVALID", "Invalid image data");
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    errors.finish()?;
    let me = caller.id();
    let value =
        s.rt.guild(gid)?
            .call(move |a: &mut GuildActor| {
                require_guild_permission(&a.state.guild, me, Permissions::MANAGE_GUILD)?;
                let state = &a.state.guild;
                let mut errors = FormErrors::default();
                let voice = [channel_type::GUILD_VOICE, channel_type::GUILD_STAGE_VOICE];
                let text = [channel_type::GUILD_TEXT, channel_type::GUILD_ANNOUNCEMENT];
                check_channel_setting(state, "afk_channel_id", body.afk_channel_id.flatten(), &voice, &mut errors);
                check_channel_setting(state, "system_channel_id", body.system_channel_id.flatten(), &text, &mut errors);
                check_channel_setting(state, "rules_channel_id", body.rules_channel_id.flatten(), &text, &mut errors);
                let updates = body.public_updates_channel_id.flatten();
                check_channel_setting(state, "public_updates_channel_id", updates, &text, &mut errors);
                if let Some(owner) = body.owner_id {
                    if !state.is_owner(me) {
                        return Err(Error::missing_permissions());
                    }
                    if !state.members.contains_key(&owner) {
                        errors.add("owner_id", "GUILD_OWNER_INVALID", "New owner must be a member of the guild");
                    }
                }
                errors.finish()?;
                let before = state.guild.clone();
                let mut g = before.clone();
                if let Some(n) = body.name {
                    g.name = n.trim().to_string();
                }
                if let Some(i) = icon {
                    g.icon = i;
                }
                if let Some(d) = body.description {
                    g.description = d;
                }
                if let Some(c) = body.afk_channel_id {
                    g.afk_channel_id = c;
                }
                if let Some(t) = body.afk_timeout {
                    g.afk_timeout = t;
                }
                if let Some(v) = body.verification_level {
                    g.verification_level = v.unwrap_or(0);
                }
                if let Some(v) = body.default_message_notifications {
                    g.default_message_notifications = v.unwrap_or(0);
                }
                if let Some(v) = body.explicit_content_filter {
                    g.explicit_content_filter = v.unwrap_or(0);
                }
                if let Some(c) = body.system_channel_id {
                    g.system_channel_id = c;
                }
                if let Some(f) = body.system_channel_flags {
                    g.system_channel_flags = f;
                }
                if let Some(c) = body.rules_channel_id {
                    g.rules_channel_id = c;
                }
                if let Some(c) = body.public_updates_channel_id {
                    g.public_updates_channel_id = c;
                }
                if let Some(l) = body.preferred_locale {
                    g.preferred_locale = l.unwrap_or_else(|| "en-US".into());
                }
                if let Some(o) = body.owner_id {
                    g.owner_id = o;
                }
                if let Some(p) = body.premium_progress_bar_enabled {
                    g.premium_progress_bar_enabled = p;
                }
                if g == before {
                    return Ok(Change::read(render_guild(&a.state.guild, None)));
                }
                a.state.guild.guild = g.clone();
                let view = render_guild(&a.state.guild, None);
                let event = Event::guild("GUILD_UPDATE", gid, Intents::GUILDS, &view);
                Ok(Change::write(vec![Mutation::PutGuild(g)], vec![event], view))
            })
            .await?;
    Ok(ok_json(&value))
}

/// Only the owner may delete a guild; every member's sessions get GUILD_DELETE.
#[utoipa::path(delete, path = "/guilds/{guild_id}", tag = "guilds", responses((status = 204, description = "Done; no body")))]
async fn delete_guild(State(s): State<AppState>, caller: Caller, Path(guild_id): Path<String>) -> ApiResult<Response> {
    let gid: GuildId = path_id(&guild_id, "guild_id")?;
    let me = caller.id();
    let rt = s.rt.clone();
    s.rt.guild(gid)?
        .call(move |a: &mut GuildActor| {
            require_member(&a.state.guild, me)?;
            if !a.state.guild.is_owner(me) {
                return Err(Error::missing_permissions());
            }
            let state = &mut a.state.guild;
            let members: Vec<UserId> = state.members.keys().copied().collect();
            for u in &members {
                a.shared.directory.remove_membership(*u, gid);
            }
            for c in state.channels.keys() {
                a.shared.directory.remove_channel(*c);
            }
            for code in state.invites.keys() {
                a.shared.directory.remove_invite(code);
            }
            // Emptied, so any job still queued behind this one finds nothing to act on.
            state.members.clear();
            state.channels.clear();
            state.invites.clear();
            state.bans.clear();
            state.thread_members.clear();
            let event = Event::new(
                "GUILD_DELETE",
                &serde_json::json!({ "id": gid }),
                Audience::Users { users: members, intent: Intents::GUILDS },
                Some(gid),
            );
            Ok(Change::write(vec![Mutation::DeleteGuild(gid)], vec![event], ()))
        })
        .await?;
    rt.remove_guild(gid);
    Ok(no_content())
}
