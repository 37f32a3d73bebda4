//! The Guildhall server as a library: [`run`] wires the store, the runtime, the
//! REST API and the gateway onto one listener and serves until `shutdown`
//! resolves, then drains. The binary (`main.rs`) only parses flags and signals.
//!
//! This is the only crate that chooses a backend or a transport.

#[cfg(feature = "mimalloc")]
pub mod alloc;
mod body_timeout;
pub mod config;
mod listen;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use guildhall_api::{ApiConfig, AppState, AppStateParts, auth};
use guildhall_gateway::Gateway;
use guildhall_runtime::{Runtime, RuntimeConfig, Shared};
use guildhall_store::{EmbeddedStore, EmbeddedStoreConfig, Mutation, Store};
use tokio::net::TcpListener;

pub use config::Config;

/// A server that is listening.
pub struct Server {
    pub addr: SocketAddr,
    pub runtime: Runtime,
    /// The gateway (its [`guildhall_gateway::GatewayStats`] feed metrics).
    pub gateway: Arc<Gateway>,
    listener: TcpListener,
    limits: listen::Limits,
    state: AppState,
    store: Arc<EmbeddedStore>,
}

/// The token-signing secret, created on first start and kept in the store.
fn load_secret(store: &dyn Store) -> Result<[u8; 32], String> {
    if let Some(v) = store.meta("token_secret").map_err(|e| e.to_string())?
        && let Ok(arr) = <[u8; 32]>::try_from(v.as_slice())
    {
        return Ok(arr);
    }
    let secret: [u8; 32] = auth::random_bytes();
    store.apply(vec![Mutation::PutMeta("token_secret".into(), secret.to_vec())]);
    store.flush().map_err(|e| e.to_string())?;
    Ok(secret)
}

/// The largest TCP segment the server announces and sends. Only loopback has larger
/// ones (64 KiB), and they are larger than the receive window of a client with
/// default buffers (~52 KiB): the kernel does not split a segment to fit a window,
/// so a full one waited for the 200 ms window probe. Local bots are the ones on
/// loopback; one IDENTIFY in 10-20 got its GUILD_CREATEs 200 ms late (`ready`
/// bench, `ss` showed 55,296 bytes unsent, nothing in flight, window 52,224).
/// Real networks' segments (~1.4 KiB) are far below this.
const MAX_SEGMENT: u32 = 16 * 1024;

impl Server {
    /// Opens the store, loads state and binds the listener.
    pub async fn bind(config: Config) -> Result<Server, String> {
        let store = Arc::new(
            EmbeddedStore::open(&config.data_dir, EmbeddedStoreConfig::default())
                .map_err(|e| format!("opening the store in {}: {e}", config.data_dir.display()))?,
        );
        let listener = TcpListener::bind(config.listen).await.map_err(|e| format!("binding {}: {e}", config.listen))?;
        // Inherited by every accepted socket; see `MAX_SEGMENT`.
        if let Err(e) = socket2::SockRef::from(&listener).set_tcp_mss(MAX_SEGMENT) {
            tracing::warn!(error = %e, "could not cap the TCP segment size");
        }
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        // With port 0 the real port is known only now.
        let mut config = config;
        config.listen = addr;
        let secret = load_secret(&*store)?;
        let rt_config = RuntimeConfig {
            public_url: config.public_url(),
            gateway_url: config.gateway_url(),
            attachments_dir: config.data_dir.join("attachments"),
            session_starts: config.session_start_limits(),
        };
        let runtime = Shared::start(store.clone(), rt_config, config.worker_id).map_err(|e| e.message)?;
        let tokens = Arc::new(auth::Tokens::new(secret));
        let gateway = Gateway::new(runtime.clone(), tokens.clone(), config.gateway_config());
        let api_config = ApiConfig {
            password_cost: auth::PasswordCost {
                memory_kib: config.password_memory_kib,
                iterations: config.password_iterations,
            },
            max_upload_bytes: config.max_upload_bytes,
            ratelimit: guildhall_api::ratelimit::RateLimitConfig {
                route_limit: config.ratelimit_route_limit,
                route_window_ms: config.ratelimit_route_window_ms,
                global_per_second: config.ratelimit_global_per_second,
            },
            login_limits: guildhall_api::login_limit::LoginLimitConfig {
                per_account: config.login_limit_per_account,
                per_ip: config.login_limit_per_ip,
                window_secs: config.login_limit_window_secs,
            },
        };
        let logins = Arc::new(guildhall_api::login_limit::LoginLimiter::new(api_config.login_limits.clone()));
        let state = AppState::new(AppStateParts {
            rt: runtime.clone(),
            tokens,
            config: Arc::new(api_config),
            logins,
            accounts: Arc::new(tokio::sync::Mutex::new(())),
            extra_metrics: Some(gateway_metrics(gateway.clone())),
        });
        let limits = listen::Limits {
            header_timeout: std::time::Duration::from_millis(config.header_timeout_ms.max(1)),
            max_conns_per_ip: config.max_connections_per_ip,
            body: body_timeout::BodyLimits {
                idle: std::time::Duration::from_millis(config.body_idle_timeout_ms.max(1)),
                total: std::time::Duration::from_millis(config.body_timeout_ms.max(1)),
            },
        };
        Ok(Server { addr, runtime, gateway, listener, limits, state, store })
    }

    /// The REST application this server serves (without the listener's
    /// connection handling), for driving it in-process, e.g. by the fuzzer
    /// (`fuzz/fuzz_targets/rest_request.rs`). Requests need a
    /// `ConnectInfo<PeerAddr>` extension, as the listener adds.
    pub fn router(&self) -> axum::Router {
        guildhall_api::app(self.state.clone())
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish and flushes the store.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), String> {
        let app = guildhall_api::app(self.state);
        tracing::info!(addr = %self.addr, "guildhall listening");
        listen::serve(self.listener, app, self.gateway, self.limits, shutdown).await.map_err(|e| e.to_string())?;
        self.runtime.shutdown().await;
        drop(self.runtime);
        self.store.flush().map_err(|e| e.to_string())?;
        // Dropping the last handle joins the group-commit thread and closes the
        // database, so the data directory can be opened again at once.
        drop(self.store);
        tracing::info!("guildhall stopped");
        Ok(())
    }
}

/// The gateway's counters in Prometheus text, for `/metrics`.
fn gateway_metrics(gateway: Arc<Gateway>) -> guildhall_api::ExtraMetrics {
    Arc::new(move |out: &mut String| {
        use std::fmt::Write;
        let st = gateway.stats.snapshot();
        let rows: [(&str, &str, &str, u64); 7] = [
            ("guildhall_gateway_connections", "gauge", "Open gateway WebSocket connections.", st.connections_open),
            (
                "guildhall_gateway_sessions_open",
                "gauge",
                "Gateway sessions, live or waiting for a RESUME.",
                st.sessions_open,
            ),
            (
                "guildhall_gateway_dispatches_total",
                "counter",
                "Dispatches written to sockets, replays included.",
                st.dispatches_delivered,
            ),
            ("guildhall_gateway_bytes_total", "counter", "WebSocket payload bytes written.", st.bytes_written),
            ("guildhall_gateway_identifies_total", "counter", "Successful IDENTIFYs.", st.identifies),
            ("guildhall_gateway_resumes_total", "counter", "Successful RESUMEs.", st.resumes),
            (
                "guildhall_gateway_overflows_total",
                "counter",
                "Sessions closed because their outbound queue overflowed.",
                st.overflows,
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
    })
}
