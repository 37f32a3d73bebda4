//! Fuzz target: whole REST requests through the real router and handlers, in-process,
//! against a live runtime and store: every route (the table below), its JSON body
//! schema and validation, multipart uploads (`multipart/form-data` parsing, file and
//! `payload_json` parts), query strings and path ids. Any input must be answered
//! with a status below 500 (Discord errors for bad input), never a panic or a 500.
//!
//! Input layout: byte 0 picks the route, byte 1 the content type, byte 2 which path
//! ids are real (bit set) or taken from the input; then `query 0xFF body`.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use guildhall::{Config, Server};
use guildhall_api::PeerAddr;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Every route the API serves (method, path under /api/v10).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/applications"),
    ("POST", "/applications"),
    ("GET", "/applications/@me"),
    ("PATCH", "/applications/@me"),
    ("GET", "/oauth2/applications/@me"),
    ("GET", "/applications/{application_id}"),
    ("PATCH", "/applications/{application_id}"),
    ("POST", "/applications/{application_id}/bot"),
    ("PATCH", "/applications/{application_id}/bot"),
    ("POST", "/applications/{application_id}/bot/reset"),
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("GET", "/guilds/{guild_id}/bans"),
    ("GET", "/guilds/{guild_id}/bans/{user_id}"),
    ("PUT", "/guilds/{guild_id}/bans/{user_id}"),
    ("DELETE", "/guilds/{guild_id}/bans/{user_id}"),
    ("GET", "/guilds/{guild_id}/channels"),
    ("POST", "/guilds/{guild_id}/channels"),
    ("PATCH", "/guilds/{guild_id}/channels"),
    ("GET", "/channels/{channel_id}"),
    ("PATCH", "/channels/{channel_id}"),
    ("DELETE", "/channels/{channel_id}"),
    ("PUT", "/channels/{channel_id}/permissions/{overwrite_id}"),
    ("DELETE", "/channels/{channel_id}/permissions/{overwrite_id}"),
    ("POST", "/users/@me/channels"),
    ("PATCH", "/users/@me"),
    ("POST", "/guilds"),
    ("GET", "/guilds/{guild_id}"),
    ("PATCH", "/guilds/{guild_id}"),
    ("DELETE", "/guilds/{guild_id}"),
    ("GET", "/channels/{channel_id}/invites"),
    ("POST", "/channels/{channel_id}/invites"),
    ("GET", "/guilds/{guild_id}/invites"),
    ("GET", "/invites/{code}"),
    ("POST", "/invites/{code}"),
    ("DELETE", "/invites/{code}"),
    ("GET", "/guilds/{guild_id}/members"),
    ("GET", "/guilds/{guild_id}/members/search"),
    ("PATCH", "/guilds/{guild_id}/members/@me"),
    ("GET", "/guilds/{guild_id}/members/{user_id}"),
    ("PATCH", "/guilds/{guild_id}/members/{user_id}"),
    ("DELETE", "/guilds/{guild_id}/members/{user_id}"),
    ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"),
    ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"),
    ("DELETE", "/users/@me/guilds/{guild_id}"),
    ("GET", "/users/@me/guilds/{guild_id}/member"),
    ("GET", "/channels/{channel_id}/messages"),
    ("POST", "/channels/{channel_id}/messages"),
    ("GET", "/channels/{channel_id}/messages/{message_id}"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"),
    ("POST", "/channels/{channel_id}/messages/bulk-delete"),
    ("POST", "/channels/{channel_id}/messages/bulk_delete"),
    ("POST", "/channels/{channel_id}/typing"),
    ("GET", "/gateway"),
    ("GET", "/gateway/bot"),
    ("GET", "/oauth2/authorize"),
    ("POST", "/oauth2/authorize"),
    ("GET", "/channels/{channel_id}/messages/pins"),
    ("PUT", "/channels/{channel_id}/messages/pins/{message_id}"),
    ("DELETE", "/channels/{channel_id}/messages/pins/{message_id}"),
    ("GET", "/channels/{channel_id}/pins"),
    ("PUT", "/channels/{channel_id}/pins/{message_id}"),
    ("DELETE", "/channels/{channel_id}/pins/{message_id}"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions"),
    ("GET", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}"),
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}"),
    ("GET", "/guilds/{guild_id}/roles"),
    ("POST", "/guilds/{guild_id}/roles"),
    ("PATCH", "/guilds/{guild_id}/roles"),
    ("GET", "/guilds/{guild_id}/roles/{role_id}"),
    ("PATCH", "/guilds/{guild_id}/roles/{role_id}"),
    ("DELETE", "/guilds/{guild_id}/roles/{role_id}"),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads"),
    ("POST", "/channels/{channel_id}/threads"),
    ("GET", "/channels/{channel_id}/thread-members"),
    ("GET", "/channels/{channel_id}/thread-members/{user_id}"),
    ("PUT", "/channels/{channel_id}/thread-members/{user_id}"),
    ("DELETE", "/channels/{channel_id}/thread-members/{user_id}"),
    ("GET", "/guilds/{guild_id}/threads/active"),
    ("GET", "/channels/{channel_id}/threads/archived/public"),
    ("GET", "/users/@me"),
    ("GET", "/users/{user_id}"),
    ("GET", "/users/@me/guilds"),
];

const BOUNDARY: &str = "guildhallfuzzboundary";

/// Real ids of the fuzzing world: a user who owns a guild with a channel, a
/// message, a role, an invite and an application.
struct World {
    router: Router,
    token: String,
    user: String,
    guild: String,
    channel: String,
    message: String,
    role: String,
    invite: String,
    application: String,
}

