//! stalled: sessions that never read while a busy guild fans out. One guild of R
//! reading members + S stalled members + a sender (user 0).
//!
//! - Phase A (baseline): only the R readers are online; the sender posts
//!   `bench:SEQ:SEND_NS <padding>` through REST at a fixed rate for T seconds.
//! - Then S stalled sessions connect with a small `SO_RCVBUF` (set before connect,
//!   so the window they advertise stays small), IDENTIFY, read up to READY and then
//!   never read the socket again. They keep heartbeating (writes only), so a server
//!   close is caused by the stall, not by a missed heartbeat.
//! - Until their sockets' buffers fill, the stalled sessions take events like any
//!   other: the first messages after they join fan out to R + S live sessions
//!   (~16 messages each here, more with a larger `SO_RCVBUF`). That is load, not a
//!   stall, so `--stall-secs` of sending comes first (reported, no target) and
//!   phase B starts once the stalled sessions are stalled.
//! - Phase B: the same sending again, with the stalled sessions in the guild.
//!
//! The server (crates/gateway/src/conn.rs, crates/runtime/src/session.rs) pushes
//! each event into every session's bounded queue with `try_send`; a stalled
//! session's socket fills, its task's write waits (guarded by `write_timeout`),
//! its queue fills, and the push that finds it full marks it overflowed: the
//! task closes the socket without waiting and ends the session. So a stalled
//! session costs at most its queue (`queue_capacity` slots), the batch its task
//! holds in a pending write (≤ `max_batch` frames), its replay outbox (≤ 1,024
//! entries of refcounted bodies) and the kernel's socket buffers (not in RSS).
//!
//! Reported: readers' REST send → receipt latency in A and B (p99 in B should be
//! within max(1 ms, +20 %) of A), every reader got every message once and in
//! order in both phases, server RSS through the phases (from a 200 ms sampler),
//! how many stalled sessions the server closed (`/metrics` overflow counter) and
//! when, what the stalled clients saw when they finally read (close frame, EOF,
//! reset, or still open), and RSS once the stalled sessions are gone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::fanout::send_messages_from;
use crate::gw::{self, Compress, Gw, INTENTS_DEFAULT};
use crate::hist::{Histogram, ms};
use crate::report::{Goal, Report};
use crate::rest::Rest;
use crate::sample::{Sample, Sampler};
use crate::seed::{SeedPlan, seed};
use crate::worker::{WorkerArgs, Workers, emit, write_tokens};
use crate::{Common, Res};

#[derive(Args, Debug, Clone)]
pub struct StalledArgs {
    #[command(flatten)]
    pub common: Common,
    /// Reading members (online in both phases).
    #[arg(long, default_value_t = 2000)]
    pub readers: usize,
    /// Stalled members (online in phase B only).
    #[arg(long, default_value_t = 1000)]
    pub stalled: usize,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of sending in each phase.
    #[arg(long, default_value_t = 20.0)]
    pub secs: f64,
    /// Seconds of sending between the stalled sessions' READY and phase B, while
    /// their socket buffers fill (reported without a target; 0 = none).
    #[arg(long, default_value_t = 2.0)]
    pub stall_secs: f64,
    /// Padding added to each message's content, bytes (content ≈ 30 + pad bytes).
    #[arg(long, default_value_t = 470)]
    pub pad: usize,
    /// `SO_RCVBUF` of each stalled session's socket.
    #[arg(long, default_value_t = 4096)]
    pub rcvbuf: u32,
    #[arg(long, default_value_t = 9000)]
    pub per_worker: usize,
    /// Session connect rate.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Seconds to wait after the server forgot the stalled sessions before the last RSS reading.
    #[arg(long, default_value_t = 5.0)]
    pub settle: f64,
    /// Longest wait for the server to forget the stalled sessions (a session whose
    /// connection was dropped stays resumable for the server's resume window).
    #[arg(long, default_value_t = 180.0)]
    pub settle_max: f64,
    /// Sampling period of server RSS and /metrics, ms.
    #[arg(long, default_value_t = 200)]
    pub sample_ms: u64,
}

