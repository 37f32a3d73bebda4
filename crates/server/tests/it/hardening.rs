//! HTTP abuse over real sockets: login attempt limits per account and per IP,
//! slowloris request heads (first and keep-alive), the per-IP connection cap and
//! JSON nesting depth.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// Reads one HTTP response (head and a Content-Length body); `None` if the
/// connection closes first.
async fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + len {
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `bytes` one at a time, `gap` apart, until the server closes the
/// connection; returns how long after the first byte the close was seen.
async fn trickle_until_closed(stream: TcpStream, bytes: &[u8], gap: Duration) -> Duration {
    let (mut rd, mut wr) = stream.into_split();
    let t0 = tokio::time::Instant::now();
    let bytes = bytes.to_vec();
    let writer = tokio::spawn(async move {
        for b in bytes {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(gap).await;
        }
        // Keep the write half open: the head is never finished.
        std::future::pending::<()>().await;
    });
    let mut sink = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    writer.abort();
    assert!(closed.is_ok(), "the server kept a slowloris connection open for 5 s");
    t0.elapsed()
}

const SLOW_HEAD: &[u8] =
    b"GET /healthz HTTP/1.1\r\nHost: guildhall\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
const FAST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: guildhall\r\n\r\n";

async fn slow_server() -> TestServer {
    TestServer::start_with(tempfile::tempdir().unwrap(), |c| c.header_timeout_ms = 300).await
}

#[tokio::test]
async fn a_first_request_head_sent_byte_by_byte_is_cut_off_at_the_header_timeout() {
    let s = slow_server().await;
    let stream = TcpStream::connect(s.addr).await.unwrap();
    let took = trickle_until_closed(stream, SLOW_HEAD, Duration::from_millis(50)).await;
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "closed after {took:?}");
    // A client that sends its head at once is served.
    let mut ok = TcpStream::connect(s.addr).await.unwrap();
    ok.write_all(FAST).await.unwrap();
    let res = read_response(&mut ok).await.expect("a response");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
}

#[tokio::test]
async fn a_later_request_head_on_a_keep_alive_connection_has_the_same_deadline() {
    let s = slow_server().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(FAST).await.unwrap();
    let res = read_response(&mut stream).await.expect("first response");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    // Idle between requests is not timed: longer than the header timeout, then a
    // whole second request is still answered on the same connection.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(FAST).await.unwrap();
    let res = read_response(&mut stream).await.expect("second response after an idle pause");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    // The third head trickles in: the connection is closed at the deadline.
    let took = trickle_until_closed(stream, SLOW_HEAD, Duration::from_millis(50)).await;
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "closed after {took:?}");
}

/// A keep-alive connection that has been served one request (so it is counted).
async fn served_connection(s: &TestServer, from: Option<&str>) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    }
    let mut stream = sock.connect(s.addr).await.unwrap();
    stream.write_all(FAST).await.unwrap();
    let res = read_response(&mut stream).await.expect("a response");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    stream
}

#[tokio::test]
async fn connections_over_the_per_ip_cap_get_429_and_are_closed() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| c.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(served_connection(&s, None).await);
    }
    // The fourth from the same IP is answered 429 and closed, request or not.
    for send_first in [true, false] {
        let mut extra = TcpStream::connect(s.addr).await.unwrap();
        if send_first {
            extra.write_all(FAST).await.unwrap();
        }
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut all)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 429"), "{text}");
        assert!(text.to_ascii_lowercase().contains("content-type: application/json"), "{text}");
        let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["code"], 0);
        assert_eq!(body["global"], false);
        assert!(body["retry_after"].as_f64().unwrap() > 0.0);
    }
    // Another IP has its own count.
    let other = served_connection(&s, Some("127.0.0.2")).await;
    // Closing one frees its slot for the next connection.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(FAST).await.unwrap();
        let res = read_response(&mut c).await.unwrap_or_default();
        if res.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(res.starts_with("HTTP/1.1 429"), "{res}");
        assert!(tokio::time::Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((held, other));
}

