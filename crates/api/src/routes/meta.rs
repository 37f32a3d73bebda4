//! Health, gateway discovery.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ok_json;

/// Routes outside /api.
pub fn unversioned() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// This module's operations in the OpenAPI document (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(gateway, gateway_bot))]
pub(crate) struct Doc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/gateway", get(gateway)).route("/gateway/bot", get(gateway_bot))
}

async fn healthz() -> Response {
    ok_json(&serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/gateway", tag = "meta", security(()), responses((status = 200, description = "The Gateway", body = crate::openapi::schema::Gateway)))]
async fn gateway(State(s): State<AppState>) -> Response {
    ok_json(&serde_json::json!({ "url": s.rt.config.gateway_url }))
}

/// `session_start_limit` is the caller's own: the gateway counts its IDENTIFYs in
/// the runtime's `session_starts`.
#[utoipa::path(get, path = "/gateway/bot", tag = "meta", responses((status = 200, description = "The GatewayBot", body = crate::openapi::schema::GatewayBot)))]
async fn gateway_bot(State(s): State<AppState>, caller: Caller) -> Response {
    let l = s.rt.session_starts.limit_of(caller.user.id, std::time::Instant::now());
    ok_json(&serde_json::json!({
        "url": s.rt.config.gateway_url,
        "shards": 1,
        "session_start_limit": {
            "total": l.total,
            "remaining": l.remaining,
            "reset_after": l.reset_after_ms,
            "max_concurrency": l.max_concurrency,
        },
    }))
}
