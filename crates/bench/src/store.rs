//! store (REST side): durable message sends per second with many concurrent
//! senders over many channels (a 2xx means the message is on disk), latest-50
//! history reads at a target rate (open loop: latency counts from the intended
//! send time, so a server that falls behind is charged for it), and the
//! coalescing check — 1,000 concurrent identical history reads on a channel
//! whose cached page was just invalidated, and how many store reads the server's
//! `/metrics` counters say they caused. The store-API figure (no HTTP) comes from
//! `cargo run --release -p guildhall-store --example store_bench`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::Method;
use serde_json::json;

use crate::hist::Histogram;
use crate::http1::Conn;
use crate::report::{Goal, Report};
use crate::rest::{Rest, metric_value};
use crate::seed::{create_guilds, register_users};
use crate::server::ProcSample;
use crate::{Common, Res};

#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// Messages to send in the throughput phase.
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Concurrent senders (HTTP requests in flight).
    #[arg(long, default_value_t = 256)]
    pub senders: usize,
    /// Channels (each in its own guild, owned by its own user).
    #[arg(long, default_value_t = 64)]
    pub channels: usize,
    /// Message content size, bytes.
    #[arg(long, default_value_t = 200)]
    pub size: usize,
    /// Target history requests per second.
    #[arg(long, default_value_t = 20_000.0)]
    pub history_rate: f64,
    /// Seconds of history reads.
    #[arg(long, default_value_t = 5.0)]
    pub history_secs: f64,
    /// Requests in flight at most during the history phase.
    #[arg(long, default_value_t = 512)]
    pub history_conc: usize,
    /// Concurrent identical reads in the coalescing check.
    #[arg(long, default_value_t = 1000)]
    pub coalesce: usize,
}

