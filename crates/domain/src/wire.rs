//! How each entity looks on the wire: every field that discord.py, discord.js,
//! twilight, serenity and hikari index without a default (protocol notes, 3.5).
//! Optional keys whose type is not nullable are omitted rather than sent as null.
//!
//! These are borrowing `Serialize` views, so rendering an object allocates nothing
//! beyond the output buffer.

use guildhall_model::id::{ApplicationId, ChannelId, GuildId, Id, MessageId, RoleId, UserId};
use guildhall_model::{Permissions, Timestamp};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::entity::*;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A user as others see it.
#[derive(Serialize)]
pub struct UserView<'a> {
    pub id: UserId,
    pub username: &'a str,
    pub discriminator: &'static str,
    pub global_name: Option<&'a str>,
    pub avatar: Option<&'a str>,
    pub bot: bool,
    pub system: bool,
    pub public_flags: u64,
    pub flags: u64,
    pub banner: Option<&'a str>,
    pub accent_color: Option<u32>,
    pub avatar_decoration_data: Option<()>,
}

impl<'a> UserView<'a> {
    pub fn new(u: &'a User) -> Self {
        UserView {
            id: u.id,
            username: &u.username,
            discriminator: "0",
            global_name: u.global_name.as_deref(),
            avatar: u.avatar.as_deref(),
            bot: u.bot,
            system: false,
            public_flags: u.flags,
            flags: u.flags,
            banner: None,
            accent_color: None,
            avatar_decoration_data: None,
        }
    }
}

/// The authenticated user (`GET /users/@me`, READY `user`).
#[derive(Serialize)]
pub struct CurrentUserView<'a> {
    #[serde(flatten)]
    pub user: UserView<'a>,
    pub mfa_enabled: bool,
    pub verified: bool,
    pub email: Option<&'a str>,
    pub locale: &'a str,
    pub premium_type: u8,
}

impl<'a> CurrentUserView<'a> {
    pub fn new(u: &'a User) -> Self {
        CurrentUserView {
            user: UserView::new(u),
            mfa_enabled: false,
            verified: true,
            email: u.email.as_deref(),
            locale: &u.locale,
            premium_type: 0,
        }
    }
}

#[derive(Serialize)]
pub struct RoleColors {
    pub primary_color: u32,
    pub secondary_color: Option<u32>,
    pub tertiary_color: Option<u32>,
}

#[derive(Serialize)]
pub struct RoleView<'a> {
    pub id: RoleId,
    pub name: &'a str,
    pub color: u32,
    pub colors: RoleColors,
    pub hoist: bool,
    pub icon: Option<&'a str>,
    pub unicode_emoji: Option<&'a str>,
    pub position: i32,
    pub permissions: Permissions,
    pub managed: bool,
    pub mentionable: bool,
    pub flags: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<RoleTags>,
}

#[derive(Serialize)]
pub struct RoleTags {
    pub bot_id: UserId,
}

impl<'a> RoleView<'a> {
    pub fn new(r: &'a Role) -> Self {
        RoleView {
            id: r.id,
            name: &r.name,
            color: r.color,
            colors: RoleColors { primary_color: r.color, secondary_color: None, tertiary_color: None },
            hoist: r.hoist,
            icon: r.icon.as_deref(),
            unicode_emoji: r.unicode_emoji.as_deref(),
            position: r.position,
            permissions: r.permissions,
            managed: r.managed,
            mentionable: r.mentionable,
            flags: r.flags,
            tags: r.bot_id.map(|bot_id| RoleTags { bot_id }),
        }
    }
}

#[derive(Serialize)]
pub struct OverwriteView {
    pub id: Id<guildhall_model::id::GenericMarker>,
    #[serde(rename = "type")]
    pub kind: u8,
    pub allow: Permissions,
    pub deny: Permissions,
}

#[derive(Serialize)]
pub struct ThreadMetadataView {
    pub archived: bool,
    pub auto_archive_duration: u32,
    pub archive_timestamp: Timestamp,
    pub locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_timestamp: Option<Timestamp>,
}

