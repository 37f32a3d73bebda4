//! Guilds: create and get.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use guildhall_domain::entity::{channel_type, Channel, Guild, Member, Role};
use guildhall_domain::wire::GuildView;
use guildhall_domain::GuildState;
use guildhall_model::error_code;
use guildhall_model::id::GuildId;
use guildhall_model::{Permissions, Timestamp};
use guildhall_runtime::{ChannelHome, Change, Error, FormErrors, GuildActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{created_json, ok_json, ApiResult};
use crate::extract::{path_id, DiscordJson};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/guilds", post(create_guild)).route("/guilds/{guild_id}", get(get_guild))
}

/// Guilds a user may own or be in (Discord's limit for non-boosted accounts).
const MAX_GUILDS: usize = 100;

#[derive(Deserialize)]
struct CreateGuild {
    name: String,
    #[serde(default)]
    icon: Option<String>,
    #[serde(default)]
    verification_level: Option<u8>,
    #[serde(default)]
    default_message_notifications: Option<u8>,
    #[serde(default)]
    explicit_content_filter: Option<u8>,
}

pub fn validate_guild_name(name: &str, errors: &mut FormErrors) {
    let len = name.trim().chars().count();
    if !(2..=100).contains(&len) {
        errors.add("name", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.");
    }
}

async fn create_guild(State(s): State<AppState>, caller: Caller, DiscordJson(body): DiscordJson<CreateGuild>) -> ApiResult<Response> {
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
        id,
        name: body.name.trim().to_string(),
        icon: body.icon,
        description: None,
        owner_id: owner,
        afk_channel_id: None,
        afk_timeout: 300,
        verification_level: body.verification_level.unwrap_or(0).min(4),
        default_message_notifications: body.default_message_notifications.unwrap_or(0).min(1),
        explicit_content_filter: body.explicit_content_filter.unwrap_or(0).min(2),
        mfa_level: 0,
        nsfw_level: 0,
        system_channel_id: None,
        system_channel_flags: 0,
        rules_channel_id: None,
        public_updates_channel_id: None,
        preferred_locale: "en-US".into(),
        features: Vec::new(),
        premium_progress_bar_enabled: false,
    };
    let mut state = GuildState::new(guild);
    let everyone = Role {
        id: id.cast(),
        name: "@everyone".into(),
        color: 0,
        hoist: false,
        icon: None,
        unicode_emoji: None,
        position: 0,
        permissions: Permissions::DEFAULT_EVERYONE,
        managed: false,
        mentionable: false,
        flags: 0,
        bot_id: None,
    };
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

pub fn named_channel(id: guildhall_model::id::ChannelId, kind: u8, guild: GuildId, name: &str, position: i32, parent: Option<guildhall_model::id::ChannelId>) -> Channel {
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

#[derive(Deserialize, Default)]
struct GetGuildQuery {
    #[serde(default)]
    with_counts: Option<String>,
}

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
