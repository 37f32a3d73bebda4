//! REST rate limits with Discord's headers and 429 semantics (protocol notes 3.3).
//!
//! Two fixed-window limits per caller (the authenticated user, or the client IP
//! when there is no valid token and the server passes `ConnectInfo<PeerAddr>`;
//! anonymous requests of unknown origin are not limited):
//! - per route bucket: `route_limit` requests per `route_window_ms`, keyed by the
//!   caller, method + matched route template, and the top-level resource id in the
//!   path (`channel_id`, `guild_id`, or `webhook_id` + `webhook_token`), so each
//!   channel has its own bucket as on Discord;
//! - global: `global_per_second` requests per second across all routes.
//!
//! A window opens at the first request and closes `route_window_ms` later (how
//! Discord's `reset_after` behaves). Every limited response carries
//! `X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/-Bucket`; a refusal is 429
//! with `Retry-After` (integer seconds, rounded up) and the JSON body
//! `{message, retry_after, global, code}`, plus `X-RateLimit-Scope` and, only for
//! the global limit, `X-RateLimit-Global: true`.
//!
//! Counters live in 64 mutex-guarded shards of a map keyed by a seeded 64-bit
//! hash of (caller, route, resource); a shard drops expired windows at most every
//! few seconds when it is next touched, so memory follows the active callers and
//! no background task is needed. A check costs one token verification, two short
//! lock holds and no allocation outside the response headers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;
use crate::error::json_response;

/// Rate-limit settings; a zero limit turns that limit off.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Requests per route bucket per window (0 = no per-route limit, no headers).
    pub route_limit: u32,
    /// Length of a route bucket's window, in milliseconds.
    pub route_window_ms: u64,
    /// Requests per caller per second across all routes (0 = no global limit).
    pub global_per_second: u32,
}

impl Default for RateLimitConfig {
    /// Discord's global limit (50/s) and a per-route budget generous enough for a
    /// self-hosted server (25 per second per bucket).
    fn default() -> Self {
        RateLimitConfig { route_limit: 25, route_window_ms: 1000, global_per_second: 50 }
    }
}

impl RateLimitConfig {
    pub fn off() -> Self {
        RateLimitConfig { route_limit: 0, route_window_ms: 1000, global_per_second: 0 }
    }
}

const SHARDS: usize = 64;
/// How often a shard sweeps out expired windows.
const PRUNE_EVERY_MS: u64 = 5_000;
const GLOBAL_WINDOW_MS: u64 = 1_000;

/// Keys are already well-mixed 64-bit hashes; the map uses them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Copy)]
struct Window {
    /// Milliseconds since the limiter started at which the window closes.
    end_ms: u64,
    count: u32,
}

struct Shard {
    windows: HashMap<u64, Window, BuildHasherDefault<Prehashed>>,
    last_prune_ms: u64,
}

