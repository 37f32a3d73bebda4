//! Configuration: defaults, then a TOML file, then `GUILDHALL_*` environment
//! variables, then command-line flags — each later source overrides the earlier.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API and the gateway listen on.
    pub listen: SocketAddr,
    /// Base URL clients use; defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Gateway URL handed to clients; defaults to `ws://{listen}`.
    pub gateway_url: Option<String>,
    /// Where the embedded store and attachments live.
    pub data_dir: PathBuf,
    /// Argon2id memory cost in KiB and iterations.
    pub password_memory_kib: u32,
    pub password_iterations: u32,
    /// Largest upload per message, bytes.
    pub max_upload_bytes: usize,
    /// REST rate limits: requests per route bucket per window (0 = off),
    /// the window in ms, and requests per second per caller overall (0 = off).
    pub ratelimit_route_limit: u32,
    pub ratelimit_route_window_ms: u64,
    pub ratelimit_global_per_second: u32,
    /// Gateway: capacity of each session's outbound queue (a full queue ends the
    /// session) and how long a dropped session stays resumable, in seconds.
    pub gateway_queue_capacity: usize,
    pub gateway_resume_window_secs: u64,
    /// `SO_SNDBUF` of gateway sockets in bytes (Linux doubles it); 0 keeps the
    /// kernel's autotuning.
    pub gateway_send_buffer_bytes: usize,
    /// `TCP_NOTSENT_LOWAT` of gateway sockets (Linux): bytes written but not yet
    /// sent that a socket may hold before it stops taking writes; 0 = no limit.
    /// Without it an autotuned socket of a client that stopped reading takes up to
    /// `tcp_wmem`'s maximum (4 MiB by default) before it shows as full; with it, a
    /// stalled client holds about this much, while data in flight to a reading
    /// client is not limited.
    pub gateway_notsent_lowat_bytes: u32,
    /// Gateway: `heartbeat_interval` sent in HELLO, and how long after a missed
    /// interval a silent session is closed with 4009, in ms.
    pub gateway_heartbeat_interval_ms: u64,
    pub gateway_heartbeat_grace_ms: u64,
    /// Gateway: IDENTIFYs a bot may make per `gateway_session_start_reset_secs`
    /// (`session_start_limit.total`), and per 5 s per shard bucket
    /// (`max_concurrency`; 16 by default, as a self-hosted node has no reason to
    /// make a sharded bot start one shard at a time).
    pub gateway_session_start_total: u32,
    pub gateway_session_start_reset_secs: u64,
    pub gateway_max_concurrency: u32,
    /// Failed logins allowed per account name and per client IP within
    /// `login_limit_window_secs` before `POST /auth/login` answers 429 (0 = off).
    pub login_limit_per_account: u32,
    pub login_limit_per_ip: u32,
    pub login_limit_window_secs: u64,
    /// Time a request head has to arrive whole from its first byte (a new
    /// connection: from accept), in ms; slower clients are disconnected.
    pub header_timeout_ms: u64,
    /// Longest wait for the next bytes of a request body a handler is reading, in
    /// ms, and longest time for a whole body from its first read; slower bodies
    /// get 408 and the connection is closed.
    pub body_idle_timeout_ms: u64,
    pub body_timeout_ms: u64,
    /// Open connections (REST and gateway) allowed per client IP; more are
    /// answered 429 and closed (0 = no cap).
    pub max_connections_per_ip: u32,
    /// Snowflake worker id (0-31); distinct per node.
    pub worker_id: u8,
    /// Log format: "text" or "json".
    pub log_format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            public_url: None,
            gateway_url: None,
            data_dir: PathBuf::from("data"),
            password_memory_kib: 19 * 1024,
            password_iterations: 2,
            max_upload_bytes: 25 << 20,
            ratelimit_route_limit: 25,
            ratelimit_route_window_ms: 1000,
            ratelimit_global_per_second: 50,
            gateway_queue_capacity: 2048,
            gateway_resume_window_secs: 120,
            gateway_send_buffer_bytes: 0,
            gateway_notsent_lowat_bytes: 32 * 1024,
            gateway_heartbeat_interval_ms: guildhall_model::gateway::HEARTBEAT_INTERVAL_MS,
            gateway_heartbeat_grace_ms: 10_000,
            gateway_session_start_total: 1000,
            gateway_session_start_reset_secs: 24 * 60 * 60,
            gateway_max_concurrency: 16,
            login_limit_per_account: 5,
            login_limit_per_ip: 20,
            login_limit_window_secs: 15 * 60,
            header_timeout_ms: 10_000,
            body_idle_timeout_ms: 10_000,
            // A 25 MiB upload at 100 KB/s.
            body_timeout_ms: 300_000,
            // Generous: the bench opens 512 REST connections from 127.0.0.1.
            max_connections_per_ip: 1024,
            worker_id: 0,
            log_format: "text".into(),
        }
    }
}

