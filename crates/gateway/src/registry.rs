//! Sessions by `session_id`, for RESUME. The registry holds no session state itself:
//! each entry is the way to ask the session's current owner (its live connection
//! task, or that task still waiting for a RESUME after the socket dropped) to hand
//! the session over. Ownership moves with a [`Core`]: the runtime queue receiver,
//! the replay outbox and the runtime handle, so nothing is copied and no event is
//! lost in the handover (the queue keeps filling while the core is in flight).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use guildhall_model::id::UserId;
use guildhall_proto::Outbox;
use guildhall_runtime::SessionHandle;
use guildhall_runtime::session::{SessionReceiver, SessionShared};
use tokio::sync::oneshot;

/// Everything a session needs to continue on another socket.
pub struct Core {
    pub handle: SessionHandle,
    pub rx: SessionReceiver,
    pub shared: Arc<SessionShared>,
    pub outbox: Outbox,
}

impl Core {
    pub fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Acquire)
    }
}

/// Sent to a session's owner: "give me the core through this".
pub type Kick = oneshot::Sender<Core>;

struct Entry {
    user: UserId,
    generation: u64,
    kick: oneshot::Sender<Kick>,
}

/// Why a session cannot be taken for a RESUME.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeError {
    Unknown,
    /// The session belongs to another user.
    WrongUser,
}

#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<Box<str>, Entry>>,
    generations: AtomicU64,
}

impl Registry {
    /// Registers the owner of `session_id`; returns its generation and the receiver
    /// on which a later RESUME will ask for the core.
    pub fn insert(&self, session_id: &str, user: UserId) -> (u64, oneshot::Receiver<Kick>) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (kick, rx) = oneshot::channel();
        self.lock().insert(session_id.into(), Entry { user, generation, kick });
        (generation, rx)
    }

    /// Removes the entry for a RESUME by `user`; the caller then asks the owner for
    /// the core through the returned sender.
    pub fn take(&self, session_id: &str, user: UserId) -> Result<oneshot::Sender<Kick>, TakeError> {
        let mut entries = self.lock();
        match entries.get(session_id) {
            None => Err(TakeError::Unknown),
            Some(e) if e.user != user => Err(TakeError::WrongUser),
            Some(_) => Ok(entries.remove(session_id).map(|e| e.kick).ok_or(TakeError::Unknown)?),
        }
    }

    /// Removes the entry if `generation` still owns it.
    pub fn remove(&self, session_id: &str, generation: u64) {
        let mut entries = self.lock();
        if entries.get(session_id).is_some_and(|e| e.generation == generation) {
            entries.remove(session_id);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A fresh session id: 32 hex digits, like Discord's.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
