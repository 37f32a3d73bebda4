//! Single messages over REST: fetch, edit, delete, bulk delete, typing and
//! replies, with Discord's permission rules and error codes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;

/// Creates an invite to `channel` as `owner` and has `token` accept it.
pub async fn join(s: &TestServer, owner: &str, channel: &str, token: &str) {
    let (status, invite) = s.post(&format!("/channels/{channel}/invites"), owner, json!({})).await;
    assert!(status.is_success(), "{status} {invite}");
    let code = invite["code"].as_str().unwrap();
    let (status, body) = s.post(&format!("/invites/{code}"), token, json!({})).await;
    assert!(status.is_success(), "{status} {body}");
}

pub async fn send(s: &TestServer, token: &str, channel: &str, content: &str) -> Value {
    let (status, m) = s.post(&format!("/channels/{channel}/messages"), token, json!({ "content": content })).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    m
}

/// An owner with a guild, and a second member; returns (owner, member, channel).
pub async fn two_members(s: &TestServer) -> (String, String, String, String) {
    let (owner, _) = s.user("owner").await;
    let (member, member_id) = s.user("member").await;
    let (_, channel) = s.guild(&owner, "Test Guild").await;
    join(s, &owner, &channel, &member).await;
    (owner, member, member_id, channel)
}

#[tokio::test]
async fn get_message_and_unknown_ids() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;
    let m = send(&s, &owner, &channel, "hello").await;
    let id = m["id"].as_str().unwrap();

    let (status, got) = s.get(&format!("/channels/{channel}/messages/{id}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["content"], "hello");
    assert_eq!(got["id"], m["id"]);
    assert_eq!(got["edited_timestamp"], Value::Null);

    let (status, body) = s.get(&format!("/channels/{channel}/messages/1234567890123"), &owner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10008);

    let (status, body) = s.get(&format!("/channels/{channel}/messages/notanid"), &owner).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);

    let (status, body) = s.get(&format!("/channels/1234567890123/messages/{id}"), &owner).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10003);

    // Someone outside the guild cannot read it.
    let (stranger, _) = s.user("stranger").await;
    let (status, body) = s.get(&format!("/channels/{channel}/messages/{id}"), &stranger).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50001);
}

