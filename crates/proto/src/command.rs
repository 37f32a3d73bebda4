//! Client→server payloads, decoded from an op's `d` into typed commands, with the
//! validation Discord does at the gateway (intents, shard array, op 8 shape, nonce length).
//! Each `parse` returns the close code Discord would use for a bad `d`.
//!
//! Close-code policy for a `d` that does not match its op's schema (missing required field,
//! wrong type): **4001**, because Discord documents 4001 as "an invalid opcode *or an invalid
//! payload for an opcode*" and keeps 4002 for payloads it cannot decode at all (bad JSON, too
//! large). Both codes are reconnectable, so libraries behave the same either way. Fields
//! Discord defines more narrowly keep their own code: undefined intent bits → 4013, a bad
//! `shard` array (wrong shape, `id >= count`, `count == 0`) → 4010.

use bytes::Bytes;
use guildhall_model::Intents;
use guildhall_model::gateway::CloseCode;
use guildhall_model::id::{ChannelId, GuildId, UserId};
use serde::Deserialize;
use serde_json::value::RawValue;

/// What the shell must act on after a client frame.
#[derive(Debug)]
pub enum Command {
    /// Send these bytes back as they are (through the connection's encoder). Today this is
    /// only the op 11 ACK answering an op 1.
    Reply(Bytes),
    /// op 2. Check the token, then call [`crate::Session::identified`] and send READY, or
    /// close with 4004 (bad token), 4014 (privileged intents not granted), or send op 9
    /// `d:false` and call [`crate::Session::identify_rejected`] (concurrency limit).
    Identify(Box<Identify>),
    /// op 6. Find the session, check the token, then call [`crate::Session::resume`].
    Resume(Resume),
    /// op 3.
    PresenceUpdate(PresenceUpdate),
    /// op 4.
    VoiceStateUpdate(VoiceStateUpdate),
    /// op 8.
    RequestGuildMembers(RequestGuildMembers),
    /// op 31.
    RequestSoundboardSounds(RequestSoundboardSounds),
    /// op 43 `{guild_id, fields}`, passed through undecoded.
    RequestChannelInfo(Box<RawValue>),
}

/// `properties` of IDENTIFY. The deprecated `$os`/`$browser`/`$device` keys are accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ConnectionProperties {
    #[serde(default, alias = "$os")]
    pub os: String,
    #[serde(default, alias = "$browser")]
    pub browser: String,
    #[serde(default, alias = "$device")]
    pub device: String,
}

/// Validated op 2 payload. The token is not checked here.
#[derive(Debug)]
pub struct Identify {
    pub token: String,
    /// Only bits Discord defines (else 4013). Privileged bits are not checked here: that
    /// needs the application's flags (the shell closes with 4014).
    pub intents: Intents,
    pub properties: ConnectionProperties,
    /// Per-payload zlib. Default false.
    pub compress: bool,
    /// Clamped into 50..=250; default 50.
    pub large_threshold: u32,
    /// `(shard_id, num_shards)` with `shard_id < num_shards`.
    pub shard: Option<(u32, u32)>,
    /// The `presence` object as sent (discord.py still sends `game` in it).
    pub presence: Option<Box<RawValue>>,
}

pub(crate) const DEFAULT_LARGE_THRESHOLD: u32 = 50;
const MAX_LARGE_THRESHOLD: u32 = 250;

