//! Server→client gateway frames: the constant control frames (HELLO, HEARTBEAT_ACK,
//! RECONNECT, INVALID_SESSION, server heartbeat request) and the dispatch envelope that is
//! spliced around an event body serialized once and shared by every recipient.
//!
//! Key order: every frame writes `"op"`, then `"s"` and `"t"`, then `"d"` last. Discord sends
//! `s`/`t` (as `null` on non-dispatch ops) and some client-side scanners (twilight's
//! `GatewayEventDeserializer`) look for the top-level `"t"` by scanning the text, so `t` must
//! come before a body that may itself contain a `"t"` key.

use bytes::Bytes;

/// op 11, the reply to every client op 1.
pub const HEARTBEAT_ACK: &[u8] = br#"{"op":11,"s":null,"t":null,"d":null}"#;
/// op 1 sent by the server: "send a heartbeat now".
pub const HEARTBEAT_REQUEST: &[u8] = br#"{"op":1,"s":null,"t":null,"d":null}"#;
/// op 7: reconnect and resume.
pub const RECONNECT: &[u8] = br#"{"op":7,"s":null,"t":null,"d":null}"#;
/// op 9 `d:true`: the session may be resumed.
pub const INVALID_SESSION_RESUMABLE: &[u8] = br#"{"op":9,"s":null,"t":null,"d":true}"#;
/// op 9 `d:false`: the client must IDENTIFY again.
pub const INVALID_SESSION: &[u8] = br#"{"op":9,"s":null,"t":null,"d":false}"#;
/// Body of the RESUMED dispatch. discord.py writes `data['__shard_id__']` into it, so it must
/// be an object, never `null`.
pub const RESUMED_BODY: &[u8] = b"{}";

/// Builds the op 10 HELLO frame for `heartbeat_interval_ms`.
pub fn hello(heartbeat_interval_ms: u64) -> Bytes {
    Bytes::from(format!(r#"{{"op":10,"s":null,"t":null,"d":{{"heartbeat_interval":{heartbeat_interval_ms}}}}}"#))
}

/// `op 9` with the given resumability.
pub fn invalid_session(resumable: bool) -> Bytes {
    Bytes::from_static(if resumable { INVALID_SESSION_RESUMABLE } else { INVALID_SESSION })
}

/// Longest event name accepted (Discord's longest, APPLICATION_COMMAND_PERMISSIONS_UPDATE,
/// has 38 bytes).
pub const MAX_EVENT_NAME: usize = 47;

/// A dispatch event name (`MESSAGE_CREATE`), stored inline so that a replay-buffer entry
/// costs no heap allocation of its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EventName {
    len: u8,
    bytes: [u8; MAX_EVENT_NAME],
}

impl EventName {
    /// Accepts 1..=47 bytes of `A-Z`, `0-9` and `_`: such a name needs no JSON escaping.
    pub fn new(name: &str) -> Option<EventName> {
        if !EventName::is_valid(name) {
            return None;
        }
        let mut bytes = [0u8; MAX_EVENT_NAME];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        // The length was checked against MAX_EVENT_NAME (< 256) above.
        Some(EventName { len: name.len() as u8, bytes })
    }

    /// What [`EventName::new`] accepts, checked without building one.
    pub fn is_valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_EVENT_NAME
            && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII was copied in `new`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("event names are ASCII")
    }
}

impl std::fmt::Debug for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Room for `{"op":0,"s":` + 20 digits + `,"t":"` + 47-byte name + `","d":`.
const HEAD_CAP: usize = 96;

/// One op 0 frame for one session, in three parts: a per-session head
/// (`{"op":0,"s":N,"t":"NAME","d":`), the shared body, and the tail `}`. Encoders that can
/// take the parts separately (see [`crate::compress::Encoder::encode_parts`]) never
/// concatenate them; [`DispatchFrame::to_bytes`] does, for plain text sockets.
#[derive(Clone)]
pub struct DispatchFrame {
    seq: u64,
    head_len: u8,
    head: [u8; HEAD_CAP],
    body: Bytes,
}

impl DispatchFrame {
    /// The closing brace after the body.
    pub const TAIL: &'static [u8] = b"}";

    pub(crate) fn new(seq: u64, name: &EventName, body: Bytes) -> DispatchFrame {
        let mut head = [0u8; HEAD_CAP];
        let mut len = 0;
        let mut put = |part: &[u8]| {
            head[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        };
        put(br#"{"op":0,"s":"#);
        let mut digits = [0u8; 20];
        put(guildhall_model::id::format_u64(seq, &mut digits).as_bytes());
        put(br#","t":""#);
        put(name.as_str().as_bytes());
        put(br#"","d":"#);
        // At most 12 + 20 + 6 + 47 + 6 = 91 bytes were written, which fits in a u8.
        DispatchFrame { seq, head_len: len as u8, head, body }
    }

    /// The sequence number (`s`) of this frame.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// `{"op":0,"s":N,"t":"NAME","d":`.
    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    /// The shared, already-serialized event body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Head, body and tail, in order.
    pub fn parts(&self) -> [&[u8]; 3] {
        [self.head(), &self.body, Self::TAIL]
    }

    /// Length of the whole frame in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len() + Self::TAIL.len()
    }

    /// Always false: a frame has at least its head and tail.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the whole frame to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        for part in self.parts() {
            out.extend_from_slice(part);
        }
    }

    /// The whole frame as one buffer (one copy of the body).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.len());
        self.write_to(&mut out);
        Bytes::from(out)
    }
}

impl std::fmt::Debug for DispatchFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchFrame")
            .field("head", &String::from_utf8_lossy(self.head()))
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_are_json_with_null_s_and_t() {
        for frame in [HEARTBEAT_ACK, HEARTBEAT_REQUEST, RECONNECT, INVALID_SESSION, INVALID_SESSION_RESUMABLE] {
            let v: serde_json::Value = serde_json::from_slice(frame).unwrap();
            assert!(v["s"].is_null() && v["t"].is_null(), "{v}");
        }
        let hello = hello(41_250);
        assert_eq!(&hello[..], br#"{"op":10,"s":null,"t":null,"d":{"heartbeat_interval":41250}}"#);
        assert_eq!(&invalid_session(false)[..], br#"{"op":9,"s":null,"t":null,"d":false}"#);
    }

    #[test]
    fn event_names_are_restricted_to_what_needs_no_escaping() {
        assert_eq!(EventName::new("MESSAGE_CREATE").unwrap().as_str(), "MESSAGE_CREATE");
        assert!(EventName::new("APPLICATION_COMMAND_PERMISSIONS_UPDATE").is_some());
        assert!(EventName::new("").is_none());
        assert!(EventName::new("a\"b").is_none());
        assert!(EventName::new(&"A".repeat(48)).is_none());
        assert!(EventName::new(&"A".repeat(47)).is_some());
    }

    #[test]
    fn dispatch_frame_bytes_are_exact_even_at_the_largest_seq_and_name() {
        let name = EventName::new(&"Z".repeat(47)).unwrap();
        let frame = DispatchFrame::new(u64::MAX, &name, Bytes::from_static(b"{\"a\":1}"));
        let expected = format!(r#"{{"op":0,"s":{},"t":"{}","d":{{"a":1}}}}"#, u64::MAX, "Z".repeat(47));
        assert_eq!(&frame.to_bytes()[..], expected.as_bytes());
        assert_eq!(frame.len(), expected.len());
    }
}
