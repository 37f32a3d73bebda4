//! Gateway intents: which groups of events a session asked for.

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Intents(pub u64);

impl Intents {
    pub const GUILDS: Intents = Intents(1 << 0);
    pub const GUILD_MEMBERS: Intents = Intents(1 << 1);
    pub const GUILD_MODERATION: Intents = Intents(1 << 2);
    pub const GUILD_EXPRESSIONS: Intents = Intents(1 << 3);
    pub const GUILD_INTEGRATIONS: Intents = Intents(1 << 4);
    pub const GUILD_WEBHOOKS: Intents = Intents(1 << 5);
    pub const GUILD_INVITES: Intents = Intents(1 << 6);
    pub const GUILD_VOICE_STATES: Intents = Intents(1 << 7);
    pub const GUILD_PRESENCES: Intents = Intents(1 << 8);
    pub const GUILD_MESSAGES: Intents = Intents(1 << 9);
    pub const GUILD_MESSAGE_REACTIONS: Intents = Intents(1 << 10);
    pub const GUILD_MESSAGE_TYPING: Intents = Intents(1 << 11);
    pub const DIRECT_MESSAGES: Intents = Intents(1 << 12);
    pub const DIRECT_MESSAGE_REACTIONS: Intents = Intents(1 << 13);
    pub const DIRECT_MESSAGE_TYPING: Intents = Intents(1 << 14);
    pub const MESSAGE_CONTENT: Intents = Intents(1 << 15);
    pub const GUILD_SCHEDULED_EVENTS: Intents = Intents(1 << 16);
    pub const AUTO_MODERATION_CONFIGURATION: Intents = Intents(1 << 20);
    pub const AUTO_MODERATION_EXECUTION: Intents = Intents(1 << 21);
    pub const GUILD_MESSAGE_POLLS: Intents = Intents(1 << 24);
    pub const DIRECT_MESSAGE_POLLS: Intents = Intents(1 << 25);

    /// Every bit Discord defines; anything else in IDENTIFY closes with 4013.
    pub const VALID: Intents = Intents(0b11_0011_0001_1111_1111_1111_1111);
    /// Bits a bot must be granted by its application's flags (else 4014).
    pub const PRIVILEGED: Intents = Intents(Self::GUILD_MEMBERS.0 | Self::GUILD_PRESENCES.0 | Self::MESSAGE_CONTENT.0);

    pub const fn contains(self, other: Intents) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn intersects(self, other: Intents) -> bool {
        self.0 & other.0 != 0
    }
    pub const fn is_valid(self) -> bool {
        self.0 & !Self::VALID.0 == 0
    }
    pub const fn union(self, other: Intents) -> Intents {
        Intents(self.0 | other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_mask_covers_every_named_bit() {
        for i in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 21, 24, 25] {
            assert!(Intents(1 << i).is_valid(), "bit {i}");
        }
        assert!(!Intents(1 << 17).is_valid());
        assert!(!Intents(1 << 26).is_valid());
    }
}
