//! The embedded backend: one fjall database in the data directory, one keyspace per
//! aggregate (named `key_value` after their layout), and group commit.
//!
//! Group commit: [`EmbeddedStore::apply`] writes a batch into fjall's journal and
//! memtable at once (so it is visible) and registers a waiter; a dedicated thread
//! fsyncs the journal for every waiter that has gathered since the last fsync and
//! then wakes them all. Many writes share one fsync; none is acknowledged before it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use guildhall_domain::GuildState;
use guildhall_domain::entity::*;
use guildhall_model::id::{ChannelId, Id, MessageId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::keys::*;
use crate::{Durable, HistoryQuery, Mutation, Store, StoreError, StoreStats};

#[derive(Clone, Debug)]
pub struct EmbeddedStoreConfig {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Writes allowed to wait for one fsync before `apply` answers `Overloaded`.
    pub max_pending_writes: usize,
    /// Channels whose latest page is kept in memory.
    pub latest_page_cache_channels: usize,
    /// Size at which a keyspace's memtable is sealed and flushed to a table.
    ///
    /// Applies to keyspaces the store creates; fjall keeps the value a keyspace was
    /// created with. fjall's default is 64 MiB per keyspace (eleven of them here); a
    /// busy message keyspace fills 8 MiB in minutes, and each flush gives its memory
    /// back, so the store's memory stays near this bound instead of growing towards
    /// 64 MiB and keeping, after each flush, the pages the old memtable shared with
    /// the rest of the process.
    pub memtable_bytes: u64,
}

impl Default for EmbeddedStoreConfig {
    fn default() -> Self {
        EmbeddedStoreConfig {
            cache_bytes: 64 << 20,
            max_pending_writes: 100_000,
            latest_page_cache_channels: 4096,
            memtable_bytes: 8 << 20,
        }
    }
}

/// A channel's latest page and the write version it was read at.
type CachedPage = (u64, Arc<[Message]>);

/// Size of the cached latest page; any `Latest` read up to this limit is served from it.
const LATEST_PAGE: usize = 100;

struct Keyspaces {
    users: Keyspace,
    applications: Keyspace,
    guilds: Keyspace,
    guild_role: Keyspace,
    guild_channel: Keyspace,
    guild_member: Keyspace,
    guild_ban: Keyspace,
    guild_invite: Keyspace,
    guild_thread_member: Keyspace,
    channel_message: Keyspace,
    channel_pin: Keyspace,
    meta: Keyspace,
}

/// Waiters for the next fsync. Guarded by one mutex that also serializes batch
/// commits, so the order of waiters is the order of journal writes.
struct Pending {
    waiters: Vec<oneshot::Sender<Result<(), StoreError>>>,
    shutdown: bool,
}

struct Inner {
    db: Database,
    /// fjall's database folder (where its journals are).
    dir: std::path::PathBuf,
    ks: Keyspaces,
    config: EmbeddedStoreConfig,
    pending: Mutex<Pending>,
    /// Wakes the group-commit thread when a waiter arrives or on shutdown.
    wake: Condvar,
    /// Per-channel write version, bumped whenever a batch touches the channel's
    /// messages; the latest-page cache is valid only at the version it was read at.
    versions: Mutex<HashMap<ChannelId, u64>>,
    latest: Mutex<HashMap<ChannelId, CachedPage>>,
    history_reads: AtomicU64,
    history_coalesced: AtomicU64,
    batches: AtomicU64,
    syncs: AtomicU64,
}

pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// The group-commit thread; joined on drop after it drains every waiter.
    committer: Option<JoinHandle<()>>,
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Entities contain only maps with string keys and plain values; encoding
    // cannot fail.
    serde_json::to_vec(v).expect("entities always serialize")
}

