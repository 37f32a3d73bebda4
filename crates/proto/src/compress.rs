//! Transport compression for one connection: `zlib-stream` and `zstd-stream` encoders that
//! turn each gateway frame into one binary WebSocket message the client's single streaming
//! decompressor decodes to exactly that frame.
//!
//! Memory rule (CRATES.md 1.2): a zlib-rs compressor costs 150–320 KB and a zstd context
//! 30–150 KB, so an idle connection must hold none, and a connect must not build one just to
//! send HELLO (first touch of a fresh 300 KB state was half of a connect storm's CPU).
//!
//! * **zlib-stream: no per-connection compressor at all ("encode once").** The stream never
//!   ends and every message ends in a sync flush (`00 00 FF FF`), i.e. byte-aligned on a
//!   deflate block boundary. Deflate blocks may only refer back to earlier output through
//!   match distances, so blocks produced by a compressor *with no history* are valid anywhere
//!   in anybody's stream. A message is therefore: the 2-byte zlib header (first message of
//!   the connection only), the per-session envelope `{"op":0,"s":N,"t":"NAME","d":` as one
//!   stored block, then the event body plus its closing `}` deflated **once per event** by a
//!   per-thread compressor that is reset (no history) before each body and ends in a sync
//!   flush. Those body bytes are cached per thread (keyed by the shared body's allocation), so
//!   an event fanned out to 10,000 sessions is deflated once per worker thread, not 10,000
//!   times. Control frames (HELLO, op 11, 7, 9) go out as stored blocks. The cost is the
//!   cross-message history (a message compresses on its own). Checked with flate2's
//!   `Decompress` (tests below) and Python's `zlib.decompressobj` (the compat suite).
//!   The Adler-32 trailer is never written (the stream never ends), so the checksum of the
//!   spliced data never matters.
//! * **zstd-stream: one frame per connection, a context only while needed.** Python's
//!   decoders (python-zstandard's `decompressobj()` used by discord.py, CPython 3.14's
//!   `compression.zstd.ZstdDecompressor` used by hikari and discord.py) stop at the end of
//!   the first frame ("Already at the end of a Zstandard frame"), so the connection must stay
//!   in one frame. Inside a frame, compressed blocks carry decoder state forward (the three
//!   repeat offsets, and the previous Huffman/FSE tables), so compressed blocks of a *new*
//!   context cannot follow those of an old one: the decoder would resolve repeat offsets
//!   against the old block's history. Raw blocks (type 0) change none of that state. Hence:
//!   - the frame header is a constant we write ourselves (magic, descriptor `00`, the window
//!     byte for `zstd_window_log`), and until the first dispatch everything (HELLO, ACKs) is
//!     raw blocks: a connect allocates nothing;
//!   - the first dispatch creates a small context (window 4 KiB, hash/chain log 10: 56 KB
//!     by `ZSTD_sizeof_CCtx`, against 976 KB reserved for window log 17 at level 1);
//!     its own frame header is stripped (its decoder state at that point is the frame-start
//!     state: repeat offsets 1/4/8, no tables, exactly what a fresh context assumes);
//!   - [`Encoder::release`] then does what [`ZstdRelease`] says: by default
//!     ([`ZstdRelease::Raw`]) the context is dropped and the rest of the connection is sent
//!     as raw blocks in the same frame (correct for every decoder; an idle session holds
//!     nothing; the price is that a session's traffic after its first idle period is not
//!     compressed). [`ZstdRelease::Keep`] keeps the context (~35 KB) for good;
//!     [`ZstdRelease::NewFrame`] ends the frame and starts a new one (libzstd-based clients
//!     such as twilight only).
//!
//! Unknown `compress` query values are an error ([`UnknownCompression`]); the shell should
//! answer the upgrade request with HTTP 400, since no gateway close code exists before the
//! WebSocket is open.

use std::cell::RefCell;
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

/// What [`Encoder::release`] does to a zstd-stream connection's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZstdRelease {
    /// Drop it; the rest of the connection goes out as raw blocks of the same frame. Safe
    /// for every client; nothing held while idle.
    Raw,
    /// Keep the context (safe for every client; 56 KB per connection with the defaults).
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
    /// zstd window log (10–30). Default 12 (4 KiB): a small context; also the largest block.
    pub zstd_window_log: u32,
    /// zstd hash and chain log. Default 10: with level 1 and window log 12 a context is
    /// 56 KB (`ZSTD_sizeof_CCtx`).
    pub zstd_hash_log: u32,
    pub zstd_release: ZstdRelease,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            zlib_level: 1,
            zstd_level: 1,
            zstd_window_log: 12,
            zstd_hash_log: 10,
            zstd_release: ZstdRelease::Raw,
        }
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
    /// No compressor held (zlib always; zstd before the first dispatch).
    Idle,
    Zstd(Box<zstd::stream::raw::Encoder<'static>>),
    /// zstd: the context was released for good ([`ZstdRelease::Raw`]): raw blocks only.
    ZstdRaw,
}

