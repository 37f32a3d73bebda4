//! The permission matrix: for each guarded guild-management route, the
//! permission that gates it, shown to deny (403 50013) without it and to allow
//! with it. The actor's only source of permissions is one role whose bits the
//! test sets per row (@everyone is stripped to nothing but viewing).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::guild_admin::{give, join, role};

const CREATE_INSTANT_INVITE: u64 = 1 << 0;
const KICK_MEMBERS: u64 = 1 << 1;
const BAN_MEMBERS: u64 = 1 << 2;
const MANAGE_CHANNELS: u64 = 1 << 4;
const MANAGE_GUILD: u64 = 1 << 5;
const VIEW_CHANNEL: u64 = 1 << 10;
const SEND_MESSAGES: u64 = 1 << 11;
const READ_MESSAGE_HISTORY: u64 = 1 << 16;
const MUTE_MEMBERS: u64 = 1 << 22;
const DEAFEN_MEMBERS: u64 = 1 << 23;
const CHANGE_NICKNAME: u64 = 1 << 26;
const MANAGE_NICKNAMES: u64 = 1 << 27;
const MANAGE_ROLES: u64 = 1 << 28;
const MODERATE_MEMBERS: u64 = 1 << 40;

/// What every actor has regardless of the row.
const BASELINE: u64 = VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY;

#[derive(Clone, Copy, Debug)]
enum Op {
    ModifyGuild,
    ListGuildInvites,
    CreateChannel,
    ReorderChannels,
    ModifyChannel,
    DeleteChannel,
    ListChannelInvites,
    DeleteInvite,
    CreateInvite,
    PutOverwrite,
    DeleteOverwrite,
    CreateRole,
    ModifyRole,
    ReorderRoles,
    DeleteRole,
    AddMemberRole,
    RemoveMemberRole,
    SetMemberRoles,
    SetNick,
    SetOwnNick,
    Mute,
    Deafen,
    Timeout,
    Kick,
    Ban,
    ListBans,
    GetBan,
    Unban,
}

const MATRIX: &[(Op, u64)] = &[
    (Op::ModifyGuild, MANAGE_GUILD),
    (Op::ListGuildInvites, MANAGE_GUILD),
    (Op::CreateChannel, MANAGE_CHANNELS),
    (Op::ReorderChannels, MANAGE_CHANNELS),
    (Op::ModifyChannel, MANAGE_CHANNELS),
    (Op::DeleteChannel, MANAGE_CHANNELS),
    (Op::ListChannelInvites, MANAGE_CHANNELS),
    (Op::DeleteInvite, MANAGE_CHANNELS),
    (Op::CreateInvite, CREATE_INSTANT_INVITE),
    (Op::PutOverwrite, MANAGE_ROLES),
    (Op::DeleteOverwrite, MANAGE_ROLES),
    (Op::CreateRole, MANAGE_ROLES),
    (Op::ModifyRole, MANAGE_ROLES),
    (Op::ReorderRoles, MANAGE_ROLES),
    (Op::DeleteRole, MANAGE_ROLES),
    (Op::AddMemberRole, MANAGE_ROLES),
    (Op::RemoveMemberRole, MANAGE_ROLES),
    (Op::SetMemberRoles, MANAGE_ROLES),
    (Op::SetNick, MANAGE_NICKNAMES),
    (Op::SetOwnNick, CHANGE_NICKNAME),
    (Op::Mute, MUTE_MEMBERS),
    (Op::Deafen, DEAFEN_MEMBERS),
    (Op::Timeout, MODERATE_MEMBERS),
    (Op::Kick, KICK_MEMBERS),
    (Op::Ban, BAN_MEMBERS),
    (Op::ListBans, BAN_MEMBERS),
    (Op::GetBan, BAN_MEMBERS),
    (Op::Unban, BAN_MEMBERS),
];

struct Ctx {
    s: TestServer,
    owner: String,
    gid: String,
    general: String,
    actor: String,
    actor_role: String,
    n: std::sync::atomic::AtomicUsize,
}

impl Ctx {
    /// A new member with no roles; returns (token, id).
    async fn target(&self) -> (String, String) {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (t, id) = self.s.user(&format!("target{n}")).await;
        join(&self.s, &self.owner, &self.general, &t).await;
        (t, id)
    }
    async fn low_role(&self) -> String {
        role(&self.s, &self.owner, &self.gid, "low", 0).await
    }
    async fn channel(&self) -> String {
        let (status, c) =
            self.s.post(&format!("/guilds/{}/channels", self.gid), &self.owner, json!({ "name": "fresh" })).await;
        assert_eq!(status, StatusCode::CREATED);
        c["id"].as_str().unwrap().to_string()
    }
    async fn invite(&self) -> String {
        let (_, inv) =
            self.s.post(&format!("/channels/{}/invites", self.general), &self.owner, json!({ "unique": true })).await;
        inv["code"].as_str().unwrap().to_string()
    }
    async fn banned(&self) -> String {
        let (_, id) =
            self.s.user(&format!("banned{}", self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed))).await;
        let (status, _) = self.s.put(&format!("/guilds/{}/bans/{id}", self.gid), &self.owner, json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        id
    }

