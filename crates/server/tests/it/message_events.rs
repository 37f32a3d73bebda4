//! The dispatches message, reaction, pin, typing and thread routes emit, as a
//! second member's gateway session receives them.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::messages::{send, two_members};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const GUILDS: u64 = 1 << 0;
const GUILD_MESSAGES: u64 = 1 << 9;
const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
const GUILD_MESSAGE_TYPING: u64 = 1 << 11;
const MESSAGE_CONTENT: u64 = 1 << 15;

/// A plain-JSON session identified with `intents`, past READY.
async fn session(s: &TestServer, token: &str, intents: u64) -> Ws {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{}/?v=10&encoding=json", s.gateway_url())).await.unwrap();
    let hello = recv(&mut ws).await;
    assert_eq!(hello["op"], 10);
    let identify = json!({ "op": 2, "d": { "token": token, "intents": intents,
        "properties": { "os": "linux", "browser": "t", "device": "t" } } });
    ws.send(Message::text(identify.to_string())).await.unwrap();
    let ready = recv(&mut ws).await;
    assert_eq!(ready["t"], "READY", "{ready}");
    ws
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no frame in 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("session ended: {other:?}"),
        }
    }
}

/// The `d` of the next dispatch named `t`, skipping others.
async fn event(ws: &mut Ws, t: &str) -> Value {
    loop {
        let v = recv(ws).await;
        if v["op"] == 0 && v["t"] == t {
            return v["d"].clone();
        }
    }
}

#[tokio::test]
async fn message_and_reaction_events() {
    let s = TestServer::start().await;
    let (owner, member, member_id, channel) = two_members(&s).await;
    let all = GUILDS | GUILD_MESSAGES | GUILD_MESSAGE_REACTIONS | GUILD_MESSAGE_TYPING | MESSAGE_CONTENT;
    let mut full = session(&s, &member, all).await;
    let m = send(&s, &owner, &channel, "original").await;
    let mid = m["id"].as_str().unwrap();
    let path = format!("/channels/{channel}/messages/{mid}");
    let (_, g) = s.get("/users/@me/guilds", &owner).await;
    let gid = g[0]["id"].as_str().unwrap();

    // A session without MESSAGE_CONTENT (opened after the send) sees edits redacted.
    let mut blind = session(&s, &member, all & !MESSAGE_CONTENT).await;
    s.patch(&path, &owner, json!({ "content": "edited" })).await;
    let up = event(&mut full, "MESSAGE_UPDATE").await;
    assert_eq!(up["id"], mid);
    assert_eq!(up["content"], "edited");
    assert_eq!(up["guild_id"], gid);
    assert!(up["edited_timestamp"].is_string());
    assert!(up["member"]["roles"].is_array(), "{up}");
    assert!(up["author"]["id"].is_string());
    let redacted = event(&mut blind, "MESSAGE_UPDATE").await;
    assert_eq!(redacted["id"], mid);
    assert_eq!(redacted["content"], "");

    s.post(&format!("/channels/{channel}/typing"), &owner, json!({})).await;
    let typing = event(&mut full, "TYPING_START").await;
    assert_eq!(typing["channel_id"], channel.as_str());
    assert_eq!(typing["guild_id"], gid);
    assert!(typing["timestamp"].as_u64().unwrap() < 10_000_000_000, "seconds, not ms");
    assert!(typing["member"]["user"]["id"].is_string(), "{typing}");

    s.put(&format!("{path}/reactions/%F0%9F%91%8D/@me"), &owner, json!(null)).await;
    let add = event(&mut full, "MESSAGE_REACTION_ADD").await;
    assert_eq!(add["message_id"], mid);
    assert_eq!(add["channel_id"], channel.as_str());
    assert_eq!(add["guild_id"], gid);
    assert_eq!(add["emoji"], json!({ "id": null, "name": "👍" }));
    assert_eq!(add["message_author_id"], m["author"]["id"]);
    assert_eq!(add["burst"], false);
    assert_eq!(add["type"], 0);
    assert_eq!(add["burst_colors"], json!([]));
    assert!(add["member"]["user"]["id"].is_string(), "{add}");
    s.delete(&format!("{path}/reactions/%F0%9F%91%8D/@me"), &owner).await;
    let remove = event(&mut full, "MESSAGE_REACTION_REMOVE").await;
    assert_eq!(remove["type"], 0);
    assert_eq!(remove["burst"], false);
    assert_eq!(remove["emoji"]["name"], "👍");
    s.put(&format!("{path}/reactions/%F0%9F%91%8D/@me"), &member, json!(null)).await;
    s.delete(&format!("{path}/reactions/%F0%9F%91%8D"), &owner).await;
    let rm_emoji = event(&mut full, "MESSAGE_REACTION_REMOVE_EMOJI").await;
    assert_eq!(rm_emoji["emoji"]["name"], "👍");
    s.put(&format!("{path}/reactions/%F0%9F%91%8D/@me"), &member, json!(null)).await;
    s.delete(&format!("{path}/reactions"), &owner).await;
    let rm_all = event(&mut full, "MESSAGE_REACTION_REMOVE_ALL").await;
    assert_eq!(rm_all, json!({ "channel_id": channel, "message_id": mid, "guild_id": gid }));

    s.put(&format!("/channels/{channel}/pins/{mid}"), &owner, json!(null)).await;
    let pins = event(&mut full, "CHANNEL_PINS_UPDATE").await;
    assert_eq!(pins["channel_id"], channel.as_str());
    assert_eq!(pins["guild_id"], gid);
    assert!(pins["last_pin_timestamp"].is_string());
    let notice = event(&mut full, "MESSAGE_CREATE").await;
    assert_eq!(notice["type"], 6);

    let (_, thread) = s.post(&format!("{path}/threads"), &owner, json!({ "name": "talk" })).await;
    let created = event(&mut full, "THREAD_CREATE").await;
    assert_eq!(created["id"], thread["id"]);
    assert_eq!(created["newly_created"], true);
    assert_eq!(created["guild_id"], gid);
    let starter = event(&mut full, "MESSAGE_UPDATE").await;
    assert_eq!(starter["thread"]["id"], thread["id"]);

    s.delete(&path, &owner).await;
    let del = event(&mut full, "MESSAGE_DELETE").await;
    assert_eq!(del, json!({ "id": mid, "channel_id": channel, "guild_id": gid }));

    let a = send(&s, &owner, &channel, "a").await;
    let b = send(&s, &owner, &channel, "b").await;
    s.post(&format!("/channels/{channel}/messages/bulk-delete"), &owner, json!({ "messages": [a["id"], b["id"]] }))
        .await;
    let bulk = event(&mut full, "MESSAGE_DELETE_BULK").await;
    assert_eq!(bulk["ids"], json!([a["id"], b["id"]]));
    assert_eq!(bulk["channel_id"], channel.as_str());
    assert_eq!(bulk["guild_id"], gid);
    let _ = member_id;
}
