//! Threads over REST: starting from a message and on their own, one thread per
//! message, messaging inside, thread members, private thread visibility and the
//! active list.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::messages::{send, two_members};

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn thread_from_message_flow() {
    let s = TestServer::start().await;
    let (owner, member, member_id, channel) = two_members(&s).await;
    let (_, owner_me) = s.get("/users/@me", &owner).await;
    let owner_id = owner_me["id"].as_str().unwrap();
    let m = send(&s, &member, &channel, "let's discuss").await;
    let mid = m["id"].as_str().unwrap();
    let path = format!("/channels/{channel}/messages/{mid}/threads");

    let (status, body) = s.post(&path, &owner, json!({ "name": "" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["name"]["_errors"][0]["code"], "BASE_TYPE_BAD_LENGTH", "{body}");
    let (status, body) = s.post(&path, &owner, json!({ "name": "x", "auto_archive_duration": 5 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["auto_archive_duration"].is_object(), "{body}");

    let (status, thread) = s.post(&path, &owner, json!({ "name": "Discussion", "auto_archive_duration": 60 })).await;
    assert_eq!(status, StatusCode::CREATED, "{thread}");
    let tid = thread["id"].as_str().unwrap();
    assert_eq!(tid, mid, "a message's thread takes the message's id");
    assert_eq!(thread["type"], 11);
    assert_eq!(thread["name"], "Discussion");
    assert_eq!(thread["parent_id"], channel.as_str());
    assert_eq!(thread["owner_id"], owner_id);
    assert_eq!(thread["member_count"], 1);
    assert_eq!(thread["thread_metadata"]["archived"], false);
    assert_eq!(thread["thread_metadata"]["locked"], false);
    assert_eq!(thread["thread_metadata"]["auto_archive_duration"], 60);
    assert!(thread["thread_metadata"]["archive_timestamp"].is_string());

    let (status, body) = s.post(&path, &owner, json!({ "name": "Again" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 160004);

    // The starter message now points at its thread.
    let (_, starter) = s.get(&format!("/channels/{channel}/messages/{mid}"), &owner).await;
    assert_eq!(starter["thread"]["id"], tid);
    assert_eq!(starter["flags"].as_u64().unwrap() & (1 << 5), 1 << 5);

    // Messages in a thread work like any channel; sending joins the thread.
    let reply = send(&s, &member, tid, "in the thread").await;
    assert_eq!(reply["channel_id"], tid);
    let (_, history) = s.get(&format!("/channels/{tid}/messages"), &owner).await;
    assert_eq!(history[0]["content"], "in the thread");
    let (status, members) = s.get(&format!("/channels/{tid}/thread-members"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    let mut users: Vec<&str> = members.as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    users.sort_unstable();
    let mut expected = vec![owner_id, member_id.as_str()];
    expected.sort_unstable();
    assert_eq!(users, expected);
    assert_eq!(members[0]["id"], tid);
    assert!(members[0]["join_timestamp"].is_string());

    // Leave, rejoin, and look oneself up.
    let (status, _) = s.delete(&format!("/channels/{tid}/thread-members/@me"), &member).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.get(&format!("/channels/{tid}/thread-members/{member_id}"), &owner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10007);
    let (status, _) = s.put(&format!("/channels/{tid}/thread-members/@me"), &member, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, tm) = s.get(&format!("/channels/{tid}/thread-members/@me?with_member=true"), &member).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tm["user_id"], member_id.as_str());
    assert_eq!(tm["member"]["user"]["id"], member_id.as_str());

    // Removing someone else needs MANAGE_THREADS.
    let (status, body) = s.delete(&format!("/channels/{tid}/thread-members/{owner_id}"), &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);
    let (status, _) = s.delete(&format!("/channels/{tid}/thread-members/{member_id}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.delete(&format!("/channels/{tid}/thread-members/{member_id}"), &owner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10007);

    // The guild's active threads include it, with the caller's membership.
    let (_, g) = s.get("/users/@me/guilds", &owner).await;
    let gid = g[0]["id"].as_str().unwrap();
    let (status, active) = s.get(&format!("/guilds/{gid}/threads/active"), &owner).await;
    assert_eq!(status, StatusCode::OK, "{active}");
    assert_eq!(ids(&active["threads"]), [tid]);
    assert_eq!(active["members"][0]["user_id"], owner_id);
    let (_, archived) = s.get(&format!("/channels/{channel}/threads/archived/public"), &owner).await;
    assert_eq!(archived["threads"], json!([]));
    assert_eq!(archived["has_more"], false);

    // Unknown message → 10008; a thread of a thread is not a thing.
    let (status, body) =
        s.post(&format!("/channels/{channel}/messages/1234567890123/threads"), &owner, json!({ "name": "n" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10008);
    let rid = reply["id"].as_str().unwrap();
    let (status, body) =
        s.post(&format!("/channels/{tid}/messages/{rid}/threads"), &owner, json!({ "name": "n" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50024);
}

#[tokio::test]
async fn private_and_public_threads_without_message() {
    let s = TestServer::start().await;
    let (owner, member, member_id, channel) = two_members(&s).await;
    let (outsider, outsider_id) = s.user("outsider").await;
    crate::messages::join(&s, &owner, &channel, &outsider).await;
    let path = format!("/channels/{channel}/threads");

    let (status, body) = s.post(&path, &member, json!({ "name": "t", "type": 0 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["type"].is_object(), "{body}");
    let (status, body) = s.post(&path, &member, json!({ "name": "t", "type": 10 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50024);

    // Private (the default type): only members and thread managers see it.
    let (status, private) = s.post(&path, &member, json!({ "name": "secret" })).await;
    assert_eq!(status, StatusCode::CREATED, "{private}");
    assert_eq!(private["type"], 12);
    assert_eq!(private["thread_metadata"]["invitable"], true);
    let pid = private["id"].as_str().unwrap();
    send(&s, &member, pid, "psst").await;
    let (status, body) = s.get(&format!("/channels/{pid}/messages"), &outsider).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50001);
    let (status, _) = s.put(&format!("/channels/{pid}/thread-members/@me"), &outsider, json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.get(&format!("/channels/{pid}/messages"), &owner).await;
    assert_eq!(status, StatusCode::OK, "the owner has MANAGE_THREADS");

    // A member invites the outsider, who can then read.
    let (status, body) = s.put(&format!("/channels/{pid}/thread-members/{outsider_id}"), &member, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, history) = s.get(&format!("/channels/{pid}/messages"), &outsider).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history[0]["content"], "psst");
    let (_, list) = s.get(&format!("/channels/{pid}/thread-members"), &outsider).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    // The creator of a private thread may remove members.
    let (status, _) = s.delete(&format!("/channels/{pid}/thread-members/{outsider_id}"), &member).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.get(&format!("/channels/{pid}/messages"), &outsider).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Public: a THREAD_CREATED notice lands in the parent.
    let (status, public) = s.post(&path, &member, json!({ "name": "open", "type": 11 })).await;
    assert_eq!(status, StatusCode::CREATED, "{public}");
    let pubid = public["id"].as_str().unwrap();
    let (_, parent) = s.get(&format!("/channels/{channel}/messages?limit=1"), &owner).await;
    assert_eq!(parent[0]["type"], 18);
    assert_eq!(parent[0]["content"], "open");
    assert_eq!(parent[0]["message_reference"]["channel_id"], pubid);

    // Active threads as each user sees them.
    let (_, g) = s.get("/users/@me/guilds", &owner).await;
    let gid = g[0]["id"].as_str().unwrap();
    let (_, as_outsider) = s.get(&format!("/guilds/{gid}/threads/active"), &outsider).await;
    assert_eq!(ids(&as_outsider["threads"]), [pubid]);
    assert_eq!(as_outsider["members"], json!([]));
    let (_, as_member) = s.get(&format!("/guilds/{gid}/threads/active"), &member).await;
    let mut seen = ids(&as_member["threads"]);
    seen.sort();
    let mut expected = vec![pid.to_string(), pubid.to_string()];
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(as_member["members"].as_array().unwrap().len(), 2);
    let _ = member_id;

    // Thread routes on a channel that is not a thread.
    let (status, body) = s.get(&format!("/channels/{channel}/thread-members"), &owner).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50024);
}