/// Per-connection transport encoder.
pub struct Encoder {
    kind: Compression,
    config: EncoderConfig,
    state: State,
    /// The stream's header was written (zlib header / zstd frame header): the stream is
    /// open on the client side.
    started: bool,
    /// zstd [`ZstdRelease::NewFrame`]: epilogue of a released, still-open frame, to send
    /// before the next frame.
    zstd_pending_end: Vec<u8>,
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder").field("kind", &self.kind).field("holding_state", &self.is_holding_state()).finish()
    }
}

/// The zlib header: deflate, 32 KiB window, fastest level (0x7801 % 31 == 0).
const ZLIB_HEADER: [u8; 2] = [0x78, 0x01];
/// The empty stored block a sync flush writes.
const SYNC_FLUSH: [u8; 5] = [0, 0, 0, 0xff, 0xff];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Encoder {
    pub fn new(kind: Compression, config: EncoderConfig) -> Encoder {
        Encoder { kind, config, state: State::Idle, started: false, zstd_pending_end: Vec::new() }
    }

    pub fn compression(&self) -> Compression {
        self.kind
    }

    /// Whether a compressor is allocated.
    pub fn is_holding_state(&self) -> bool {
        matches!(self.state, State::Zstd(_))
    }

    /// Encodes one whole gateway frame. Without compression the frame is returned as a text
    /// message without copying.
    pub fn encode(&mut self, frame: Bytes) -> WsMessage {
        match self.kind {
            Compression::None => WsMessage::Text(frame),
            _ => self.encode_parts(&[&frame]),
        }
    }

    /// Encodes a small control frame (HELLO, op 11, op 7, op 9) without allocating a
    /// compressor: a stored deflate block (zlib), or a raw block while no zstd context is
    /// held. While a zstd context is held the frame goes through it.
    pub fn encode_control(&mut self, frame: Bytes) -> WsMessage {
        match (self.kind, &self.state) {
            (Compression::ZlibStream, _) if frame.len() <= usize::from(u16::MAX) => {
                let mut out = Vec::with_capacity(frame.len() + 14);
                self.zlib_start(&mut out);
                stored_block(&frame, &mut out);
                out.extend_from_slice(&SYNC_FLUSH);
                WsMessage::Binary(Bytes::from(out))
            }
            (Compression::ZstdStream, State::Idle | State::ZstdRaw) => {
                let mut out = Vec::with_capacity(frame.len() + 16);
                self.zstd_raw(&[&frame], &mut out);
                WsMessage::Binary(Bytes::from(out))
            }
            _ => self.encode(frame),
        }
    }

    /// Encodes one dispatch frame from its parts, so the shared body is never concatenated
    /// with its per-session envelope on compressed connections. On zlib-stream the body is
    /// deflated once per event per thread (see the module docs).
    pub fn encode_dispatch(&mut self, frame: &DispatchFrame) -> WsMessage {
        match self.kind {
            Compression::None => WsMessage::Text(frame.to_bytes()),
            Compression::ZlibStream => {
                let mut out = Vec::new();
                self.zlib_dispatch(frame, &mut out);
                WsMessage::Binary(Bytes::from(out))
            }
            Compression::ZstdStream => self.encode_parts(&frame.parts()),
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
            Compression::ZlibStream => {
                self.zlib_start(out);
                with_zlib(self.config.zlib_level, |compress| deflate_fresh(compress, parts, out));
            }
            Compression::ZstdStream => self.zstd(parts, out),
        }
    }

    /// Drops the compressor (call when the connection has gone idle); see [`ZstdRelease`].
    /// zlib-stream never holds one.
    pub fn release(&mut self) {
        let State::Zstd(encoder) = &mut self.state else { return };
        match self.config.zstd_release {
            ZstdRelease::Keep => {}
            ZstdRelease::Raw => self.state = State::ZstdRaw,
            ZstdRelease::NewFrame => {
                // End the open frame now (a 3-byte empty last block; no checksum is
                // configured) and keep those bytes for the next message.
                let mut end = Vec::with_capacity(16);
                finish_zstd(encoder, &mut end);
                self.zstd_pending_end = end;
                self.started = false;
                self.state = State::Idle;
            }
        }
    }

    fn zlib_start(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            out.extend_from_slice(&ZLIB_HEADER);
            self.started = true;
        }
    }

    fn zlib_dispatch(&mut self, frame: &DispatchFrame, out: &mut Vec<u8>) {
        let level = self.config.zlib_level;
        let body = shared_deflate(frame.body(), level);
        out.reserve(ZLIB_HEADER.len() + 5 + frame.head().len() + body.len());
        self.zlib_start(out);
        stored_block(frame.head(), out);
        out.extend_from_slice(&body);
    }

    /// The constant frame header a context configured by `self.config` writes.
    fn zstd_header(&self) -> [u8; 6] {
        let [a, b, c, d] = ZSTD_MAGIC;
        // Descriptor 0: no content size, not single-segment, no checksum, no dictionary;
        // then the window descriptor (exponent = window log - 10, mantissa 0).
        [a, b, c, d, 0, ((self.config.zstd_window_log - 10) as u8) << 3]
    }

    /// Writes `parts` as raw blocks of the open frame (opening it first if needed).
    fn zstd_raw(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        out.append(&mut self.zstd_pending_end);
        if !self.started {
            out.extend_from_slice(&self.zstd_header());
            self.started = true;
        }
        // A block is at most the window size (and 128 KiB).
        let max_block = 1usize << self.config.zstd_window_log.min(17);
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total == 0 {
            // An empty raw block, so even an empty message is bytes the client's decoder
            // consumes (libzstd fails after 16 calls that make no progress).
            out.extend_from_slice(&[0, 0, 0]);
            return;
        }
        out.reserve(total + 3 * (total / max_block + 1));
        let mut block_left = 0usize;
        let mut remaining = total;
        for part in parts {
            let mut part: &[u8] = part;
            while !part.is_empty() {
                if block_left == 0 {
                    block_left = remaining.min(max_block);
                    // Last_Block 0, Block_Type 0 (raw), Block_Size.
                    let header = (block_left as u32) << 3;
                    out.extend_from_slice(&header.to_le_bytes()[..3]);
                }
                let take = part.len().min(block_left);
                out.extend_from_slice(&part[..take]);
                part = &part[take..];
                block_left -= take;
                remaining -= take;
            }
        }
    }

    fn zstd(&mut self, parts: &[&[u8]], out: &mut Vec<u8>) {
        // Empty input: a fresh context would write nothing (not even the frame header the
        // strip below expects), so write no blocks; this still opens the frame if needed.
        if matches!(self.state, State::ZstdRaw) || parts.iter().all(|p| p.is_empty()) {
            return self.zstd_raw(parts, out);
        }
        let mut strip = None;
        if matches!(self.state, State::Idle) {
            out.append(&mut self.zstd_pending_end);
            self.state = State::Zstd(Box::new(new_zstd(&self.config)));
            if self.started {
                // The frame is already open: drop the context's own frame header.
                strip = Some(out.len());
            }
            self.started = true;
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
        if let Some(at) = strip {
            let header = self.zstd_header();
            // The context was configured from the same window log, without checksum or
            // content size, so it wrote exactly the header we wrote when opening the frame.
            assert_eq!(out.get(at..at + header.len()), Some(&header[..]), "zstd frame header");
            out.drain(at..at + header.len());
        }
    }
}