struct Phase {
    hist: Histogram,
    deliveries: u64,
    bad: u64,
    first_bad: Option<String>,
    rest_lat: Histogram,
    send_rate: f64,
    /// Per second of sending (by send time): the slowest REST send → last reader
    /// of the messages sent in it, ms. Shows when in the phase the tail happens.
    timeline: Vec<f64>,
    /// The same for the sender's REST call alone (a slow write shows in both).
    rest_timeline: Vec<f64>,
    /// Per message, in send order: REST send → last reader, ms (0 = never arrived).
    /// Shows whether the tail is periodic in the message sequence.
    per_message: Vec<f64>,
}

/// The largest of `took` (ns, `None` = not measured) per second of `sent`, in ms.
fn per_second(sent: &[u64], took: impl Iterator<Item = Option<u64>>) -> Vec<f64> {
    let Some(&t0) = sent.first() else { return Vec::new() };
    let mut out: Vec<f64> = Vec::new();
    for (s, d) in sent.iter().zip(took) {
        let Some(d) = d else { continue };
        let sec = (s.saturating_sub(t0) / 1_000_000_000) as usize;
        if out.len() <= sec {
            out.resize(sec + 1, 0.0);
        }
        out[sec] = out[sec].max(ms(d));
    }
    out
}

fn merge_reports(reports: &[Value], total: usize) -> (Histogram, u64, u64, Option<String>, Vec<u64>) {
    let mut all = Histogram::new();
    let mut last = vec![0u64; total];
    let (mut deliveries, mut bad) = (0u64, 0u64);
    let mut first_bad = None;
    for v in reports {
        all.merge(&Histogram::from_wire(&v["hist"]));
        for (q, x) in v["last"].as_array().into_iter().flatten().enumerate().take(total) {
            last[q] = last[q].max(x.as_u64().unwrap_or(0));
        }
        deliveries += v["deliveries"].as_u64().unwrap_or(0);
        bad +=
            v["missing"].as_u64().unwrap_or(0) + v["dups"].as_u64().unwrap_or(0) + v["reordered"].as_u64().unwrap_or(0);
        if first_bad.is_none() {
            first_bad = v["first_bad"].as_str().map(str::to_string);
        }
    }
    (all, deliveries, bad, first_bad, last)
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    rest: &Rest,
    sender: &str,
    channel: &str,
    readers: &mut Workers,
    first: usize,
    total: usize,
    rate: f64,
    pad: usize,
) -> Res<Phase> {
    let t = Instant::now();
    let (sent, rest_lat, took) = send_messages_from(rest, sender, channel, first, total, rate, pad).await?;
    let send_rate = total as f64 / t.elapsed().as_secs_f64().max(1e-9);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reports = readers.report_range(first, first + total).await?;
    let (hist, deliveries, bad, first_bad, last) = merge_reports(&reports, total);
    // Send → last reader per message (`None`: never arrived); `last[q]` is the latest
    // arrival of seq `q`, `sent[q]` its send time.
    let lat: Vec<Option<u64>> = sent.iter().zip(&last).map(|(s, l)| (*l > 0).then(|| l.saturating_sub(*s))).collect();
    let timeline = per_second(&sent, lat.iter().copied());
    let per_message = lat.iter().map(|d| d.map_or(0.0, ms)).collect();
    let rest_timeline = per_second(&sent, took.iter().map(|t| Some(*t)));
    Ok(Phase { hist, deliveries, bad, first_bad, rest_lat, send_rate, timeline, rest_timeline, per_message })
}

fn kib(s: &Option<Sample>) -> Option<u64> {
    s.as_ref().and_then(|s| s.rss_kib)
}

