//! Accounts: `POST /auth/register` and `POST /auth/login`.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use guildhall_domain::entity::User;
use guildhall_runtime::FormErrors;
use guildhall_store::Mutation;
use serde::Deserialize;

use crate::AppState;
use crate::auth::{hash_password, verify_password};
use crate::error::{ApiResult, created_json, ok_json};
use crate::extract::DiscordJson;
use crate::login_limit::ClientIp;

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(register, login))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/register", post(register)).route("/auth/login", post(login))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Register {
    #[schema(min_length = 2, max_length = 32, pattern = "^[A-Za-z0-9_.]+$")]
    username: String,
    #[schema(min_length = 8, max_length = 256)]
    password: Option<String>,
    email: Option<String>,
    #[schema(min_length = 1, max_length = 32)]
    global_name: Option<String>,
    #[serde(default)]
    consent: Option<bool>,
}

/// Usernames as Discord's new-style names: 2-32 of a-z 0-9 _ . (case-folded).
pub fn validate_username(name: &str, errors: &mut FormErrors, field: &str) {
    let len = name.chars().count();
    if !(2..=32).contains(&len) {
        errors.add(field, "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 32 in length.");
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
        errors.add(
            field,
            "USERNAME_INVALID_CHARACTERS",
            "Username can only contain letters, numbers, underscores and periods.",
        );
    }
}

#[utoipa::path(post, path = "/auth/register", tag = "auth", security(()), request_body = Register, responses((status = 201, description = "The new account's token", body = crate::openapi::schema::Token)))]
async fn register(State(s): State<AppState>, DiscordJson(body): DiscordJson<Register>) -> ApiResult<Response> {
    let mut errors = FormErrors::default();
    validate_username(&body.username, &mut errors, "username");
    let password = body.password.unwrap_or_default();
    if password.chars().count() < 8 || password.len() > 256 {
        errors.add("password", "PASSWORD_LENGTH", "Must be between 8 and 256 in length.");
    }
    if body.email.as_ref().is_some_and(|e| e.len() > 254 || !e.contains('@')) {
        errors.add("email", "EMAIL_TYPE_INVALID_EMAIL", "Not a well formed email address.");
    }
    if body.consent == Some(false) {
        errors.add("consent", "CONSENT_REQUIRED", "You need to agree to the Terms of Service in order to continue.");
    }
    if body.global_name.as_ref().is_some_and(|g| g.chars().count() > 32) {
        errors.add("global_name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.");
    }
    errors.finish()?;
    let hash = hash_password(password, s.config.password_cost.clone()).await?;

    let _claim = s.accounts.lock().await;
    let mut errors = FormErrors::default();
    if s.rt.directory.username_taken(&body.username) {
        errors.add(
            "username",
            "USERNAME_ALREADY_TAKEN",
            "Username is unavailable. Try adding numbers, letters, underscores _ , or periods.",
        );
    }
    if body.email.as_deref().is_some_and(|e| s.rt.directory.email_taken(e)) {
        errors.add("email", "EMAIL_ALREADY_REGISTERED", "Email is already registered.");
    }
    errors.finish()?;
    let user = User {
        id: s.rt.next_id(),
        username: body.username.to_lowercase(),
        global_name: body.global_name,
        avatar: None,
        bot: false,
        email: body.email,
        password_hash: Some(hash),
        token_generation: 0,
        flags: 0,
        locale: "en-US".into(),
    };
    s.rt.store.apply(vec![Mutation::PutUser(user.clone())]).await?;
    let token = s.tokens.mint(&user);
    s.rt.directory.put_user(user);
    Ok(created_json(&serde_json::json!({ "token": token })))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Login {
    login: String,
    password: String,
}

/// A hash to verify against when the account does not exist, so a wrong login
/// and a wrong password take the same time. Made once, at the configured cost.
static DUMMY_HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// Failed attempts are counted per account name and per client IP (see
/// [`crate::login_limit`]); over either limit the answer is 429 before the
/// password is checked, the same for names with and without an account.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()), request_body = Login, responses((status = 200, description = "The account's token", body = crate::openapi::schema::LoginResponse)))]
async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    DiscordJson(body): DiscordJson<Login>,
) -> ApiResult<Response> {
    if let Err(wait) = s.logins.check(&body.login, ip) {
        return Ok(crate::ratelimit::too_many(wait.as_millis() as u64, false));
    }
    let user = s.rt.directory.user_by_login(&body.login).filter(|u| !u.bot);
    let dummy = DUMMY_HASH
        .get_or_try_init(|| hash_password("not a password".into(), s.config.password_cost.clone()))
        .await?
        .clone();
    let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or(dummy);
    let ok = verify_password(body.password, hash, s.config.password_cost.clone()).await;
    match user {
        Some(user) if ok => {
            s.logins.succeeded(&body.login);
            let token = s.tokens.mint(&user);
            Ok(ok_json(&serde_json::json!({
                "user_id": user.id,
                "token": token,
                "user_settings": { "locale": user.locale, "theme": "dark" },
            })))
        }
        _ => {
            s.logins.failed(&body.login, ip);
            let mut errors = FormErrors::default();
            errors.add("login", "INVALID_LOGIN", "Login or password is invalid.");
            errors.add("password", "INVALID_LOGIN", "Login or password is invalid.");
            Err(errors.into_error().into())
        }
    }
}
