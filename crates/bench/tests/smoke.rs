//! Smoke runs of every bench scenario at tiny sizes against an in-process server,
//! so the tool keeps working as the server changes. They check the correctness
//! figures each scenario reports (everyone identified, every message delivered
//! once and in order, all GUILD_CREATEs received), not the performance targets.

use std::path::{Path, PathBuf};

use clap::Parser;
use guildhall::{Config, Server};
use serde_json::Value;

struct Running {
    url: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn server() -> Running {
    server_with(|_| {}).await
}

async fn server_with(tune: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        password_memory_kib: 64,
        password_iterations: 1,
        ..Config::default()
    };
    // Rate limits off, as a spawned bench server has them.
    cfg.apply_env(|k| k.starts_with("GUILDHALL_RATELIMIT_").then(|| "0".to_string())).unwrap();
    tune(&mut cfg);
    let server = Server::bind(cfg).await.unwrap();
    let url = format!("http://{}", server.addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .run(async move {
                let _ = rx.await;
            })
            .await;
    });
    Running { url, _dir: dir, stop: Some(tx) }
}

/// Runs `guildhall-bench <args> --server URL --pid SELF --results DIR` and returns the results' rows.
async fn bench(s: &Running, results: &Path, args: &[&str]) -> Vec<Value> {
    let pid = std::process::id().to_string();
    let mut argv = vec!["guildhall-bench"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&[
        "--server",
        &s.url,
        "--pid",
        &pid,
        "--worker-exe",
        env!("CARGO_BIN_EXE_guildhall-bench"),
        "--results",
    ]);
    let results_s = results.to_str().unwrap().to_string();
    argv.push(&results_s);
    let cli = guildhall_bench::Cli::try_parse_from(&argv).unwrap();
    let path: PathBuf = guildhall_bench::run(cli).await.unwrap().expect("a results file");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    v["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], metric: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["metric"].as_str().unwrap().contains(metric))
        .unwrap_or_else(|| panic!("no row {metric:?} in {rows:#?}"))
}

fn measured(rows: &[Value], metric: &str) -> f64 {
    row(rows, metric)["measured"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_registers_users_and_joins_them() {
    let s = server().await;
    let out = tempfile::tempdir().unwrap();
    let rows = bench(&s, out.path(), &["seed", "--users", "6", "--guilds", "2", "--members", "4"]).await;
    assert_eq!(measured(&rows, "users registered"), 6.0);
    assert!(measured(&rows, "invite joins/s") > 0.0);
    let file: Value = serde_json::from_slice(&std::fs::read(out.path().join("seed.json")).unwrap()).unwrap();
    assert_eq!(file["users"].as_array().unwrap().len(), 6);
    assert_eq!(file["guilds"].as_array().unwrap().len(), 2);
    assert_eq!(file["guilds"][0]["members"], 4);
    // The seeded member really is in the guild: the guild is readable with its token.
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/api/v10/guilds/{}", s.url, file["guilds"][1]["id"].as_str().unwrap()))
        .header("Authorization", file["users"][3]["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_sends_reads_and_counts_coalesced_reads() {
    let s = server().await;
    let out = tempfile::tempdir().unwrap();
    let rows = bench(
        &s,
        out.path(),
        &[
            "store",
            "--messages",
            "300",
            "--senders",
            "16",
            "--channels",
            "3",
            "--history-rate",
            "400",
            "--history-secs",
            "0.5",
            "--coalesce",
            "40",
        ],
    )
    .await;
    assert!(measured(&rows, "durable messages/s through REST") > 0.0);
    assert_eq!(row(&rows, "REST send (durable) p50")["unit"], "ms");
    assert!(measured(&rows, "history reads/s achieved") > 0.0);
    // 40 identical reads of a page just invalidated: at least one store read, at most one per request.
    let reads = measured(&rows, "concurrent identical reads");
    assert!((1.0..=40.0).contains(&reads), "{reads}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_identify_in_every_compression() {
    let s = server().await;
    let out = tempfile::tempdir().unwrap();
    let rows = bench(
        &s,
        out.path(),
        &["idle", "--sessions", "12", "--users", "6", "--per-worker", "5", "--rate", "200", "--hold", "0.2"],
    )
    .await;
    for mode in ["plain", "zlib-stream", "zstd-stream"] {
        assert_eq!(measured(&rows, &format!("{mode}: sessions identified")), 12.0, "{mode}");
        assert!(measured(&rows, &format!("{mode}: IDENTIFY→READY p99")) > 0.0);
        row(&rows, &format!("{mode}: server RSS per idle session"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_once_in_order() {
    let s = server().await;
    let out = tempfile::tempdir().unwrap();
    let rows =
        bench(&s, out.path(), &["fanout", "--members", "5", "--rate", "20", "--secs", "0.5", "--per-worker", "3"])
            .await;
    for mode in ["plain", "zlib-stream", "zstd-stream"] {
        let label = format!("5 × {mode}");
        assert_eq!(measured(&rows, &format!("{label}: recipients online")), 5.0);
        assert_eq!(measured(&rows, &format!("{label}: deliveries (expected 50)")), 50.0);
        assert_eq!(measured(&rows, &format!("{label}: missing + duplicate + out-of-order")), 0.0);
        assert!(measured(&rows, &format!("{label}: REST send→last recipient p99")) > 0.0);
        row(&rows, &format!("{label}: server CPU per delivery"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_receives_every_guild() {
    let s = server().await;
    let out = tempfile::tempdir().unwrap();
    let rows = bench(&s, out.path(), &["ready", "--guilds", "3", "--members", "4", "--repeat", "2"]).await;
    assert_eq!(measured(&rows, "GUILD_CREATEs received"), 3.0);
    assert!(measured(&rows, "IDENTIFY→last GUILD_CREATE p99") >= measured(&rows, "IDENTIFY→READY p50"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_sessions_are_closed_and_readers_get_everything() {
    // Small session queues and send buffers, so 150 messages overflow a stalled session.
    let s = server_with(|c| {
        c.gateway_queue_capacity = 32;
        c.gateway_send_buffer_bytes = 4096;
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let rows = bench(
        &s,
        out.path(),
        &[
            "stalled",
            "--readers",
            "4",
            "--stalled",
            "3",
            "--rate",
            "100",
            "--secs",
            "1.5",
            "--stall-secs",
            "0.2",
            "--settle",
            "0.5",
            "--sample-ms",
            "50",
        ],
    )
    .await;
    assert_eq!(measured(&rows, "readers online"), 4.0);
    // 20 messages while the stalled sockets fill: fewer than overflow them.
    assert_eq!(measured(&rows, "while the stalled sessions' sockets fill: deliveries (expected 80)"), 80.0);
    assert_eq!(measured(&rows, "stalled sessions identified"), 3.0);
    for phase in ["A (readers only)", "B (with stalled sessions)"] {
        assert_eq!(measured(&rows, &format!("{phase}: deliveries (expected 600)")), 600.0, "{phase}");
        assert_eq!(measured(&rows, &format!("{phase}: missing + duplicate + out-of-order")), 0.0, "{phase}");
        assert!(measured(&rows, &format!("{phase}: REST send→reader p99")) > 0.0);
    }
    assert_eq!(measured(&rows, "stalled sessions closed by the server (overflow counter)"), 3.0);
    assert_eq!(measured(&rows, "stalled clients that found their connection closed when they read"), 3.0);
    assert_eq!(measured(&rows, "stalled clients still open when they read"), 0.0);
    assert!(measured(&rows, "last overflow close, after phase B started") > 0.0);
    assert_eq!(measured(&rows, "stalled connections the server dropped during B"), 3.0);
    assert_eq!(measured(&rows, "gateway sessions open at the end"), 4.0);
    row(&rows, "RSS per stalled session: peak B − idle with stalled sessions");
    row(&rows, "reader p99 in B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_churn_resumes_without_gaps_and_settles() {
    // A short resume window, so sessions dropped without RESUME end within the test.
    let s = server_with(|c| c.gateway_resume_window_secs = 2).await;
    let out = tempfile::tempdir().unwrap();
    let rows = bench(
        &s,
        out.path(),
        &[
            "soak",
            "--population",
            "6",
            "--readers",
            "3",
            "--per-worker",
            "3",
            "--rate",
            "20",
            "--duration",
            "3s",
            "--churn",
            "6",
            "--warmup",
            "1",
            // A few messages never fill a memtable: do not wait for flushes.
            "--warmup-flushes",
            "0",
            "--settle-max",
            "20",
            "--sample-secs",
            "0.5",
        ],
    )
    .await;
    assert_eq!(measured(&rows, "population online after connecting"), 6.0);
    let attempts = measured(&rows, "TCP drops then RESUME");
    assert!(attempts >= 2.0, "{attempts}");
    assert_eq!(measured(&rows, "RESUMEs OK"), attempts);
    assert_eq!(measured(&rows, "RESUMEs failed"), 0.0);
    assert!(measured(&rows, "clean closes (1000) then IDENTIFY") >= 2.0);
    assert!(measured(&rows, "TCP drops then IDENTIFY") >= 2.0);
    assert_eq!(measured(&rows, "gaps in `s` within a session"), 0.0);
    assert_eq!(measured(&rows, "bench messages missing/reordered within a session"), 0.0);
    assert_eq!(measured(&rows, "unexpected errors"), 0.0);
    assert_eq!(measured(&rows, "reader sessions without the last message at the end"), 0.0);
    assert_eq!(measured(&rows, "settled (sessions_open = connections = population)"), 1.0);
    assert!(measured(&rows, "messages sent") >= 60.0);
    row(&rows, "server open fds final");
    row(&rows, "server RSS final");
}
