//! The gateway over real WebSockets on the server's one port: HELLO, IDENTIFY →
//! READY → GUILD_CREATE, dispatch delivery and sequence numbers, transport
//! compression, close codes, RESUME with replay, slow consumers, intents, op 8 and
//! shutdown.

use std::time::Duration;

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
const MESSAGE_CONTENT: u64 = 1 << 15;
const ALL_USER: u64 = GUILDS | GUILD_MEMBERS | GUILD_PRESENCES | GUILD_MESSAGES | MESSAGE_CONTENT;

enum Inflate {
    None,
    Zlib(flate2::Decompress),
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
}

impl Inflate {
    fn decode(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() * 8 + 64);
        match self {
            Inflate::None => panic!("binary frame on an uncompressed connection"),
            Inflate::Zlib(z) => {
                assert!(data.ends_with(&[0, 0, 0xff, 0xff]), "zlib-stream messages end in a sync flush");
                let mut input = data;
                loop {
                    out.reserve(input.len() * 4 + 1024);
                    let before = z.total_in();
                    z.decompress_vec(input, &mut out, flate2::FlushDecompress::Sync).unwrap();
                    input = &input[(z.total_in() - before) as usize..];
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                }
            }
            Inflate::Zstd(d) => {
                use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
                let mut input = InBuffer::around(data);
                loop {
                    out.reserve(64 * 1024);
                    let len = out.len();
                    let mut output = OutBuffer::around_pos(&mut out, len);
                    d.run(&mut input, &mut output).unwrap();
                    let full = output.pos() == output.capacity();
                    if input.pos() == data.len() && !full {
                        break;
                    }
                }
            }
        }
        out
    }
}

/// A gateway client.
struct Gw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    inflate: Inflate,
}

/// What the server did next on a connection.
#[derive(Debug)]
enum Next {
    Payload(Value),
    Closed(Option<u16>),
}

impl Gw {
    async fn connect(s: &TestServer, query: &str) -> Gw {
        let url = format!("{}/?{query}", s.gateway_url());
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
        let inflate = if query.contains("compress=zlib-stream") {
            Inflate::Zlib(flate2::Decompress::new(true))
        } else if query.contains("compress=zstd-stream") {
            Inflate::Zstd(Box::new(zstd::stream::raw::Decoder::new().unwrap()))
        } else {
            Inflate::None
        };
        Gw { ws, inflate }
    }

    /// Connects and reads HELLO.
    async fn open(s: &TestServer) -> Gw {
        Self::open_with(s, "v=10&encoding=json").await
    }

    async fn open_with(s: &TestServer, query: &str) -> Gw {
        let mut gw = Self::connect(s, query).await;
        let hello = gw.recv().await;
        assert_eq!(hello["op"], 10, "{hello}");
        assert_eq!(hello["d"]["heartbeat_interval"], 41250);
        assert!(hello["s"].is_null() && hello["t"].is_null());
        gw
    }