#[tokio::test]
async fn gateway_connections_count_against_the_per_ip_cap() {
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| c.max_connections_per_ip = 2).await;
    let url = format!("{}/?v=10&encoding=json", s.gateway_url());
    let (first, _) = tokio_tungstenite::connect_async(&url).await.expect("first upgrade");
    let (second, _) = tokio_tungstenite::connect_async(&url).await.expect("second upgrade");
    // A third WebSocket is refused with the HTTP 429, not upgraded.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS)
        }
        other => panic!("expected a 429, got {:?}", other.map(|(_, r)| r.status())),
    }
    // So is REST from the same address while both sessions are open.
    let mut rest = TcpStream::connect(s.addr).await.unwrap();
    rest.write_all(FAST).await.unwrap();
    let res = read_response(&mut rest).await.unwrap_or_default();
    assert!(res.starts_with("HTTP/1.1 429"), "{res}");
    // Closing a session frees its slot.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio_tungstenite::connect_async(&url).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the gateway slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(second);
}

/// A session whose socket dropped is kept for RESUME, but it is no longer a connection:
/// its per-IP slot is free at once, and the RESUME itself can use it.
#[tokio::test]
async fn a_session_kept_for_resume_does_not_hold_a_connection_slot() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let s = TestServer::start_with(tempfile::tempdir().unwrap(), |c| c.max_connections_per_ip = 2).await;
    let (token, _) = s.user("kept").await;
    let url = format!("{}/?v=10&encoding=json", s.gateway_url());
    let (mut first, _) = tokio_tungstenite::connect_async(&url).await.expect("first upgrade");
    // Fill the cap (the REST client's pooled connection may hold a slot too).
    let mut fill = Vec::new();
    while let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
        fill.push(ws);
        assert!(fill.len() < 3, "the cap was not enforced");
    }
    let identify = json!({ "op": 2, "d": { "token": token, "intents": 1, "properties": { "os": "linux", "browser": "t", "device": "t" } } });
    first.send(Message::text(identify.to_string())).await.unwrap();
    let session_id = loop {
        let Some(Ok(Message::Text(t))) = first.next().await else { panic!("no READY") };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["t"] == "READY" {
            break v["d"]["session_id"].as_str().unwrap().to_string();
        }
    };
    // Drop the TCP connection without a close frame: the session stays resumable.
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut third = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((ws, _)) => break ws,
            Err(_) => {
                assert!(tokio::time::Instant::now() < deadline, "the dropped socket's slot was never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let resume = json!({ "op": 6, "d": { "token": token, "session_id": session_id, "seq": 1 } });
    third.send(Message::text(resume.to_string())).await.unwrap();
    let resumed = loop {
        let Some(Ok(Message::Text(t))) = third.next().await else { panic!("closed before RESUMED") };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["op"] == 0 {
            break v;
        }
    };
    assert_eq!(resumed["t"], "RESUMED", "{resumed}");
    drop(fill);
    s.stop().await;
}

async fn raw_post(s: &TestServer, path: &str, token: &str, body: String) -> (StatusCode, Value) {
    let res = s
        .http
        .post(format!("{}{path}", s.base))
        .header("Authorization", token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn json_nested_deeper_than_64_levels_is_refused_before_parsing() {
    let s = TestServer::start().await;
    let (token, _) = s.user("deep").await;
    let (_, channel) = s.guild(&token, "deep").await;
    let path = format!("/channels/{channel}/messages");
    // 10,000 levels: a 400 with Discord's invalid-JSON body, no crash.
    let (status, body) = raw_post(&s, &path, &token, nested(10_000)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 50109);
    // 65 levels inside a field (serde_json alone would take it): refused the same way.
    let deep_field = format!(r#"{{"content":"hi","embeds":{}}}"#, nested(64));
    let (status, body) = raw_post(&s, &path, &token, deep_field).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 50109);
    // 64 levels is syntactically fine: the shape error (50035) comes back instead.
    let ok_depth = format!(r#"{{"content":"hi","embeds":{}}}"#, nested(63));
    let (status, body) = raw_post(&s, &path, &token, ok_depth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 50035);
    // Brackets inside strings do not count, and the server is still serving.
    let content = format!(r#"{{"content":"{}"}}"#, "[".repeat(500));
    let (status, body) = raw_post(&s, &path, &token, content).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["content"], "[".repeat(500));
}

async fn slow_body_server() -> TestServer {
    TestServer::start_with(tempfile::tempdir().unwrap(), |c| {
        c.body_idle_timeout_ms = 300;
        c.body_timeout_ms = 1_000;
    })
    .await
}

/// The head of a message send whose body announces `len` bytes.
fn post_head(channel: &str, token: &str, len: usize) -> String {
    format!(
        "POST /api/v10/channels/{channel}/messages HTTP/1.1\r\nHost: guildhall\r\nAuthorization: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_408_and_the_connection_is_closed() {
    let s = slow_body_server().await;
    let (token, _) = s.user("stall").await;
    let (_, channel) = s.guild(&token, "stall").await;
    let body = br#"{"content":"never finished"}"#;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(post_head(&channel, &token, body.len()).as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    let t0 = tokio::time::Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(5), read_response(&mut stream))
        .await
        .expect("the server kept waiting for the body")
        .expect("a response before the close");
    let took = t0.elapsed();
    assert!(res.starts_with("HTTP/1.1 408"), "{res}");
    assert!(res.to_ascii_lowercase().contains("connection: close"), "{res}");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "answered after {took:?}");
    let mut rest = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut rest)).await.expect("not closed");
    assert!(matches!(n, Ok(0) | Err(_)), "the connection stayed open");
    // Nothing was stored.
    let (st, msgs) = s.get(&format!("/channels/{channel}/messages"), &token).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(msgs.as_array().unwrap().len(), 0, "{msgs}");
}

#[tokio::test]
async fn a_body_trickled_within_the_idle_limit_is_cut_off_at_the_total_limit() {
    let s = slow_body_server().await;
    let (token, _) = s.user("trickle").await;
    let (_, channel) = s.guild(&token, "trickle").await;
    let body = format!(r#"{{"content":"{}"}}"#, "x".repeat(200));
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(post_head(&channel, &token, body.len()).as_bytes()).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let t0 = tokio::time::Instant::now();
    let writer = tokio::spawn(async move {
        // One byte every 100 ms: never idle for 300 ms, but 200+ bytes take 20 s.
        for b in body.into_bytes() {
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut buf)).await;
    writer.abort();
    assert!(read.is_ok(), "the server kept a trickling body for 5 s");
    let took = t0.elapsed();
    let res = String::from_utf8_lossy(&buf);
    assert!(res.starts_with("HTTP/1.1 408"), "{res}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test]
async fn a_body_sent_in_pieces_within_the_limits_is_accepted() {
    let s = slow_body_server().await;
    let (token, _) = s.user("pieces").await;
    let (_, channel) = s.guild(&token, "pieces").await;
    let body = br#"{"content":"in three pieces"}"#;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(post_head(&channel, &token, body.len()).as_bytes()).await.unwrap();
    for piece in body.chunks(11) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stream.write_all(piece).await.unwrap();
    }
    let res = read_response(&mut stream).await.expect("a response");
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(res.contains("in three pieces"), "{res}");
}

/// Over loopback a full TCP segment (64 KiB) is larger than the receive window of a
/// client with default buffers, and the kernel does not split one to fit: it waited
/// for the 200 ms window probe. The server announces (and sends) smaller ones.
#[tokio::test]
async fn loopback_clients_get_segments_smaller_than_their_receive_window() {
    let s = TestServer::start().await;
    let stream = TcpStream::connect(s.addr).await.unwrap();
    // The client's MSS is the one the server announced in its SYN-ACK.
    let mss = socket2::SockRef::from(&stream).tcp_mss().unwrap();
    assert!(mss <= 16 * 1024, "server announced an MSS of {mss} bytes");
    let window = socket2::SockRef::from(&stream).recv_buffer_size().unwrap() / 2;
    assert!((mss as usize) < window, "MSS {mss} vs a default receive window of ~{window} bytes");
}
