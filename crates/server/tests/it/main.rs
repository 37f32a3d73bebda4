//! Integration tests over real sockets: each test boots a server on 127.0.0.1:0
//! with a temporary data directory and talks HTTP (and WebSocket) to it.

mod applications;
mod common;
mod dms_users;
mod durability;
mod gateway;
mod gateway_more;
mod guild_admin;
mod guild_events;
mod hardening;
mod history_cache;
mod invites;
mod keepalive_upgrade;
mod leaks;
mod message_events;
mod messages;
mod metrics;
mod openapi;
mod permissions_matrix;
mod ratelimit;
mod reactions;
mod rest_basics;
mod threads;
mod uploads;
