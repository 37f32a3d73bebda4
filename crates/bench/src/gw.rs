//! A minimal gateway client: connect with optional `zlib-stream` / `zstd-stream`
//! transport compression, HELLO, IDENTIFY, heartbeats, and frame decoding that
//! reads only the envelope (`op`, `s`, `t`) so that tens of thousands of
//! sessions stay cheap for the load generator.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Res;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compress {
    Plain,
    Zlib,
    Zstd,
}

impl Compress {
    pub fn parse(s: &str) -> Res<Compress> {
        match s {
            "plain" | "none" | "json" => Ok(Compress::Plain),
            "zlib" | "zlib-stream" => Ok(Compress::Zlib),
            "zstd" | "zstd-stream" => Ok(Compress::Zstd),
            _ => Err(format!("unknown compression {s:?} (plain, zlib-stream, zstd-stream)")),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Compress::Plain => "plain",
            Compress::Zlib => "zlib-stream",
            Compress::Zstd => "zstd-stream",
        }
    }
    pub fn query(self) -> &'static str {
        match self {
            Compress::Plain => "",
            Compress::Zlib => "&compress=zlib-stream",
            Compress::Zstd => "&compress=zstd-stream",
        }
    }
}

enum Decoder {
    Plain,
    Zlib { inflate: Box<flate2::Decompress>, pending: Vec<u8> },
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
}

/// One decoded gateway payload.
pub struct Frame {
    pub op: u64,
    pub s: Option<u64>,
    pub t: Option<String>,
    pub raw: Vec<u8>,
}

impl Frame {
    pub fn json(&self) -> Res<Value> {
        serde_json::from_slice(&self.raw).map_err(|e| format!("bad gateway JSON: {e}"))
    }
}

pub struct Gw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    dec: Decoder,
    pub seq: Option<u64>,
    pub heartbeat_ms: u64,
}

pub const INTENTS_DEFAULT: u64 = (1 << 0) | (1 << 9) | (1 << 15); // GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT

impl Gw {
    /// Connects and reads HELLO.
    pub async fn connect(gateway: &str, compress: Compress) -> Res<Gw> {
        Gw::connect_from(gateway, compress, None).await
    }

    /// Connects from a given loopback source address (port chosen by the kernel)
    /// and reads HELLO. Spreading thousands of connections over several source
    /// addresses keeps the kernel's ephemeral-port search for `connect()` short:
    /// with one source address it scans every port in use (measured here:
    /// `__inet_hash_connect` + `__inet_check_established` ate a quarter of the CPU at
    /// 19,000 sockets).
    pub async fn connect_from(gateway: &str, compress: Compress, source: Option<std::net::IpAddr>) -> Res<Gw> {
        Gw::connect_opts(gateway, compress, source, None).await
    }

