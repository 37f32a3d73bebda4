//! soak: connection churn plus traffic for a long time, watching the server's
//! memory and file descriptors.
//!
//! One guild holds a stable population of P sessions (worker processes, one slot
//! per member); the first `--readers` slots identify with message intents and
//! check the bench messages, the others with GUILDS only. A sender (user 0) posts
//! `bench:SEQ:SEND_NS` through REST at a steady rate the whole time.
//!
//! 1. Warm-up: the population connects, traffic runs for `--warmup` and until the
//!    store has flushed its memtable `--warmup-flushes` times (so the store is in the
//!    cycle it stays in: fill, flush, give back); then the baseline reading (server
//!    VmRSS, `/proc/PID/fd` count).
//! 2. Churn for `--duration`: each worker picks random slots at `--churn` ops/s (all
//!    workers together) and cycles through three operations:
//!    - clean: close 1000 (the session ends), then connect + IDENTIFY anew;
//!    - resume: drop the TCP connection (no close frame), connect, RESUME with the
//!      last seen `s`: the server must replay everything after it, contiguously,
//!      then RESUMED; a refusal (op 9) or a gap counts as a failed resume;
//!    - re-identify: drop the TCP connection and IDENTIFY a new session (the old
//!      one stays resumable on the server for its resume window, then ends).
//!
//!    Every slot checks that the gateway's `s` grows by exactly 1 per dispatch
//!    within a session (across resumes) and readers that bench messages arrive
//!    contiguously within a session.
//! 3. Stop churn; wait until the server's `sessions_open` and `connections` gauges
//!    are back to P (sessions dropped without RESUME expire after the resume window);
//!    the final reading; stop the sender and check every reader got the last message.
//!
//! A sampler records RSS, fds and the gateway gauges every `--sample-secs` into the
//! JSON results and an SVG line chart.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::gw::{self, Compress, Gw, INTENTS_DEFAULT};
use crate::hist::Histogram;
use crate::report::{Goal, Report};
use crate::rest::Rest;
use crate::sample::{Sample, Sampler, line_svg, sample_now};
use crate::seed::{SeedPlan, seed};
use crate::worker::{WorkerArgs, Workers, emit, write_tokens};
use crate::{Common, Res, unix_nanos};

/// Memtable flushes in a series of samples: the store gauge falling by half or more
/// between two samples (the gauge before each).
fn flushes(samples: &[Sample]) -> Vec<u64> {
    samples
        .windows(2)
        .filter_map(|w| match (w[0].store_kib, w[1].store_kib) {
            (Some(a), Some(b)) if b * 2 <= a => Some(a),
            _ => None,
        })
        .collect()
}

/// A duration: plain seconds, or with an `s`, `m` or `h` suffix (`30m`).
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1.0),
        Some('m') => (&s[..s.len() - 1], 60.0),
        Some('h') => (&s[..s.len() - 1], 3600.0),
        _ => (s, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("bad duration {s:?} (e.g. 90, 90s, 30m, 1h)"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(v * mult)
}

#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    #[command(flatten)]
    pub common: Common,
    /// Stable number of sessions in the guild.
    #[arg(long, default_value_t = 2000)]
    pub population: usize,
    /// How many of them receive (and check) the bench messages.
    #[arg(long, default_value_t = 200)]
    pub readers: usize,
    /// Messages per second from the sender (0: none, churn only).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Length of the churn phase (seconds, or 30m / 1h).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub duration: f64,
    /// Churn operations per second, all workers together (0: traffic only, a control run).
    #[arg(long, default_value_t = 20.0)]
    pub churn: f64,
    /// Seconds of traffic with the population connected before the baseline reading. The
    /// default is longer than a heartbeat interval (41.25 s): by then every session has sent
    /// its first heartbeat, which lets the server drop the READY-time dispatches it had been
    /// keeping for RESUME, so the baseline is the population's steady state.
    #[arg(long, default_value = "60", value_parser = parse_duration)]
    pub warmup: f64,
    /// After `--warmup`, keep the traffic running until the store gauge has shown this
    /// many memtable flushes (see `flushes`), at most `--warmup-max` in all. Until its
    /// memtable has filled and flushed, the store has not reached the memory it works
    /// in, and a baseline read then counts its growth as the sessions' (0: do not wait).
    #[arg(long, default_value_t = 2)]
    pub warmup_flushes: usize,
    /// Longest warm-up when waiting for memtable flushes.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub warmup_max: f64,
    /// Longest wait after churn for the server's session count to return to the population.
    #[arg(long, default_value = "180", value_parser = parse_duration)]
    pub settle_max: f64,
    /// Sampling period of RSS, fds and gauges.
    #[arg(long, default_value_t = 5.0)]
    pub sample_secs: f64,
    #[arg(long, default_value_t = 1000)]
    pub per_worker: usize,
    #[arg(long, default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// Padding added to each message's content, bytes.
    #[arg(long, default_value_t = 64)]
    pub pad: usize,
}