    /// Sets up what `op` needs (as the owner), then runs it as the actor.
    async fn run(&self, op: Op) -> (StatusCode, Value) {
        let (s, a, g, c) = (&self.s, self.actor.as_str(), self.gid.as_str(), self.general.as_str());
        match op {
            Op::ModifyGuild => s.patch(&format!("/guilds/{g}"), a, json!({ "name": "Renamed" })).await,
            Op::ListGuildInvites => s.get(&format!("/guilds/{g}/invites"), a).await,
            Op::CreateChannel => s.post(&format!("/guilds/{g}/channels"), a, json!({ "name": "new" })).await,
            Op::ReorderChannels => {
                s.patch(&format!("/guilds/{g}/channels"), a, json!([{ "id": c, "position": 7 }])).await
            }
            Op::ModifyChannel => s.patch(&format!("/channels/{c}"), a, json!({ "topic": "t" })).await,
            Op::DeleteChannel => {
                let ch = self.channel().await;
                s.delete(&format!("/channels/{ch}"), a).await
            }
            Op::ListChannelInvites => s.get(&format!("/channels/{c}/invites"), a).await,
            Op::DeleteInvite => {
                let code = self.invite().await;
                s.delete(&format!("/invites/{code}"), a).await
            }
            Op::CreateInvite => s.post(&format!("/channels/{c}/invites"), a, json!({})).await,
            Op::PutOverwrite => {
                let (_, t) = self.target().await;
                let body = json!({ "type": 1, "deny": SEND_MESSAGES.to_string() });
                s.put(&format!("/channels/{c}/permissions/{t}"), a, body).await
            }
            Op::DeleteOverwrite => {
                let (_, t) = self.target().await;
                let body = json!({ "type": 1, "deny": SEND_MESSAGES.to_string() });
                let (status, _) = s.put(&format!("/channels/{c}/permissions/{t}"), &self.owner, body).await;
                assert_eq!(status, StatusCode::NO_CONTENT);
                s.delete(&format!("/channels/{c}/permissions/{t}"), a).await
            }
            Op::CreateRole => s.post(&format!("/guilds/{g}/roles"), a, json!({ "name": "r" })).await,
            Op::ModifyRole => {
                let r = self.low_role().await;
                s.patch(&format!("/guilds/{g}/roles/{r}"), a, json!({ "name": "renamed" })).await
            }
            Op::ReorderRoles => {
                let r = self.low_role().await;
                s.req(Method::PATCH, &format!("/guilds/{g}/roles"), Some(a), Some(json!([{ "id": r, "position": 1 }])))
                    .await
            }
            Op::DeleteRole => {
                let r = self.low_role().await;
                s.delete(&format!("/guilds/{g}/roles/{r}"), a).await
            }
            Op::AddMemberRole => {
                let ((_, t), r) = (self.target().await, self.low_role().await);
                s.put(&format!("/guilds/{g}/members/{t}/roles/{r}"), a, json!({})).await
            }
            Op::RemoveMemberRole => {
                let ((_, t), r) = (self.target().await, self.low_role().await);
                give(s, &self.owner, g, &t, &r).await;
                s.delete(&format!("/guilds/{g}/members/{t}/roles/{r}"), a).await
            }
            Op::SetMemberRoles => {
                let ((_, t), r) = (self.target().await, self.low_role().await);
                s.patch(&format!("/guilds/{g}/members/{t}"), a, json!({ "roles": [r] })).await
            }
            Op::SetNick => {
                let (_, t) = self.target().await;
                s.patch(&format!("/guilds/{g}/members/{t}"), a, json!({ "nick": "nick" })).await
            }
            Op::SetOwnNick => s.patch(&format!("/guilds/{g}/members/@me"), a, json!({ "nick": "me" })).await,
            Op::Mute => {
                let (_, t) = self.target().await;
                s.patch(&format!("/guilds/{g}/members/{t}"), a, json!({ "mute": true })).await
            }
            Op::Deafen => {
                let (_, t) = self.target().await;
                s.patch(&format!("/guilds/{g}/members/{t}"), a, json!({ "deaf": true })).await
            }
            Op::Timeout => {
                let (_, t) = self.target().await;
                let until = "2000-01-01T00:00:00+00:00";
                s.patch(&format!("/guilds/{g}/members/{t}"), a, json!({ "communication_disabled_until": until })).await
            }
            Op::Kick => {
                let (_, t) = self.target().await;
                s.delete(&format!("/guilds/{g}/members/{t}"), a).await
            }
            Op::Ban => {
                let (_, t) = self.target().await;
                s.put(&format!("/guilds/{g}/bans/{t}"), a, json!({})).await
            }
            Op::ListBans => s.get(&format!("/guilds/{g}/bans"), a).await,
            Op::GetBan => {
                let b = self.banned().await;
                s.get(&format!("/guilds/{g}/bans/{b}"), a).await
            }
            Op::Unban => {
                let b = self.banned().await;
                s.delete(&format!("/guilds/{g}/bans/{b}"), a).await
            }
        }
    }