impl Identify {
    pub(crate) fn parse(d: Option<&RawValue>) -> Result<Identify, CloseCode> {
        #[derive(Deserialize)]
        struct Wire<'a> {
            token: String,
            intents: u64,
            #[serde(default)]
            properties: Option<ConnectionProperties>,
            #[serde(default)]
            compress: Option<bool>,
            #[serde(default)]
            large_threshold: Option<i64>,
            #[serde(default, borrow)]
            shard: Option<&'a RawValue>,
            #[serde(default)]
            presence: Option<Box<RawValue>>,
        }
        let wire: Wire<'_> = decode(d)?;
        let intents = Intents(wire.intents);
        if !intents.is_valid() {
            return Err(CloseCode::InvalidIntents);
        }
        let shard = match wire.shard {
            None => None,
            Some(raw) => Some(parse_shard(raw)?),
        };
        let large_threshold = wire.large_threshold.map_or(DEFAULT_LARGE_THRESHOLD, |n| {
            n.clamp(i64::from(DEFAULT_LARGE_THRESHOLD), i64::from(MAX_LARGE_THRESHOLD)) as u32
        });
        Ok(Identify {
            token: wire.token,
            intents,
            properties: wire.properties.unwrap_or_default(),
            compress: wire.compress.unwrap_or(false),
            large_threshold,
            shard,
            presence: wire.presence,
        })
    }
}

/// `[shard_id, num_shards]`; anything else, `num_shards == 0` or `shard_id >= num_shards` →
/// 4010.
fn parse_shard(raw: &RawValue) -> Result<(u32, u32), CloseCode> {
    let (id, count): (u32, u32) = serde_json::from_str(raw.get()).map_err(|_| CloseCode::InvalidShard)?;
    if count == 0 || id >= count {
        return Err(CloseCode::InvalidShard);
    }
    Ok((id, count))
}

/// Validated op 6 payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub token: String,
    pub session_id: String,
    /// Last sequence number the client received (`null` is read as 0).
    pub seq: u64,
}

impl Resume {
    pub(crate) fn parse(d: Option<&RawValue>) -> Result<Resume, CloseCode> {
        #[derive(Deserialize)]
        struct Wire {
            token: String,
            session_id: String,
            seq: Option<u64>,
        }
        let wire: Wire = decode(d)?;
        Ok(Resume { token: wire.token, session_id: wire.session_id, seq: wire.seq.unwrap_or(0) })
    }
}

/// A presence status a client may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Dnd,
    Idle,
    Invisible,
    Offline,
}

/// Validated op 3 payload.
#[derive(Debug)]
pub struct PresenceUpdate {
    /// Unix time in ms since the client went idle. Numbers with a fraction are truncated.
    pub since: Option<u64>,
    /// The `activities` array as sent; `None` when absent or null (no activities).
    pub activities: Option<Box<RawValue>>,
    pub status: Status,
    pub afk: bool,
}

impl PresenceUpdate {
    pub(crate) fn parse(d: Option<&RawValue>) -> Result<PresenceUpdate, CloseCode> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            since: Option<f64>,
            #[serde(default)]
            activities: Option<Box<RawValue>>,
            status: Status,
            #[serde(default)]
            afk: Option<bool>,
        }
        let wire: Wire = decode(d)?;
        if let Some(activities) = &wire.activities
            && !activities.get().starts_with('[')
        {
            return Err(CloseCode::UnknownOpcode);
        }
        Ok(PresenceUpdate {
            since: wire.since.filter(|s| s.is_finite() && *s >= 0.0).map(|s| s as u64),
            activities: wire.activities,
            status: wire.status,
            afk: wire.afk.unwrap_or(false),
        })
    }
}

/// Validated op 4 payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiceStateUpdate {
    pub guild_id: GuildId,
    /// `None` = leave the voice channel.
    pub channel_id: Option<ChannelId>,
    pub self_mute: bool,
    pub self_deaf: bool,
}

impl VoiceStateUpdate {
    pub(crate) fn parse(d: Option<&RawValue>) -> Result<VoiceStateUpdate, CloseCode> {
        #[derive(Deserialize)]
        struct Wire {
            guild_id: GuildId,
            #[serde(default)]
            channel_id: Option<ChannelId>,
            #[serde(default)]
            self_mute: Option<bool>,
            #[serde(default)]
            self_deaf: Option<bool>,
        }
        let wire: Wire = decode(d)?;
        Ok(VoiceStateUpdate {
            guild_id: wire.guild_id,
            channel_id: wire.channel_id,
            self_mute: wire.self_mute.unwrap_or(false),
            self_deaf: wire.self_deaf.unwrap_or(false),
        })
    }
}

