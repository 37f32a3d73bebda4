//! The session registry: which gateway sessions each user has, and the handle a
//! guild actor uses to push events into a session's bounded outbound queue.
//!
//! The queue is this crate's own rather than a `tokio::sync::mpsc` channel: an idle
//! session's queue is a few words inside [`SessionShared`] (an mpsc channel
//! allocates its shared state and a first block of 32 slots at creation, ~2.3 KB),
//! a push is one uncontended lock, and the session task takes a whole batch under
//! one lock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll, Waker};

use guildhall_model::Intents;
use guildhall_model::id::{GuildId, UserId};
use tokio::sync::Notify;

use crate::event::Outbound;

/// A session's identity and queue, as the rest of the runtime sees it. Cheap to
/// clone. Guild actors and the runtime push with [`SessionHandle::push`] and never
/// wait; the gateway session task is the queue's only receiver
/// ([`SessionReceiver`]). When the last handle is dropped, the receiver sees the
/// end of the queue.
#[derive(Debug)]
pub struct SessionHandle {
    pub id: u64,
    pub user_id: UserId,
    pub intents: Intents,
    /// `(shard_id, num_shards)`; `None` = unsharded.
    pub shard: Option<(u32, u32)>,
    pub large_threshold: u32,
    shared: Arc<SessionShared>,
}

#[derive(Debug, Default)]
pub struct SessionShared {
    /// Set when a push found the queue full: the session must close (resumably),
    /// because it has already missed an event it cannot get back from the queue.
    pub overflowed: AtomicBool,
    /// Wakes the session task when `overflowed` is set.
    pub notify: Notify,
    queue: Mutex<QueueState>,
    capacity: usize,
    /// Live [`SessionHandle`]s.
    senders: AtomicUsize,
    /// The receiver is gone: pushes fail, so the runtime forgets the session.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct QueueState {
    items: Items,
    /// The receiver waiting for an item.
    waker: Option<Waker>,
}

/// Items per block of a queue: the first block grows to this by doubling, later
/// ones are allocated at this size. 192 × 16 B = 3 KiB: with 64-item (1 KiB) blocks
/// the server's RSS stayed 13-25 MiB above its level before 1,000 stalled sessions
/// once their full queues were freed (9 of 9 stalled-bench runs; mimalloc kept the
/// pages), with 3 KiB blocks it came back (3 of 3).
const BLOCK: usize = 192;

/// A FIFO of blocks of at most [`BLOCK`] items rather than one ring buffer: a queue
/// that keeps growing (a client that stopped reading) allocates a small block every
/// `BLOCK` pushes instead of doubling one buffer. With one ring, every stalled
/// session's buffer was reallocated and copied at the same push (they stall
/// together, so their queues fill in step): 1,000 × 96 KiB fresh, page-faulted
/// memory in one guild actor's fan-out loop, a 100+ ms stall for every other
/// session of the guild.
#[derive(Debug, Default)]
struct Items {
    /// The oldest items; the only block while the queue holds ≤ `BLOCK` items, and
    /// the one a drained queue keeps (≤ `BLOCK` slots).
    head: VecDeque<Outbound>,
    /// Later blocks, each of capacity `BLOCK`, all full but the last; boxed and
    /// absent unless `head` filled up, so an idle session pays one pointer for it.
    #[allow(clippy::box_collection)] // one pointer, not a 32-byte header, in every session
    rest: Option<Box<VecDeque<VecDeque<Outbound>>>>,
}

impl Items {
    fn len(&self) -> usize {
        let rest =
            self.rest.as_deref().map_or(0, |r| r.len().saturating_sub(1) * BLOCK + r.back().map_or(0, VecDeque::len));
        self.head.len() + rest
    }

    /// `head_limit` (≤ [`BLOCK`]) is where a growing queue starts its second block;
    /// see [`head_limit`].
    fn push_back(&mut self, item: Outbound, head_limit: usize) {
        if self.rest.is_none() && self.head.len() < head_limit {
            self.head.push_back(item);
            return;
        }
        let rest = self.rest.get_or_insert_default();
        match rest.back_mut() {
            Some(b) if b.len() < BLOCK => b.push_back(item),
            _ => {
                let mut b = VecDeque::with_capacity(BLOCK);
                b.push_back(item);
                rest.push_back(b);
            }
        }
    }