/// A channel of any kind; which keys appear depends on the kind, as on Discord.
pub struct ChannelView<'a> {
    pub channel: &'a Channel,
    /// DM recipients, rendered (the viewer excluded, as Discord does).
    pub recipients: Vec<UserView<'a>>,
    /// `newly_created` on THREAD_CREATE.
    pub newly_created: bool,
}

impl<'a> ChannelView<'a> {
    pub fn new(channel: &'a Channel) -> Self {
        ChannelView { channel, recipients: Vec::new(), newly_created: false }
    }
}

impl Serialize for ChannelView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.channel;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &c.id)?;
        m.serialize_entry("type", &c.kind)?;
        m.serialize_entry("flags", &c.flags)?;
        m.serialize_entry("last_message_id", &c.last_message_id)?;
        if channel_type::is_private(c.kind) {
            m.serialize_entry("recipients", &self.recipients)?;
            if c.kind == channel_type::GROUP_DM {
                m.serialize_entry("name", &c.name)?;
                m.serialize_entry("icon", &None::<()>)?;
                m.serialize_entry("owner_id", &c.owner_id)?;
            }
            if let Some(t) = c.last_pin_timestamp {
                m.serialize_entry("last_pin_timestamp", &t)?;
            }
            return m.end();
        }
        m.serialize_entry("guild_id", &c.guild_id)?;
        m.serialize_entry("name", c.name.as_deref().unwrap_or(""))?;
        m.serialize_entry("parent_id", &c.parent_id)?;
        m.serialize_entry("nsfw", &c.nsfw)?;
        m.serialize_entry("rate_limit_per_user", &c.rate_limit_per_user)?;
        if let Some(t) = c.last_pin_timestamp {
            m.serialize_entry("last_pin_timestamp", &t)?;
        }
        if channel_type::is_thread(c.kind) {
            m.serialize_entry("owner_id", &c.owner_id)?;
            m.serialize_entry("message_count", &c.message_count)?;
            m.serialize_entry("member_count", &c.member_count)?;
            m.serialize_entry("total_message_sent", &c.message_count)?;
            if let Some(t) = &c.thread_metadata {
                m.serialize_entry(
                    "thread_metadata",
                    &ThreadMetadataView {
                        archived: t.archived,
                        auto_archive_duration: t.auto_archive_duration,
                        archive_timestamp: t.archive_timestamp,
                        locked: t.locked,
                        invitable: t.invitable,
                        create_timestamp: t.create_timestamp,
                    },
                )?;
            }
            if self.newly_created {
                m.serialize_entry("newly_created", &true)?;
            }
            return m.end();
        }
        m.serialize_entry("position", &c.position)?;
        let overwrites: Vec<OverwriteView> = c
            .permission_overwrites
            .iter()
            .map(|o| OverwriteView { id: o.id, kind: o.kind, allow: o.allow, deny: o.deny })
            .collect();
        m.serialize_entry("permission_overwrites", &overwrites)?;
        if c.kind != channel_type::GUILD_CATEGORY {
            m.serialize_entry("topic", &c.topic)?;
        }
        if channel_type::is_voice(c.kind) {
            m.serialize_entry("bitrate", &c.bitrate.unwrap_or(64_000))?;
            m.serialize_entry("user_limit", &c.user_limit.unwrap_or(0))?;
            m.serialize_entry("rtc_region", &None::<()>)?;
        }
        if matches!(c.kind, channel_type::GUILD_TEXT | channel_type::GUILD_ANNOUNCEMENT | channel_type::GUILD_FORUM) {
            m.serialize_entry("default_auto_archive_duration", &1440)?;
        }
        m.end()
    }
}

