//! The resumable half of a gateway session: the dispatch sequence counter and the bounded
//! replay buffer of recent dispatches. It outlives a connection: when a socket drops, the
//! shell keeps the [`Outbox`] (see [`crate::Session::into_outbox`]), keeps pushing events
//! into it while the client is away, and hands it to the new connection's session on RESUME.
//!
//! Entries are the [`Dispatch`] the runtime shares among an event's recipients, kept by its
//! `Arc`: never a copy of the body and never the built frame, so the buffer's own memory is 8
//! bytes per entry (8 KiB for a busy session's 1,024, a block the allocator keeps in its
//! small-object pages); a delivery moves the queue's `Arc` in and takes one reference to the
//! body for the frame it sends.
//! It is bounded by entry count and by the body bytes it keeps alive. Dispatches the client
//! has acknowledged with a heartbeat's `d` are dropped ([`Outbox::forget_through`]).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use guildhall_model::gateway::Dispatch;

use crate::frame::{DispatchFrame, EventName};

/// How much of the past a session keeps for RESUME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayLimits {
    /// Most dispatches kept.
    pub max_events: usize,
    /// Most body + name bytes kept alive by the buffer.
    pub max_bytes: usize,
}

impl Default for ReplayLimits {
    fn default() -> Self {
        ReplayLimits { max_events: 1024, max_bytes: 1 << 20 }
    }
}

/// Why a RESUME cannot be honoured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeError {
    /// The client claims a sequence number the session never sent. Close with 4007
    /// ([`guildhall_model::gateway::CloseCode::InvalidSeq`]).
    SeqAhead { requested: u64, latest: u64 },
    /// Events after `requested` have already left the buffer. Send op 9 `d:false`
    /// ([`crate::frame::INVALID_SESSION`]); the client will IDENTIFY again.
    Expired { requested: u64, oldest_kept: u64 },
    /// The session has no outbox (it never finished IDENTIFY). Send op 9 `d:false`.
    NoSession,
}

impl fmt::Display for ResumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeError::SeqAhead { requested, latest } => {
                write!(f, "resume seq {requested} is ahead of the last sent seq {latest}")
            }
            ResumeError::Expired { requested, oldest_kept } => {
                write!(f, "resume seq {requested} is too old: the replay buffer starts at seq {oldest_kept}")
            }
            ResumeError::NoSession => f.write_str("no session to resume"),
        }
    }
}

impl std::error::Error for ResumeError {}

/// The ring capacity at which growth is spread by session id (see `Outbox::grow`).
const STAGGER_AT: usize = 16;

fn valid_name(name: &str) -> EventName {
    EventName::new(name).unwrap_or_else(|| panic!("invalid dispatch event name {name:?}"))
}

/// The shared dispatch, its name validated by [`valid_name`] when pushed.
type Entry = Arc<Dispatch>;

/// What an entry counts against [`ReplayLimits::max_bytes`].
fn cost(entry: &Dispatch) -> usize {
    entry.body.len() + entry.name.len()
}

/// Sequence counter plus replay buffer for one session.
pub struct Outbox {
    session_id: Box<str>,
    /// The `s` of the last dispatch pushed; 0 before READY.
    seq: u64,
    /// Dispatches `seq - buffer.len() + 1 ..= seq`, oldest first.
    buffer: VecDeque<Entry>,
    buffered_bytes: usize,
    limits: ReplayLimits,
}