/// Appends `data` (≤ 65,535 bytes) as one non-final stored deflate block. The stream is
/// byte-aligned (after the zlib header or a sync flush), so BFINAL/BTYPE fill a zero byte.
fn stored_block(data: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(data.len()).expect("stored block of at most 65535 bytes");
    out.push(0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
}

/// Per-thread zlib state: one raw-deflate compressor (reset before each use) and the
/// deflated bodies of the last few events.
struct ZlibThread {
    level: u32,
    compress: Compress,
    cache: Vec<(Bytes, Bytes)>,
    next_slot: usize,
}

/// Bodies cached per thread, and the largest body cached (bigger ones are rarely shared:
/// GUILD_CREATE and READY go to one session).
const BODY_CACHE_SLOTS: usize = 8;
const BODY_CACHE_MAX: usize = 64 * 1024;

thread_local! {
    static ZLIB: RefCell<Option<ZlibThread>> = const { RefCell::new(None) };
}

fn with_zlib_thread<R>(level: u32, f: impl FnOnce(&mut ZlibThread) -> R) -> R {
    ZLIB.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|z| z.level != level) {
            *slot = Some(ZlibThread {
                level,
                compress: Compress::new(flate2::Compression::new(level), false),
                cache: Vec::new(),
                next_slot: 0,
            });
        }
        f(slot.as_mut().expect("set just above"))
    })
}

