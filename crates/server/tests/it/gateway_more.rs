//! The gateway's limits and lifecycle over real sockets: session start limits
//! (op 9 and `GET /gateway/bot`), heartbeat timeout 4009 then RESUME, the 4008
//! send limit, shard routing of READY, GUILD_CREATE, guild events and DMs, and the
//! presence lifecycle (offline on close, after the resume window, invisible).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::TestServer;

const GUILDS: u64 = 1 << 0;
const GUILD_MEMBERS: u64 = 1 << 1;
const GUILD_PRESENCES: u64 = 1 << 8;
const GUILD_MESSAGES: u64 = 1 << 9;
const DIRECT_MESSAGES: u64 = 1 << 12;
const MESSAGE_CONTENT: u64 = 1 << 15;

/// A plain-JSON gateway client.
struct Gw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

enum Next {
    Payload(Value),
    Closed(Option<u16>),
}

impl Gw {
    /// Connects and reads HELLO; returns the client and HELLO's interval.
    async fn open(s: &TestServer) -> (Gw, u64) {
        let url = format!("{}/?v=10&encoding=json", s.gateway_url());
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
        let mut gw = Gw { ws };
        let hello = gw.recv().await;
        assert_eq!(hello["op"], 10, "{hello}");
        let interval = hello["d"]["heartbeat_interval"].as_u64().unwrap();
        (gw, interval)
    }

    async fn next(&mut self) -> Next {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await.expect("no frame in 10 s");
            match msg {
                Some(Ok(Message::Text(t))) => return Next::Payload(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(frame))) => return Next::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(Message::Binary(_))) => panic!("binary frame on a plain connection"),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Next::Closed(None),
            }
        }
    }

    async fn recv(&mut self) -> Value {
        match self.next().await {
            Next::Payload(v) => v,
            Next::Closed(code) => panic!("closed with {code:?}"),
        }
    }

    /// The next dispatch named `t`, skipping others.
    async fn event(&mut self, t: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["op"] == 0 && v["t"] == t {
                return v;
            }
        }
    }

    /// Every dispatch up to and including the first for which `last` holds.
    async fn until(&mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let v = self.recv().await;
            if v["op"] != 0 {
                continue;
            }
            let done = last(&v);
            seen.push(v);
            if done {
                return seen;
            }
        }
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn expect_close(&mut self) -> u16 {
        loop {
            match self.next().await {
                Next::Closed(Some(code)) => return code,
                Next::Closed(None) => panic!("closed without a code"),
                Next::Payload(_) => {}
            }
        }
    }

    async fn send_identify(&mut self, token: &str, intents: u64, shard: Option<[u32; 2]>) {
        let mut d = json!({ "token": token, "intents": intents, "properties": { "os": "linux", "browser": "test", "device": "test" } });
        if let Some(shard) = shard {
            d["shard"] = json!(shard);
        }
        self.send(json!({ "op": 2, "d": d })).await;
    }

    async fn identify(&mut self, token: &str, intents: u64, shard: Option<[u32; 2]>) -> Value {
        self.send_identify(token, intents, shard).await;
        let ready = self.recv().await;
        assert_eq!(ready["t"], "READY", "{ready}");
        ready
    }

    async fn close_normal(mut self) {
        self.ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() })).await.unwrap();
        while self.ws.next().await.is_some() {}
    }
}

fn is_message(v: &Value, content: &str) -> bool {
    v["t"] == "MESSAGE_CREATE" && v["d"]["content"] == content
}