pub async fn run(a: StalledArgs) -> Res<PathBuf> {
    let target = a.common.target()?;
    let rest = Rest::new(&target.base);
    let exe = a.common.worker_exe()?;
    let mut r = Report::new(
        "stalled",
        json!({ "readers": a.readers, "stalled": a.stalled, "rate": a.rate, "secs": a.secs, "pad": a.pad,
                "rcvbuf": a.rcvbuf, "stalled_heartbeat": true, "stall_secs": a.stall_secs }),
    );
    if target.pid.is_none() {
        r.note("no server PID (--pid): memory figures are missing");
    }
    let m = 1 + a.readers + a.stalled;
    eprintln!("stalled: seeding one guild of {m} members");
    let plan = SeedPlan { users: m, guilds: 1, members: m, concurrency: a.common.seed_concurrency };
    let (file, _) = seed(&rest, &plan).await?;
    let tokens: Vec<String> = file.users.iter().map(|u| u.token.clone()).collect();
    let channel = file.guilds[0].channel_id.clone();
    let sender = tokens[0].clone();
    let readers_file = write_tokens(&a.common.results, &tokens[1..=a.readers])?;
    let stalled_file = write_tokens(&a.common.results, &tokens[1 + a.readers..])?;
    let gateway = rest.gateway_url().await?;
    let sampler = Sampler::start(target.pid, &rest, Duration::from_millis(a.sample_ms.max(20)), "connect");

    eprintln!("stalled: connecting {} readers", a.readers);
    let (mut readers, c) = Workers::spawn(
        &exe,
        &gateway,
        Compress::Plain,
        &readers_file,
        a.readers,
        a.per_worker,
        a.connect_rate,
        INTENTS_DEFAULT,
    )
    .await?;
    if c.failed > 0 {
        r.note(format!("{} readers failed to identify, e.g. {:?}", c.failed, c.errors));
    }
    r.row("readers online", "", Goal::AtLeast(a.readers as f64), c.ok as f64);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let total = (a.rate * a.secs).round().max(1.0) as usize;
    sampler.set_phase("A");
    let before_a = sampler.last();
    eprintln!("stalled: phase A, {total} messages at {}/s", a.rate);
    let pa = phase(&rest, &sender, &channel, &mut readers, 0, total, a.rate, a.pad).await?;
    sampler.set_phase("stalled-connect");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_a = sampler.last();

    eprintln!("stalled: connecting {} stalled sessions (SO_RCVBUF {})", a.stalled, a.rcvbuf);
    let extra = ["--mode".to_string(), "stalled".into(), "--rcvbuf".into(), a.rcvbuf.to_string()];
    let (mut stalled, sc) = Workers::spawn_with(
        &exe,
        &gateway,
        Compress::Plain,
        &stalled_file,
        a.stalled,
        a.per_worker,
        a.connect_rate,
        INTENTS_DEFAULT,
        &extra,
    )
    .await?;
    if sc.failed > 0 {
        r.note(format!("{} stalled sessions failed to identify, e.g. {:?}", sc.failed, sc.errors));
    }
    r.row("stalled sessions identified", "", Goal::AtLeast(a.stalled as f64), sc.ok as f64);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled_idle = sampler.last();
    let filling = (a.rate * a.stall_secs).round() as usize;
    let pf = if filling > 0 {
        sampler.set_phase("stalling");
        eprintln!("stalled: {filling} messages while the stalled sessions' sockets fill");
        Some(phase(&rest, &sender, &channel, &mut readers, total, filling, a.rate, a.pad).await?)
    } else {
        None
    };
    sampler.set_phase("B");
    let b_start = sampler.t0.elapsed().as_secs_f64();
    eprintln!("stalled: phase B");
    let pb = phase(&rest, &sender, &channel, &mut readers, total + filling, total, a.rate, a.pad).await?;
    let b_end = sampler.t0.elapsed().as_secs_f64();
    sampler.set_phase("drain");
    let drained = stalled.request("drain", "drained").await?;
    sampler.set_phase("after");
    stalled.quit().await;
    // Wait until the server holds only the readers' sessions again.
    let forget_t = Instant::now();
    let forgot = loop {
        let s = crate::sample::sample_now(target.pid, &rest, sampler.t0, "after").await;
        let n = a.readers as u64;
        if s.sessions_open.is_some_and(|x| x <= n) && s.connections.is_some_and(|x| x <= n) {
            break true;
        }
        if forget_t.elapsed().as_secs_f64() > a.settle_max {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let forget_s = forget_t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(a.settle)).await;
    let after = Some(crate::sample::sample_now(target.pid, &rest, sampler.t0, "after").await);
    readers.quit().await;
    let samples = sampler.finish().await;

    // Delivery to readers in every phase. The filling phase has no latency target
    // and no sender-rate target (at the smoke test's 20 messages one slow call
    // would miss it).
    let fill = pf.as_ref().map(|p| ("while the stalled sessions' sockets fill", p, filling, false));
    let phases =
        [Some(("A (readers only)", &pa, total, true)), fill, Some(("B (with stalled sessions)", &pb, total, true))];
    for (name, p, sent, rate_target) in phases.into_iter().flatten() {
        let expected = sent as u64 * c.ok;
        r.row(
            format!("{name}: deliveries (expected {expected})"),
            "",
            Goal::AtLeast(expected as f64),
            p.deliveries as f64,
        );
        r.row(format!("{name}: missing + duplicate + out-of-order"), "", Goal::AtMost(0.0), p.bad as f64);
        if let Some(b) = &p.first_bad {
            r.note(format!("{name}: {b}"));
        }
        let rate_goal = if rate_target { Goal::AtLeast(a.rate * 0.95) } else { Goal::None };
        r.row(format!("{name}: messages/s achieved by the sender"), "/s", rate_goal, p.send_rate);
        r.latency(&format!("{name}: REST send→reader"), &p.hist, None);
        r.row(format!("{name}: REST send→reader max"), "ms", Goal::None, ms(p.hist.max()));
        r.latency(&format!("{name}: REST call (sender)"), &p.rest_lat, None);
        if let Some((sec, worst)) = p.timeline.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
            r.row(format!("{name}: second of sending with the slowest last reader"), "s", Goal::None, sec as f64);
            r.row(format!("{name}: slowest last reader in that second"), "ms", Goal::None, *worst);
        }
        r.extra(&format!("{name}: slowest last reader per second of sending, ms"), json!(p.timeline));
        r.extra(&format!("{name}: slowest REST send per second of sending, ms"), json!(p.rest_timeline));
        r.extra(&format!("{name}: REST send → last reader per message, ms"), json!(p.per_message));
    }
    let (a50, a99) = (ms(pa.hist.quantile(0.5)), ms(pa.hist.quantile(0.99)));
    let b99 = ms(pb.hist.quantile(0.99));
    let allowed = a99 + (a99 * 0.2).max(1.0);
    r.row("reader p99 in B (target: A's p99 + max(1 ms, 20 %))", "ms", Goal::AtMost(allowed), b99);
    r.row("reader p50 in B − p50 in A", "ms", Goal::None, ms(pb.hist.quantile(0.5)) - a50);

    // What happened to the stalled sessions.
    let b_samples: Vec<&Sample> = samples.iter().filter(|s| s.t >= b_start).collect();
    let ov0 = stalled_idle.as_ref().and_then(|s| s.overflows).unwrap_or(0);
    let ov_final = samples.last().and_then(|s| s.overflows).unwrap_or(0);
    let closed_by_server = ov_final.saturating_sub(ov0);
    r.row("stalled sessions closed by the server (overflow counter)", "", Goal::None, closed_by_server as f64);
    let first_close = b_samples.iter().find(|s| s.overflows.unwrap_or(0) > ov0).map(|s| s.t - b_start);
    let last_close =
        b_samples.iter().find(|s| s.overflows.unwrap_or(0) >= ov_final && ov_final > ov0).map(|s| s.t - b_start);
    if let (Some(f), Some(l)) = (first_close, last_close) {
        r.row("first overflow close, after phase B started", "s", Goal::None, f);
        r.row("last overflow close, after phase B started", "s", Goal::None, l);
    }
    r.row("phase B length (sending + report)", "s", Goal::None, b_end - b_start);
    // Connections the server dropped (write timeout or overflow), from the connections gauge.
    let conn0 = stalled_idle.as_ref().and_then(|s| s.connections).unwrap_or(0);
    let during: Vec<&Sample> = b_samples.iter().copied().filter(|s| s.phase == "B" || s.phase == "drain").collect();
    let conn_min = during.iter().filter_map(|s| s.connections).min().unwrap_or(conn0);
    r.row(
        "stalled connections the server dropped during B (connections gauge)",
        "",
        Goal::None,
        conn0.saturating_sub(conn_min) as f64,
    );
    if conn_min < conn0 {
        let first = during.iter().find(|s| s.connections.is_some_and(|c| c < conn0)).map(|s| s.t - b_start);
        let last = during.iter().find(|s| s.connections == Some(conn_min)).map(|s| s.t - b_start);
        if let (Some(f), Some(l)) = (first, last) {
            r.row("first connection dropped, after phase B started", "s", Goal::None, f);
            r.row("last connection dropped, after phase B started", "s", Goal::None, l);
        }
    }
    let kept = during.last().and_then(|s| s.sessions_open).unwrap_or(0).saturating_sub(a.readers as u64);
    r.row("stalled sessions still held by the server at the end of B (resumable)", "", Goal::None, kept as f64);
    r.row("seconds until the server forgot the stalled sessions", "s", Goal::None, forget_s);
    if !forgot {
        r.note(format!("the server still held stalled sessions {:.0} s after they disconnected", a.settle_max));
    }
    let (mut seen_closed, mut seen_open, mut bench_msgs) = (0u64, 0u64, 0u64);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for v in &drained {
        seen_closed += v["closed"].as_u64().unwrap_or(0);
        seen_open += v["open"].as_u64().unwrap_or(0);
        bench_msgs += v["bench_msgs"].as_u64().unwrap_or(0);
        for (k, n) in v["reasons"].as_object().into_iter().flatten() {
            *reasons.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
        }
    }
    r.row("stalled clients that found their connection closed when they read", "", Goal::None, seen_closed as f64);
    r.row("stalled clients still open when they read", "", Goal::None, seen_open as f64);
    r.row(
        "bench messages a stalled client got before the close (mean)",
        "",
        Goal::None,
        bench_msgs as f64 / sc.ok.max(1) as f64,
    );
    r.extra("stalled client outcomes", json!(reasons));

    // Memory.
    if let (Some(ba), Some(aa), Some(si), Some(af)) = (kib(&before_a), kib(&after_a), kib(&stalled_idle), kib(&after)) {
        let peak =
            |phase: &str| samples.iter().filter(|s| s.phase == phase).filter_map(|s| s.rss_kib).max().unwrap_or(0);
        let (peak_a, peak_b) = (peak("A"), peak("B").max(peak("drain")));
        let mib = |k: u64| k as f64 / 1024.0;
        r.row("server RSS before phase A", "MiB", Goal::None, mib(ba));
        r.row("server RSS peak in phase A", "MiB", Goal::None, mib(peak_a));
        r.row("server RSS after phase A (before stalled sessions)", "MiB", Goal::None, mib(aa));
        r.row("server RSS with the stalled sessions identified, idle", "MiB", Goal::None, mib(si));
        r.row("server RSS peak in phase B", "MiB", Goal::None, mib(peak_b));
        let per = |x: u64, base: u64| x.saturating_sub(base) as f64 / sc.ok.max(1) as f64;
        r.row("RSS per stalled session: peak B − idle with stalled sessions", "KiB", Goal::None, per(peak_b, si));
        r.row("RSS per stalled session: peak B − before they connected", "KiB", Goal::None, per(peak_b, aa));
        r.row(
            format!("server RSS {:.1} s after the server forgot the stalled sessions", a.settle),
            "MiB",
            Goal::None,
            mib(af),
        );
        // The messages sent during B also fill the store's memtable (up to its 8 MiB
        // bound, then flushed); as in soak, the target applies to the rest.
        let store = |s: &Option<Sample>| s.as_ref().and_then(|s| s.store_kib);
        if let (Some(sa), Some(sf)) = (store(&after_a), store(&after)) {
            r.row(
                "store memtables + block cache + table indexes before the stalled sessions",
                "MiB",
                Goal::None,
                mib(sa),
            );
            r.row("store memtables + block cache + table indexes at the end", "MiB", Goal::None, mib(sf));
            r.row(
                format!(
                    "server RSS − store buffers {:.1} s after the server forgot the stalled sessions \
                     (target ≤ +10 % of before them)",
                    a.settle
                ),
                "MiB",
                Goal::AtMost(mib(aa.saturating_sub(sa)) * 1.10),
                mib(af.saturating_sub(sf)),
            );
        }
        let tcp =
            |ph: &[&str]| samples.iter().filter(|s| ph.contains(&s.phase.as_str())).filter_map(|s| s.tcp_mem_kib).max();
        if let (Some(t0), Some(tb)) = (stalled_idle.as_ref().and_then(|s| s.tcp_mem_kib), tcp(&["B", "drain"])) {
            r.row(
                "kernel TCP memory per stalled session: peak B − idle (system-wide sockstat, not in RSS)",
                "KiB",
                Goal::None,
                tb.saturating_sub(t0) as f64 / sc.ok.max(1) as f64,
            );
        }
        r.extra(
            "rss_kib",
            json!({ "before_a": ba, "peak_a": peak_a, "after_a": aa, "stalled_idle": si, "peak_b": peak_b, "after": af }),
        );
    }
    if let Some(s) = &after {
        r.row(
            "gateway sessions open at the end (readers still online)",
            "",
            Goal::AtMost(a.readers as f64),
            s.sessions_open.unwrap_or(0) as f64,
        );
    }
    r.extra("samples", Value::Array(samples.iter().map(Sample::to_json).collect()));
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<(f64, f64)> {
        samples.iter().filter_map(|s| Some((s.t, f(s)?))).collect()
    };
    r.svg(
        "server RSS and sessions",
        crate::sample::line_svg(
            &format!("stalled: server RSS (MiB) and sessions; phase B from {b_start:.0} s to {b_end:.0} s"),
            "seconds",
            &[
                ("RSS MiB".into(), series(&|s| Some(s.rss_kib? as f64 / 1024.0))),
                ("sessions open".into(), series(&|s| Some(s.sessions_open? as f64))),
            ],
        ),
    );
    r.note(
        "bound per stalled session (server defaults): its queue of ≤ 2,048 Outbound items (16 B each, 32 KiB full), \
         ≤ 256 frames taken into the pending batch write, a replay outbox of ≤ 1,024 entries / 1 MiB of bodies \
         (8 B per entry, a full ring 8 KiB), event bodies shared with every other \
         recipient, and kernel socket buffers (not in RSS). A full queue ends the session (overflow); a write \
         blocked for write_timeout (15 s) drops the connection first and keeps the session resumable for the \
         resume window (120 s), its events going to the replay outbox",
    );
    let _ = std::fs::remove_file(&readers_file);
    let _ = std::fs::remove_file(&stalled_file);
    r.finish(&a.common.results).map_err(|e| e.to_string())
}