impl Outbox {
    pub fn new(session_id: impl Into<Box<str>>, limits: ReplayLimits) -> Outbox {
        Outbox { session_id: session_id.into(), seq: 0, buffer: VecDeque::new(), buffered_bytes: 0, limits }
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The sequence number of the last dispatch (0 if none yet).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Dispatches currently kept for replay.
    pub fn buffered_events(&self) -> usize {
        self.buffer.len()
    }

    /// Body and name bytes the buffer keeps alive.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// The oldest sequence number still replayable (`seq + 1` when the buffer is empty).
    pub fn oldest_kept(&self) -> u64 {
        self.seq + 1 - self.buffer.len() as u64
    }

    /// Assigns the next sequence number to an event and records it for replay, without
    /// building a frame: used while the client is disconnected.
    ///
    /// # Panics
    /// If `name` is not a valid [`EventName`]: names come from server code, never from input.
    pub fn push(&mut self, name: &'static str, body: &Bytes) -> u64 {
        self.push_shared(Arc::new(Dispatch { name, body: body.clone() }))
    }

    /// [`Outbox::push`] of a dispatch shared with its other recipients: the `Arc` moves
    /// into the buffer.
    ///
    /// # Panics
    /// As [`Outbox::push`].
    pub fn push_shared(&mut self, dispatch: Arc<Dispatch>) -> u64 {
        assert!(EventName::is_valid(dispatch.name), "invalid dispatch event name {:?}", dispatch.name);
        self.push_entry(dispatch)
    }

    /// Assigns the next sequence number, records the event, and returns its frame.
    ///
    /// # Panics
    /// As [`Outbox::push`].
    pub fn dispatch(&mut self, name: &'static str, body: &Bytes) -> DispatchFrame {
        self.dispatch_shared(Arc::new(Dispatch { name, body: body.clone() }))
    }

    /// [`Outbox::dispatch`] of a dispatch shared with its other recipients: the `Arc`
    /// moves into the buffer and the frame takes one reference to the body. Both
    /// reference counts are shared by every recipient of an event, so each increment is
    /// a contended atomic; this takes one.
    ///
    /// # Panics
    /// As [`Outbox::push`].
    pub fn dispatch_shared(&mut self, dispatch: Arc<Dispatch>) -> DispatchFrame {
        let event = valid_name(dispatch.name);
        let body = dispatch.body.clone();
        let seq = self.push_entry(dispatch);
        DispatchFrame::new(seq, &event, body)
    }

    /// `entry.name` has been validated.
    fn push_entry(&mut self, entry: Entry) -> u64 {
        self.seq += 1;
        // Make room first: pushing into a full ring and trimming after would double
        // its capacity (2 x `max_events` slots for a session that is always full).
        while self.buffer.len() >= self.limits.max_events.max(1) {
            let Some(old) = self.buffer.pop_front() else {
                break;
            };
            self.buffered_bytes -= cost(&old);
        }
        if self.buffer.len() == self.buffer.capacity() {
            self.grow();
        }
        self.buffered_bytes += cost(&entry);
        self.buffer.push_back(entry);
        while self.buffer.len() > self.limits.max_events || self.buffered_bytes > self.limits.max_bytes {
            let Some(old) = self.buffer.pop_front() else {
                break;
            };
            self.buffered_bytes -= cost(&old);
        }
        self.seq
    }

    /// Makes room for one more entry: doubling from 4 slots to [`STAGGER_AT`], then one
    /// step to 17-32 slots chosen by session id, then doubling up to `max_events`.
    /// Sessions receive the same events, so with plain doubling every ring in a guild
    /// reallocated (and copied up to `max_events` entries) at the same event: 200 rings
    /// doubling at once held up the next delivery by 5-20 ms at events 256 and 512
    /// (stalled bench, per-message figures), and a thousand would hold it up longer.
    /// Spread over one octave, each later doubling point has about 1/16 of them.
    fn grow(&mut self) {
        let cap = self.buffer.capacity();
        let next = match cap {
            0 => 4,
            STAGGER_AT => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                self.session_id.hash(&mut h);
                STAGGER_AT + 1 + (h.finish() % STAGGER_AT as u64) as usize
            }
            c => c * 2,
        };
        let next = next.min(self.limits.max_events.max(1)).max(self.buffer.len() + 1);
        self.buffer.reserve_exact(next - self.buffer.len());
    }

    /// Stops keeping the dispatches with `s <= seq` for replay (a RESUME from before them
    /// gets [`ResumeError::Expired`]). The gateway forgets READY this way: a client can
    /// only RESUME with the `session_id` READY gave it, so it never needs READY replayed,
    /// and READY is often the largest body a session would otherwise keep while idle. The
    /// session forgets what a heartbeat acknowledges the same way (its `d` is the last
    /// `s` the client received, and a client resumes from its last `s`). A `seq` past the
    /// last dispatch forgets everything.
    pub fn forget_through(&mut self, seq: u64) {
        let seq = seq.min(self.seq);
        while self.oldest_kept() <= seq {
            let Some(old) = self.buffer.pop_front() else {
                break;
            };
            self.buffered_bytes -= cost(&old);
        }
        if self.buffer.is_empty() {
            // Nothing kept: give the ring's memory back too.
            self.buffer = VecDeque::new();
        }
    }

    /// Checks that every dispatch after `seq` is still buffered.
    pub fn check_resume(&self, seq: u64) -> Result<(), ResumeError> {
        if seq > self.seq {
            return Err(ResumeError::SeqAhead { requested: seq, latest: self.seq });
        }
        if seq + 1 < self.oldest_kept() {
            return Err(ResumeError::Expired { requested: seq, oldest_kept: self.oldest_kept() });
        }
        Ok(())
    }