struct Fuzzer {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    world: World,
    worlds: u64,
}

fn fuzzer() -> &'static Mutex<Fuzzer> {
    static F: OnceLock<Mutex<Fuzzer>> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            password_memory_kib: 8,
            password_iterations: 1,
            ratelimit_route_limit: 0,
            ratelimit_global_per_second: 0,
            login_limit_per_account: 0,
            login_limit_per_ip: 0,
            ..Config::default()
        };
        let server = rt.block_on(Server::bind(config)).unwrap();
        let router = server.router();
        // The server is kept alive (its runtime, actors and store) for the whole run.
        std::mem::forget(server);
        let world = rt.block_on(build_world(router, 0));
        Mutex::new(Fuzzer { rt, _dir: dir, world, worlds: 0 })
    })
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    let mut req = req.body(Body::from(body)).unwrap();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, bytes.to_vec())
}

async fn json(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, bytes) = call(
        router,
        method,
        &format!("/api/v10{path}"),
        token,
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await;
    assert!(status.is_success(), "setting up: {method} {path}: {status} {}", String::from_utf8_lossy(&bytes));
    if bytes.is_empty() { serde_json::Value::Null } else { serde_json::from_slice(&bytes).unwrap() }
}

fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

async fn build_world(router: Router, n: u64) -> World {
    // Unique even if a fuzzed request registered or renamed a user to a name we would pick.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let name = format!("w{n}t{nanos:x}");
    let reg = json(
        &router,
        "POST",
        "/auth/register",
        None,
        serde_json::json!({ "username": name, "password": "correct horse battery", "email": format!("{name}@example.test"), "consent": true }),
    )
    .await;
    let token = reg["token"].as_str().unwrap().to_string();
    let t = Some(token.as_str());
    let user = id(&json(&router, "GET", "/users/@me", t, serde_json::Value::Null).await);
    let guild = json(&router, "POST", "/guilds", t, serde_json::json!({ "name": name })).await;
    let channel = guild["system_channel_id"].as_str().unwrap().to_string();
    let guild = id(&guild);
    let message =
        id(&json(&router, "POST", &format!("/channels/{channel}/messages"), t, serde_json::json!({ "content": "hi" }))
            .await);
    let role =
        id(&json(&router, "POST", &format!("/guilds/{guild}/roles"), t, serde_json::json!({ "name": "r" })).await);
    let invite = json(&router, "POST", &format!("/channels/{channel}/invites"), t, serde_json::json!({})).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let application = id(&json(&router, "POST", "/applications", t, serde_json::json!({ "name": name })).await);
    World { router, token, user, guild, channel, message, role, invite, application }
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"=&-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (method, template) = ROUTES[data[0] as usize % ROUTES.len()];
    let ct = match data[1] % 4 {
        0 => Some("application/json".to_string()),
        1 => Some(format!("multipart/form-data; boundary={BOUNDARY}")),
        2 => None,
        _ => Some("text/plain".to_string()),
    };
    let real = data[2];
    let rest = &data[3..];
    let (query, body) = match rest.iter().position(|&b| b == 0xFF) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let mut f = fuzzer().lock().unwrap();
    let f = &mut *f;
    let w = &f.world;
    // A path id that is not real: a number from the query bytes (snowflake overflow,
    // zero, unknown ids) or a non-number.
    let fake = |k: u8| -> String {
        match query.get(k as usize).copied().unwrap_or(0) % 4 {
            0 => u64::MAX.to_string(),
            1 => "0".into(),
            2 => "18446744073709551616".into(),
            _ => "x%00y".into(),
        }
    };
    let pick = |bit: u8, v: &str| if real & (1 << bit) == 0 { v.to_string() } else { fake(bit) };
    let path = template
        .replace("{guild_id}", &pick(0, &w.guild))
        .replace("{channel_id}", &pick(1, &w.channel))
        .replace("{message_id}", &pick(2, &w.message))
        .replace("{user_id}", &pick(3, &w.user))
        .replace("{role_id}", &pick(4, &w.role))
        .replace("{overwrite_id}", &pick(4, &w.role))
        .replace("{code}", &pick(5, &w.invite))
        .replace("{application_id}", &pick(6, &w.application))
        .replace("{emoji}", if real & 0x80 == 0 { "%F0%9F%91%8D" } else { "name:123" });
    let uri =
        if query.is_empty() { format!("/api/v10{path}") } else { format!("/api/v10{path}?{}", percent_encode(query)) };
    let token = w.token.clone();
    let router = w.router.clone();
    let (status, bytes) = f.rt.block_on(call(&router, method, &uri, Some(&token), ct.as_deref(), body.to_vec()));
    assert!(status.as_u16() < 500, "{method} {uri} answered {status}: {}", String::from_utf8_lossy(&bytes));
    // A request that took the world apart (guild deleted, token rotated by a password
    // change or a bot token reset, the user left) gets a new world, so later inputs
    // keep reaching the handlers' deeper paths.
    let broken = status == StatusCode::UNAUTHORIZED
        || (status.is_success()
            && matches!(
                (method, template),
                ("DELETE", "/guilds/{guild_id}")
                    | ("DELETE", "/users/@me/guilds/{guild_id}")
                    | ("DELETE", "/channels/{channel_id}")
                    | ("DELETE", "/channels/{channel_id}/messages/{message_id}")
                    | ("DELETE", "/guilds/{guild_id}/roles/{role_id}")
                    | ("DELETE", "/invites/{code}")
                    | ("PATCH", "/users/@me")
            ));
    if broken {
        f.worlds += 1;
        let n = f.worlds;
        f.world = f.rt.block_on(build_world(router, n));
    }
});