#[tokio::test]
async fn edit_by_author_sets_edited_timestamp_and_validates() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;
    let m = send(&s, &owner, &channel, "first").await;
    let path = format!("/channels/{channel}/messages/{}", m["id"].as_str().unwrap());

    let (status, edited) = s.patch(&path, &owner, json!({ "content": "second" })).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["content"], "second");
    assert!(edited["edited_timestamp"].is_string(), "{edited}");
    assert_eq!(edited["timestamp"], m["timestamp"]);

    let (_, got) = s.get(&path, &owner).await;
    assert_eq!(got["content"], "second");
    assert_eq!(got["edited_timestamp"], edited["edited_timestamp"]);

    let (status, body) = s.patch(&path, &owner, json!({ "content": "x".repeat(2001) })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["content"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH", "{body}");

    // Clearing the only content leaves an empty message.
    let (status, body) = s.patch(&path, &owner, json!({ "content": null })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50006);

    // Embeds replace content as the message's substance.
    let (status, body) = s.patch(&path, &owner, json!({ "content": "", "embeds": [{ "title": "t" }] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["embeds"][0]["title"], "t");
    assert_eq!(body["content"], "");

    let (status, body) = s.patch(&path, &owner, json!({ "embeds": [1] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], 50035);

    // SUPPRESS_EMBEDS toggles; other flag bits are ignored.
    let (status, body) = s.patch(&path, &owner, json!({ "flags": 4 | 1 })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["flags"], 4);
    let (_, body) = s.patch(&path, &owner, json!({ "flags": 0 })).await;
    assert_eq!(body["flags"], 0);

    let unknown = format!("/channels/{channel}/messages/1234567890123");
    let (status, body) = s.patch(&unknown, &owner, json!({ "content": "x" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10008);
}

#[tokio::test]
async fn edit_of_others_messages() {
    let s = TestServer::start().await;
    let (owner, member, _, channel) = two_members(&s).await;
    let mine = send(&s, &member, &channel, "member's").await;
    let path = format!("/channels/{channel}/messages/{}", mine["id"].as_str().unwrap());

    // Even the owner cannot change someone else's content.
    let (status, body) = s.patch(&path, &owner, json!({ "content": "hijacked" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50005);

    // MANAGE_MESSAGES may suppress embeds on it.
    let (status, body) = s.patch(&path, &owner, json!({ "flags": 4 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["flags"], 4);
    assert_eq!(body["content"], "member's");
    assert_eq!(body["edited_timestamp"], Value::Null);

    // A plain member may not touch the owner's message at all.
    let theirs = send(&s, &owner, &channel, "owner's").await;
    let path = format!("/channels/{channel}/messages/{}", theirs["id"].as_str().unwrap());
    let (status, body) = s.patch(&path, &member, json!({ "flags": 4 })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);
    let (status, body) = s.patch(&path, &member, json!({ "content": "x" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50005);
}

#[tokio::test]
async fn delete_own_and_others() {
    let s = TestServer::start().await;
    let (owner, member, _, channel) = two_members(&s).await;
    let by_owner = send(&s, &owner, &channel, "owner's").await;
    let by_member = send(&s, &member, &channel, "member's").await;
    let owner_path = format!("/channels/{channel}/messages/{}", by_owner["id"].as_str().unwrap());
    let member_path = format!("/channels/{channel}/messages/{}", by_member["id"].as_str().unwrap());

    // Without MANAGE_MESSAGES, only one's own.
    let (status, body) = s.delete(&owner_path, &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);

    let (status, body) = s.delete(&member_path, &member).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, body) = s.get(&member_path, &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10008);
    let (status, body) = s.delete(&member_path, &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10008);

    // The owner (all permissions) may delete anyone's.
    let again = send(&s, &member, &channel, "again").await;
    let again_path = format!("/channels/{channel}/messages/{}", again["id"].as_str().unwrap());
    let (status, _) = s.delete(&again_path, &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, history) = s.get(&format!("/channels/{channel}/messages"), &owner).await;
    let contents: Vec<&str> = history.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert!(contents.contains(&"owner's"));
    assert!(!contents.contains(&"member's") && !contents.contains(&"again"), "{contents:?}");
}

/// A snowflake from `days` ago.
fn old_snowflake(days: u64) -> String {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let discord_epoch = 1_420_070_400_000u64;
    (((now_ms - days * 86_400_000) - discord_epoch) << 22).to_string()
}

#[tokio::test]
async fn bulk_delete_rules() {
    let s = TestServer::start().await;
    let (owner, member, _, channel) = two_members(&s).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let by = if i % 2 == 0 { &owner } else { &member };
        ids.push(send(&s, by, &channel, &format!("m{i}")).await["id"].as_str().unwrap().to_string());
    }
    let path = format!("/channels/{channel}/messages/bulk-delete");

    let (status, body) = s.post(&path, &owner, json!({ "messages": [ids[0]] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);
    assert_eq!(body["errors"]["messages"]["_errors"][0]["code"], "BASE_TYPE_MIN_LENGTH", "{body}");

    let many: Vec<String> = (0..101).map(|i| (1_000_000_000_000u64 + i).to_string()).collect();
    let (status, body) = s.post(&path, &owner, json!({ "messages": many })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["messages"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH", "{body}");

    let (status, body) = s.post(&path, &owner, json!({ "messages": [ids[0], ids[0]] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035, "{body}");

    let (status, body) = s.post(&path, &owner, json!({ "messages": [ids[0], old_snowflake(15)] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50034, "{body}");

    let (status, body) = s.post(&path, &owner, json!({ "messages": ["x", "y"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);

    let (status, body) = s.post(&path, &owner, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["messages"]["_errors"][0]["code"], "BASE_TYPE_REQUIRED", "{body}");

    // MANAGE_MESSAGES is required, even for one's own messages.
    let (status, body) = s.post(&path, &member, json!({ "messages": [ids[1], ids[3]] })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);

    // Unknown (but recent) ids are skipped; the rest go.
    let (status, body) = s.post(&path, &owner, json!({ "messages": [ids[0], ids[1], ids[2], old_snowflake(1)] })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, history) = s.get(&format!("/channels/{channel}/messages"), &owner).await;
    let contents: Vec<&str> = history.as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, ["m4", "m3"]);
}

#[tokio::test]
async fn typing_needs_send_messages() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;
    let (status, body) = s.post(&format!("/channels/{channel}/typing"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    let (stranger, _) = s.user("stranger").await;
    let (status, body) = s.post(&format!("/channels/{channel}/typing"), &stranger, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50001);
    let (status, body) = s.post("/channels/1234567890123/typing", &owner, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10003);
}

#[tokio::test]
async fn replies_reference_and_mention_the_author() {
    let s = TestServer::start().await;
    let (owner, member, member_id, channel) = two_members(&s).await;
    let original = send(&s, &member, &channel, "question").await;
    let oid = original["id"].as_str().unwrap();
    let msgs = format!("/channels/{channel}/messages");

    let (status, reply) =
        s.post(&msgs, &owner, json!({ "content": "answer", "message_reference": { "message_id": oid } })).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["type"], 19);
    assert_eq!(reply["message_reference"]["message_id"], oid);
    assert_eq!(reply["message_reference"]["channel_id"], channel.as_str());
    assert_eq!(reply["referenced_message"]["content"], "question");
    assert_eq!(reply["mentions"][0]["id"], member_id.as_str());

    // replied_user: false → no ping.
    let (_, quiet) = s
        .post(
            &msgs,
            &owner,
            json!({ "content": "quiet", "message_reference": { "message_id": oid },
                    "allowed_mentions": { "parse": [], "replied_user": false } }),
        )
        .await;
    assert_eq!(quiet["mentions"], json!([]));

    // Unknown reference: 50035 unless fail_if_not_exists is false.
    let (status, body) =
        s.post(&msgs, &owner, json!({ "content": "x", "message_reference": { "message_id": "1234567890123" } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);
    let (status, body) = s
        .post(
            &msgs,
            &owner,
            json!({ "content": "x", "message_reference": { "message_id": "1234567890123", "fail_if_not_exists": false } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["type"], 0);
}