/// What one stalled session saw when it finally read.
enum Outcome {
    Closed(String),
    Open,
}

/// The worker side (`worker --mode stalled`): sessions that IDENTIFY, read up to
/// READY, then only write heartbeats. On `drain` each reads until its connection
/// ends or stays quiet for 3 s, and the worker answers
/// `{"kind":"drained", closed, open, bench_msgs, reasons}`.
pub async fn worker(a: WorkerArgs) -> Res<()> {
    let tokens: Vec<String> =
        serde_json::from_slice(&std::fs::read(&a.tokens).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    let compress = Compress::parse(&a.compress)?;
    let n = a.to.saturating_sub(a.from);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Res<u64>, u64)>();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<(Outcome, u64)>();
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let first_start_ns = crate::unix_nanos();
    for k in 0..n {
        let i = a.from + k;
        let token = tokens[i % tokens.len()].clone();
        let (gateway, tx, out_tx, drain) = (a.gateway.clone(), tx.clone(), out_tx.clone(), drain_rx.clone());
        let at = start + Duration::from_secs_f64(k as f64 / a.rate.max(1.0));
        let (intents, rcvbuf) = (a.intents, a.rcvbuf);
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            stalled_session(gateway, compress, token, intents, rcvbuf, i as u64, tx, out_tx, drain).await;
        });
    }
    drop((tx, out_tx));
    let ok = crate::worker::report_connected(&mut rx, n, first_start_ns).await;
    let drain_tx = Arc::new(drain_tx);
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "drain" => {
                let _ = drain_tx.send(true);
                let (mut closed, mut open, mut bench_msgs) = (0u64, 0u64, 0u64);
                let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                for _ in 0..ok {
                    let Ok(Some((o, msgs))) = tokio::time::timeout_at(deadline, out_rx.recv()).await else { break };
                    bench_msgs += msgs;
                    match o {
                        Outcome::Closed(why) => {
                            closed += 1;
                            *reasons.entry(why).or_default() += 1;
                        }
                        Outcome::Open => open += 1,
                    }
                }
                emit(&json!({ "kind": "drained", "closed": closed, "open": open, "bench_msgs": bench_msgs, "reasons": reasons }))
                    .await;
            }
            "quit" => break,
            _ => {}
        }
    }
    Ok(())
}

