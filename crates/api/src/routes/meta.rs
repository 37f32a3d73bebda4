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

pub fn routes() -> Router<AppState> {
    Router::new().route("/gateway", get(gateway)).route("/gateway/bot", get(gateway_bot))
}

async fn healthz() -> Response {
    ok_json(&serde_json::json!({ "status": "ok" }))
}

async fn gateway(State(s): State<AppState>) -> Response {
    ok_json(&serde_json::json!({ "url": s.rt.config.gateway_url }))
}

async fn gateway_bot(State(s): State<AppState>, _caller: Caller) -> Response {
    ok_json(&serde_json::json!({
        "url": s.rt.config.gateway_url,
        "shards": 1,
        "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 86_400_000u64, "max_concurrency": 1 },
    }))
}