    async fn set_actor_permissions(&self, bits: u64) {
        let path = format!("/guilds/{}/roles/{}", self.gid, self.actor_role);
        let (status, r) = self.s.patch(&path, &self.owner, json!({ "permissions": bits.to_string() })).await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }
}

#[tokio::test]
async fn each_guarded_route_needs_exactly_its_permission() {
    let s = TestServer::start().await;
    let owner = s.register("owner").await;
    let (gid, general) = s.guild(&owner, "Matrix").await;
    let (actor, actor_id) = s.user("actor").await;
    join(&s, &owner, &general, &actor).await;
    // @everyone keeps only VIEW_CHANNEL; the actor's role (created first, so it
    // stays above every role made later) carries the row's permission.
    let (status, _) = s
        .patch(&format!("/guilds/{gid}/roles/{gid}"), &owner, json!({ "permissions": VIEW_CHANNEL.to_string() }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let actor_role = role(&s, &owner, &gid, "actor", BASELINE).await;
    give(&s, &owner, &gid, &actor_id, &actor_role).await;
    let ctx = Ctx { s, owner, gid, general, actor, actor_role, n: Default::default() };

    for &(op, permission) in MATRIX {
        ctx.set_actor_permissions(BASELINE).await;
        let (status, body) = ctx.run(op).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{op:?} without its permission: {body}");
        assert_eq!(body["code"], 50013, "{op:?} without its permission: {body}");

        ctx.set_actor_permissions(BASELINE | permission).await;
        let (status, body) = ctx.run(op).await;
        assert!(status.is_success(), "{op:?} with its permission: {status} {body}");
    }

    // ADMINISTRATOR stands in for every one of them.
    ctx.set_actor_permissions(1 << 3).await;
    for &(op, _) in MATRIX {
        let (status, body) = ctx.run(op).await;
        assert!(status.is_success(), "{op:?} as administrator: {status} {body}");
    }
}

#[tokio::test]
async fn hierarchy_limits_hold_even_with_the_permission() {
    let s = TestServer::start().await;
    let (owner, owner_id) = s.user("owner").await;
    let (gid, general) = s.guild(&owner, "Ranks").await;
    let (actor, actor_id) = s.user("actor").await;
    let (peer, peer_id) = s.user("peer").await;
    join(&s, &owner, &general, &actor).await;
    join(&s, &owner, &general, &peer).await;
    let all = KICK_MEMBERS | BAN_MEMBERS | MANAGE_ROLES | MANAGE_NICKNAMES | MODERATE_MEMBERS | BASELINE;
    // Same role for both: equal rank is not "above".
    let same = role(&s, &owner, &gid, "same", all).await;
    give(&s, &owner, &gid, &actor_id, &same).await;
    give(&s, &owner, &gid, &peer_id, &same).await;
    let until = "2000-01-01T00:00:00+00:00";
    for target in [&peer_id, &owner_id] {
        for (method, path, body) in [
            (Method::DELETE, format!("/guilds/{gid}/members/{target}"), None),
            (Method::PUT, format!("/guilds/{gid}/bans/{target}"), Some(json!({}))),
            (Method::PATCH, format!("/guilds/{gid}/members/{target}"), Some(json!({ "nick": "x" }))),
            (
                Method::PATCH,
                format!("/guilds/{gid}/members/{target}"),
                Some(json!({ "communication_disabled_until": until })),
            ),
        ] {
            let (status, res) = s.req(method.clone(), &path, Some(&actor), body).await;
            assert_eq!((status, res["code"].clone()), (StatusCode::FORBIDDEN, json!(50013)), "{method} {path}: {res}");
        }
    }
    // Roles at or above the actor's own cannot be edited, assigned or deleted.
    let (status, res) = s.put(&format!("/guilds/{gid}/members/{peer_id}/roles/{same}"), &actor, json!({})).await;
    assert_eq!((status, res["code"].clone()), (StatusCode::FORBIDDEN, json!(50013)));
    let (status, res) = s.patch(&format!("/guilds/{gid}/roles/{same}"), &actor, json!({ "name": "x" })).await;
    assert_eq!((status, res["code"].clone()), (StatusCode::FORBIDDEN, json!(50013)));
    let (status, res) = s.delete(&format!("/guilds/{gid}/roles/{same}"), &actor).await;
    assert_eq!((status, res["code"].clone()), (StatusCode::FORBIDDEN, json!(50013)));
    let _ = peer;
}
