//! Invites: create, resolve (with and without a token), accept (joining the
//! guild), list, delete, expiry, use limits and persistence.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn create_resolve_and_join() {
    let s = TestServer::start().await;
    let (owner, owner_id) = s.user("owner").await;
    let (gid, general) = s.guild(&owner, "Invite Place").await;

    let (status, inv) = s.post(&format!("/channels/{general}/invites"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    let code = inv["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(inv["max_age"], 86400);
    assert_eq!(inv["max_uses"], 0);
    assert_eq!(inv["uses"], 0);
    assert_eq!(inv["temporary"], false);
    assert_eq!(inv["guild"]["id"], gid.as_str());
    assert_eq!(inv["channel"]["id"], general.as_str());
    assert_eq!(inv["inviter"]["id"], owner_id.as_str());
    assert!(inv["expires_at"].is_string());

    // Not unique: the same settings hand back the same unused invite; unique makes a new one.
    let (_, again) = s.post(&format!("/channels/{general}/invites"), &owner, json!({})).await;
    assert_eq!(again["code"], code.as_str());
    let (_, fresh) = s.post(&format!("/channels/{general}/invites"), &owner, json!({ "unique": true })).await;
    assert_ne!(fresh["code"], code.as_str());

    // Anyone can resolve it, even without a token.
    let (status, anon) = s.req(Method::GET, &format!("/invites/{code}?with_counts=true"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{anon}");
    assert_eq!(anon["code"], code.as_str());
    assert_eq!(anon["approximate_member_count"], 1);
    assert!(anon.get("uses").is_none(), "no metadata on GET /invites");

    let guest = s.register("guest").await;
    let (status, _) = s.get(&format!("/guilds/{gid}"), &guest).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, joined) = s.post(&format!("/invites/{code}"), &guest, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["guild"]["id"], gid.as_str());
    assert_eq!(joined["new_member"], true);
    let (status, g) = s.get(&format!("/guilds/{gid}?with_counts=true"), &guest).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(g["approximate_member_count"], 2);
    let (_, mine) = s.get("/users/@me/guilds", &guest).await;
    assert!(mine.as_array().unwrap().iter().any(|g| g["id"] == gid.as_str()));
    // The new member can post in #general.
    let (status, _) = s.post(&format!("/channels/{general}/messages"), &guest, json!({ "content": "hi" })).await;
    assert_eq!(status, StatusCode::OK);

    // Joining twice is harmless and does not count a use.
    let (status, twice) = s.post(&format!("/invites/{code}"), &guest, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(twice["new_member"], false);
    let (status, list) = s.get(&format!("/channels/{general}/invites"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    let listed = list.as_array().unwrap().iter().find(|i| i["code"] == code.as_str()).unwrap().clone();
    assert_eq!(listed["uses"], 1);
    let (status, glist) = s.get(&format!("/guilds/{gid}/invites"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(glist.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn invite_errors_and_permissions() {
    let s = TestServer::start().await;
    let owner = s.register("owner").await;
    let (gid, general) = s.guild(&owner, "Errors").await;
    let (_, inv) = s.post(&format!("/channels/{general}/invites"), &owner, json!({ "max_age": 0 })).await;
    let code = inv["code"].as_str().unwrap().to_string();
    assert_eq!(inv["expires_at"], serde_json::Value::Null, "max_age 0 never expires");

    for (body, field) in [
        (json!({ "max_age": 604801 }), "max_age"),
        (json!({ "max_age": -1 }), "max_age"),
        (json!({ "max_uses": 101 }), "max_uses"),
    ] {
        let (status, err) = s.post(&format!("/channels/{general}/invites"), &owner, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["code"], 50035);
        assert!(err["errors"][field]["_errors"].is_array(), "{err}");
    }
    let (status, err) = s.post(&format!("/channels/{general}/invites"), &owner, json!({ "max_uses": "x" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["code"], 50035);

    for (method, path) in
        [(Method::GET, "/invites/nosuchcd"), (Method::POST, "/invites/nosuchcd"), (Method::DELETE, "/invites/nosuchcd")]
    {
        let (status, err) = s.req(method, path, Some(&owner), Some(json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["code"], 10006);
    }
    let (status, err) = s.post("/channels/1234567890123/invites", &owner, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], 10003);

    // A stranger cannot create or list invites; a plain member cannot list or delete.
    let stranger = s.register("stranger").await;
    let (status, err) = s.post(&format!("/channels/{general}/invites"), &stranger, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["code"], 50001);
    let (status, err) = s.get(&format!("/guilds/{gid}/invites"), &stranger).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], 10004);
    let (status, err) = s.delete(&format!("/invites/{code}"), &stranger).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["code"], 50001);

    let member = s.register("member").await;
    let (status, _) = s.post(&format!("/invites/{code}"), &member, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, mine) = s.post(&format!("/channels/{general}/invites"), &member, json!({})).await;
    assert_eq!(status, StatusCode::OK, "@everyone has CREATE_INSTANT_INVITE");
    for path in [format!("/channels/{general}/invites"), format!("/guilds/{gid}/invites")] {
        let (status, err) = s.get(&path, &member).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(err["code"], 50013);
    }
    let (status, err) = s.delete(&format!("/invites/{code}"), &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(err["code"], 50013);

    // The owner deletes both; the response is the invite, and it is gone after.
    for c in [code.clone(), mine["code"].as_str().unwrap().to_string()] {
        let (status, deleted) = s.delete(&format!("/invites/{c}"), &owner).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(deleted["code"], c.as_str());
        let (status, err) = s.req(Method::GET, &format!("/invites/{c}"), None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["code"], 10006);
    }
}

#[tokio::test]
async fn use_limits_expiry_and_restart() {
    let s = TestServer::start().await;
    let owner = s.register("owner").await;
    let (gid, general) = s.guild(&owner, "Limits").await;

    let (_, once) = s.post(&format!("/channels/{general}/invites"), &owner, json!({ "max_uses": 1 })).await;
    let once = once["code"].as_str().unwrap().to_string();
    let a = s.register("first").await;
    let (status, _) = s.post(&format!("/invites/{once}"), &a, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let b = s.register("second").await;
    let (status, err) = s.post(&format!("/invites/{once}"), &b, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a used-up invite is gone");
    assert_eq!(err["code"], 10006);

    let (_, short) = s.post(&format!("/channels/{general}/invites"), &owner, json!({ "max_age": 1 })).await;
    let short = short["code"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, err) = s.post(&format!("/invites/{short}"), &b, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "expired");
    assert_eq!(err["code"], 10006);

    let (_, keep) =
        s.post(&format!("/channels/{general}/invites"), &owner, json!({ "max_age": 0, "max_uses": 5 })).await;
    let keep = keep["code"].as_str().unwrap().to_string();
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (status, inv) = s.req(Method::GET, &format!("/invites/{keep}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "invites survive a restart: {inv}");
    assert_eq!(inv["guild"]["id"], gid.as_str());
    let (status, _) = s.post(&format!("/invites/{keep}"), &b, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.get(&format!("/guilds/{gid}"), &b).await;
    assert_eq!(status, StatusCode::OK);
}
