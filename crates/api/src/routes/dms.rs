//! DMs and the current user's profile: `POST /users/@me/channels` (open or reuse
//! a DM, or create a group DM) and `PATCH /users/@me` (username, global name,
//! avatar, email, password — a password change revokes every older token and
//! answers with a fresh one). Both run on the private actor, which persists and
//! then sends CHANNEL_CREATE / USER_UPDATE to the users concerned.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{patch, post};
use guildhall_domain::entity::{Channel, User, channel_type};
use guildhall_domain::wire::CurrentUserView;
use guildhall_model::Intents;
use guildhall_model::error_code;
use guildhall_model::id::UserId;
use guildhall_runtime::{Change, Error, ErrorKind, Event, FormErrors, Outbound, PrivateActor};
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Caller, hash_password, verify_password};
use crate::error::{ApiResult, ok_json};
use crate::extract::DiscordJson;
use crate::routes::auth::validate_username;
use crate::routes::channels::private_channel_json;
use crate::routes::guild_common::{image_hash, nullable};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_dm, modify_me))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/users/@me/channels", post(create_dm)).route("/users/@me", patch(modify_me))
}

/// Group DMs hold at most ten users.
const MAX_GROUP_DM: usize = 10;

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct CreateDm {
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::Snowflake>)]
    recipient_id: Option<UserId>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::openapi::schema::Snowflake>>, max_items = 9)]
    recipients: Option<Vec<UserId>>,
    #[serde(default)]
    access_tokens: Option<Vec<String>>,
}

fn cannot_message() -> Error {
    Error::new(ErrorKind::Forbidden, error_code::CANNOT_MESSAGE_USER, "Cannot send messages to this user")
}

#[utoipa::path(post, path = "/users/@me/channels", tag = "users", request_body = CreateDm, responses((status = 200, description = "The DM or group DM", body = crate::openapi::schema::Channel)))]
async fn create_dm(
    State(s): State<AppState>,
    caller: Caller,
    DiscordJson(body): DiscordJson<CreateDm>,
) -> ApiResult<Response> {
    let me = caller.id();
    let rt = s.rt.clone();
    if let Some(other) = body.recipient_id {
        let other_user = s.rt.directory.user(other).ok_or_else(Error::unknown_user)?;
        if other == me || (caller.is_bot() && other_user.bot) {
            return Err(cannot_message().into());
        }
        let value =
            s.rt.private()
                .call(move |a: &mut PrivateActor| {
                    if let Some(id) = a.state.dm_index.get(&(me.min(other), me.max(other))) {
                        let c = &a.state.channels[id];
                        return Ok(Change::read(private_channel_json(&a.shared, c, me)));
                    }
                    let mut c = Channel::new(rt.next_id(), channel_type::DM, None);
                    c.recipients = vec![me, other];
                    a.state.insert(c.clone());
                    a.shared.register_private_channel(&c);
                    let events = created_events(a, &c);
                    Ok(Change::write(
                        vec![Mutation::PutChannel(c.clone())],
                        events,
                        private_channel_json(&a.shared, &c, me),
                    ))
                })
                .await?;
        return Ok(ok_json(&value));
    }
    // Group DM: by user ids (user accounts) or by OAuth2 access tokens.
    let mut others: Vec<UserId> = Vec::new();
    match (body.recipients, body.access_tokens) {
        (Some(ids), _) => {
            caller.require_user_account()?;
            for id in ids {
                if s.rt.directory.user(id).is_none() {
                    return Err(Error::unknown_user().into());
                }
                others.push(id);
            }
        }
        (None, Some(tokens)) => {
            for (i, t) in tokens.iter().enumerate() {
                match s.tokens.verify(crate::auth::token_from_header(t), &s.rt.directory) {
                    Some(u) => others.push(u.id),
                    None => {
                        return Err(Error::form_field(
                            &format!("access_tokens.{i}"),
                            "TOKEN_INVALID",
                            "Invalid access token",
                        )
                        .into());
                    }
                }
            }
        }
        (None, None) => {
            return Err(Error::form_field("recipient_id", "BASE_TYPE_REQUIRED", "This field is required").into());
        }
    }
    others.retain(|u| *u != me);
    others.sort_unstable();
    others.dedup();
    if others.len() + 1 > MAX_GROUP_DM {
        return Err(Error::form_field("recipients", "BASE_TYPE_MAX_LENGTH", "Must be 9 or fewer in length.").into());
    }
    let value = s
        .rt
        .private()
        .call(move |a: &mut PrivateActor| {
            let mut c = Channel::new(rt.next_id(), channel_type::GROUP_DM, None);
            c.recipients = std::iter::once(me).chain(others).collect();
            c.owner_id = Some(me);
            a.state.insert(c.clone());
            a.shared.register_private_channel(&c);
            let events = created_events(a, &c);
            Ok(Change::write(vec![Mutation::PutChannel(c.clone())], events, private_channel_json(&a.shared, &c, me)))
        })
        .await?;
    Ok(ok_json(&value))
}