fn with_zlib<R>(level: u32, f: impl FnOnce(&mut Compress) -> R) -> R {
    with_zlib_thread(level, |z| f(&mut z.compress))
}

/// `body` + `}` deflated with no history, ending in a sync flush; once per body per thread.
fn shared_deflate(body: &Bytes, level: u32) -> Bytes {
    with_zlib_thread(level, |z| {
        let hit = z.cache.iter().find(|(b, _)| b.as_ptr() == body.as_ptr() && b.len() == body.len());
        if let Some((_, deflated)) = hit {
            return deflated.clone();
        }
        let mut out = Vec::with_capacity(body.len() / 2 + 64);
        deflate_fresh(&mut z.compress, &[body, DispatchFrame::TAIL], &mut out);
        let deflated = Bytes::from(out);
        if body.len() <= BODY_CACHE_MAX {
            if z.cache.len() < BODY_CACHE_SLOTS {
                z.cache.push((body.clone(), deflated.clone()));
            } else {
                z.cache[z.next_slot] = (body.clone(), deflated.clone());
            }
            z.next_slot = (z.next_slot + 1) % BODY_CACHE_SLOTS;
        }
        deflated
    })
}

/// Deflates `parts` with no history (raw deflate, no header), ending in a sync flush.
fn deflate_fresh(compress: &mut Compress, parts: &[&[u8]], out: &mut Vec<u8>) {
    compress.reset();
    for part in parts {
        deflate(compress, part, FlushCompress::None, out);
    }
    deflate(compress, &[], FlushCompress::Sync, out);
}