/// SplitMix64's finalizer: a strong 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a check decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Allowed; the bucket's state for the headers (`None` when route limits are off).
    Allowed(Option<BucketState>),
    /// Refused by the route bucket.
    Route(BucketState),
    /// Refused by the global limit; milliseconds until it resets.
    Global(u64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BucketState {
    pub limit: u32,
    pub remaining: u32,
    /// Milliseconds until the window closes.
    pub reset_after_ms: u64,
}

pub struct RateLimiter {
    config: RateLimitConfig,
    shards: Box<[Mutex<Shard>]>,
    seed: u64,
    started: Instant,
    /// Unix time in ms at `started`, for `X-RateLimit-Reset`.
    epoch_ms_at_start: u64,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> RateLimiter {
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(Shard { windows: HashMap::default(), last_prune_ms: 0 }))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let epoch_ms_at_start = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        RateLimiter {
            config,
            shards,
            seed: u64::from_le_bytes(crate::auth::random_bytes::<8>()),
            started: Instant::now(),
            epoch_ms_at_start,
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.route_limit > 0 || self.config.global_per_second > 0
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A seeded hash of bytes (route templates, path segments, addresses).
    pub fn hash_bytes(&self, parts: &[&[u8]]) -> u64 {
        let mut h = self.seed;
        for p in parts {
            for chunk in p.chunks(8) {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                h = mix(h ^ u64::from_le_bytes(b)).wrapping_add(chunk.len() as u64);
            }
            h = mix(h ^ 0xff);
        }
        h
    }

    /// Counts one request against `limit` in the window of `key`.
    fn hit(&self, key: u64, limit: u32, window_ms: u64, now: u64) -> Result<BucketState, u64> {
        let key = mix(key ^ self.seed);
        let mut shard = self.shards[(key >> 58) as usize % SHARDS].lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_sub(shard.last_prune_ms) >= PRUNE_EVERY_MS {
            shard.windows.retain(|_, w| w.end_ms > now);
            shard.last_prune_ms = now;
        }
        let w = shard.windows.entry(key).or_insert(Window { end_ms: 0, count: 0 });
        if w.end_ms <= now {
            *w = Window { end_ms: now + window_ms, count: 0 };
        }
        let reset_after_ms = w.end_ms - now;
        if w.count >= limit {
            return Err(reset_after_ms);
        }
        w.count += 1;
        Ok(BucketState { limit, remaining: limit - w.count, reset_after_ms })
    }

    /// Checks and counts a request of `caller` to bucket `route` on resource `major`.
    pub fn check(&self, caller: u64, route: u64, major: u64) -> Decision {
        self.check_at(caller, route, major, self.now_ms())
    }

    fn check_at(&self, caller: u64, route: u64, major: u64, now: u64) -> Decision {
        if self.config.global_per_second > 0
            && let Err(wait) = self.hit(mix(caller), self.config.global_per_second, GLOBAL_WINDOW_MS, now)
        {
            return Decision::Global(wait);
        }
        if self.config.route_limit == 0 {
            return Decision::Allowed(None);
        }
        let key = mix(mix(caller ^ route) ^ major) ^ 0x5bd1_e995;
        match self.hit(key, self.config.route_limit, self.config.route_window_ms.max(1), now) {
            Ok(state) => Decision::Allowed(Some(state)),
            Err(wait) => {
                Decision::Route(BucketState { limit: self.config.route_limit, remaining: 0, reset_after_ms: wait })
            }
        }
    }

    /// Windows currently tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).windows.len()).sum()
    }
}

/// The middleware's state: the app (to authenticate callers) and the limiter.
#[derive(Clone)]
pub struct RateLimitLayer {
    pub app: AppState,
    pub limiter: std::sync::Arc<RateLimiter>,
}

/// Strips the `/api/v10`, `/api/v9` or `/api` mount prefix from a matched path.
pub fn route_template(matched: &str) -> &str {
    for prefix in ["/api/v10", "/api/v9", "/api"] {
        if let Some(rest) = matched.strip_prefix(prefix)
            && rest.starts_with('/')
        {
            return rest;
        }
    }
    matched
}

/// The caller's identity: the user id of a valid token, else the client address
/// (`ConnectInfo<SocketAddr>`, when the server provides it). `None` when neither
/// is known: such requests are not limited, since one bucket shared by every
/// anonymous client would let one of them lock out all the others.
/// A verified token's user is left in the request's extensions for the `Caller`
/// extractor, so the token is verified once per request.
fn caller_key(layer: &RateLimitLayer, req: &mut Request) -> Option<u64> {
    let header = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(user) =
        header.map(crate::auth::token_from_header).and_then(|t| layer.app.tokens.verify(t, &layer.app.rt.directory))
    {
        let id = user.id.get();
        req.extensions_mut().insert(crate::auth::Verified(user));
        return Some(id);
    }
    let ConnectInfo(crate::PeerAddr(addr)) = req.extensions().get::<ConnectInfo<crate::PeerAddr>>()?;
    Some(match addr.ip() {
        std::net::IpAddr::V4(ip) => layer.limiter.hash_bytes(&[b"ip", &ip.octets()]),
        std::net::IpAddr::V6(ip) => layer.limiter.hash_bytes(&[b"ip", &ip.octets()]),
    })
}

/// The top-level resource of a request: the path segment(s) where the template
/// has `{channel_id}`, `{guild_id}` or `{webhook_id}` (+ `{webhook_token}`).
fn major_key(limiter: &RateLimiter, template: &str, path: &str) -> u64 {
    let mut found: [&[u8]; 2] = [b"", b""];
    let mut n = 0;
    // Align from the end: inside a nested router the path may lack the mount prefix.
    let (t_len, p_len) = (template.split('/').count(), path.split('/').count());
    if p_len < t_len {
        return 0;
    }
    for (t, p) in template.split('/').zip(path.split('/').skip(p_len - t_len)) {
        match t {
            "{channel_id}" | "{guild_id}" | "{webhook_id}" if n == 0 => {
                found[0] = p.as_bytes();
                n = 1;
                if t != "{webhook_id}" {
                    break;
                }
            }
            "{webhook_token}" if n == 1 => {
                found[1] = p.as_bytes();
                break;
            }
            _ => {}
        }
    }
    if n == 0 { 0 } else { limiter.hash_bytes(&found) }
}

struct Buf {
    b: [u8; 32],
    n: usize,
}

impl Buf {
    fn value(args: std::fmt::Arguments<'_>) -> HeaderValue {
        let mut buf = Buf { b: [0; 32], n: 0 };
        let mut cursor = &mut buf.b[..];
        let _ = cursor.write_fmt(args);
        buf.n = 32 - cursor.len();
        HeaderValue::from_bytes(&buf.b[..buf.n]).unwrap_or_else(|_| HeaderValue::from_static("0"))
    }
}

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const RESET_AFTER: HeaderName = HeaderName::from_static("x-ratelimit-reset-after");
const BUCKET: HeaderName = HeaderName::from_static("x-ratelimit-bucket");
const SCOPE: HeaderName = HeaderName::from_static("x-ratelimit-scope");
const GLOBAL: HeaderName = HeaderName::from_static("x-ratelimit-global");

fn bucket_headers(limiter: &RateLimiter, h: &mut HeaderMap, route: u64, st: BucketState) {
    let reset_ms = limiter.epoch_ms_at_start + limiter.now_ms() + st.reset_after_ms;
    h.insert(LIMIT, HeaderValue::from(st.limit));
    h.insert(REMAINING, HeaderValue::from(st.remaining));
    h.insert(RESET, Buf::value(format_args!("{}.{:03}", reset_ms / 1000, reset_ms % 1000)));
    h.insert(RESET_AFTER, Buf::value(format_args!("{}.{:03}", st.reset_after_ms / 1000, st.reset_after_ms % 1000)));
    h.insert(BUCKET, Buf::value(format_args!("{route:016x}")));
}

pub(crate) fn too_many(wait_ms: u64, global: bool) -> Response {
    let body = serde_json::json!({
        "message": "You are being rate limited.",
        "retry_after": wait_ms as f64 / 1000.0,
        "global": global,
        "code": guildhall_model::error_code::RATE_LIMITED,
    });
    let mut res = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
    let h = res.headers_mut();
    h.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait_ms.div_ceil(1000).max(1)));
    h.insert(SCOPE, HeaderValue::from_static(if global { "global" } else { "user" }));
    if global {
        h.insert(GLOBAL, HeaderValue::from_static("true"));
    }
    res
}

