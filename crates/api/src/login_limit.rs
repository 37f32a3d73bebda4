//! Login attempt limits against password guessing: failed `POST /auth/login`
//! attempts are counted per account (the login name, case-folded) and per client
//! IP, each in a fixed window of `window_secs` that opens at the first failure.
//! Once a counter reaches its limit, further attempts are refused with 429 and
//! Discord's rate-limit body (`{message, retry_after, global, code}` plus
//! `Retry-After`) until the window ends — before the password is checked, so a
//! refused attempt costs no hashing. The key is the name as typed, whether or not
//! an account has it, so unknown accounts are counted and answered exactly like
//! real ones and the limit reveals nothing about which names exist. A successful
//! login clears its account's counter (not the IP's). A zero limit turns that
//! limit off.
//!
//! Counters live in one mutex-guarded map, swept of expired windows at most
//! once per window when a failure is recorded, so memory follows recent failures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Login attempt limits; see the module docs.
#[derive(Clone, Debug)]
pub struct LoginLimitConfig {
    /// Failed logins per account name per window (0 = no limit).
    pub per_account: u32,
    /// Failed logins per client IP per window (0 = no limit).
    pub per_ip: u32,
    /// Window length in seconds.
    pub window_secs: u64,
}

impl Default for LoginLimitConfig {
    /// 5 failures per account and 20 per IP per 15 minutes.
    fn default() -> Self {
        LoginLimitConfig { per_account: 5, per_ip: 20, window_secs: 15 * 60 }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Ip(IpAddr),
}

struct Window {
    start: Instant,
    failures: u32,
}

/// The failure counters.
pub struct LoginLimiter {
    config: LoginLimitConfig,
    state: Mutex<State>,
}

struct State {
    windows: HashMap<Key, Window>,
    last_sweep: Instant,
}

/// The case-folded account key of a login name.
fn account_key(login: &str) -> Key {
    Key::Account(login.trim().to_lowercase())
}

impl LoginLimiter {
    pub fn new(config: LoginLimitConfig) -> LoginLimiter {
        LoginLimiter { config, state: Mutex::new(State { windows: HashMap::new(), last_sweep: Instant::now() }) }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.config.window_secs.max(1))
    }

    fn keys(&self, login: &str, ip: Option<IpAddr>) -> [(Option<Key>, u32); 2] {
        [
            ((self.config.per_account > 0).then(|| account_key(login)), self.config.per_account),
            (ip.filter(|_| self.config.per_ip > 0).map(Key::Ip), self.config.per_ip),
        ]
    }

    /// `Err(wait)` when either counter is at its limit: how long until it resets.
    pub fn check(&self, login: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let window = self.window();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = None::<Duration>;
        for (key, limit) in self.keys(login, ip) {
            let Some(w) = key.and_then(|k| st.windows.get(&k)) else { continue };
            let elapsed = now.duration_since(w.start);
            if elapsed < window && w.failures >= limit {
                let left = window - elapsed;
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed attempt against the account name and the IP.
    pub fn failed(&self, login: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let window = self.window();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(st.last_sweep) >= window {
            st.windows.retain(|_, w| now.duration_since(w.start) < window);
            st.last_sweep = now;
        }
        for (key, _) in self.keys(login, ip) {
            let Some(key) = key else { continue };
            let w = st.windows.entry(key).or_insert(Window { start: now, failures: 0 });
            if now.duration_since(w.start) >= window {
                *w = Window { start: now, failures: 0 };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// A successful login clears the account's counter.
    pub fn succeeded(&self, login: &str) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.windows.remove(&account_key(login));
    }
}

/// The client's IP, when the server passes `ConnectInfo<PeerAddr>`.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<crate::PeerAddr>>();
        Ok(ClientIp(peer.map(|c| c.0.0.ip())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_and_ip_limits_count_failures_and_success_resets_the_account() {
        let l = LoginLimiter::new(LoginLimitConfig { per_account: 2, per_ip: 3, window_secs: 60 });
        let ip = Some("10.0.0.1".parse().unwrap());
        l.failed("Alice", ip);
        assert!(l.check("alice", ip).is_ok());
        l.failed("ALICE ", ip);
        assert!(l.check("alice", ip).is_err(), "case-folded account key");
        l.succeeded("alice");
        assert!(l.check("alice", ip).is_ok());
        l.failed("bob", ip);
        assert!(l.check("carol", ip).is_err(), "third failure from the IP");
        assert!(l.check("carol", Some("10.0.0.2".parse().unwrap())).is_ok());
    }
}