/// A guild member; `user` is included except in the partial member that rides on
/// MESSAGE_CREATE, TYPING_START and reactions.
#[derive(Serialize)]
pub struct MemberView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView<'a>>,
    pub nick: Option<&'a str>,
    pub avatar: Option<&'a str>,
    pub banner: Option<()>,
    pub roles: &'a [RoleId],
    pub joined_at: Timestamp,
    pub premium_since: Option<()>,
    pub deaf: bool,
    pub mute: bool,
    pub flags: u64,
    pub pending: bool,
    pub communication_disabled_until: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,
}

impl<'a> MemberView<'a> {
    pub fn new(member: &'a Member, user: Option<&'a User>) -> Self {
        MemberView {
            user: user.map(UserView::new),
            nick: member.nick.as_deref(),
            avatar: member.avatar.as_deref(),
            banner: None,
            roles: &member.roles,
            joined_at: member.joined_at,
            premium_since: None,
            deaf: member.deaf,
            mute: member.mute,
            flags: member.flags,
            pending: member.pending,
            communication_disabled_until: member.communication_disabled_until,
            permissions: None,
        }
    }
}

/// The guild object without the GUILD_CREATE extras.
pub struct GuildView<'a> {
    pub guild: &'a Guild,
    pub roles: Vec<&'a Role>,
    pub approximate_counts: Option<(u64, u64)>,
}

impl Serialize for GuildView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        write_guild_fields(&mut m, self.guild, &self.roles)?;
        if let Some((members, presences)) = self.approximate_counts {
            m.serialize_entry("approximate_member_count", &members)?;
            m.serialize_entry("approximate_presence_count", &presences)?;
        }
        m.end()
    }
}

/// Writes every base guild field into an open map (shared by GUILD_CREATE).
pub fn write_guild_fields<M: SerializeMap>(m: &mut M, g: &Guild, roles: &[&Role]) -> Result<(), M::Error> {
    let none = None::<()>;
    m.serialize_entry("id", &g.id)?;
    m.serialize_entry("name", &g.name)?;
    m.serialize_entry("icon", &g.icon)?;
    m.serialize_entry("icon_hash", &g.icon)?;
    m.serialize_entry("splash", &none)?;
    m.serialize_entry("discovery_splash", &none)?;
    m.serialize_entry("owner_id", &g.owner_id)?;
    m.serialize_entry("region", "deprecated")?;
    m.serialize_entry("afk_channel_id", &g.afk_channel_id)?;
    m.serialize_entry("afk_timeout", &g.afk_timeout)?;
    m.serialize_entry("widget_enabled", &false)?;
    m.serialize_entry("widget_channel_id", &none)?;
    m.serialize_entry("verification_level", &g.verification_level)?;
    m.serialize_entry("default_message_notifications", &g.default_message_notifications)?;
    m.serialize_entry("explicit_content_filter", &g.explicit_content_filter)?;
    let role_views: Vec<RoleView> = roles.iter().map(|r| RoleView::new(r)).collect();
    m.serialize_entry("roles", &role_views)?;
    m.serialize_entry("emojis", &[(); 0])?;
    m.serialize_entry("stickers", &[(); 0])?;
    m.serialize_entry("features", &g.features)?;
    m.serialize_entry("mfa_level", &g.mfa_level)?;
    m.serialize_entry("application_id", &none)?;
    m.serialize_entry("system_channel_id", &g.system_channel_id)?;
    m.serialize_entry("system_channel_flags", &g.system_channel_flags)?;
    m.serialize_entry("rules_channel_id", &g.rules_channel_id)?;
    m.serialize_entry("max_presences", &none)?;
    m.serialize_entry("max_members", &500_000)?;
    m.serialize_entry("vanity_url_code", &none)?;
    m.serialize_entry("description", &g.description)?;
    m.serialize_entry("banner", &none)?;
    m.serialize_entry("premium_tier", &0)?;
    m.serialize_entry("premium_subscription_count", &0)?;
    m.serialize_entry("preferred_locale", &g.preferred_locale)?;
    m.serialize_entry("public_updates_channel_id", &g.public_updates_channel_id)?;
    m.serialize_entry("max_video_channel_users", &25)?;
    m.serialize_entry("max_stage_video_channel_users", &50)?;
    m.serialize_entry("nsfw_level", &g.nsfw_level)?;
    m.serialize_entry("nsfw", &false)?;
    m.serialize_entry("premium_progress_bar_enabled", &g.premium_progress_bar_enabled)?;
    m.serialize_entry("safety_alerts_channel_id", &none)?;
    m.serialize_entry("incidents_data", &none)?;
    Ok(())
}