    async fn next(&mut self) -> Next {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await.expect("no frame in 10 s");
            match msg {
                Some(Ok(Message::Text(t))) => return Next::Payload(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Binary(b))) => {
                    let json = self.inflate.decode(&b);
                    return Next::Payload(serde_json::from_slice(&json).unwrap());
                }
                Some(Ok(Message::Close(frame))) => return Next::Closed(frame.map(|f| u16::from(f.code))),
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

    /// The next dispatch named `t`, skipping others (returns the whole frame).
    async fn event(&mut self, t: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["op"] == 0 && v["t"] == t {
                return v;
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

    async fn identify(&mut self, token: &str, intents: u64) -> Value {
        self.send(json!({ "op": 2, "d": { "token": token, "intents": intents, "properties": { "os": "linux", "browser": "test", "device": "test" } } })).await;
        let ready = self.recv().await;
        assert_eq!(ready["t"], "READY", "{ready}");
        ready
    }

    async fn resume(&mut self, token: &str, session_id: &str, seq: u64) {
        self.send(json!({ "op": 6, "d": { "token": token, "session_id": session_id, "seq": seq } })).await;
    }
}

/// Creates an invite to `channel` and has `token` accept it.
async fn join(s: &TestServer, owner: &str, channel: &str, token: &str) {
    let (status, inv) = s.post(&format!("/channels/{channel}/invites"), owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    let code = inv["code"].as_str().unwrap();
    let (status, joined) = s.post(&format!("/invites/{code}"), token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
}

async fn say(s: &TestServer, token: &str, channel: &str, content: &str) -> Value {
    let (status, m) =
        s.post(&format!("/channels/{channel}/messages"), token, json!({ "content": content, "nonce": "n-1" })).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    m
}

#[tokio::test]
async fn identify_ready_guild_create_and_message_create() {
    let s = TestServer::start().await;
    let (token, uid) = s.user("alice").await;
    let (gid, general) = s.guild(&token, "Alice's place").await;
    let (status, gw_info) = s.get("/gateway", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gw_info["url"], s.gateway_url(), "REST and the gateway share one address");

    let mut gw = Gw::open(&s).await;
    gw.send(json!({ "op": 1, "d": null })).await;
    assert_eq!(gw.recv().await, json!({ "op": 11, "s": null, "t": null, "d": null }));

    let ready = gw.identify(&token, ALL_USER).await;
    assert_eq!(ready["op"], 0);
    assert_eq!(ready["s"], 1);
    let d = &ready["d"];
    assert_eq!(d["v"], 10);
    assert_eq!(d["user"]["id"], uid.as_str());
    assert_eq!(d["user"]["username"], "alice");
    assert_eq!(d["user"]["mfa_enabled"], false);
    assert!(d["user"]["flags"].is_u64());
    assert_eq!(d["guilds"], json!([{ "id": gid, "unavailable": true }]));
    let session_id = d["session_id"].as_str().unwrap();
    assert_eq!(session_id.len(), 32);
    assert_eq!(d["resume_gateway_url"], s.gateway_url());
    assert!(d.get("shard").is_none(), "no shard echoed when none was sent");
    for key in ["private_channels", "relationships", "presences", "guild_join_requests", "geo_ordered_rtc_regions"] {
        assert!(d[key].is_array(), "{key}");
    }
    assert_eq!(d["session_type"], "normal");

    let gc = gw.recv().await;
    assert_eq!(gc["t"], "GUILD_CREATE", "{gc}");
    assert_eq!(gc["s"], 2);
    let g = &gc["d"];
    assert_eq!(g["id"], gid.as_str());
    assert_eq!(g["name"], "Alice's place");
    assert_eq!(g["member_count"], 1);
    assert_eq!(g["large"], false);
    assert_eq!(g["unavailable"], false);
    assert!(g["joined_at"].is_string());
    assert_eq!(g["members"].as_array().unwrap().len(), 1);
    assert_eq!(g["members"][0]["user"]["id"], uid.as_str());
    assert!(g["channels"].as_array().unwrap().iter().any(|c| c["id"] == general.as_str()));
    assert!(g["roles"].as_array().unwrap().iter().any(|r| r["id"] == gid.as_str()), "@everyone");
    for key in ["threads", "presences", "voice_states", "stage_instances", "guild_scheduled_events"] {
        assert!(g[key].is_array(), "{key}");
    }

    // The author's own session gets MESSAGE_CREATE, numbered one after another.
    for (i, text) in ["first", "second"].into_iter().enumerate() {
        let sent = say(&s, &token, &general, text).await;
        let ev = gw.event("MESSAGE_CREATE").await;
        assert_eq!(ev["s"], 3 + i as u64);
        assert_eq!(ev["d"]["id"], sent["id"]);
        assert_eq!(ev["d"]["content"], text);
        assert_eq!(ev["d"]["guild_id"], gid.as_str());
        assert_eq!(ev["d"]["channel_id"], general.as_str());
        assert_eq!(ev["d"]["nonce"], "n-1");
        assert!(ev["d"]["member"]["roles"].is_array(), "{ev}");
    }
    s.stop().await;
}

#[tokio::test]
async fn members_of_a_guild_see_each_other_and_intents_filter() {
    let s = TestServer::start().await;
    let (alice, _) = s.user("alice").await;
    let (bob, bob_id) = s.user("bob").await;
    let (gid, general) = s.guild(&alice, "Shared").await;

    let mut a = Gw::open(&s).await;
    a.identify(&alice, ALL_USER).await;
    a.event("GUILD_CREATE").await;
    // Bob has one session with every intent and one without GUILD_MESSAGES.
    let mut b = Gw::open(&s).await;
    b.identify(&bob, ALL_USER).await;
    let mut quiet = Gw::open(&s).await;
    quiet.identify(&bob, GUILDS).await;

    join(&s, &alice, &general, &bob).await;
    let gc = b.event("GUILD_CREATE").await;
    assert_eq!(gc["d"]["id"], gid.as_str());
    assert_eq!(gc["d"]["member_count"], 2);
    assert_eq!(quiet.event("GUILD_CREATE").await["d"]["id"], gid.as_str());
    let add = a.event("GUILD_MEMBER_ADD").await;
    assert_eq!(add["d"]["user"]["id"], bob_id.as_str());

    say(&s, &alice, &general, "hello bob").await;
    let ev = b.event("MESSAGE_CREATE").await;
    assert_eq!(ev["d"]["content"], "hello bob");
    assert_eq!(a.event("MESSAGE_CREATE").await["d"]["content"], "hello bob");

    // The quiet session gets no MESSAGE_CREATE: its next dispatch is the GUILD_CREATE
    // of a guild Bob creates after the message was published.
    let (second, _) = s.guild(&bob, "Bob's own").await;
    let next = quiet.recv().await;
    assert_eq!((next["t"].as_str(), next["d"]["id"].as_str()), (Some("GUILD_CREATE"), Some(second.as_str())), "{next}");

    // op 3 from Bob reaches Alice (GUILD_PRESENCES) as PRESENCE_UPDATE.
    b.send(json!({ "op": 3, "d": { "since": null, "activities": [{ "name": "chess", "type": 0 }], "status": "idle", "afk": false } })).await;
    let p = loop {
        let p = a.event("PRESENCE_UPDATE").await;
        if p["d"]["status"] == "idle" {
            break p;
        }
    };
    assert_eq!(p["d"]["user"]["id"], bob_id.as_str());
    assert_eq!(p["d"]["guild_id"], gid.as_str());
    assert_eq!(p["d"]["activities"][0]["name"], "chess");
    s.stop().await;
}

#[tokio::test]
async fn compressed_sessions_decode_to_the_same_events() {
    let s = TestServer::start().await;
    let (token, _) = s.user("carol").await;
    let (_, general) = s.guild(&token, "Zip").await;
    let mut plain = Gw::open(&s).await;
    let mut zlib = Gw::open_with(&s, "v=10&encoding=json&compress=zlib-stream").await;
    let mut zstd = Gw::open_with(&s, "v=10&encoding=json&compress=zstd-stream").await;
    let mut seen = Vec::new();
    for gw in [&mut plain, &mut zlib, &mut zstd] {
        let mut ready = gw.identify(&token, ALL_USER).await;
        ready["d"]["session_id"] = Value::Null;
        let gc = gw.event("GUILD_CREATE").await;
        gw.send(json!({ "op": 1, "d": 2 })).await;
        let ack = gw.recv().await;
        assert_eq!(ack["op"], 11);
        seen.push((ready, gc));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    say(&s, &token, &general, "squeeze me").await;
    let mut events = Vec::new();
    for gw in [&mut plain, &mut zlib, &mut zstd] {
        events.push(gw.event("MESSAGE_CREATE").await);
    }
    assert_eq!(events[0], events[1]);
    assert_eq!(events[0], events[2]);
    assert_eq!(events[0]["d"]["content"], "squeeze me");
    s.stop().await;
}

#[tokio::test]
async fn close_codes_over_a_real_socket() {
    let s = TestServer::start().await;
    let (token, _) = s.user("dave").await;

    let mut gw = Gw::open(&s).await;
    gw.send(json!({ "op": 3, "d": { "since": null, "activities": [], "status": "online", "afk": false } })).await;
    assert_eq!(gw.expect_close().await, 4003, "op 3 before IDENTIFY");

    let mut gw = Gw::open(&s).await;
    gw.send(json!({ "op": 2, "d": { "token": "not.a.token", "intents": 513, "properties": {} } })).await;
    assert_eq!(gw.expect_close().await, 4004);

    let mut gw = Gw::open(&s).await;
    gw.identify(&token, GUILDS).await;
    gw.send(json!({ "op": 2, "d": { "token": token, "intents": 1, "properties": {} } })).await;
    assert_eq!(gw.expect_close().await, 4005);

    let mut gw = Gw::open(&s).await;
    gw.send(json!({ "op": 99, "d": null })).await;
    assert_eq!(gw.expect_close().await, 4001);

    let mut gw = Gw::open(&s).await;
    gw.ws.send(Message::text("this is not json")).await.unwrap();
    assert_eq!(gw.expect_close().await, 4002);

    let mut gw = Gw::open(&s).await;
    let big = json!({ "op": 1, "d": null, "pad": "x".repeat(5000) });
    gw.send(big).await;
    assert_eq!(gw.expect_close().await, 4002, "payloads over 4096 bytes");

    let mut gw = Gw::open(&s).await;
    gw.send(json!({ "op": 2, "d": { "token": token, "intents": 1u64 << 17, "properties": {} } })).await;
    assert_eq!(gw.expect_close().await, 4013);

    let mut gw = Gw::connect(&s, "v=8&encoding=json").await;
    assert_eq!(gw.recv().await["op"], 10, "HELLO comes first");
    assert_eq!(gw.expect_close().await, 4012);
    let mut gw = Gw::connect(&s, "v=10&encoding=etf").await;
    assert_eq!(gw.recv().await["op"], 10);
    assert_eq!(gw.expect_close().await, 4012);

    // An unknown compression is refused before the upgrade.
    let err = tokio_tungstenite::connect_async(format!("{}/?v=10&compress=lz4", s.gateway_url())).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 400),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    // Any path works.
    let mut gw = Gw::open_with(&s, "v=10").await;
    gw.identify(&token, GUILDS).await;
    s.stop().await;
}

#[tokio::test]
async fn resume_replays_missed_events_then_resumed() {
    let s = TestServer::start().await;
    let (token, _) = s.user("erin").await;
    let (_, general) = s.guild(&token, "Resumable").await;
    let mut gw = Gw::open(&s).await;
    let ready = gw.identify(&token, ALL_USER).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    assert_eq!(gw.event("GUILD_CREATE").await["s"], 2);
    // Drop the TCP connection without a close frame.
    drop(gw);
    let a = say(&s, &token, &general, "while away 1").await;
    let b = say(&s, &token, &general, "while away 2").await;

    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &session_id, 2).await;
    let m1 = gw.recv().await;
    let m2 = gw.recv().await;
    let resumed = gw.recv().await;
    assert_eq!((m1["t"].as_str(), m1["s"].as_u64(), &m1["d"]["id"]), (Some("MESSAGE_CREATE"), Some(3), &a["id"]));
    assert_eq!((m2["t"].as_str(), m2["s"].as_u64(), &m2["d"]["id"]), (Some("MESSAGE_CREATE"), Some(4), &b["id"]));
    assert_eq!(resumed["t"], "RESUMED");
    assert_eq!(resumed["s"], 5);
    assert_eq!(resumed["d"], json!({}));
    say(&s, &token, &general, "back").await;
    assert_eq!(gw.event("MESSAGE_CREATE").await["s"], 6);

    // A RESUME while the old socket is still open takes the session over.
    let mut taker = Gw::open(&s).await;
    taker.resume(&token, &session_id, 6).await;
    assert_eq!(taker.event("RESUMED").await["s"], 7);
    assert_eq!(gw.expect_close().await, 4000, "the old socket is closed");

    // A seq the session never sent → 4007; the session is gone afterwards.
    drop(taker);
    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &session_id, 100).await;
    assert_eq!(gw.expect_close().await, 4007);
    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &session_id, 7).await;
    assert_eq!(gw.recv().await, json!({ "op": 9, "s": null, "t": null, "d": false }));
    // After op 9 the client may IDENTIFY on the same socket.
    gw.identify(&token, GUILDS).await;

    // Unknown session → op 9 false.
    let mut gw = Gw::open(&s).await;
    gw.resume(&token, "00000000000000000000000000000000", 1).await;
    assert_eq!(gw.recv().await["d"], false);
    s.stop().await;
}

/// A heartbeat's `d` acknowledges every dispatch up to it: the server stops keeping them
/// for replay. A RESUME from the acknowledged `s` replays what came after; one from before
/// it cannot be honoured (op 9), since the client said it had those events.
#[tokio::test]
async fn a_heartbeat_acknowledges_dispatches_for_resume() {
    let s = TestServer::start().await;
    let (token, _) = s.user("gail").await;
    let (_, general) = s.guild(&token, "Acked").await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let mut gw = Gw::open(&s).await;
        let ready = gw.identify(&token, ALL_USER).await;
        assert_eq!(gw.event("GUILD_CREATE").await["s"], 2);
        sessions.push((gw, ready["d"]["session_id"].as_str().unwrap().to_string()));
    }
    let first = say(&s, &token, &general, "seen by both").await;
    for (gw, _) in &mut sessions {
        assert_eq!(gw.event("MESSAGE_CREATE").await["s"], 3);
        gw.send(json!({ "op": 1, "d": 3 })).await;
        assert_eq!(gw.recv().await["op"], 11);
    }
    let ids: Vec<String> = sessions.iter().map(|(_, id)| id.clone()).collect();
    drop(sessions);
    let away = say(&s, &token, &general, "while away").await;

    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &ids[0], 3).await;
    let m = gw.recv().await;
    assert_eq!((m["t"].as_str(), m["s"].as_u64(), &m["d"]["id"]), (Some("MESSAGE_CREATE"), Some(4), &away["id"]));
    assert_eq!(gw.recv().await["t"], "RESUMED");

    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &ids[1], 2).await;
    assert_eq!(gw.recv().await, json!({ "op": 9, "s": null, "t": null, "d": false }), "{first}");
    s.stop().await;
}