fn dec<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl EmbeddedStore {
    pub fn open(dir: &Path, config: EmbeddedStoreConfig) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(engine)?;
        let db_dir = dir.join("db");
        let db = Database::builder(&db_dir).cache_size(config.cache_bytes).open().map_err(engine)?;
        let memtable = config.memtable_bytes;
        let open = |name: &str| {
            db.keyspace(name, || KeyspaceCreateOptions::default().max_memtable_size(memtable)).map_err(engine)
        };
        let ks = Keyspaces {
            users: open("users")?,
            applications: open("applications")?,
            guilds: open("guilds")?,
            guild_role: open("guild_role")?,
            guild_channel: open("guild_channel")?,
            guild_member: open("guild_member")?,
            guild_ban: open("guild_ban")?,
            guild_invite: open("guild_invite")?,
            guild_thread_member: open("guild_thread_member")?,
            channel_message: open("channel_message")?,
            channel_pin: open("channel_pin")?,
            meta: open("meta")?,
        };
        let inner = Arc::new(Inner {
            db,
            dir: db_dir,
            ks,
            config,
            pending: Mutex::new(Pending { waiters: Vec::new(), shutdown: false }),
            wake: Condvar::new(),
            versions: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            history_reads: AtomicU64::new(0),
            history_coalesced: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        });
        let thread_inner = inner.clone();
        let committer = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || group_commit(thread_inner))
            .map_err(engine)?;
        Ok(EmbeddedStore { inner, committer: Some(committer) })
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()).shutdown = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

/// fsyncs fjall's active journal file without holding fjall's journal lock.
///
/// `Database::persist` holds the journal writer's mutex through the fdatasync
/// (0.1-0.3 ms here), and with a steady stream of writes the group-commit thread
/// is almost always in that call: every `apply` (a batch commit needs the same
/// mutex) then blocked its tokio worker until the fsync ended. Instead, the
/// buffered journal bytes are flushed to the file under the lock
/// (`PersistMode::Buffer`, one `write`), and the fdatasync runs on our own handle
/// of the same file, with the lock free.
///
/// Finding the active file relies on fjall's journal layout: `<db>/<id>.jnl`, the
/// active journal being the highest id, a rotation creating `<id + 1>.jnl` (while
/// holding the lock, after `sync_all` of the old one). So after each flush, if
/// `<id + 1>.jnl` exists the handle moves forward: bytes flushed before a rotation
/// were synced by the rotation itself, and bytes flushed after it are in the file
/// we now sync. If the file cannot be found or opened, the round falls back to
/// `Database::persist(SyncData)`.
struct JournalSync {
    dir: std::path::PathBuf,
    active: Option<(u64, std::fs::File)>,
}

impl JournalSync {
    fn new(dir: std::path::PathBuf) -> JournalSync {
        let newest = std::fs::read_dir(&dir).ok().and_then(|entries| {
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".jnl")?.parse::<u64>().ok()).max()
        });
        let mut sync = JournalSync { dir, active: None };
        if let Some(id) = newest {
            sync.open(id);
        }
        sync
    }

    fn path(&self, id: u64) -> std::path::PathBuf {
        self.dir.join(format!("{id}.jnl"))
    }

    fn open(&mut self, id: u64) {
        self.active = std::fs::OpenOptions::new().read(true).open(self.path(id)).ok().map(|f| (id, f));
    }

    /// Moves the handle to the newest journal if fjall rotated since.
    fn follow_rotations(&mut self) {
        while let Some((id, _)) = self.active {
            if !self.path(id + 1).exists() {
                break;
            }
            self.open(id + 1);
        }
    }

    /// Makes every batch committed before the call durable.
    fn sync(&mut self, db: &Database) -> fjall::Result<()> {
        if self.active.is_none() {
            return db.persist(PersistMode::SyncData);
        }
        db.persist(PersistMode::Buffer)?;
        self.follow_rotations();
        match &self.active {
            Some((_, file)) => file.sync_data().map_err(Into::into),
            None => db.persist(PersistMode::SyncData),
        }
    }
}

