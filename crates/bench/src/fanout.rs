//! fanout: M online members of one guild; one sender posts through REST at R
//! msgs/s for T seconds (content `bench:SEQ:SEND_UNIX_NS`). Every recipient
//! (worker processes) records arrival times; the bench reports deliveries/s,
//! REST send → receipt latency at every recipient (p50/p99/p999/max), REST send →
//! LAST recipient per message, server CPU per delivery from /proc, and checks that
//! every recipient got every message exactly once and in order.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::Method;
use serde_json::json;

use crate::gw::{Compress, INTENTS_DEFAULT};
use crate::hist::Histogram;
use crate::report::{Goal, Report};
use crate::rest::Rest;
use crate::seed::{SeedPlan, seed};
use crate::worker::{Workers, write_tokens};
use crate::{Common, Res, unix_nanos};

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Recipient counts to run, comma-separated (each seeds its own guild).
    #[arg(long, default_value = "10000", value_delimiter = ',')]
    pub members: Vec<usize>,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    #[arg(long, default_value = "plain,zlib-stream,zstd-stream", value_delimiter = ',')]
    pub compress: Vec<String>,
    #[arg(long, default_value_t = 9000)]
    pub per_worker: usize,
    /// Session connect rate while setting up.
    #[arg(long, default_value_t = 3000.0)]
    pub connect_rate: f64,
    /// Padding added to each message's content, bytes.
    #[arg(long, default_value_t = 64)]
    pub pad: usize,
}

/// p99 targets for REST send → last recipient, by recipient count.
fn last_target_ms(m: usize) -> Option<f64> {
    match m {
        100 => Some(1.0),
        1000 => Some(5.0),
        10_000 => Some(35.0),
        _ => None,
    }
}