/// Which members an op 8 asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberQuery {
    /// Username prefix. `query: ""` with `limit: 0` = every member (needs GUILD_MEMBERS).
    Prefix { query: String, limit: u32 },
    /// Up to 100 ids.
    UserIds(Vec<UserId>),
}

/// Most `user_ids` in one op 8.
pub const MAX_REQUESTED_USER_IDS: usize = 100;
/// Longest op 8 nonce echoed; a longer (or non-string) nonce is dropped.
pub const MAX_NONCE_BYTES: usize = 32;

/// Validated op 8 payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestGuildMembers {
    pub guild_id: GuildId,
    pub query: MemberQuery,
    pub presences: bool,
    /// Echoed in every GUILD_MEMBERS_CHUNK; `None` when absent or invalid.
    pub nonce: Option<String>,
}

impl RequestGuildMembers {
    /// Rules: `guild_id` is one snowflake. `user_ids` (one snowflake or an array of at most
    /// 100) wins when present; otherwise `query` and `limit` are both required. Violations →
    /// 4001.
    pub(crate) fn parse(d: Option<&RawValue>) -> Result<RequestGuildMembers, CloseCode> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(UserId),
            Many(Vec<UserId>),
        }
        #[derive(Deserialize)]
        struct Wire<'a> {
            guild_id: GuildId,
            #[serde(default)]
            query: Option<String>,
            #[serde(default)]
            limit: Option<u64>,
            #[serde(default)]
            presences: Option<bool>,
            #[serde(default)]
            user_ids: Option<OneOrMany>,
            #[serde(default, borrow)]
            nonce: Option<&'a RawValue>,
        }
        let wire: Wire<'_> = decode(d)?;
        let query = match (wire.user_ids, wire.query, wire.limit) {
            (Some(OneOrMany::One(id)), _, _) => MemberQuery::UserIds(vec![id]),
            (Some(OneOrMany::Many(ids)), _, _) if ids.len() <= MAX_REQUESTED_USER_IDS => MemberQuery::UserIds(ids),
            (Some(OneOrMany::Many(_)), _, _) => return Err(CloseCode::UnknownOpcode),
            (None, Some(query), Some(limit)) => {
                MemberQuery::Prefix { query, limit: u32::try_from(limit).unwrap_or(u32::MAX) }
            }
            (None, _, _) => return Err(CloseCode::UnknownOpcode),
        };
        let nonce = wire
            .nonce
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .filter(|nonce| nonce.len() <= MAX_NONCE_BYTES);
        Ok(RequestGuildMembers { guild_id: wire.guild_id, query, presences: wire.presences.unwrap_or(false), nonce })
    }
}

/// Validated op 31 payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSoundboardSounds {
    pub guild_ids: Vec<GuildId>,
}

impl RequestSoundboardSounds {
    pub(crate) fn parse(d: Option<&RawValue>) -> Result<RequestSoundboardSounds, CloseCode> {
        #[derive(Deserialize)]
        struct Wire {
            guild_ids: Vec<GuildId>,
        }
        let wire: Wire = decode(d)?;
        Ok(RequestSoundboardSounds { guild_ids: wire.guild_ids })
    }
}