    /// [`Gw::connect_from`] with the socket's `SO_RCVBUF` set before connecting
    /// (so the advertised window stays small): a client that stops reading then
    /// backs the server's writes up after a few KiB.
    pub async fn connect_opts(
        gateway: &str,
        compress: Compress,
        source: Option<std::net::IpAddr>,
        rcvbuf: Option<u32>,
    ) -> Res<Gw> {
        let url = format!("{gateway}/?v=10&encoding=json{}", compress.query());
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let hostport = gateway.split("://").nth(1).unwrap_or(gateway).split('/').next().unwrap_or("").to_string();
        let addr: std::net::SocketAddr = tokio::net::lookup_host(&hostport)
            .await
            .map_err(|e| format!("resolve {hostport}: {e}"))?
            .next()
            .ok_or_else(|| format!("resolve {hostport}: no address"))?;
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
            .map_err(|e| e.to_string())?;
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).map_err(|e| format!("SO_RCVBUF {size}: {e}"))?;
        }
        if let Some(ip) = source.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
            socket.bind(std::net::SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let stream = socket.connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url.as_str(), MaybeTlsStream::Plain(stream), Some(config))
                .await
                .map_err(|e| format!("upgrade {url}: {e}"))?;
        let dec = match compress {
            Compress::Plain => Decoder::Plain,
            Compress::Zlib => Decoder::Zlib { inflate: Box::new(flate2::Decompress::new(true)), pending: Vec::new() },
            Compress::Zstd => Decoder::Zstd(Box::new(zstd::stream::raw::Decoder::new().map_err(|e| e.to_string())?)),
        };
        let mut gw = Gw { ws, dec, seq: None, heartbeat_ms: 41_250 };
        let hello = gw.next_frame().await?;
        if hello.op != 10 {
            return Err(format!("expected HELLO, got op {}", hello.op));
        }
        gw.heartbeat_ms = hello.json()?["d"]["heartbeat_interval"].as_u64().unwrap_or(41_250);
        Ok(gw)
    }

    pub async fn send_json(&mut self, v: &Value) -> Res<()> {
        self.ws.send(Message::text(v.to_string())).await.map_err(|e| format!("send: {e}"))
    }

    pub async fn identify(&mut self, token: &str, intents: u64) -> Res<()> {
        self.send_json(&json!({
            "op": 2,
            "d": {
                "token": token,
                "intents": intents,
                "properties": { "os": "linux", "browser": "guildhall-bench", "device": "guildhall-bench" },
                "large_threshold": 50,
            }
        }))
        .await
    }

    /// RESUME (op 6) of `session_id` from sequence `seq`.
    pub async fn resume(&mut self, token: &str, session_id: &str, seq: u64) -> Res<()> {
        self.send_json(&json!({ "op": 6, "d": { "token": token, "session_id": session_id, "seq": seq } })).await
    }

    pub async fn heartbeat(&mut self) -> Res<()> {
        let seq = self.seq.map(Value::from).unwrap_or(Value::Null);
        self.send_json(&json!({ "op": 1, "d": seq })).await
    }

    /// The next complete payload (None-free: a close is an error).
    pub async fn next_frame(&mut self) -> Res<Frame> {
        loop {
            let msg = match self.ws.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(format!("gateway read: {e}")),
                None => return Err("gateway closed".into()),
            };
            let raw = match msg {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => match self.decode(&b)? {
                    Some(r) => r,
                    None => continue,
                },
                Message::Close(c) => return Err(format!("gateway closed: {c:?}")),
                _ => continue,
            };
            let f = envelope(raw)?;
            if f.s.is_some() {
                self.seq = f.s;
            }
            return Ok(f);
        }
    }

    fn decode(&mut self, data: &[u8]) -> Res<Option<Vec<u8>>> {
        match &mut self.dec {
            Decoder::Plain => Ok(Some(data.to_vec())),
            Decoder::Zlib { inflate, pending } => {
                pending.extend_from_slice(data);
                if !pending.ends_with(&[0, 0, 0xff, 0xff]) {
                    return Ok(None);
                }
                let input = std::mem::take(pending);
                let mut out = Vec::with_capacity(input.len() * 4 + 256);
                let mut consumed = 0usize;
                loop {
                    let before_in = inflate.total_in();
                    let before_out = out.len();
                    inflate
                        .decompress_vec(&input[consumed..], &mut out, flate2::FlushDecompress::Sync)
                        .map_err(|e| format!("zlib-stream: {e}"))?;
                    consumed += (inflate.total_in() - before_in) as usize;
                    if consumed >= input.len() && out.len() < out.capacity() {
                        break;
                    }
                    if out.len() == out.capacity() {
                        out.reserve(out.capacity().max(1024));
                    } else if out.len() == before_out && consumed < input.len() && inflate.total_in() == before_in {
                        return Err("zlib-stream: decoder made no progress".into());
                    }
                }
                Ok(Some(out))
            }
            Decoder::Zstd(d) => {
                use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
                let mut input = InBuffer::around(data);
                let mut out = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let mut ob = OutBuffer::around(&mut buf[..]);
                    d.run(&mut input, &mut ob).map_err(|e| format!("zstd-stream: {e}"))?;
                    let n = ob.pos();
                    out.extend_from_slice(&buf[..n]);
                    if input.pos() >= data.len() && n < buf.len() {
                        break;
                    }
                }
                Ok(Some(out))
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Closes with code 1000 (the session ends: it cannot be resumed) and waits
    /// briefly for the server's close frame.
    pub async fn close_normal(mut self) {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let frame = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async { while let Some(Ok(_)) = self.ws.next().await {} })
            .await;
    }
}

/// Reads `op`, `s` and `t` from the start of a frame written in Guildhall's key
/// order (`{"op":N,"s":S,"t":"T","d":...}`); anything else is parsed fully.
pub fn envelope(raw: Vec<u8>) -> Res<Frame> {
    if let Some((op, s, t)) = fast_envelope(&raw) {
        return Ok(Frame { op, s, t, raw });
    }
    let v: Value = serde_json::from_slice(&raw).map_err(|e| format!("bad gateway JSON: {e}"))?;
    Ok(Frame {
        op: v["op"].as_u64().ok_or("frame without op")?,
        s: v["s"].as_u64(),
        t: v["t"].as_str().map(str::to_string),
        raw,
    })
}

fn fast_envelope(raw: &[u8]) -> Option<(u64, Option<u64>, Option<String>)> {
    let rest = raw.strip_prefix(b"{\"op\":")?;
    let (op, rest) = number(rest)?;
    let rest = rest.strip_prefix(b",\"s\":")?;
    let (s, rest) =
        if let Some(r) = rest.strip_prefix(b"null") { (None, r) } else { number(rest).map(|(n, r)| (Some(n), r))? };
    let rest = rest.strip_prefix(b",\"t\":")?;
    let t = if rest.starts_with(b"null") {
        None
    } else {
        let r = rest.strip_prefix(b"\"")?;
        let end = r.iter().position(|b| *b == b'"')?;
        Some(std::str::from_utf8(&r[..end]).ok()?.to_string())
    };
    Some((op, s, t))
}

fn number(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    Some((std::str::from_utf8(&b[..n]).ok()?.parse().ok()?, &b[n..]))
}

/// Finds `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A heartbeat period with the first beat jittered, as Discord asks.
pub fn first_beat(interval_ms: u64, salt: u64) -> Duration {
    Duration::from_millis(interval_ms * (salt % 1000 + 1) / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_fast_and_slow_paths() {
        let f = envelope(br#"{"op":0,"s":42,"t":"MESSAGE_CREATE","d":{"t":"x"}}"#.to_vec()).unwrap();
        assert_eq!((f.op, f.s, f.t.as_deref()), (0, Some(42), Some("MESSAGE_CREATE")));
        let f = envelope(br#"{"op":11,"s":null,"t":null,"d":null}"#.to_vec()).unwrap();
        assert_eq!((f.op, f.s, f.t), (11, None, None));
        let f = envelope(br#"{"t":"READY","s":1,"op":0,"d":{}}"#.to_vec()).unwrap();
        assert_eq!((f.op, f.s, f.t.as_deref()), (0, Some(1), Some("READY")));
        assert!(envelope(b"not json".to_vec()).is_err());
    }
}
