//! OAuth2 "add to server" for bots: `GET /oauth2/authorize` answers what the
//! consent screen shows, `POST /oauth2/authorize` adds the bot to a guild.
//!
//! Only the `bot` scope (optionally with `applications.commands`, which grants
//! nothing more here) is served; there are no code grants or bearer tokens.
//!
//! Adding a bot, as Discord does: the inviter needs MANAGE_GUILD and every
//! permission it hands out; the bot must be public or the inviter's own; a banned
//! bot is refused (403, 40007). When `permissions` is non-zero the bot gets a
//! managed role named after it with exactly those permissions. The role is placed
//! at position 1, just above @everyone (the roles above move up one), so a new bot
//! never outranks the guild's existing roles — the same place Discord put
//! integration roles for years; admins drag it up as they see fit.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use guildhall_domain::entity::{Member, Role};
use guildhall_domain::permissions::{base_permissions, guild_permissions};
use guildhall_domain::wire::{CurrentUserView, MemberView, RoleView, UserView};
use guildhall_model::error_code;
use guildhall_model::id::{ApplicationId, GuildId, RoleId};
use guildhall_model::{Intents, Permissions, Timestamp};
use guildhall_runtime::{Change, Error, ErrorKind, Event, FormErrors, GuildActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ok_json};
use crate::extract::{DiscordJson, DiscordQuery, query_id};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(consent, authorize))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/oauth2/authorize", get(consent).post(authorize))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuthorizeQuery {
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::Snowflake>)]
    client_id: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    scope: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<crate::openapi::schema::PermissionBits>)]
    permissions: Option<String>,
}

/// What the query asks for: the application and the requested permissions.
struct Request {
    app: std::sync::Arc<guildhall_domain::entity::Application>,
    bot: std::sync::Arc<guildhall_domain::entity::User>,
    permissions: Permissions,
}

fn parse_request(s: &AppState, caller: &Caller, q: &AuthorizeQuery) -> ApiResult<Request> {
    caller.require_user_account()?;
    let mut errors = FormErrors::default();
    let client_id = match q.client_id.as_deref() {
        None | Some("") => {
            errors.add("client_id", "BASE_TYPE_REQUIRED", "This field is required");
            None
        }
        raw => query_id::<ApplicationId>(raw, "client_id", &mut errors),
    };
    let scopes: Vec<&str> = q.scope.as_deref().unwrap_or("").split([' ', ',']).filter(|x| !x.is_empty()).collect();
    if !scopes.contains(&"bot") {
        errors.add("scope", "OAUTH2_SCOPE_BOT_REQUIRED", "The bot scope is required.");
    } else if let Some(other) = scopes.iter().find(|x| !matches!(**x, "bot" | "applications.commands")) {
        errors.add("scope", "OAUTH2_SCOPE_INVALID", &format!("Scope \"{other}\" is not supported."));
    }
    let permissions = match q.permissions.as_deref() {
        None | Some("") => Permissions::NONE,
        Some(raw) => match raw.parse::<u64>() {
            Ok(p) => Permissions(p).truncate(),
            Err(_) => {
                errors.add("permissions", "NUMBER_TYPE_COERCE", &format!("Value \"{raw}\" is not int."));
                Permissions::NONE
            }
        },
    };
    errors.finish()?;
    let id = client_id.expect("checked above");
    let app = s.rt.directory.application(id).ok_or_else(Error::unknown_application)?;
    if !app.bot_public && app.owner_id != caller.id() {
        return Err(Error::missing_access().into());
    }
    let bot = s.rt.directory.user(app.bot_user_id).ok_or_else(Error::unknown_application)?;
    Ok(Request { app, bot, permissions })
}