    fn pop_front(&mut self) -> Option<Outbound> {
        if self.head.is_empty() {
            let rest = self.rest.as_mut()?;
            // The drained head block goes; the next one (capacity `BLOCK`) becomes the head.
            self.head = rest.pop_front()?;
            if rest.is_empty() {
                self.rest = None;
            }
        }
        self.head.pop_front()
    }
}

/// How many items a session's first block takes before the queue starts its
/// second: between `BLOCK / 2` and `BLOCK`, spread by session id. Sessions that
/// stall together (a network partition, a burst of clients that stop reading) fill
/// their queues in step; with one fixed limit all of them allocated their next
/// block at the same push, 1,000 fresh blocks in one event's fan-out every `BLOCK`
/// events (in the stalled bench the other sessions' slowest delivery jumped from
/// ~2 to 5-8 ms at every 64th message). Spread, each event pays for ~1/32 of them.
fn head_limit(session_id: u64) -> usize {
    let spread = (session_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % (BLOCK / 2 + 1);
    BLOCK / 2 + spread
}

impl SessionShared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clone for SessionHandle {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        SessionHandle {
            id: self.id,
            user_id: self.user_id,
            intents: self.intents,
            shard: self.shard,
            large_threshold: self.large_threshold,
            shared: self.shared.clone(),
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last one: the receiver sees the end once the queue is empty.
            let waker = self.shared.lock().waker.take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// The receiving end of a session's queue, owned by the gateway session task (and
/// handed over with the session on RESUME).
#[derive(Debug)]
pub struct SessionReceiver {
    shared: Arc<SessionShared>,
}

impl SessionReceiver {
    /// The next item; `Ready(None)` once every handle is gone and the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        let mut q = self.shared.lock();
        if let Some(item) = q.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            return Poll::Ready(None);
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    pub async fn recv(&mut self) -> Option<Outbound> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Moves queued items into `out`, at most `max`, under one lock; stops after the
    /// first item that is not a dispatch (it ends the connection, and whatever
    /// follows it stays queued for the session's next owner).
    pub fn take_batch(&mut self, out: &mut Vec<Outbound>, max: usize) {
        let mut q = self.shared.lock();
        while out.len() < max {
            let Some(item) = q.items.pop_front() else { break };
            let control = !matches!(item, Outbound::Dispatch(..));
            out.push(item);
            if control {
                break;
            }
        }
    }
}

impl Drop for SessionReceiver {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        let items = std::mem::take(&mut self.shared.lock().items);
        drop(items);
    }
}

impl SessionHandle {
    /// A new session with an empty queue of `capacity` items: its first handle, its
    /// receiver, and the state both share.
    pub fn new(
        id: u64,
        user_id: UserId,
        intents: Intents,
        shard: Option<(u32, u32)>,
        large_threshold: u32,
        capacity: usize,
    ) -> (SessionHandle, SessionReceiver, Arc<SessionShared>) {
        let shared = Arc::new(SessionShared {
            capacity: capacity.max(1),
            senders: AtomicUsize::new(1),
            ..SessionShared::default()
        });
        let handle = SessionHandle { id, user_id, intents, shard, large_threshold, shared: shared.clone() };
        (handle, SessionReceiver { shared: shared.clone() }, shared)
    }

    /// Pushes without waiting. Returns false if the session is gone. A full queue
    /// drops the item and marks the session overflowed: the session closes, and
    /// since it missed an event it cannot replay, its next RESUME is refused with
    /// INVALID_SESSION so the client re-identifies and loses nothing silently.
    pub fn push(&self, item: Outbound) -> bool {
        let s = &*self.shared;
        if s.closed.load(Ordering::Acquire) {
            return false;
        }
        let mut q = s.lock();
        if q.items.len() >= s.capacity {
            drop(q);
            drop(item);
            if !s.overflowed.swap(true, Ordering::AcqRel) {
                s.notify.notify_one();
            }
            return true;
        }
        q.items.push_back(item, head_limit(self.id));
        let waker = q.waker.take();
        drop(q);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Whether this session receives events of `guild` (shard routing).
    pub fn wants_guild(&self, guild: Option<GuildId>) -> bool {
        match (self.shard, guild) {
            (None, _) => true,
            (Some((id, count)), Some(g)) => ((g.get() >> 22) % u64::from(count.max(1))) as u32 == id,
            (Some((id, _)), None) => id == 0,
        }
    }
}

/// user → live sessions. Read on every DM and presence change; written on
/// identify and disconnect.
#[derive(Default)]
pub struct Sessions {
    by_user: RwLock<HashMap<UserId, Vec<SessionHandle>>>,
}

impl Sessions {
    pub fn insert(&self, handle: SessionHandle) {
        // Most users have one session: no room for four until they open a second.
        self.by_user
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(handle.user_id)
            .or_insert_with(|| Vec::with_capacity(1))
            .push(handle);
    }

    /// Removes a session; returns how many the user still has.
    pub fn remove(&self, user: UserId, session_id: u64) -> usize {
        let mut map = self.by_user.write().unwrap_or_else(|p| p.into_inner());
        let Some(list) = map.get_mut(&user) else { return 0 };
        list.retain(|h| h.id != session_id);
        let left = list.len();
        if left == 0 {
            map.remove(&user);
        } else if list.capacity() > 2 * left {
            // A second session grew the list to four slots; once the user is back to
            // one, keep one (under connection churn most users pass through two).
            list.shrink_to(left);
        }
        left
    }

    pub fn of_user(&self, user: UserId) -> Vec<SessionHandle> {
        self.by_user.read().unwrap_or_else(|p| p.into_inner()).get(&user).cloned().unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.by_user.read().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn dispatch(n: u8) -> Outbound {
        Outbound::dispatch("X", Bytes::from(vec![n]))
    }

    fn body(item: &Outbound) -> u8 {
        match item {
            Outbound::Dispatch(d) => d.body[0],
            _ => 255,
        }
    }

    #[test]
    fn a_users_session_list_shrinks_back_when_a_second_session_ends() {
        let sessions = Sessions::default();
        let user = UserId::new(7);
        let handles: Vec<_> = (1..=2).map(|id| SessionHandle::new(id, user, Intents(0), None, 50, 4)).collect();
        let capacity = || sessions.by_user.read().unwrap()[&user].capacity();
        sessions.insert(handles[0].0.clone());
        assert_eq!(capacity(), 1);
        sessions.insert(handles[1].0.clone());
        assert!(capacity() >= 2);
        assert_eq!(sessions.remove(user, 1), 1);
        assert_eq!(capacity(), 1, "back to one slot with one session");
        assert_eq!(sessions.of_user(user).iter().map(|h| h.id).collect::<Vec<_>>(), [2]);
        assert_eq!(sessions.remove(user, 2), 0);
        assert_eq!(sessions.count(), 0);
    }

    #[tokio::test]
    async fn the_queue_delivers_in_order_overflows_at_capacity_and_ends_with_the_last_handle() {
        let (handle, mut rx, shared) = SessionHandle::new(1, UserId::new(1), Intents(0), None, 50, 3);
        let other = handle.clone();
        assert!(handle.push(dispatch(1)) && other.push(dispatch(2)) && handle.push(dispatch(3)));
        assert!(!shared.overflowed.load(Ordering::Acquire));
        // A fourth item does not fit: dropped, and the session is marked overflowed.
        assert!(handle.push(dispatch(4)));
        assert!(shared.overflowed.load(Ordering::Acquire));
        let mut batch = Vec::new();
        rx.take_batch(&mut batch, 2);
        assert_eq!(batch.iter().map(body).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(rx.recv().await.as_ref().map(body), Some(3));
        // A receiver waiting for an item is woken by a push from another task.
        let pusher = other.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            pusher.push(dispatch(5));
        });
        assert_eq!(rx.recv().await.as_ref().map(body), Some(5));
        task.await.unwrap();
        // Once every handle is gone the receiver sees the end.
        drop(handle);
        let ender = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            drop(other);
        });
        assert!(rx.recv().await.is_none());
        ender.await.unwrap();
    }

    #[test]
    fn a_long_queue_spans_blocks_in_order_and_overflows_at_its_capacity() {
        let n = 3 * BLOCK + 7;
        let (handle, mut rx, shared) = SessionHandle::new(1, UserId::new(1), Intents(0), None, 50, n);
        let seq = |i: usize| Outbound::dispatch("X", Bytes::from(i.to_le_bytes().to_vec()));
        let num = |o: &Outbound| match o {
            Outbound::Dispatch(d) => usize::from_le_bytes(d.body[..8].try_into().unwrap()),
            _ => usize::MAX,
        };
        let (mut next_in, mut next_out) = (0, 0);
        // Fill to capacity, drain part, refill, across block boundaries.
        for _ in 0..n {
            assert!(handle.push(seq(next_in)));
            next_in += 1;
        }
        assert_eq!(shared.lock().items.len(), n);
        assert!(handle.push(seq(usize::MAX)));
        assert!(shared.overflowed.swap(false, Ordering::AcqRel), "one past capacity overflows");
        let mut batch = Vec::new();
        rx.take_batch(&mut batch, BLOCK + 5);
        for item in batch.drain(..) {
            assert_eq!(num(&item), next_out);
            next_out += 1;
        }
        assert_eq!(shared.lock().items.len(), n - BLOCK - 5);
        for _ in 0..BLOCK + 5 {
            assert!(handle.push(seq(next_in)));
            next_in += 1;
        }
        assert!(!shared.overflowed.load(Ordering::Acquire));
        while next_out < next_in {
            rx.take_batch(&mut batch, 10);
            for item in batch.drain(..) {
                assert_eq!(num(&item), next_out);
                next_out += 1;
            }
        }
        let q = shared.lock();
        assert_eq!(q.items.len(), 0);
        assert!(q.items.rest.is_none() && q.items.head.capacity() <= BLOCK, "a drained queue keeps one block at most");
    }

    #[test]
    fn sessions_start_their_second_block_at_different_lengths() {
        let mut at = HashMap::new();
        for id in 0..1_000u64 {
            let (handle, _rx, shared) = SessionHandle::new(id << 22, UserId::new(1), Intents(0), None, 50, 256);
            let mut n = 0;
            while shared.lock().items.rest.is_none() {
                handle.push(dispatch(0));
                n += 1;
            }
            // The push that did not fit in the first block started the second.
            assert!((BLOCK / 2 + 1..=BLOCK + 1).contains(&n), "second block after {n} items");
            *at.entry(n).or_insert(0) += 1;
        }
        // Spread over the range, so no one push allocates for many sessions at once.
        assert_eq!(at.len(), BLOCK / 2 + 1);
        assert!(at.values().all(|&c| c <= 60), "{at:?}");
    }

    #[test]
    fn a_batch_stops_after_a_control_item_and_pushes_fail_once_the_receiver_is_gone() {
        let (handle, mut rx, _) = SessionHandle::new(1, UserId::new(1), Intents(0), None, 50, 16);
        handle.push(dispatch(1));
        handle.push(Outbound::CloseResumable);
        handle.push(dispatch(2));
        let mut batch = Vec::new();
        rx.take_batch(&mut batch, 16);
        assert_eq!(batch.len(), 2);
        assert!(matches!(batch[1], Outbound::CloseResumable));
        batch.clear();
        rx.take_batch(&mut batch, 16);
        assert_eq!(batch.iter().map(body).collect::<Vec<_>>(), [2]);
        assert!(!handle.is_closed());
        drop(rx);
        assert!(handle.is_closed());
        assert!(!handle.push(dispatch(3)));
    }
}