pub async fn run(a: StoreArgs) -> Res<PathBuf> {
    let target = a.common.target()?;
    let rest = Rest::new(&target.base);
    let mut r = Report::new(
        "store",
        json!({ "messages": a.messages, "senders": a.senders, "channels": a.channels, "size": a.size,
                "history_rate": a.history_rate, "history_secs": a.history_secs, "coalesce": a.coalesce }),
    );
    let channels_n = a.channels.max(3);
    eprintln!("store: seeding {channels_n} users, each with a guild");
    let users = register_users(&rest, channels_n, a.common.seed_concurrency).await?;
    let mut chans = Vec::new();
    for u in &users {
        let g = create_guilds(&rest, &u.token, 1, 1).await?;
        chans.push((u.token.clone(), g[0].1.clone()));
    }
    let chans = Arc::new(chans);

    // 1. Durable sends.
    eprintln!("store: {} messages from {} concurrent senders over {channels_n} channels", a.messages, a.senders);
    let content = Arc::new("m".repeat(a.size.max(1)));
    let before = target.proc();
    let me0 = ProcSample::read(std::process::id());
    let t = Instant::now();
    let (base, chans2, content2) = (target.base.clone(), chans.clone(), content.clone());
    let results = conn_pool(&base, a.messages, a.senders, move |i| {
        let (token, channel) = &chans2[i % chans2.len()];
        let body = serde_json::to_vec(&json!({ "content": format!("{i} {content2}") })).unwrap_or_default();
        (Method::POST, format!("/api/v10/channels/{channel}/messages"), token.clone(), Some(body))
    })
    .await;
    let wall = t.elapsed().as_secs_f64();
    let after = target.proc();
    let me1 = ProcSample::read(std::process::id());
    let mut send = Histogram::new();
    let mut errors = Vec::new();
    for res in results {
        match res {
            Ok((200, _, d)) => send.record_duration(d),
            Ok((status, body, _)) => errors.push(format!("HTTP {status} {}", String::from_utf8_lossy(&body))),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        r.note(format!("{} sends failed, e.g. {}", errors.len(), errors[0]));
    }
    r.row("durable messages/s through REST", "msgs/s", Goal::AtLeast(50_000.0), send.count() as f64 / wall);
    r.latency("REST send (durable)", &send, None);
    if let (Some(b), Some(e)) = (before, after) {
        let cpu = (e.utime_ns + e.stime_ns).saturating_sub(b.utime_ns + b.stime_ns) as f64;
        r.row("server CPU per REST send", "µs", Goal::None, cpu / send.count().max(1) as f64 / 1e3);
    }
    if let (Some(b), Some(e)) = (me0, me1) {
        let cpu = (e.utime_ns + e.stime_ns).saturating_sub(b.utime_ns + b.stime_ns) as f64;
        r.row("load generator CPU per REST send", "µs", Goal::None, cpu / send.count().max(1) as f64 / 1e3);
    }

    // 2. Latest-50 history at a target rate, open loop.
    let total = (a.history_rate * a.history_secs).round().max(1.0) as usize;
    eprintln!("store: {total} history reads at {} req/s", a.history_rate);
    let (token, channel) = chans[0].clone();
    let page = rest.ok(Method::GET, &format!("/channels/{channel}/messages?limit=50"), Some(&token), None).await?;
    if page.as_array().map(|m| m.len()) != Some(50) {
        return Err(format!("history page has {} messages, expected 50", page.as_array().map_or(0, |m| m.len())));
    }
    r.row("bytes per latest-50 page", "KiB", Goal::None, page.to_string().len() as f64 / 1024.0);
    let path = format!("/api/v10/channels/{channel}/messages?limit=50");
    let start = Instant::now() + Duration::from_millis(200);
    let rate = a.history_rate.max(1.0);
    let before = target.proc();
    let me0 = ProcSample::read(std::process::id());
    let t = Instant::now();
    let results = conn_pool_timed(&target.base, total, a.history_conc, start, rate, move |_| {
        (Method::GET, path.clone(), token.clone(), None)
    })
    .await;
    let after = target.proc();
    let me1 = ProcSample::read(std::process::id());
    let wall = t.elapsed().as_secs_f64() - 0.2;
    let (mut corrected, mut service, mut failed) = (Histogram::new(), Histogram::new(), Vec::new());
    for res in results {
        match res {
            // A JSON array (the first answer is checked for 50 messages below).
            Ok((200, body, c, s)) if body.starts_with(b"[") && body.ends_with(b"]") => {
                corrected.record_duration(c);
                service.record_duration(s);
            }
            Ok((status, body, _, _)) => failed.push(format!("HTTP {status}, {} bytes", body.len())),
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        r.note(format!("{} history reads failed, e.g. {}", failed.len(), failed[0]));
    }
    r.row(
        "history reads/s achieved (target rate, 1 % slack)",
        "req/s",
        Goal::AtLeast(a.history_rate * 0.99),
        corrected.count() as f64 / wall.max(1e-9),
    );
    r.latency("latest-50 history, queueing included", &corrected, Some(2.0));
    r.latency("latest-50 history, service time", &service, None);
    if let (Some(b), Some(e)) = (before, after) {
        let cpu = (e.utime_ns + e.stime_ns).saturating_sub(b.utime_ns + b.stime_ns) as f64;
        r.row("server CPU per history read", "µs", Goal::None, cpu / service.count().max(1) as f64 / 1e3);
    }
    if let (Some(b), Some(e)) = (me0, me1) {
        let cpu = (e.utime_ns + e.stime_ns).saturating_sub(b.utime_ns + b.stime_ns) as f64;
        r.row("load generator CPU per history read", "µs", Goal::None, cpu / service.count().max(1) as f64 / 1e3);
    }

    // 3. Coalescing: warm a connection pool, invalidate one channel's cached page, then N identical reads at once.
    let names = ["guildhall_store_history_reads_total", "guildhall_store_history_reads"];
    match rest.metrics().await {
        Err(e) => r.note(format!("coalescing check skipped: {e}")),
        Ok(text) => {
            let name = names.iter().find(|n| metric_value(&text, n).is_some()).copied().or_else(|| {
                text.lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| l.split(|c: char| c == '{' || c.is_whitespace()).next())
                    .find(|n| n.contains("history_reads"))
                    .map(|n| Box::leak(n.to_string().into_boxed_str()) as &str)
            });
            match name {
                None => r.note("coalescing check skipped: /metrics has no *history_reads counter"),
                Some(name) => {
                    let (warm_token, warm_chan) = chans[2].clone();
                    let warm = coalesce(&rest, &warm_token, &warm_chan, a.coalesce).await;
                    let (tok, ch) = chans[1].clone();
                    rest.ok(
                        Method::POST,
                        &format!("/channels/{ch}/messages"),
                        Some(&tok),
                        Some(&json!({ "content": "invalidate" })),
                    )
                    .await?;
                    let m0 = metric_value(&rest.metrics().await?, name).unwrap_or(0.0);
                    let ok = coalesce(&rest, &tok, &ch, a.coalesce).await;
                    let m1 = metric_value(&rest.metrics().await?, name).unwrap_or(0.0);
                    r.row(
                        format!("store reads for {} concurrent identical reads", a.coalesce),
                        "reads",
                        Goal::AtMost(2.0),
                        m1 - m0,
                    );
                    r.extra("coalescing", json!({ "metric": name, "ok_responses": ok, "warmup_ok": warm }));
                }
            }
        }
    }
    r.finish(&a.common.results).map_err(|e| e.to_string())
}

/// Fires `n` identical latest-50 reads at once; returns how many answered 200.
async fn coalesce(rest: &Rest, token: &str, channel: &str, n: usize) -> usize {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (rest, token, barrier) = (rest.clone(), token.to_string(), barrier.clone());
        let path = format!("/channels/{channel}/messages?limit=50");
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            matches!(rest.call(Method::GET, &path, Some(&token), None).await, Ok((200, _)))
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if matches!(t.await, Ok(true)) {
            ok += 1;
        }
    }
    ok
}

