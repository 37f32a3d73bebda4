//! Fuzz target: the gateway's zlib-stream and zstd-stream encoders
//! (`guildhall_proto::Encoder`) on arbitrary message sequences, decoded back with one
//! client-side inflater / libzstd decoder per connection, as discord.py, discord.js and
//! twilight do. Every message must decode to exactly its input, in order.
//!
//! Input: the first byte picks the codec and the zstd release policy; the rest is split
//! on 0xFF into messages, each message's first byte picking the encoder entry point
//! (`encode`, `encode_control`, `encode_parts` split in two, or `release` first).
#![no_main]

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress};
use guildhall_proto::{Compression, Encoder, EncoderConfig, WsMessage, ZstdRelease};
use libfuzzer_sys::fuzz_target;
use zstd::stream::raw::{InBuffer, Operation, OutBuffer};

enum Client {
    Zlib(Decompress),
    Zstd(zstd::stream::raw::Decoder<'static>),
}

impl Client {
    fn feed(&mut self, message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(message.len() * 4 + 64);
        match self {
            Client::Zlib(d) => {
                assert!(message.ends_with(&[0, 0, 0xff, 0xff]), "zlib-stream message without sync flush");
                let mut input = message;
                loop {
                    let before = d.total_in();
                    d.decompress_vec(input, &mut out, FlushDecompress::Sync).expect("inflate");
                    input = &input[(d.total_in() - before) as usize..];
                    if input.is_empty() && out.len() < out.capacity() {
                        return out;
                    }
                    out.reserve(out.capacity());
                }
            }
            Client::Zstd(d) => {
                let mut input = InBuffer::around(message);
                loop {
                    out.reserve(4096);
                    let filled = out.len();
                    let mut output = OutBuffer::around_pos(&mut out, filled);
                    d.run(&mut input, &mut output).expect("zstd decode");
                    let full = output.pos() == output.capacity();
                    if input.pos() == message.len() && !full {
                        return out;
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let kind = if mode & 1 == 0 { Compression::ZlibStream } else { Compression::ZstdStream };
    let zstd_release = match (mode >> 1) % 3 {
        0 => ZstdRelease::Raw,
        1 => ZstdRelease::Keep,
        _ => ZstdRelease::NewFrame,
    };
    let mut encoder = Encoder::new(kind, EncoderConfig { zstd_release, ..EncoderConfig::default() });
    let mut client = match kind {
        Compression::ZlibStream => Client::Zlib(Decompress::new(true)),
        _ => Client::Zstd(zstd::stream::raw::Decoder::new().expect("zstd decoder")),
    };
    for message in rest.split(|&b| b == 0xff) {
        let (op, payload) = message.split_first().map_or((0, message), |(&op, p)| (op, p));
        if op & 0x10 != 0 {
            encoder.release();
        }
        let encoded = match op % 3 {
            0 => encoder.encode(Bytes::copy_from_slice(payload)),
            1 => encoder.encode_control(Bytes::copy_from_slice(payload)),
            _ => {
                let (a, b) = payload.split_at(payload.len() / 2);
                encoder.encode_parts(&[a, b])
            }
        };
        let WsMessage::Binary(bytes) = encoded else { panic!("compressed connections send binary messages") };
        assert_eq!(client.feed(&bytes), payload, "round trip");
    }
});
