//! Route table. One module per resource, each exposing `routes()`.

pub mod applications;
pub mod attachments;
pub mod auth;
pub mod bans;
pub mod channels;
pub mod dms;
pub mod guild_common;
pub mod guilds;
pub mod host;
pub mod invites;
pub mod members;
pub mod messages;
pub mod meta;
pub mod oauth2;
pub mod pins;
pub mod reactions;
pub mod roles;
pub mod threads;
pub mod users;

use axum::Router;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(meta::routes())
        .merge(auth::routes())
        .merge(applications::routes())
        .merge(oauth2::routes())
        .merge(users::routes())
        .merge(guilds::routes())
        .merge(messages::routes())
        .merge(reactions::routes())
        .merge(pins::routes())
        .merge(threads::routes())
        .merge(invites::routes())
        .merge(members::routes())
        .merge(roles::routes())
        .merge(channels::routes())
        .merge(bans::routes())
        .merge(dms::routes())
}