async fn join(s: &TestServer, owner: &str, channel: &str, token: &str) {
    let (status, inv) = s.post(&format!("/channels/{channel}/invites"), owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    let code = inv["code"].as_str().unwrap();
    let (status, joined) = s.post(&format!("/invites/{code}"), token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
}

async fn say(s: &TestServer, token: &str, channel: &str, content: &str) -> Value {
    let (status, m) = s.post(&format!("/channels/{channel}/messages"), token, json!({ "content": content })).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    m
}

/// Creates an application with a bot; returns the bot's token.
async fn bot(s: &TestServer, owner: &str, name: &str) -> String {
    let (status, app) = s.post("/applications", owner, json!({ "name": name })).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app_id = app["id"].as_str().unwrap();
    let (status, t) = s.post(&format!("/applications/{app_id}/bot"), owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t["token"].as_str().unwrap().to_string()
}

const INVALID_SESSION_FALSE: &str = r#"{"d":false,"op":9,"s":null,"t":null}"#;

#[tokio::test]
async fn session_start_limits_answer_op9_and_gateway_bot_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| {
        c.gateway_session_start_total = 3;
        c.gateway_max_concurrency = 2;
    })
    .await;
    let (owner, _) = s.user("olga").await;
    let bot = bot(&s, &owner, "Limited").await;
    let auth = format!("Bot {bot}");

    let (status, info) = s.get("/gateway/bot", &auth).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["url"], s.gateway_url());
    assert_eq!(
        info["session_start_limit"],
        json!({ "total": 3, "remaining": 3, "reset_after": 86_400_000u64, "max_concurrency": 2 })
    );

    // Bucket 0 (shard_id % 2 == 0; unsharded counts as shard 0) takes two per 5 s.
    let (mut a, _) = Gw::open(&s).await;
    let ready_a = a.identify(&bot, GUILDS, None).await;
    let (mut b, _) = Gw::open(&s).await;
    b.identify(&bot, GUILDS, Some([2, 4])).await;
    let (mut c, _) = Gw::open(&s).await;
    c.send_identify(&bot, GUILDS, Some([0, 2])).await;
    assert_eq!(c.recv().await, serde_json::from_str::<Value>(INVALID_SESSION_FALSE).unwrap());
    // The socket stays open and the client may IDENTIFY again; bucket 1 has room.
    let ready_c = c.identify(&bot, GUILDS, Some([1, 2])).await;
    assert_eq!(ready_c["d"]["shard"], json!([1, 2]));

    let (_, info) = s.get("/gateway/bot", &auth).await;
    let limit = &info["session_start_limit"];
    assert_eq!((limit["total"].as_u64(), limit["remaining"].as_u64()), (Some(3), Some(0)), "{info}");
    let reset_after = limit["reset_after"].as_u64().unwrap();
    assert!(reset_after <= 86_400_000 && reset_after > 86_300_000, "the window started with the first IDENTIFY");

    // The total is spent: even a bucket with room refuses.
    let (mut d, _) = Gw::open(&s).await;
    d.send_identify(&bot, GUILDS, Some([3, 4])).await;
    assert_eq!(d.recv().await["op"], 9);

    // RESUME does not count and still works.
    let session_id = ready_a["d"]["session_id"].as_str().unwrap().to_string();
    drop(a);
    let (mut r, _) = Gw::open(&s).await;
    r.send(json!({ "op": 6, "d": { "token": bot, "session_id": session_id, "seq": 1 } })).await;
    assert_eq!(r.event("RESUMED").await["d"], json!({}));
    let (_, info) = s.get("/gateway/bot", &auth).await;
    assert_eq!(info["session_start_limit"]["remaining"], 0);

    // Another caller has its own counters; user accounts are not limited.
    let (status, info) = s.get("/gateway/bot", &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["session_start_limit"]["remaining"], 3);
    for _ in 0..4 {
        let (mut u, _) = Gw::open(&s).await;
        u.identify(&owner, GUILDS, None).await;
    }
    drop((b, c));
    s.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_with_4009_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| {
        c.gateway_heartbeat_interval_ms = 300;
        c.gateway_heartbeat_grace_ms = 200;
    })
    .await;
    let (token, _) = s.user("sam").await;
    let (_, general) = s.guild(&token, "Quiet").await;
    let (mut gw, interval) = Gw::open(&s).await;
    assert_eq!(interval, 300, "HELLO carries the configured interval");
    let ready = gw.identify(&token, GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT, None).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    assert_eq!(gw.event("GUILD_CREATE").await["s"], 2);

    // A client that heartbeats in time is kept past the deadline.
    let t = Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        gw.send(json!({ "op": 1, "d": 2 })).await;
        assert_eq!(gw.recv().await["op"], 11);
    }
    assert!(t.elapsed() > Duration::from_millis(700));

    // Then it goes silent.
    let silent = Instant::now();
    assert_eq!(gw.expect_close().await, 4009);
    let waited = silent.elapsed();
    assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(3), "closed after {waited:?}");
    drop(gw);

    // The session stays resumable and replays what happened meanwhile.
    let m = say(&s, &token, &general, "while timed out").await;
    let (mut gw, _) = Gw::open(&s).await;
    gw.send(json!({ "op": 6, "d": { "token": token, "session_id": session_id, "seq": 2 } })).await;
    let replayed = gw.recv().await;
    assert_eq!((replayed["t"].as_str(), replayed["s"].as_u64()), (Some("MESSAGE_CREATE"), Some(3)));
    assert_eq!(replayed["d"]["id"], m["id"]);
    let resumed = gw.recv().await;
    assert_eq!((resumed["t"].as_str(), resumed["s"].as_u64()), (Some("RESUMED"), Some(4)));
    s.stop().await;
}

