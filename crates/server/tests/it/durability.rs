//! Crash safety: every message acknowledged with 200 survives SIGKILL of the
//! server process, exactly once and in order; nothing half-written appears.
//! Also what the `guildhall` binary sets on its own process.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Proc {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn spawn(dir: &std::path::Path) -> Proc {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_guildhall"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("GUILDHALL_PASSWORD_MEMORY_KIB", "64")
        .env("GUILDHALL_PASSWORD_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .env("GUILDHALL_RATELIMIT_ROUTE_LIMIT", "0")
        .env("GUILDHALL_RATELIMIT_GLOBAL_PER_SECOND", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Proc { child, base: format!("{base}/api/v10") }
}

/// Registers `username` and creates a guild; returns the token and the guild's
/// system channel.
async fn account_with_guild(http: &reqwest::Client, base: &str, username: &str) -> (String, String) {
    let json = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().json::<Value>().await.unwrap() };
    let body = json!({"username": username, "password": "correct horse battery", "consent": true});
    let reg = json(http.post(format!("{base}/auth/register")).json(&body)).await;
    let token = reg["token"].as_str().unwrap().to_string();
    let guild = json!({"name": format!("{username}'s guild")});
    let g = json(http.post(format!("{base}/guilds")).header("Authorization", &token).json(&guild)).await;
    (token, g["system_channel_id"].as_str().unwrap().to_string())
}

async fn history(http: &reqwest::Client, base: &str, token: &str, channel: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut url = format!("{base}/channels/{channel}/messages?limit=100");
        if let Some(b) = &before {
            url.push_str(&format!("&before={b}"));
        }
        let page: Vec<Value> = http.get(url).header("Authorization", token).send().await.unwrap().json().await.unwrap();
        if page.is_empty() {
            break;
        }
        before = Some(page.last().unwrap()["id"].as_str().unwrap().to_string());
        all.extend(page);
    }
    all.reverse();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path()).await;
    let http = reqwest::Client::new();
    let (token, channel) = account_with_guild(&http, &p.base, "crash").await;

    // A storm of concurrent senders; the server is killed in the middle of it.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let mut senders = Vec::new();
    for w in 0..16 {
        let (http, base, token, channel, ack_tx) =
            (http.clone(), p.base.clone(), token.clone(), channel.clone(), ack_tx.clone());
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let content = format!("w{w}-{i}");
                let res = http
                    .post(format!("{base}/channels/{channel}/messages"))
                    .header("Authorization", &token)
                    .json(&json!({"content": content}))
                    .send()
                    .await;
                let Ok(res) = res else { break };
                if res.status() != 200 {
                    break;
                }
                let Ok(body) = res.json::<Value>().await else { break };
                let _ = ack_tx.send((body["id"].as_str().unwrap().to_string(), content));
            }
        }));
    }
    drop(ack_tx);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();
    for s in senders {
        let _ = s.await;
    }
    let mut acked = Vec::new();
    while let Some(a) = ack_rx.recv().await {
        acked.push(a);
    }
    assert!(acked.len() > 50, "the storm should have produced acknowledged writes, got {}", acked.len());

    let mut p = spawn(dir.path()).await;
    let stored = history(&http, &p.base, &token, &channel).await;
    let ids: Vec<&str> = stored.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no message is stored twice");
    let mut sorted: Vec<u64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    let in_order = sorted.windows(2).all(|w| w[0] < w[1]);
    sorted.sort_unstable();
    assert!(in_order, "history is in Snowflake order");
    for m in &stored {
        assert!(m["content"].as_str().is_some_and(|c| c.starts_with('w')), "every stored message is whole: {m}");
    }
    for (id, content) in &acked {
        let found = stored.iter().find(|m| m["id"] == id.as_str());
        assert!(found.is_some(), "acknowledged message {id} ({content}) was lost");
        assert_eq!(found.unwrap()["content"], content.as_str());
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

/// The binary turns transparent huge pages off for itself (main.rs): with them,
/// khugepaged turned freed allocator memory back into resident huge pages.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_process_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path()).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).unwrap();
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let thp = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(str::trim);
    // The line exists since Linux 5.0; this test process itself still has THP on.
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(own.contains("THP_enabled:\t1"), "the test process should have THP allowed: {own}");
    assert_eq!(thp, Some("0"), "{status}");
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// The binary's allocator counts the store's write buffers exactly (alloc.rs) and
/// /metrics exports the count beside the engine's estimate, which leaves out the
/// memtables' index nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_reports_what_its_write_buffers_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path()).await;
    let http = reqwest::Client::new();
    let root = p.base.trim_end_matches("/api/v10").to_string();
    let scrape = || async {
        let text = http.get(format!("{root}/metrics")).send().await.unwrap().text().await.unwrap();
        let heap = metric(&text, "guildhall_store_write_buffer_heap_bytes");
        let estimate = metric(&text, "guildhall_store_memtable_bytes").unwrap();
        (heap.unwrap_or_else(|| panic!("no write-buffer gauge: {text}")), estimate)
    };
    let (token, channel) = account_with_guild(&http, &p.base, "meter").await;
    let (heap0, estimate0) = scrape().await;
    assert!(heap0 >= estimate0 && estimate0 > 0.0, "the account and guild are buffered: {heap0} vs {estimate0}");
    let content = "x".repeat(1900);
    for _ in 0..200 {
        let res = http
            .post(format!("{}/channels/{channel}/messages", p.base))
            .header("Authorization", &token)
            .json(&json!({ "content": content }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let (heap1, estimate1) = scrape().await;
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert!(
        estimate1 - estimate0 >= 200.0 * 1900.0,
        "the engine's estimate grew by the messages: {estimate0} → {estimate1}"
    );
    assert!(
        heap1 - heap0 >= estimate1 - estimate0,
        "the heap holds at least what the engine counts: {heap0} → {heap1}"
    );
    assert!(heap1 < 4.0 * estimate1, "and not much more: {heap1} vs {estimate1}");
}
