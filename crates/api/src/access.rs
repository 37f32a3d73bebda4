//! Resolving a channel id to its owner and checking the caller may use it.

use guildhall_domain::entity::Channel;
use guildhall_domain::permissions::channel_permissions;
use guildhall_model::id::{ChannelId, GuildId, UserId};
use guildhall_model::{Permissions, Timestamp};
use guildhall_runtime::{Change, ChannelHome, Error, GuildActor, PrivateActor, Result, Runtime};

/// What the caller may do in a channel, as of the check.
#[derive(Clone, Debug)]
pub struct ChannelAccess {
    pub guild_id: Option<GuildId>,
    pub channel: Channel,
    /// Permissions of the caller in the channel. In DMs: Discord's DM set.
    pub permissions: Permissions,
}

/// Permissions a DM recipient has (what discord.py assumes for DMs).
pub const DM_PERMISSIONS: Permissions = Permissions(
    Permissions::VIEW_CHANNEL.0
        | Permissions::SEND_MESSAGES.0
        | Permissions::EMBED_LINKS.0
        | Permissions::ATTACH_FILES.0
        | Permissions::READ_MESSAGE_HISTORY.0
        | Permissions::MENTION_EVERYONE.0
        | Permissions::ADD_REACTIONS.0
        | Permissions::USE_EXTERNAL_EMOJIS.0
        | Permissions::PIN_MESSAGES.0,
);

/// Inside a guild job: the caller's view of a channel, or Discord's error —
/// 10003 if the channel is not in this guild, 50001 if the caller cannot see it,
/// 50013 if it lacks `required`.
pub fn guild_channel_access(
    actor: &GuildActor,
    user: UserId,
    channel: ChannelId,
    required: Permissions,
) -> Result<ChannelAccess> {
    let state = &actor.state.guild;
    let c = state.channels.get(&channel).ok_or_else(Error::unknown_channel)?;
    if !state.members.contains_key(&user) {
        return Err(Error::missing_access());
    }
    let p = channel_permissions(state, user, channel, Timestamp::now());
    if !p.contains(Permissions::VIEW_CHANNEL) {
        return Err(Error::missing_access());
    }
    if !p.contains(required) {
        return Err(Error::missing_permissions());
    }
    Ok(ChannelAccess { guild_id: Some(state.guild.id), channel: c.clone(), permissions: p })
}

/// Inside the private actor: the caller's view of a DM, or 10003 / 50001.
pub fn private_channel_access(
    actor: &PrivateActor,
    user: UserId,
    channel: ChannelId,
    required: Permissions,
) -> Result<ChannelAccess> {
    let c = actor.state.channels.get(&channel).ok_or_else(Error::unknown_channel)?;
    if !c.recipients.contains(&user) {
        return Err(Error::missing_access());
    }
    if !DM_PERMISSIONS.contains(required) {
        return Err(Error::missing_permissions());
    }
    Ok(ChannelAccess { guild_id: None, channel: c.clone(), permissions: DM_PERMISSIONS })
}

/// Checks access from outside any actor (one round trip to the owner).
pub async fn channel_access(
    rt: &Runtime,
    user: UserId,
    channel: ChannelId,
    required: Permissions,
) -> Result<ChannelAccess> {
    match rt.channel_home(channel)? {
        ChannelHome::Guild(g) => {
            rt.guild(g)?.call(move |a| guild_channel_access(a, user, channel, required).map(Change::read)).await
        }
        ChannelHome::Private => {
            rt.private().call(move |a| private_channel_access(a, user, channel, required).map(Change::read)).await
        }
    }
}