#[derive(Serialize)]
pub struct AttachmentView<'a> {
    pub id: Id<guildhall_model::id::AttachmentMarker>,
    pub filename: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<&'a str>,
    pub size: u64,
    pub url: String,
    pub proxy_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// The public URL of an attachment, under `base` (e.g. `http://host:port`).
pub fn attachment_url(base: &str, channel: ChannelId, a: &Attachment) -> String {
    format!("{base}/attachments/{channel}/{}/{}", a.id, a.filename)
}

#[derive(Serialize)]
pub struct ReactionEmojiView<'a> {
    pub id: Option<guildhall_model::id::EmojiId>,
    pub name: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    pub animated: bool,
}

impl<'a> ReactionEmojiView<'a> {
    pub fn new(e: &'a ReactionEmoji) -> Self {
        ReactionEmojiView { id: e.id, name: &e.name, animated: e.animated }
    }
}

#[derive(Serialize)]
pub struct CountDetails {
    pub burst: usize,
    pub normal: usize,
}

#[derive(Serialize)]
pub struct ReactionView<'a> {
    pub count: usize,
    pub count_details: CountDetails,
    pub me: bool,
    pub me_burst: bool,
    pub burst_me: bool,
    pub emoji: ReactionEmojiView<'a>,
    pub burst_colors: [(); 0],
}

#[derive(Serialize)]
pub struct MessageReferenceView {
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<ChannelId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<GuildId>,
}

/// Looks up the users and base URL a message render needs.
pub trait MessageContext {
    fn user(&self, id: UserId) -> Option<&User>;
    /// Base URL for attachment links, without a trailing slash.
    fn base_url(&self) -> &str;
}

/// A message as REST returns it and as MESSAGE_CREATE/UPDATE carry it.
pub struct MessageView<'a, C: MessageContext> {
    pub message: &'a Message,
    pub ctx: &'a C,
    /// Whose `me` flags to compute on reactions (REST); `None` on the gateway.
    pub viewer: Option<UserId>,
    /// Echoed once on the create response and MESSAGE_CREATE.
    pub nonce: Option<&'a serde_json::Value>,
    /// Gateway extras: the author's partial member.
    pub member: Option<MemberView<'a>>,
    /// The message replied to, for replies (rendered one level deep).
    pub referenced: Option<Option<&'a Message>>,
    /// Blank content, embeds and attachments (no MESSAGE_CONTENT intent).
    pub redact_content: bool,
    /// Include `guild_id` (gateway events carry it; REST omits it).
    pub include_guild_id: bool,
}

impl<'a, C: MessageContext> MessageView<'a, C> {
    pub fn new(message: &'a Message, ctx: &'a C) -> Self {
        MessageView {
            message,
            ctx,
            viewer: None,
            nonce: None,
            member: None,
            referenced: None,
            redact_content: false,
            include_guild_id: false,
        }
    }
}

struct UsersById<'a, C: MessageContext>(&'a [UserId], &'a C);

impl<C: MessageContext> Serialize for UsersById<'_, C> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for id in self.0 {
            if let Some(u) = self.1.user(*id) {
                seq.serialize_element(&UserView::new(u))?;
            }
        }
        seq.end()
    }
}

/// Fallback author when a user record is missing (deleted account).
fn deleted_user(id: UserId) -> User {
    User {
        id,
        username: "Deleted User".into(),
        global_name: None,
        avatar: None,
        bot: false,
        email: None,
        password_hash: None,
        token_generation: 0,
        flags: 0,
        locale: "en-US".into(),
    }
}