pub async fn run(a: FanoutArgs) -> Res<PathBuf> {
    let mut target = a.common.target()?;
    let rest = Rest::new(&target.base);
    let exe = a.common.worker_exe()?;
    let mut r = Report::new(
        "fanout",
        json!({ "members": a.members, "rate": a.rate, "secs": a.secs, "compress": a.compress, "pad": a.pad }),
    );
    if target.pid.is_none() {
        r.note("no server PID (--pid): CPU figures are missing");
    }
    for &m in &a.members {
        eprintln!("fanout: seeding one guild of {m} members");
        let plan = SeedPlan { users: m, guilds: 1, members: m, concurrency: a.common.seed_concurrency };
        let (file, _) = seed(&rest, &plan).await?;
        let tokens: Vec<String> = file.users.iter().map(|u| u.token.clone()).collect();
        let tokens_file = write_tokens(&a.common.results, &tokens)?;
        let channel = file.guilds[0].channel_id.clone();
        let sender = tokens[0].clone();
        for mode in &a.compress {
            let compress = Compress::parse(mode)?;
            let label = format!("{m} × {mode}");
            if target.is_spawned() {
                // A fresh process per run: no sessions or buffers left from the previous one.
                target.restart()?;
            }
            let gateway = rest.gateway_url().await?;
            eprintln!("fanout[{label}]: connecting {m} sessions");
            let (mut workers, c) = Workers::spawn(
                &exe,
                &gateway,
                compress,
                &tokens_file,
                m,
                a.per_worker,
                a.connect_rate,
                INTENTS_DEFAULT,
            )
            .await?;
            if c.failed > 0 {
                r.note(format!("{label}: {} sessions failed to identify, e.g. {:?}", c.failed, c.errors));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let total = (a.rate * a.secs).round().max(1.0) as usize;
            let before = target.proc();
            let workers_cpu0 = workers.cpu_ns();
            let t_start = Instant::now();
            let (sent, rest_lat, _) = send_messages(&rest, &sender, &channel, total, a.rate, a.pad).await?;
            let send_wall = t_start.elapsed().as_secs_f64();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let reports = workers.report(total).await?;
            let after = target.proc();
            let workers_cpu = workers.cpu_ns().saturating_sub(workers_cpu0);
            workers.quit().await;

            let mut all = Histogram::new();
            let mut last = vec![0u64; total];
            let (mut deliveries, mut missing, mut dups, mut reordered, mut bad) = (0u64, 0u64, 0u64, 0u64, 0u64);
            let mut first_bad = None;
            for v in &reports {
                all.merge(&Histogram::from_wire(&v["hist"]));
                for (q, x) in v["last"].as_array().into_iter().flatten().enumerate() {
                    if q < total {
                        last[q] = last[q].max(x.as_u64().unwrap_or(0));
                    }
                }
                deliveries += v["deliveries"].as_u64().unwrap_or(0);
                missing += v["missing"].as_u64().unwrap_or(0);
                dups += v["dups"].as_u64().unwrap_or(0);
                reordered += v["reordered"].as_u64().unwrap_or(0);
                bad += v["bad_sessions"].as_u64().unwrap_or(0);
                if first_bad.is_none() {
                    first_bad = v["first_bad"].as_str().map(str::to_string);
                }
            }
            let mut last_h = Histogram::new();
            for (q, t) in last.iter().enumerate() {
                if *t > 0 {
                    last_h.record(t.saturating_sub(sent[q]));
                }
            }
            let expected = total as u64 * c.ok;
            r.row(format!("{label}: recipients online"), "", Goal::AtLeast(m as f64), c.ok as f64);
            r.row(
                format!("{label}: deliveries (expected {expected})"),
                "",
                Goal::AtLeast(expected as f64),
                deliveries as f64,
            );
            r.row(
                format!("{label}: missing + duplicate + out-of-order"),
                "",
                Goal::AtMost(0.0),
                (missing + dups + reordered) as f64,
            );
            if bad > 0 {
                r.note(format!(
                    "{label}: {bad} sessions with missing/duplicate/reordered messages; {}",
                    first_bad.unwrap_or_default()
                ));
            }
            r.row(
                format!("{label}: deliveries/s over the send window"),
                "/s",
                Goal::None,
                deliveries as f64 / send_wall.max(1e-9),
            );
            r.latency(&format!("{label}: REST send→recipient"), &all, None);
            r.row(
                format!("{label}: REST send→recipient p99.9"),
                "ms",
                Goal::None,
                crate::hist::ms(all.quantile(0.999)),
            );
            r.row(format!("{label}: REST send→recipient max"), "ms", Goal::None, crate::hist::ms(all.max()));
            r.latency(&format!("{label}: REST send→last recipient"), &last_h, last_target_ms(m));
            r.latency(&format!("{label}: REST call (sender)"), &rest_lat, None);
            r.row(
                format!("{label}: load generator (workers) CPU per delivery"),
                "µs",
                Goal::None,
                workers_cpu as f64 / deliveries.max(1) as f64 / 1e3,
            );
            if let (Some(b), Some(e)) = (before, after) {
                let d = deliveries.max(1) as f64;
                let user = e.utime_ns.saturating_sub(b.utime_ns) as f64;
                let sys = e.stime_ns.saturating_sub(b.stime_ns) as f64;
                r.row(format!("{label}: server user CPU per delivery"), "µs", Goal::AtMost(0.5), user / d / 1e3);
                r.row(
                    format!("{label}: server CPU per delivery, kernel incl."),
                    "µs",
                    Goal::AtMost(1.5),
                    (user + sys) / d / 1e3,
                );
                r.extra(
                    &format!("{label} cpu"),
                    json!({ "utime_ms": user / 1e6, "stime_ms": sys / 1e6, "deliveries": deliveries, "clock_ticks_per_s": crate::server::clock_ticks() }),
                );
            }
        }
        let _ = std::fs::remove_file(&tokens_file);
    }
    r.note("CPU is sampled from /proc in clock ticks (10 ms): short runs have coarse CPU figures");
    r.finish(&a.common.results).map_err(|e| e.to_string())
}

/// One sender: message `seq` goes out at start + seq/rate (or at once when behind),
/// each awaited before the next, so channel order equals seq order.
async fn send_messages(
    rest: &Rest,
    token: &str,
    channel: &str,
    total: usize,
    rate: f64,
    pad: usize,
) -> Res<(Vec<u64>, Histogram, Vec<u64>)> {
    send_messages_from(rest, token, channel, 0, total, rate, pad).await
}

/// [`send_messages`] with seqs `first..first + total`.
pub(crate) async fn send_messages_from(
    rest: &Rest,
    token: &str,
    channel: &str,
    first: usize,
    total: usize,
    rate: f64,
    pad: usize,
) -> Res<(Vec<u64>, Histogram, Vec<u64>)> {
    let start = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(total);
    let mut took = Vec::with_capacity(total);
    let mut lat = Histogram::new();
    let padding = "x".repeat(pad);
    let path = format!("/channels/{channel}/messages");
    for seq in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / rate.max(0.001))).await;
        let at = unix_nanos();
        let t = Instant::now();
        let body = json!({ "content": format!("bench:{}:{at} {padding}", first + seq) });
        rest.ok(Method::POST, &path, Some(token), Some(&body)).await?;
        let d = t.elapsed();
        lat.record_duration(d);
        took.push(d.as_nanos() as u64);
        sent.push(at);
    }
    Ok((sent, lat, took))
}
