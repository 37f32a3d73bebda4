//! A WebSocket upgrade sent on a keep-alive connection that already carried REST
//! requests (what discord.py's shared aiohttp session does) reaches the gateway.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;

/// Reads one HTTP/1.1 response with a Content-Length body; returns (status, body).
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, buf[head_end..head_end + len].to_vec())
}

#[tokio::test]
async fn upgrade_after_rest_on_the_same_connection() {
    let s = TestServer::start().await;
    let token = s.register("keepalive").await;
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    for _ in 0..2 {
        let req = format!(
            "GET /api/v10/users/@me HTTP/1.1\r\nHost: {}\r\nAuthorization: {token}\r\nConnection: keep-alive\r\n\r\n",
            s.addr
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let (status, body) = read_response(&mut stream).await;
        assert_eq!(status, 200);
        let me: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(me["username"], "keepalive");
    }
    let url = format!("ws://{}/?v=10&encoding=json", s.addr);
    let (mut ws, response) = tokio_tungstenite::client_async(url, stream).await.expect("upgrade on a used connection");
    assert_eq!(response.status(), 101);
    let hello: Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected HELLO, got {other:?}"),
    };
    assert_eq!(hello["op"], 10);
    let identify = json!({"op": 2, "d": {"token": token, "intents": 513, "properties": {"os": "linux", "browser": "t", "device": "t"}}});
    ws.send(Message::text(identify.to_string())).await.unwrap();
    let ready: Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("expected READY, got {other:?}"),
    };
    assert_eq!(ready["t"], "READY");
    assert_eq!(ready["d"]["user"]["username"], "keepalive");

    // A bad upgrade inside an HTTP connection is refused like on a fresh one.
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!("GET /api/v10/gateway HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
    stream.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut stream).await.0, 200);
    let bad = format!(
        "GET /?v=10&compress=lz4 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        s.addr
    );
    stream.write_all(bad.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut stream).await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], 0);
}
