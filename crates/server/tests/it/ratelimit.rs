//! REST rate limits over HTTP: Discord's headers on normal responses, 429 with
//! both `Retry-After` and `retry_after`, per-resource buckets, the global limit,
//! and recovery after the reset.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::TestServer;

async fn get_raw(s: &TestServer, path: &str, token: &str) -> reqwest::Response {
    s.http.get(format!("{}{}", s.base, path)).header("Authorization", token).send().await.unwrap()
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn route_limit_answers_429_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| {
        c.ratelimit_route_limit = 3;
        c.ratelimit_route_window_ms = 1500;
        c.ratelimit_global_per_second = 0;
    })
    .await;
    let token = s.register("limited").await;
    let other = s.register("unlimited").await;

    let mut bucket = None;
    for i in 0..3 {
        let res = get_raw(&s, "/users/@me", &token).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "x-ratelimit-limit"), Some("3"));
        assert_eq!(header(&res, "x-ratelimit-remaining"), Some((2 - i).to_string().as_str()));
        let after: f64 = header(&res, "x-ratelimit-reset-after").unwrap().parse().unwrap();
        assert!(after > 0.0 && after <= 1.5, "{after}");
        let reset: f64 = header(&res, "x-ratelimit-reset").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!((reset - now - after).abs() < 1.0, "reset {reset} is about now + reset-after");
        let b = header(&res, "x-ratelimit-bucket").unwrap().to_string();
        assert!(!b.is_empty());
        assert!(bucket.get_or_insert(b.clone()) == &b, "one bucket for the route");
        assert!(header(&res, "x-ratelimit-global").is_none());
        assert!(header(&res, "x-ratelimit-scope").is_none());
    }
    let res = get_raw(&s, "/users/@me", &token).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_header: u64 = header(&res, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_header), "{retry_header}");
    assert_eq!(header(&res, "x-ratelimit-scope"), Some("user"));
    assert_eq!(header(&res, "x-ratelimit-remaining"), Some("0"));
    assert!(header(&res, "x-ratelimit-global").is_none(), "only a global limit sends X-RateLimit-Global");
    assert_eq!(header(&res, "content-type"), Some("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!(retry_after > 0.0 && retry_after <= 1.5, "{retry_after}");

    // Other callers and other routes are not affected.
    assert_eq!(get_raw(&s, "/users/@me", &other).await.status(), StatusCode::OK);
    assert_eq!(get_raw(&s, "/users/@me/guilds", &token).await.status(), StatusCode::OK);
    // The /api/v9 mount shares the bucket.
    let v9 =
        s.http.get(format!("http://{}/api/v9/users/@me", s.addr)).header("Authorization", &token).send().await.unwrap();
    assert_eq!(v9.status(), StatusCode::TOO_MANY_REQUESTS);

    tokio::time::sleep(Duration::from_secs_f64(retry_after + 0.05)).await;
    let res = get_raw(&s, "/users/@me", &token).await;
    assert_eq!(res.status(), StatusCode::OK, "the window has reset");
    assert_eq!(header(&res, "x-ratelimit-remaining"), Some("2"));
}

#[tokio::test]
async fn buckets_are_per_channel() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| {
        c.ratelimit_route_limit = 2;
        c.ratelimit_route_window_ms = 60_000;
        c.ratelimit_global_per_second = 0;
    })
    .await;
    let token = s.register("chatty").await;
    let (_, general) = s.guild(&token, "Limits").await;
    let path = format!("/channels/{general}/messages");
    let first = get_raw(&s, &path, &token).await;
    assert_eq!(first.status(), StatusCode::OK);
    let bucket = header(&first, "x-ratelimit-bucket").unwrap().to_string();
    assert_eq!(get_raw(&s, &path, &token).await.status(), StatusCode::OK);
    assert_eq!(get_raw(&s, &path, &token).await.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another channel id: its own bucket (the route's bucket id is the same).
    let res = get_raw(&s, "/channels/123456789/messages", &token).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&res, "x-ratelimit-remaining"), Some("1"));
    assert_eq!(header(&res, "x-ratelimit-bucket"), Some(bucket.as_str()));
}

#[tokio::test]
async fn global_limit_is_marked_global() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| {
        c.ratelimit_route_limit = 0;
        c.ratelimit_global_per_second = 4;
    })
    .await;
    let token = s.register("globetrotter").await;
    let paths = ["/users/@me", "/users/@me/guilds", "/gateway/bot", "/users/@me"];
    // Requests may straddle a one-second window; retry the burst once if so.
    let mut limited = None;
    for _ in 0..2 {
        let mut statuses = Vec::new();
        for p in paths {
            let res = get_raw(&s, p, &token).await;
            assert!(header(&res, "x-ratelimit-limit").is_none(), "no route limit, no bucket headers");
            statuses.push(res.status());
        }
        let res = get_raw(&s, "/users/@me", &token).await;
        if statuses.iter().all(|s| *s == StatusCode::OK) && res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let res = limited.expect("the fifth request in a second is refused");
    assert_eq!(header(&res, "x-ratelimit-global"), Some("true"));
    assert_eq!(header(&res, "x-ratelimit-scope"), Some("global"));
    assert!(header(&res, "retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["global"], true);
    let wait = body["retry_after"].as_f64().unwrap();
    assert!(wait > 0.0 && wait <= 1.0);
    tokio::time::sleep(Duration::from_secs_f64(wait + 0.05)).await;
    assert_eq!(get_raw(&s, "/users/@me", &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn default_test_servers_send_headers_without_limiting() {
    let s = TestServer::start().await;
    let token = s.register("headers").await;
    let res = get_raw(&s, "/users/@me", &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "x-ratelimit-limit").is_some());
    assert!(header(&res, "x-ratelimit-remaining").is_some());
    assert!(header(&res, "x-ratelimit-reset-after").is_some());
    assert!(header(&res, "x-ratelimit-bucket").is_some());
}