/// What `Inner::write` records about a batch while writing it.
#[derive(Default)]
struct BatchNotes {
    /// Channels whose history changed (their cached latest page is stale).
    touched: Vec<ChannelId>,
    /// Pin keys written by this batch (not visible to reads until it commits).
    pinned: Vec<[u8; 16]>,
}

/// The group-commit loop: take every waiter gathered so far, fsync once, wake them.
fn group_commit(inner: Arc<Inner>) {
    let mut journal = JournalSync::new(inner.dir.clone());
    let mut versions = VersionGc::new();
    loop {
        let waiters = {
            let mut p = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            while p.waiters.is_empty() && !p.shutdown {
                p = inner.wake.wait_timeout(p, VERSION_GC_EVERY).unwrap_or_else(|p| p.into_inner()).0;
                if p.waiters.is_empty() && !p.shutdown {
                    drop(p);
                    versions.tick(&inner);
                    p = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
                }
            }
            if p.waiters.is_empty() && p.shutdown {
                break;
            }
            std::mem::take(&mut p.waiters)
        };
        let result = journal.sync(&inner.db);
        inner.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &result {
            tracing::error!(error = %e, "fsync failed; acknowledging nothing");
        }
        for w in waiters {
            let _ = w.send(result.as_ref().map(|_| ()).map_err(|e| StoreError::Engine(e.to_string())));
        }
        // After the waiters are answered: a nudge takes fjall's journal lock.
        versions.tick(&inner);
    }
    let _ = inner.db.persist(PersistMode::SyncAll);
}

/// How often the group-commit thread looks for superseded engine versions.
const VERSION_GC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// At most one nudge per this long, should versions stay held for another reason.
const VERSION_GC_SPACING: std::time::Duration = std::time::Duration::from_secs(10);

/// Releases the storage engine's superseded versions after a memtable flush.
///
/// When lsm-tree (3.1) registers a flushed memtable's tables it appends a new
/// version and garbage-collects old ones against the watermark it read when the
/// flush *started*, so the version from before the flush survives, and with it
/// the flushed memtable (64 MiB at most per keyspace), until the tree's next
/// version change — in a write-heavy keyspace, the next flush, twenty minutes
/// later in the soak. fjall collects every keyspace's old versions with a fresh
/// watermark whenever any keyspace rotates its memtable. So once a flush has
/// finished and a keyspace still holds a superseded version, this rotates the
/// small `meta` keyspace (after writing one marker key, since an empty memtable
/// is not rotated), which drops those versions: the only cost is a tiny table.
/// Relies on fjall's `tree` / `rotate_memtable` (doc-hidden, hence the exact
/// version pin in Cargo.toml).
struct VersionGc {
    last_check: std::time::Instant,
    last_nudge: Option<std::time::Instant>,
    /// Superseded versions still held right after the last nudge (held for some
    /// other reason, e.g. an open snapshot): no new nudge until there are more.
    floor: usize,
    nudges: u64,
}

/// Key in the `meta` keyspace written before each rotation; its value is a count.
const VERSION_GC_KEY: &[u8] = b"engine.version_gc";

impl VersionGc {
    fn new() -> VersionGc {
        VersionGc { last_check: std::time::Instant::now(), last_nudge: None, floor: 0, nudges: 0 }
    }

    /// Checks at most every [`VERSION_GC_EVERY`].
    fn tick(&mut self, inner: &Inner) {
        let now = std::time::Instant::now();
        if now.duration_since(self.last_check) < VERSION_GC_EVERY {
            return;
        }
        self.last_check = now;
        let held = inner.superseded_versions_after_flush();
        if held <= self.floor {
            self.floor = held;
            return;
        }
        if self.last_nudge.is_some_and(|t| now.duration_since(t) < VERSION_GC_SPACING) {
            return;
        }
        self.last_nudge = Some(now);
        self.nudges += 1;
        let meta = &inner.ks.meta;
        // The rotation collects old versions before it returns.
        match meta.insert(VERSION_GC_KEY, self.nudges.to_le_bytes()).and_then(|()| meta.rotate_memtable()) {
            Ok(_) => self.floor = inner.superseded_versions_after_flush(),
            Err(e) => tracing::warn!(error = %e, "could not release the storage engine's superseded versions"),
        }
    }
}

