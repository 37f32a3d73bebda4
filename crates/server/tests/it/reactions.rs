//! Reactions and pins over REST: counts, `me`, listing, removal rules, limits,
//! pin order, the pin system message and both pin path forms.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::messages::{send, two_members};

const THUMBS: &str = "%F0%9F%91%8D"; // 👍
const HEART: &str = "%E2%9D%A4%EF%B8%8F"; // ❤️

fn reactions_of(m: &Value) -> Vec<(String, u64, bool)> {
    m["reactions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    (
                        r["emoji"]["name"].as_str().unwrap().to_string(),
                        r["count"].as_u64().unwrap(),
                        r["me"].as_bool().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn add_list_and_remove_reactions() {
    let s = TestServer::start().await;
    let (owner, member, member_id, channel) = two_members(&s).await;
    let m = send(&s, &owner, &channel, "react to me").await;
    let msg = format!("/channels/{channel}/messages/{}", m["id"].as_str().unwrap());

    let (status, body) = s.put(&format!("{msg}/reactions/{THUMBS}/@me"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Idempotent.
    let (status, _) = s.put(&format!("{msg}/reactions/{THUMBS}/@me"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.put(&format!("{msg}/reactions/{THUMBS}/@me"), &member, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.put(&format!("{msg}/reactions/{HEART}/@me"), &member, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, as_owner) = s.get(&msg, &owner).await;
    assert_eq!(reactions_of(&as_owner), [("👍".into(), 2, true), ("❤️".into(), 1, false)]);
    assert_eq!(as_owner["reactions"][0]["count_details"], json!({ "burst": 0, "normal": 2 }));
    assert_eq!(as_owner["reactions"][0]["emoji"], json!({ "id": null, "name": "👍" }));
    let (_, as_member) = s.get(&msg, &member).await;
    assert_eq!(reactions_of(&as_member), [("👍".into(), 2, true), ("❤️".into(), 1, true)]);

    // Who reacted, by id, with paging.
    let (status, users) = s.get(&format!("{msg}/reactions/{THUMBS}"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    let (_, page) = s.get(&format!("{msg}/reactions/{THUMBS}?limit=1"), &owner).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], ids[0]);
    let (_, page) = s.get(&format!("{msg}/reactions/{THUMBS}?after={}", ids[0]), &owner).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], ids[1]);
    let (_, burst) = s.get(&format!("{msg}/reactions/{THUMBS}?type=1"), &owner).await;
    assert_eq!(burst, json!([]));
    let (status, body) = s.get(&format!("{msg}/reactions/{THUMBS}?limit=101"), &owner).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);
    // An emoji nobody used: an empty list.
    let (_, none) = s.get(&format!("{msg}/reactions/%F0%9F%98%80"), &owner).await;
    assert_eq!(none, json!([]));

    // A member may not remove someone else's reaction; the owner may.
    let (status, body) = s.delete(&format!("{msg}/reactions/{HEART}/{}", ids[0]), &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);
    let (status, _) = s.delete(&format!("{msg}/reactions/{HEART}/{member_id}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.delete(&format!("{msg}/reactions/{THUMBS}/@me"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = s.get(&msg, &owner).await;
    assert_eq!(reactions_of(&after), [("👍".into(), 1, false)]);

    // Clearing one emoji or all needs MANAGE_MESSAGES.
    let (status, body) = s.delete(&format!("{msg}/reactions/{THUMBS}"), &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);
    let (status, body) = s.delete(&format!("{msg}/reactions"), &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);
    let (status, _) = s.delete(&format!("{msg}/reactions/{THUMBS}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, cleared) = s.get(&msg, &owner).await;
    assert!(cleared.get("reactions").is_none(), "{cleared}");

    s.put(&format!("{msg}/reactions/{THUMBS}/@me"), &member, json!(null)).await;
    s.put(&format!("{msg}/reactions/{HEART}/@me"), &owner, json!(null)).await;
    let (status, _) = s.delete(&format!("{msg}/reactions"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, cleared) = s.get(&msg, &owner).await;
    assert!(cleared.get("reactions").is_none(), "{cleared}");
}

#[tokio::test]
async fn reaction_errors_and_limit() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;
    let m = send(&s, &owner, &channel, "x").await;
    let msg = format!("/channels/{channel}/messages/{}", m["id"].as_str().unwrap());

    for bad in ["abc", "custom:1234567890123", "a:anim:1234567890123"] {
        let (status, body) = s.put(&format!("{msg}/reactions/{bad}/@me"), &owner, json!(null)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["code"], 10014, "{bad}");
    }
    let (status, body) =
        s.put(&format!("/channels/{channel}/messages/1234567890123/reactions/{THUMBS}/@me"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10008);
    let (stranger, _) = s.user("stranger").await;
    let (status, body) = s.put(&format!("{msg}/reactions/{THUMBS}/@me"), &stranger, json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50001);

    // 20 distinct emoji, then 30010.
    let emoji: Vec<String> = (0..21u32)
        .map(|i| char::from_u32(0x1F600 + i).unwrap().to_string())
        .map(|e| e.bytes().map(|b| format!("%{b:02X}")).collect())
        .collect();
    for e in &emoji[..20] {
        let (status, body) = s.put(&format!("{msg}/reactions/{e}/@me"), &owner, json!(null)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, body) = s.put(&format!("{msg}/reactions/{}/@me", emoji[20]), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 30010);
    let (_, got) = s.get(&msg, &owner).await;
    assert_eq!(got["reactions"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn pins_order_system_message_and_permissions() {
    let s = TestServer::start().await;
    let (owner, member, _, channel) = two_members(&s).await;
    let a = send(&s, &owner, &channel, "a").await;
    let b = send(&s, &member, &channel, "b").await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    // A plain member has neither MANAGE_MESSAGES nor PIN_MESSAGES.
    let (status, body) = s.put(&format!("/channels/{channel}/messages/pins/{aid}"), &member, json!(null)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50013);

    let (status, body) = s.put(&format!("/channels/{channel}/messages/pins/{aid}"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // The deprecated path form works too.
    let (status, _) = s.put(&format!("/channels/{channel}/pins/{bid}"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.put(&format!("/channels/{channel}/pins/{bid}"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Most recently pinned first.
    let (status, pins) = s.get(&format!("/channels/{channel}/messages/pins"), &member).await;
    assert_eq!(status, StatusCode::OK, "{pins}");
    let items = pins["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["message"]["id"], bid);
    assert_eq!(items[1]["message"]["id"], aid);
    assert_eq!(items[0]["message"]["pinned"], true);
    assert!(items[0]["pinned_at"].is_string());
    assert_eq!(pins["has_more"], false);
    let (_, page) = s.get(&format!("/channels/{channel}/messages/pins?limit=1"), &member).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);
    let before = items[0]["pinned_at"].as_str().unwrap().replace('+', "%2B");
    let (_, older) = s.get(&format!("/channels/{channel}/messages/pins?before={before}"), &member).await;
    assert_eq!(older["items"].as_array().unwrap().len(), 1);
    assert_eq!(older["items"][0]["message"]["id"], aid);
    let (status, body) = s.get(&format!("/channels/{channel}/messages/pins?before=yesterday"), &member).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);
    let (status, _) = s.get(&format!("/channels/{channel}/messages/pins?limit=51"), &member).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, legacy) = s.get(&format!("/channels/{channel}/pins"), &member).await;
    let ids: Vec<&str> = legacy.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [bid, aid]);

    // Each pin posted a CHANNEL_PINNED_MESSAGE (type 6) referencing the message.
    let (_, history) = s.get(&format!("/channels/{channel}/messages?limit=10"), &owner).await;
    let notices: Vec<&Value> = history.as_array().unwrap().iter().filter(|m| m["type"] == 6).collect();
    assert_eq!(notices.len(), 2, "{history}");
    assert_eq!(notices[0]["message_reference"]["message_id"], bid);
    assert_eq!(notices[1]["message_reference"]["message_id"], aid);

    // Unpin; the channel's list shrinks; unknown messages are 10008.
    let (status, _) = s.delete(&format!("/channels/{channel}/messages/pins/{bid}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, got) = s.get(&format!("/channels/{channel}/messages/{bid}"), &owner).await;
    assert_eq!(got["pinned"], false);
    let (_, pins) = s.get(&format!("/channels/{channel}/messages/pins"), &owner).await;
    assert_eq!(pins["items"].as_array().unwrap().len(), 1);
    let (status, body) = s.put(&format!("/channels/{channel}/pins/1234567890123"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10008);
    // A pin notice is a system message but may itself be deleted (type 6 is deletable).
    let notice_id = notices[0]["id"].as_str().unwrap();
    let (status, _) = s.delete(&format!("/channels/{channel}/messages/{notice_id}"), &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
