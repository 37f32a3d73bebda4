//! Discord's REST API v10 over axum.
//!
//! A handler does four things, in order: extract (typed path ids, a
//! [`DiscordJson`] body, the authenticated [`auth::Caller`]), validate the body
//! into plain values (50035 field errors), run a job on the actor that owns the
//! resource (the guild actor for guild resources, the private actor for DMs;
//! permission checks happen inside the job against the actor's state, using
//! `guildhall_domain::permissions`), and render the result with
//! `guildhall_domain::wire`.
//!
//! Invariant: no handler keeps state of its own or spawns long-lived tasks; every
//! change goes through an actor so that it is persisted before its event.

pub mod access;
pub mod auth;
pub mod error;
pub mod extract;
pub mod login_limit;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod render;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use guildhall_runtime::Runtime;

pub use error::{ApiError, ApiResult};
pub use extract::{DiscordJson, DiscordQuery};

/// Settings of the REST layer.
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    pub password_cost: auth::PasswordCost,
    /// Largest upload (sum of files) per message, in bytes.
    pub max_upload_bytes: usize,
    /// REST rate limits (see [`ratelimit`]).
    pub ratelimit: ratelimit::RateLimitConfig,
    /// Failed-login limits per account and per IP (see [`login_limit`]).
    pub login_limits: login_limit::LoginLimitConfig,
}

/// The client's address: the server's listener uses it as its `Addr`, so handlers
/// see it as `ConnectInfo<PeerAddr>` (per-IP limits on anonymous requests).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Connections handed over by the server's accept loop (which sniffs each
/// connection and keeps WebSocket upgrades for the gateway), as axum's listener.
/// Its `Addr` is [`PeerAddr`], so handlers can extract `ConnectInfo<PeerAddr>`.
pub struct ChannelListener<Io> {
    /// Fed by the accept loop; closed when it stops.
    pub rx: tokio::sync::mpsc::Receiver<(Io, std::net::SocketAddr)>,
    pub addr: std::net::SocketAddr,
}

impl<Io> axum::serve::Listener for ChannelListener<Io>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Io = Io;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Io, PeerAddr) {
        match self.rx.recv().await {
            Some((io, peer)) => (io, PeerAddr(peer)),
            // The accept loop stopped: axum's graceful shutdown ends the serve loop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<PeerAddr> {
        Ok(PeerAddr(self.addr))
    }
}

impl<Io> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, ChannelListener<Io>>> for PeerAddr
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, ChannelListener<Io>>) -> Self {
        *stream.remote_addr()
    }
}

/// What every handler can reach: one `Arc`, since axum clones the state for
/// every request (several times, through the nested routers and middleware).
/// Fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

impl AppState {
    pub fn new(parts: AppStateParts) -> AppState {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateParts;
    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

pub struct AppStateParts {
    pub rt: Runtime,
    pub tokens: Arc<auth::Tokens>,
    pub config: Arc<ApiConfig>,
    /// Serializes account creation so username/email uniqueness is checked and
    /// claimed atomically; held across the durable write.
    pub accounts: Arc<tokio::sync::Mutex<()>>,
    /// Failed-login counters, built from `config.login_limits`.
    pub logins: Arc<login_limit::LoginLimiter>,
    /// Extra Prometheus text appended to `/metrics` by parts of the server this
    /// crate cannot see (the gateway's session and delivery counters).
    pub extra_metrics: Option<ExtraMetrics>,
}

/// Writes Prometheus exposition lines into the buffer.
pub type ExtraMetrics = Arc<dyn Fn(&mut String) + Send + Sync>;

/// The versioned API routes (mounted under /api/v10, /api/v9 and /api), with
/// the OpenAPI document that describes them at `/openapi.json`.
pub fn api_routes() -> Router<AppState> {
    routes::router().route("/openapi.json", axum::routing::get(openapi::openapi_json))
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let metrics = Arc::new(metrics::Metrics::new());
    let limiter = ratelimit::RateLimitLayer {
        app: state.clone(),
        limiter: Arc::new(ratelimit::RateLimiter::new(state.config.ratelimit.clone())),
    };
    // Route layers run after routing (the matched path is known); the last one
    // added is the outermost, so metrics also see the 429s.
    let api = api_routes()
        .route_layer(axum::middleware::from_fn_with_state(limiter, ratelimit::middleware))
        .route_layer(axum::middleware::from_fn_with_state(metrics.clone(), metrics::middleware));
    Router::new()
        .merge(routes::meta::unversioned())
        .merge(metrics::router(metrics, state.rt.clone(), state.extra_metrics.clone()))
        .merge(routes::attachments::unversioned())
        .nest("/api/v10", api.clone())
        .nest("/api/v9", api.clone())
        .nest("/api", api)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    error::json_response(StatusCode::NOT_FOUND, &serde_json::json!({ "message": "404: Not Found", "code": 0 }))
}
