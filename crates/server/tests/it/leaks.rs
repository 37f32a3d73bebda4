//! Permission leaks: what a user who cannot see a channel (or is not in the guild
//! at all) gets, over real sockets.
//!
//! Gateway: one guild with a visible channel (#general) and a hidden one that a
//! member ("blind") is denied VIEW_CHANNEL on by a member overwrite. Observers
//! connect with every intent (one extra session with few intents checks intent
//! gating and MESSAGE_CONTENT redaction), plus a user in another guild
//! ("outsider"). Each scenario runs an action and then a barrier and a
//! sentinel: a REST read on the guild's actor (it runs after the action's
//! fan-out), then a DM from the owner to every observer. Each session is read up
//! to its sentinel, so "received nothing" means "the first dispatch after the
//! action was the sentinel", not "nothing arrived within a timeout". The names
//! each session got are compared exactly with the scenario's table, and the raw
//! frames of those who must not see the hidden objects are searched for their
//! ids, names and contents.
//!
//! REST: every route that takes the hidden channel (or a thread in it, one of
//! its messages, a private thread) or a foreign guild answers 403/404 with a
//! Discord error body that names nothing hidden.
//!
//! Deliberate, Discord-compatible exposures (not asserted as leaks):
//! - GUILD_UPDATE / GET /guilds carry `system_channel_id` etc. to every member,
//!   whether or not they can see those channels (as Discord).
//! - GET /invites/{code} shows the guild's and channel's name to anyone holding
//!   the code (an invite is a capability; Discord's invite preview does the same).
//! - Attachment files are served without a token, like Discord's CDN: the URL
//!   (channel id, attachment snowflake, file name) is the capability.
//! - A 403 (channel exists, not yours) vs 404 (no such channel) tells an id
//!   apart from a made-up one, as on Discord; it reveals no name or content.
//!
//! Deviations left (under-delivery, never over-delivery):
//! - A member who gains sight of a channel gets CHANNEL_CREATE but no
//!   THREAD_LIST_SYNC for the channel's active threads (Discord sends one).
//! - GUILD_BAN_ADD/REMOVE go to members with BAN_MEMBERS; Discord also sends them
//!   to VIEW_AUDIT_LOG holders.
//! - THREAD_MEMBERS_UPDATE is not sent without GUILD_MEMBERS (Discord sends the
//!   bot's own membership changes anyway).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::guild_admin::{give, join, role};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Every defined intent bit (privileged ones included: these are user accounts).
const ALL: u64 = 0b11_0011_0001_1111_1111_1111_1111;
const GUILDS: u64 = 1 << 0;
const GUILD_MESSAGES: u64 = 1 << 9;
const DIRECT_MESSAGES: u64 = 1 << 12;
/// The low-intent session: guild and message events, no content, no members,
/// presences, reactions, typing, invites or moderation.
const LOW: u64 = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES;

const BAN_MEMBERS: u64 = 1 << 2;
const MANAGE_CHANNELS: u64 = 1 << 4;
const MANAGE_GUILD: u64 = 1 << 5;
const VIEW_CHANNEL: u64 = 1 << 10;

const THUMBS: &str = "%F0%9F%91%8D";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    /// Sees everything; has BAN_MEMBERS, MANAGE_CHANNELS and MANAGE_GUILD.
    Mod,
    /// A plain member who sees the hidden channel.
    Viewer,
    /// A second session of Viewer with only GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES.
    Low,
    /// Denied VIEW_CHANNEL on the hidden channel.
    Blind,
    /// Not a member; in a guild of their own.
    Outsider,
    /// A member (who sees the hidden channel) until kicked.
    Kicked,
    /// A member (who sees the hidden channel) until they leave.
    Leaver,
}
use Who::*;

const EVERYONE: [Who; 7] = [Mod, Viewer, Low, Blind, Outsider, Kicked, Leaver];
/// Every-intent sessions that see the hidden channel.
const FULL_H: &[Who] = &[Mod, Viewer, Kicked, Leaver];
/// All sessions that see the hidden channel.
const ALL_H: &[Who] = &[Mod, Viewer, Low, Kicked, Leaver];
/// Every-intent member sessions.
const FULL_MEMBERS: &[Who] = &[Mod, Viewer, Blind, Kicked, Leaver];
/// All member sessions.
const ALL_MEMBERS: &[Who] = &[Mod, Viewer, Low, Blind, Kicked, Leaver];

/// One dispatch as received: its name, its `d`, and the raw frame text.
#[derive(Debug)]
struct Frame {
    name: String,
    d: Value,
    raw: String,
}

struct Observer {
    ws: Ws,
    /// The user behind the session (the owner's DM to them is the sentinel).
    user: String,
    /// Dispatches read ahead of the next settle (see `World::wait_for`).
    pending: Vec<Frame>,
}

impl Observer {
    async fn open(s: &TestServer, token: &str, user: &str, intents: u64) -> Observer {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("{}/?v=10&encoding=json", s.gateway_url())).await.unwrap();
        let identify = json!({ "op": 2, "d": { "token": token, "intents": intents,
            "properties": { "os": "linux", "browser": "t", "device": "t" } } });
        let mut o = Observer { ws, user: user.to_string(), pending: Vec::new() };
        let hello = o.frame().await;
        assert_eq!(hello.0["op"], 10);
        o.ws.send(Message::text(identify.to_string())).await.unwrap();
        let ready = o.frame().await;
        assert_eq!(ready.0["t"], "READY", "{}", ready.1);
        o
    }

    /// The next text frame, parsed and raw.
    async fn frame(&mut self) -> (Value, String) {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no frame in 10 s (user {})", self.user));
            match msg {
                Some(Ok(Message::Text(t))) => return (serde_json::from_str(&t).unwrap(), t.to_string()),
                Some(Ok(_)) => {}
                other => panic!("session of {} ended: {other:?}", self.user),
            }
        }
    }

    /// The next dispatch (heartbeat ACKs skipped).
    async fn dispatch(&mut self) -> Frame {
        loop {
            let (v, raw) = self.frame().await;
            if v["op"] == 0 {
                return Frame { name: v["t"].as_str().unwrap().to_string(), d: v["d"].clone(), raw };
            }
            assert_eq!(v["op"], 11, "unexpected frame for {}: {raw}", self.user);
        }
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }
}

struct World {
    s: TestServer,
    owner: String,
    gid: String,
    general: String,
    /// The hidden channel, once created.
    hidden: String,
    /// Message ids in the hidden channel (last is the newest).
    hidden_msgs: Vec<String>,
    /// The public thread in the hidden channel, once created.
    thread: String,
    /// The private thread in #general, once created.
    private: String,
    invite: String,
    users: BTreeMap<Who, (String, String)>,
    /// The owner's DM channel with each user id.
    dms: BTreeMap<String, String>,
    obs: BTreeMap<Who, Observer>,
    /// Strings each observer must never receive.
    secrets: BTreeMap<Who, Vec<String>>,
    sentinels: usize,
}