impl Config {
    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen)).trim_end_matches('/').to_string()
    }
    pub fn gateway_url(&self) -> String {
        self.gateway_url.clone().unwrap_or_else(|| format!("ws://{}", self.listen)).trim_end_matches('/').to_string()
    }

    /// The IDENTIFY limits from this configuration.
    pub fn session_start_limits(&self) -> guildhall_runtime::session_starts::SessionStartLimits {
        guildhall_runtime::session_starts::SessionStartLimits {
            total: self.gateway_session_start_total,
            reset_after: std::time::Duration::from_secs(self.gateway_session_start_reset_secs.max(1)),
            max_concurrency: self.gateway_max_concurrency.max(1),
            ..Default::default()
        }
    }

    /// The gateway's tunables from this configuration.
    pub fn gateway_config(&self) -> guildhall_gateway::GatewayConfig {
        let mut session = guildhall_gateway::GatewayConfig::default().session;
        session.heartbeat_interval = std::time::Duration::from_millis(self.gateway_heartbeat_interval_ms.max(1));
        session.heartbeat_grace = std::time::Duration::from_millis(self.gateway_heartbeat_grace_ms);
        guildhall_gateway::GatewayConfig {
            session,
            queue_capacity: self.gateway_queue_capacity.max(1),
            resume_window: std::time::Duration::from_secs(self.gateway_resume_window_secs),
            send_buffer_size: (self.gateway_send_buffer_bytes > 0).then_some(self.gateway_send_buffer_bytes),
            notsent_lowat: (self.gateway_notsent_lowat_bytes > 0).then_some(self.gateway_notsent_lowat_bytes),
            ..guildhall_gateway::GatewayConfig::default()
        }
    }

    /// Loads the file (if any) and applies the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, String> {
        let mut cfg = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        fn parse<T: std::str::FromStr>(key: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{key}: invalid value {v:?}"))
        }
        if let Some(v) = get("GUILDHALL_LISTEN") {
            self.listen = parse("GUILDHALL_LISTEN", v)?;
        }
        if let Some(v) = get("GUILDHALL_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_URL") {
            self.gateway_url = Some(v);
        }
        if let Some(v) = get("GUILDHALL_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("GUILDHALL_PASSWORD_MEMORY_KIB") {
            self.password_memory_kib = parse("GUILDHALL_PASSWORD_MEMORY_KIB", v)?;
        }
        if let Some(v) = get("GUILDHALL_PASSWORD_ITERATIONS") {
            self.password_iterations = parse("GUILDHALL_PASSWORD_ITERATIONS", v)?;
        }
        if let Some(v) = get("GUILDHALL_MAX_UPLOAD_BYTES") {
            self.max_upload_bytes = parse("GUILDHALL_MAX_UPLOAD_BYTES", v)?;
        }
        if let Some(v) = get("GUILDHALL_RATELIMIT_ROUTE_LIMIT") {
            self.ratelimit_route_limit = parse("GUILDHALL_RATELIMIT_ROUTE_LIMIT", v)?;
        }
        if let Some(v) = get("GUILDHALL_RATELIMIT_ROUTE_WINDOW_MS") {
            self.ratelimit_route_window_ms = parse("GUILDHALL_RATELIMIT_ROUTE_WINDOW_MS", v)?;
        }
        if let Some(v) = get("GUILDHALL_RATELIMIT_GLOBAL_PER_SECOND") {
            self.ratelimit_global_per_second = parse("GUILDHALL_RATELIMIT_GLOBAL_PER_SECOND", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_QUEUE_CAPACITY") {
            self.gateway_queue_capacity = parse("GUILDHALL_GATEWAY_QUEUE_CAPACITY", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_RESUME_WINDOW_SECS") {
            self.gateway_resume_window_secs = parse("GUILDHALL_GATEWAY_RESUME_WINDOW_SECS", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_SEND_BUFFER_BYTES") {
            self.gateway_send_buffer_bytes = parse("GUILDHALL_GATEWAY_SEND_BUFFER_BYTES", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_NOTSENT_LOWAT_BYTES") {
            self.gateway_notsent_lowat_bytes = parse("GUILDHALL_GATEWAY_NOTSENT_LOWAT_BYTES", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_HEARTBEAT_INTERVAL_MS") {
            self.gateway_heartbeat_interval_ms = parse("GUILDHALL_GATEWAY_HEARTBEAT_INTERVAL_MS", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_HEARTBEAT_GRACE_MS") {
            self.gateway_heartbeat_grace_ms = parse("GUILDHALL_GATEWAY_HEARTBEAT_GRACE_MS", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_SESSION_START_TOTAL") {
            self.gateway_session_start_total = parse("GUILDHALL_GATEWAY_SESSION_START_TOTAL", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_SESSION_START_RESET_SECS") {
            self.gateway_session_start_reset_secs = parse("GUILDHALL_GATEWAY_SESSION_START_RESET_SECS", v)?;
        }
        if let Some(v) = get("GUILDHALL_GATEWAY_MAX_CONCURRENCY") {
            self.gateway_max_concurrency = parse("GUILDHALL_GATEWAY_MAX_CONCURRENCY", v)?;
        }
        if let Some(v) = get("GUILDHALL_LOGIN_LIMIT_PER_ACCOUNT") {
            self.login_limit_per_account = parse("GUILDHALL_LOGIN_LIMIT_PER_ACCOUNT", v)?;
        }
        if let Some(v) = get("GUILDHALL_LOGIN_LIMIT_PER_IP") {
            self.login_limit_per_ip = parse("GUILDHALL_LOGIN_LIMIT_PER_IP", v)?;
        }
        if let Some(v) = get("GUILDHALL_LOGIN_LIMIT_WINDOW_SECS") {
            self.login_limit_window_secs = parse("GUILDHALL_LOGIN_LIMIT_WINDOW_SECS", v)?;
        }
        if let Some(v) = get("GUILDHALL_HEADER_TIMEOUT_MS") {
            self.header_timeout_ms = parse("GUILDHALL_HEADER_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("GUILDHALL_BODY_IDLE_TIMEOUT_MS") {
            self.body_idle_timeout_ms = parse("GUILDHALL_BODY_IDLE_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("GUILDHALL_BODY_TIMEOUT_MS") {
            self.body_timeout_ms = parse("GUILDHALL_BODY_TIMEOUT_MS", v)?;
        }
        if let Some(v) = get("GUILDHALL_MAX_CONNECTIONS_PER_IP") {
            self.max_connections_per_ip = parse("GUILDHALL_MAX_CONNECTIONS_PER_IP", v)?;
        }
        if let Some(v) = get("GUILDHALL_WORKER_ID") {
            self.worker_id = parse("GUILDHALL_WORKER_ID", v)?;
        }
        if let Some(v) = get("GUILDHALL_LOG_FORMAT") {
            self.log_format = v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file_values() {
        let mut cfg: Config = toml::from_str("listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"").unwrap();
        cfg.apply_env(|k| (k == "GUILDHALL_LISTEN").then(|| "127.0.0.1:9001".to_string())).unwrap();
        assert_eq!(cfg.listen.port(), 9001);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
        assert!(cfg.apply_env(|k| (k == "GUILDHALL_WORKER_ID").then(|| "x".into())).is_err());
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    }

    #[test]
    fn gateway_socket_limits_reach_the_gateway_config() {
        let mut cfg = Config::default();
        assert_eq!(cfg.gateway_config().notsent_lowat, Some(32 * 1024), "bounded by default");
        assert_eq!(cfg.gateway_config().send_buffer_size, None, "autotuned by default");
        cfg.apply_env(|k| (k == "GUILDHALL_GATEWAY_NOTSENT_LOWAT_BYTES").then(|| "0".into())).unwrap();
        cfg.apply_env(|k| (k == "GUILDHALL_GATEWAY_SEND_BUFFER_BYTES").then(|| "65536".into())).unwrap();
        assert_eq!(cfg.gateway_config().notsent_lowat, None, "0 turns it off");
        assert_eq!(cfg.gateway_config().send_buffer_size, Some(65536));
    }
}
