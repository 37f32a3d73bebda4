//! Presence: a user's status and activities as other members see them.

use guildhall_model::id::UserId;
use serde::{Deserialize, Serialize};

/// What PRESENCE_UPDATE and GUILD_CREATE.presences carry for one user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Presence {
    pub user: PresenceUser,
    /// online, idle, dnd, or offline (invisible is shown to others as offline).
    pub status: String,
    pub activities: Vec<serde_json::Value>,
    pub client_status: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PresenceUser {
    pub id: UserId,
}

impl Presence {
    pub fn new(user: UserId, status: &str, activities: Vec<serde_json::Value>) -> Presence {
        let shown = if status == "invisible" { "offline" } else { status };
        let client_status =
            if shown == "offline" { serde_json::json!({}) } else { serde_json::json!({ "desktop": shown }) };
        Presence { user: PresenceUser { id: user }, status: shown.to_string(), activities, client_status }
    }

    pub fn is_offline(&self) -> bool {
        self.status == "offline"
    }
}