#[tokio::test]
async fn client_close_1000_ends_the_session() {
    let s = TestServer::start().await;
    let (token, _) = s.user("frank").await;
    let mut gw = Gw::open(&s).await;
    let ready = gw.identify(&token, GUILDS).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    gw.ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() })).await.unwrap();
    while gw.ws.next().await.is_some() {}
    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &session_id, 1).await;
    assert_eq!(gw.recv().await["d"], false);

    // Any other client close keeps it resumable.
    let mut gw = Gw::open(&s).await;
    let ready = gw.identify(&token, GUILDS).await;
    let session_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    gw.ws.close(Some(CloseFrame { code: CloseCode::from(4000), reason: "zombie".into() })).await.unwrap();
    while gw.ws.next().await.is_some() {}
    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &session_id, 1).await;
    assert_eq!(gw.recv().await["t"], "RESUMED");
    s.stop().await;
}

#[tokio::test]
async fn a_stalled_reader_is_cut_off_while_others_keep_receiving() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| {
        c.gateway_queue_capacity = 8;
        c.gateway_send_buffer_bytes = 8192;
    })
    .await;
    let (token, _) = s.user("gina").await;
    let (_, general) = s.guild(&token, "Busy").await;

    // The stalled client asks for a tiny receive buffer and then never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(s.addr).await.unwrap();
    let url = format!("{}/?v=10&encoding=json", s.gateway_url());
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)).await.unwrap();
    let mut stalled = Gw { ws, inflate: Inflate::None };
    stalled.recv().await;
    let ready = stalled.identify(&token, ALL_USER).await;
    let stalled_id = ready["d"]["session_id"].as_str().unwrap().to_string();
    stalled.event("GUILD_CREATE").await;

    let mut reader = Gw::open(&s).await;
    reader.identify(&token, ALL_USER).await;
    reader.event("GUILD_CREATE").await;

    let content = "y".repeat(1900);
    let total = 400;
    let reading = tokio::spawn(async move {
        for i in 0..total {
            let ev = reader.event("MESSAGE_CREATE").await;
            assert!(ev["d"]["content"].as_str().unwrap().ends_with(&format!("#{i}")));
        }
    });
    for i in 0..total {
        say(&s, &token, &general, &format!("{content}#{i}")).await;
    }
    tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the reading session got every message")
        .unwrap();

    // The stalled socket was dropped: reading it now yields what was buffered, then the
    // end, well before all the messages.
    let mut got = 0;
    while let Next::Payload(v) = stalled.next().await {
        if v["t"] == "MESSAGE_CREATE" {
            got += 1;
        }
    }
    assert!(got < total, "the stalled session was cut off (it got {got} of {total})");
    // It missed events, so it cannot be resumed.
    let mut gw = Gw::open(&s).await;
    gw.resume(&token, &stalled_id, 2).await;
    assert_eq!(gw.recv().await, json!({ "op": 9, "s": null, "t": null, "d": false }));
    s.stop().await;
}

