//! Presence: a user's status and activities as other members see them.

use guildhall_model::id::UserId;
use serde::{Deserialize, Serialize};

/// What PRESENCE_UPDATE and GUILD_CREATE.presences carry for one user. Small on
/// purpose: every online user has one in the runtime and one in each guild actor,
/// so the status is a static string and `client_status` is derived when rendered
/// (every session shows as `desktop`).
#[derive(Clone, Debug, PartialEq)]
pub struct Presence {
    pub user: PresenceUser,
    /// online, idle, dnd, or offline (invisible is shown to others as offline).
    pub status: &'static str,
    pub activities: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PresenceUser {
    pub id: UserId,
}

impl Serialize for Presence {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct ClientStatus(&'static str);
        impl Serialize for ClientStatus {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let offline = self.0 == "offline";
                let mut m = s.serialize_map(Some(usize::from(!offline)))?;
                if !offline {
                    m.serialize_entry("desktop", self.0)?;
                }
                m.end()
            }
        }
        let mut st = s.serialize_struct("Presence", 4)?;
        st.serialize_field("user", &self.user)?;
        st.serialize_field("status", self.status)?;
        st.serialize_field("activities", &self.activities)?;
        st.serialize_field("client_status", &ClientStatus(self.status))?;
        st.end()
    }
}

impl Presence {
    pub fn new(user: UserId, status: &str, activities: Vec<serde_json::Value>) -> Presence {
        let shown = match status {
            "idle" => "idle",
            "dnd" => "dnd",
            "offline" | "invisible" => "offline",
            _ => "online",
        };
        Presence { user: PresenceUser { id: user }, status: shown, activities }
    }

    pub fn is_offline(&self) -> bool {
        self.status == "offline"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presences_render_with_a_desktop_client_status_and_invisible_shows_offline() {
        let p = Presence::new(UserId::new(7), "dnd", vec![serde_json::json!({ "name": "x", "type": 0 })]);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({
                "user": { "id": "7" }, "status": "dnd",
                "activities": [{ "name": "x", "type": 0 }], "client_status": { "desktop": "dnd" }
            })
        );
        let hidden = Presence::new(UserId::new(7), "invisible", Vec::new());
        assert!(hidden.is_offline());
        assert_eq!(
            serde_json::to_value(&hidden).unwrap(),
            serde_json::json!({ "user": { "id": "7" }, "status": "offline", "activities": [], "client_status": {} })
        );
        assert_eq!(Presence::new(UserId::new(7), "bogus", Vec::new()).status, "online");
    }
}