/// Decodes a required `d`; absent, null or mismatched → 4001.
fn decode<'a, T: Deserialize<'a>>(d: Option<&'a RawValue>) -> Result<T, CloseCode> {
    let d = d.ok_or(CloseCode::UnknownOpcode)?;
    serde_json::from_str(d.get()).map_err(|_| CloseCode::UnknownOpcode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn identify(json: &str) -> Result<Identify, CloseCode> {
        Identify::parse(Some(&raw(json)))
    }

    #[test]
    fn identify_defaults_and_clamps() {
        let id = identify(r#"{"token":"t","intents":513,"properties":{"$os":"linux","browser":"x"}}"#).unwrap();
        assert_eq!(id.token, "t");
        assert_eq!(id.intents, Intents(513));
        assert_eq!(id.properties.os, "linux");
        assert_eq!(id.properties.browser, "x");
        assert!(!id.compress);
        assert_eq!(id.large_threshold, 50);
        assert_eq!(id.shard, None);
        assert!(id.presence.is_none());

        let id = identify(r#"{"token":"t","intents":0,"large_threshold":1000,"compress":true,"shard":[1,2],"presence":{"status":"idle"}}"#).unwrap();
        assert_eq!(id.large_threshold, 250);
        assert!(id.compress);
        assert_eq!(id.shard, Some((1, 2)));
        assert_eq!(id.presence.unwrap().get(), r#"{"status":"idle"}"#);
        assert_eq!(identify(r#"{"token":"t","intents":0,"large_threshold":-3}"#).unwrap().large_threshold, 50);
    }

    #[test]
    fn identify_rejections_use_discords_codes() {
        assert_eq!(identify(r#"{"intents":1}"#).err(), Some(CloseCode::UnknownOpcode));
        assert_eq!(identify(r#"{"token":"t"}"#).err(), Some(CloseCode::UnknownOpcode));
        assert_eq!(identify(r#"{"token":"t","intents":"1"}"#).err(), Some(CloseCode::UnknownOpcode));
        assert_eq!(identify(r#"{"token":"t","intents":131072}"#).err(), Some(CloseCode::InvalidIntents));
        assert_eq!(identify(r#"{"token":"t","intents":1,"shard":[2,2]}"#).err(), Some(CloseCode::InvalidShard));
        assert_eq!(identify(r#"{"token":"t","intents":1,"shard":[0,0]}"#).err(), Some(CloseCode::InvalidShard));
        assert_eq!(identify(r#"{"token":"t","intents":1,"shard":[0]}"#).err(), Some(CloseCode::InvalidShard));
        assert_eq!(identify(r#"{"token":"t","intents":1,"shard":"0,1"}"#).err(), Some(CloseCode::InvalidShard));
        assert_eq!(Identify::parse(None).err(), Some(CloseCode::UnknownOpcode));
    }

    #[test]
    fn resume_reads_null_seq_as_zero() {
        let r = Resume::parse(Some(&raw(r#"{"token":"t","session_id":"s","seq":null}"#))).unwrap();
        assert_eq!(r.seq, 0);
        let r = Resume::parse(Some(&raw(r#"{"token":"t","session_id":"s","seq":42}"#))).unwrap();
        assert_eq!((r.session_id.as_str(), r.seq), ("s", 42));
        assert!(Resume::parse(Some(&raw(r#"{"token":"t","seq":1}"#))).is_err());
    }

    #[test]
    fn presence_update_is_validated() {
        let p = PresenceUpdate::parse(Some(&raw(
            r#"{"since":null,"activities":[{"name":"x","type":0}],"status":"dnd","afk":false}"#,
        )))
        .unwrap();
        assert_eq!(p.status, Status::Dnd);
        assert_eq!(p.since, None);
        assert!(p.activities.is_some());
        let p = PresenceUpdate::parse(Some(&raw(r#"{"since":1700000000000.0,"status":"idle"}"#))).unwrap();
        assert_eq!(p.since, Some(1_700_000_000_000));
        for bad in [r#"{"status":"busy"}"#, r#"{"activities":[]}"#, r#"{"status":"online","activities":{}}"#] {
            assert_eq!(PresenceUpdate::parse(Some(&raw(bad))).err(), Some(CloseCode::UnknownOpcode), "{bad}");
        }
    }

    #[test]
    fn voice_state_update_reads_ids_from_strings_or_numbers() {
        let v = VoiceStateUpdate::parse(Some(&raw(
            r#"{"guild_id":"41771983423143937","channel_id":null,"self_mute":true}"#,
        )))
        .unwrap();
        assert_eq!(v.guild_id, GuildId::new(41771983423143937));
        assert_eq!(v.channel_id, None);
        assert!(v.self_mute && !v.self_deaf);
        let v = VoiceStateUpdate::parse(Some(&raw(r#"{"guild_id":1,"channel_id":"2"}"#))).unwrap();
        assert_eq!(v.channel_id, Some(ChannelId::new(2)));
        assert!(VoiceStateUpdate::parse(Some(&raw(r#"{"channel_id":"2"}"#))).is_err());
    }

    fn members(json: &str) -> Result<RequestGuildMembers, CloseCode> {
        RequestGuildMembers::parse(Some(&raw(json)))
    }

    #[test]
    fn request_guild_members_shapes() {
        let r = members(r#"{"guild_id":"1","query":"","limit":0,"presences":true,"nonce":"abc"}"#).unwrap();
        assert_eq!(r.query, MemberQuery::Prefix { query: String::new(), limit: 0 });
        assert!(r.presences);
        assert_eq!(r.nonce.as_deref(), Some("abc"));

        let r = members(r#"{"guild_id":"1","user_ids":"5","limit":0}"#).unwrap();
        assert_eq!(r.query, MemberQuery::UserIds(vec![UserId::new(5)]));
        let r = members(r#"{"guild_id":"1","user_ids":["5","6"],"query":"a","limit":3}"#).unwrap();
        assert_eq!(r.query, MemberQuery::UserIds(vec![UserId::new(5), UserId::new(6)]));

        let hundred: Vec<String> = (1..=100).map(|i| format!("\"{i}\"")).collect();
        let ok = format!(r#"{{"guild_id":"1","user_ids":[{}]}}"#, hundred.join(","));
        assert!(members(&ok).is_ok());
        let too_many = format!(r#"{{"guild_id":"1","user_ids":[{},"101"]}}"#, hundred.join(","));
        assert_eq!(members(&too_many).err(), Some(CloseCode::UnknownOpcode));

        assert_eq!(members(r#"{"query":"","limit":0}"#).err(), Some(CloseCode::UnknownOpcode));
        assert_eq!(members(r#"{"guild_id":["1","2"],"query":"","limit":0}"#).err(), Some(CloseCode::UnknownOpcode));
        assert_eq!(members(r#"{"guild_id":"1","query":"a"}"#).err(), Some(CloseCode::UnknownOpcode));
        assert_eq!(members(r#"{"guild_id":"1","limit":1}"#).err(), Some(CloseCode::UnknownOpcode));
    }

    #[test]
    fn request_guild_members_drops_an_invalid_nonce_but_keeps_the_request() {
        let n32 = "n".repeat(32);
        let r = members(&format!(r#"{{"guild_id":"1","query":"","limit":0,"nonce":"{n32}"}}"#)).unwrap();
        assert_eq!(r.nonce.as_deref(), Some(n32.as_str()));
        let n33 = "n".repeat(33);
        let r = members(&format!(r#"{{"guild_id":"1","query":"","limit":0,"nonce":"{n33}"}}"#)).unwrap();
        assert_eq!(r.nonce, None);
        let r = members(r#"{"guild_id":"1","query":"","limit":0,"nonce":7}"#).unwrap();
        assert_eq!(r.nonce, None);
    }

    #[test]
    fn soundboard_request() {
        let r = RequestSoundboardSounds::parse(Some(&raw(r#"{"guild_ids":["1",2]}"#))).unwrap();
        assert_eq!(r.guild_ids, vec![GuildId::new(1), GuildId::new(2)]);
        assert!(RequestSoundboardSounds::parse(Some(&raw("{}"))).is_err());
    }
}
