//! Dispatch events of the guild-management routes, observed on real gateway
//! sessions: shapes (protocol notes section 2) and who receives them.

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::guild_admin::{give, role};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const GUILDS: u64 = 1;
const GUILD_MEMBERS: u64 = 1 << 1;
const GUILD_MODERATION: u64 = 1 << 2;
const GUILD_INVITES: u64 = 1 << 6;
const GUILD_MESSAGES: u64 = 1 << 9;
const ALL: u64 = GUILDS | GUILD_MEMBERS | GUILD_MODERATION | GUILD_INVITES | GUILD_MESSAGES;

async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg =
            tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.expect("the gateway answers");
        match msg {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Reads until the dispatch `name`, returning its `d`; fails on `forbidden` first.
async fn until(ws: &mut Ws, name: &str) -> Value {
    loop {
        let p = next(ws).await.unwrap_or_else(|| panic!("connection ended before {name}"));
        if p["t"] == name {
            return p["d"].clone();
        }
    }
}

async fn identify(url: &str, token: &str, intents: u64) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?v=10&encoding=json")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["op"], 10);
    let identify = json!({ "op": 2, "d": { "token": token, "intents": intents, "properties": { "os": "linux", "browser": "t", "device": "t" } } });
    ws.send(Message::Text(identify.to_string().into())).await.unwrap();
    until(&mut ws, "READY").await;
    ws
}

/// Sends a heartbeat and reads until its ACK, collecting the dispatch names seen
/// on the way: everything published before the heartbeat was sent.
async fn drain(ws: &mut Ws) -> Vec<String> {
    ws.send(Message::Text(json!({ "op": 1, "d": null }).to_string().into())).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let p = next(ws).await.expect("open");
        if p["op"] == 11 {
            return seen;
        }
        if let Some(t) = p["t"].as_str() {
            seen.push(t.to_string());
        }
    }
}

