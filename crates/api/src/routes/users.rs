//! Users: `@me`, users by id, the caller's guilds.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use guildhall_domain::permissions::base_permissions;
use guildhall_domain::wire::{CurrentUserView, PartialGuildView, UserView};
use guildhall_model::id::UserId;
use guildhall_runtime::{Change, Error};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiResult, ok_json};

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(me, user, my_guilds))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/@me", get(me))
        .route("/users/{user_id}", get(user))
        .route("/users/@me/guilds", get(my_guilds))
}

#[utoipa::path(get, path = "/users/@me", tag = "users", responses((status = 200, description = "The CurrentUser", body = crate::openapi::schema::CurrentUser)))]
async fn me(caller: Caller) -> Response {
    ok_json(&CurrentUserView::new(&caller.user))
}

#[utoipa::path(get, path = "/users/{user_id}", tag = "users", responses((status = 200, description = "The User", body = crate::openapi::schema::User)))]
async fn user(State(s): State<AppState>, _caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let id: UserId = id.parse().map_err(|_| Error::unknown_user())?;
    let user = s.rt.directory.user(id).ok_or_else(Error::unknown_user)?;
    Ok(ok_json(&UserView::new(&user)))
}

#[utoipa::path(get, path = "/users/@me/guilds", tag = "users", responses((status = 200, description = "The caller's guilds", body = [crate::openapi::schema::PartialGuild])))]
async fn my_guilds(State(s): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let me = caller.id();
    let mut out = Vec::new();
    for gid in s.rt.directory.guilds_of(me) {
        let Ok(g) = s.rt.guild(gid) else { continue };
        let v = g
            .call(move |a| {
                let st = &a.state.guild;
                let view = PartialGuildView {
                    id: st.guild.id,
                    name: &st.guild.name,
                    icon: st.guild.icon.as_deref(),
                    banner: None,
                    owner: st.guild.owner_id == me,
                    permissions: base_permissions(st, me),
                    features: &st.guild.features,
                    approximate_member_count: None,
                    approximate_presence_count: None,
                };
                Ok(Change::read(serde_json::to_value(&view).unwrap_or_default()))
            })
            .await;
        if let Ok(v) = v {
            out.push(v);
        }
    }
    Ok(ok_json(&out))
}
