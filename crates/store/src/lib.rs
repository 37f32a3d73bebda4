//! Persistence: the [`Store`] trait every backend implements, and the embedded
//! backend ([`EmbeddedStore`], on fjall) that Guildhall uses by default.
//!
//! Contract of [`Store::apply`]: a batch of mutations is atomic; it is visible to
//! reads as soon as `apply` returns (so the single writer of a guild reads its own
//! writes), and it is on disk when the returned [`Durable`] resolves. Callers must
//! not acknowledge a write, or publish an event about it, before then.
//!
//! Invariant: messages are keyed by (channel_id, message_id) big-endian, so a
//! channel's history is one range scan in Snowflake order.

mod embedded;
pub mod heap;
mod keys;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use guildhall_domain::GuildState;
use guildhall_domain::entity::*;
use guildhall_model::id::{ChannelId, GuildId, MessageId, RoleId, UserId};

pub use embedded::{EmbeddedStore, EmbeddedStoreConfig};

/// One change to persisted state. A batch of them is applied atomically.
#[derive(Clone, Debug)]
pub enum Mutation {
    PutUser(User),
    PutApplication(Application),
    PutGuild(Guild),
    /// Removes the guild and everything under it (roles, channels and their
    /// messages, members, bans, invites).
    DeleteGuild(GuildId),
    PutRole(GuildId, Role),
    DeleteRole(GuildId, RoleId),
    PutChannel(Channel),
    /// Removes the channel and its messages and pins.
    DeleteChannel(Option<GuildId>, ChannelId),
    PutMember(GuildId, Member),
    DeleteMember(GuildId, UserId),
    PutBan(GuildId, Ban),
    DeleteBan(GuildId, UserId),
    PutInvite(Invite),
    DeleteInvite(Option<GuildId>, String),
    PutThreadMember(GuildId, ThreadMember),
    DeleteThreadMember(GuildId, ChannelId, UserId),
    PutMessage(Message),
    DeleteMessage(ChannelId, MessageId),
    PutMeta(String, Vec<u8>),
}

/// Which page of a channel's history to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HistoryQuery {
    /// The newest messages.
    Latest,
    /// Messages with ids strictly below this one, newest first.
    Before(MessageId),
    /// Messages with ids strictly above this one, oldest first.
    After(MessageId),
    /// Messages around this id (half before, half after, the id itself included).
    Around(MessageId),
}

#[derive(Debug)]
pub enum StoreError {
    /// The engine failed (I/O, corruption); the server cannot continue safely.
    Engine(String),
    /// A stored value could not be decoded.
    Corrupt(String),
    /// Too many writes are waiting for the disk; the caller should back off.
    Overloaded,
    /// The store is shutting down.
    Closed,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Engine(e) => write!(f, "storage engine error: {e}"),
            StoreError::Corrupt(e) => write!(f, "corrupt stored value: {e}"),
            StoreError::Overloaded => f.write_str("too many writes waiting for the disk"),
            StoreError::Closed => f.write_str("store is closed"),
        }
    }
}
impl std::error::Error for StoreError {}

/// Resolves when a batch is on disk.
pub struct Durable(DurableInner);

enum DurableInner {
    Ready(Option<Result<(), StoreError>>),
    Waiting(tokio::sync::oneshot::Receiver<Result<(), StoreError>>),
}

impl Durable {
    pub fn ready(result: Result<(), StoreError>) -> Durable {
        Durable(DurableInner::Ready(Some(result)))
    }
    pub fn waiting(rx: tokio::sync::oneshot::Receiver<Result<(), StoreError>>) -> Durable {
        Durable(DurableInner::Waiting(rx))
    }
}

impl Future for Durable {
    type Output = Result<(), StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            DurableInner::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(StoreError::Closed))),
            DurableInner::Waiting(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Err(StoreError::Closed))),
        }
    }
}

/// Counters a backend keeps about itself, for metrics and the benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    /// History page reads that went to the engine.
    pub history_reads: u64,
    /// History page reads answered from the latest-page cache or a read in flight.
    pub history_coalesced: u64,
    /// Batches applied.
    pub batches: u64,
    /// fsyncs issued by group commit.
    pub syncs: u64,
    /// Bytes held in the engine's write buffers (active and sealed memtables, not
    /// yet flushed to tables); 0 for a backend without them.
    pub memtable_bytes: u64,
    /// Bytes of the engine's block cache in use (bounded by its configured size).
    pub block_cache_bytes: u64,
    /// Bytes of the tables' bloom filters and block indexes the engine keeps in
    /// memory (pinned, not in the block cache): they grow with the data stored, a
    /// table at each memtable flush, and shrink when compaction merges tables.
    pub table_index_bytes: u64,
    /// Bytes the process's allocator holds for the write buffers (see
    /// [`heap`]): the memtables' real footprint, where `memtable_bytes` is the
    /// engine's estimate. `None` without such an allocator or backend.
    pub write_buffer_heap_bytes: Option<u64>,
}

pub trait Store: Send + Sync + 'static {
    /// Applies a batch atomically; see the crate docs for the visibility contract.
    fn apply(&self, batch: Vec<Mutation>) -> Durable;

    fn load_users(&self) -> Result<Vec<User>, StoreError>;
    fn load_applications(&self) -> Result<Vec<Application>, StoreError>;
    /// Every guild with its roles, channels, members, bans, invites and thread members.
    fn load_guilds(&self) -> Result<Vec<GuildState>, StoreError>;
    /// DM and group DM channels.
    fn load_private_channels(&self) -> Result<Vec<Channel>, StoreError>;

    fn message(&self, channel: ChannelId, id: MessageId) -> Result<Option<Message>, StoreError>;
    /// A page of history, always returned newest first, at most `limit` (≤ 100).
    fn messages(&self, channel: ChannelId, query: HistoryQuery, limit: usize) -> Result<Arc<[Message]>, StoreError>;
    /// The channel's message write version: it changes whenever a write to the
    /// channel's messages becomes visible (the key of the latest-page cache), so
    /// callers may cache what they derive from the latest page under it. `None`
    /// when the backend keeps no such version.
    fn message_version(&self, _channel: ChannelId) -> Option<u64> {
        None
    }
    /// Pinned messages, most recently pinned first.
    fn pinned_messages(&self, channel: ChannelId) -> Result<Vec<Message>, StoreError>;
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Waits until everything applied so far is durable, then returns.
    fn flush(&self) -> Result<(), StoreError>;
    fn stats(&self) -> StoreStats;
}