impl Inner {
    /// Every keyspace but `meta`.
    fn data_keyspaces(&self) -> [&Keyspace; 11] {
        let k = &self.ks;
        [
            &k.users,
            &k.applications,
            &k.guilds,
            &k.guild_role,
            &k.guild_channel,
            &k.guild_member,
            &k.guild_ban,
            &k.guild_invite,
            &k.guild_thread_member,
            &k.channel_message,
            &k.channel_pin,
        ]
    }

    /// The pinned filters and block indexes of every keyspace's tables.
    fn table_index_bytes(&self) -> u64 {
        use fjall::AbstractTree;
        self.data_keyspaces()
            .into_iter()
            .chain([&self.ks.meta])
            .map(|ks| (ks.tree.pinned_filter_size() + ks.tree.pinned_block_index_size()) as u64)
            .sum()
    }

    /// Superseded versions the engine still holds, counted only in keyspaces with
    /// no flush under way (a flush in progress legitimately holds one). `meta` is
    /// left out: each nudge's own flush leaves it one, holding a memtable of one key.
    fn superseded_versions_after_flush(&self) -> usize {
        use fjall::AbstractTree;
        self.data_keyspaces()
            .iter()
            .filter(|ks| ks.sealed_memtable_count() == 0)
            .map(|ks| ks.tree.version_free_list_len())
            .sum()
    }

    fn write(&self, wb: &mut fjall::OwnedWriteBatch, m: Mutation, notes: &mut BatchNotes) -> Result<(), StoreError> {
        let ks = &self.ks;
        match m {
            Mutation::PutUser(u) => wb.insert(&ks.users, k1(u.id.get()), enc(&u)),
            Mutation::PutApplication(a) => wb.insert(&ks.applications, k1(a.id.get()), enc(&a)),
            Mutation::PutGuild(g) => wb.insert(&ks.guilds, k1(g.id.get()), enc(&g)),
            Mutation::DeleteGuild(g) => {
                let g = g.get();
                wb.remove(&ks.guilds, k1(g));
                for space in
                    [&ks.guild_role, &ks.guild_member, &ks.guild_ban, &ks.guild_invite, &ks.guild_thread_member]
                {
                    self.remove_prefix(wb, space, &k1(g))?;
                }
                for kv in ks.guild_channel.prefix(k1(g)) {
                    let key = kv.key().map_err(engine)?;
                    let channel: ChannelId = Id::new(tail_u64(&key, 8));
                    self.remove_channel_contents(wb, channel, notes)?;
                    wb.remove(&ks.guild_channel, key);
                }
            }
            Mutation::PutRole(g, r) => wb.insert(&ks.guild_role, k2(g.get(), r.id.get()), enc(&r)),
            Mutation::DeleteRole(g, r) => wb.remove(&ks.guild_role, k2(g.get(), r.get())),
            Mutation::PutChannel(c) => {
                let g = c.guild_id.map_or(0, |g| g.get());
                wb.insert(&ks.guild_channel, k2(g, c.id.get()), enc(&c));
            }
            Mutation::DeleteChannel(g, c) => {
                wb.remove(&ks.guild_channel, k2(g.map_or(0, |g| g.get()), c.get()));
                self.remove_channel_contents(wb, c, notes)?;
            }
            Mutation::PutMember(g, m) => wb.insert(&ks.guild_member, k2(g.get(), m.user_id.get()), enc(&m)),
            Mutation::DeleteMember(g, u) => wb.remove(&ks.guild_member, k2(g.get(), u.get())),
            Mutation::PutBan(g, b) => wb.insert(&ks.guild_ban, k2(g.get(), b.user_id.get()), enc(&b)),
            Mutation::DeleteBan(g, u) => wb.remove(&ks.guild_ban, k2(g.get(), u.get())),
            Mutation::PutInvite(i) => {
                let g = i.guild_id.map_or(0, |g| g.get());
                wb.insert(&ks.guild_invite, prefixed_str(g, &i.code), enc(&i));
            }
            Mutation::DeleteInvite(g, code) => {
                wb.remove(&ks.guild_invite, prefixed_str(g.map_or(0, |g| g.get()), &code))
            }
            Mutation::PutThreadMember(g, tm) => {
                wb.insert(&ks.guild_thread_member, k3(g.get(), tm.thread_id.get(), tm.user_id.get()), enc(&tm))
            }
            Mutation::DeleteThreadMember(g, t, u) => wb.remove(&ks.guild_thread_member, k3(g.get(), t.get(), u.get())),
            Mutation::PutMessage(msg) => {
                let key = k2(msg.channel_id.get(), msg.id.get());
                match msg.pinned_at {
                    Some(at) if msg.pinned => {
                        wb.insert(&ks.channel_pin, key, at.as_ms().to_be_bytes());
                        notes.pinned.push(key);
                    }
                    // Only a pin that exists gets a tombstone: most writes are new
                    // messages, and a tombstone for each would grow the pin
                    // keyspace's memtable by an entry per message sent. `apply`
                    // holds the write lock, so what the read sees is every earlier
                    // batch; a pin made earlier in this batch is in `notes`.
                    _ => {
                        if notes.pinned.contains(&key) || ks.channel_pin.contains_key(key).map_err(engine)? {
                            wb.remove(&ks.channel_pin, key);
                        }
                    }
                }
                notes.touched.push(msg.channel_id);
                wb.insert(&ks.channel_message, key, enc(&msg));
            }
            Mutation::DeleteMessage(c, id) => {
                let key = k2(c.get(), id.get());
                wb.remove(&ks.channel_message, key);
                wb.remove(&ks.channel_pin, key);
                notes.touched.push(c);
            }
            Mutation::PutMeta(k, v) => wb.insert(&ks.meta, k.as_bytes(), v),
        }
        Ok(())
    }