/// Sorts a read/write error into a few kinds for the report.
fn close_kind(e: &str) -> String {
    if e.contains("code:") || e.contains("CloseFrame") {
        // e.g. `gateway closed: Some(CloseFrame { code: Library(4000), reason: "Too slow..." })`
        let code = e.split("code: ").nth(1).and_then(|c| c.split([',', ' ']).next()).unwrap_or("?");
        format!("close frame {code}")
    } else if e.contains("reset") || e.contains("Reset") {
        "connection reset".into()
    } else if e.contains("gateway closed") || e.contains("end of stream") || e.contains("AlreadyClosed") {
        "EOF".into()
    } else {
        e.chars().take(80).collect()
    }
}

#[allow(clippy::too_many_arguments)]
async fn stalled_session(
    gateway: String,
    compress: Compress,
    token: String,
    intents: u64,
    rcvbuf: Option<u32>,
    salt: u64,
    tx: tokio::sync::mpsc::UnboundedSender<(Res<u64>, u64)>,
    out: tokio::sync::mpsc::UnboundedSender<(Outcome, u64)>,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let source = gateway
        .contains("127.0.0.1")
        .then(|| std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1 + (salt / 256 % 8) as u8, (salt % 256) as u8)));
    let mut gw = match Gw::connect_opts(&gateway, compress, source, rcvbuf).await {
        Ok(g) => g,
        Err(e) => {
            let _ = tx.send((Err(e), 0));
            return;
        }
    };
    let t0 = Instant::now();
    if let Err(e) = gw.identify(&token, intents).await {
        let _ = tx.send((Err(e), 0));
        return;
    }
    loop {
        match gw.next_frame().await {
            Ok(f) if f.op == 0 && f.t.as_deref() == Some("READY") => break,
            Ok(f) if f.op == 9 => {
                let _ = tx.send((Err("INVALID_SESSION after IDENTIFY".into()), 0));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send((Err(e), 0));
                return;
            }
        }
    }
    let _ = tx.send((Ok(t0.elapsed().as_nanos() as u64), crate::unix_nanos()));
    drop(tx);
    // Stalled: heartbeats only (writes), never a read, until told to drain.
    let period = Duration::from_millis(gw.heartbeat_ms.max(1000));
    let mut next_beat = tokio::time::Instant::now() + gw::first_beat(gw.heartbeat_ms, salt.wrapping_mul(7919));
    let mut write_error = None;
    while !*drain.borrow() {
        tokio::select! {
            _ = tokio::time::sleep_until(next_beat) => {
                if let Err(e) = gw.heartbeat().await {
                    write_error = Some(e);
                    break;
                }
                next_beat += period;
            }
            r = drain.changed() => if r.is_err() { break },
        }
    }
    let _ = drain.wait_for(|d| *d).await;
    // Drain: read what the server managed to send, then see how the connection ends.
    let mut bench_msgs = 0u64;
    let outcome = loop {
        match tokio::time::timeout(Duration::from_secs(3), gw.next_frame()).await {
            Ok(Ok(f)) => {
                if f.op == 0 && crate::worker::bench_marker(&f.raw).is_some() {
                    bench_msgs += 1;
                }
            }
            Ok(Err(e)) => break Outcome::Closed(close_kind(&e)),
            Err(_) => {
                break write_error
                    .map(|e| Outcome::Closed(format!("write: {}", close_kind(&e))))
                    .unwrap_or(Outcome::Open);
            }
        }
    };
    let _ = out.send((outcome, bench_msgs));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_kinds() {
        assert_eq!(
            close_kind(r#"gateway closed: Some(CloseFrame { code: Library(4000), reason: "Too slow" })"#),
            "close frame Library(4000)"
        );
        assert_eq!(close_kind("gateway read: IO error: Connection reset by peer (os error 104)"), "connection reset");
        assert_eq!(close_kind("gateway closed"), "EOF");
    }
}
