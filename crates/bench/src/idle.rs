//! idle: N identified sessions held open with heartbeats, spread over worker
//! processes. Reports server RSS per session (VmRSS after − before, / N) for each
//! transport compression, IDENTIFY→READY p50/p99 while sessions connect at the
//! given rate, and sessions established per second. With `--spawn` the server is
//! restarted before each compression mode, so every mode starts from a fresh process.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::gw::Compress;
use crate::report::{Goal, Report};
use crate::rest::Rest;
use crate::seed::{SeedFile, register_users};
use crate::worker::{Workers, write_tokens};
use crate::{Common, Res};

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 19_000)]
    pub sessions: usize,
    /// Distinct users (sessions reuse tokens round-robin); default: one per session.
    #[arg(long)]
    pub users: Option<usize>,
    /// Sessions per worker process (≤ ~9,000 with a 20,000 fd limit).
    #[arg(long, default_value_t = 9000)]
    pub per_worker: usize,
    /// New sessions per second, all workers together.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Compression modes to measure, comma-separated.
    #[arg(long, default_value = "plain,zlib-stream,zstd-stream", value_delimiter = ',')]
    pub compress: Vec<String>,
    /// Seconds to hold the sessions (heartbeating) after they are all up.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Use this seed file's users instead of registering new ones.
    #[arg(long)]
    pub seed: Option<PathBuf>,
}

pub async fn run(a: IdleArgs) -> Res<PathBuf> {
    let mut target = a.common.target()?;
    let rest = Rest::new(&target.base);
    let users = a.users.unwrap_or(a.sessions).clamp(1, a.sessions.max(1));
    let tokens: Vec<String> = match &a.seed {
        Some(p) => SeedFile::load(p)?.users.into_iter().map(|u| u.token).collect(),
        None => {
            eprintln!("idle: registering {users} users");
            register_users(&rest, users, a.common.seed_concurrency).await?.into_iter().map(|u| u.token).collect()
        }
    };
    let tokens_file = write_tokens(&a.common.results, &tokens)?;
    let exe = a.common.worker_exe()?;
    let mut r = Report::new(
        "idle",
        json!({ "sessions": a.sessions, "users": tokens.len(), "per_worker": a.per_worker, "rate": a.rate, "hold_s": a.hold, "compress": a.compress }),
    );
    if target.pid.is_none() {
        r.note("no server PID (--pid): memory figures are missing");
    }
    for (k, mode) in a.compress.iter().enumerate() {
        let compress = Compress::parse(mode)?;
        if target.is_spawned() {
            target.restart()?;
        } else if k > 0 {
            r.note(format!("{mode}: same server process as the previous mode; freed memory may be reused, so its RSS delta can read low"));
        }
        let gateway = rest.gateway_url().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = target.proc();
        let net0 = crate::server::tcp_counters();
        eprintln!("idle[{mode}]: opening {} sessions at {}/s", a.sessions, a.rate);
        let (workers, c) =
            Workers::spawn(&exe, &gateway, compress, &tokens_file, a.sessions, a.per_worker, a.rate, 1).await?;
        let connect_s = (c.last_ready_ns.saturating_sub(c.first_start_ns)) as f64 / 1e9;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = target.proc();
        let net = crate::server::tcp_delta(&net0, &crate::server::tcp_counters());
        r.row(
            format!("{mode}: accept-queue overflows while connecting"),
            "",
            Goal::AtMost(0.0),
            net["ListenOverflows"].as_u64().unwrap_or(0) as f64,
        );
        r.extra(&format!("{mode} tcp counters (system-wide delta)"), net);
        tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
        let held = target.proc();
        workers.quit().await;
        if c.failed > 0 {
            r.note(format!("{mode}: {} sessions failed, e.g. {:?}", c.failed, c.errors));
        }
        r.row(format!("{mode}: sessions identified"), "", Goal::AtLeast(a.sessions as f64), c.ok as f64);
        r.row(format!("{mode}: sessions established/s"), "/s", Goal::None, c.ok as f64 / connect_s.max(1e-9));
        let target_ms = (a.rate >= 5000.0).then_some(5.0);
        r.latency(&format!("{mode}: IDENTIFY→READY"), &c.ready, target_ms);
        if let (Some(b), Some(a2), Some(h)) = (before, after, held) {
            let per = |x: u64| (x.saturating_sub(b.rss_kib)) as f64 / c.ok.max(1) as f64;
            r.row(format!("{mode}: server RSS per idle session"), "KiB", Goal::AtMost(3.0), per(a2.rss_kib));
            r.row(format!("{mode}: same, after holding {:.0} s", a.hold), "KiB", Goal::AtMost(3.0), per(h.rss_kib));
            r.extra(&format!("{mode} rss_kib"), json!({ "before": b.rss_kib, "after": a2.rss_kib, "held": h.rss_kib }));
            let cpu = (h.utime_ns + h.stime_ns).saturating_sub(b.utime_ns + b.stime_ns) as f64 / 1e6;
            r.row(format!("{mode}: server CPU while connecting + holding"), "ms", Goal::None, cpu);
        }
    }
    let _ = std::fs::remove_file(&tokens_file);
    r.finish(&a.common.results).map_err(|e| e.to_string())
}
