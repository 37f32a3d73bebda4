//! Accounts, guild creation and the message send/list path end to end.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn register_login_and_me() {
    let s = TestServer::start().await;
    let token = s.register("alice").await;
    let (status, me) = s.get("/users/@me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["discriminator"], "0");
    assert_eq!(me["mfa_enabled"], false);

    // Same token works with a Bot/Bearer-less raw header only; a tampered one fails.
    let (status, body) = s.get("/users/@me", &format!("{token}x")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], 0);

    let (status, body) = s
        .req(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"login": "alice@example.test", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], me["id"]);
    let (status, _) = s.get("/users/@me", body["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    for login in ["alice@example.test", "nobody@example.test"] {
        let (status, body) =
            s.req(Method::POST, "/auth/login", None, Some(json!({"login": login, "password": "wrong password"}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], 50035);
        assert_eq!(body["errors"]["login"]["_errors"][0]["code"], "INVALID_LOGIN");
    }

    let (status, body) = s
        .req(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"username": "alice", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["username"]["_errors"][0]["code"], "USERNAME_ALREADY_TAKEN");
}

#[tokio::test]
async fn bad_bodies_get_discord_errors_not_500() {
    let s = TestServer::start().await;
    let token = s.register("bob").await;
    let res = s
        .http
        .post(format!("{}/guilds", s.base))
        .header("Authorization", &token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], 50109);

    let (status, body) = s.post("/guilds", &token, json!({ "name": 5 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);
    assert!(body["errors"]["name"]["_errors"].is_array(), "{body}");

    let (status, body) = s.post("/guilds", &token, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["name"]["_errors"][0]["code"], "BASE_TYPE_REQUIRED", "{body}");

    let (status, body) = s.get("/nope/nothing", &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 0);

    let (status, body) = s.get("/guilds/notasnowflake", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);
}

#[tokio::test]
async fn send_and_list_messages_in_order() {
    let s = TestServer::start().await;
    let token = s.register("carol").await;
    let (gid, general) = s.guild(&token, "Carol's place").await;
    let (status, g) = s.get(&format!("/guilds/{gid}?with_counts=true"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(g["approximate_member_count"], 1);
    assert_eq!(g["roles"][0]["id"], gid.as_str(), "@everyone has the guild's id");

    let mut ids = Vec::new();
    for i in 0..120 {
        let (status, m) = s
            .post(
                &format!("/channels/{general}/messages"),
                &token,
                json!({ "content": format!("m{i}"), "nonce": format!("n{i}") }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{m}");
        assert_eq!(m["nonce"], format!("n{i}"));
        assert_eq!(m["content"], format!("m{i}"));
        for key in [
            "id",
            "channel_id",
            "author",
            "timestamp",
            "edited_timestamp",
            "tts",
            "mention_everyone",
            "mentions",
            "mention_roles",
            "attachments",
            "embeds",
            "pinned",
            "type",
            "flags",
        ] {
            assert!(m.get(key).is_some(), "message lacks {key}: {m}");
        }
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    let (status, page) = s.get(&format!("/channels/{general}/messages"), &token).await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_array().unwrap();
    assert_eq!(page.len(), 50);
    assert_eq!(page[0]["content"], "m119", "newest first");
    assert_eq!(page[49]["content"], "m70");

    let (_, before) = s.get(&format!("/channels/{general}/messages?before={}&limit=100", ids[70]), &token).await;
    let before = before.as_array().unwrap();
    assert_eq!(before.len(), 70);
    assert_eq!(before[0]["content"], "m69");

    let (_, after) = s.get(&format!("/channels/{general}/messages?after={}&limit=5", ids[10]), &token).await;
    let contents: Vec<&str> = after.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["m15", "m14", "m13", "m12", "m11"]);

    let (_, around) = s.get(&format!("/channels/{general}/messages?around={}&limit=4", ids[50]), &token).await;
    let contents: Vec<&str> = around.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["m51", "m50", "m49", "m48"]);

    let (status, body) = s.get(&format!("/channels/{general}/messages?limit=101"), &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);

    let (status, body) =
        s.post(&format!("/channels/{general}/messages"), &token, json!({ "content": "x".repeat(2001) })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["content"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH");
    let (status, body) = s.post(&format!("/channels/{general}/messages"), &token, json!({ "content": "  " })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50006);

    // A stranger can neither read nor post.
    let stranger = s.register("dave").await;
    let (status, body) = s.get(&format!("/channels/{general}/messages"), &stranger).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50001);
    let (status, body) = s.get(&format!("/guilds/{gid}"), &stranger).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10004);

    // Everything survives a restart.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (status, page) = s.get(&format!("/channels/{general}/messages?limit=1"), &token).await;
    assert_eq!(status, StatusCode::OK, "tokens and messages survive a restart: {page}");
    assert_eq!(page[0]["content"], "m119");
}
