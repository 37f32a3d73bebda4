//! Guild management over REST: channels (create, list, reorder, modify, delete,
//! overwrites), roles (create, reorder, modify, delete, hierarchy) and members
//! (list, search, modify, role add/remove, kick, leave).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;

/// Joins `token`'s user to the guild through a fresh invite to `channel`.
pub async fn join(s: &TestServer, owner: &str, channel: &str, token: &str) {
    let (status, inv) = s.post(&format!("/channels/{channel}/invites"), owner, json!({ "unique": true })).await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    let (status, body) = s.post(&format!("/invites/{}", inv["code"].as_str().unwrap()), token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Creates a role with `permissions` and returns its id.
pub async fn role(s: &TestServer, owner: &str, gid: &str, name: &str, permissions: u64) -> String {
    let (status, r) = s
        .post(&format!("/guilds/{gid}/roles"), owner, json!({ "name": name, "permissions": permissions.to_string() }))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    r["id"].as_str().unwrap().to_string()
}

pub async fn give(s: &TestServer, owner: &str, gid: &str, uid: &str, rid: &str) {
    let (status, body) = s.put(&format!("/guilds/{gid}/members/{uid}/roles/{rid}"), owner, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

fn assert_err(res: &(StatusCode, Value), status: StatusCode, code: u64) {
    assert_eq!(res.0, status, "{}", res.1);
    assert_eq!(res.1["code"], code, "{}", res.1);
}

const MANAGE_CHANNELS: u64 = 1 << 4;
const MANAGE_ROLES: u64 = 1 << 28;
const VIEW_CHANNEL: u64 = 1 << 10;
const SEND_MESSAGES: u64 = 1 << 11;
const KICK_MEMBERS: u64 = 1 << 1;
const MANAGE_NICKNAMES: u64 = 1 << 27;
const MODERATE_MEMBERS: u64 = 1 << 40;
const ADMINISTRATOR: u64 = 1 << 3;

#[tokio::test]
async fn channels_create_list_modify_delete() {
    let s = TestServer::start().await;
    let owner = s.register("owner").await;
    let (gid, general) = s.guild(&owner, "Channels").await;

    let (status, cat) = s.post(&format!("/guilds/{gid}/channels"), &owner, json!({ "name": "Stuff", "type": 4 })).await;
    assert_eq!(status, StatusCode::CREATED, "{cat}");
    let cat_id = cat["id"].as_str().unwrap().to_string();
    let (status, text) = s
        .post(
            &format!("/guilds/{gid}/channels"),
            &owner,
            json!({ "name": "Dev Talk", "topic": "code", "parent_id": cat_id, "rate_limit_per_user": 5, "nsfw": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(text["name"], "dev-talk", "text channel names are normalized");
    assert_eq!(text["type"], 0);
    assert_eq!(text["parent_id"], cat_id.as_str());
    assert_eq!(text["guild_id"], gid.as_str());
    assert_eq!(text["topic"], "code");
    assert_eq!(text["rate_limit_per_user"], 5);
    assert_eq!(text["nsfw"], true);
    let text_id = text["id"].as_str().unwrap().to_string();
    let (status, voice) =
        s.post(&format!("/guilds/{gid}/channels"), &owner, json!({ "name": "Talk", "type": 2 })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(voice["bitrate"], 64000);
    assert_eq!(voice["user_limit"], 0);

    let (status, list) = s.get(&format!("/guilds/{gid}/channels"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 7, "4 default + 3 new");

    // Bad bodies.
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x".repeat(101) }), "name"),
        (json!({ "name": "x", "type": 1 }), "type"),
        (json!({ "name": "x", "type": 11 }), "type"),
        (json!({ "name": "x", "parent_id": text_id }), "parent_id"),
        (json!({ "name": "x", "type": 4, "parent_id": cat_id }), "parent_id"),
        (json!({ "name": "x", "topic": "t".repeat(1025) }), "topic"),
        (json!({ "name": "x", "rate_limit_per_user": 21601 }), "rate_limit_per_user"),
        (json!({ "name": "x", "type": 2, "user_limit": 100 }), "user_limit"),
        (
            json!({ "name": "x", "permission_overwrites": [{ "id": "1234567890123", "type": 5 }] }),
            "permission_overwrites",
        ),
        (
            json!({ "name": "x", "permission_overwrites": [{ "id": "1234567890123", "type": 0 }] }),
            "permission_overwrites",
        ),
    ] {
        let (status, err) = s.post(&format!("/guilds/{gid}/channels"), &owner, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {err}");
        assert_eq!(err["code"], 50035);
        assert!(err["errors"][field].is_object(), "{body} → {err}");
    }

    // GET/PATCH/DELETE /channels/{id}.
    let (status, got) = s.get(&format!("/channels/{text_id}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "dev-talk");
    let (status, patched) = s
        .patch(
            &format!("/channels/{text_id}"),
            &owner,
            json!({ "name": "renamed", "topic": null, "parent_id": null, "type": 5 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["topic"], Value::Null);
    assert_eq!(patched["parent_id"], Value::Null);
    assert_eq!(patched["type"], 5);
    let res = s.patch(&format!("/channels/{text_id}"), &owner, json!({ "type": 2 })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    // Reorder: put #general into the category, at position 3.
    let (status, _) = s
        .patch(
            &format!("/guilds/{gid}/channels"),
            &owner,
            json!([{ "id": general, "position": 3, "parent_id": cat_id }]),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, g) = s.get(&format!("/channels/{general}"), &owner).await;
    assert_eq!(g["position"], 3);
    assert_eq!(g["parent_id"], cat_id.as_str());
    let res =
        s.patch(&format!("/guilds/{gid}/channels"), &owner, json!([{ "id": "1234567890123", "position": 1 }])).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    // Deleting a category frees its children; deleting a channel returns it and
    // drops its messages.
    let (status, del) = s.delete(&format!("/channels/{cat_id}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(del["id"], cat_id.as_str());
    let (_, g) = s.get(&format!("/channels/{general}"), &owner).await;
    assert_eq!(g["parent_id"], Value::Null);
    let (status, _) = s.post(&format!("/channels/{text_id}/messages"), &owner, json!({ "content": "bye" })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.delete(&format!("/channels/{text_id}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    for res in [
        s.get(&format!("/channels/{text_id}"), &owner).await,
        s.get(&format!("/channels/{text_id}/messages"), &owner).await,
        s.delete(&format!("/channels/{text_id}"), &owner).await,
    ] {
        assert_err(&res, StatusCode::NOT_FOUND, 10003);
    }
    // Deleting the system channel clears it on the guild.
    let (status, _) = s.delete(&format!("/channels/{general}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    let (_, guild) = s.get(&format!("/guilds/{gid}"), &owner).await;
    assert_eq!(guild["system_channel_id"], Value::Null);

    // Survives a restart.
    let voice_id = voice["id"].as_str().unwrap().to_string();
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (status, v) = s.get(&format!("/channels/{voice_id}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["name"], "Talk");
    let res = s.get(&format!("/channels/{text_id}"), &owner).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10003);
}

#[tokio::test]
async fn overwrites_hide_channels_and_respect_grants() {
    let s = TestServer::start().await;
    let owner = s.register("owner").await;
    let (gid, general) = s.guild(&owner, "Overwrites").await;
    let (alice, alice_id) = s.user("alice").await;
    join(&s, &owner, &general, &alice).await;

    // Deny @everyone VIEW_CHANNEL: alice loses the channel.
    let (status, body) = s
        .put(
            &format!("/channels/{general}/permissions/{gid}"),
            &owner,
            json!({ "type": 0, "deny": VIEW_CHANNEL.to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let res = s.get(&format!("/channels/{general}"), &alice).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50001);
    let (_, list) = s.get(&format!("/guilds/{gid}/channels"), &alice).await;
    assert!(!list.as_array().unwrap().iter().any(|c| c["id"] == general.as_str()));
    let (_, ch) = s.get(&format!("/channels/{general}"), &owner).await;
    assert_eq!(ch["permission_overwrites"][0]["deny"], VIEW_CHANNEL.to_string());
    assert_eq!(ch["permission_overwrites"][0]["type"], 0);

    // A member overwrite gives it back.
    let (status, _) = s
        .put(
            &format!("/channels/{general}/permissions/{alice_id}"),
            &owner,
            json!({ "type": "member", "allow": VIEW_CHANNEL }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.get(&format!("/channels/{general}"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.delete(&format!("/channels/{general}/permissions/{alice_id}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let res = s.get(&format!("/channels/{general}"), &alice).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50001);
    let (status, _) = s.delete(&format!("/channels/{general}/permissions/{gid}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Unknown targets and bad types.
    let res = s.put(&format!("/channels/{general}/permissions/1234567890123"), &owner, json!({ "type": 0 })).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10011);
    let res = s.put(&format!("/channels/{general}/permissions/1234567890123"), &owner, json!({ "type": 1 })).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10013);
    let res = s.put(&format!("/channels/{general}/permissions/{gid}"), &owner, json!({ "type": 7 })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.put(&format!("/channels/{general}/permissions/{gid}"), &owner, json!({})).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    // A channel manager with MANAGE_ROLES cannot grant what it does not have.
    let mgr = role(&s, &owner, &gid, "mgr", MANAGE_ROLES | MANAGE_CHANNELS | VIEW_CHANNEL | SEND_MESSAGES).await;
    give(&s, &owner, &gid, &alice_id, &mgr).await;
    let res = s
        .put(
            &format!("/channels/{general}/permissions/{gid}"),
            &alice,
            json!({ "type": 0, "allow": KICK_MEMBERS.to_string() }),
        )
        .await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let (status, _) = s
        .put(
            &format!("/channels/{general}/permissions/{gid}"),
            &alice,
            json!({ "type": 0, "deny": SEND_MESSAGES.to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "may deny what it has");
    let res = s
        .post(
            &format!("/guilds/{gid}/channels"),
            &alice,
            json!({ "name": "x", "permission_overwrites": [{ "id": gid, "type": 0, "allow": KICK_MEMBERS.to_string() }] }),
        )
        .await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res = s
        .post(
            &format!("/guilds/{gid}/channels"),
            &alice,
            json!({ "name": "x", "permission_overwrites": [{ "id": gid, "type": 0, "allow": MANAGE_ROLES.to_string() }] }),
        )
        .await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let (status, created) = s
        .post(
            &format!("/guilds/{gid}/channels"),
            &alice,
            json!({ "name": "private", "permission_overwrites": [{ "id": gid, "type": 0, "deny": VIEW_CHANNEL.to_string() }, { "id": alice_id, "type": 1, "allow": VIEW_CHANNEL.to_string() }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["permission_overwrites"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn roles_lifecycle_and_hierarchy() {
    let s = TestServer::start().await;
    let owner = s.register("owner").await;
    let (gid, general) = s.guild(&owner, "Roles").await;
    let (alice, alice_id) = s.user("alice").await;
    let (bob, bob_id) = s.user("bob").await;
    join(&s, &owner, &general, &alice).await;
    join(&s, &owner, &general, &bob).await;

    let (status, r) = s.post(&format!("/guilds/{gid}/roles"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["name"], "new role");
    assert_eq!(r["position"], 1);
    assert_eq!(r["managed"], false);
    let low = r["id"].as_str().unwrap().to_string();
    let (status, r) = s
        .post(&format!("/guilds/{gid}/roles"), &owner, json!({ "name": "mod", "color": 0xff0000, "hoist": true, "permissions": (MANAGE_ROLES | KICK_MEMBERS).to_string() }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["position"], 1, "new roles go just above @everyone");
    assert_eq!(r["color"], 0xff0000);
    assert_eq!(r["colors"]["primary_color"], 0xff0000);
    let modr = r["id"].as_str().unwrap().to_string();
    let (_, roles) = s.get(&format!("/guilds/{gid}/roles"), &owner).await;
    let pos =
        |roles: &Value, id: &str| roles.as_array().unwrap().iter().find(|r| r["id"] == id).unwrap()["position"].clone();
    assert_eq!(pos(&roles, &low), 2);
    assert_eq!(roles.as_array().unwrap().len(), 3);
    let (status, got) = s.get(&format!("/guilds/{gid}/roles/{modr}"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "mod");
    let res = s.get(&format!("/guilds/{gid}/roles/1234567890123"), &owner).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10011);

    // Reorder: mod to the top.
    let (status, roles) =
        s.patch(&format!("/guilds/{gid}/roles"), &owner, json!([{ "id": modr, "position": 2 }])).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    assert_eq!(pos(&roles, &modr), 2);
    assert_eq!(pos(&roles, &low), 1);

    // Alice is a mod: she manages roles below hers, not hers or above.
    give(&s, &owner, &gid, &alice_id, &modr).await;
    let (status, r) =
        s.patch(&format!("/guilds/{gid}/roles/{low}"), &alice, json!({ "name": "renamed", "mentionable": true })).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["name"], "renamed");
    assert_eq!(r["mentionable"], true);
    let res = s.patch(&format!("/guilds/{gid}/roles/{modr}"), &alice, json!({ "name": "x" })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res = s
        .patch(&format!("/guilds/{gid}/roles/{low}"), &alice, json!({ "permissions": ADMINISTRATOR.to_string() }))
        .await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res =
        s.post(&format!("/guilds/{gid}/roles"), &alice, json!({ "permissions": ADMINISTRATOR.to_string() })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res = s.patch(&format!("/guilds/{gid}/roles"), &alice, json!([{ "id": low, "position": 2 }])).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    give(&s, &alice, &gid, &bob_id, &low).await;
    let res = s.put(&format!("/guilds/{gid}/members/{bob_id}/roles/{modr}"), &alice, json!({})).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    // Bob has no MANAGE_ROLES at all.
    let res = s.post(&format!("/guilds/{gid}/roles"), &bob, json!({})).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);

    // Bad bodies.
    let res = s.post(&format!("/guilds/{gid}/roles"), &owner, json!({ "name": "n".repeat(101) })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.post(&format!("/guilds/{gid}/roles"), &owner, json!({ "color": 0x1000000 })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.post(&format!("/guilds/{gid}/roles"), &owner, json!({ "permissions": "abc" })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    // @everyone can be edited, not deleted.
    let (status, e) = s.patch(&format!("/guilds/{gid}/roles/{gid}"), &owner, json!({ "permissions": "0" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(e["permissions"], "0");
    // Alice's only role grants no VIEW_CHANNEL; bob's `low` role (created with
    // @everyone's old permissions) still does.
    let res = s.post(&format!("/channels/{general}/messages"), &alice, json!({ "content": "x" })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50001);
    let (status, _) = s.post(&format!("/channels/{general}/messages"), &bob, json!({ "content": "x" })).await;
    assert_eq!(status, StatusCode::OK);
    let res = s.delete(&format!("/guilds/{gid}/roles/{gid}"), &owner).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50028);

    // Deleting a role removes it from members and overwrites.
    let (status, _) = s
        .put(
            &format!("/channels/{general}/permissions/{low}"),
            &owner,
            json!({ "type": 0, "allow": VIEW_CHANNEL.to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.delete(&format!("/guilds/{gid}/roles/{low}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, bob_m) = s.get(&format!("/guilds/{gid}/members/{bob_id}"), &owner).await;
    assert_eq!(bob_m["roles"], json!([]));
    let (_, ch) = s.get(&format!("/channels/{general}"), &owner).await;
    assert_eq!(ch["permission_overwrites"], json!([]));
    let res = s.delete(&format!("/guilds/{gid}/roles/{low}"), &owner).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10011);
}

#[tokio::test]
async fn members_list_search_modify_kick_leave() {
    let s = TestServer::start().await;
    let (owner, owner_id) = s.user("owner").await;
    let (gid, general) = s.guild(&owner, "Members").await;
    let (alice, alice_id) = s.user("alice").await;
    let (bob, bob_id) = s.user("bob").await;
    join(&s, &owner, &general, &alice).await;
    join(&s, &owner, &general, &bob).await;

    let (status, one) = s.get(&format!("/guilds/{gid}/members"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one.as_array().unwrap().len(), 1, "limit defaults to 1");
    let (_, all) = s.get(&format!("/guilds/{gid}/members?limit=1000"), &alice).await;
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|m| m["user"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0].parse::<u64>().unwrap() < w[1].parse::<u64>().unwrap()), "sorted by id");
    for key in ["user", "roles", "joined_at", "deaf", "mute", "flags"] {
        assert!(all[0].get(key).is_some(), "member lacks {key}");
    }
    let (_, after) = s.get(&format!("/guilds/{gid}/members?limit=10&after={}", ids[0]), &alice).await;
    assert_eq!(after.as_array().unwrap().len(), 2);
    let res = s.get(&format!("/guilds/{gid}/members?limit=1001"), &alice).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.get(&format!("/guilds/{gid}/members?limit=0"), &alice).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    let (status, found) = s.get(&format!("/guilds/{gid}/members/search?query=ALI&limit=10"), &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["user"]["id"], alice_id.as_str());
    let res = s.get(&format!("/guilds/{gid}/members/search"), &bob).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    let (status, m) = s.get(&format!("/guilds/{gid}/members/{alice_id}"), &bob).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["user"]["username"], "alice");
    let res = s.get(&format!("/guilds/{gid}/members/1234567890123"), &bob).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10007);
    let stranger = s.register("stranger").await;
    let res = s.get(&format!("/guilds/{gid}/members/{alice_id}"), &stranger).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10004);
    let (status, me) = s.get(&format!("/users/@me/guilds/{gid}/member"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["id"], alice_id.as_str());

    // Own nickname (CHANGE_NICKNAME is in @everyone's defaults).
    let (status, me) = s.patch(&format!("/guilds/{gid}/members/@me"), &alice, json!({ "nick": "Ali" })).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["nick"], "Ali");
    let (_, found) = s.get(&format!("/guilds/{gid}/members/search?query=al"), &bob).await;
    assert_eq!(found[0]["nick"], "Ali");
    let res = s.patch(&format!("/guilds/{gid}/members/@me"), &alice, json!({ "nick": "n".repeat(33) })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    // Someone else's needs MANAGE_NICKNAMES and rank.
    let res = s.patch(&format!("/guilds/{gid}/members/{alice_id}"), &bob, json!({ "nick": "x" })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let nicks = role(&s, &owner, &gid, "nicks", MANAGE_NICKNAMES | KICK_MEMBERS | MODERATE_MEMBERS).await;
    give(&s, &owner, &gid, &bob_id, &nicks).await;
    let (status, m) = s.patch(&format!("/guilds/{gid}/members/{alice_id}"), &bob, json!({ "nick": null })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["nick"], Value::Null);
    let res = s.patch(&format!("/guilds/{gid}/members/{owner_id}"), &bob, json!({ "nick": "boss" })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);

    // Timeouts: ≤ 28 days, needs MODERATE_MEMBERS, a timed-out member cannot send.
    let soon = "2999-01-01T00:00:00+00:00";
    let res = s
        .patch(&format!("/guilds/{gid}/members/{alice_id}"), &bob, json!({ "communication_disabled_until": soon }))
        .await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s
        .patch(
            &format!("/guilds/{gid}/members/{alice_id}"),
            &bob,
            json!({ "communication_disabled_until": "tomorrow" }),
        )
        .await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let until = timestamp_in(3600);
    let (status, m) = s
        .patch(&format!("/guilds/{gid}/members/{alice_id}"), &bob, json!({ "communication_disabled_until": until }))
        .await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert!(m["communication_disabled_until"].is_string());
    let res = s.post(&format!("/channels/{general}/messages"), &alice, json!({ "content": "x" })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let (status, _) = s
        .patch(&format!("/guilds/{gid}/members/{alice_id}"), &bob, json!({ "communication_disabled_until": null }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.post(&format!("/channels/{general}/messages"), &alice, json!({ "content": "x" })).await;
    assert_eq!(status, StatusCode::OK);
    let res = s
        .patch(&format!("/guilds/{gid}/members/{owner_id}"), &bob, json!({ "communication_disabled_until": until }))
        .await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);

    // mute/deaf need their permissions; voice moves need a voice connection.
    let res = s.patch(&format!("/guilds/{gid}/members/{alice_id}"), &bob, json!({ "mute": true })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let (status, m) =
        s.patch(&format!("/guilds/{gid}/members/{alice_id}"), &owner, json!({ "mute": true, "deaf": true })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((m["mute"].clone(), m["deaf"].clone()), (json!(true), json!(true)));
    let res = s.patch(&format!("/guilds/{gid}/members/{alice_id}"), &owner, json!({ "channel_id": general })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 40032);

    // Roles through PATCH: full list, unknown ids rejected.
    let r1 = role(&s, &owner, &gid, "r1", 0).await;
    let (status, m) = s.patch(&format!("/guilds/{gid}/members/{alice_id}"), &owner, json!({ "roles": [r1] })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["roles"], json!([r1]));
    let res =
        s.patch(&format!("/guilds/{gid}/members/{alice_id}"), &owner, json!({ "roles": ["1234567890123"] })).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    let res = s.put(&format!("/guilds/{gid}/members/{alice_id}/roles/1234567890123"), &owner, json!({})).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10011);
    let res = s.put(&format!("/guilds/{gid}/members/1234567890123/roles/{r1}"), &owner, json!({})).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10007);
    let (status, _) = s.delete(&format!("/guilds/{gid}/members/{alice_id}/roles/{r1}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, m) = s.get(&format!("/guilds/{gid}/members/{alice_id}"), &owner).await;
    assert_eq!(m["roles"], json!([]));

    // Kick: needs KICK_MEMBERS and rank; the owner cannot be kicked.
    let res = s.delete(&format!("/guilds/{gid}/members/{bob_id}"), &alice).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res = s.delete(&format!("/guilds/{gid}/members/{owner_id}"), &bob).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let (status, _) = s.delete(&format!("/guilds/{gid}/members/{alice_id}"), &bob).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let res = s.get(&format!("/guilds/{gid}"), &alice).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10004);
    let res = s.delete(&format!("/guilds/{gid}/members/{alice_id}"), &bob).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10007);

    // Leave: members may, the owner may not.
    let res = s.delete(&format!("/users/@me/guilds/{gid}"), &owner).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50055);
    let (status, _) = s.delete(&format!("/users/@me/guilds/{gid}"), &bob).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, mine) = s.get("/users/@me/guilds", &bob).await;
    assert_eq!(mine, json!([]));
    let res = s.delete(&format!("/users/@me/guilds/{gid}"), &bob).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10004);

    // Membership changes survive a restart.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (_, all) = s.get(&format!("/guilds/{gid}/members?limit=10"), &owner).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
}

/// An ISO timestamp `secs` from now.
fn timestamp_in(secs: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + secs;
    let (days, rem) = (now / 86_400, now % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00", rem / 3600, rem % 3600 / 60, rem % 60)
}

const BAN_MEMBERS: u64 = 1 << 2;
const MANAGE_GUILD: u64 = 1 << 5;

/// PUT a ban with an audit-log reason header.
async fn put_ban(s: &TestServer, token: &str, gid: &str, uid: &str, body: Value) -> (StatusCode, Value) {
    let res = s
        .http
        .put(format!("{}/guilds/{gid}/bans/{uid}", s.base))
        .header("Authorization", token)
        .header("X-Audit-Log-Reason", "spam%20and%20more")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn bans_delete_recent_messages_and_block_rejoin() {
    let s = TestServer::start().await;
    let owner = s.register("owner").await;
    let (gid, general) = s.guild(&owner, "Bans").await;
    let (alice, alice_id) = s.user("alice").await;
    let (bob, bob_id) = s.user("bob").await;
    let (carol, carol_id) = s.user("carol").await;
    let (_, dave_id) = s.user("dave").await;
    for t in [&alice, &bob, &carol] {
        join(&s, &owner, &general, t).await;
    }
    for i in 0..3 {
        let (status, _) =
            s.post(&format!("/channels/{general}/messages"), &carol, json!({ "content": format!("c{i}") })).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = s.post(&format!("/channels/{general}/messages"), &bob, json!({ "content": "b" })).await;
    assert_eq!(status, StatusCode::OK);

    let res = s.get(&format!("/guilds/{gid}/bans"), &alice).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res = put_ban(&s, &alice, &gid, &carol_id, json!({})).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let banner = role(&s, &owner, &gid, "banner", BAN_MEMBERS).await;
    give(&s, &owner, &gid, &alice_id, &banner).await;

    for body in [
        json!({ "delete_message_days": 8 }),
        json!({ "delete_message_seconds": 604801 }),
        json!({ "delete_message_seconds": -1 }),
    ] {
        let res = put_ban(&s, &alice, &gid, &carol_id, body).await;
        assert_err(&res, StatusCode::BAD_REQUEST, 50035);
    }
    let res = put_ban(&s, &alice, &gid, "1234567890123", json!({})).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10013);

    let (status, body) = put_ban(&s, &alice, &gid, &carol_id, json!({ "delete_message_seconds": 3600 })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, msgs) = s.get(&format!("/channels/{general}/messages"), &owner).await;
    let contents: Vec<&str> = msgs.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["b"], "the banned user's recent messages are gone");
    let res = s.get(&format!("/guilds/{gid}"), &carol).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10004);
    let (status, ban) = s.get(&format!("/guilds/{gid}/bans/{carol_id}"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ban["user"]["id"], carol_id.as_str());
    assert_eq!(ban["reason"], "spam and more");
    // Banning again is harmless.
    let (status, _) = put_ban(&s, &alice, &gid, &carol_id, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The banned user cannot come back through an invite.
    let (_, inv) = s.post(&format!("/channels/{general}/invites"), &owner, json!({})).await;
    let code = inv["code"].as_str().unwrap();
    let res = s.post(&format!("/invites/{code}"), &carol, json!({})).await;
    assert_err(&res, StatusCode::FORBIDDEN, 40007);

    // Hierarchy: not the owner, not oneself, not someone ranked at or above.
    let res = put_ban(&s, &alice, &gid, &s_owner_id(&s, &owner).await, json!({})).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res = put_ban(&s, &alice, &gid, &alice_id, json!({})).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let top = role(&s, &owner, &gid, "top", 0).await;
    let (status, _) = s.patch(&format!("/guilds/{gid}/roles"), &owner, json!([{ "id": top, "position": 5 }])).await;
    assert_eq!(status, StatusCode::OK);
    give(&s, &owner, &gid, &bob_id, &top).await;
    let res = put_ban(&s, &alice, &gid, &bob_id, json!({})).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    // A user who is not a member can be banned ahead of time.
    let (status, _) = put_ban(&s, &alice, &gid, &dave_id, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Listing and paging, by user id.
    let (status, bans) = s.get(&format!("/guilds/{gid}/bans"), &alice).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = bans.as_array().unwrap().iter().map(|b| b["user"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [carol_id.as_str(), dave_id.as_str()]);
    let (_, first) = s.get(&format!("/guilds/{gid}/bans?limit=1"), &alice).await;
    assert_eq!(first[0]["user"]["id"], carol_id.as_str());
    let (_, after) = s.get(&format!("/guilds/{gid}/bans?after={carol_id}"), &alice).await;
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_eq!(after[0]["user"]["id"], dave_id.as_str());
    let (_, before) = s.get(&format!("/guilds/{gid}/bans?before={dave_id}"), &alice).await;
    assert_eq!(before[0]["user"]["id"], carol_id.as_str());
    let res = s.get(&format!("/guilds/{gid}/bans?limit=1001"), &alice).await;
    assert_err(&res, StatusCode::BAD_REQUEST, 50035);

    // Unban; a second unban is 10026; the user may rejoin.
    let (status, _) = s.delete(&format!("/guilds/{gid}/bans/{carol_id}"), &alice).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for res in [
        s.delete(&format!("/guilds/{gid}/bans/{carol_id}"), &alice).await,
        s.get(&format!("/guilds/{gid}/bans/{carol_id}"), &alice).await,
    ] {
        assert_err(&res, StatusCode::NOT_FOUND, 10026);
    }
    let (status, _) = s.post(&format!("/invites/{code}"), &carol, json!({})).await;
    assert_eq!(status, StatusCode::OK);

    // Bans survive a restart.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (_, bans) = s.get(&format!("/guilds/{gid}/bans"), &alice).await;
    assert_eq!(bans.as_array().unwrap().len(), 1);
}

async fn s_owner_id(s: &TestServer, token: &str) -> String {
    let (_, me) = s.get("/users/@me", token).await;
    me["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn guild_modify_transfer_and_delete() {
    let s = TestServer::start().await;
    let (owner, owner_id) = s.user("owner").await;
    let (gid, general) = s.guild(&owner, "Settings").await;
    let (alice, alice_id) = s.user("alice").await;
    join(&s, &owner, &general, &alice).await;
    let (_, channels) = s.get(&format!("/guilds/{gid}/channels"), &owner).await;
    let voice =
        channels.as_array().unwrap().iter().find(|c| c["type"] == 2).unwrap()["id"].as_str().unwrap().to_string();

    let (status, g) = s
        .patch(
            &format!("/guilds/{gid}"),
            &owner,
            json!({ "name": "Renamed", "description": "about", "afk_channel_id": voice, "afk_timeout": 60,
                    "verification_level": 2, "system_channel_id": null, "icon": "data:image/png;base64,iVBORw0KGgo=" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(g["name"], "Renamed");
    assert_eq!(g["description"], "about");
    assert_eq!(g["afk_channel_id"], voice.as_str());
    assert_eq!(g["afk_timeout"], 60);
    assert_eq!(g["verification_level"], 2);
    assert_eq!(g["system_channel_id"], Value::Null);
    assert!(g["icon"].as_str().is_some_and(|h| h.len() == 32), "{g}");
    let (_, g) = s.get(&format!("/guilds/{gid}"), &alice).await;
    assert_eq!(g["name"], "Renamed");

    for (body, field) in [
        (json!({ "name": "a" }), "name"),
        (json!({ "afk_channel_id": general }), "afk_channel_id"),
        (json!({ "system_channel_id": voice }), "system_channel_id"),
        (json!({ "system_channel_id": "1234567890123" }), "system_channel_id"),
        (json!({ "afk_timeout": 61 }), "afk_timeout"),
        (json!({ "verification_level": 5 }), "verification_level"),
        (json!({ "icon": "not an image" }), "icon"),
        (json!({ "description": "d".repeat(121) }), "description"),
        (json!({ "owner_id": "1234567890123" }), "owner_id"),
    ] {
        let (status, err) = s.patch(&format!("/guilds/{gid}"), &owner, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {err}");
        assert!(err["errors"][field].is_object(), "{body} → {err}");
    }

    let res = s.patch(&format!("/guilds/{gid}"), &alice, json!({ "name": "Mine" })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let stranger = s.register("stranger").await;
    let res = s.patch(&format!("/guilds/{gid}"), &stranger, json!({ "name": "Mine" })).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10004);
    let managers = role(&s, &owner, &gid, "managers", MANAGE_GUILD).await;
    give(&s, &owner, &gid, &alice_id, &managers).await;
    let (status, _) = s.patch(&format!("/guilds/{gid}"), &alice, json!({ "name": "Alice's" })).await;
    assert_eq!(status, StatusCode::OK);
    // Only the owner hands the guild over, and only the owner deletes it.
    let res = s.patch(&format!("/guilds/{gid}"), &alice, json!({ "owner_id": alice_id })).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let res = s.delete(&format!("/guilds/{gid}"), &alice).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let (status, g) = s.patch(&format!("/guilds/{gid}"), &owner, json!({ "owner_id": alice_id })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(g["owner_id"], alice_id.as_str());
    let res = s.delete(&format!("/guilds/{gid}"), &owner).await;
    assert_err(&res, StatusCode::FORBIDDEN, 50013);
    let (_, mine) = s.get("/users/@me/guilds", &owner).await;
    assert_eq!(mine[0]["owner"], false);
    let _ = owner_id;

    let (_, inv) = s.post(&format!("/channels/{general}/invites"), &alice, json!({})).await;
    let code = inv["code"].as_str().unwrap().to_string();
    let (status, _) = s.delete(&format!("/guilds/{gid}"), &alice).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for t in [&owner, &alice] {
        let res = s.get(&format!("/guilds/{gid}"), t).await;
        assert_err(&res, StatusCode::NOT_FOUND, 10004);
        let (_, mine) = s.get("/users/@me/guilds", t).await;
        assert_eq!(mine, json!([]));
    }
    let res = s.get(&format!("/channels/{general}"), &alice).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10003);
    let res = s.get(&format!("/invites/{code}"), &alice).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10006);

    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let res = s.get(&format!("/guilds/{gid}"), &alice).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10004);
    let res = s.get(&format!("/channels/{general}"), &alice).await;
    assert_err(&res, StatusCode::NOT_FOUND, 10003);
}
