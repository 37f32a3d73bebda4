//! Attachments: multipart sends and edits, downloading the exact bytes back,
//! size limits, ATTACH_FILES, and path traversal on both upload and download.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::common::TestServer;

async fn multipart(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    form: Form,
) -> (StatusCode, Value) {
    let res = s
        .http
        .request(method, format!("{}{}", s.base, path))
        .header("Authorization", token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn post_files(s: &TestServer, channel: &str, token: &str, form: Form) -> (StatusCode, Value) {
    multipart(s, reqwest::Method::POST, &format!("/channels/{channel}/messages"), token, form).await
}

/// GET on the server root (outside /api): status, headers, bytes.
async fn download(s: &TestServer, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let res = s.http.get(format!("http://{}{}", s.addr, path)).send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

fn url_path(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_string()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
        }
    }
    out
}

#[tokio::test]
async fn upload_then_download_exact_bytes() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;
    let png: Vec<u8> = {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        v.extend_from_slice(&7u32.to_be_bytes());
        v.extend_from_slice(&5u32.to_be_bytes());
        v.extend((0..=255u8).cycle().take(3000));
        v
    };
    let text = "hello, attachments\n".repeat(50);
    let payload = json!({
        "content": "two files",
        "attachments": [
            { "id": 0, "filename": "pic.png", "description": "a picture" },
            { "id": 1, "filename": "notes.txt" },
        ],
    });
    let form = Form::new()
        .part("payload_json", Part::text(payload.to_string()).mime_str("application/json").unwrap())
        .part("files[0]", Part::bytes(png.clone()).file_name("pic.png").mime_str("image/png").unwrap())
        .part("files[1]", Part::bytes(text.clone().into_bytes()).file_name("notes.txt"));
    let (status, msg) = post_files(&s, &channel, &owner, form).await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(msg["content"], "two files");
    let atts = msg["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 2);
    assert_eq!(atts[0]["filename"], "pic.png");
    assert_eq!(atts[0]["description"], "a picture");
    assert_eq!(atts[0]["content_type"], "image/png");
    assert_eq!(atts[0]["size"], png.len());
    assert_eq!(atts[0]["width"], 7);
    assert_eq!(atts[0]["height"], 5);
    assert_eq!(atts[1]["filename"], "notes.txt");
    assert_eq!(atts[1]["content_type"], "text/plain");
    assert_eq!(atts[1]["size"], text.len());
    assert_eq!(atts[0]["url"], atts[0]["proxy_url"]);

    let (status, headers, bytes) = download(&s, &url_path(atts[0]["url"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, png);
    assert_eq!(headers["content-type"], "image/png");
    assert!(headers["content-disposition"].to_str().unwrap().contains("pic.png"));
    let (status, headers, bytes) = download(&s, &url_path(atts[1]["url"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, text.as_bytes());
    assert_eq!(headers["content-type"], "text/plain");

    // The message reads back with the same attachments.
    let (_, got) = s.get(&format!("/channels/{channel}/messages/{}", msg["id"].as_str().unwrap()), &owner).await;
    assert_eq!(got["attachments"], msg["attachments"]);

    // A plain `file` part and no payload_json: form fields carry the content.
    let form = Form::new().text("content", "plain").part("file", Part::bytes(b"abc".to_vec()).file_name("data.bin"));
    let (status, plain) = post_files(&s, &channel, &owner, form).await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert_eq!(plain["content"], "plain");
    assert_eq!(plain["attachments"][0]["filename"], "data.bin");
    assert_eq!(plain["attachments"][0]["content_type"], "application/octet-stream");
    let (_, headers, bytes) = download(&s, &url_path(plain["attachments"][0]["url"].as_str().unwrap())).await;
    assert_eq!(bytes, b"abc");
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment"));

    // A file alone is a valid message.
    let form = Form::new().part("files[0]", Part::bytes(b"x".to_vec()).file_name("only.txt"));
    let (status, alone) = post_files(&s, &channel, &owner, form).await;
    assert_eq!(status, StatusCode::OK, "{alone}");
    assert_eq!(alone["content"], "");
}

#[tokio::test]
async fn edit_adds_and_drops_attachments() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;
    let form = Form::new()
        .part("payload_json", Part::text(json!({ "content": "v1" }).to_string()))
        .part("files[0]", Part::bytes(b"one".to_vec()).file_name("one.txt"));
    let (_, msg) = post_files(&s, &channel, &owner, form).await;
    let path = format!("/channels/{channel}/messages/{}", msg["id"].as_str().unwrap());
    let first = msg["attachments"][0]["id"].as_str().unwrap().to_string();

    let payload = json!({ "attachments": [{ "id": first }, { "id": 0, "filename": "two.txt" }] });
    let form = Form::new()
        .part("payload_json", Part::text(payload.to_string()))
        .part("files[0]", Part::bytes(b"two".to_vec()).file_name("two.txt"));
    let (status, edited) = multipart(&s, reqwest::Method::PATCH, &path, &owner, form).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    let names: Vec<&str> =
        edited["attachments"].as_array().unwrap().iter().map(|a| a["filename"].as_str().unwrap()).collect();
    assert_eq!(names, ["one.txt", "two.txt"]);
    let (_, _, bytes) = download(&s, &url_path(edited["attachments"][1]["url"].as_str().unwrap())).await;
    assert_eq!(bytes, b"two");

    // JSON edit keeping only the second.
    let second = edited["attachments"][1]["id"].as_str().unwrap();
    let (status, kept) = s.patch(&path, &owner, json!({ "attachments": [{ "id": second }] })).await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(kept["attachments"][0]["id"], second);
}

#[tokio::test]
async fn upload_limits_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir, |c| c.max_upload_bytes = 1000).await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;

    let form = Form::new()
        .part("files[0]", Part::bytes(vec![1u8; 600]).file_name("a.bin"))
        .part("files[1]", Part::bytes(vec![2u8; 600]).file_name("b.bin"));
    let (status, body) = post_files(&s, &channel, &owner, form).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], 40005);
    let (_, history) = s.get(&format!("/channels/{channel}/messages"), &owner).await;
    assert_eq!(history, json!([]));
    assert!(files_under(&s.data_dir.path().join("attachments")).is_empty());

    // Bad payload_json is 50109; an empty message (no content, no files) 50006.
    let form = Form::new().part("payload_json", Part::text("{oops"));
    let (status, body) = post_files(&s, &channel, &owner, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50109);
    let form = Form::new().part("payload_json", Part::text("{}"));
    let (status, body) = post_files(&s, &channel, &owner, form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50006);

    // Someone who cannot see the channel writes nothing.
    let (stranger, _) = s.user("stranger").await;
    let form = Form::new().part("files[0]", Part::bytes(vec![3u8; 10]).file_name("c.bin"));
    let (status, body) = post_files(&s, &channel, &stranger, form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 50001);
    assert!(files_under(&s.data_dir.path().join("attachments")).is_empty());
}