fn method_tag(m: &Method) -> &[u8] {
    m.as_str().as_bytes()
}

/// The axum middleware (`route_layer` on the API routes, so the matched path is known).
pub async fn middleware(State(layer): State<RateLimitLayer>, mut req: Request, next: Next) -> Response {
    if !layer.limiter.enabled() {
        return next.run(req).await;
    }
    let Some(matched) = req.extensions().get::<MatchedPath>() else {
        return next.run(req).await;
    };
    let limiter = &*layer.limiter;
    let route = limiter.hash_bytes(&[method_tag(req.method()), route_template(matched.as_str()).as_bytes()]);
    // Inside the nested API router the URI has lost its mount prefix; the matched
    // path has not. Compare both without it.
    let major = major_key(limiter, route_template(matched.as_str()), route_template(req.uri().path()));
    let Some(caller) = caller_key(&layer, &mut req) else {
        return next.run(req).await;
    };
    match limiter.check(caller, route, major) {
        Decision::Global(wait) => too_many(wait, true),
        Decision::Route(st) => {
            let mut res = too_many(st.reset_after_ms, false);
            bucket_headers(limiter, res.headers_mut(), route, st);
            res
        }
        Decision::Allowed(st) => {
            let mut res = next.run(req).await;
            if let Some(st) = st {
                bucket_headers(limiter, res.headers_mut(), route, st);
            }
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(route: u32, window: u64, global: u32) -> RateLimiter {
        RateLimiter::new(RateLimitConfig { route_limit: route, route_window_ms: window, global_per_second: global })
    }

    #[test]
    fn route_buckets_count_per_caller_route_and_resource() {
        let l = limiter(2, 60_000, 0);
        assert!(matches!(l.check(1, 10, 100), Decision::Allowed(Some(BucketState { remaining: 1, limit: 2, .. }))));
        assert!(matches!(l.check(1, 10, 100), Decision::Allowed(Some(BucketState { remaining: 0, .. }))));
        match l.check(1, 10, 100) {
            Decision::Route(st) => assert!(st.reset_after_ms > 59_000 && st.remaining == 0),
            other => panic!("{other:?}"),
        }
        // Another resource, route or caller has its own bucket.
        assert!(matches!(l.check(1, 10, 101), Decision::Allowed(_)));
        assert!(matches!(l.check(1, 11, 100), Decision::Allowed(_)));
        assert!(matches!(l.check(2, 10, 100), Decision::Allowed(_)));
    }

    #[test]
    fn global_limit_applies_across_routes_and_windows_reset() {
        let l = limiter(0, 1000, 3);
        for route in 0..3 {
            assert_eq!(l.check(7, route, 0), Decision::Allowed(None));
        }
        assert!(matches!(l.check(7, 99, 5), Decision::Global(ms) if ms <= 1000));
        let l = limiter(1, 30, 0);
        assert!(matches!(l.check(1, 1, 1), Decision::Allowed(_)));
        assert!(matches!(l.check(1, 1, 1), Decision::Route(_)));
        std::thread::sleep(std::time::Duration::from_millis(40));
        assert!(matches!(l.check(1, 1, 1), Decision::Allowed(_)));
    }

    #[test]
    fn expired_windows_are_pruned() {
        let l = limiter(5, 10, 0);
        for caller in 0..4000 {
            l.check_at(caller, 1, 1, 0);
        }
        assert_eq!(l.tracked(), 4000);
        // Later, other callers touch every shard; each sweeps its expired windows.
        for caller in 10_000..14_000 {
            l.check_at(caller, 1, 1, PRUNE_EVERY_MS + 20);
        }
        assert_eq!(l.tracked(), 4000);
    }

    #[test]
    fn templates_and_major_ids() {
        assert_eq!(route_template("/api/v10/channels/{channel_id}/messages"), "/channels/{channel_id}/messages");
        assert_eq!(route_template("/api/users/@me"), "/users/@me");
        assert_eq!(route_template("/apiary"), "/apiary");
        let l = limiter(1, 1000, 0);
        let t = "/api/v10/channels/{channel_id}/messages/{message_id}";
        let a = major_key(&l, t, "/api/v10/channels/1/messages/5");
        let b = major_key(&l, t, "/api/v10/channels/1/messages/6");
        let c = major_key(&l, t, "/api/v10/channels/2/messages/5");
        assert_eq!(a, b, "the message id is not part of the bucket");
        assert_ne!(a, c);
        let bare = route_template(t);
        assert_eq!(a, major_key(&l, bare, route_template("/channels/1/messages/7")), "mount prefixes do not matter");
        assert_eq!(major_key(&l, "/api/v10/users/@me", "/api/v10/users/@me"), 0);
        let w = "/api/webhooks/{webhook_id}/{webhook_token}";
        assert_ne!(major_key(&l, w, "/api/webhooks/1/a"), major_key(&l, w, "/api/webhooks/1/b"));
    }
}
