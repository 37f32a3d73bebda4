//! The private-channel actor: one task that owns every DM and group DM channel.
//! Private traffic is small next to guild traffic; one actor keeps each DM's
//! events in order and needs no permission state beyond the recipient list.

use std::collections::HashMap;

use guildhall_domain::entity::Channel;
use guildhall_model::id::{ChannelId, UserId};

use crate::Shared;
use crate::actor::{Actor, Handle, Scope};
use crate::event::{Audience, Event, Outbound};

pub type PrivateHandle = Handle<PrivateScope>;
pub type PrivateActor = Actor<PrivateScope>;

#[derive(Default)]
pub struct PrivateScope {
    pub channels: HashMap<ChannelId, Channel>,
    /// (a, b) with a < b → the DM channel between them.
    pub dm_index: HashMap<(UserId, UserId), ChannelId>,
}

impl PrivateScope {
    pub fn insert(&mut self, channel: Channel) {
        if channel.kind == guildhall_domain::entity::channel_type::DM && channel.recipients.len() == 2 {
            let (a, b) = (channel.recipients[0], channel.recipients[1]);
            self.dm_index.insert((a.min(b), a.max(b)), channel.id);
        }
        self.channels.insert(channel.id, channel);
    }
}

impl Scope for PrivateScope {
    fn publish(&mut self, shared: &Shared, event: &Event) {
        let Audience::Users { users, intent } = &event.audience else {
            return;
        };
        let item = Outbound::dispatch(event.name, event.body.clone());
        for user in users {
            for s in shared.sessions.of_user(*user) {
                if s.intents.contains(*intent) && s.wants_guild(None) {
                    s.push(item.clone());
                }
            }
        }
    }
}