    fn remove_prefix(
        &self,
        wb: &mut fjall::OwnedWriteBatch,
        space: &Keyspace,
        prefix: &[u8],
    ) -> Result<(), StoreError> {
        for kv in space.prefix(prefix) {
            wb.remove(space, kv.key().map_err(engine)?);
        }
        Ok(())
    }

    fn remove_channel_contents(
        &self,
        wb: &mut fjall::OwnedWriteBatch,
        c: ChannelId,
        notes: &mut BatchNotes,
    ) -> Result<(), StoreError> {
        self.remove_prefix(wb, &self.ks.channel_message, &k1(c.get()))?;
        self.remove_prefix(wb, &self.ks.channel_pin, &k1(c.get()))?;
        notes.touched.push(c);
        Ok(())
    }

    fn scan_all<T: DeserializeOwned>(&self, space: &Keyspace, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for kv in space.prefix(prefix) {
            out.push(dec(&kv.value().map_err(engine)?)?);
        }
        Ok(out)
    }

    fn version(&self, c: ChannelId) -> u64 {
        self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(&c).copied().unwrap_or(0)
    }

    /// Reads a page from the engine, newest first.
    fn read_page(&self, channel: ChannelId, query: HistoryQuery, limit: usize) -> Result<Vec<Message>, StoreError> {
        self.history_reads.fetch_add(1, Ordering::Relaxed);
        let c = channel.get();
        let space = &self.ks.channel_message;
        let collect = |iter: &mut dyn Iterator<Item = fjall::Guard>, n: usize| -> Result<Vec<Message>, StoreError> {
            let mut out = Vec::with_capacity(n.min(100));
            for kv in iter.take(n) {
                out.push(dec(&kv.value().map_err(engine)?)?);
            }
            Ok(out)
        };
        Ok(match query {
            HistoryQuery::Latest => collect(&mut space.prefix(k1(c)).rev(), limit)?,
            HistoryQuery::Before(id) => collect(&mut space.range(k2(c, 0)..k2(c, id.get())).rev(), limit)?,
            HistoryQuery::After(id) => {
                let end = if c == u64::MAX { k2(c, u64::MAX) } else { k2(c + 1, 0) };
                let mut page = collect(&mut space.range(k2(c, id.get().saturating_add(1))..end), limit)?;
                page.reverse();
                page
            }
            HistoryQuery::Around(id) => {
                let before_n = limit / 2;
                let after_n = limit - before_n;
                let end = if c == u64::MAX { k2(c, u64::MAX) } else { k2(c + 1, 0) };
                let mut after = collect(&mut space.range(k2(c, id.get())..end), after_n)?;
                after.reverse();
                let before = collect(&mut space.range(k2(c, 0)..k2(c, id.get())).rev(), before_n)?;
                after.extend(before);
                after
            }
        })
    }
}

