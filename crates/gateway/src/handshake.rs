//! The HTTP side of a connection before it is a WebSocket: reading the request
//! head once ([`sniff`]), deciding whether it is a WebSocket upgrade, validating the
//! gateway query (`v`, `encoding`, `compress`), and writing the `101` (or `400`)
//! response by hand, so the head is parsed only once and no HTTP machinery stays
//! attached to the socket.
//!
//! Query policy:
//! - `compress`: [`Compression::from_query`]; an unknown value → HTTP 400 (no close
//!   code exists before the socket is open).
//! - `v`: absent, `10` or `9` are served; anything else is closed with 4012 right
//!   after HELLO, as Discord does.
//! - `encoding`: absent or `json`. `etf` (and anything else) is closed with 4012
//!   after HELLO: Guildhall speaks JSON only, and 4012 is not reconnectable, so a
//!   client configured for ETF fails loudly instead of reconnecting forever.

use guildhall_proto::Compression;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Longest request head read before giving the connection to the HTTP server.
pub const MAX_HEAD: usize = 8 * 1024;

/// What the first bytes of a connection turned out to be.
#[derive(Debug)]
pub enum Sniffed {
    /// A WebSocket upgrade request (valid or not; see [`Upgrade::reject`]).
    WebSocket(Upgrade),
    /// Anything else: these bytes (the head, perhaps part of a body, or an
    /// unparsable prefix) must be replayed to the HTTP server.
    Http(Vec<u8>),
    /// The peer closed before sending anything.
    Closed,
}

/// A parsed upgrade request.
#[derive(Debug)]
pub struct Upgrade {
    /// `Sec-WebSocket-Key`.
    pub key: String,
    pub compression: Compression,
    /// The `v` query value, when it is not one Guildhall serves.
    pub bad_version: bool,
    /// The `encoding` query value, when it is not JSON.
    pub bad_encoding: bool,
    /// Set when the request cannot be upgraded: answer HTTP 400 with this text.
    pub reject: Option<&'static str>,
    /// Bytes the client sent after the head (WebSocket frames already on the wire).
    pub leftover: Vec<u8>,
}

/// Reads until the end of the request head (or [`MAX_HEAD`] bytes, or EOF) and
/// classifies the connection.
pub async fn sniff(stream: &mut TcpStream) -> std::io::Result<Sniffed> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().min(MAX_HEAD - buf.len()).max(1));
        }
        let n = stream.read_buf(&mut buf).await?;
        if n == 0 {
            return Ok(if buf.is_empty() { Sniffed::Closed } else { Sniffed::Http(buf) });
        }
        match head_end(&buf) {
            Some(end) => return Ok(classify(buf, end)),
            None if buf.len() >= MAX_HEAD => return Ok(Sniffed::Http(buf)),
            None => {}
        }
    }
}

fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn classify(buf: Vec<u8>, end: usize) -> Sniffed {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(&buf[..end]) else {
        return Sniffed::Http(buf);
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    match parse_upgrade(req.method.unwrap_or(""), req.path.unwrap_or("/"), header) {
        Some(mut up) => {
            up.leftover = buf[end..].to_vec();
            Sniffed::WebSocket(up)
        }
        None => Sniffed::Http(buf),
    }
}

/// Reads a WebSocket upgrade from a request's method, target and headers; `None`
/// when the request is not an upgrade at all. Used for the first request of a
/// connection (parsed here) and for upgrades that arrive later on an HTTP
/// keep-alive connection (parsed by the HTTP server).
pub fn parse_upgrade<'h>(method: &str, target: &str, header: impl Fn(&str) -> Option<&'h str>) -> Option<Upgrade> {
    let is_upgrade =
        header("upgrade").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")));
    if !is_upgrade {
        return None;
    }
    let mut reject = None;
    if method != "GET" {
        reject = Some("WebSocket upgrades must use GET");
    }
    let connection_upgrade =
        header("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    if !connection_upgrade {
        reject = Some("Connection: Upgrade is required");
    }
    if header("sec-websocket-version") != Some("13") {
        reject = Some("Sec-WebSocket-Version must be 13");
    }
    let key = header("sec-websocket-key").unwrap_or_default().to_string();
    if key.is_empty() {
        reject = Some("Sec-WebSocket-Key is required");
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut version = None;
    let mut encoding = None;
    let mut compress = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "v" => version = Some(v),
            "encoding" => encoding = Some(v),
            "compress" => compress = Some(v),
            _ => {}
        }
    }
    let compression = match Compression::from_query(compress) {
        Ok(c) => c,
        Err(_) => {
            reject = Some("compress must be zlib-stream or zstd-stream");
            Compression::None
        }
    };
    let bad_version = !matches!(version, None | Some("10") | Some("9"));
    let bad_encoding = !matches!(encoding, None | Some("") | Some("json"));
    Some(Upgrade { key, compression, bad_version, bad_encoding, reject, leftover: Vec::new() })
}

/// The `Sec-WebSocket-Accept` value for a request's key.
pub fn accept_key(key: &str) -> String {
    derive_accept_key(key.as_bytes())
}

/// Writes the `101 Switching Protocols` response.
pub(crate) async fn accept<S: AsyncWrite + Unpin>(stream: &mut S, key: &str) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key)
    );
    stream.write_all(response.as_bytes()).await
}

/// Answers a bad upgrade request with `400 Bad Request` and a Discord-style JSON body.
pub(crate) async fn reject<S: AsyncWrite + Unpin>(stream: &mut S, reason: &str) -> std::io::Result<()> {
    let body = serde_json::json!({ "message": reason, "code": 0 }).to_string();
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Sniffed {
        let buf = head.as_bytes().to_vec();
        let end = head_end(&buf).unwrap();
        classify(buf, end)
    }

    const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn plain_requests_go_to_http_with_their_bytes() {
        let Sniffed::Http(bytes) = parse("GET /api/v10/gateway HTTP/1.1\r\nHost: x\r\n\r\nrest") else {
            panic!("not http")
        };
        assert!(bytes.ends_with(b"\r\n\r\nrest"));
    }

    #[test]
    fn upgrade_query_is_read() {
        let Sniffed::WebSocket(up) =
            parse(&format!("GET /?v=10&encoding=json&compress=zstd-stream HTTP/1.1\r\n{UPGRADE}"))
        else {
            panic!("not ws")
        };
        assert_eq!(up.compression, Compression::ZstdStream);
        assert!(!up.bad_version && !up.bad_encoding && up.reject.is_none());

        let Sniffed::WebSocket(up) = parse(&format!("GET //?v=8&encoding=etf HTTP/1.1\r\n{UPGRADE}")) else {
            panic!("not ws")
        };
        assert!(up.bad_version && up.bad_encoding && up.reject.is_none());

        let Sniffed::WebSocket(up) = parse(&format!("GET /?compress=lz4 HTTP/1.1\r\n{UPGRADE}")) else {
            panic!("not ws")
        };
        assert!(up.reject.is_some());
        let Sniffed::WebSocket(up) = parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
        else {
            panic!("not ws")
        };
        assert!(up.reject.is_some());
    }
}