impl World {
    async fn build() -> World {
        let s = TestServer::start().await;
        let (owner, _) = s.user("owner").await;
        let (gid, general) = s.guild(&owner, "Leakproof").await;
        let mut users = BTreeMap::new();
        for (who, name) in [
            (Mod, "moddy"),
            (Viewer, "viewer"),
            (Blind, "blind"),
            (Outsider, "outsider"),
            (Kicked, "kicked"),
            (Leaver, "leaver"),
        ] {
            users.insert(who, s.user(name).await);
        }
        users.insert(Low, users[&Viewer].clone());
        for who in [Mod, Viewer, Blind, Kicked, Leaver] {
            join(&s, &owner, &general, &users[&who].0).await;
        }
        s.guild(&users[&Outsider].0, "Elsewhere").await;
        let mods = role(&s, &owner, &gid, "mods", BAN_MEMBERS | MANAGE_CHANNELS | MANAGE_GUILD).await;
        give(&s, &owner, &gid, &users[&Mod].1, &mods).await;
        let mut dms = BTreeMap::new();
        for who in [Mod, Viewer, Blind, Outsider, Kicked, Leaver] {
            let uid = users[&who].1.clone();
            let (status, dm) = s.post("/users/@me/channels", &owner, json!({ "recipient_id": uid })).await;
            assert_eq!(status, StatusCode::OK, "{dm}");
            dms.insert(uid, dm["id"].as_str().unwrap().to_string());
        }
        let mut obs = BTreeMap::new();
        for who in EVERYONE {
            let (token, uid) = &users[&who];
            let intents = if who == Low { LOW } else { ALL };
            let mut o = Observer::open(&s, token, uid, intents).await;
            // Subscribed (and online) once its guild's GUILD_CREATE arrives.
            while o.dispatch().await.name != "GUILD_CREATE" {}
            obs.insert(who, o);
        }
        let mut secrets = BTreeMap::new();
        // The outsider never learns anything about the guild.
        secrets.insert(Outsider, vec![gid.clone(), general.clone(), "Leakproof".to_string()]);
        let mut w = World {
            s,
            owner,
            gid,
            general,
            hidden: String::new(),
            hidden_msgs: Vec::new(),
            thread: String::new(),
            private: String::new(),
            invite: String::new(),
            users,
            dms,
            obs,
            secrets,
            sentinels: 0,
        };
        w.settle().await;
        w
    }

    fn id(&self, who: Who) -> String {
        self.users[&who].1.clone()
    }

    /// Marks `secret` as something each of `whom` must never receive.
    fn hide(&mut self, whom: &[Who], secret: &str) {
        for w in whom {
            self.secrets.entry(*w).or_default().push(secret.to_string());
        }
    }

    /// Reads `who`'s session until the dispatch `name` (kept for the next settle):
    /// for actions that reach the guild's actor asynchronously (op 3).
    async fn wait_for(&mut self, who: Who, name: &str) {
        let o = self.obs.get_mut(&who).unwrap();
        loop {
            let f = o.dispatch().await;
            let done = f.name == name;
            o.pending.push(f);
            if done {
                return;
            }
        }
    }

    /// Barrier and sentinels; returns what each session received since the last
    /// settle, sentinel excluded.
    async fn settle(&mut self) -> BTreeMap<Who, Vec<Frame>> {
        // A read on the guild's actor: it runs after every earlier job of that
        // actor has been fanned out.
        let (status, _) = self.s.get(&format!("/guilds/{}", self.gid), &self.owner).await;
        assert_eq!(status, StatusCode::OK);
        for o in self.obs.values_mut() {
            o.send(json!({ "op": 1, "d": null })).await;
        }
        self.sentinels += 1;
        let mut sentinel_of: BTreeMap<String, String> = BTreeMap::new();
        for (uid, dm) in &self.dms {
            let content = format!("sentinel {}", self.sentinels);
            let (status, m) =
                self.s.post(&format!("/channels/{dm}/messages"), &self.owner, json!({ "content": content })).await;
            assert_eq!(status, StatusCode::OK, "{m}");
            sentinel_of.insert(uid.clone(), m["id"].as_str().unwrap().to_string());
        }
        let mut out = BTreeMap::new();
        for (who, o) in &mut self.obs {
            let sentinel = &sentinel_of[&o.user];
            let mut got = std::mem::take(&mut o.pending);
            loop {
                let f = o.dispatch().await;
                if f.name == "MESSAGE_CREATE" && f.d["id"] == sentinel.as_str() {
                    got.push(f);
                    break;
                }
                got.push(f);
            }
            out.insert(*who, got);
        }
        for (who, frames) in &out {
            for f in frames {
                for secret in self.secrets.get(who).into_iter().flatten() {
                    assert!(!f.raw.contains(secret.as_str()), "{who:?} received {secret:?} in {}", f.raw);
                }
            }
        }
        for frames in out.values_mut() {
            frames.pop();
        }
        out
    }