impl Store for EmbeddedStore {
    fn apply(&self, batch: Vec<Mutation>) -> Durable {
        let inner = &*self.inner;
        let mut pending = inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.shutdown {
            return Durable::ready(Err(StoreError::Closed));
        }
        if pending.waiters.len() >= inner.config.max_pending_writes {
            return Durable::ready(Err(StoreError::Overloaded));
        }
        // The batch's values and the memtable entries they become (crate::heap).
        let buffers = crate::heap::WriteBuffers::enter();
        let mut wb = inner.db.batch();
        let mut notes = BatchNotes::default();
        for m in batch {
            if let Err(e) = inner.write(&mut wb, m, &mut notes) {
                return Durable::ready(Err(e));
            }
        }
        if let Err(e) = wb.commit() {
            return Durable::ready(Err(engine(e)));
        }
        drop(buffers);
        inner.batches.fetch_add(1, Ordering::Relaxed);
        if !notes.touched.is_empty() {
            let mut versions = inner.versions.lock().unwrap_or_else(|p| p.into_inner());
            for c in notes.touched {
                *versions.entry(c).or_insert(0) += 1;
            }
        }
        let (tx, rx) = oneshot::channel();
        pending.waiters.push(tx);
        drop(pending);
        inner.wake.notify_one();
        Durable::waiting(rx)
    }

