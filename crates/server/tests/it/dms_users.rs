//! DMs, group DMs and `PATCH /users/@me` over REST.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestServer;

fn assert_err(res: &(StatusCode, Value), status: StatusCode, code: u64) {
    assert_eq!(res.0, status, "{}", res.1);
    assert_eq!(res.1["code"], code, "{}", res.1);
}

#[tokio::test]
async fn dm_open_reuse_send_and_close() {
    let s = TestServer::start().await;
    let (alice, alice_id) = s.user("alice").await;
    let (bob, bob_id) = s.user("bob").await;
    let carol = s.register("carol").await;

    let (status, dm) = s.post("/users/@me/channels", &alice, json!({ "recipient_id": bob_id })).await;
    assert_eq!(status, StatusCode::OK, "{dm}");
    assert_eq!(dm["type"], 1);
    let recipients = dm["recipients"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "the other user only");
    assert_eq!(recipients[0]["id"], bob_id.as_str());
    let id = dm["id"].as_str().unwrap().to_string();

    // Either side gets the same channel back.
    let (_, again) = s.post("/users/@me/channels", &alice, json!({ "recipient_id": bob_id })).await;
    assert_eq!(again["id"], id.as_str());
    let (_, theirs) = s.post("/users/@me/channels", &bob, json!({ "recipient_id": alice_id })).await;
    assert_eq!(theirs["id"], id.as_str());
    assert_eq!(theirs["recipients"][0]["id"], alice_id.as_str());

    let (status, got) = s.get(&format!("/channels/{id}"), &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["recipients"][0]["id"], alice_id.as_str());
    let res = s.get(&format!("/channels/{id}"), &carol).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50001);

    let (status, _) = s.post(&format!("/channels/{id}/messages"), &alice, json!({ "content": "hi bob" })).await;
    assert_eq!(status, StatusCode::OK);
    let (_, msgs) = s.get(&format!("/channels/{id}/messages"), &bob).await;
    assert_eq!(msgs[0]["content"], "hi bob");

    // DMs have no guild-only features.
    let res = s.post(&format!("/channels/{id}/invites"), &alice, json!({})).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50003);
    let res = s.patch(&format!("/channels/{id}"), &alice, json!({ "name": "x" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50003);

    // Failures.
    let res = s.post("/users/@me/channels", &alice, json!({ "recipient_id": "1234567890123" })).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10013);
    let res = s.post("/users/@me/channels", &alice, json!({ "recipient_id": alice_id })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50007);
    let res = s.post("/users/@me/channels", &alice, json!({})).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.post("/users/@me/channels", &alice, json!({ "recipient_id": "abc" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    // Closing a DM returns it and keeps its history.
    let (status, closed) = s.delete(&format!("/channels/{id}"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(closed["id"], id.as_str());

    // DMs survive a restart, and are still found again rather than duplicated.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (_, again) = s.post("/users/@me/channels", &bob, json!({ "recipient_id": alice_id })).await;
    assert_eq!(again["id"], id.as_str());
    let (_, msgs) = s.get(&format!("/channels/{id}/messages"), &bob).await;
    assert_eq!(msgs[0]["content"], "hi bob");
}

#[tokio::test]
async fn group_dm_create_rename_leave() {
    let s = TestServer::start().await;
    let (alice, alice_id) = s.user("alice").await;
    let (bob, bob_id) = s.user("bob").await;
    let (carol, carol_id) = s.user("carol").await;
    let (status, g) = s.post("/users/@me/channels", &alice, json!({ "recipients": [bob_id, carol_id] })).await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(g["type"], 3);
    assert_eq!(g["owner_id"], alice_id.as_str());
    assert_eq!(g["recipients"].as_array().unwrap().len(), 2);
    let id = g["id"].as_str().unwrap().to_string();

    let (status, renamed) = s.patch(&format!("/channels/{id}"), &bob, json!({ "name": "trio" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["name"], "trio");
    let (status, _) = s.post(&format!("/channels/{id}/messages"), &carol, json!({ "content": "hey" })).await;
    assert_eq!(status, StatusCode::OK);

    // The owner leaves: ownership passes on, and the channel is gone for them.
    let (status, _) = s.delete(&format!("/channels/{id}"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let res = s.get(&format!("/channels/{id}"), &alice).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50001);
    let (_, g) = s.get(&format!("/channels/{id}"), &bob).await;
    assert_ne!(g["owner_id"], alice_id.as_str());
    assert_eq!(g["recipients"].as_array().unwrap().len(), 1);

    let res = s.post("/users/@me/channels", &alice, json!({ "recipients": ["1234567890123"] })).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10013);
    let many: Vec<String> = std::iter::repeat_n(bob_id.clone(), 3).collect();
    let (status, _) = s.post("/users/@me/channels", &alice, json!({ "recipients": many })).await;
    assert_eq!(status, StatusCode::OK, "duplicates collapse");
}

#[tokio::test]
async fn patch_me_profile_and_password() {
    let s = TestServer::start().await;
    let (alice, alice_id) = s.user("alice").await;
    s.register("taken").await;

    let (status, me) = s
        .patch(
            "/users/@me",
            &alice,
            json!({ "global_name": "Alice A.", "avatar": "data:image/gif;base64,R0lGODlhAQABAAAAACw=" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["global_name"], "Alice A.");
    assert!(me["avatar"].as_str().unwrap().starts_with("a_"), "animated avatars get the a_ prefix");
    assert!(me.get("token").is_none());
    let (_, other_view) = s.get(&format!("/users/{alice_id}"), &alice).await;
    assert_eq!(other_view["global_name"], "Alice A.");

    // Username changes need the password and a free, valid name.
    let res = s.patch("/users/@me", &alice, json!({ "username": "alice2" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    assert!(res.1["errors"]["password"].is_object());
    let res = s.patch("/users/@me", &alice, json!({ "username": "alice2", "password": "wrong password" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.patch("/users/@me", &alice, json!({ "username": "taken", "password": "correct horse battery" })).await;
    assert_eq!(res.1["errors"]["username"]["_errors"][0]["code"], "USERNAME_ALREADY_TAKEN", "{}", res.1);
    let res =
        s.patch("/users/@me", &alice, json!({ "username": "bad name!", "password": "correct horse battery" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.patch("/users/@me", &alice, json!({ "avatar": "http://example.com/a.png" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.patch("/users/@me", &alice, json!({ "global_name": "g".repeat(33) })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let (status, me) =
        s.patch("/users/@me", &alice, json!({ "username": "Alice2", "password": "correct horse battery" })).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "alice2");
    let (status, _) = s
        .req(Method::POST, "/auth/login", None, Some(json!({ "login": "alice2", "password": "correct horse battery" })))
        .await;
    assert_eq!(status, StatusCode::OK, "log in with the new name");

    // A password change revokes old tokens and hands out a new one.
    let res =
        s.patch("/users/@me", &alice, json!({ "new_password": "short", "password": "correct horse battery" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let (status, me) = s
        .patch(
            "/users/@me",
            &alice,
            json!({ "new_password": "new horse battery", "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let fresh = me["token"].as_str().unwrap().to_string();
    let (status, _) = s.get("/users/@me", &alice).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token is dead");
    let (status, _) = s.get("/users/@me", &fresh).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .req(Method::POST, "/auth/login", None, Some(json!({ "login": "alice2", "password": "new horse battery" })))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Persisted.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (status, me) = s.get("/users/@me", &fresh).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "alice2");
    assert_eq!(me["global_name"], "Alice A.");
}
