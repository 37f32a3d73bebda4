//! Transport compression for one connection: `zlib-stream` and `zstd-stream` encoders that
//! turn each gateway frame into one binary WebSocket message the client's single streaming
//! decompressor decodes to exactly that frame.
//!
//! Memory rule (CRATES.md 1.2): a zlib-rs compressor costs 150–320 KB and a zstd context
//! about 150 KB, so an idle connection should hold none. [`Encoder::release`] drops the
//! compressor between messages:
//!
//! * **zlib-stream** — the stream never ends and every message ends in a sync flush
//!   (`00 00 FF FF`), i.e. on a deflate block boundary with no final block. After a release
//!   the next message starts a *raw* deflate stream (no zlib header) whose blocks simply
//!   continue the client's one inflate stream. Safe for every client (Python's
//!   `zlib.decompressobj`, zlib-sync, flate2).
//! * **zstd-stream** — a zstd frame cannot be continued by a fresh context (the decoder
//!   carries repeat offsets across blocks), so a restart must end the old frame (its 3-byte
//!   epilogue, kept from release time, is prepended to the next message) and begin a new
//!   frame. libzstd's streaming decoder (twilight, the `zstd` crate) accepts that, but
//!   **Python's decoders do not**: python-zstandard's `decompressobj()` (discord.py) and
//!   CPython 3.14's `compression.zstd.ZstdDecompressor` (hikari, discord.py) stop at the end
//!   of the first frame ("Already at the end of a Zstandard frame"). So zstd release is
//!   opt-in ([`ZstdRelease::NewFrame`]); by default ([`ZstdRelease::Keep`]) `release` keeps
//!   the zstd context.
//!
//! Unknown `compress` query values are an error ([`UnknownCompression`]); the shell should
//! answer the upgrade request with HTTP 400, since no gateway close code exists before the
//! WebSocket is open.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use flate2::{Compress, FlushCompress};
use zstd::stream::raw::{CParameter, InBuffer, Operation, OutBuffer};

use crate::frame::DispatchFrame;

/// The `compress` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    ZlibStream,
    ZstdStream,
}

impl Compression {
    /// Reads the `compress` query value; absent or empty means none.
    pub fn from_query(value: Option<&str>) -> Result<Compression, UnknownCompression> {
        match value {
            None | Some("") => Ok(Compression::None),
            Some(value) => value.parse(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::ZlibStream => "zlib-stream",
            Compression::ZstdStream => "zstd-stream",
        }
    }
}

impl FromStr for Compression {
    type Err = UnknownCompression;
    fn from_str(value: &str) -> Result<Compression, UnknownCompression> {
        match value {
            "zlib-stream" => Ok(Compression::ZlibStream),
            "zstd-stream" => Ok(Compression::ZstdStream),
            _ => Err(UnknownCompression),
        }
    }
}

/// A `compress` value other than `zlib-stream` / `zstd-stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownCompression;

impl fmt::Display for UnknownCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported compress value (expected zlib-stream or zstd-stream)")
    }
}

impl std::error::Error for UnknownCompression {}

/// What [`Encoder::release`] does to a zstd-stream connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZstdRelease {
    /// Keep the context (safe for every client; ~150 KB per idle connection).
    Keep,
    /// Drop it and start a new zstd frame on the next message. Only for clients whose
    /// decoder reads across frames (libzstd-based: twilight); see the module docs.
    NewFrame,
}

/// Compression tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderConfig {
    /// zlib level (0–9). Default 1: 10× faster than 6 for ~15% more bytes (CRATES.md 1.2).
    pub zlib_level: u32,
    /// zstd level. Default 1.
    pub zstd_level: i32,
    /// zstd window log. Default 17 (128 KiB): larger than a message, small state.
    pub zstd_window_log: u32,
    pub zstd_release: ZstdRelease,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig { zlib_level: 1, zstd_level: 1, zstd_window_log: 17, zstd_release: ZstdRelease::Keep }
    }
}

/// One WebSocket message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsMessage {
    Text(Bytes),
    Binary(Bytes),
}

impl WsMessage {
    pub fn bytes(&self) -> &Bytes {
        match self {
            WsMessage::Text(bytes) | WsMessage::Binary(bytes) => bytes,
        }
    }
}