#[tokio::test]
async fn path_traversal_never_escapes_the_attachments_directory() {
    let s = TestServer::start().await;
    let (owner, _) = s.user("owner").await;
    let (_, channel) = s.guild(&owner, "Guild").await;
    let evil = [
        ("../../../escaped.txt", "escaped.txt"),
        ("..\\..\\win.txt", "win.txt"),
        ("..", "unknown"),
        ("a/b/../c.txt", "c.txt"),
        ("tab\tname.txt", "tabname.txt"),
        ("with space.txt", "with_space.txt"),
    ];
    let mut form = Form::new();
    for (i, (name, _)) in evil.iter().enumerate() {
        form = form.part(format!("files[{i}]"), Part::bytes(format!("file {i}").into_bytes()).file_name(*name));
    }
    let (status, msg) = post_files(&s, &channel, &owner, form).await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    let root = s.data_dir.path().join("attachments");
    for (i, (_, expected)) in evil.iter().enumerate() {
        let a = &msg["attachments"][i];
        assert_eq!(a["filename"], *expected);
        let (status, _, bytes) = download(&s, &url_path(a["url"].as_str().unwrap())).await;
        assert_eq!(status, StatusCode::OK, "{a}");
        assert_eq!(bytes, format!("file {i}").as_bytes());
    }
    // Every stored file sits inside attachments/{channel}/.
    let names: Vec<&str> = evil.iter().map(|(_, n)| *n).collect();
    let stored: Vec<_> = files_under(s.data_dir.path())
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| names.contains(&n.to_str().unwrap())))
        .collect();
    assert_eq!(stored.len(), names.len(), "{stored:?}");
    for f in &stored {
        assert!(f.starts_with(root.join(&channel)), "{}", f.display());
    }
    assert!(!s.data_dir.path().join("escaped.txt").exists());

    // Download paths that try to climb out, or name nothing, are 404.
    let a = &msg["attachments"][0];
    let aid = a["id"].as_str().unwrap();
    std::fs::write(s.data_dir.path().join("secret.txt"), b"secret").unwrap();
    for path in [
        format!("/attachments/{channel}/{aid}/..%2F..%2F..%2Fsecret.txt"),
        format!("/attachments/{channel}/{aid}/..%5C..%5Csecret.txt"),
        format!("/attachments/{channel}/{aid}/%2E%2E"),
        format!("/attachments/{channel}/{aid}/.."),
        format!("/attachments/{channel}/..%2F{aid}/escaped.txt"),
        format!("/attachments/notanid/{aid}/escaped.txt"),
        format!("/attachments/{channel}/1234567890123/escaped.txt"),
        format!("/attachments/{channel}/{aid}/missing.txt"),
        format!("/attachments/{channel}/{aid}"),
        format!("/attachments/{channel}/{aid}.type/x"),
    ] {
        let (status, _, bytes) = download(&s, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_ne!(bytes, b"secret", "{path}");
    }
}