/// `GET /oauth2/authorize`: the consent screen's data (Spacebar's shape).
#[utoipa::path(get, path = "/oauth2/authorize", tag = "oauth2", params(AuthorizeQuery), responses((status = 200, description = "The Consent", body = crate::openapi::schema::Consent)))]
async fn consent(
    State(s): State<AppState>,
    caller: Caller,
    DiscordQuery(q): DiscordQuery<AuthorizeQuery>,
) -> ApiResult<Response> {
    let req = parse_request(&s, &caller, &q)?;
    let me = caller.id();
    let mut guilds = Vec::new();
    for gid in s.rt.directory.guilds_of(me) {
        let Ok(g) = s.rt.guild(gid) else { continue };
        let entry = g
            .call(move |a: &mut GuildActor| {
                let st = &a.state.guild;
                let p = base_permissions(st, me);
                let v = p.contains(Permissions::MANAGE_GUILD).then(|| {
                    serde_json::json!({
                        "id": st.guild.id, "name": st.guild.name, "icon": st.guild.icon,
                        "mfa_level": st.guild.mfa_level, "permissions": p,
                    })
                });
                Ok(Change::read(v))
            })
            .await;
        if let Ok(Some(v)) = entry {
            guilds.push(v);
        }
    }
    let app = &req.app;
    let mut bot = serde_json::to_value(UserView::new(&req.bot)).unwrap_or_default();
    bot["approximate_guild_count"] = serde_json::json!(s.rt.directory.guild_count_of(req.bot.id));
    Ok(ok_json(&serde_json::json!({
        "application": {
            "id": app.id, "name": app.name, "icon": app.icon, "description": app.description,
            "summary": "", "type": null, "bot_public": app.bot_public,
            "bot_require_code_grant": app.bot_require_code_grant, "verify_key": app.verify_key,
            "flags": app.flags,
        },
        "bot": bot,
        "user": CurrentUserView::new(&caller.user),
        "guilds": guilds,
        "permissions": req.permissions,
        "authorized": false,
        "redirect_uri": null,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct AuthorizeBody {
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::Snowflake>)]
    guild_id: Option<GuildId>,
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::PermissionBits>)]
    permissions: Option<Permissions>,
    #[serde(default)]
    authorize: Option<bool>,
}

/// `POST /oauth2/authorize`: adds the bot to `guild_id`.
#[utoipa::path(post, path = "/oauth2/authorize", tag = "oauth2", params(AuthorizeQuery), request_body = AuthorizeBody, responses((status = 200, description = "Where the consent screen goes next", body = crate::openapi::schema::Location)))]
async fn authorize(
    State(s): State<AppState>,
    caller: Caller,
    DiscordQuery(q): DiscordQuery<AuthorizeQuery>,
    DiscordJson(body): DiscordJson<AuthorizeBody>,
) -> ApiResult<Response> {
    let req = parse_request(&s, &caller, &q)?;
    let base = &s.rt.config.public_url;
    if body.authorize != Some(true) {
        return Ok(ok_json(&serde_json::json!({
            "location": format!("{base}/oauth2/authorized?error=access_denied&error_description=The+resource+owner+or+authorization+server+denied+the+request")
        })));
    }
    let gid =
        body.guild_id.ok_or_else(|| Error::form_field("guild_id", "BASE_TYPE_REQUIRED", "This field is required"))?;
    let requested = body.permissions.map_or(req.permissions, Permissions::truncate);
    let me = caller.id();
    let bot = req.bot.clone();
    let bot_id = bot.id;
    let role_name: String = req.app.name.chars().take(100).collect();
    let handle = s.rt.guild(gid)?;
    let role_id: RoleId = s.rt.next_id();
    let joined = handle
        .call(move |a: &mut GuildActor| {
            let now = Timestamp::now();
            let st = &mut a.state.guild;
            let mine = guild_permissions(st, me, now);
            if !mine.contains(Permissions::MANAGE_GUILD) || !mine.contains(requested) {
                return Err(Error::missing_permissions());
            }
            if st.bans.contains_key(&bot_id) {
                return Err(Error::new(
                    ErrorKind::Forbidden,
                    error_code::ALREADY_BANNED_OR_MEMBER,
                    "The user is banned from this guild.",
                ));
            }
            if st.members.contains_key(&bot_id) {
                return Ok(Change::read(false));
            }
            let mut mutations = Vec::new();
            let mut events = Vec::new();
            let mut member = Member::new(bot_id, now);
            if !requested.is_empty() {
                let everyone = st.everyone_role_id();
                for r in st.roles.values_mut().filter(|r| r.id != everyone && r.position >= 1) {
                    r.position += 1;
                    mutations.push(Mutation::PutRole(gid, r.clone()));
                    events.push(Event::guild(
                        "GUILD_ROLE_UPDATE",
                        gid,
                        Intents::GUILDS,
                        &serde_json::json!({ "guild_id": gid, "role": RoleView::new(r) }),
                    ));
                }
                let role = Role {
                    id: role_id,
                    name: role_name,
                    color: 0,
                    hoist: false,
                    icon: None,
                    unicode_emoji: None,
                    position: 1,
                    permissions: requested,
                    managed: true,
                    mentionable: false,
                    flags: 0,
                    bot_id: Some(bot_id),
                };
                mutations.push(Mutation::PutRole(gid, role.clone()));
                events.push(Event::guild(
                    "GUILD_ROLE_CREATE",
                    gid,
                    Intents::GUILDS,
                    &serde_json::json!({ "guild_id": gid, "role": RoleView::new(&role) }),
                ));
                st.roles.insert(role.id, role);
                member.roles.push(role_id);
            }
            let mut added = serde_json::to_value(MemberView::new(&member, Some(&bot))).unwrap_or_default();
            added["guild_id"] = serde_json::json!(gid);
            events.push(Event::guild("GUILD_MEMBER_ADD", gid, Intents::GUILD_MEMBERS, &added));
            mutations.push(Mutation::PutMember(gid, member.clone()));
            st.members.insert(bot_id, member);
            a.shared.directory.add_membership(bot_id, gid);
            Ok(Change::write(mutations, events, true))
        })
        .await?;
    if joined {
        handle.cast_wait(move |a: &mut GuildActor| a.subscribe_user(bot_id)).await;
    }
    Ok(ok_json(&serde_json::json!({ "location": format!("{base}/oauth2/authorized") })))
}
