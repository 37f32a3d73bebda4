//! HTTP abuse over real sockets: login attempt limits per account and per IP,
//! slowloris request heads (first and keep-alive), the per-IP connection cap and
//! JSON nesting depth.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;

/// A login attempt: (status, Retry-After header, body).
async fn login(s: &TestServer, login: &str, password: &str) -> (StatusCode, Option<String>, Value) {
    let res = s
        .http
        .post(format!("{}/auth/login", s.base))
        .json(&json!({ "login": login, "password": password }))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body = res.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

const GOOD: &str = "correct horse battery";

fn assert_limited(r: &(StatusCode, Option<String>, Value)) {
    assert_eq!(r.0, StatusCode::TOO_MANY_REQUESTS, "{}", r.2);
    let secs: u64 = r.1.as_deref().expect("Retry-After").parse().unwrap();
    assert!((1..=900).contains(&secs), "Retry-After {secs}");
    assert_eq!(r.2["message"], "You are being rate limited.");
    assert_eq!(r.2["global"], false);
    assert_eq!(r.2["code"], 0);
    let after = r.2["retry_after"].as_f64().unwrap();
    assert!(after > 0.0 && after <= 900.0, "{after}");
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_ip_alike_for_unknown_accounts() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        c.login_limit_per_account = 3;
        c.login_limit_per_ip = 8;
        c.login_limit_window_secs = 60;
    })
    .await;
    s.register("alice").await;
    s.register("bob").await;

    // A real account and a name nobody has get the same answers, in the same order.
    for name in ["alice", "nobody"] {
        for _ in 0..3 {
            let (status, retry, body) = login(&s, name, "wrong password").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["code"], 50035);
            assert_eq!(body["errors"]["login"]["_errors"][0]["code"], "INVALID_LOGIN");
            assert!(retry.is_none());
        }
        let limited = login(&s, name, "wrong password").await;
        assert_limited(&limited);
        // The account name is case-folded, and the right password does not get through.
        assert_limited(&login(&s, &name.to_uppercase(), GOOD).await);
    }
    assert_limited(&login(&s, "alice", GOOD).await);

    // Another account from the same IP (6 failures so far, limit 8) still logs in.
    let (status, _, body) = login(&s, "bob", GOOD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].is_string());
    for _ in 0..2 {
        assert_eq!(login(&s, "bob", "wrong").await.0, StatusCode::BAD_REQUEST);
    }
    // Eight failures from this IP: every account is refused now, bob included.
    assert_limited(&login(&s, "bob", GOOD).await);
    assert_limited(&login(&s, "someone-else", "x").await);
}

#[tokio::test]
async fn a_successful_login_resets_the_account_counter() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        c.login_limit_per_account = 3;
        c.login_limit_per_ip = 100;
    })
    .await;
    s.register("carol").await;
    for _ in 0..2 {
        assert_eq!(login(&s, "carol", "wrong").await.0, StatusCode::BAD_REQUEST);
    }
    assert_eq!(login(&s, "Carol", GOOD).await.0, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(login(&s, "carol", "wrong").await.0, StatusCode::BAD_REQUEST);
    }
    assert_eq!(login(&s, "carol", GOOD).await.0, StatusCode::OK, "two failures after a success are under the limit");
    for _ in 0..3 {
        assert_eq!(login(&s, "carol", "wrong").await.0, StatusCode::BAD_REQUEST);
    }
    assert_limited(&login(&s, "carol", GOOD).await);
}