enum State {
    /// No compressor held (never used, or released).
    Idle,
    Zlib(Box<Compress>),
    Zstd(Box<zstd::stream::raw::Encoder<'static>>),
}

/// Per-connection transport encoder.
pub struct Encoder {
    kind: Compression,
    config: EncoderConfig,
    state: State,
    /// zlib: the zlib header was written (the stream exists on the client side).
    /// zstd: unused.
    zlib_started: bool,
    /// zstd: epilogue of a released, still-open frame, to send before the next frame.
    zstd_pending_end: Vec<u8>,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder").field("kind", &self.kind).field("holding_state", &self.is_holding_state()).finish()
    }
}

impl Encoder {
    pub fn new(kind: Compression, config: EncoderConfig) -> Encoder {
        Encoder { kind, config, state: State::Idle, zlib_started: false, zstd_pending_end: Vec::new() }
    }

    pub fn compression(&self) -> Compression {
        self.kind
    }

    /// Whether a compressor is allocated.
    pub fn is_holding_state(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Encodes one whole gateway frame. Without compression the frame is returned as a text
    /// message without copying.
    pub fn encode(&mut self, frame: Bytes) -> WsMessage {
        match self.kind {
            Compression::None => WsMessage::Text(frame),
            _ => self.encode_parts(&[&frame]),
        }
    }

    /// Encodes a small control frame (HELLO, op 11, op 7, op 9). On a zlib-stream
    /// connection that holds no compressor (never used, or released) the frame goes out as
    /// a stored deflate block, so an idle session answering heartbeats never allocates a
    /// compressor. A fresh compressor never refers back to those bytes, and while one is
    /// held every frame goes through it, so the client's inflate window stays consistent.
    pub fn encode_control(&mut self, frame: Bytes) -> WsMessage {
        let Ok(len) = u16::try_from(frame.len()) else { return self.encode(frame) };
        if self.kind != Compression::ZlibStream || !matches!(self.state, State::Idle) {
            return self.encode(frame);
        }
        let mut out = Vec::with_capacity(frame.len() + 12);
        if !self.zlib_started {
            // zlib header: deflate, 32 KiB window, fastest level (0x7801 % 31 == 0).
            out.extend_from_slice(&[0x78, 0x01]);
            self.zlib_started = true;
        }
        // A stored block (BFINAL 0, BTYPE 00; the stream is byte-aligned after a sync
        // flush): LEN, NLEN, the bytes; then the empty stored block a sync flush writes.
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(&frame);
        out.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
        WsMessage::Binary(Bytes::from(out))
    }

    /// Encodes one dispatch frame from its parts, so the shared body is never concatenated
    /// with its per-session envelope on compressed connections.
    pub fn encode_dispatch(&mut self, frame: &DispatchFrame) -> WsMessage {
        match self.kind {
            Compression::None => WsMessage::Text(frame.to_bytes()),
            _ => self.encode_parts(&frame.parts()),
        }
    }

    /// Encodes one gateway frame given as consecutive parts.
    pub fn encode_parts(&mut self, parts: &[&[u8]]) -> WsMessage {
        let mut out = Vec::new();
        self.encode_into(parts, &mut out);
        match self.kind {
            Compression::None => WsMessage::Text(Bytes::from(out)),
            Compression::ZlibStream | Compression::ZstdStream => WsMessage::Binary(Bytes::from(out)),
        }
    }

    /// Appends the encoding of one gateway frame (given as consecutive parts) to `out`.
    pub fn encode_into(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        match self.kind {
            Compression::None => parts.iter().for_each(|part| out.extend_from_slice(part)),
            Compression::ZlibStream => self.zlib(parts, out),
            Compression::ZstdStream => self.zstd(parts, out),
        }
    }

    /// Drops the compressor (call when the connection has gone idle). The next message
    /// continues the client's stream as described in the module docs. With
    /// [`ZstdRelease::Keep`], a zstd connection keeps its context.
    pub fn release(&mut self) {
        match &mut self.state {
            State::Idle => {}
            State::Zlib(_) => self.state = State::Idle,
            State::Zstd(encoder) => {
                if self.config.zstd_release == ZstdRelease::Keep {
                    return;
                }
                // End the open frame now (a 3-byte empty last block; no checksum is
                // configured) and keep those bytes for the next message.
                let mut end = Vec::with_capacity(16);
                finish_zstd(encoder, &mut end);
                self.zstd_pending_end = end;
                self.state = State::Idle;
            }
        }
    }

    fn zlib(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        let level = flate2::Compression::new(self.config.zlib_level);
        if matches!(self.state, State::Idle) {
            // The first compressor writes the zlib header; a restarted one must not.
            let zlib_header = !self.zlib_started;
            self.state = State::Zlib(Box::new(Compress::new(level, zlib_header)));
            self.zlib_started = true;
        }
        let State::Zlib(compress) = &mut self.state else { unreachable!("set just above") };
        for part in parts {
            deflate(compress, part, FlushCompress::None, out);
        }
        deflate(compress, &[], FlushCompress::Sync, out);
    }

    fn zstd(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        if matches!(self.state, State::Idle) {
            out.append(&mut self.zstd_pending_end);
            self.state = State::Zstd(Box::new(new_zstd(&self.config)));
        }
        let State::Zstd(encoder) = &mut self.state else { unreachable!("set just above") };
        for part in parts {
            let mut input = InBuffer::around(part);
            while input.pos() < part.len() {
                out.reserve(part.len() - input.pos() + 64);
                let mut output = OutBuffer::around_pos(out, out.len());
                // Compressing into a growing Vec with valid parameters cannot fail.
                encoder.run(&mut input, &mut output).expect("zstd compress_stream");
            }
        }
        loop {
            out.reserve(256);
            let mut output = OutBuffer::around_pos(out, out.len());
            // As above: flushing into a Vec with spare capacity cannot fail.
            let remaining = encoder.flush(&mut output).expect("zstd flush_stream");
            if remaining == 0 {
                break;
            }
        }
    }
}

fn new_zstd(config: &EncoderConfig) -> zstd::stream::raw::Encoder<'static> {
    // Creating a context and setting in-range parameters only fails on allocation failure.
    let mut encoder = zstd::stream::raw::Encoder::new(config.zstd_level).expect("zstd context");
    encoder.set_parameter(CParameter::WindowLog(config.zstd_window_log)).expect("zstd window log in range");
    encoder.set_parameter(CParameter::ChecksumFlag(false)).expect("zstd checksum flag");
    encoder
}

