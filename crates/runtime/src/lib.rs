//! The runtime: every long-lived task and in-memory index of a node.
//!
//! - One guild actor per guild ([`guild`]) owns that guild's state, runs one job at
//!   a time, persists before it publishes ([`actor`]), and fans events out to the
//!   sessions that may see them.
//! - One private actor ([`private`]) owns DM and group DM channels.
//! - The [`Directory`] indexes users, applications, memberships and channel homes;
//!   the [`Sessions`] registry maps users to their live gateway sessions.
//!
//! Invariant: this crate knows no HTTP and no WebSocket; the REST and gateway
//! shells call into it and receive bytes to send.

pub mod actor;
pub mod directory;
pub mod error;
pub mod event;
pub mod guild;
pub mod page_cache;
pub mod presence;
pub mod private;
pub mod session;
pub mod session_starts;
pub mod tokens;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use guildhall_domain::entity::Channel;
use guildhall_model::id::{ChannelId, GuildId, Id, UserId};
use guildhall_model::snowflake::SnowflakeGenerator;
use guildhall_store::Store;

pub use actor::Change;
pub use directory::{ChannelHome, Directory};
pub use error::{Error, ErrorKind, FormErrors, Result};
pub use event::{Audience, Event, Outbound};
pub use guild::{GuildActor, GuildHandle, GuildScope};
pub use presence::Presence;
pub use private::{PrivateActor, PrivateHandle, PrivateScope};
pub use session::{SessionHandle, Sessions};

/// Settings the runtime needs from the server's configuration.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Base URL clients reach the HTTP API at, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// Gateway URL handed out by `GET /gateway` and READY (no trailing slash).
    pub gateway_url: String,
    /// Directory for attachment files.
    pub attachments_dir: std::path::PathBuf,
    /// IDENTIFY limits (`session_start_limit`).
    pub session_starts: session_starts::SessionStartLimits,
}

/// State shared by every actor and shell of the node.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub ids: SnowflakeGenerator,
    pub directory: Directory,
    pub sessions: Sessions,
    /// IDENTIFY counters, read by the gateway and `GET /gateway/bot`.
    pub session_starts: session_starts::SessionStarts,
    pub config: RuntimeConfig,
    /// Rendered latest-history pages (REST), keyed by store and user versions.
    pub history_pages: page_cache::PageCache,
    guilds: RwLock<HashMap<GuildId, GuildHandle>>,
    private: RwLock<Option<PrivateHandle>>,
    /// Current presence of each user with at least one session.
    presences: RwLock<HashMap<UserId, Presence>>,
    /// Every actor task holds a clone of this sender; when all are gone the
    /// receiver in `drained` yields `None`, which is how shutdown knows the
    /// actors have finished (mini-redis's shutdown-complete pattern).
    actor_guard: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<()>>>,
    drained: tokio::sync::Mutex<Option<tokio::sync::mpsc::Receiver<()>>>,
}

/// The runtime handle the shells hold.
pub type Runtime = Arc<Shared>;

impl Shared {
    /// Loads everything from the store and starts one actor per guild.
    pub fn start(store: Arc<dyn Store>, config: RuntimeConfig, worker: u8) -> Result<Runtime> {
        let (guard_tx, guard_rx) = tokio::sync::mpsc::channel(1);
        let shared = Arc::new(Shared {
            store,
            ids: SnowflakeGenerator::new(worker, 0),
            directory: Directory::default(),
            sessions: Sessions::default(),
            session_starts: session_starts::SessionStarts::new(config.session_starts),
            config,
            history_pages: page_cache::PageCache::default(),
            guilds: RwLock::new(HashMap::new()),
            private: RwLock::new(None),
            presences: RwLock::new(HashMap::new()),
            actor_guard: std::sync::Mutex::new(Some(guard_tx)),
            drained: tokio::sync::Mutex::new(Some(guard_rx)),
        });
        let mut max_id = 0u64;
        for u in shared.store.load_users()? {
            max_id = max_id.max(u.id.get());
            shared.directory.put_user(u);
        }
        for a in shared.store.load_applications()? {
            max_id = max_id.max(a.id.get());
            shared.directory.put_application(a);
        }
        for mut state in shared.store.load_guilds()? {
            let gid = state.guild.id;
            // last_message_id is not rewritten on every send; recover it from history.
            for c in state.channels.values_mut() {
                let latest = shared.store.messages(c.id, guildhall_store::HistoryQuery::Latest, 1)?;
                c.last_message_id = latest.first().map(|m| m.id);
            }
            max_id = max_id.max(gid.get());
            for c in state.channels.values() {
                max_id = max_id.max(c.id.get()).max(c.last_message_id.map_or(0, |m| m.get()));
                shared.directory.set_channel_home(c.id, ChannelHome::Guild(gid));
            }
            for m in state.members.keys() {
                shared.directory.add_membership(*m, gid);
            }
            for code in state.invites.keys() {
                shared.directory.claim_invite(code, gid);
            }
            shared.spawn_guild(state);
        }
        let mut private = PrivateScope::default();
        for c in shared.store.load_private_channels()? {
            max_id = max_id.max(c.id.get()).max(c.last_message_id.map_or(0, |m| m.get()));
            shared.directory.set_channel_home(c.id, ChannelHome::Private);
            private.insert(c);
        }
        // Never hand out an id at or below one already stored, whatever the clock says.
        shared.ids.observe(max_id);
        let handle = PrivateHandle::spawn(private, shared.clone());
        *shared.private.write().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(shared)
    }

