//! Presence from the gateway: the IDENTIFY `presence` object and op 3, turned into
//! the runtime's [`Presence`]. Bots may only set an activity's `name`, `state`,
//! `type` and `url` (Discord drops the rest); discord.py still sends `game` instead
//! of `activities`, which is read as a one-element list.

use guildhall_model::id::UserId;
use guildhall_proto::{PresenceUpdate, Status};
use guildhall_runtime::Presence;
use serde_json::Value;
use serde_json::value::RawValue;

const BOT_ACTIVITY_KEYS: [&str; 4] = ["name", "state", "type", "url"];
/// Most activities kept from one update.
const MAX_ACTIVITIES: usize = 16;

fn status_str(status: Status) -> &'static str {
    match status {
        Status::Online => "online",
        Status::Dnd => "dnd",
        Status::Idle => "idle",
        Status::Invisible => "invisible",
        Status::Offline => "offline",
    }
}

fn activities(raw: Option<&RawValue>, game: Option<Value>, bot: bool) -> Vec<Value> {
    let mut list: Vec<Value> = raw.and_then(|r| serde_json::from_str(r.get()).ok()).unwrap_or_default();
    if list.is_empty()
        && let Some(game) = game.filter(Value::is_object)
    {
        list.push(game);
    }
    list.retain(|a| a.get("name").is_some_and(Value::is_string));
    list.truncate(MAX_ACTIVITIES);
    if bot {
        for a in &mut list {
            if let Value::Object(map) = a {
                map.retain(|k, _| BOT_ACTIVITY_KEYS.contains(&k.as_str()));
            }
        }
    }
    list
}

/// The presence an op 3 sets.
pub fn from_update(user: UserId, bot: bool, update: &PresenceUpdate) -> Presence {
    Presence::new(user, status_str(update.status), activities(update.activities.as_deref(), None, bot))
}

/// The presence an IDENTIFY starts with: its `presence` object if it has a valid
/// status, else online.
pub fn from_identify(user: UserId, bot: bool, raw: Option<&RawValue>) -> Presence {
    #[derive(serde::Deserialize)]
    struct Wire {
        #[serde(default)]
        status: Option<Status>,
        #[serde(default)]
        activities: Option<Box<RawValue>>,
        #[serde(default)]
        game: Option<Value>,
    }
    let wire: Option<Wire> = raw.and_then(|r| serde_json::from_str(r.get()).ok());
    match wire {
        Some(w) => Presence::new(
            user,
            status_str(w.status.unwrap_or(Status::Online)),
            activities(w.activities.as_deref(), w.game, bot),
        ),
        None => Presence::new(user, "online", Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_presence_reads_game_and_strips_bot_fields() {
        let user = UserId::new(5);
        let raw = RawValue::from_string(
            r#"{"status":"idle","game":{"name":"chess","type":0,"details":"x"},"afk":false}"#.into(),
        )
        .unwrap();
        let p = from_identify(user, true, Some(&raw));
        assert_eq!(p.status, "idle");
        assert_eq!(p.activities, vec![serde_json::json!({"name":"chess","type":0})]);
        let p = from_identify(user, false, None);
        assert_eq!(p.status, "online");
        let raw = RawValue::from_string(r#"{"status":"invisible","activities":null}"#.into()).unwrap();
        assert!(from_identify(user, false, Some(&raw)).is_offline());
    }
}