fn new_zstd(config: &EncoderConfig) -> zstd::stream::raw::Encoder<'static> {
    // Creating a context and setting in-range parameters only fails on allocation failure.
    let mut encoder = zstd::stream::raw::Encoder::new(config.zstd_level).expect("zstd context");
    encoder.set_parameter(CParameter::WindowLog(config.zstd_window_log)).expect("zstd window log in range");
    encoder.set_parameter(CParameter::HashLog(config.zstd_hash_log)).expect("zstd hash log in range");
    encoder.set_parameter(CParameter::ChainLog(config.zstd_hash_log)).expect("zstd chain log in range");
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
        let second = binary(encoder.encode(Bytes::from(message(2))));
        assert_ne!(second[0], 0x78, "the header is written once");
        assert!(second.ends_with(&[0, 0, 0xff, 0xff]));
        assert!(!encoder.is_holding_state(), "zlib-stream never holds a compressor");
    }

    #[test]
    fn zlib_dispatches_splice_one_deflated_body_into_every_stream() {
        let body = Bytes::from(format!(r#"{{"content":"{}","channel_id":"1234567890"}}"#, "hello ".repeat(40)));
        let mut sessions: Vec<(Encoder, ZlibClient, crate::Outbox)> = (0..3)
            .map(|i| {
                let encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
                (encoder, ZlibClient::new(), crate::Outbox::new(format!("s{i}"), crate::ReplayLimits::default()))
            })
            .collect();
        // Different histories first: HELLO, then i filler dispatches.
        for (i, (encoder, client, outbox)) in sessions.iter_mut().enumerate() {
            let hello = br#"{"op":10,"s":null,"t":null,"d":{"heartbeat_interval":41250}}"#;
            assert_eq!(client.feed(&binary(encoder.encode_control(Bytes::from_static(hello)))), hello);
            for j in 0..i {
                let frame = outbox.dispatch("GUILD_CREATE", &Bytes::from(message(j)));
                assert_eq!(client.feed(&binary(encoder.encode_dispatch(&frame))), frame.to_bytes().to_vec());
            }
        }
        let mut tails = Vec::new();
        for (encoder, client, outbox) in &mut sessions {
            let frame = outbox.dispatch("MESSAGE_CREATE", &body);
            let sent = binary(encoder.encode_dispatch(&frame));
            assert!(sent.len() < frame.len(), "the body is compressed ({} of {})", sent.len(), frame.len());
            assert_eq!(client.feed(&sent), frame.to_bytes().to_vec());
            tails.push(sent.slice(5 + frame.head().len()..));
        }
        assert!(tails.windows(2).all(|w| w[0] == w[1]), "every session gets the same deflated body");
        assert!(!sessions.iter().any(|(e, ..)| e.is_holding_state()));
    }

    #[test]
    fn zlib_control_frames_are_stored_blocks() {
        let mut encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
        let mut client = ZlibClient::new();
        let hello = br#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#;
        let ack = br#"{"op":11,"d":null,"s":null,"t":null}"#;
        let sent = binary(encoder.encode_control(Bytes::from_static(hello)));
        assert_eq!(&sent[..3], &[0x78, 0x01, 0x00], "a zlib header, then a stored block");
        assert_eq!(client.feed(&sent), hello);
        for round in 0..3 {
            let m = binary(encoder.encode(Bytes::from(message(round))));
            assert_eq!(client.feed(&m), message(round));
            let a = binary(encoder.encode_control(Bytes::from_static(ack)));
            assert_eq!(a.len(), ack.len() + 10);
            assert_eq!(client.feed(&a), ack);
        }
        assert!(!encoder.is_holding_state());
    }

    #[test]
    fn zstd_hello_and_acks_need_no_context_and_the_first_dispatch_continues_the_frame() {
        for release in [ZstdRelease::Raw, ZstdRelease::Keep, ZstdRelease::NewFrame] {
            let config = EncoderConfig { zstd_release: release, ..EncoderConfig::default() };
            let mut encoder = Encoder::new(Compression::ZstdStream, config);
            let mut client = ZstdClient::new();
            let hello = br#"{"op":10,"s":null,"t":null,"d":{"heartbeat_interval":41250}}"#;
            let ack = br#"{"op":11,"s":null,"t":null,"d":null}"#;
            let first = binary(encoder.encode_control(Bytes::from_static(hello)));
            assert_eq!(&first[..4], &ZSTD_MAGIC);
            assert!(!encoder.is_holding_state());
            assert_eq!(client.feed(&first), hello);
            assert_eq!(client.feed(&binary(encoder.encode_control(Bytes::from_static(ack)))), ack);
            assert!(!encoder.is_holding_state());
            let m = binary(encoder.encode(Bytes::from(message(1))));
            assert!(encoder.is_holding_state());
            assert_ne!(&m[..4], &ZSTD_MAGIC, "one frame");
            assert_eq!(client.feed(&m), message(1));
            encoder.release();
            assert_eq!(encoder.is_holding_state(), release == ZstdRelease::Keep);
            for i in 2..6 {
                let m = binary(encoder.encode(Bytes::from(message(i))));
                if release != ZstdRelease::NewFrame {
                    assert_ne!(&m[..4], &ZSTD_MAGIC, "one frame");
                }
                assert_eq!(client.feed(&m), message(i));
                assert_eq!(client.feed(&binary(encoder.encode_control(Bytes::from_static(ack)))), ack);
            }
        }
    }

    /// Found by `fuzz/fuzz_targets/zlib_roundtrip.rs`: an empty message on a zstd-stream
    /// connection whose frame was opened by a raw control frame (no context yet) panicked
    /// ("zstd frame header": the fresh context writes nothing for empty input, so there was
    /// no header to strip). Every message, empty or not, must keep the stream decodable.
    #[test]
    fn zstd_empty_message_after_a_raw_control_frame_keeps_the_stream_valid() {
        for release in [ZstdRelease::Raw, ZstdRelease::Keep, ZstdRelease::NewFrame] {
            let config = EncoderConfig { zstd_release: release, ..EncoderConfig::default() };
            let mut encoder = Encoder::new(Compression::ZstdStream, config);
            let mut client = ZstdClient::new();
            let hello = br#"{"op":10,"d":{"heartbeat_interval":41250}}"#;
            assert_eq!(client.feed(&binary(encoder.encode_control(Bytes::from_static(hello)))), hello);
            for _ in 0..20 {
                // Each one is bytes the decoder consumes: libzstd gives up after 16 empty calls.
                let sent = binary(encoder.encode(Bytes::new()));
                assert!(!sent.is_empty());
                assert_eq!(client.feed(&sent), b"");
            }
            assert_eq!(client.feed(&binary(encoder.encode_parts(&[b"", b""]))), b"");
            let next = message(1);
            assert_eq!(client.feed(&binary(encoder.encode(Bytes::from(next.clone())))), next);
            encoder.release();
            assert_eq!(client.feed(&binary(encoder.encode(Bytes::new()))), b"");
            let last = message(2);
            assert_eq!(client.feed(&binary(encoder.encode(Bytes::from(last.clone())))), last);
        }
    }

    #[test]
    fn zstd_context_is_small() {
        let mut ctx = zstd::zstd_safe::CCtx::create();
        let c = EncoderConfig::default();
        ctx.set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(c.zstd_level)).unwrap();
        ctx.set_parameter(zstd::zstd_safe::CParameter::WindowLog(c.zstd_window_log)).unwrap();
        ctx.set_parameter(zstd::zstd_safe::CParameter::HashLog(c.zstd_hash_log)).unwrap();
        ctx.set_parameter(zstd::zstd_safe::CParameter::ChainLog(c.zstd_hash_log)).unwrap();
        let msg = message(1);
        let mut out = vec![0u8; 4096];
        let mut output = zstd::zstd_safe::OutBuffer::around(&mut out[..]);
        let mut input = zstd::zstd_safe::InBuffer::around(&msg[..]);
        ctx.compress_stream2(&mut output, &mut input, zstd::zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush)
            .unwrap();
        assert!(ctx.sizeof() < 64 * 1024, "ZSTD_sizeof_CCtx = {}", ctx.sizeof());
    }

    /// Python's `zlib.decompressobj()` (discord.py's zlib-stream decoder) and, when the
    /// `zstandard` module is installed, python-zstandard's `decompressobj()` (discord.py's
    /// zstd-stream decoder, which stops at the end of the first frame) read the streams:
    /// spliced zlib bodies, zstd raw blocks before and after a context.
    #[test]
    fn python_decoders_read_the_streams() {
        let script = r#"
import sys, zlib
try:
    import zstandard
except ImportError:
    zstandard = None
out = []
for line in sys.stdin:
    kind, *msgs = line.split()
    if kind == "zstd" and zstandard is None:
        out.append("skip")
        continue
    d = zlib.decompressobj() if kind == "zlib" else zstandard.ZstdDecompressor().decompressobj()
    out.append(" ".join(d.decompress(bytes.fromhex(m)).hex() for m in msgs))
print("\n".join(out))
"#;
        let Ok(mut child) = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("python3 not found: skipped");
            return;
        };
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut input = String::new();
        let mut expected = Vec::new();
        let body = Bytes::from(format!(r#"{{"content":"{}"}}"#, "spliced ".repeat(30)));
        for kind in [Compression::ZlibStream, Compression::ZstdStream] {
            for session in 0..3 {
                let mut encoder = Encoder::new(kind, EncoderConfig::default());
                let mut outbox = crate::Outbox::new("s", crate::ReplayLimits::default());
                let mut sent = Vec::new();
                let mut plain = Vec::new();
                let hello = Bytes::from_static(br#"{"op":10,"s":null,"t":null,"d":{"heartbeat_interval":41250}}"#);
                sent.push(binary(encoder.encode_control(hello.clone())));
                plain.push(hello.to_vec());
                for i in 0..6 {
                    let b = if i % 2 == 0 { body.clone() } else { Bytes::from(message(i + session)) };
                    let frame = outbox.dispatch("MESSAGE_CREATE", &b);
                    sent.push(binary(encoder.encode_dispatch(&frame)));
                    plain.push(frame.to_bytes().to_vec());
                    if i == 2 {
                        encoder.release();
                    }
                    let ack = Bytes::from_static(crate::frame::HEARTBEAT_ACK);
                    sent.push(binary(encoder.encode_control(ack.clone())));
                    plain.push(ack.to_vec());
                }
                let name = if kind == Compression::ZlibStream { "zlib" } else { "zstd" };
                input.push_str(name);
                for m in &sent {
                    input.push(' ');
                    input.push_str(&hex(m));
                }
                input.push('\n');
                expected.push(plain.iter().map(|p| hex(p)).collect::<Vec<_>>().join(" "));
            }
        }
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "python failed");
        let got = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines.len(), expected.len());
        for (line, want) in lines.iter().zip(&expected) {
            if *line == "skip" {
                eprintln!("python zstandard not installed: zstd-stream check skipped");
            } else {
                assert_eq!(line, want);
            }
        }
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
        fn zstd_random_messages_and_releases_round_trip(steps in steps(), mode in 0u8..3) {
            let release = [ZstdRelease::Raw, ZstdRelease::Keep, ZstdRelease::NewFrame][usize::from(mode)];
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