/// The sender: one REST call at a time at `rate`, until `stop`.
struct Sender {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, u64, Histogram, Option<String>)>,
}

impl Sender {
    fn start(rest: &Rest, token: &str, channel: &str, rate: f64, pad: usize) -> Sender {
        let stop = Arc::new(AtomicBool::new(false));
        let (rest, token, stop2) = (rest.clone(), token.to_string(), stop.clone());
        let path = format!("/channels/{channel}/messages");
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let padding = "x".repeat(pad);
            let (mut seq, mut errors, mut lat, mut first_err) = (0usize, 0u64, Histogram::new(), None);
            let mut slot = 0u64;
            if rate <= 0.0 {
                // Churn only: no traffic.
                while !stop2.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            while !stop2.load(Ordering::Relaxed) {
                tokio::time::sleep_until(start + Duration::from_secs_f64(slot as f64 / rate.max(0.001))).await;
                slot += 1;
                let t = Instant::now();
                let body = json!({ "content": format!("bench:{seq}:{} {padding}", unix_nanos()) });
                match rest.ok(Method::POST, &path, Some(&token), Some(&body)).await {
                    Ok(_) => {
                        lat.record_duration(t.elapsed());
                        seq += 1;
                    }
                    Err(e) => {
                        // A failed send may still have been stored (e.g. a timeout): readers
                        // would then see a seq the sender reuses. Stop numbering over it.
                        errors += 1;
                        first_err.get_or_insert(e);
                        seq += 1;
                    }
                }
            }
            (seq, errors, lat, first_err)
        });
        Sender { stop, task }
    }

    async fn finish(self) -> Res<(usize, u64, Histogram, Option<String>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.map_err(|e| e.to_string())
    }
}