/// CHANNEL_CREATE to each recipient, rendered as that recipient sees it.
fn created_events(a: &PrivateActor, c: &Channel) -> Vec<Event> {
    c.recipients
        .iter()
        .map(|u| Event::users("CHANNEL_CREATE", vec![*u], Intents(0), &private_channel_json(&a.shared, c, *u)))
        .collect()
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[schema(as = ModifyCurrentUser)]
struct ModifyMe {
    #[serde(default)]
    #[schema(min_length = 2, max_length = 32, pattern = "^[A-Za-z0-9_.]+$")]
    username: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(min_length = 1, max_length = 32)]
    global_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    avatar: Option<Option<String>>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    #[schema(min_length = 8, max_length = 256)]
    new_password: Option<String>,
}

#[utoipa::path(patch, path = "/users/@me", tag = "users", operation_id = "modify_current_user", request_body = ModifyMe, responses((status = 200, description = "The CurrentUser", body = crate::openapi::schema::CurrentUser)))]
async fn modify_me(
    State(s): State<AppState>,
    caller: Caller,
    DiscordJson(body): DiscordJson<ModifyMe>,
) -> ApiResult<Response> {
    let current = caller.user.clone();
    let mut errors = FormErrors::default();
    let username = body.username.map(|u| u.to_lowercase()).filter(|u| *u != current.username);
    if let Some(u) = &username {
        validate_username(u, &mut errors, "username");
    }
    if let Some(Some(g)) = &body.global_name
        && g.chars().count() > 32
    {
        errors.add("global_name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.");
    }
    let avatar = match &body.avatar {
        Some(Some(data)) => match image_hash(data) {
            Some(h) => Some(Some(h)),
            None => {
                errors.add("avatar", "IMAGE_INVALID", "Invalid image data");
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    let email = body.email.filter(|e| Some(e.as_str()) != current.email.as_deref());
    if let Some(e) = &email
        && (e.len() > 254 || !e.contains('@'))
    {
        errors.add("email", "EMAIL_TYPE_INVALID_EMAIL", "Not a well formed email address.");
    }
    if let Some(p) = &body.new_password
        && (p.chars().count() < 8 || p.len() > 256)
    {
        errors.add("new_password", "PASSWORD_LENGTH", "Must be between 8 and 256 in length.");
    }
    if current.bot && (email.is_some() || body.new_password.is_some()) {
        errors.add("_errors", "INVALID_ACCOUNT_TYPE", "Bots cannot change their email or password.");
    }
    errors.finish()?;
    // A user account confirms username, email and password changes with its password.
    let sensitive = username.is_some() || email.is_some() || body.new_password.is_some();
    if sensitive && !current.bot {
        let ok = match (&body.password, &current.password_hash) {
            (Some(p), Some(h)) => verify_password(p.clone(), h.clone(), s.config.password_cost.clone()).await,
            _ => false,
        };
        if !ok {
            return Err(Error::form_field("password", "PASSWORD_DOES_NOT_MATCH", "Password does not match.").into());
        }
    }
    let new_hash = match &body.new_password {
        Some(p) => Some(hash_password(p.clone(), s.config.password_cost.clone()).await?),
        None => None,
    };

    let _claim = s.accounts.lock().await;
    let mut errors = FormErrors::default();
    if username.as_deref().is_some_and(|u| s.rt.directory.username_taken(u)) {
        errors.add(
            "username",
            "USERNAME_ALREADY_TAKEN",
            "Username is unavailable. Try adding numbers, letters, underscores _ , or periods.",
        );
    }
    if email.as_deref().is_some_and(|e| s.rt.directory.email_taken(e)) {
        errors.add("email", "EMAIL_ALREADY_REGISTERED", "Email is already registered.");
    }
    errors.finish()?;
    // Re-read under the lock so concurrent edits do not undo each other.
    let mut user: User = (*s.rt.directory.user(current.id).ok_or_else(Error::unknown_user)?).clone();
    if let Some(u) = username {
        user.username = u;
    }
    if let Some(g) = body.global_name {
        user.global_name = g.filter(|g| !g.trim().is_empty());
    }
    if let Some(a) = avatar {
        user.avatar = a;
    }
    if let Some(e) = email {
        user.email = Some(e);
    }
    let password_changed = new_hash.is_some();
    if let Some(h) = new_hash {
        user.password_hash = Some(h);
        user.token_generation += 1;
    }
    let me = user.id;
    let stored = user.clone();
    s.rt.private()
        .call(move |_a: &mut PrivateActor| {
            let view = serde_json::to_value(CurrentUserView::new(&stored)).unwrap_or_default();
            let event = Event::users("USER_UPDATE", vec![me], Intents(0), &view);
            Ok(Change::write(vec![Mutation::PutUser(stored)], vec![event], ()))
        })
        .await?;
    s.rt.directory.put_user(user.clone());
    let mut value = serde_json::to_value(CurrentUserView::new(&user)).unwrap_or_default();
    if password_changed {
        // Every older token is dead; so are the sessions opened with them.
        for session in s.rt.sessions.of_user(me) {
            session.push(Outbound::Invalidate);
        }
        value["token"] = serde_json::json!(s.tokens.mint(&user));
    }
    Ok(ok_json(&value))
}