impl<C: MessageContext> Serialize for MessageView<'_, C> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let msg = self.message;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &msg.id)?;
        m.serialize_entry("channel_id", &msg.channel_id)?;
        if let (true, Some(g)) = (self.include_guild_id, msg.guild_id) {
            m.serialize_entry("guild_id", &g)?;
        }
        let fallback;
        let author = match self.ctx.user(msg.author_id) {
            Some(u) => u,
            None => {
                fallback = deleted_user(msg.author_id);
                &fallback
            }
        };
        m.serialize_entry("author", &UserView::new(author))?;
        if let Some(member) = &self.member {
            m.serialize_entry("member", member)?;
        }
        let redact = self.redact_content;
        m.serialize_entry("content", if redact { "" } else { &msg.content })?;
        m.serialize_entry("timestamp", &msg.timestamp())?;
        m.serialize_entry("edited_timestamp", &msg.edited_timestamp)?;
        m.serialize_entry("tts", &msg.tts)?;
        m.serialize_entry("mention_everyone", &msg.mention_everyone)?;
        m.serialize_entry("mentions", &UsersById(&msg.mentions, self.ctx))?;
        m.serialize_entry("mention_roles", &msg.mention_roles)?;
        if redact {
            m.serialize_entry("attachments", &[(); 0])?;
            m.serialize_entry("embeds", &[(); 0])?;
        } else {
            let base = self.ctx.base_url();
            let attachments: Vec<AttachmentView> = msg
                .attachments
                .iter()
                .map(|a| {
                    let url = attachment_url(base, msg.channel_id, a);
                    AttachmentView {
                        id: a.id,
                        filename: &a.filename,
                        description: a.description.as_deref(),
                        content_type: a.content_type.as_deref(),
                        size: a.size,
                        proxy_url: url.clone(),
                        url,
                        width: a.width,
                        height: a.height,
                    }
                })
                .collect();
            m.serialize_entry("attachments", &attachments)?;
            m.serialize_entry("embeds", &msg.embeds)?;
        }
        if !msg.reactions.is_empty() {
            let reactions: Vec<ReactionView> = msg
                .reactions
                .iter()
                .map(|r| {
                    let me = self.viewer.is_some_and(|v| r.users.contains(&v));
                    let me_burst = self.viewer.is_some_and(|v| r.burst_users.contains(&v));
                    ReactionView {
                        count: r.users.len() + r.burst_users.len(),
                        count_details: CountDetails { burst: r.burst_users.len(), normal: r.users.len() },
                        me,
                        me_burst,
                        burst_me: me_burst,
                        emoji: ReactionEmojiView::new(&r.emoji),
                        burst_colors: [],
                    }
                })
                .collect();
            m.serialize_entry("reactions", &reactions)?;
        }
        if let Some(nonce) = self.nonce {
            m.serialize_entry("nonce", nonce)?;
        }
        m.serialize_entry("pinned", &msg.pinned)?;
        m.serialize_entry("type", &msg.kind)?;
        m.serialize_entry("flags", &msg.flags)?;
        m.serialize_entry("components", &[(); 0])?;
        if let Some(app) = msg.application_id {
            m.serialize_entry("application_id", &app)?;
        }
        if let Some(r) = &msg.message_reference {
            m.serialize_entry(
                "message_reference",
                &MessageReferenceView {
                    kind: r.kind,
                    message_id: r.message_id,
                    channel_id: r.channel_id,
                    guild_id: r.guild_id,
                },
            )?;
        }
        if let Some(referenced) = self.referenced {
            match referenced {
                Some(inner) => {
                    let mut view = MessageView::new(inner, self.ctx);
                    view.redact_content = redact;
                    m.serialize_entry("referenced_message", &view)?;
                }
                None => m.serialize_entry("referenced_message", &None::<()>)?,
            }
        }
        if let Some(thread) = msg.thread_id {
            m.serialize_entry("thread", &serde_json::json!({ "id": thread }))?;
        }
        m.end()
    }
}

