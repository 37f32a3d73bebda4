//! The rendered latest-page cache of `GET /channels/{id}/messages`: repeated
//! reads answer the same bytes, and every change that shows in the page (a new,
//! edited or deleted message, a reaction and its per-viewer `me`, a renamed
//! author) shows in the next read.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestServer;
use crate::messages::{send, two_members};

const THUMBS: &str = "%F0%9F%91%8D";

async fn latest(s: &TestServer, token: &str, channel: &str) -> Vec<Value> {
    let (status, page) = s.get(&format!("/channels/{channel}/messages"), token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page.as_array().unwrap().clone()
}

#[tokio::test]
async fn latest_page_reflects_every_change() {
    let s = TestServer::start().await;
    let (owner, member, _member_id, channel) = two_members(&s).await;
    let first = send(&s, &owner, &channel, "one").await;
    let page = latest(&s, &owner, &channel).await;
    assert_eq!(page[0]["content"], "one");
    // Same page again (served from the cache), for both viewers.
    assert_eq!(latest(&s, &owner, &channel).await, page);
    assert_eq!(latest(&s, &member, &channel).await, page);

    // A new message.
    send(&s, &member, &channel, "two").await;
    let page = latest(&s, &owner, &channel).await;
    assert_eq!(page.iter().map(|m| m["content"].as_str().unwrap()).collect::<Vec<_>>(), ["two", "one"]);

    // An edit.
    let first_path = format!("/channels/{channel}/messages/{}", first["id"].as_str().unwrap());
    let (status, _) = s.patch(&first_path, &owner, json!({ "content": "one, edited" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest(&s, &member, &channel).await[1]["content"], "one, edited");

    // A renamed author shows in messages already on the (cached) page.
    assert_eq!(latest(&s, &member, &channel).await[0]["author"]["global_name"], Value::Null);
    let (status, body) = s.patch("/users/@me", &member, json!({ "global_name": "Renamed" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(latest(&s, &owner, &channel).await[0]["author"]["global_name"], "Renamed");

    // A reaction: `me` differs per viewer, though the page is otherwise the same.
    let (status, _) = s.put(&format!("{first_path}/reactions/{THUMBS}/@me"), &owner, json!(null)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for _ in 0..2 {
        assert_eq!(latest(&s, &owner, &channel).await[1]["reactions"][0]["me"], true);
        assert_eq!(latest(&s, &member, &channel).await[1]["reactions"][0]["me"], false);
    }

    // A deletion.
    let (status, _) = s.delete(&first_path, &owner).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let page = latest(&s, &owner, &channel).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["content"], "two");
    // Other limits are their own pages.
    let (status, one) = s.get(&format!("/channels/{channel}/messages?limit=1"), &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one.as_array().unwrap().len(), 1);
    s.stop().await;
}
