//! Applications and their bots: `POST/GET /applications`, `GET/PATCH
//! /applications/{id}`, `GET/PATCH /applications/@me` and `GET
//! /oauth2/applications/@me` (bot auth), and the bot sub-resource (`POST
//! /applications/{id}/bot`, `POST …/bot/reset`, `PATCH …/bot`).
//!
//! As on Discord since 2023, creating an application also creates its bot user,
//! and the application's id is the bot user's id. Applications and bot users are
//! not guild state, so they are written straight to the store (under the
//! `accounts` lock, which also serializes username claims) and then to the
//! directory; gateway sessions are told through their queues.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use guildhall_domain::entity::{Application, User, application_flags};
use guildhall_domain::wire::{ApplicationView, CurrentUserView, MemberView};
use guildhall_model::Intents;
use guildhall_model::error_code;
use guildhall_model::id::{ApplicationId, UserId};
use guildhall_runtime::event::to_bytes;
use guildhall_runtime::{Change, Error, ErrorKind, Event, FormErrors, GuildActor, Outbound};
use guildhall_store::Mutation;
use serde::{Deserialize, Deserializer};

use crate::AppState;
use crate::auth::{Caller, random_bytes};
use crate::error::{ApiResult, created_json, ok_json};
use crate::extract::{DiscordJson, path_id};
use crate::routes::auth::validate_username;

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_applications,
    create_application,
    get_current,
    get_current_oauth2,
    patch_current,
    get_application,
    patch_application,
    create_bot,
    patch_bot,
    reset_bot
))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/applications", get(list_applications).post(create_application))
        .route("/applications/@me", get(get_current).patch(patch_current))
        .route("/oauth2/applications/@me", get(get_current_oauth2))
        .route("/applications/{application_id}", get(get_application).patch(patch_application))
        .route("/applications/{application_id}/bot", post(create_bot).patch(patch_bot))
        .route("/applications/{application_id}/bot/reset", post(reset_bot))
}

/// Flag bits an owner may change: the privileged gateway intents. Every other
/// flag is Discord's to set (verification, embedded, …).
pub const OWNER_SETTABLE_FLAGS: u64 = application_flags::GATEWAY_PRESENCE
    | application_flags::GATEWAY_PRESENCE_LIMITED
    | application_flags::GATEWAY_GUILD_MEMBERS
    | application_flags::GATEWAY_GUILD_MEMBERS_LIMITED
    | application_flags::GATEWAY_MESSAGE_CONTENT
    | application_flags::GATEWAY_MESSAGE_CONTENT_LIMITED;

/// `Some(None)` for an explicit `null`, `None` when the key is absent.
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn only_bots() -> Error {
    Error::new(ErrorKind::Forbidden, error_code::ONLY_BOTS, "Only bots can use this endpoint")
}

/// Renders an application with its owner and bot from the directory.
pub fn render_application(s: &AppState, app: &Application) -> ApiResult<serde_json::Value> {
    let dir = &s.rt.directory;
    let owner = dir.user(app.owner_id).ok_or_else(Error::internal)?;
    let bot = dir.user(app.bot_user_id).ok_or_else(Error::internal)?;
    let guilds = dir.guild_count_of(app.bot_user_id) as u64;
    Ok(serde_json::to_value(ApplicationView::new(app, &owner, &bot, guilds)).unwrap_or_default())
}

/// An image field (`icon`, `avatar`): `null` clears it; a data URI sets it to a
/// hash of its content. Guildhall has no CDN yet, so only the hash is kept.
fn image_hash(field: &str, value: &str, errors: &mut FormErrors) -> Option<String> {
    let ok = value.strip_prefix("data:image/").and_then(|r| r.split_once(";base64,")).is_some_and(|(kind, data)| {
        matches!(kind, "png" | "jpeg" | "jpg" | "gif" | "webp") && !data.is_empty() && data.len() <= 14 << 20
    });
    if !ok {
        errors.add(field, "IMAGE_INVALID", "Invalid image data");
        return None;
    }
    // Two FNV-1a passes with different offsets: a 128-bit hex hash like Discord's.
    let fnv = |seed: u64| value.bytes().fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    Some(format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x6c62_272e_07bb_0142)))
}