type Req = (Method, String, String, Option<Vec<u8>>);
/// (status, body, latency corrected for coordinated omission, service time)
type Timed = (u16, Vec<u8>, Duration, Duration);

/// `n` requests over `conc` keep-alive connections, as fast as they answer;
/// returns (status, body, latency) by index.
async fn conn_pool<F>(base: &str, n: usize, conc: usize, make: F) -> Vec<Res<(u16, Vec<u8>, Duration)>>
where
    F: Fn(usize) -> Req + Send + Sync + 'static,
{
    let out = conn_pool_timed(base, n, conc, Instant::now(), 0.0, make).await;
    out.into_iter().map(|r| r.map(|(s, b, _, d)| (s, b, d))).collect()
}

/// Like `conn_pool`, but request i is not sent before `start + i/rate` (rate 0: no pacing);
/// returns (status, body, latency corrected for coordinated omission, service time).
async fn conn_pool_timed<F>(base: &str, n: usize, conc: usize, start: Instant, rate: f64, make: F) -> Vec<Res<Timed>>
where
    F: Fn(usize) -> Req + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc.clamp(1, n.max(1)) {
        let (make, next, base) = (make.clone(), next.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut conn: Option<Conn> = None;
            let mut prev_end = start;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let intended =
                    if rate > 0.0 { start + Duration::from_secs_f64(i as f64 / rate) } else { Instant::now() };
                tokio::time::sleep_until(intended.into()).await;
                let (method, path, token, body) = make(i);
                if conn.is_none() {
                    match Conn::connect(&base).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            out.push((i, Err(e)));
                            continue;
                        }
                    }
                }
                let c = conn.as_mut().expect("connected above");
                let s = Instant::now();
                let r = c.request(method.as_str(), &path, Some(&token), body.as_deref()).await;
                let end = Instant::now();
                if r.is_err() {
                    conn = None;
                }
                // Coordinated omission: a request that could not go out on time because this
                // connection was still busy counts from its intended start; one that merely
                // woke late from the (1 ms) timer counts from its actual start.
                let from = if prev_end > intended { intended } else { s };
                prev_end = end;
                out.push((i, r.map(|(st, b)| (st, b, end - from, end - s))));
            }
            out
        }));
    }
    let mut slots: Vec<Option<Res<Timed>>> = (0..n).map(|_| None).collect();
    for t in tasks {
        if let Ok(out) = t.await {
            for (i, r) in out {
                slots[i] = Some(r);
            }
        }
    }
    slots.into_iter().map(|s| s.unwrap_or_else(|| Err("task lost".into()))).collect()
}