#[tokio::test]
async fn the_121st_payload_in_a_window_closes_with_4008() {
    let s = TestServer::start().await;
    let (token, _) = s.user("rita").await;
    let (mut gw, _) = Gw::open(&s).await;
    gw.identify(&token, GUILDS, None).await; // payload 1
    for i in 0..119 {
        gw.send(json!({ "op": 1, "d": null })).await;
        let ack = loop {
            let v = gw.recv().await;
            if v["op"] != 0 {
                break v;
            }
        };
        assert_eq!(ack["op"], 11, "payload {} is within the limit", i + 2);
    }
    gw.send(json!({ "op": 1, "d": null })).await;
    assert_eq!(gw.expect_close().await, 4008);
    s.stop().await;
}

fn shard_of(guild_id: &str, count: u64) -> u64 {
    (guild_id.parse::<u64>().unwrap() >> 22) % count
}

#[tokio::test]
async fn shards_receive_only_their_guilds_and_dms_go_to_shard_0() {
    let s = TestServer::start().await;
    let (token, uid) = s.user("shardy").await;
    let (wes, _) = s.user("wes").await;
    // Guilds until both shards of two have one (ids carry the creation millisecond).
    let mut guilds: Vec<(String, String)> = Vec::new();
    for i in 0..40 {
        let g = s.guild(&token, &format!("G{i}")).await;
        join(&s, &token, &g.1, &wes).await;
        guilds.push(g);
        let shards: BTreeSet<u64> = guilds.iter().map(|(g, _)| shard_of(g, 2)).collect();
        if guilds.len() >= 3 && shards.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let of_shard = |n: u64| -> BTreeSet<String> {
        guilds.iter().filter(|(g, _)| shard_of(g, 2) == n).map(|(g, _)| g.clone()).collect()
    };
    let (zero, one) = (of_shard(0), of_shard(1));
    assert!(!zero.is_empty() && !one.is_empty(), "no guild landed on one of the shards");
    let channel_in = |set: &BTreeSet<String>| guilds.iter().find(|(g, _)| set.contains(g)).unwrap().1.clone();
    let (chan0, chan1) = (channel_in(&zero), channel_in(&one));

    let intents = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT;
    let (mut s0, _) = Gw::open(&s).await;
    let ready0 = s0.identify(&token, intents, Some([0, 2])).await;
    let (mut s1, _) = Gw::open(&s).await;
    let ready1 = s1.identify(&token, intents, Some([1, 2])).await;
    let ids = |ready: &Value| -> BTreeSet<String> {
        ready["d"]["guilds"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&ready0), zero);
    assert_eq!(ids(&ready1), one);
    assert_eq!(ready0["d"]["shard"], json!([0, 2]));

    // Guild events reach only the shard of their guild. A marker in the session's own
    // shard ends each read: whatever a wrong route delivered would come before it.
    say(&s, &wes, &chan1, "for shard 1").await;
    say(&s, &wes, &chan0, "for shard 0").await;
    let seen0 = s0.until(|v| is_message(v, "for shard 0")).await;
    let seen1 = s1.until(|v| is_message(v, "for shard 1")).await;
    let created = |seen: &[Value]| -> BTreeSet<String> {
        seen.iter().filter(|v| v["t"] == "GUILD_CREATE").map(|v| v["d"]["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(created(&seen0), zero, "GUILD_CREATE only for shard 0's guilds");
    assert_eq!(created(&seen1), one);
    assert!(!seen0.iter().any(|v| is_message(v, "for shard 1")));
    // A DM reaches shard 0 only.
    let (status, dm) = s.post("/users/@me/channels", &wes, json!({ "recipient_id": uid })).await;
    assert_eq!(status, StatusCode::OK, "{dm}");
    let dm_id = dm["id"].as_str().unwrap().to_string();
    say(&s, &wes, &dm_id, "direct").await;
    say(&s, &wes, &chan1, "after the dm").await;
    let got0 = s0.until(|v| is_message(v, "direct")).await;
    assert!(got0.last().unwrap()["d"]["guild_id"].is_null());
    let got1 = s1.until(|v| is_message(v, "after the dm")).await;
    assert!(!got1.iter().any(|v| is_message(v, "direct")), "the DM went to shard 1");
    assert!(!got1.iter().any(|v| is_message(v, "for shard 0")), "shard 1 got a shard 0 guild's message");

    // A shard id not below the shard count closes with 4010.
    let (mut bad, _) = Gw::open(&s).await;
    bad.send_identify(&token, intents, Some([2, 2])).await;
    assert_eq!(bad.expect_close().await, 4010);
    s.stop().await;
}

/// The next PRESENCE_UPDATE about `user`, skipping other dispatches.
async fn presence_of(gw: &mut Gw, user: &str) -> Value {
    loop {
        let v = gw.event("PRESENCE_UPDATE").await;
        if v["d"]["user"]["id"] == user {
            return v["d"].clone();
        }
    }
}

#[tokio::test]
async fn presence_goes_offline_when_the_last_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| c.gateway_resume_window_secs = 1).await;
    let (owner, _) = s.user("oscar").await;
    let (amy, amy_id) = s.user("amy").await;
    let (gid, general) = s.guild(&owner, "Presence").await;
    join(&s, &owner, &general, &amy).await;

    // Amy is online before Oscar connects: his GUILD_CREATE lists her.
    let (mut a, _) = Gw::open(&s).await;
    a.identify(&amy, GUILDS, None).await;
    let observe = GUILDS | GUILD_MEMBERS | GUILD_PRESENCES | GUILD_MESSAGES | MESSAGE_CONTENT;
    let (mut o, _) = Gw::open(&s).await;
    o.identify(&owner, observe, None).await;
    let created = o.event("GUILD_CREATE").await;
    assert_eq!(created["d"]["id"], gid.as_str());
    let listed = created["d"]["presences"].as_array().unwrap();
    let hers = listed.iter().find(|p| p["user"]["id"] == amy_id.as_str()).expect("Amy's presence in GUILD_CREATE");
    assert_eq!(hers["status"], "online");

    // A second session keeps her online when the first closes; the last close (1000)
    // takes her offline at once.
    let (mut a2, _) = Gw::open(&s).await;
    a2.identify(&amy, GUILDS, None).await;
    a.close_normal().await;
    say(&s, &owner, &general, "still here?").await;
    let seen = o.until(|v| is_message(v, "still here?")).await;
    assert!(!seen.iter().any(|v| v["t"] == "PRESENCE_UPDATE"), "one session left: no presence change");
    a2.close_normal().await;
    let p = presence_of(&mut o, &amy_id).await;
    assert_eq!((p["status"].as_str(), p["guild_id"].as_str()), (Some("offline"), Some(gid.as_str())));

    // Online again; invisible shows as offline; back online.
    let (mut a, _) = Gw::open(&s).await;
    a.identify(&amy, GUILDS, None).await;
    assert_eq!(presence_of(&mut o, &amy_id).await["status"], "online");
    a.send(json!({ "op": 3, "d": { "since": null, "activities": [], "status": "invisible", "afk": false } })).await;
    assert_eq!(presence_of(&mut o, &amy_id).await["status"], "offline");
    a.send(json!({ "op": 3, "d": { "since": null, "activities": [{ "name": "chess", "type": 0 }], "status": "dnd", "afk": false } }))
        .await;
    let p = presence_of(&mut o, &amy_id).await;
    assert_eq!((p["status"].as_str(), p["activities"][0]["name"].as_str()), (Some("dnd"), Some("chess")));

    // An invisible user who disconnects was already offline: nothing more is sent.
    a.send(json!({ "op": 3, "d": { "since": null, "activities": [], "status": "invisible", "afk": false } })).await;
    assert_eq!(presence_of(&mut o, &amy_id).await["status"], "offline");
    a.close_normal().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    say(&s, &owner, &general, "gone quietly").await;
    let seen = o.until(|v| is_message(v, "gone quietly")).await;
    assert!(!seen.iter().any(|v| v["t"] == "PRESENCE_UPDATE"), "no second offline: {seen:?}");

    // A dropped connection keeps her online for the resume window, then offline.
    let (mut a, _) = Gw::open(&s).await;
    a.identify(&amy, GUILDS, None).await;
    assert_eq!(presence_of(&mut o, &amy_id).await["status"], "online");
    drop(a);
    let dropped = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    say(&s, &owner, &general, "within the window").await;
    let seen = o.until(|v| is_message(v, "within the window")).await;
    assert!(!seen.iter().any(|v| v["t"] == "PRESENCE_UPDATE"), "offline before the resume window ended");
    let p = presence_of(&mut o, &amy_id).await;
    assert_eq!(p["status"], "offline");
    assert!(dropped.elapsed() >= Duration::from_millis(900), "offline after {:?}", dropped.elapsed());
    s.stop().await;
}