#[tokio::test]
async fn guild_management_dispatches() {
    let s = TestServer::start().await;
    let url = s.gateway_url();
    let (owner, _) = s.user("owner").await;
    let (gid, general) = s.guild(&owner, "Events").await;
    let (alice, alice_id) = s.user("alice").await;
    let mut ow = identify(&url, &owner, ALL).await;
    until(&mut ow, "GUILD_CREATE").await;
    let mut al = identify(&url, &alice, ALL).await;

    // Channel create.
    let (status, ch) = s.post(&format!("/guilds/{gid}/channels"), &owner, json!({ "name": "news" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let cid = ch["id"].as_str().unwrap().to_string();
    let d = until(&mut ow, "CHANNEL_CREATE").await;
    assert_eq!(
        (d["id"].as_str(), d["guild_id"].as_str(), d["name"].as_str()),
        (Some(cid.as_str()), Some(gid.as_str()), Some("news"))
    );

    // Invite create and join: alice's session gets GUILD_CREATE, the owner GUILD_MEMBER_ADD.
    let (_, inv) = s.post(&format!("/channels/{general}/invites"), &owner, json!({})).await;
    let code = inv["code"].as_str().unwrap();
    let d = until(&mut ow, "INVITE_CREATE").await;
    assert_eq!(d["code"], code);
    assert_eq!(d["channel_id"], general.as_str());
    assert_eq!(d["uses"], 0);
    let (status, _) = s.post(&format!("/invites/{code}"), &alice, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let d = until(&mut ow, "GUILD_MEMBER_ADD").await;
    assert_eq!(d["guild_id"], gid.as_str());
    assert_eq!(d["user"]["id"], alice_id.as_str());
    for key in ["roles", "joined_at", "deaf", "mute", "flags"] {
        assert!(d.get(key).is_some(), "GUILD_MEMBER_ADD lacks {key}: {d}");
    }
    let d = until(&mut al, "GUILD_CREATE").await;
    assert_eq!(d["id"], gid.as_str());

    // Roles and member updates.
    let rid = role(&s, &owner, &gid, "helpers", 0).await;
    let d = until(&mut al, "GUILD_ROLE_CREATE").await;
    assert_eq!((d["guild_id"].as_str(), d["role"]["id"].as_str()), (Some(gid.as_str()), Some(rid.as_str())));
    give(&s, &owner, &gid, &alice_id, &rid).await;
    let d = until(&mut ow, "GUILD_MEMBER_UPDATE").await;
    assert_eq!(d["guild_id"], gid.as_str());
    assert_eq!(d["user"]["id"], alice_id.as_str());
    assert_eq!(d["roles"], json!([rid]));

    // Hiding a channel from alice: she gets CHANNEL_DELETE, the owner CHANNEL_UPDATE.
    let (status, _) =
        s.put(&format!("/channels/{cid}/permissions/{alice_id}"), &owner, json!({ "type": 1, "deny": "1024" })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let d = until(&mut al, "CHANNEL_DELETE").await;
    assert_eq!(d["id"], cid.as_str());
    let d = until(&mut ow, "CHANNEL_UPDATE").await;
    assert_eq!(d["permission_overwrites"][0]["id"], alice_id.as_str());
    // Deleting it afterwards tells only those who could see it.
    let (status, _) = s.delete(&format!("/channels/{cid}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    let d = until(&mut ow, "CHANNEL_DELETE").await;
    assert_eq!(d["id"], cid.as_str());
    assert!(!drain(&mut al).await.iter().any(|t| t == "CHANNEL_DELETE"), "alice could not see it any more");

    // Guild update reaches every member.
    let (status, _) = s.patch(&format!("/guilds/{gid}"), &owner, json!({ "name": "Renamed" })).await;
    assert_eq!(status, StatusCode::OK);
    let d = until(&mut al, "GUILD_UPDATE").await;
    assert_eq!(d["name"], "Renamed");
    assert!(d.get("members").is_none(), "GUILD_UPDATE has no GUILD_CREATE extras");

    // Ban: the moderator sees GUILD_BAN_ADD and GUILD_MEMBER_REMOVE; alice loses the guild.
    let (status, _) = s.put(&format!("/guilds/{gid}/bans/{alice_id}"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let d = until(&mut ow, "GUILD_BAN_ADD").await;
    assert_eq!((d["guild_id"].as_str(), d["user"]["id"].as_str()), (Some(gid.as_str()), Some(alice_id.as_str())));
    let d = until(&mut ow, "GUILD_MEMBER_REMOVE").await;
    assert_eq!(d["user"]["id"], alice_id.as_str());
    let d = until(&mut al, "GUILD_DELETE").await;
    assert_eq!(d["id"], gid.as_str());
    assert!(d.get("unavailable").is_none());
    assert!(!drain(&mut al).await.iter().any(|t| t == "GUILD_BAN_ADD"), "bans go to moderators only");
    let (status, _) = s.delete(&format!("/guilds/{gid}/bans/{alice_id}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let d = until(&mut ow, "GUILD_BAN_REMOVE").await;
    assert_eq!(d["user"]["id"], alice_id.as_str());

    // USER_UPDATE to the user's own sessions.
    let (status, _) = s.patch("/users/@me", &owner, json!({ "global_name": "The Owner" })).await;
    assert_eq!(status, StatusCode::OK);
    let d = until(&mut ow, "USER_UPDATE").await;
    assert_eq!(d["global_name"], "The Owner");

    // Deleting the guild: GUILD_DELETE to its members.
    let (status, _) = s.delete(&format!("/guilds/{gid}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let d = until(&mut ow, "GUILD_DELETE").await;
    assert_eq!(d["id"], gid.as_str());
}

#[tokio::test]
async fn dm_creation_reaches_both_sides() {
    let s = TestServer::start().await;
    let url = s.gateway_url();
    let (alice, alice_id) = s.user("alice").await;
    let (bob, bob_id) = s.user("bob").await;
    let mut a = identify(&url, &alice, GUILDS).await;
    let mut b = identify(&url, &bob, GUILDS).await;
    let (_, dm) = s.post("/users/@me/channels", &alice, json!({ "recipient_id": bob_id })).await;
    let d = until(&mut a, "CHANNEL_CREATE").await;
    assert_eq!(d["id"], dm["id"]);
    assert_eq!(d["recipients"][0]["id"], bob_id.as_str());
    let d = until(&mut b, "CHANNEL_CREATE").await;
    assert_eq!(d["recipients"][0]["id"], alice_id.as_str(), "each side sees the other");
}
