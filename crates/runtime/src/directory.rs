//! In-memory indexes shared by every actor: users, applications, which guilds each
//! user is in, and which guild (or none, for DMs) each channel belongs to. Loaded
//! from the store at start; the single writer of each entry keeps it current.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use guildhall_domain::entity::{Application, User};
use guildhall_model::id::{ApplicationId, ChannelId, GuildId, UserId};

/// Where a channel lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelHome {
    Guild(GuildId),
    Private,
}

#[derive(Default)]
pub struct Directory {
    users: RwLock<HashMap<UserId, Arc<User>>>,
    /// Bumped (under the `users` write lock) on every user change, for caches of
    /// rendered objects that show users.
    users_version: AtomicU64,
    /// Lower-cased username → user, for login and uniqueness.
    usernames: RwLock<HashMap<String, UserId>>,
    /// Lower-cased email → user.
    emails: RwLock<HashMap<String, UserId>>,
    applications: RwLock<HashMap<ApplicationId, Arc<Application>>>,
    /// Bot user → its application.
    bot_apps: RwLock<HashMap<UserId, ApplicationId>>,
    user_guilds: RwLock<HashMap<UserId, HashSet<GuildId>>>,
    channels: RwLock<HashMap<ChannelId, ChannelHome>>,
    /// Invite code → the guild that owns the invite (the guild actor keeps it current).
    invites: RwLock<HashMap<String, GuildId>>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Directory {
    pub fn user(&self, id: UserId) -> Option<Arc<User>> {
        read(&self.users).get(&id).cloned()
    }

    pub fn user_by_login(&self, login: &str) -> Option<Arc<User>> {
        let key = login.to_lowercase();
        let id = read(&self.emails).get(&key).copied().or_else(|| read(&self.usernames).get(&key).copied())?;
        self.user(id)
    }

    pub fn username_taken(&self, username: &str) -> bool {
        read(&self.usernames).contains_key(&username.to_lowercase())
    }

    pub fn email_taken(&self, email: &str) -> bool {
        read(&self.emails).contains_key(&email.to_lowercase())
    }

    /// Inserts or replaces a user and its login indexes.
    pub fn put_user(&self, user: User) {
        let user = Arc::new(user);
        let old = {
            let mut users = write(&self.users);
            self.users_version.fetch_add(1, Ordering::Relaxed);
            users.insert(user.id, user.clone())
        };
        let mut names = write(&self.usernames);
        let mut emails = write(&self.emails);
        if let Some(old) = old {
            names.remove(&old.username.to_lowercase());
            if let Some(e) = &old.email {
                emails.remove(&e.to_lowercase());
            }
        }
        names.insert(user.username.to_lowercase(), user.id);
        if let Some(e) = &user.email {
            emails.insert(e.to_lowercase(), user.id);
        }
    }

    /// Runs `f` with a user lookup that holds the read lock once, for rendering
    /// many objects.
    pub fn with_users<R>(&self, f: impl FnOnce(&HashMap<UserId, Arc<User>>) -> R) -> R {
        f(&read(&self.users))
    }

    /// Like [`Directory::with_users`], also passing the users' version (see
    /// [`Directory::users_version`]) that the map is at.
    pub fn with_users_at<R>(&self, f: impl FnOnce(&HashMap<UserId, Arc<User>>, u64) -> R) -> R {
        let users = read(&self.users);
        f(&users, self.users_version.load(Ordering::Relaxed))
    }

    /// Changes whenever a user is added or changed.
    pub fn users_version(&self) -> u64 {
        let _users = read(&self.users);
        self.users_version.load(Ordering::Relaxed)
    }

    pub fn application(&self, id: ApplicationId) -> Option<Arc<Application>> {
        read(&self.applications).get(&id).cloned()
    }

    pub fn application_of_bot(&self, bot: UserId) -> Option<Arc<Application>> {
        let id = read(&self.bot_apps).get(&bot).copied()?;
        self.application(id)
    }

    pub fn applications_of_owner(&self, owner: UserId) -> Vec<Arc<Application>> {
        read(&self.applications).values().filter(|a| a.owner_id == owner).cloned().collect()
    }

    pub fn put_application(&self, app: Application) {
        write(&self.bot_apps).insert(app.bot_user_id, app.id);
        write(&self.applications).insert(app.id, Arc::new(app));
    }

    pub fn guilds_of(&self, user: UserId) -> Vec<GuildId> {
        let mut v: Vec<GuildId> =
            read(&self.user_guilds).get(&user).map(|s| s.iter().copied().collect()).unwrap_or_default();
        v.sort_unstable();
        v
    }

    pub fn guild_count_of(&self, user: UserId) -> usize {
        read(&self.user_guilds).get(&user).map_or(0, HashSet::len)
    }

    pub fn add_membership(&self, user: UserId, guild: GuildId) {
        write(&self.user_guilds).entry(user).or_default().insert(guild);
    }

    pub fn remove_membership(&self, user: UserId, guild: GuildId) {
        if let Some(set) = write(&self.user_guilds).get_mut(&user) {
            set.remove(&guild);
        }
    }

    pub fn channel_home(&self, channel: ChannelId) -> Option<ChannelHome> {
        read(&self.channels).get(&channel).copied()
    }

    pub fn set_channel_home(&self, channel: ChannelId, home: ChannelHome) {
        write(&self.channels).insert(channel, home);
    }

    pub fn remove_channel(&self, channel: ChannelId) {
        write(&self.channels).remove(&channel);
    }

    /// The guild an invite code belongs to.
    pub fn invite_guild(&self, code: &str) -> Option<GuildId> {
        read(&self.invites).get(code).copied()
    }

    /// Claims `code` for `guild`; false if the code is already taken.
    pub fn claim_invite(&self, code: &str, guild: GuildId) -> bool {
        let mut map = write(&self.invites);
        if map.contains_key(code) {
            return false;
        }
        map.insert(code.to_string(), guild);
        true
    }

    pub fn remove_invite(&self, code: &str) {
        write(&self.invites).remove(code);
    }
}