    fn load_users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.scan_all(&self.inner.ks.users, &[])
    }

    fn load_applications(&self) -> Result<Vec<Application>, StoreError> {
        self.inner.scan_all(&self.inner.ks.applications, &[])
    }

    fn load_guilds(&self) -> Result<Vec<GuildState>, StoreError> {
        let inner = &*self.inner;
        let guilds: Vec<Guild> = inner.scan_all(&inner.ks.guilds, &[])?;
        let mut out = Vec::with_capacity(guilds.len());
        for g in guilds {
            let prefix = k1(g.id.get());
            let mut state = GuildState::new(g);
            for r in inner.scan_all::<Role>(&inner.ks.guild_role, &prefix)? {
                state.roles.insert(r.id, r);
            }
            for c in inner.scan_all::<Channel>(&inner.ks.guild_channel, &prefix)? {
                state.channels.insert(c.id, c);
            }
            for m in inner.scan_all::<Member>(&inner.ks.guild_member, &prefix)? {
                state.members.insert(m.user_id, m);
            }
            for b in inner.scan_all::<Ban>(&inner.ks.guild_ban, &prefix)? {
                state.bans.insert(b.user_id, b);
            }
            for i in inner.scan_all::<Invite>(&inner.ks.guild_invite, &prefix)? {
                state.invites.insert(i.code.clone(), i);
            }
            for tm in inner.scan_all::<ThreadMember>(&inner.ks.guild_thread_member, &prefix)? {
                state.thread_members.entry(tm.thread_id).or_default().insert(tm.user_id, tm);
            }
            out.push(state);
        }
        Ok(out)
    }

    fn load_private_channels(&self) -> Result<Vec<Channel>, StoreError> {
        self.inner.scan_all(&self.inner.ks.guild_channel, &k1(0))
    }

    fn message(&self, channel: ChannelId, id: MessageId) -> Result<Option<Message>, StoreError> {
        match self.inner.ks.channel_message.get(k2(channel.get(), id.get())).map_err(engine)? {
            Some(v) => Ok(Some(dec(&v)?)),
            None => Ok(None),
        }
    }

    fn messages(&self, channel: ChannelId, query: HistoryQuery, limit: usize) -> Result<Arc<[Message]>, StoreError> {
        let inner = &*self.inner;
        let limit = limit.clamp(1, LATEST_PAGE);
        if query != HistoryQuery::Latest {
            return Ok(inner.read_page(channel, query, limit)?.into());
        }
        let version = inner.version(channel);
        if let Some((_, page)) =
            inner.latest.lock().unwrap_or_else(|p| p.into_inner()).get(&channel).filter(|(v, _)| *v == version)
        {
            inner.history_coalesced.fetch_add(1, Ordering::Relaxed);
            return Ok(page[..limit.min(page.len())].into());
        }
        let page: Arc<[Message]> = inner.read_page(channel, HistoryQuery::Latest, LATEST_PAGE)?.into();
        // Cache only if no write to the channel became visible during the read.
        if inner.version(channel) == version {
            let mut cache = inner.latest.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= inner.config.latest_page_cache_channels {
                cache.clear();
            }
            cache.insert(channel, (version, page.clone()));
        }
        Ok(page[..limit.min(page.len())].into())
    }

    fn message_version(&self, channel: ChannelId) -> Option<u64> {
        Some(self.inner.version(channel))
    }

    fn pinned_messages(&self, channel: ChannelId) -> Result<Vec<Message>, StoreError> {
        let inner = &*self.inner;
        let mut pins = Vec::new();
        for kv in inner.ks.channel_pin.prefix(k1(channel.get())) {
            let (k, v) = kv.into_inner().map_err(engine)?;
            let at = if v.len() == 8 { tail_u64(&v, 0) } else { 0 };
            pins.push((at, tail_u64(&k, 8)));
        }
        pins.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::with_capacity(pins.len());
        for (_, id) in pins {
            if let Some(m) = self.message(channel, Id::new(id))? {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.ks.meta.get(key.as_bytes()).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.persist(PersistMode::SyncAll).map_err(engine)
    }

    fn stats(&self) -> StoreStats {
        let i = &*self.inner;
        StoreStats {
            history_reads: i.history_reads.load(Ordering::Relaxed),
            history_coalesced: i.history_coalesced.load(Ordering::Relaxed),
            batches: i.batches.load(Ordering::Relaxed),
            syncs: i.syncs.load(Ordering::Relaxed),
            memtable_bytes: i.db.write_buffer_size(),
            block_cache_bytes: i.db.cache_size(),
            table_index_bytes: i.table_index_bytes(),
            write_buffer_heap_bytes: crate::heap::metered(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_sync_finds_the_active_journal_of_an_open_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedStoreConfig::default()).unwrap();
        let sync = JournalSync::new(store.inner.dir.clone());
        // Without it every round would take the fallback (fsync under fjall's lock).
        let (id, _) = sync.active.as_ref().expect("active journal found");
        assert!(sync.path(*id).exists());
        assert!(!sync.path(id + 1).exists());
    }

    #[test]
    fn journal_sync_follows_rotations_to_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["3.jnl", "5.jnl", "lock", "x.jnl"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let mut sync = JournalSync::new(dir.path().to_path_buf());
        assert_eq!(sync.active.as_ref().map(|a| a.0), Some(5));
        sync.follow_rotations();
        assert_eq!(sync.active.as_ref().map(|a| a.0), Some(5));
        std::fs::write(dir.path().join("6.jnl"), b"").unwrap();
        std::fs::write(dir.path().join("7.jnl"), b"").unwrap();
        sync.follow_rotations();
        assert_eq!(sync.active.as_ref().map(|a| a.0), Some(7));
    }

    #[tokio::test]
    async fn new_messages_leave_the_pin_keyspace_untouched() {
        use fjall::AbstractTree;
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedStoreConfig::default()).unwrap();
        for i in 1..=100u64 {
            let m = Message::plain(Id::new(i << 22), Id::new(9), Some(Id::new(1)), Id::new(7), format!("m{i}"));
            store.apply(vec![Mutation::PutMessage(m)]).await.unwrap();
        }
        assert_eq!(store.inner.ks.channel_message.tree.approximate_len(), 100);
        assert_eq!(store.inner.ks.channel_pin.tree.approximate_len(), 0, "no tombstone per new message");
    }

    #[test]
    fn a_flushed_memtable_is_released_once_its_flush_has_finished() {
        use fjall::AbstractTree;
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), EmbeddedStoreConfig::default()).unwrap();
        let messages = &store.inner.ks.channel_message;
        for i in 0u64..2_000 {
            messages.insert(k2(7, i), vec![b'x'; 500]).unwrap();
        }
        messages.rotate_memtable_and_wait().unwrap();
        assert_eq!(messages.table_count(), 1, "the memtable was flushed into a table");
        // The engine keeps the version from before the flush (and the flushed
        // memtable in it) until its next version change; the group-commit thread
        // notices within a second or two and makes one.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while messages.tree.version_free_list_len() > 0 {
            assert!(std::time::Instant::now() < deadline, "the superseded version is still held");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(store.inner.superseded_versions_after_flush(), 0);
        assert_eq!(messages.get(k2(7, 1_999)).unwrap().map(|v| v.len()), Some(500), "the data is in the table");
    }

    #[tokio::test]
    async fn a_memtable_past_its_configured_size_is_flushed_and_its_memory_given_back() {
        use fjall::AbstractTree;
        let dir = tempfile::tempdir().unwrap();
        let config = EmbeddedStoreConfig { memtable_bytes: 1 << 20, ..EmbeddedStoreConfig::default() };
        let store = EmbeddedStore::open(dir.path(), config).unwrap();
        // 4,000 messages of ~1 KiB: about 4 MiB, several times the bound.
        let text = "y".repeat(1000);
        for batch in 0..40u64 {
            let puts = (1..=100u64).map(|i| {
                let id = Id::new((batch * 100 + i) << 22);
                Mutation::PutMessage(Message::plain(id, Id::new(9), Some(Id::new(1)), Id::new(7), text.clone()))
            });
            store.apply(puts.collect()).await.unwrap();
        }
        let messages = &store.inner.ks.channel_message;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while messages.sealed_memtable_count() > 0 || messages.tree.version_free_list_len() > 0 {
            assert!(std::time::Instant::now() < deadline, "flushes or the release of flushed memtables did not finish");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let in_memory = messages.tree.active_memtable().len();
        assert!(in_memory < 1_500, "{in_memory} of 4,000 messages are still in the memtable");
        assert!(messages.table_count() >= 1, "the flushed messages are in tables");
        let buffered = store.stats().memtable_bytes;
        assert!(buffered <= 2 << 20, "write buffers hold {buffered} bytes, more than two memtables");
        // The tables' filters and indexes are in memory, and counted.
        let pinned = messages.tree.pinned_filter_size() + messages.tree.pinned_block_index_size();
        assert!(pinned > 0);
        assert!(store.stats().table_index_bytes >= pinned as u64);
        assert_eq!(messages.tree.approximate_len(), 4_000, "every message is still there");
        let page = store.messages(Id::new(9), HistoryQuery::Latest, 100).unwrap();
        assert_eq!(page.len(), 100);
        assert_eq!(page[0].id, Id::new(4_000 << 22), "the newest message first");
    }
}