/// A free username derived from an application's name (bots follow the same
/// username rules as everyone: 2-32 of a-z 0-9 _ .). Call under the accounts lock.
fn free_bot_username(s: &AppState, name: &str) -> String {
    let mut base: String = name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '_' | '.' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' | '-' => Some('_'),
            _ => None,
        })
        .take(26)
        .collect();
    if base.chars().count() < 2 {
        base = "bot".into();
    }
    if !s.rt.directory.username_taken(&base) {
        return base;
    }
    (1u32..)
        .map(|n| format!("{base}{n}"))
        .find(|candidate| !s.rt.directory.username_taken(candidate))
        .expect("some suffix is free")
}

fn new_bot_user(id: UserId, username: String) -> User {
    User {
        id,
        username,
        global_name: None,
        avatar: None,
        bot: true,
        email: None,
        password_hash: None,
        token_generation: 0,
        flags: 0,
        locale: "en-US".into(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CreateApplication {
    #[schema(min_length = 2, max_length = 32)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 400)]
    description: Option<String>,
    #[allow(dead_code)]
    #[serde(default)]
    team_id: Option<serde_json::Value>,
}

fn validate_app_name(name: &str, errors: &mut FormErrors) {
    if !(2..=32).contains(&name.trim().chars().count()) {
        errors.add("name", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 32 in length.");
    }
}

fn validate_description(d: &str, errors: &mut FormErrors) {
    if d.chars().count() > 400 {
        errors.add("description", "BASE_TYPE_MAX_LENGTH", "Must be 400 or fewer in length.");
    }
}

#[utoipa::path(post, path = "/applications", tag = "applications", request_body = CreateApplication, responses((status = 201, description = "The Application", body = crate::openapi::schema::Application)))]
async fn create_application(
    State(s): State<AppState>,
    caller: Caller,
    DiscordJson(body): DiscordJson<CreateApplication>,
) -> ApiResult<Response> {
    caller.require_user_account()?;
    let mut errors = FormErrors::default();
    validate_app_name(&body.name, &mut errors);
    if let Some(d) = &body.description {
        validate_description(d, &mut errors);
    }
    errors.finish()?;
    let name = body.name.trim().to_string();
    let id: ApplicationId = s.rt.next_id();
    let _claim = s.accounts.lock().await;
    let bot = new_bot_user(id.cast(), free_bot_username(&s, &name));
    let app = Application {
        id,
        name,
        description: body.description.unwrap_or_default(),
        icon: None,
        owner_id: caller.id(),
        bot_user_id: bot.id,
        flags: 0,
        bot_public: true,
        bot_require_code_grant: false,
        verify_key: random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect(),
    };
    s.rt.store.apply(vec![Mutation::PutUser(bot.clone()), Mutation::PutApplication(app.clone())]).await?;
    s.rt.directory.put_user(bot);
    s.rt.directory.put_application(app.clone());
    Ok(created_json(&render_application(&s, &app)?))
}

#[utoipa::path(get, path = "/applications", tag = "applications", responses((status = 200, description = "The caller's applications", body = [crate::openapi::schema::Application])))]
async fn list_applications(State(s): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require_user_account()?;
    let mut apps = s.rt.directory.applications_of_owner(caller.id());
    apps.sort_by_key(|a| a.id);
    let out = apps.iter().map(|a| render_application(&s, a)).collect::<ApiResult<Vec<_>>>()?;
    Ok(ok_json(&out))
}

/// The application `raw` names, if the caller owns it (or is its bot when
/// `bot_may` is set); otherwise 10002, so others cannot probe for ids.
fn accessible(s: &AppState, caller: &Caller, raw: &str, bot_may: bool) -> ApiResult<Arc<Application>> {
    let id: ApplicationId = path_id(raw, "application_id")?;
    s.rt.directory
        .application(id)
        .filter(|a| a.owner_id == caller.id() || (bot_may && a.bot_user_id == caller.id()))
        .ok_or_else(|| Error::unknown_application().into())
}

#[utoipa::path(get, path = "/applications/{application_id}", tag = "applications", responses((status = 200, description = "The Application", body = crate::openapi::schema::Application)))]
async fn get_application(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let app = accessible(&s, &caller, &id, true)?;
    Ok(ok_json(&render_application(&s, &app)?))
}

/// The caller's own application (bot tokens only; 20002 otherwise).
fn current(s: &AppState, caller: &Caller) -> ApiResult<Arc<Application>> {
    if !caller.is_bot() {
        return Err(only_bots().into());
    }
    s.rt.directory.application_of_bot(caller.id()).ok_or_else(|| Error::unknown_application().into())
}

#[utoipa::path(get, path = "/applications/@me", tag = "applications", responses((status = 200, description = "The application of the calling bot", body = crate::openapi::schema::Application)))]
async fn get_current(State(s): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let app = current(&s, &caller)?;
    Ok(ok_json(&render_application(&s, &app)?))
}

/// The same as `GET /applications/@me`, under the path discord.py uses.
#[utoipa::path(get, path = "/oauth2/applications/@me", tag = "applications", responses((status = 200, description = "The application of the calling bot", body = crate::openapi::schema::Application)))]
async fn get_current_oauth2(state: State<AppState>, caller: Caller) -> ApiResult<Response> {
    get_current(state, caller).await
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PatchApplication {
    #[serde(default)]
    #[schema(min_length = 2, max_length = 32)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 400)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    icon: Option<Option<String>>,
    #[serde(default)]
    flags: Option<u64>,
    #[serde(default)]
    bot_public: Option<bool>,
    #[serde(default)]
    bot_require_code_grant: Option<bool>,
}

#[utoipa::path(patch, path = "/applications/{application_id}", tag = "applications", request_body = PatchApplication, responses((status = 200, description = "The Application", body = crate::openapi::schema::Application)))]
async fn patch_application(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    DiscordJson(body): DiscordJson<PatchApplication>,
) -> ApiResult<Response> {
    let app = accessible(&s, &caller, &id, true)?;
    update_application(&s, app.id, body).await
}

#[utoipa::path(patch, path = "/applications/@me", tag = "applications", request_body = PatchApplication, responses((status = 200, description = "The Application", body = crate::openapi::schema::Application)))]
async fn patch_current(
    State(s): State<AppState>,
    caller: Caller,
    DiscordJson(body): DiscordJson<PatchApplication>,
) -> ApiResult<Response> {
    let app = current(&s, &caller)?;
    update_application(&s, app.id, body).await
}

async fn update_application(s: &AppState, id: ApplicationId, body: PatchApplication) -> ApiResult<Response> {
    let _claim = s.accounts.lock().await;
    // Re-read under the lock so concurrent edits do not undo each other.
    let mut app = Application::clone(&*s.rt.directory.application(id).ok_or_else(Error::unknown_application)?);
    let mut errors = FormErrors::default();
    if let Some(name) = &body.name {
        validate_app_name(name, &mut errors);
        app.name = name.trim().to_string();
    }
    if let Some(d) = body.description {
        let d = d.unwrap_or_default();
        validate_description(&d, &mut errors);
        app.description = d;
    }
    if let Some(icon) = body.icon {
        app.icon = icon.and_then(|v| image_hash("icon", &v, &mut errors));
    }
    if let Some(flags) = body.flags {
        if (flags ^ app.flags) & !OWNER_SETTABLE_FLAGS != 0 {
            errors.add(
                "flags",
                "APPLICATION_FLAGS_INVALID",
                "Only the privileged gateway intent flags can be changed.",
            );
        }
        app.flags = (app.flags & !OWNER_SETTABLE_FLAGS) | (flags & OWNER_SETTABLE_FLAGS);
    }
    if let Some(p) = body.bot_public {
        app.bot_public = p;
    }
    if let Some(g) = body.bot_require_code_grant {
        app.bot_require_code_grant = g;
    }
    errors.finish()?;
    s.rt.store.apply(vec![Mutation::PutApplication(app.clone())]).await?;
    s.rt.directory.put_application(app.clone());
    Ok(ok_json(&render_application(s, &app)?))
}

/// The application for the bot sub-resource: user accounts only, owner only.
fn owned(s: &AppState, caller: &Caller, raw: &str) -> ApiResult<Arc<Application>> {
    caller.require_user_account()?;
    accessible(s, caller, raw, false)
}

/// `POST /applications/{id}/bot`: the bot's token, creating the bot user if the
/// application somehow has none.
#[utoipa::path(post, path = "/applications/{application_id}/bot", tag = "applications", responses((status = 200, description = "The bot user's token", body = crate::openapi::schema::Token)))]
async fn create_bot(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let app = owned(&s, &caller, &id)?;
    let _claim = s.accounts.lock().await;
    let bot = match s.rt.directory.user(app.bot_user_id) {
        Some(bot) => bot,
        None => {
            let bot = new_bot_user(app.bot_user_id, free_bot_username(&s, &app.name));
            s.rt.store.apply(vec![Mutation::PutUser(bot.clone())]).await?;
            s.rt.directory.put_user(bot.clone());
            Arc::new(bot)
        }
    };
    Ok(ok_json(&serde_json::json!({ "token": s.tokens.mint(&bot) })))
}

/// `POST /applications/{id}/bot/reset`: a new token; every older one stops
/// verifying and the bot's live gateway sessions are invalidated.
#[utoipa::path(post, path = "/applications/{application_id}/bot/reset", tag = "applications", responses((status = 200, description = "The bot's new token (older ones are revoked)", body = crate::openapi::schema::Token)))]
async fn reset_bot(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let app = owned(&s, &caller, &id)?;
    let _claim = s.accounts.lock().await;
    let mut bot = User::clone(&*s.rt.directory.user(app.bot_user_id).ok_or_else(Error::unknown_user)?);
    bot.token_generation = bot.token_generation.wrapping_add(1);
    s.rt.store.apply(vec![Mutation::PutUser(bot.clone())]).await?;
    let token = s.tokens.mint(&bot);
    s.rt.directory.put_user(bot.clone());
    for session in s.rt.sessions.of_user(bot.id) {
        session.push(Outbound::Invalidate);
    }
    Ok(ok_json(&serde_json::json!({ "token": token })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PatchBot {
    #[serde(default)]
    #[schema(min_length = 2, max_length = 32, pattern = "^[A-Za-z0-9_.]+$")]
    username: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    avatar: Option<Option<String>>,
}

/// `PATCH /applications/{id}/bot`: the bot's username and avatar. Sends
/// USER_UPDATE to the bot's sessions and GUILD_MEMBER_UPDATE to its guilds.
#[utoipa::path(patch, path = "/applications/{application_id}/bot", tag = "applications", request_body = PatchBot, responses((status = 200, description = "The bot user", body = crate::openapi::schema::User)))]
async fn patch_bot(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    DiscordJson(body): DiscordJson<PatchBot>,
) -> ApiResult<Response> {
    let app = owned(&s, &caller, &id)?;
    let mut errors = FormErrors::default();
    if let Some(u) = &body.username {
        validate_username(u, &mut errors, "username");
    }
    errors.finish()?;
    let _claim = s.accounts.lock().await;
    let mut bot = User::clone(&*s.rt.directory.user(app.bot_user_id).ok_or_else(Error::unknown_user)?);
    let mut errors = FormErrors::default();
    if let Some(u) = body.username {
        let u = u.to_lowercase();
        if u != bot.username && s.rt.directory.username_taken(&u) {
            errors.add(
                "username",
                "USERNAME_ALREADY_TAKEN",
                "Username is unavailable. Try adding numbers, letters, underscores _ , or periods.",
            );
        }
        bot.username = u;
    }
    if let Some(a) = body.avatar {
        bot.avatar = a.and_then(|v| image_hash("avatar", &v, &mut errors));
    }
    errors.finish()?;
    s.rt.store.apply(vec![Mutation::PutUser(bot.clone())]).await?;
    s.rt.directory.put_user(bot.clone());
    drop(_claim);
    let update = Outbound::dispatch("USER_UPDATE", to_bytes(&CurrentUserView::new(&bot)));
    for session in s.rt.sessions.of_user(bot.id) {
        session.push(update.clone());
    }
    let user = Arc::new(bot);
    for gid in s.rt.directory.guilds_of(user.id) {
        let Ok(g) = s.rt.guild(gid) else { continue };
        let u = user.clone();
        let _ = g
            .call(move |a: &mut GuildActor| {
                let Some(member) = a.state.guild.members.get(&u.id) else { return Ok(Change::read(())) };
                let mut body = serde_json::to_value(MemberView::new(member, Some(&u))).unwrap_or_default();
                body["guild_id"] = serde_json::json!(gid);
                Ok(Change::write(
                    Vec::new(),
                    vec![Event::guild("GUILD_MEMBER_UPDATE", gid, Intents::GUILD_MEMBERS, &body)],
                    (),
                ))
            })
            .await;
    }
    Ok(ok_json(&guildhall_domain::wire::UserView::new(&user)))
}
