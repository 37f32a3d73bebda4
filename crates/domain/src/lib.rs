//! The rules of the system with no I/O: the entities Guildhall stores (users,
//! applications, guilds, roles, channels, members, messages, invites, bans), the
//! guild state a guild actor owns, Discord's permission calculator, and the wire
//! rendering of each entity as the client libraries expect it.
//!
//! Invariant: nothing here touches tokio, a socket, the store or the clock; every
//! function is a pure function of its arguments, so it is tested without either.

pub mod entity;
pub mod permissions;
pub mod state;
pub mod wire;

pub use entity::*;
pub use state::GuildState;