pub async fn run(a: SoakArgs) -> Res<PathBuf> {
    let target = a.common.target()?;
    let rest = Rest::new(&target.base);
    let exe = a.common.worker_exe()?;
    let mut r = Report::new(
        "soak",
        json!({ "population": a.population, "readers": a.readers, "rate": a.rate, "duration_s": a.duration,
                "churn_per_s": a.churn, "warmup_s": a.warmup, "warmup_flushes": a.warmup_flushes, "sample_s": a.sample_secs, "pad": a.pad }),
    );
    if target.pid.is_none() {
        r.note("no server PID (--pid): memory and fd figures are missing");
    }
    let m = a.population + 1;
    eprintln!("soak: seeding one guild of {m} members");
    let plan = SeedPlan { users: m, guilds: 1, members: m, concurrency: a.common.seed_concurrency };
    // Seeding uses its own client, dropped afterwards, so its idle keep-alive
    // connections do not count in the baseline's open fds.
    let (file, _) = seed(&Rest::new(&target.base), &plan).await?;
    let tokens: Vec<String> = file.users.iter().map(|u| u.token.clone()).collect();
    let channel = file.guilds[0].channel_id.clone();
    let tokens_file = write_tokens(&a.common.results, &tokens[1..])?;
    let gateway = rest.gateway_url().await?;
    let sampler = Sampler::start(target.pid, &rest, Duration::from_secs_f64(a.sample_secs.max(0.05)), "connect");

    eprintln!("soak: connecting {} sessions ({} readers)", a.population, a.readers);
    let extra = ["--mode".to_string(), "soak".into(), "--readers".into(), a.readers.to_string()];
    let (mut workers, c) = Workers::spawn_with(
        &exe,
        &gateway,
        Compress::Plain,
        &tokens_file,
        a.population,
        a.per_worker,
        a.connect_rate,
        INTENTS_DEFAULT,
        &extra,
    )
    .await?;
    if c.failed > 0 {
        r.note(format!("{} sessions failed their first IDENTIFY, e.g. {:?}", c.failed, c.errors));
    }
    r.row("population online after connecting", "", Goal::AtLeast(a.population as f64), c.ok as f64);
    let nworkers = a.population.div_ceil(a.per_worker.max(1)).max(1);

    sampler.set_phase("warm-up");
    let sender = Sender::start(&rest, &tokens[0], &channel, a.rate, a.pad);
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    if a.rate > 0.0 && a.warmup_flushes > 0 {
        let give_up = Instant::now() + Duration::from_secs_f64((a.warmup_max - a.warmup).max(0.0));
        let mut seen = flushes(&sampler.samples()).len();
        while seen < a.warmup_flushes && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_secs_f64(a.sample_secs)).await;
            seen = flushes(&sampler.samples()).len();
        }
        if seen < a.warmup_flushes {
            r.note(format!("warm-up ended at --warmup-max with {seen} of {} memtable flushes", a.warmup_flushes));
        } else {
            // The flushed memtable is released at the store's next version change
            // (within about ten seconds); read the baseline after that.
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
        r.row("memtable flushes during the warm-up", "", Goal::None, seen as f64);
    }
    r.row("seconds from the start to the baseline reading", "s", Goal::None, sampler.t0.elapsed().as_secs_f64());
    let baseline = sample_now(target.pid, &rest, sampler.t0, "baseline").await;
    let smaps = || target.pid.map(crate::sample::smaps_rollup).unwrap_or(Value::Null);
    let baseline_smaps = smaps();
    eprintln!("soak: baseline RSS {:?} KiB, fds {:?}", baseline.rss_kib, baseline.fds);

    sampler.set_phase("churn");
    let churn_start = sampler.t0.elapsed().as_secs_f64();
    if a.churn > 0.0 {
        workers.send(&format!("churn {}", a.churn / nworkers as f64)).await?;
    } else {
        r.note("--churn 0: traffic only (a control run for the memory figures)");
    }
    let end = Instant::now() + Duration::from_secs_f64(a.duration);
    while Instant::now() < end {
        tokio::time::sleep((end - Instant::now()).min(Duration::from_secs(60))).await;
        if let Some(s) = sampler.last() {
            eprintln!(
                "soak: t={:.0}s RSS {:?} KiB fds {:?} sessions_open {:?} connections {:?} store {:?} KiB",
                s.t, s.rss_kib, s.fds, s.sessions_open, s.connections, s.store_kib
            );
        }
    }
    let stopped = workers.request("stop", "stopped").await?;
    let churn_end = sampler.t0.elapsed().as_secs_f64();
    let pending: u64 = stopped.iter().map(|v| v["pending"].as_u64().unwrap_or(0)).sum();
    if pending > 0 {
        r.note(format!("{pending} churn operations were still running when churn stopped"));
    }

    // Settle: sessions dropped without RESUME end after the server's resume window.
    sampler.set_phase("settle");
    let settle_t = Instant::now();
    let p = a.population as u64;
    let settled = loop {
        let s = sample_now(target.pid, &rest, sampler.t0, "settle").await;
        if s.sessions_open == Some(p) && s.connections == Some(p) {
            break true;
        }
        if settle_t.elapsed().as_secs_f64() > a.settle_max {
            r.note(format!(
                "after {:.0} s the server still had {:?} sessions and {:?} connections (population {p})",
                a.settle_max, s.sessions_open, s.connections
            ));
            break false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let settle_s = settle_t.elapsed().as_secs_f64();
    // A few seconds of steady traffic at the settled population, then the final reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let final_s = sample_now(target.pid, &rest, sampler.t0, "final").await;
    let final_smaps = smaps();
    sampler.set_phase("final");
    let (sent, send_errors, send_lat, first_err) = sender.finish().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reports = workers.request(&format!("report {sent}"), "report").await?;
    workers.quit().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let empty = sample_now(target.pid, &rest, sampler.t0, "workers gone").await;
    let empty_smaps = smaps();
    let samples = sampler.finish().await;

    // Client-side counters.
    let sum = |k: &str| reports.iter().map(|v| v[k].as_u64().unwrap_or(0)).sum::<u64>();
    let mut errors: Vec<String> = Vec::new();
    let mut resume_h = Histogram::new();
    let mut bench_h = Histogram::new();
    for v in &reports {
        resume_h.merge(&Histogram::from_wire(&v["resume_hist"]));
        bench_h.merge(&Histogram::from_wire(&v["bench_hist"]));
        for e in v["errors"].as_array().into_iter().flatten() {
            if errors.len() < 10 {
                errors.push(e.as_str().unwrap_or("").to_string());
            }
        }
    }
    let churn_s = churn_end - churn_start;
    r.row("churn phase", "s", Goal::None, churn_s);
    r.row("churn operations done", "", Goal::None, sum("ops") as f64);
    r.row("IDENTIFYs (first + after clean close + after drop)", "", Goal::None, sum("identifies") as f64);
    r.row("clean closes (1000) then IDENTIFY", "", Goal::None, sum("clean") as f64);
    r.row("TCP drops then IDENTIFY", "", Goal::None, sum("drop_identify") as f64);
    r.row("TCP drops then RESUME", "", Goal::None, sum("resume_attempts") as f64);
    r.row(
        "RESUMEs OK (RESUMED, replay contiguous)",
        "",
        Goal::AtLeast(sum("resume_attempts") as f64),
        sum("resumes_ok") as f64,
    );
    r.row("RESUMEs failed (op 9, close or timeout)", "", Goal::AtMost(0.0), sum("resumes_failed") as f64);
    r.row("replayed dispatches (all resumes)", "", Goal::None, sum("replayed") as f64);
    r.row("gaps in `s` within a session (replay included)", "", Goal::AtMost(0.0), sum("seq_gaps") as f64);
    r.row(
        "bench messages missing/reordered within a session",
        "",
        Goal::AtMost(0.0),
        (sum("bench_gaps") + sum("bench_reorders")) as f64,
    );
    r.row("unexpected errors (closes, failed connects)", "", Goal::AtMost(0.0), sum("errors_total") as f64);
    r.row("reader sessions without the last message at the end", "", Goal::AtMost(0.0), sum("readers_behind") as f64);
    r.latency("RESUME → RESUMED", &resume_h, None);
    r.latency("REST send → reader", &bench_h, None);
    r.row("bench messages delivered to readers", "", Goal::None, bench_h.count() as f64);
    r.row("messages sent", "", Goal::None, sent as f64);
    r.row("send errors", "", Goal::AtMost(0.0), send_errors as f64);
    if let Some(e) = first_err {
        r.note(format!("first send error: {e}"));
    }
    r.latency("REST call (sender)", &send_lat, None);
    for e in &errors {
        r.note(format!("client error: {e}"));
    }

    // Server-side counters over the churn (cross-check).
    let at = |t: f64| samples.iter().rfind(|s| s.t <= t).cloned();
    if let (Some(s0), Some(s1)) = (at(churn_start), at(churn_end)) {
        let d = |f: fn(&Sample) -> Option<u64>| f(&s1).unwrap_or(0).saturating_sub(f(&s0).unwrap_or(0)) as f64;
        r.row("server: IDENTIFYs during churn (/metrics)", "", Goal::None, d(|s| s.identifies));
        r.row("server: RESUMEs during churn (/metrics)", "", Goal::None, d(|s| s.resumes));
        r.row("server: overflow closes during churn (/metrics)", "", Goal::AtMost(0.0), d(|s| s.overflows));
    }

    // Memory and fds.
    let churn_samples: Vec<&Sample> = samples.iter().filter(|s| s.phase == "churn" || s.phase == "settle").collect();
    let peak_rss = churn_samples.iter().filter_map(|s| s.rss_kib).max();
    let peak_fds = churn_samples.iter().filter_map(|s| s.fds).max();
    let peak_sessions = churn_samples.iter().filter_map(|s| s.sessions_open).max();
    r.row("seconds for the server's sessions to return to the population", "s", Goal::None, settle_s);
    r.row(
        "settled (sessions_open = connections = population)",
        "",
        Goal::AtLeast(1.0),
        if settled { 1.0 } else { 0.0 },
    );
    if let (Some(b), Some(f)) = (baseline.rss_kib, final_s.rss_kib) {
        let mib = |k: u64| k as f64 / 1024.0;
        r.row("server RSS baseline (after warm-up)", "MiB", Goal::None, mib(b));
        r.row("server RSS peak (churn + settle)", "MiB", Goal::None, mib(peak_rss.unwrap_or(0)));
        r.row("server RSS final", "MiB", Goal::None, mib(f));
        r.row("server RSS final − baseline", "%", Goal::None, (f as f64 / b as f64 - 1.0) * 100.0);
        if let Some(e) = empty.rss_kib {
            r.row("server RSS after the workers quit (no sessions)", "MiB", Goal::None, mib(e));
        }
        // The storage engine's memtables and block cache fill with the messages
        // written and read, up to their configured bounds (8 MiB per keyspace
        // memtable, the 64 MiB block cache), and a flush gives the memtable's memory
        // back (its own allocator heap): RSS follows the gauge, and the whole RSS
        // moves with the memtable's fill level at the instant of each reading. Each
        // flush also adds a table whose filter and block index stay in memory (until
        // compaction merges tables): store memory that grows with the data written.
        // The target applies to the rest of the process.
        if let (Some(sb), Some(sf)) = (baseline.store_kib, final_s.store_kib) {
            let (ob, of) = (b.saturating_sub(sb), f.saturating_sub(sf));
            r.row("store memtables + block cache + table indexes, baseline", "MiB", Goal::None, mib(sb));
            r.row("store memtables + block cache + table indexes, final", "MiB", Goal::None, mib(sf));
            r.row("server RSS − store buffers, baseline", "MiB", Goal::None, mib(ob));
            r.row(
                "server RSS − store buffers, final (target ≤ baseline + 10 %)",
                "MiB",
                Goal::AtMost(mib(ob) * 1.10),
                mib(of),
            );
            r.row(
                "server RSS − store buffers, final − baseline",
                "%",
                Goal::AtMost(10.0),
                (of as f64 / ob.max(1) as f64 - 1.0) * 100.0,
            );
            let flushes = flushes(&samples);
            r.row(
                "memtable flushes seen in the whole run (store gauge halved between samples)",
                "",
                Goal::None,
                flushes.len() as f64,
            );
            if let Some(last) = flushes.last() {
                r.row("store buffers just before the last flush", "MiB", Goal::None, mib(*last));
            }
        }
    }
    if let (Some(b), Some(f)) = (baseline.fds, final_s.fds) {
        r.row("server open fds baseline", "", Goal::None, b as f64);
        r.row("server open fds peak (churn + settle)", "", Goal::None, peak_fds.unwrap_or(0) as f64);
        r.row("server open fds final (target ≤ baseline + 5)", "", Goal::AtMost(b as f64 + 5.0), f as f64);
        if let Some(e) = empty.fds {
            r.row("server open fds after the workers quit", "", Goal::None, e as f64);
        }
    }
    if let Some(ps) = peak_sessions {
        r.row("server sessions_open peak (live + kept for RESUME)", "", Goal::None, ps as f64);
    }
    r.extra("baseline", baseline.to_json());
    r.extra("final", final_s.to_json());
    r.extra("workers gone", empty.to_json());
    r.extra("smaps_rollup", json!({ "baseline": baseline_smaps, "final": final_smaps, "workers gone": empty_smaps }));
    r.extra("samples", Value::Array(samples.iter().map(Sample::to_json).collect()));
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples.iter().filter_map(|s| Some((s.t, f(s)?))).collect()
    };
    r.svg(
        "rss",
        line_svg(
            &format!("soak: server RSS (MiB) and sessions_open; churn {churn_start:.0}-{churn_end:.0} s"),
            "seconds",
            &[
                ("RSS MiB".into(), series(&|s| Some(s.rss_kib? as f64 / 1024.0))),
                ("store memtables + cache + indexes MiB".into(), series(&|s| Some(s.store_kib? as f64 / 1024.0))),
                ("sessions open".into(), series(&|s| Some(s.sessions_open? as f64))),
            ],
        ),
    );
    r.svg(
        "fds",
        line_svg(
            &format!("soak: server open fds and connections; churn {churn_start:.0}-{churn_end:.0} s"),
            "seconds",
            &[
                ("open fds".into(), series(&|s| Some(s.fds? as f64))),
                ("connections".into(), series(&|s| Some(s.connections? as f64))),
            ],
        ),
    );
    let _ = std::fs::remove_file(&tokens_file);
    r.finish(&a.common.results).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Worker side (`guildhall-bench worker --mode soak`).

#[derive(Clone, Copy, Debug)]
enum Op {
    Clean,
    Resume,
    Reidentify,
}

#[derive(Default)]
struct Stats {
    identifies: AtomicU64,
    clean: AtomicU64,
    drop_identify: AtomicU64,
    resume_attempts: AtomicU64,
    resumes_ok: AtomicU64,
    resumes_failed: AtomicU64,
    replayed: AtomicU64,
    seq_gaps: AtomicU64,
    bench_gaps: AtomicU64,
    bench_reorders: AtomicU64,
    errors_total: AtomicU64,
    ops: AtomicU64,
    /// Churn operations sent to slots and not finished yet.
    inflight: AtomicUsize,
    /// Slots whose task is still running.
    alive: AtomicUsize,
    errors: Mutex<Vec<String>>,
    resume_hist: Mutex<Histogram>,
    bench_hist: Mutex<Histogram>,
}

impl Stats {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    fn error(&self, e: String) {
        Stats::add(&self.errors_total);
        let mut v = self.errors.lock().unwrap();
        if v.len() < 10 {
            v.push(e);
        }
    }
}

struct Slot {
    global: u64,
    token: String,
    intents: u64,
    reader: bool,
    gateway: String,
    stats: Arc<Stats>,
    /// Last bench seq seen by this slot (-1: none).
    last_bench_seen: Arc<AtomicI64>,
}

/// One live session of a slot: the connection and its continuity state.
struct Live {
    gw: Gw,
    session_id: String,
    /// Last dispatch `s` seen in this session (across resumes).
    last_s: u64,
    /// Last bench seq seen in this session (across resumes).
    last_bench: Option<u32>,
    next_beat: tokio::time::Instant,
}

impl Slot {
    fn source(&self) -> Option<std::net::IpAddr> {
        let i = self.global;
        self.gateway
            .contains("127.0.0.1")
            .then(|| std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1 + (i / 256 % 8) as u8, (i % 256) as u8)))
    }

    /// Connects and IDENTIFYs; returns the live session once READY arrived.
    async fn identify(&self) -> Res<Live> {
        let mut gw = Gw::connect_from(&self.gateway, Compress::Plain, self.source()).await?;
        gw.identify(&self.token, self.intents).await?;
        let f = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let f = gw.next_frame().await?;
                if f.op == 0 && f.t.as_deref() == Some("READY") {
                    return Ok(f);
                }
                if f.op == 9 {
                    return Err("INVALID_SESSION after IDENTIFY".to_string());
                }
            }
        })
        .await
        .map_err(|_| "no READY within 10 s".to_string())??;
        let v = f.json()?;
        let session_id = v["d"]["session_id"].as_str().ok_or("READY without session_id")?.to_string();
        Stats::add(&self.stats.identifies);
        let beat = gw::first_beat(gw.heartbeat_ms, self.global.wrapping_mul(7919));
        Ok(Live {
            session_id,
            last_s: f.s.unwrap_or(0),
            last_bench: None,
            next_beat: tokio::time::Instant::now() + beat,
            gw,
        })
    }

    /// Identifies, retrying once a second on failure.
    async fn identify_retrying(&self) -> Live {
        loop {
            match self.identify().await {
                Ok(l) => return l,
                Err(e) => {
                    self.stats.error(format!("slot {}: identify: {e}", self.global));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Checks one dispatch against the session's continuity and records bench messages.
    fn dispatch(&self, live: &mut Live, f: &gw::Frame) {
        if let Some(s) = f.s {
            if s != live.last_s + 1 {
                Stats::add(&self.stats.seq_gaps);
                self.stats.error(format!("slot {}: s {} after {}", self.global, s, live.last_s));
            }
            live.last_s = s;
        }
        if self.reader
            && f.t.as_deref() == Some("MESSAGE_CREATE")
            && let Some((seq, sent)) = crate::worker::bench_marker(&f.raw)
        {
            if let Some(p) = live.last_bench {
                if seq <= p {
                    Stats::add(&self.stats.bench_reorders);
                } else if seq != p + 1 {
                    Stats::add(&self.stats.bench_gaps);
                    self.stats.error(format!("slot {}: bench {} after {}", self.global, seq, p));
                }
            }
            live.last_bench = Some(seq);
            self.last_bench_seen.store(i64::from(seq), Ordering::Relaxed);
            self.stats.bench_hist.lock().unwrap().record(unix_nanos().saturating_sub(sent));
        }
    }

    /// Drops `live`'s TCP connection and RESUMEs the session on a new one. On
    /// success returns it (same continuity state); on failure counts it and
    /// identifies anew.
    async fn resume(&self, live: Live) -> Live {
        let Live { gw, session_id, last_s, last_bench, next_beat } = live;
        drop(gw);
        Stats::add(&self.stats.resume_attempts);
        let t = Instant::now();
        let attempt = async {
            let mut gw = Gw::connect_from(&self.gateway, Compress::Plain, self.source()).await?;
            gw.resume(&self.token, &session_id, last_s).await?;
            let mut live = Live { gw, session_id: session_id.clone(), last_s, last_bench, next_beat };
            let mut replayed = 0u64;
            loop {
                let f = live.gw.next_frame().await?;
                match f.op {
                    0 => {
                        self.dispatch(&mut live, &f);
                        if f.t.as_deref() == Some("RESUMED") {
                            return Ok((live, replayed));
                        }
                        replayed += 1;
                    }
                    9 => return Err("op 9 INVALID_SESSION".to_string()),
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok((live, replayed))) => {
                Stats::add(&self.stats.resumes_ok);
                self.stats.replayed.fetch_add(replayed, Ordering::Relaxed);
                self.stats.resume_hist.lock().unwrap().record_duration(t.elapsed());
                live
            }
            Ok(Err(e)) => {
                Stats::add(&self.stats.resumes_failed);
                self.stats.error(format!("slot {}: resume from s {last_s}: {e}", self.global));
                self.identify_retrying().await
            }
            Err(_) => {
                Stats::add(&self.stats.resumes_failed);
                self.stats.error(format!("slot {}: resume from s {last_s}: no RESUMED within 10 s", self.global));
                self.identify_retrying().await
            }
        }
    }

    /// The slot's life: a session, replaced or resumed as churn operations arrive.
    async fn run(self, mut ops: mpsc::UnboundedReceiver<Op>, connected: mpsc::UnboundedSender<(Res<u64>, u64)>) {
        let t0 = Instant::now();
        let first = self.identify().await;
        let mut live = match first {
            Ok(l) => {
                let _ = connected.send((Ok(t0.elapsed().as_nanos() as u64), unix_nanos()));
                l
            }
            Err(e) => {
                let _ = connected.send((Err(e), 0));
                self.identify_retrying().await
            }
        };
        drop(connected);
        loop {
            let period = Duration::from_millis(live.gw.heartbeat_ms.max(1000));
            tokio::select! {
                op = ops.recv() => {
                    let Some(op) = op else {
                        live.gw.close_normal().await;
                        self.stats.alive.fetch_sub(1, Ordering::Relaxed);
                        return;
                    };
                    live = match op {
                        Op::Clean => {
                            live.gw.close_normal().await;
                            Stats::add(&self.stats.clean);
                            self.identify_retrying().await
                        }
                        Op::Reidentify => {
                            drop(live);
                            Stats::add(&self.stats.drop_identify);
                            self.identify_retrying().await
                        }
                        Op::Resume => self.resume(live).await,
                    };
                    Stats::add(&self.stats.ops);
                    self.stats.inflight.fetch_sub(1, Ordering::Relaxed);
                }
                _ = tokio::time::sleep_until(live.next_beat) => {
                    live.next_beat += period;
                    if let Err(e) = live.gw.heartbeat().await {
                        self.stats.error(format!("slot {}: heartbeat: {e}", self.global));
                        live = self.identify_retrying().await;
                    }
                }
                f = live.gw.next_frame() => match f {
                    Ok(f) => match f.op {
                        0 => self.dispatch(&mut live, &f),
                        1 => {
                            let _ = live.gw.heartbeat().await;
                        }
                        7 | 9 => {
                            self.stats.error(format!("slot {}: op {} from the server", self.global, f.op));
                            live = self.identify_retrying().await;
                        }
                        _ => {}
                    },
                    Err(e) => {
                        self.stats.error(format!("slot {}: {e}", self.global));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        live = self.identify_retrying().await;
                    }
                },
            }
        }
    }
}

/// Worker protocol: `connected` once every slot identified; then `churn RATE` starts
/// churn at RATE ops/s, `stop` ends it (answer `stopped` once the slots are idle),
/// `report N` waits (≤ 20 s) for every reader to have seen bench seq N−1 and answers
/// the counters, `quit` closes every session with 1000.
pub async fn worker(a: WorkerArgs) -> Res<()> {
    let tokens: Vec<String> =
        serde_json::from_slice(&std::fs::read(&a.tokens).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    let n = a.to.saturating_sub(a.from);
    let stats = Arc::new(Stats::default());
    let (ctx, mut crx) = mpsc::unbounded_channel::<(Res<u64>, u64)>();
    let mut slots = Vec::with_capacity(n);
    let mut seen = Vec::with_capacity(n);
    let start = Instant::now();
    let first_start_ns = unix_nanos();
    for k in 0..n {
        let i = a.from + k;
        let reader = i < a.readers;
        let last = Arc::new(AtomicI64::new(-1));
        seen.push((reader, last.clone()));
        let slot = Slot {
            global: i as u64,
            token: tokens[i % tokens.len()].clone(),
            intents: if reader { a.intents } else { 1 },
            reader,
            gateway: a.gateway.clone(),
            stats: stats.clone(),
            last_bench_seen: last,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        slots.push(tx);
        stats.alive.fetch_add(1, Ordering::Relaxed);
        let at = start + Duration::from_secs_f64(k as f64 / a.rate.max(1.0));
        let ctx = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            slot.run(rx, ctx).await;
        });
    }
    drop(ctx);
    crate::worker::report_connected(&mut crx, n, first_start_ns).await;
    let slots = Arc::new(slots);
    let mut churn: Option<(Arc<AtomicBool>, tokio::task::JoinHandle<()>)> = None;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("churn") => {
                let rate: f64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(1.0);
                let stop = Arc::new(AtomicBool::new(false));
                let (stop2, slots, stats) = (stop.clone(), slots.clone(), stats.clone());
                let task = tokio::spawn(async move {
                    let t0 = tokio::time::Instant::now();
                    // xorshift over the slots; operations cycle clean → resume → re-identify.
                    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ unix_nanos();
                    let mut k = 0u64;
                    while !stop2.load(Ordering::Relaxed) && !slots.is_empty() {
                        tokio::time::sleep_until(t0 + Duration::from_secs_f64(k as f64 / rate.max(0.001))).await;
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let op = [Op::Clean, Op::Resume, Op::Reidentify][(k % 3) as usize];
                        stats.inflight.fetch_add(1, Ordering::Relaxed);
                        if slots[(x % slots.len() as u64) as usize].send(op).is_err() {
                            stats.inflight.fetch_sub(1, Ordering::Relaxed);
                        }
                        k += 1;
                    }
                });
                churn = Some((stop, task));
            }
            Some("stop") => {
                if let Some((stop, task)) = churn.take() {
                    stop.store(true, Ordering::Relaxed);
                    let _ = task.await;
                }
                let deadline = Instant::now() + Duration::from_secs(30);
                while stats.inflight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                emit(&json!({ "kind": "stopped", "pending": stats.inflight.load(Ordering::Relaxed) })).await;
            }
            Some("report") => {
                let total: i64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let behind = || seen.iter().filter(|(r, l)| *r && l.load(Ordering::Relaxed) < total - 1).count();
                let deadline = Instant::now() + Duration::from_secs(20);
                while behind() > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
                let s = &stats;
                emit(&json!({
                    "kind": "report", "identifies": g(&s.identifies), "clean": g(&s.clean),
                    "drop_identify": g(&s.drop_identify), "resume_attempts": g(&s.resume_attempts),
                    "resumes_ok": g(&s.resumes_ok), "resumes_failed": g(&s.resumes_failed), "replayed": g(&s.replayed),
                    "seq_gaps": g(&s.seq_gaps), "bench_gaps": g(&s.bench_gaps), "bench_reorders": g(&s.bench_reorders),
                    "errors_total": g(&s.errors_total), "ops": g(&s.ops), "readers_behind": behind(),
                    "errors": s.errors.lock().unwrap().clone(),
                    "resume_hist": s.resume_hist.lock().unwrap().to_wire(),
                    "bench_hist": s.bench_hist.lock().unwrap().to_wire(),
                }))
                .await;
            }
            Some("quit") | None => break,
            Some(_) => {}
        }
    }
    if let Some((stop, _)) = churn {
        stop.store(true, Ordering::Relaxed);
    }
    // Dropping the slot senders makes each slot close its session with 1000.
    drop(slots);
    let deadline = Instant::now() + Duration::from_secs(15);
    while stats.alive.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90.0);
        assert_eq!(parse_duration("30m").unwrap(), 1800.0);
        assert_eq!(parse_duration("1.5s").unwrap(), 1.5);
        assert_eq!(parse_duration("1h").unwrap(), 3600.0);
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