    /// A guard for a new actor task; `None` once shutdown has begun.
    pub(crate) fn actor_guard(&self) -> Option<tokio::sync::mpsc::Sender<()>> {
        self.actor_guard.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops every actor: drops their mailboxes' senders, lets each finish the
    /// writes it has in flight, and returns when all have exited.
    pub async fn shutdown(&self) {
        self.actor_guard.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.guilds.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.private.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut rx) = self.drained.lock().await.take() {
            while rx.recv().await.is_some() {}
        }
    }

    pub fn next_id<M>(&self) -> Id<M> {
        Id::new(self.ids.next())
    }

    /// Starts an actor for a guild (at load, or when a guild is created).
    pub fn spawn_guild(self: &Arc<Self>, state: guildhall_domain::GuildState) -> GuildHandle {
        let id = state.guild.id;
        let handle = GuildHandle::spawn(GuildScope::new(state), self.clone());
        self.guilds.write().unwrap_or_else(|p| p.into_inner()).insert(id, handle.clone());
        handle
    }

    /// Forgets a deleted guild's actor (it stops once its queue drains).
    pub fn remove_guild(&self, id: GuildId) {
        self.guilds.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    /// The guild's actor, or 10004 Unknown Guild.
    pub fn guild(&self, id: GuildId) -> Result<GuildHandle> {
        self.guilds.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned().ok_or_else(Error::unknown_guild)
    }

    pub fn guild_count(&self) -> usize {
        self.guilds.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn private(&self) -> PrivateHandle {
        self.private.read().unwrap_or_else(|p| p.into_inner()).clone().expect("the private actor is spawned in start()")
    }

    /// Where a channel lives, or 10003 Unknown Channel.
    pub fn channel_home(&self, id: ChannelId) -> Result<ChannelHome> {
        self.directory.channel_home(id).ok_or_else(Error::unknown_channel)
    }

    /// Registers an identified session and subscribes it to each of its user's
    /// guilds; each guild actor then sends GUILD_CREATE through the session's queue.
    /// Call after READY has been queued, so READY comes first.
    pub async fn attach_session(&self, handle: SessionHandle, presence: Presence) {
        self.sessions.insert(handle.clone());
        let user = handle.user_id;
        let newly_online = {
            let mut p = self.presences.write().unwrap_or_else(|p| p.into_inner());
            let fresh = !p.contains_key(&user);
            if fresh {
                p.insert(user, presence.clone());
            }
            fresh
        };
        for gid in self.directory.guilds_of(user) {
            let Ok(g) = self.guild(gid) else { continue };
            let h = handle.clone();
            let p = presence.clone();
            g.cast_wait(move |a: &mut GuildActor| {
                if newly_online && !p.is_offline() {
                    a.set_presence(user, p);
                }
                a.subscribe(h);
            })
            .await;
        }
    }

    /// Unregisters a session that ended for good (not one that may still resume).
    /// The user goes offline when their last session ends.
    pub fn detach_session(&self, user: UserId, session_id: u64) {
        let left = self.sessions.remove(user, session_id);
        let went_offline =
            left == 0 && self.presences.write().unwrap_or_else(|p| p.into_inner()).remove(&user).is_some();
        for gid in self.directory.guilds_of(user) {
            let Ok(g) = self.guild(gid) else { continue };
            g.cast(move |a: &mut GuildActor| {
                a.unsubscribe(session_id);
                if went_offline {
                    a.set_presence(user, Presence::new(user, "offline", Vec::new()));
                }
            });
        }
    }

    /// Op 3: a user's new presence, published to every guild they are in.
    pub fn update_presence(&self, user: UserId, presence: Presence) {
        self.presences.write().unwrap_or_else(|p| p.into_inner()).insert(user, presence.clone());
        for gid in self.directory.guilds_of(user) {
            let Ok(g) = self.guild(gid) else { continue };
            let p = presence.clone();
            g.cast(move |a: &mut GuildActor| a.set_presence(user, p));
        }
    }

    pub fn presence_of(&self, user: UserId) -> Option<Presence> {
        self.presences.read().unwrap_or_else(|p| p.into_inner()).get(&user).cloned()
    }

    /// Registers a new private channel's home (the private actor owns it).
    pub fn register_private_channel(&self, channel: &Channel) {
        self.directory.set_channel_home(channel.id, ChannelHome::Private);
    }
}

impl GuildActor {
    /// Records a presence and sends PRESENCE_UPDATE to members with GUILD_PRESENCES.
    pub fn set_presence(&mut self, user: UserId, presence: Presence) {
        let guild_id = self.state.guild.guild.id;
        if !self.state.guild.members.contains_key(&user) {
            return;
        }
        // No entry means offline (or invisible): going offline from there is no change.
        let changed = match self.state.presences.get(&user) {
            Some(old) => *old != presence,
            None => !presence.is_offline(),
        };
        if presence.is_offline() {
            self.state.presences.remove(&user);
        } else {
            self.state.presences.insert(user, presence.clone());
        }
        // Nothing to render when no subscriber takes presences (the event would
        // reach nobody): a mass disconnect of a big guild's bots is then cheap.
        if !changed || !self.state.subscribers.any_takes_presences() {
            return;
        }
        let mut body = serde_json::to_value(&presence).unwrap_or_default();
        body["guild_id"] = serde_json::json!(guild_id);
        let event = Event::guild("PRESENCE_UPDATE", guild_id, guildhall_model::Intents::GUILD_PRESENCES, &body);
        self.publish_now(event);
    }
}
