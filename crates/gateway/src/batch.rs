//! Batched dispatch writes: the frames of one delivery batch go to the socket as
//! unmasked server WebSocket frames (RFC 6455 5.2) with vectored writes, without
//! copying the shared event bodies into a per-session buffer. Plain JSON frames are
//! written as their parts (WebSocket header + envelope head, shared body, `}`);
//! compressed frames as the encoder's bytes.

use std::io::{self, IoSlice};

use bytes::Bytes;
use guildhall_proto::WsMessage;
use guildhall_proto::frame::DispatchFrame;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Most slices handed to one `writev`.
const SLICES: usize = 64;

/// One WebSocket message of a batch.
pub(crate) struct OutMsg {
    /// FIN + opcode, then the payload length (2, 4 or 10 bytes).
    ws_head: [u8; 10],
    ws_head_len: u8,
    payload: Payload,
}

enum Payload {
    /// A text message: the dispatch frame's parts.
    Frame(DispatchFrame),
    /// A binary message (compressed frame).
    Bytes(Bytes),
}

impl OutMsg {
    /// A text message carrying `frame`.
    pub(crate) fn text(frame: DispatchFrame) -> OutMsg {
        let (ws_head, ws_head_len) = ws_head(0x1, frame.len());
        OutMsg { ws_head, ws_head_len, payload: Payload::Frame(frame) }
    }

    /// A binary message carrying `bytes`.
    #[cfg(test)]
    fn binary(bytes: Bytes) -> OutMsg {
        Self::bytes(0x2, bytes)
    }

    /// The message the encoder produced (text without compression, else binary).
    pub(crate) fn from_ws(msg: WsMessage) -> OutMsg {
        match msg {
            WsMessage::Text(b) => Self::bytes(0x1, b),
            WsMessage::Binary(b) => Self::bytes(0x2, b),
        }
    }

    fn bytes(opcode: u8, bytes: Bytes) -> OutMsg {
        let (ws_head, ws_head_len) = ws_head(opcode, bytes.len());
        OutMsg { ws_head, ws_head_len, payload: Payload::Bytes(bytes) }
    }

    /// Bytes on the wire, WebSocket header included.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.ws_head_len)
            + match &self.payload {
                Payload::Frame(f) => f.len(),
                Payload::Bytes(b) => b.len(),
            }
    }

    fn parts(&self) -> [&[u8]; 4] {
        let head = &self.ws_head[..usize::from(self.ws_head_len)];
        match &self.payload {
            Payload::Frame(f) => [head, f.head(), f.body(), DispatchFrame::TAIL],
            Payload::Bytes(b) => [head, b, &[], &[]],
        }
    }
}

/// The header of an unmasked, unfragmented server frame with this opcode and length.
fn ws_head(opcode: u8, len: usize) -> ([u8; 10], u8) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if let Ok(len) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// Writes every message of `msgs`, in order, with as few `writev` calls as the socket
/// allows.
pub(crate) async fn write_batch<W: AsyncWrite + Unpin + ?Sized>(io: &mut W, msgs: &[OutMsg]) -> io::Result<()> {
    let mut written = 0usize;
    loop {
        let mut slices = [IoSlice::new(&[]); SLICES];
        let mut n = 0;
        let mut pos = 0usize;
        'fill: for m in msgs {
            for part in m.parts() {
                let end = pos + part.len();
                if end > written {
                    slices[n] = IoSlice::new(&part[written.saturating_sub(pos)..]);
                    n += 1;
                    if n == SLICES {
                        break 'fill;
                    }
                }
                pos = end;
            }
        }
        if n == 0 {
            return io.flush().await;
        }
        let w = io.write_vectored(&slices[..n]).await?;
        if w == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildhall_proto::{Outbox, ReplayLimits};

    /// A writer that takes at most `chunk` bytes per call, as a full socket does.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk);
            self.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            let mut left = self.chunk;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.out.extend_from_slice(&b[..take]);
                left -= take;
                n += take;
            }
            std::task::Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Parses unmasked server frames back into (opcode, payload).
    fn parse(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            assert_eq!(wire[0] & 0xf0, 0x80, "FIN set, no RSV bits");
            assert_eq!(wire[1] & 0x80, 0, "server frames are unmasked");
            let (len, at) = match wire[1] {
                126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
                127 => (u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize, 10),
                n => (usize::from(n), 2),
            };
            out.push((wire[0] & 0x0f, wire[at..at + len].to_vec()));
            wire = &wire[at + len..];
        }
        out
    }

    #[tokio::test]
    async fn batches_survive_partial_writes_at_every_length_class() {
        let mut outbox = Outbox::new("s", ReplayLimits::default());
        let bodies = [10usize, 200, 70_000, 1, 125, 126, 65_535];
        let mut msgs = Vec::new();
        let mut expected = Vec::new();
        for (i, n) in bodies.iter().enumerate() {
            let body = Bytes::from(format!("\"{}\"", "x".repeat(*n)));
            let frame = outbox.dispatch("MESSAGE_CREATE", &body);
            expected.push((0x1, frame.to_bytes().to_vec()));
            msgs.push(OutMsg::text(frame));
            let bin = Bytes::from(vec![i as u8; *n]);
            expected.push((0x2, bin.to_vec()));
            msgs.push(OutMsg::binary(bin));
        }
        for chunk in [1, 7, 4096, usize::MAX] {
            let mut w = Trickle { out: Vec::new(), chunk };
            write_batch(&mut w, &msgs).await.unwrap();
            assert_eq!(w.out.len(), msgs.iter().map(OutMsg::len).sum::<usize>());
            assert_eq!(parse(&w.out), expected, "chunk {chunk}");
        }
    }
}