    /// Settles and checks each session got exactly the dispatches `expect` names
    /// for it (`(event, recipients)` pairs; order within a session is ignored).
    async fn check(&mut self, label: &str, expect: &[(&str, &[Who])]) -> BTreeMap<Who, Vec<Frame>> {
        let got = self.settle().await;
        for who in EVERYONE {
            let mut want: Vec<&str> = expect.iter().filter(|(_, to)| to.contains(&who)).map(|(n, _)| *n).collect();
            want.sort_unstable();
            let mut names: Vec<&str> = got[&who].iter().map(|f| f.name.as_str()).collect();
            names.sort_unstable();
            assert_eq!(names, want, "{label}: {who:?} received {:#?}", got[&who]);
        }
        got
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.s.req(method.clone(), path, Some(&self.owner), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    /// The owner posts `content` in `channel`; returns the message id.
    async fn say(&self, channel: &str, content: &str) -> String {
        let m =
            self.ok(Method::POST, &format!("/channels/{channel}/messages"), Some(json!({ "content": content }))).await;
        m["id"].as_str().unwrap().to_string()
    }

    fn last_hidden(&self) -> String {
        self.hidden_msgs.last().unwrap().clone()
    }
}

/// Actions on the hidden channel, its thread, and the private thread in #general.
#[derive(Clone, Copy, Debug)]
enum Act {
    CreateHidden,
    /// A message mentioning the blind member (mentions do not open a channel).
    SendHidden,
    EditHidden,
    React,
    Unreact,
    ReactThenRemoveEmoji,
    ReactThenRemoveAll,
    Pin,
    Unpin,
    TypeHidden,
    DeleteHidden,
    BulkDeleteHidden,
    RenameHidden,
    /// Channel reorder moving the hidden channel.
    ReorderHidden,
    /// A reply in #general pointing at a hidden message (not found there).
    ReplyAcross,
    StartThread,
    SendThread,
    TypeThread,
    ModJoinsThread,
    /// The owner adds the blind member to the hidden channel's thread: they
    /// still cannot see it, so they must not hear of it.
    AddBlindToThread,
    RenameThread,
    ModLeavesThread,
    /// A thread started from a hidden message (the message gets MESSAGE_UPDATE).
    ThreadFromMessage,
    StartPrivateThread,
    SendPrivate,
    InviteHidden,
    DeleteInvite,
    DeleteThread,
}

/// `(action, [(event, recipients)])`, run in order (state carries over).
/// `(event, recipients)` pairs: who receives which dispatch.
type Expect = &'static [(&'static str, &'static [Who])];

const HIDDEN_TABLE: &[(Act, Expect)] = &[
    (Act::CreateHidden, &[("CHANNEL_CREATE", ALL_H)]),
    (Act::SendHidden, &[("MESSAGE_CREATE", ALL_H)]),
    (Act::EditHidden, &[("MESSAGE_UPDATE", ALL_H)]),
    (Act::React, &[("MESSAGE_REACTION_ADD", FULL_H)]),
    (Act::Unreact, &[("MESSAGE_REACTION_REMOVE", FULL_H)]),
    (Act::ReactThenRemoveEmoji, &[("MESSAGE_REACTION_ADD", FULL_H), ("MESSAGE_REACTION_REMOVE_EMOJI", FULL_H)]),
    (Act::ReactThenRemoveAll, &[("MESSAGE_REACTION_ADD", FULL_H), ("MESSAGE_REACTION_REMOVE_ALL", FULL_H)]),
    (Act::Pin, &[("MESSAGE_UPDATE", ALL_H), ("CHANNEL_PINS_UPDATE", ALL_H), ("MESSAGE_CREATE", ALL_H)]),
    (Act::Unpin, &[("MESSAGE_UPDATE", ALL_H), ("CHANNEL_PINS_UPDATE", ALL_H)]),
    (Act::TypeHidden, &[("TYPING_START", FULL_H)]),
    (Act::DeleteHidden, &[("MESSAGE_DELETE", ALL_H)]),
    // Two messages, their bulk delete, and one more to point at afterwards.
    (
        Act::BulkDeleteHidden,
        &[
            ("MESSAGE_CREATE", ALL_H),
            ("MESSAGE_CREATE", ALL_H),
            ("MESSAGE_DELETE_BULK", ALL_H),
            ("MESSAGE_CREATE", ALL_H),
        ],
    ),
    (Act::RenameHidden, &[("CHANNEL_UPDATE", ALL_H)]),
    (Act::ReorderHidden, &[("CHANNEL_UPDATE", ALL_H)]),
    (Act::ReplyAcross, &[("MESSAGE_CREATE", ALL_MEMBERS)]),
    (Act::StartThread, &[("THREAD_CREATE", ALL_H), ("THREAD_MEMBERS_UPDATE", FULL_H), ("MESSAGE_CREATE", ALL_H)]),
    (Act::SendThread, &[("MESSAGE_CREATE", ALL_H)]),
    (Act::TypeThread, &[("TYPING_START", FULL_H)]),
    (Act::ModJoinsThread, &[("THREAD_MEMBERS_UPDATE", FULL_H), ("THREAD_MEMBER_UPDATE", &[Mod])]),
    (Act::AddBlindToThread, &[("THREAD_MEMBERS_UPDATE", FULL_H)]),
    (Act::RenameThread, &[("THREAD_UPDATE", ALL_H)]),
    (Act::ModLeavesThread, &[("THREAD_MEMBERS_UPDATE", FULL_H)]),
    (Act::ThreadFromMessage, &[("THREAD_CREATE", ALL_H), ("THREAD_MEMBERS_UPDATE", FULL_H), ("MESSAGE_UPDATE", ALL_H)]),
    // Only its members (the owner, then the moderator) see a private thread.
    (Act::StartPrivateThread, &[("THREAD_MEMBERS_UPDATE", &[Mod]), ("THREAD_MEMBER_UPDATE", &[Mod])]),
    (Act::SendPrivate, &[("MESSAGE_CREATE", &[Mod])]),
    // Invite events need GUILD_INVITES and MANAGE_CHANNELS on the channel.
    (Act::InviteHidden, &[("INVITE_CREATE", &[Mod])]),
    (Act::DeleteInvite, &[("INVITE_DELETE", &[Mod])]),
    (Act::DeleteThread, &[("THREAD_DELETE", ALL_H)]),
];

/// Who must not learn about the hidden channel and its threads.
const NOT_H: &[Who] = &[Blind, Outsider];
/// Who must not see message contents in it (no MESSAGE_CONTENT, never mentioned).
const NO_CONTENT: &[Who] = &[Blind, Outsider, Low];

impl World {
    async fn act(&mut self, act: Act) {
        let h = self.hidden.clone();
        match act {
            Act::CreateHidden => {
                let blind = self.id(Blind);
                let c = self
                    .ok(
                        Method::POST,
                        &format!("/guilds/{}/channels", self.gid),
                        Some(json!({ "name": "hidden-den", "topic": "hidden topic",
                            "permission_overwrites": [{ "id": blind, "type": 1, "deny": VIEW_CHANNEL.to_string() }] })),
                    )
                    .await;
                self.hidden = c["id"].as_str().unwrap().to_string();
                let hidden = self.hidden.clone();
                self.hide(NOT_H, &hidden);
                self.hide(NOT_H, "hidden-den");
                self.hide(NOT_H, "hidden topic");
            }
            Act::SendHidden => {
                let content = format!("hidden words <@{}>", self.id(Blind));
                let id = self.say(&h, &content).await;
                self.hidden_msgs.push(id.clone());
                self.hide(NOT_H, &id);
                self.hide(NO_CONTENT, "hidden words");
            }
            Act::EditHidden => {
                let path = format!("/channels/{h}/messages/{}", self.last_hidden());
                self.ok(Method::PATCH, &path, Some(json!({ "content": "edited hidden words" }))).await;
                self.hide(NO_CONTENT, "edited hidden");
            }
            Act::React | Act::ReactThenRemoveEmoji | Act::ReactThenRemoveAll => {
                let base = format!("/channels/{h}/messages/{}/reactions", self.last_hidden());
                self.ok(Method::PUT, &format!("{base}/{THUMBS}/@me"), None).await;
                match act {
                    Act::ReactThenRemoveEmoji => self.ok(Method::DELETE, &format!("{base}/{THUMBS}"), None).await,
                    Act::ReactThenRemoveAll => self.ok(Method::DELETE, &base, None).await,
                    _ => Value::Null,
                };
            }
            Act::Unreact => {
                let path = format!("/channels/{h}/messages/{}/reactions/{THUMBS}/@me", self.last_hidden());
                self.ok(Method::DELETE, &path, None).await;
            }
            Act::Pin => {
                self.ok(Method::PUT, &format!("/channels/{h}/pins/{}", self.last_hidden()), None).await;
            }
            Act::Unpin => {
                self.ok(Method::DELETE, &format!("/channels/{h}/pins/{}", self.last_hidden()), None).await;
            }
            Act::TypeHidden => {
                self.ok(Method::POST, &format!("/channels/{h}/typing"), None).await;
            }
            Act::DeleteHidden => {
                let id = self.hidden_msgs.pop().unwrap();
                self.ok(Method::DELETE, &format!("/channels/{h}/messages/{id}"), None).await;
            }
            Act::BulkDeleteHidden => {
                let a = self.say(&h, "hidden bulk one").await;
                let b = self.say(&h, "hidden bulk two").await;
                self.hide(NOT_H, &a);
                self.hide(NOT_H, &b);
                self.hide(NO_CONTENT, "hidden bulk");
                self.ok(
                    Method::POST,
                    &format!("/channels/{h}/messages/bulk-delete"),
                    Some(json!({ "messages": [a, b] })),
                )
                .await;
                // Something to point at for the next steps.
                let id = self.say(&h, "hidden words again").await;
                self.hidden_msgs.push(id.clone());
                self.hide(NOT_H, &id);
            }
            Act::RenameHidden => {
                self.ok(
                    Method::PATCH,
                    &format!("/channels/{h}"),
                    Some(json!({ "name": "hidden-lair", "topic": "lair topic" })),
                )
                .await;
                self.hide(NOT_H, "hidden-lair");
                self.hide(NOT_H, "lair topic");
            }
            Act::ReorderHidden => {
                let body = json!([{ "id": h, "position": 7 }]);
                self.ok(Method::PATCH, &format!("/guilds/{}/channels", self.gid), Some(body)).await;
            }
            Act::ReplyAcross => {
                let body = json!({ "content": "a visible reply",
                    "message_reference": { "message_id": self.last_hidden(), "fail_if_not_exists": false } });
                let m = self.ok(Method::POST, &format!("/channels/{}/messages", self.general), Some(body)).await;
                assert!(m.get("referenced_message").is_none_or(Value::is_null), "{m}");
            }
            Act::StartThread => {
                let t = self
                    .ok(
                        Method::POST,
                        &format!("/channels/{h}/threads"),
                        Some(json!({ "name": "hidden-thread", "type": 11 })),
                    )
                    .await;
                self.thread = t["id"].as_str().unwrap().to_string();
                let thread = self.thread.clone();
                self.hide(NOT_H, &thread);
                self.hide(NOT_H, "hidden-thread");
            }
            Act::SendThread => {
                let id = self.say(&self.thread.clone(), "thread words").await;
                self.hide(NOT_H, &id);
                self.hide(NO_CONTENT, "thread words");
            }
            Act::TypeThread => {
                self.ok(Method::POST, &format!("/channels/{}/typing", self.thread), None).await;
            }
            Act::ModJoinsThread => {
                let (status, body) = self
                    .s
                    .put(&format!("/channels/{}/thread-members/@me", self.thread), &self.users[&Mod].0, json!({}))
                    .await;
                assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            }
            Act::AddBlindToThread => {
                let path = format!("/channels/{}/thread-members/{}", self.thread, self.id(Blind));
                self.ok(Method::PUT, &path, None).await;
            }
            Act::RenameThread => {
                self.ok(
                    Method::PATCH,
                    &format!("/channels/{}", self.thread),
                    Some(json!({ "name": "hidden-thread-2" })),
                )
                .await;
            }
            Act::ModLeavesThread => {
                let (status, body) =
                    self.s.delete(&format!("/channels/{}/thread-members/@me", self.thread), &self.users[&Mod].0).await;
                assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            }
            Act::ThreadFromMessage => {
                let path = format!("/channels/{h}/messages/{}/threads", self.last_hidden());
                self.ok(Method::POST, &path, Some(json!({ "name": "message-thread" }))).await;
                self.hide(NOT_H, "message-thread");
            }
            Act::StartPrivateThread => {
                let t = self
                    .ok(
                        Method::POST,
                        &format!("/channels/{}/threads", self.general),
                        Some(json!({ "name": "private-nook", "type": 12 })),
                    )
                    .await;
                self.private = t["id"].as_str().unwrap().to_string();
                let private = self.private.clone();
                // Neither the viewer nor the blind member is in it.
                self.hide(&[Viewer, Low, Blind, Outsider, Kicked, Leaver], &private);
                self.hide(&[Viewer, Low, Blind, Outsider, Kicked, Leaver], "private-nook");
                let path = format!("/channels/{private}/thread-members/{}", self.id(Mod));
                self.ok(Method::PUT, &path, None).await;
            }
            Act::SendPrivate => {
                self.say(&self.private.clone(), "private words").await;
                self.hide(&[Viewer, Low, Blind, Outsider, Kicked, Leaver], "private words");
            }
            Act::InviteHidden => {
                let inv =
                    self.ok(Method::POST, &format!("/channels/{h}/invites"), Some(json!({ "unique": true }))).await;
                self.invite = inv["code"].as_str().unwrap().to_string();
                let code = self.invite.clone();
                self.hide(&[Viewer, Low, Blind, Outsider, Kicked, Leaver], &code);
            }
            Act::DeleteInvite => {
                self.ok(Method::DELETE, &format!("/invites/{}", self.invite), None).await;
            }
            Act::DeleteThread => {
                self.ok(Method::DELETE, &format!("/channels/{}", self.thread), None).await;
            }
        }
    }
}

#[tokio::test]
async fn gateway_events_reach_only_those_who_may_see_them() {
    let mut w = World::build().await;

    for (act, expect) in HIDDEN_TABLE {
        w.act(*act).await;
        w.check(&format!("{act:?}"), expect).await;
    }

    // The low-intent session got message events redacted; the full ones did not.
    w.say(&w.hidden.clone(), "content check").await;
    let got = w.check("content check", &[("MESSAGE_CREATE", ALL_H)]).await;
    assert_eq!(got[&Viewer][0].d["content"], "content check");
    assert_eq!(got[&Low][0].d["content"], "");

    // Guild-wide events: every member, never the outsider.
    let gid = w.gid.clone();
    let r = w.ok(Method::POST, &format!("/guilds/{gid}/roles"), Some(json!({ "name": "r1" }))).await;
    let rid = r["id"].as_str().unwrap().to_string();
    // The new role goes in at position 1, so the moderators' role moves up.
    w.check("role create", &[("GUILD_ROLE_CREATE", ALL_MEMBERS), ("GUILD_ROLE_UPDATE", ALL_MEMBERS)]).await;
    w.ok(Method::PATCH, &format!("/guilds/{gid}/roles/{rid}"), Some(json!({ "name": "r2" }))).await;
    w.check("role update", &[("GUILD_ROLE_UPDATE", ALL_MEMBERS)]).await;
    w.ok(Method::DELETE, &format!("/guilds/{gid}/roles/{rid}"), None).await;
    w.check("role delete", &[("GUILD_ROLE_DELETE", ALL_MEMBERS)]).await;
    w.ok(Method::PATCH, &format!("/guilds/{gid}"), Some(json!({ "description": "a guild" }))).await;
    w.check("guild update", &[("GUILD_UPDATE", ALL_MEMBERS)]).await;

    // Member events need GUILD_MEMBERS.
    let blind = w.id(Blind);
    w.ok(Method::PATCH, &format!("/guilds/{gid}/members/{blind}"), Some(json!({ "nick": "nicky" }))).await;
    w.check("member update", &[("GUILD_MEMBER_UPDATE", FULL_MEMBERS)]).await;
    let (target, target_id) = w.s.user("target").await;
    let inv = w.ok(Method::POST, &format!("/channels/{}/invites", w.general), Some(json!({ "unique": true }))).await;
    let (status, body) = w.s.post(&format!("/invites/{}", inv["code"].as_str().unwrap()), &target, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    w.check("member add", &[("INVITE_CREATE", &[Mod]), ("GUILD_MEMBER_ADD", FULL_MEMBERS)]).await;

    // Bans: GUILD_MODERATION and BAN_MEMBERS.
    w.ok(Method::PUT, &format!("/guilds/{gid}/bans/{target_id}"), Some(json!({}))).await;
    w.check("ban", &[("GUILD_BAN_ADD", &[Mod]), ("GUILD_MEMBER_REMOVE", FULL_MEMBERS)]).await;
    w.ok(Method::DELETE, &format!("/guilds/{gid}/bans/{target_id}"), None).await;
    w.check("unban", &[("GUILD_BAN_REMOVE", &[Mod])]).await;

    // Presence: GUILD_PRESENCES, members only (the sender's own sessions too).
    let op3 = |status: &str, activity: &str| {
        json!({ "op": 3, "d": { "since": null, "status": status, "afk": false,
            "activities": [{ "name": activity, "type": 0 }] } })
    };
    w.hide(&[Outsider], "blind activity");
    w.obs.get_mut(&Blind).unwrap().send(op3("dnd", "blind activity")).await;
    w.wait_for(Mod, "PRESENCE_UPDATE").await;
    let got = w.check("member presence", &[("PRESENCE_UPDATE", FULL_MEMBERS)]).await;
    assert_eq!(got[&Viewer][0].d["user"]["id"], blind.as_str());
    // The outsider's presence reaches their own guild only.
    w.hide(ALL_MEMBERS, "outsider activity");
    w.obs.get_mut(&Outsider).unwrap().send(op3("idle", "outsider activity")).await;
    w.wait_for(Outsider, "PRESENCE_UPDATE").await;
    w.check("outsider presence", &[("PRESENCE_UPDATE", &[Outsider])]).await;

    // op 8 on a guild the requester is not in: nothing (as Discord, which answers
    // only for guilds the session has). A request on their own guild afterwards
    // shows the first was handled.
    let (_, g2) = w.s.get("/users/@me/guilds", &w.users[&Outsider].0).await;
    let g2 = g2[0]["id"].as_str().unwrap().to_string();
    let o = w.obs.get_mut(&Outsider).unwrap();
    o.send(
        json!({ "op": 8, "d": { "guild_id": gid, "query": "", "limit": 0, "presences": true, "nonce": "foreign" } }),
    )
    .await;
    o.send(json!({ "op": 8, "d": { "guild_id": gid, "user_ids": [blind], "nonce": "foreign-ids" } })).await;
    o.send(json!({ "op": 8, "d": { "guild_id": g2, "query": "", "limit": 0, "nonce": "own" } })).await;
    w.wait_for(Outsider, "GUILD_MEMBERS_CHUNK").await;
    let got = w.check("op 8 on a foreign guild", &[("GUILD_MEMBERS_CHUNK", &[Outsider])]).await;
    assert_eq!(got[&Outsider][0].d["nonce"], "own");

    // Group DMs reach their current recipients only.
    let recipients = json!({ "recipients": [w.id(Viewer), w.id(Outsider)] });
    let gdm = w.ok(Method::POST, "/users/@me/channels", Some(recipients)).await;
    let gdm = gdm["id"].as_str().unwrap().to_string();
    w.check("group DM create", &[("CHANNEL_CREATE", &[Viewer, Low, Outsider])]).await;
    w.say(&gdm, "group words").await;
    w.check("group DM message", &[("MESSAGE_CREATE", &[Viewer, Low, Outsider])]).await;
    let (status, body) = w.s.delete(&format!("/channels/{gdm}"), &w.users[&Outsider].0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    w.check("group DM leave", &[("CHANNEL_DELETE", &[Outsider]), ("CHANNEL_RECIPIENT_REMOVE", &[Viewer, Low])]).await;
    w.hide(&[Outsider], "after the outsider left");
    w.say(&gdm, "after the outsider left").await;
    w.ok(Method::POST, &format!("/channels/{gdm}/typing"), None).await;
    w.check("group DM after leaving", &[("MESSAGE_CREATE", &[Viewer, Low]), ("TYPING_START", &[Viewer])]).await;

    // Kick and leave: a GUILD_DELETE, then nothing more from the guild.
    let kicked = w.id(Kicked);
    w.ok(Method::DELETE, &format!("/guilds/{gid}/members/{kicked}"), None).await;
    w.check("kick", &[("GUILD_MEMBER_REMOVE", &[Mod, Viewer, Blind, Leaver]), ("GUILD_DELETE", &[Kicked])]).await;
    let (status, body) = w.s.delete(&format!("/users/@me/guilds/{gid}"), &w.users[&Leaver].0).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let still: &[Who] = &[Mod, Viewer, Blind];
    w.check("leave", &[("GUILD_MEMBER_REMOVE", still), ("GUILD_DELETE", &[Leaver])]).await;
    let gone = [Kicked, Leaver];
    for s in [gid.clone(), w.general.clone(), w.hidden.clone(), "Leakproof".to_string()] {
        w.hide(&gone, &s);
    }
    let still_h: &[Who] = &[Mod, Viewer, Low];
    w.say(&w.hidden.clone(), "after they left").await;
    w.say(&w.general.clone(), "general after they left").await;
    w.ok(Method::POST, &format!("/channels/{}/typing", w.general), None).await;
    w.ok(Method::PATCH, &format!("/guilds/{gid}"), Some(json!({ "description": "still a guild" }))).await;
    w.check(
        "after removal",
        &[
            ("MESSAGE_CREATE", still_h),
            ("MESSAGE_CREATE", &[Mod, Viewer, Low, Blind]),
            ("TYPING_START", still),
            ("GUILD_UPDATE", &[Mod, Viewer, Low, Blind]),
        ],
    )
    .await;
    // Their presence changes no longer reach the guild.
    w.hide(ALL_MEMBERS, "gone activity");
    w.obs.get_mut(&Kicked).unwrap().send(op3("idle", "gone activity")).await;
    w.obs.get_mut(&Leaver).unwrap().send(op3("idle", "gone activity")).await;
    w.check("presence after removal", &[]).await;

    // A fresh session: GUILD_CREATE lists neither the removed members nor their
    // presences, and the blind member's lists no hidden channel or thread.
    let (viewer_token, viewer_id) = w.users[&Viewer].clone();
    let mut fresh = Observer::open(&w.s, &viewer_token, &viewer_id, ALL).await;
    let gc = loop {
        let f = fresh.dispatch().await;
        if f.name == "GUILD_CREATE" {
            break f;
        }
    };
    let present: Vec<&str> =
        gc.d["presences"].as_array().unwrap().iter().filter_map(|p| p["user"]["id"].as_str()).collect();
    let members: Vec<&str> =
        gc.d["members"].as_array().unwrap().iter().filter_map(|m| m["user"]["id"].as_str()).collect();
    for gone in [w.id(Kicked), w.id(Leaver)] {
        assert!(!members.contains(&gone.as_str()), "{gc:?}");
        assert!(!present.contains(&gone.as_str()), "a removed member's presence stays in the guild: {present:?}");
    }
    let mut online = present.clone();
    online.sort_unstable();
    let mut expected = vec![w.id(Mod), viewer_id.clone(), blind.clone()];
    expected.sort_unstable();
    assert_eq!(online, expected);
    let g = w.ok(Method::GET, &format!("/guilds/{gid}?with_counts=true"), None).await;
    assert_eq!(g["approximate_presence_count"], 3, "{g}");
    let (blind_token, _) = w.users[&Blind].clone();
    let mut fresh_blind = Observer::open(&w.s, &blind_token, &blind, ALL).await;
    let gc = loop {
        let f = fresh_blind.dispatch().await;
        if f.name == "GUILD_CREATE" {
            break f;
        }
    };
    for secret in &w.secrets[&Blind] {
        assert!(!gc.raw.contains(secret.as_str()), "the blind member's GUILD_CREATE names {secret:?}");
    }
    drop((fresh, fresh_blind));
    w.settle().await;

    // Revealing the hidden channel: the blind member gets CHANNEL_CREATE, the
    // others CHANNEL_UPDATE; hiding it again: CHANNEL_DELETE. (Discord's client
    // view; Discord also sends THREAD_LIST_SYNC for the channel's active threads,
    // not done here.)
    let h = w.hidden.clone();
    w.secrets.get_mut(&Blind).unwrap().clear();
    w.ok(Method::DELETE, &format!("/channels/{h}/permissions/{blind}"), None).await;
    w.check("reveal", &[("CHANNEL_UPDATE", still_h), ("CHANNEL_CREATE", &[Blind])]).await;
    let deny = json!({ "type": 1, "deny": VIEW_CHANNEL.to_string() });
    w.ok(Method::PUT, &format!("/channels/{h}/permissions/{blind}"), Some(deny)).await;
    w.check("hide", &[("CHANNEL_UPDATE", still_h), ("CHANNEL_DELETE", &[Blind])]).await;
    w.hide(&[Blind], &h);
    w.hide(&[Blind], "hidden-lair");

    // Deleting the hidden channel (and a thread in it): its viewers only.
    let t =
        w.ok(Method::POST, &format!("/channels/{h}/threads"), Some(json!({ "name": "last-thread", "type": 11 }))).await;
    w.hide(NOT_H, "last-thread");
    w.hide(NOT_H, t["id"].as_str().unwrap());
    w.check(
        "last thread",
        &[("THREAD_CREATE", still_h), ("THREAD_MEMBERS_UPDATE", &[Mod, Viewer]), ("MESSAGE_CREATE", still_h)],
    )
    .await;
    w.ok(Method::DELETE, &format!("/channels/{h}"), None).await;
    // Its two active threads (the one started from a message, the last one) go too.
    w.check("delete hidden", &[("THREAD_DELETE", still_h), ("THREAD_DELETE", still_h), ("CHANNEL_DELETE", still_h)])
        .await;
}

/// Strings a 403/404 body must not contain, and the codes it may carry.
fn assert_refused(label: &str, res: &(StatusCode, Value), secrets: &[String]) {
    let (status, body) = res;
    assert!(matches!(*status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND), "{label}: {status} {body}");
    let code = body["code"].as_u64().unwrap_or(0);
    let allowed: &[u64] = if *status == StatusCode::FORBIDDEN { &[50001, 50013] } else { &[10003, 10004, 10008] };
    assert!(allowed.contains(&code), "{label}: {status} with code {code} (a matched route's error): {body}");
    assert!(body["message"].is_string(), "{label}: {body}");
    let text = body.to_string();
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{label}: the error names {s:?}: {text}");
    }
}

#[tokio::test]
async fn rest_refuses_hidden_channels_and_foreign_guilds() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (gid, general) = s.guild(&owner, "Leakproof").await;
    let (viewer, viewer_id) = s.user("viewer").await;
    let (blind, blind_id) = s.user("blind").await;
    let (outsider, _) = s.user("outsider").await;
    join(&s, &owner, &general, &viewer).await;
    join(&s, &owner, &general, &blind).await;
    s.guild(&outsider, "Elsewhere").await;
    let rid = role(&s, &owner, &gid, "helpers", 0).await;

    let deny = json!([{ "id": blind_id, "type": 1, "deny": VIEW_CHANNEL.to_string() }]);
    let (status, h) = s
        .post(
            &format!("/guilds/{gid}/channels"),
            &owner,
            json!({ "name": "hidden-den", "topic": "hidden topic", "permission_overwrites": deny }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    let h = h["id"].as_str().unwrap().to_string();
    let (_, m) = s.post(&format!("/channels/{h}/messages"), &owner, json!({ "content": "hidden words" })).await;
    let m = m["id"].as_str().unwrap().to_string();
    let (status, _) = s.put(&format!("/channels/{h}/messages/{m}/reactions/{THUMBS}/@me"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.put(&format!("/channels/{h}/pins/{m}"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, t) =
        s.post(&format!("/channels/{h}/threads"), &owner, json!({ "name": "hidden-thread", "type": 11 })).await;
    let t = t["id"].as_str().unwrap().to_string();
    let (_, tm) = s.post(&format!("/channels/{t}/messages"), &owner, json!({ "content": "thread words" })).await;
    let tm = tm["id"].as_str().unwrap().to_string();
    let (_, p) =
        s.post(&format!("/channels/{general}/threads"), &owner, json!({ "name": "private-nook", "type": 12 })).await;
    let p = p["id"].as_str().unwrap().to_string();
    let (_, pm) = s.post(&format!("/channels/{p}/messages"), &owner, json!({ "content": "private words" })).await;
    let pm = pm["id"].as_str().unwrap().to_string();
    let (_, inv) = s.post(&format!("/channels/{h}/invites"), &owner, json!({})).await;
    let code = inv["code"].as_str().unwrap().to_string();

    let hidden_secrets: Vec<String> = [&h, &t, &p, &code]
        .iter()
        .map(|s| s.to_string())
        .chain(
            [
                "hidden-den",
                "hidden topic",
                "hidden words",
                "hidden-thread",
                "thread words",
                "private-nook",
                "private words",
            ]
            .map(String::from),
        )
        .collect();

    // Routes on the hidden channel, a thread in it, and their messages: refused to
    // the blind member and to the outsider. `true` = a read, which the owner is
    // shown to be allowed (so the path is a real route, not a typo).
    let empty = Some(json!({}));
    let channel_routes: Vec<(Method, String, Option<Value>, bool)> = vec![
        (Method::GET, format!("/channels/{h}"), None, true),
        (Method::PATCH, format!("/channels/{h}"), Some(json!({ "name": "xx" })), false),
        (Method::DELETE, format!("/channels/{h}"), None, false),
        (Method::GET, format!("/channels/{h}/messages"), None, true),
        (Method::GET, format!("/channels/{h}/messages?around={m}"), None, true),
        (Method::POST, format!("/channels/{h}/messages"), Some(json!({ "content": "hi" })), false),
        (Method::GET, format!("/channels/{h}/messages/{m}"), None, true),
        (Method::PATCH, format!("/channels/{h}/messages/{m}"), Some(json!({ "content": "x" })), false),
        (Method::DELETE, format!("/channels/{h}/messages/{m}"), None, false),
        (Method::POST, format!("/channels/{h}/messages/bulk-delete"), Some(json!({ "messages": [m, tm] })), false),
        (Method::POST, format!("/channels/{h}/typing"), None, false),
        (Method::GET, format!("/channels/{h}/pins"), None, true),
        (Method::GET, format!("/channels/{h}/messages/pins"), None, true),
        (Method::PUT, format!("/channels/{h}/pins/{m}"), empty.clone(), false),
        (Method::DELETE, format!("/channels/{h}/pins/{m}"), None, false),
        (Method::GET, format!("/channels/{h}/messages/{m}/reactions/{THUMBS}"), None, true),
        (Method::PUT, format!("/channels/{h}/messages/{m}/reactions/{THUMBS}/@me"), empty.clone(), false),
        (Method::DELETE, format!("/channels/{h}/messages/{m}/reactions/{THUMBS}/@me"), None, false),
        (Method::DELETE, format!("/channels/{h}/messages/{m}/reactions/{THUMBS}"), None, false),
        (Method::DELETE, format!("/channels/{h}/messages/{m}/reactions"), None, false),
        (Method::POST, format!("/channels/{h}/threads"), Some(json!({ "name": "xx", "type": 11 })), false),
        (Method::POST, format!("/channels/{h}/messages/{m}/threads"), Some(json!({ "name": "xx" })), false),
        (Method::GET, format!("/channels/{h}/threads/archived/public"), None, true),
        (Method::GET, format!("/channels/{h}/invites"), None, true),
        (Method::POST, format!("/channels/{h}/invites"), empty.clone(), false),
        (
            Method::PUT,
            format!("/channels/{h}/permissions/{viewer_id}"),
            Some(json!({ "type": 1, "allow": "1024" })),
            false,
        ),
        (Method::DELETE, format!("/channels/{h}/permissions/{blind_id}"), None, false),
        (Method::DELETE, format!("/invites/{code}"), None, false),
        (Method::GET, format!("/channels/{t}"), None, true),
        (Method::GET, format!("/channels/{t}/messages"), None, true),
        (Method::GET, format!("/channels/{t}/messages/{tm}"), None, true),
        (Method::POST, format!("/channels/{t}/messages"), Some(json!({ "content": "hi" })), false),
        (Method::GET, format!("/channels/{t}/thread-members"), None, true),
        (Method::GET, format!("/channels/{t}/thread-members/@me"), None, false),
        (Method::PUT, format!("/channels/{t}/thread-members/@me"), empty.clone(), false),
        (Method::DELETE, format!("/channels/{t}/thread-members/@me"), None, false),
        (Method::PATCH, format!("/channels/{t}"), Some(json!({ "name": "xx" })), false),
        (Method::GET, format!("/channels/{p}"), None, true),
        (Method::GET, format!("/channels/{p}/messages"), None, true),
        (Method::GET, format!("/channels/{p}/messages/{pm}"), None, true),
        (Method::POST, format!("/channels/{p}/messages"), Some(json!({ "content": "hi" })), false),
        (Method::GET, format!("/channels/{p}/thread-members"), None, true),
        (Method::PUT, format!("/channels/{p}/thread-members/@me"), empty.clone(), false),
    ];
    for (method, path, body, read) in &channel_routes {
        if *read {
            let (status, v) = s.req(method.clone(), path, Some(&owner), body.clone()).await;
            assert_eq!(status, StatusCode::OK, "owner {method} {path}: {v}");
        }
        for (who, token) in [("blind", &blind), ("outsider", &outsider)] {
            let res = s.req(method.clone(), path, Some(token), body.clone()).await;
            assert_refused(&format!("{who} {method} {path}"), &res, &hidden_secrets);
        }
        // The private thread is hidden from a viewer of its parent who is not in it.
        if path.contains(&p) {
            let res = s.req(method.clone(), path, Some(&viewer), body.clone()).await;
            assert_refused(&format!("viewer {method} {path}"), &res, &hidden_secrets);
        }
    }

    // A DM between the owner and the viewer, seen by a third user.
    let (_, dm) = s.post("/users/@me/channels", &owner, json!({ "recipient_id": viewer_id })).await;
    let dm = dm["id"].as_str().unwrap().to_string();
    let (_, dmm) = s.post(&format!("/channels/{dm}/messages"), &owner, json!({ "content": "dm words" })).await;
    let dmm = dmm["id"].as_str().unwrap().to_string();
    let dm_secrets = vec![dm.clone(), "dm words".to_string(), "owner".to_string(), "viewer".to_string()];
    let dm_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/channels/{dm}"), None),
        (Method::PATCH, format!("/channels/{dm}"), Some(json!({ "name": "xx" }))),
        (Method::DELETE, format!("/channels/{dm}"), None),
        (Method::GET, format!("/channels/{dm}/messages"), None),
        (Method::GET, format!("/channels/{dm}/messages/{dmm}"), None),
        (Method::POST, format!("/channels/{dm}/messages"), Some(json!({ "content": "hi" }))),
        (Method::PATCH, format!("/channels/{dm}/messages/{dmm}"), Some(json!({ "content": "xx" }))),
        (Method::DELETE, format!("/channels/{dm}/messages/{dmm}"), None),
        (Method::POST, format!("/channels/{dm}/typing"), None),
        (Method::GET, format!("/channels/{dm}/pins"), None),
        (Method::PUT, format!("/channels/{dm}/pins/{dmm}"), empty.clone()),
        (Method::GET, format!("/channels/{dm}/messages/{dmm}/reactions/{THUMBS}"), None),
        (Method::PUT, format!("/channels/{dm}/messages/{dmm}/reactions/{THUMBS}/@me"), empty.clone()),
    ];
    for (method, path, body) in &dm_routes {
        let res = s.req(method.clone(), path, Some(&blind), body.clone()).await;
        assert_refused(&format!("third user {method} {path}"), &res, &dm_secrets);
    }

    // Routes on the guild: refused to the outsider, with no guild, channel,
    // member or role names in the error.
    let mut guild_secrets = hidden_secrets.clone();
    guild_secrets.extend(["Leakproof", "general", "viewer", "blind", "owner", "helpers"].map(String::from));
    let guild_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/guilds/{gid}"), None),
        (Method::GET, format!("/guilds/{gid}?with_counts=true"), None),
        (Method::PATCH, format!("/guilds/{gid}"), Some(json!({ "name": "xx" }))),
        (Method::DELETE, format!("/guilds/{gid}"), None),
        (Method::GET, format!("/guilds/{gid}/channels"), None),
        (Method::POST, format!("/guilds/{gid}/channels"), Some(json!({ "name": "xx" }))),
        (Method::PATCH, format!("/guilds/{gid}/channels"), Some(json!([{ "id": general, "position": 1 }]))),
        (Method::GET, format!("/guilds/{gid}/members"), None),
        (Method::GET, format!("/guilds/{gid}/members?limit=1000"), None),
        (Method::GET, format!("/guilds/{gid}/members/search?query=b"), None),
        (Method::GET, format!("/guilds/{gid}/members/{blind_id}"), None),
        (Method::PATCH, format!("/guilds/{gid}/members/{blind_id}"), Some(json!({ "nick": "xx" }))),
        (Method::DELETE, format!("/guilds/{gid}/members/{blind_id}"), None),
        (Method::PATCH, format!("/guilds/{gid}/members/@me"), Some(json!({ "nick": "xx" }))),
        (Method::PUT, format!("/guilds/{gid}/members/{blind_id}/roles/{rid}"), empty.clone()),
        (Method::DELETE, format!("/guilds/{gid}/members/{blind_id}/roles/{rid}"), None),
        (Method::GET, format!("/users/@me/guilds/{gid}/member"), None),
        (Method::DELETE, format!("/users/@me/guilds/{gid}"), None),
        (Method::GET, format!("/guilds/{gid}/roles"), None),
        (Method::GET, format!("/guilds/{gid}/roles/{rid}"), None),
        (Method::POST, format!("/guilds/{gid}/roles"), Some(json!({ "name": "xx" }))),
        (Method::PATCH, format!("/guilds/{gid}/roles/{rid}"), Some(json!({ "name": "xx" }))),
        (Method::DELETE, format!("/guilds/{gid}/roles/{rid}"), None),
        (Method::GET, format!("/guilds/{gid}/bans"), None),
        (Method::GET, format!("/guilds/{gid}/bans/{blind_id}"), None),
        (Method::PUT, format!("/guilds/{gid}/bans/{blind_id}"), empty.clone()),
        (Method::DELETE, format!("/guilds/{gid}/bans/{blind_id}"), None),
        (Method::GET, format!("/guilds/{gid}/invites"), None),
        (Method::GET, format!("/guilds/{gid}/threads/active"), None),
        (Method::GET, format!("/channels/{general}"), None),
        (Method::GET, format!("/channels/{general}/messages"), None),
        (Method::POST, format!("/channels/{general}/typing"), None),
    ];
    for (method, path, body) in &guild_routes {
        let res = s.req(method.clone(), path, Some(&outsider), body.clone()).await;
        assert_refused(&format!("outsider {method} {path}"), &res, &guild_secrets);
    }

    // What the blind member may list leaves the hidden channel and threads out.
    for path in [
        format!("/guilds/{gid}"),
        format!("/guilds/{gid}/channels"),
        format!("/guilds/{gid}/threads/active"),
        format!("/channels/{general}/messages"),
        format!("/channels/{general}/threads/archived/public"),
        format!("/channels/{general}"),
    ] {
        let (status, v) = s.get(&path, &blind).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        let text = v.to_string();
        for secret in &hidden_secrets {
            assert!(!text.contains(secret.as_str()), "blind GET {path} names {secret:?}: {text}");
        }
    }
    // The active-thread list of a viewer has the public thread but not the private one.
    let (_, active) = s.get(&format!("/guilds/{gid}/threads/active"), &viewer).await;
    let ids: Vec<&str> = active["threads"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str()).collect();
    assert!(ids.contains(&t.as_str()) && !ids.contains(&p.as_str()), "{active}");

    // A reply in a visible channel that points at a hidden message: not found
    // there, and nothing of it comes back.
    let reply =
        |fail: bool| json!({ "content": "re", "message_reference": { "message_id": m, "fail_if_not_exists": fail } });
    let (status, v) = s.post(&format!("/channels/{general}/messages"), &blind, reply(true)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, v) = s.post(&format!("/channels/{general}/messages"), &blind, reply(false)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v.get("referenced_message").is_none_or(Value::is_null), "{v}");
    for (_, v) in [
        s.post(&format!("/channels/{general}/messages"), &blind, reply(true)).await,
        s.get(&format!("/channels/{general}/messages"), &blind).await,
        s.get(&format!("/channels/{general}/messages/{m}"), &blind).await,
        s.put(&format!("/channels/{general}/pins/{m}"), &owner, json!({})).await,
        s.put(&format!("/channels/{general}/messages/{m}/reactions/{THUMBS}/@me"), &blind, json!({})).await,
        s.post(&format!("/channels/{general}/messages/{m}/threads"), &owner, json!({ "name": "xx" })).await,
    ] {
        let text = v.to_string();
        for secret in &hidden_secrets {
            assert!(!text.contains(secret.as_str()), "names {secret:?}: {text}");
        }
    }
}