#[tokio::test]
async fn request_guild_members_answers_in_chunks() {
    let s = TestServer::start().await;
    let (alice, alice_id) = s.user("alice").await;
    let (bob, bob_id) = s.user("bobby").await;
    let (gid, general) = s.guild(&alice, "Members").await;
    join(&s, &alice, &general, &bob).await;
    let mut gw = Gw::open(&s).await;
    gw.identify(&alice, ALL_USER).await;
    gw.event("GUILD_CREATE").await;

    gw.send(json!({ "op": 8, "d": { "guild_id": gid, "query": "", "limit": 0, "nonce": "all" } })).await;
    let c = gw.event("GUILD_MEMBERS_CHUNK").await["d"].clone();
    assert_eq!(c["guild_id"], gid.as_str());
    assert_eq!((c["chunk_index"].as_u64(), c["chunk_count"].as_u64()), (Some(0), Some(1)));
    assert_eq!(c["nonce"], "all");
    let mut ids: Vec<&str> =
        c["members"].as_array().unwrap().iter().map(|m| m["user"]["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = vec![alice_id.as_str(), bob_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);

    gw.send(json!({ "op": 8, "d": { "guild_id": gid, "query": "BOB", "limit": 10, "presences": true, "nonce": "q" } }))
        .await;
    let c = gw.event("GUILD_MEMBERS_CHUNK").await["d"].clone();
    assert_eq!(c["members"].as_array().unwrap().len(), 1);
    assert_eq!(c["members"][0]["user"]["id"], bob_id.as_str());
    assert!(c["presences"].is_array());

    gw.send(json!({ "op": 8, "d": { "guild_id": gid, "user_ids": [alice_id, "12345678901234567"], "nonce": "ids" } }))
        .await;
    let c = gw.event("GUILD_MEMBERS_CHUNK").await["d"].clone();
    assert_eq!(c["members"][0]["user"]["id"], alice_id.as_str());
    assert_eq!(c["not_found"], json!(["12345678901234567"]));

    // No matches still answers one chunk.
    gw.send(json!({ "op": 8, "d": { "guild_id": gid, "query": "zzz", "limit": 5, "nonce": "none" } })).await;
    let c = gw.event("GUILD_MEMBERS_CHUNK").await["d"].clone();
    assert_eq!(
        (c["members"].as_array().unwrap().len(), c["chunk_count"].as_u64(), c["nonce"].as_str()),
        (0, Some(1), Some("none"))
    );

    // Without GUILD_MEMBERS the whole list is not given out.
    let mut narrow = Gw::open(&s).await;
    narrow.identify(&alice, GUILDS).await;
    narrow.send(json!({ "op": 8, "d": { "guild_id": gid, "query": "", "limit": 0 } })).await;
    let c = narrow.event("GUILD_MEMBERS_CHUNK").await["d"].clone();
    assert_eq!(c["members"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn shutdown_sends_reconnect_then_closes() {
    let s = TestServer::start().await;
    let (token, _) = s.user("hank").await;
    let mut gw = Gw::open(&s).await;
    gw.identify(&token, GUILDS).await;
    let stopping = tokio::spawn(s.stop());
    let op7 = gw.recv().await;
    assert_eq!(op7, json!({ "op": 7, "s": null, "t": null, "d": null }));
    assert_eq!(gw.expect_close().await, 4000);
    tokio::time::timeout(Duration::from_secs(15), stopping).await.expect("shutdown finishes").unwrap();
}

#[tokio::test]
async fn bots_need_their_applications_privileged_intents() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("ivy").await;
    let (status, app) = s.post("/applications", &owner, json!({ "name": "Intent Bot" })).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let app_id = app["id"].as_str().unwrap().to_string();
    let (status, t) = s.post(&format!("/applications/{app_id}/bot"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let bot = t["token"].as_str().unwrap().to_string();

    let mut gw = Gw::open(&s).await;
    gw.send(json!({ "op": 2, "d": { "token": bot, "intents": GUILDS | MESSAGE_CONTENT, "properties": {} } })).await;
    assert_eq!(gw.expect_close().await, 4014, "MESSAGE_CONTENT is not granted yet");

    // Unprivileged intents need no grant; READY carries the application.
    let mut gw = Gw::open(&s).await;
    let ready = gw.identify(&bot, GUILDS | GUILD_MESSAGES).await;
    assert_eq!(ready["d"]["application"]["id"], app_id.as_str());
    assert!(ready["d"]["application"]["flags"].is_u64());
    assert_eq!(ready["d"]["user"]["bot"], true);

    const GATEWAY_MESSAGE_CONTENT_LIMITED: u64 = 1 << 19;
    let (status, patched) =
        s.patch(&format!("/applications/{app_id}"), &owner, json!({ "flags": GATEWAY_MESSAGE_CONTENT_LIMITED })).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let mut gw = Gw::open(&s).await;
    gw.identify(&bot, GUILDS | MESSAGE_CONTENT).await;
    // A user account gets every intent without any grant.
    let mut user = Gw::open(&s).await;
    user.identify(&owner, ALL_USER).await;
    s.stop().await;
}