    /// The frames of every dispatch with `s > seq`, oldest first.
    pub fn replay_after(&self, seq: u64) -> Result<Replay<'_>, ResumeError> {
        self.check_resume(seq)?;
        let skip = (seq + 1 - self.oldest_kept()) as usize;
        Ok(Replay { entries: self.buffer.range(skip..), next_seq: seq + 1 })
    }
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("session_id", &self.session_id)
            .field("seq", &self.seq)
            .field("buffered_events", &self.buffer.len())
            .field("buffered_bytes", &self.buffered_bytes)
            .finish()
    }
}

/// Iterator over the frames a RESUME must replay, oldest first.
pub struct Replay<'a> {
    entries: std::collections::vec_deque::Iter<'a, Entry>,
    next_seq: u64,
}

impl Iterator for Replay<'_> {
    type Item = DispatchFrame;

    fn next(&mut self) -> Option<DispatchFrame> {
        let entry = self.entries.next()?;
        let frame = DispatchFrame::new(self.next_seq, &valid_name(entry.name), entry.body.clone());
        self.next_seq += 1;
        Some(frame)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Replay<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(i: u64) -> Bytes {
        Bytes::from(format!("{{\"i\":{i}}}"))
    }

    fn seqs(replay: Replay<'_>) -> Vec<u64> {
        replay.map(|f| f.seq()).collect()
    }

    #[test]
    fn sequence_starts_at_one_and_frames_share_the_body() {
        let mut outbox = Outbox::new("abc", ReplayLimits::default());
        let shared = Bytes::from_static(b"{\"v\":10}");
        let ready = outbox.dispatch("READY", &shared);
        assert_eq!(ready.seq(), 1);
        assert_eq!(&ready.to_bytes()[..], br#"{"op":0,"s":1,"t":"READY","d":{"v":10}}"#);
        // The buffer and the frame point at the same allocation as the caller's body.
        assert_eq!(ready.body().as_ptr(), shared.as_ptr());
        let replayed = outbox.replay_after(0).unwrap().next().unwrap();
        assert_eq!(replayed.body().as_ptr(), shared.as_ptr());
        assert_eq!(outbox.dispatch("GUILD_CREATE", &shared).seq(), 2);
    }

    #[test]
    fn replay_yields_exactly_the_missed_events_in_order() {
        let mut outbox = Outbox::new("abc", ReplayLimits::default());
        for i in 1..=10 {
            outbox.push("MESSAGE_CREATE", &body(i));
        }
        let frames: Vec<_> = outbox.replay_after(6).unwrap().collect();
        assert_eq!(frames.iter().map(|f| f.seq()).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
        for frame in &frames {
            assert_eq!(frame.body(), &body(frame.seq()));
        }
        assert_eq!(outbox.replay_after(10).unwrap().count(), 0);
        assert_eq!(seqs(outbox.replay_after(0).unwrap()), (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn forgotten_dispatches_are_not_replayed() {
        let mut outbox = Outbox::new("abc", ReplayLimits::default());
        outbox.push("READY", &body(1));
        outbox.forget_through(1);
        assert_eq!(outbox.buffered_events(), 0);
        assert_eq!(outbox.buffered_bytes(), 0);
        assert_eq!(outbox.replay_after(1).unwrap().count(), 0);
        assert_eq!(outbox.replay_after(0).err(), Some(ResumeError::Expired { requested: 0, oldest_kept: 2 }));
        outbox.push("GUILD_CREATE", &body(2));
        outbox.push("MESSAGE_CREATE", &body(3));
        assert_eq!(seqs(outbox.replay_after(1).unwrap()), vec![2, 3]);
        outbox.forget_through(2);
        assert_eq!(seqs(outbox.replay_after(2).unwrap()), vec![3]);
        assert!(outbox.replay_after(1).is_err());
    }

    #[test]
    fn seq_ahead_is_an_error() {
        let mut outbox = Outbox::new("abc", ReplayLimits::default());
        outbox.push("READY", &body(1));
        assert_eq!(outbox.replay_after(2).err(), Some(ResumeError::SeqAhead { requested: 2, latest: 1 }));
    }

    #[test]
    fn count_bound_evicts_oldest_and_old_seq_becomes_unresumable() {
        let mut outbox = Outbox::new("abc", ReplayLimits { max_events: 3, max_bytes: usize::MAX });
        for i in 1..=5 {
            outbox.push("MESSAGE_CREATE", &body(i));
        }
        assert_eq!(outbox.buffered_events(), 3);
        assert_eq!(outbox.oldest_kept(), 3);
        // seq 2 means "I have 1 and 2": 3, 4, 5 are all still here.
        assert_eq!(seqs(outbox.replay_after(2).unwrap()), vec![3, 4, 5]);
        assert_eq!(outbox.replay_after(1).err(), Some(ResumeError::Expired { requested: 1, oldest_kept: 3 }));
    }

    #[test]
    fn a_full_ring_keeps_its_capacity_at_the_event_bound() {
        let mut outbox = Outbox::new("abc", ReplayLimits { max_events: 1024, max_bytes: usize::MAX });
        for i in 1..=5000 {
            outbox.push("MESSAGE_CREATE", &body(i));
        }
        assert_eq!(outbox.buffered_events(), 1024);
        assert_eq!(outbox.oldest_kept(), 5000 - 1023);
        assert!(outbox.buffer.capacity() <= 1024, "ring grew to {} slots", outbox.buffer.capacity());
    }

    #[test]
    fn rings_of_different_sessions_grow_at_different_events() {
        let limits = ReplayLimits { max_events: 1024, max_bytes: usize::MAX };
        let mut grew_at = std::collections::HashMap::<usize, usize>::new();
        for session in 0..200 {
            let mut outbox = Outbox::new(format!("{session:032x}"), limits);
            let mut cap = 0;
            for i in 1..=1024u64 {
                outbox.push("MESSAGE_CREATE", &body(i));
                let now = outbox.buffer.capacity();
                if now != cap && cap > STAGGER_AT {
                    *grew_at.entry(i as usize).or_default() += 1;
                }
                cap = now;
            }
            assert_eq!(outbox.buffered_events(), 1024);
            assert!(cap <= 1024, "ring grew to {cap} slots");
        }
        // Once past 16 slots (full at the 17th event), no single event makes many of
        // the 200 rings grow (1/16 of them on average; all 200 with plain doubling).
        let worst = grew_at.values().max().copied().unwrap_or(0);
        assert!(worst <= 40, "{worst} rings grew at the same event: {grew_at:?}");
    }

    #[test]
    fn an_entry_is_the_shared_dispatch_pointer() {
        // 1,024 of them per busy session (and per session kept for RESUME).
        assert_eq!(std::mem::size_of::<Entry>(), 8);
    }

    #[test]
    fn a_shared_dispatch_is_kept_not_copied() {
        let mut outbox = Outbox::new("abc", ReplayLimits::default());
        let shared = Arc::new(Dispatch { name: "MESSAGE_CREATE", body: body(1) });
        let frame = outbox.dispatch_shared(shared.clone());
        assert_eq!(frame.body().as_ptr(), shared.body.as_ptr());
        // The caller's reference and the buffer's: the frame holds the body, not the Arc.
        assert_eq!(Arc::strong_count(&shared), 2);
        outbox.push_shared(shared.clone());
        assert_eq!(Arc::strong_count(&shared), 3);
        outbox.forget_through(2);
        assert_eq!(Arc::strong_count(&shared), 1);
    }

    #[test]
    fn forgetting_past_the_last_dispatch_forgets_everything_and_keeps_numbering() {
        let mut outbox = Outbox::new("abc", ReplayLimits::default());
        outbox.push("MESSAGE_CREATE", &body(1));
        outbox.forget_through(u64::MAX);
        assert_eq!(outbox.buffered_events(), 0);
        assert_eq!(outbox.oldest_kept(), 2);
        assert_eq!(outbox.push("MESSAGE_CREATE", &body(2)), 2);
        assert_eq!(seqs(outbox.replay_after(1).unwrap()), vec![2]);
    }

    #[test]
    fn byte_bound_evicts_oldest() {
        // Each entry costs 14 (name) + 7 (body) = 21 bytes.
        let mut outbox = Outbox::new("abc", ReplayLimits { max_events: 100, max_bytes: 50 });
        for i in 1..=4 {
            outbox.push("MESSAGE_CREATE", &body(i));
        }
        assert_eq!(outbox.buffered_events(), 2);
        assert_eq!(outbox.buffered_bytes(), 42);
        assert!(outbox.replay_after(2).is_ok());
        assert!(matches!(outbox.replay_after(1), Err(ResumeError::Expired { .. })));
    }

    #[test]
    fn an_event_larger_than_the_byte_bound_is_sent_but_not_kept() {
        let mut outbox = Outbox::new("abc", ReplayLimits { max_events: 100, max_bytes: 10 });
        let big = Bytes::from(vec![b'1'; 64]);
        let frame = outbox.dispatch("MESSAGE_CREATE", &big);
        assert_eq!(frame.seq(), 1);
        assert_eq!(frame.body(), &big);
        assert_eq!(outbox.buffered_events(), 0);
        assert!(matches!(outbox.replay_after(0), Err(ResumeError::Expired { .. })));
        assert_eq!(outbox.replay_after(1).unwrap().count(), 0);
    }
}
