//! Discord's wire vocabulary, with no I/O and no async: typed snowflake ids, the
//! Snowflake generator, permission and intent bitfields, gateway opcodes and close
//! codes, ISO 8601 timestamps and Discord's JSON error codes.
//!
//! Invariant: this crate knows nothing of sockets, storage or tokio. Everything in
//! it is a value that other crates put on the wire or read from it.

pub mod error_code;
pub mod gateway;
pub mod id;
pub mod intents;
pub mod permissions;
pub mod snowflake;
pub mod time;

pub use id::Id;
pub use intents::Intents;
pub use permissions::Permissions;
pub use time::Timestamp;
