//! Stored entities. These are the storage schema (serialized by the store) and the
//! input to [`crate::wire`], which renders the JSON the libraries read. Wire shapes
//! and stored shapes are kept apart so one can change without the other.

use guildhall_model::id::{
    ApplicationId, AttachmentId, ChannelId, EmojiId, GenericMarker, GuildId, Id, MessageId, RoleId, UserId,
};
use guildhall_model::{Permissions, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub global_name: Option<String>,
    pub avatar: Option<String>,
    pub bot: bool,
    pub email: Option<String>,
    /// Argon2id PHC string; `None` for bot users, which log in by token only.
    pub password_hash: Option<String>,
    /// Bumped whenever the password changes or a bot token is reset: every token
    /// minted under an older generation stops verifying.
    pub token_generation: u32,
    pub flags: u64,
    pub locale: String,
}

/// Application flags that grant privileged gateway intents to the app's bot.
pub mod application_flags {
    pub const GATEWAY_PRESENCE: u64 = 1 << 12;
    pub const GATEWAY_PRESENCE_LIMITED: u64 = 1 << 13;
    pub const GATEWAY_GUILD_MEMBERS: u64 = 1 << 14;
    pub const GATEWAY_GUILD_MEMBERS_LIMITED: u64 = 1 << 15;
    pub const GATEWAY_MESSAGE_CONTENT: u64 = 1 << 18;
    pub const GATEWAY_MESSAGE_CONTENT_LIMITED: u64 = 1 << 19;
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Application {
    pub id: ApplicationId,
    pub name: String,
    pub description: String,
    pub icon: Option<String>,
    pub owner_id: UserId,
    /// The bot user; Discord creates it together with the application.
    pub bot_user_id: UserId,
    pub flags: u64,
    pub bot_public: bool,
    pub bot_require_code_grant: bool,
    /// Hex-encoded public key, as Discord hands out for interaction signatures.
    pub verify_key: String,
}

impl Application {
    /// The privileged intents the application's flags allow its bot.
    pub fn allowed_privileged_intents(&self) -> guildhall_model::Intents {
        use application_flags::*;
        use guildhall_model::Intents;
        let mut out = Intents(0);
        if self.flags & (GATEWAY_PRESENCE | GATEWAY_PRESENCE_LIMITED) != 0 {
            out = out.union(Intents::GUILD_PRESENCES);
        }
        if self.flags & (GATEWAY_GUILD_MEMBERS | GATEWAY_GUILD_MEMBERS_LIMITED) != 0 {
            out = out.union(Intents::GUILD_MEMBERS);
        }
        if self.flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED) != 0 {
            out = out.union(Intents::MESSAGE_CONTENT);
        }
        out
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Guild {
    pub id: GuildId,
    pub name: String,
    pub icon: Option<String>,
    pub description: Option<String>,
    pub owner_id: UserId,
    pub afk_channel_id: Option<ChannelId>,
    pub afk_timeout: u32,
    pub verification_level: u8,
    pub default_message_notifications: u8,
    pub explicit_content_filter: u8,
    pub mfa_level: u8,
    pub nsfw_level: u8,
    pub system_channel_id: Option<ChannelId>,
    pub system_channel_flags: u64,
    pub rules_channel_id: Option<ChannelId>,
    pub public_updates_channel_id: Option<ChannelId>,
    pub preferred_locale: String,
    pub features: Vec<String>,
    pub premium_progress_bar_enabled: bool,
}

impl Guild {
    /// A guild with Discord's defaults for everything but its id, name and owner.
    pub fn new(id: GuildId, name: impl Into<String>, owner_id: UserId) -> Guild {
        Guild {
            id,
            name: name.into(),
            icon: None,
            description: None,
            owner_id,
            afk_channel_id: None,
            afk_timeout: 300,
            verification_level: 0,
            default_message_notifications: 0,
            explicit_content_filter: 0,
            mfa_level: 0,
            nsfw_level: 0,
            system_channel_id: None,
            system_channel_flags: 0,
            rules_channel_id: None,
            public_updates_channel_id: None,
            preferred_locale: "en-US".into(),
            features: Vec::new(),
            premium_progress_bar_enabled: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    pub color: u32,
    pub hoist: bool,
    pub icon: Option<String>,
    pub unicode_emoji: Option<String>,
    pub position: i32,
    pub permissions: Permissions,
    pub managed: bool,
    pub mentionable: bool,
    pub flags: u64,
    /// For a bot's managed role: the bot it belongs to (wire `tags.bot_id`).
    pub bot_id: Option<UserId>,
}

impl Role {
    /// A plain role: not hoisted, managed or mentionable, no color, icon or tags.
    pub fn new(id: RoleId, name: impl Into<String>, position: i32, permissions: Permissions) -> Role {
        Role {
            id,
            name: name.into(),
            color: 0,
            hoist: false,
            icon: None,
            unicode_emoji: None,
            position,
            permissions,
            managed: false,
            mentionable: false,
            flags: 0,
            bot_id: None,
        }
    }

    /// A guild's @everyone role (its id is the guild's) with Discord's default permissions.
    pub fn everyone(guild: GuildId) -> Role {
        Role::new(guild.cast(), "@everyone", 0, Permissions::DEFAULT_EVERYONE)
    }
}

/// Channel types Guildhall serves.
pub mod channel_type {
    pub const GUILD_TEXT: u8 = 0;
    pub const DM: u8 = 1;
    pub const GUILD_VOICE: u8 = 2;
    pub const GROUP_DM: u8 = 3;
    pub const GUILD_CATEGORY: u8 = 4;
    pub const GUILD_ANNOUNCEMENT: u8 = 5;
    pub const ANNOUNCEMENT_THREAD: u8 = 10;
    pub const PUBLIC_THREAD: u8 = 11;
    pub const PRIVATE_THREAD: u8 = 12;
    pub const GUILD_STAGE_VOICE: u8 = 13;
    pub const GUILD_FORUM: u8 = 15;

    pub const fn is_thread(kind: u8) -> bool {
        matches!(kind, ANNOUNCEMENT_THREAD | PUBLIC_THREAD | PRIVATE_THREAD)
    }
    pub const fn is_text_based(kind: u8) -> bool {
        matches!(
            kind,
            GUILD_TEXT
                | DM
                | GROUP_DM
                | GUILD_ANNOUNCEMENT
                | ANNOUNCEMENT_THREAD
                | PUBLIC_THREAD
                | PRIVATE_THREAD
                | GUILD_VOICE
                | GUILD_STAGE_VOICE
        )
    }
    pub const fn is_voice(kind: u8) -> bool {
        matches!(kind, GUILD_VOICE | GUILD_STAGE_VOICE)
    }
    pub const fn is_private(kind: u8) -> bool {
        matches!(kind, DM | GROUP_DM)
    }
}

/// Overwrite target: 0 = role, 1 = member.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Overwrite {
    pub id: Id<GenericMarker>,
    pub kind: u8,
    pub allow: Permissions,
    pub deny: Permissions,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ThreadMetadata {
    pub archived: bool,
    pub auto_archive_duration: u32,
    pub archive_timestamp: Timestamp,
    pub locked: bool,
    pub invitable: Option<bool>,
    pub create_timestamp: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Channel {
    pub id: ChannelId,
    pub kind: u8,
    pub guild_id: Option<GuildId>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub position: i32,
    pub parent_id: Option<ChannelId>,
    pub nsfw: bool,
    pub rate_limit_per_user: u32,
    pub bitrate: Option<u32>,
    pub user_limit: Option<u32>,
    pub permission_overwrites: Vec<Overwrite>,
    pub last_message_id: Option<MessageId>,
    pub last_pin_timestamp: Option<Timestamp>,
    /// DM and group DM participants.
    pub recipients: Vec<UserId>,
    /// Thread creator or group DM owner.
    pub owner_id: Option<UserId>,
    pub thread_metadata: Option<ThreadMetadata>,
    pub message_count: u32,
    pub member_count: u32,
    pub flags: u64,
}

impl Channel {
    /// A channel with every optional field empty, for constructors to fill in.
    pub fn new(id: ChannelId, kind: u8, guild_id: Option<GuildId>) -> Channel {
        Channel {
            id,
            kind,
            guild_id,
            name: None,
            topic: None,
            position: 0,
            parent_id: None,
            nsfw: false,
            rate_limit_per_user: 0,
            bitrate: None,
            user_limit: None,
            permission_overwrites: Vec::new(),
            last_message_id: None,
            last_pin_timestamp: None,
            recipients: Vec::new(),
            owner_id: None,
            thread_metadata: None,
            message_count: 0,
            member_count: 0,
            flags: 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub user_id: UserId,
    pub nick: Option<String>,
    pub avatar: Option<String>,
    pub roles: Vec<RoleId>,
    pub joined_at: Timestamp,
    pub deaf: bool,
    pub mute: bool,
    pub flags: u64,
    pub pending: bool,
    pub communication_disabled_until: Option<Timestamp>,
}

impl Member {
    pub fn new(user_id: UserId, joined_at: Timestamp) -> Member {
        Member {
            user_id,
            nick: None,
            avatar: None,
            roles: Vec::new(),
            joined_at,
            deaf: false,
            mute: false,
            flags: 0,
            pending: false,
            communication_disabled_until: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Attachment {
    pub id: AttachmentId,
    pub filename: String,
    pub description: Option<String>,
    pub content_type: Option<String>,
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// An emoji as used in reactions: unicode (`id` none) or custom.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub struct ReactionEmoji {
    pub id: Option<EmojiId>,
    pub name: String,
    pub animated: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Reaction {
    pub emoji: ReactionEmoji,
    /// Users who reacted, in reaction order (normal reactions).
    pub users: Vec<UserId>,
    /// Users who super-reacted.
    pub burst_users: Vec<UserId>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MessageReference {
    pub kind: u8,
    pub message_id: Option<MessageId>,
    pub channel_id: Option<ChannelId>,
    pub guild_id: Option<GuildId>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub guild_id: Option<GuildId>,
    pub author_id: UserId,
    pub content: String,
    pub edited_timestamp: Option<Timestamp>,
    pub tts: bool,
    pub mention_everyone: bool,
    pub mentions: Vec<UserId>,
    pub mention_roles: Vec<RoleId>,
    pub attachments: Vec<Attachment>,
    pub embeds: Vec<serde_json::Value>,
    pub reactions: Vec<Reaction>,
    pub pinned: bool,
    pub pinned_at: Option<Timestamp>,
    pub kind: u8,
    pub flags: u64,
    pub message_reference: Option<MessageReference>,
    /// Thread started from this message, if any.
    pub thread_id: Option<ChannelId>,
    pub application_id: Option<ApplicationId>,
}

impl Message {
    /// A message of `content` and nothing else: type 0, no mentions, attachments,
    /// embeds, reactions, reference or flags, not pinned, never edited.
    pub fn plain(
        id: MessageId,
        channel_id: ChannelId,
        guild_id: Option<GuildId>,
        author_id: UserId,
        content: String,
    ) -> Message {
        Message {
            id,
            channel_id,
            guild_id,
            author_id,
            content,
            edited_timestamp: None,
            tts: false,
            mention_everyone: false,
            mentions: Vec::new(),
            mention_roles: Vec::new(),
            attachments: Vec::new(),
            embeds: Vec::new(),
            reactions: Vec::new(),
            pinned: false,
            pinned_at: None,
            kind: 0,
            flags: 0,
            message_reference: None,
            thread_id: None,
            application_id: None,
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        Timestamp(self.id.timestamp_ms())
    }
}

/// Message types Guildhall produces.
pub mod message_type {
    pub const DEFAULT: u8 = 0;
    pub const CHANNEL_PINNED_MESSAGE: u8 = 6;
    pub const USER_JOIN: u8 = 7;
    pub const THREAD_CREATED: u8 = 18;
    pub const REPLY: u8 = 19;
    pub const THREAD_STARTER_MESSAGE: u8 = 21;

    /// System messages that cannot be deleted.
    pub const fn is_deletable(kind: u8) -> bool {
        !matches!(kind, 1..=5 | 21)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Invite {
    pub code: String,
    pub guild_id: Option<GuildId>,
    pub channel_id: ChannelId,
    pub inviter_id: Option<UserId>,
    pub created_at: Timestamp,
    /// Seconds; 0 = never expires.
    pub max_age: u32,
    /// 0 = unlimited.
    pub max_uses: u32,
    pub uses: u32,
    pub temporary: bool,
}

impl Invite {
    pub fn expires_at(&self) -> Option<Timestamp> {
        (self.max_age > 0).then(|| Timestamp(self.created_at.0 + u64::from(self.max_age) * 1000))
    }
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at().is_some_and(|t| now >= t) || (self.max_uses > 0 && self.uses >= self.max_uses)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ban {
    pub user_id: UserId,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ThreadMember {
    pub thread_id: ChannelId,
    pub user_id: UserId,
    pub join_timestamp: Timestamp,
    pub flags: u64,
}