#[derive(Serialize)]
pub struct PartialGuildView<'a> {
    pub id: GuildId,
    pub name: &'a str,
    pub icon: Option<&'a str>,
    pub banner: Option<()>,
    pub owner: bool,
    pub permissions: Permissions,
    pub features: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_member_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_presence_count: Option<u64>,
}

#[derive(Serialize)]
pub struct ApplicationView<'a> {
    pub id: ApplicationId,
    pub name: &'a str,
    pub icon: Option<&'a str>,
    pub description: &'a str,
    pub summary: &'static str,
    #[serde(rename = "type")]
    pub kind: Option<()>,
    pub bot_public: bool,
    pub bot_require_code_grant: bool,
    pub verify_key: &'a str,
    pub flags: u64,
    pub owner: UserView<'a>,
    pub bot: UserView<'a>,
    pub team: Option<()>,
    pub rpc_origins: [(); 0],
    pub terms_of_service_url: Option<()>,
    pub privacy_policy_url: Option<()>,
    pub interactions_endpoint_url: Option<()>,
    pub approximate_guild_count: u64,
    pub redirect_uris: [(); 0],
    pub tags: [(); 0],
}

impl<'a> ApplicationView<'a> {
    pub fn new(app: &'a Application, owner: &'a User, bot: &'a User, guild_count: u64) -> Self {
        ApplicationView {
            id: app.id,
            name: &app.name,
            icon: app.icon.as_deref(),
            description: &app.description,
            summary: "",
            kind: None,
            bot_public: app.bot_public,
            bot_require_code_grant: app.bot_require_code_grant,
            verify_key: &app.verify_key,
            flags: app.flags,
            owner: UserView::new(owner),
            bot: UserView::new(bot),
            team: None,
            rpc_origins: [],
            terms_of_service_url: None,
            privacy_policy_url: None,
            interactions_endpoint_url: None,
            approximate_guild_count: guild_count,
            redirect_uris: [],
            tags: [],
        }
    }
}

#[derive(Serialize)]
pub struct BanView<'a> {
    pub reason: Option<&'a str>,
    pub user: UserView<'a>,
}

/// An invite; `with_metadata` adds uses/max_uses/max_age/temporary/created_at.
pub struct InviteView<'a> {
    pub invite: &'a Invite,
    pub guild: Option<&'a Guild>,
    pub channel: &'a Channel,
    pub inviter: Option<&'a User>,
    pub counts: Option<(u64, u64)>,
    pub with_metadata: bool,
}

impl Serialize for InviteView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.invite;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", &if i.guild_id.is_some() { 0 } else { 1 })?;
        m.serialize_entry("code", &i.code)?;
        if let Some(g) = self.guild {
            m.serialize_entry(
                "guild",
                &serde_json::json!({
                    "id": g.id, "name": g.name, "icon": g.icon, "splash": null, "banner": null,
                    "description": g.description, "features": g.features,
                    "verification_level": g.verification_level, "vanity_url_code": null,
                    "nsfw_level": g.nsfw_level, "premium_subscription_count": 0,
                }),
            )?;
            m.serialize_entry("guild_id", &g.id)?;
        }
        m.serialize_entry(
            "channel",
            &serde_json::json!({ "id": self.channel.id, "type": self.channel.kind, "name": self.channel.name }),
        )?;
        if let Some(u) = self.inviter {
            m.serialize_entry("inviter", &UserView::new(u))?;
        }
        if let Some((members, presences)) = self.counts {
            m.serialize_entry("approximate_member_count", &members)?;
            m.serialize_entry("approximate_presence_count", &presences)?;
        }
        m.serialize_entry("expires_at", &i.expires_at())?;
        m.serialize_entry("flags", &0)?;
        if self.with_metadata {
            m.serialize_entry("uses", &i.uses)?;
            m.serialize_entry("max_uses", &i.max_uses)?;
            m.serialize_entry("max_age", &i.max_age)?;
            m.serialize_entry("temporary", &i.temporary)?;
            m.serialize_entry("created_at", &i.created_at)?;
        }
        m.end()
    }
}
