//! The session registry: which gateway sessions each user has, and the handle a
//! guild actor uses to push events into a session's bounded outbound queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use guildhall_model::Intents;
use guildhall_model::id::{GuildId, UserId};
use tokio::sync::{Notify, mpsc};

use crate::event::Outbound;

/// A session's identity and queue, as the rest of the runtime sees it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub id: u64,
    pub user_id: UserId,
    pub intents: Intents,
    /// `(shard_id, num_shards)`; `None` = unsharded.
    pub shard: Option<(u32, u32)>,
    pub large_threshold: u32,
    /// The bounded outbound queue. The gateway session task is its only receiver;
    /// guild actors and the runtime send with `try_send` and never wait.
    tx: mpsc::Sender<Outbound>,
    shared: Arc<SessionShared>,
}

#[derive(Debug, Default)]
pub struct SessionShared {
    /// Set when a push found the queue full: the session must close (resumably),
    /// because it has already missed an event it cannot get back from the queue.
    pub overflowed: AtomicBool,
    /// Wakes the session task when `overflowed` is set.
    pub notify: Notify,
}

impl SessionHandle {
    pub fn new(
        id: u64,
        user_id: UserId,
        intents: Intents,
        shard: Option<(u32, u32)>,
        large_threshold: u32,
        tx: mpsc::Sender<Outbound>,
    ) -> (SessionHandle, Arc<SessionShared>) {
        let shared = Arc::new(SessionShared::default());
        (SessionHandle { id, user_id, intents, shard, large_threshold, tx, shared: shared.clone() }, shared)
    }

    /// Pushes without waiting. Returns false if the session is gone. A full queue
    /// drops the item and marks the session overflowed: the session closes, and
    /// since it missed an event it cannot replay, its next RESUME is refused with
    /// INVALID_SESSION so the client re-identifies and loses nothing silently.
    pub fn push(&self, item: Outbound) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.shared.overflowed.swap(true, Ordering::AcqRel) {
                    self.shared.notify.notify_one();
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
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
        self.by_user.write().unwrap_or_else(|p| p.into_inner()).entry(handle.user_id).or_default().push(handle);
    }

    /// Removes a session; returns how many the user still has.
    pub fn remove(&self, user: UserId, session_id: u64) -> usize {
        let mut map = self.by_user.write().unwrap_or_else(|p| p.into_inner());
        let Some(list) = map.get_mut(&user) else { return 0 };
        list.retain(|h| h.id != session_id);
        let left = list.len();
        if left == 0 {
            map.remove(&user);
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