fn finish_zstd(encoder: &mut zstd::stream::raw::Encoder<'static>, out: &mut Vec<u8>) {
    loop {
        out.reserve(64);
        let mut output = OutBuffer::around_pos(out, out.len());
        // Ending a frame into a Vec with spare capacity cannot fail.
        let remaining = encoder.finish(&mut output, true).expect("zstd end_stream");
        if remaining == 0 {
            break;
        }
    }
}

/// Feeds `input` to `compress` with `flush`, growing `out` until all input is consumed and
/// (for a flush) all pending output is written.
fn deflate(compress: &mut Compress, mut input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
    loop {
        out.reserve(input.len() / 2 + 64);
        let before = compress.total_in();
        // compress_vec only fails on a corrupted stream state, which safe use cannot cause.
        compress.compress_vec(input, out, flush).expect("deflate");
        let consumed = (compress.total_in() - before) as usize;
        input = &input[consumed..];
        // Spare room left means deflate had nothing more to write.
        if input.is_empty() && out.len() < out.capacity() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};
    use proptest::prelude::*;

    /// The client side of zlib-stream: one inflater for the whole connection.
    struct ZlibClient(Decompress);

    impl ZlibClient {
        fn new() -> Self {
            ZlibClient(Decompress::new(true))
        }
        fn feed(&mut self, message: &[u8]) -> Vec<u8> {
            assert!(message.ends_with(&[0, 0, 0xff, 0xff]), "each message ends with a sync flush");
            let mut out = Vec::with_capacity(message.len() * 4 + 64);
            let mut input = message;
            loop {
                let before = self.0.total_in();
                self.0.decompress_vec(input, &mut out, FlushDecompress::Sync).expect("inflate");
                input = &input[(self.0.total_in() - before) as usize..];
                if input.is_empty() && out.len() < out.capacity() {
                    return out;
                }
                out.reserve(out.capacity());
            }
        }
    }

    /// The client side of zstd-stream: one libzstd streaming decoder for the connection.
    struct ZstdClient(zstd::stream::raw::Decoder<'static>);

    impl ZstdClient {
        fn new() -> Self {
            ZstdClient(zstd::stream::raw::Decoder::new().unwrap())
        }
        fn feed(&mut self, message: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            let mut input = InBuffer::around(message);
            loop {
                out.reserve(4096);
                let filled = out.len();
                let mut output = OutBuffer::around_pos(&mut out, filled);
                self.0.run(&mut input, &mut output).expect("zstd decode");
                let full = output.pos() == output.capacity();
                if input.pos() == message.len() && !full {
                    return out;
                }
            }
        }
    }

    fn message(i: usize) -> Vec<u8> {
        format!(
            r#"{{"op":0,"s":{i},"t":"MESSAGE_CREATE","d":{{"id":"{}","content":"hello number {i}","channel_id":"1234567890"}}}}"#,
            1_000_000 + i
        )
        .into_bytes()
    }

    fn binary(message: WsMessage) -> Bytes {
        match message {
            WsMessage::Binary(bytes) => bytes,
            WsMessage::Text(_) => panic!("compressed connections send binary messages"),
        }
    }

    #[test]
    fn compression_query_values() {
        assert_eq!(Compression::from_query(None), Ok(Compression::None));
        assert_eq!(Compression::from_query(Some("")), Ok(Compression::None));
        assert_eq!(Compression::from_query(Some("zlib-stream")), Ok(Compression::ZlibStream));
        assert_eq!(Compression::from_query(Some("zstd-stream")), Ok(Compression::ZstdStream));
        assert_eq!(Compression::from_query(Some("gzip")), Err(UnknownCompression));
        assert_eq!(Compression::from_query(Some("ZLIB-STREAM")), Err(UnknownCompression));
    }

    #[test]
    fn no_compression_passes_frames_through_without_copying() {
        let mut encoder = Encoder::new(Compression::None, EncoderConfig::default());
        let frame = Bytes::from(message(1));
        let WsMessage::Text(sent) = encoder.encode(frame.clone()) else { panic!("text expected") };
        assert_eq!(sent.as_ptr(), frame.as_ptr());
        assert!(!encoder.is_holding_state());
    }

    #[test]
    fn zlib_first_message_has_a_header_and_all_end_in_sync_flush() {
        let mut encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
        let first = binary(encoder.encode(Bytes::from(message(1))));
        // 0x78 = deflate with a 32 KiB window: the zlib header.
        assert_eq!(first[0], 0x78);
        assert!(first.ends_with(&[0, 0, 0xff, 0xff]));
        encoder.release();
        let second = binary(encoder.encode(Bytes::from(message(2))));
        assert_ne!(second[0], 0x78, "a restarted stream must not repeat the header");
        assert!(second.ends_with(&[0, 0, 0xff, 0xff]));
    }

    #[test]
    fn zlib_stream_decodes_across_release_and_restart() {
        let mut encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
        let mut client = ZlibClient::new();
        for i in 0..20 {
            let sent = binary(encoder.encode(Bytes::from(message(i))));
            assert!(encoder.is_holding_state());
            assert_eq!(client.feed(&sent), message(i), "message {i}");
            if i % 7 == 3 {
                encoder.release();
                assert!(!encoder.is_holding_state());
            }
        }
    }

    #[test]
    fn zlib_shares_history_between_messages_until_released() {
        let mut encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
        encoder.encode(Bytes::from(message(1)));
        let warm = binary(encoder.encode(Bytes::from(message(2)))).len();
        encoder.release();
        let cold = binary(encoder.encode(Bytes::from(message(3)))).len();
        assert!(warm < cold, "history makes the second message smaller ({warm} vs {cold})");
    }

    #[test]
    fn dispatch_parts_encode_like_the_whole_frame() {
        let mut outbox = crate::Outbox::new("s", crate::ReplayLimits::default());
        let frame = outbox.dispatch("MESSAGE_CREATE", &Bytes::from_static(br#"{"content":"hi"}"#));
        for kind in [Compression::ZlibStream, Compression::ZstdStream] {
            let mut encoder = Encoder::new(kind, EncoderConfig::default());
            let sent = binary(encoder.encode_dispatch(&frame));
            let decoded = match kind {
                Compression::ZlibStream => ZlibClient::new().feed(&sent),
                _ => ZstdClient::new().feed(&sent),
            };
            assert_eq!(decoded, frame.to_bytes().to_vec());
        }
    }

    #[test]
    fn zstd_stream_decodes_message_by_message() {
        let mut encoder = Encoder::new(Compression::ZstdStream, EncoderConfig::default());
        let mut client = ZstdClient::new();
        for i in 0..20 {
            let sent = binary(encoder.encode(Bytes::from(message(i))));
            assert_eq!(client.feed(&sent), message(i), "message {i}");
        }
    }

    #[test]
    fn zstd_keeps_its_context_on_release_by_default() {
        let mut encoder = Encoder::new(Compression::ZstdStream, EncoderConfig::default());
        let mut client = ZstdClient::new();
        assert_eq!(client.feed(&binary(encoder.encode(Bytes::from(message(1))))), message(1));
        encoder.release();
        assert!(encoder.is_holding_state());
        let second = binary(encoder.encode(Bytes::from(message(2))));
        // No new frame: the zstd magic number does not reappear.
        assert_ne!(&second[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(client.feed(&second), message(2));
    }

    #[test]
    fn zstd_new_frame_release_decodes_with_a_streaming_decoder() {
        let config = EncoderConfig { zstd_release: ZstdRelease::NewFrame, ..EncoderConfig::default() };
        let mut encoder = Encoder::new(Compression::ZstdStream, config);
        let mut client = ZstdClient::new();
        for i in 0..20 {
            let sent = binary(encoder.encode(Bytes::from(message(i))));
            assert_eq!(client.feed(&sent), message(i), "message {i}");
            if i % 5 == 2 {
                encoder.release();
                assert!(!encoder.is_holding_state());
            }
        }
    }

    #[test]
    fn zlib_control_frames_need_no_compressor_while_idle() {
        let mut encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
        let mut client = ZlibClient::new();
        let hello = br#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#;
        let ack = br#"{"op":11,"d":null,"s":null,"t":null}"#;
        let sent = binary(encoder.encode_control(Bytes::from_static(hello)));
        assert_eq!(&sent[..2], &[0x78, 0x01], "the stream starts with a zlib header");
        assert!(!encoder.is_holding_state());
        assert_eq!(client.feed(&sent), hello);
        for round in 0..3 {
            let m = binary(encoder.encode(Bytes::from(message(round))));
            assert_eq!(client.feed(&m), message(round));
            // While a compressor is held, control frames go through it.
            let a = binary(encoder.encode_control(Bytes::from_static(ack)));
            assert!(a.len() < ack.len(), "compressed against the shared history");
            assert_eq!(client.feed(&a), ack);
            encoder.release();
            for _ in 0..2 {
                let a = binary(encoder.encode_control(Bytes::from_static(ack)));
                assert!(!encoder.is_holding_state(), "an idle session's ACK allocates nothing");
                assert_eq!(client.feed(&a), ack);
            }
        }
        let last = binary(encoder.encode(Bytes::from(message(9))));
        assert_eq!(client.feed(&last), message(9));
    }

    #[derive(Clone, Debug)]
    enum Step {
        Send(Vec<u8>),
        Release,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let send = prop_oneof![
            // JSON-like text that compresses well.
            "[a-z\":{},0-9 ]{1,600}".prop_map(|s| Step::Send(s.into_bytes())),
            // Incompressible bytes, up to beyond a deflate block.
            proptest::collection::vec(any::<u8>(), 1..70_000).prop_map(Step::Send),
        ];
        proptest::collection::vec(prop_oneof![4 => send, 1 => Just(Step::Release)], 1..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn zlib_random_messages_and_releases_round_trip(steps in steps()) {
            let mut encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
            let mut client = ZlibClient::new();
            for step in steps {
                match step {
                    Step::Release => encoder.release(),
                    Step::Send(msg) => {
                        let sent = binary(encoder.encode(Bytes::from(msg.clone())));
                        prop_assert_eq!(client.feed(&sent), msg);
                    }
                }
            }
        }

        #[test]
        fn zstd_random_messages_and_releases_round_trip(steps in steps(), new_frame in any::<bool>()) {
            let release = if new_frame { ZstdRelease::NewFrame } else { ZstdRelease::Keep };
            let config = EncoderConfig { zstd_release: release, ..EncoderConfig::default() };
            let mut encoder = Encoder::new(Compression::ZstdStream, config);
            let mut client = ZstdClient::new();
            for step in steps {
                match step {
                    Step::Release => encoder.release(),
                    Step::Send(msg) => {
                        let sent = binary(encoder.encode(Bytes::from(msg.clone())));
                        prop_assert_eq!(client.feed(&sent), msg);
                    }
                }
            }
        }
    }
}
