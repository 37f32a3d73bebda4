//! Worker processes: hold a slice of gateway sessions for a parent bench
//! process. Protocol, one JSON object per line:
//! - worker → parent: `{"kind":"connected", ok, failed, errors, ready_hist, first_start_ns, last_ready_ns}`
//!   once every session has identified (or failed);
//! - parent → worker: `report N` (N messages were sent) → the worker waits until every
//!   session saw N bench messages (or 15 s), then answers `{"kind":"report", ...}`;
//! - parent → worker: `quit` (or end of stdin) → the worker exits, closing its sockets.
//!
//! Spawning: [`Workers::spawn`] splits the tokens over processes of at most
//! `per_worker` sessions (one process may hold 20,000 fds here).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::gw::{self, Compress, Gw};
use crate::hist::Histogram;
use crate::{Res, unix_nanos};

#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    #[arg(long)]
    pub gateway: String,
    #[arg(long, default_value = "plain")]
    pub compress: String,
    /// JSON array of tokens.
    #[arg(long)]
    pub tokens: PathBuf,
    #[arg(long)]
    pub from: usize,
    #[arg(long)]
    pub to: usize,
    /// Session i uses token i % tokens.len().
    #[arg(long, default_value_t = 0)]
    pub sessions_offset: usize,
    /// New sessions per second from this worker.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value_t = gw::INTENTS_DEFAULT)]
    pub intents: u64,
    /// What the sessions do: `read` (record bench messages), `stalled` (stop reading
    /// after READY, see `stalled`), `soak` (churn, see `soak`).
    #[arg(long, default_value = "read")]
    pub mode: String,
    /// `SO_RCVBUF` for each session's socket (stalled mode).
    #[arg(long)]
    pub rcvbuf: Option<u32>,
    /// Soak mode: sessions with a global index below this identify with message
    /// intents (readers); the others with GUILDS only.
    #[arg(long, default_value_t = usize::MAX)]
    pub readers: usize,
}

/// What one session saw of the bench's messages: (seq, send ns, receive ns) in arrival order.
type Seen = Arc<Mutex<Vec<(u32, u64, u64)>>>;

pub async fn run(a: WorkerArgs) -> Res<()> {
    match a.mode.as_str() {
        "read" => {}
        "stalled" => return crate::stalled::worker(a).await,
        "soak" => return crate::soak::worker(a).await,
        m => return Err(format!("unknown worker mode {m:?}")),
    }
    let tokens: Vec<String> =
        serde_json::from_slice(&std::fs::read(&a.tokens).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    if tokens.is_empty() {
        return Err("no tokens".into());
    }
    let compress = Compress::parse(&a.compress)?;
    let n = a.to.saturating_sub(a.from);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Res<u64>, u64)>();
    let all_seen: Arc<Mutex<Vec<Seen>>> = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let start = Instant::now();
    let first_start_ns = unix_nanos();
    for k in 0..n {
        let i = a.from + k;
        let token = tokens[i % tokens.len()].clone();
        let gateway = a.gateway.clone();
        let tx = tx.clone();
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        all_seen.lock().unwrap().push(seen.clone());
        let at = start + Duration::from_secs_f64(k as f64 / a.rate.max(1.0));
        let intents = a.intents;
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            session(gateway, compress, token, intents, i as u64, tx, seen).await;
        });
    }
    drop(tx);
    report_connected(&mut rx, n, first_start_ns).await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("report") => {
                // `report N` checks seqs 0..N; `report FROM TO` checks FROM..TO only.
                let a: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                let (from, to) = match words.next().and_then(|w| w.parse().ok()) {
                    Some(b) => (a, b),
                    None => (0, a),
                };
                let sessions: Vec<Seen> = all_seen.lock().unwrap().clone();
                let deadline = Instant::now() + Duration::from_secs(15);
                let count =
                    |s: &Seen| s.lock().unwrap().iter().filter(|e| (from..to).contains(&(e.0 as usize))).count();
                while Instant::now() < deadline && sessions.iter().any(|s| count(s) < to - from) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                emit(&report_range(&sessions, from, to)).await;
            }
            Some("quit") | None => break,
            Some(_) => {}
        }
    }
    Ok(())
}

/// Waits for the outcome of `n` session starts (IDENTIFY→READY latency or an error,
/// with the time READY arrived) and tells the parent with one `connected` line.
/// Returns how many sessions are up.
pub(crate) async fn report_connected(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(Res<u64>, u64)>,
    n: usize,
    first_start_ns: u64,
) -> u64 {
    let mut ready = Histogram::new();
    let (mut ok, mut failed, mut errors) = (0u64, 0u64, Vec::<String>::new());
    let mut last_ready_ns = 0;
    for _ in 0..n {
        let Some((r, at)) = rx.recv().await else { break };
        match r {
            Ok(lat) => {
                ok += 1;
                ready.record(lat);
                last_ready_ns = last_ready_ns.max(at);
            }
            Err(e) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(e);
                }
            }
        }
    }
    emit(&json!({
        "kind": "connected", "ok": ok, "failed": failed, "errors": errors, "ready_hist": ready.to_wire(),
        "first_start_ns": first_start_ns, "last_ready_ns": last_ready_ns,
    }))
    .await;
    ok
}

pub(crate) async fn emit(v: &Value) {
    let mut out = tokio::io::stdout();
    let _ = out.write_all(format!("{v}\n").as_bytes()).await;
    let _ = out.flush().await;
}

/// Checks every session's arrivals against 0..expected, once each, in order.
#[cfg(test)]
fn report(sessions: &[Seen], expected: usize) -> Value {
    report_range(sessions, 0, expected)
}

/// Checks every session's arrivals with seq in `from..to` against that range, once
/// each, in order (`last[k]` is the latest arrival of seq `from + k`).
fn report_range(sessions: &[Seen], from: usize, to: usize) -> Value {
    let expected = to.saturating_sub(from);
    let mut hist = Histogram::new();
    let mut last = vec![0u64; expected];
    let (mut deliveries, mut dups, mut reordered, mut missing, mut bad_sessions) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut first_bad = None;
    for (k, s) in sessions.iter().enumerate() {
        let seen = s.lock().unwrap();
        let mut got = vec![false; expected];
        let mut prev: Option<u32> = None;
        let mut bad = false;
        for &(seq, sent, recv) in seen.iter().filter(|e| (from..to).contains(&(e.0 as usize))) {
            deliveries += 1;
            hist.record(recv.saturating_sub(sent));
            let q = seq as usize - from;
            if q < expected {
                if got[q] {
                    dups += 1;
                    bad = true;
                }
                got[q] = true;
                last[q] = last[q].max(recv);
            }
            if prev.is_some_and(|p| seq <= p) {
                reordered += 1;
                bad = true;
            }
            prev = Some(seq);
        }
        let m = got.iter().filter(|g| !**g).count() as u64;
        missing += m;
        if m > 0 {
            bad = true;
        }
        if bad {
            bad_sessions += 1;
            if first_bad.is_none() {
                first_bad = Some(format!("session {k}: {} arrivals, {m} missing", seen.len()));
            }
        }
    }
    json!({
        "kind": "report", "sessions": sessions.len(), "deliveries": deliveries, "hist": hist.to_wire(),
        "last": last, "dups": dups, "reordered": reordered, "missing": missing, "bad_sessions": bad_sessions,
        "first_bad": first_bad,
    })
}

/// One session: connect, IDENTIFY, report IDENTIFY→READY, then heartbeat and
/// record bench messages until the process ends.
async fn session(
    gateway: String,
    compress: Compress,
    token: String,
    intents: u64,
    salt: u64,
    tx: tokio::sync::mpsc::UnboundedSender<(Res<u64>, u64)>,
    seen: Seen,
) {
    // Session i connects from 127.0.(1 + i/256 % 8).(i % 256): 2,048 source addresses, a handful of
    // sockets each, so the kernel's ephemeral-port search stays short.
    let source = gateway
        .contains("127.0.0.1")
        .then(|| std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1 + (salt / 256 % 8) as u8, (salt % 256) as u8)));
    let mut gw = match Gw::connect_from(&gateway, compress, source).await {
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
    let _ = tx.send((Ok(t0.elapsed().as_nanos() as u64), unix_nanos()));
    drop(tx);
    let period = Duration::from_millis(gw.heartbeat_ms.max(1000));
    let mut next_beat = tokio::time::Instant::now() + gw::first_beat(gw.heartbeat_ms, salt.wrapping_mul(7919));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_beat) => {
                if gw.heartbeat().await.is_err() {
                    return;
                }
                next_beat += period;
            }
            f = gw.next_frame() => {
                let Ok(f) = f else { return };
                if f.op == 1 {
                    let _ = gw.heartbeat().await;
                } else if f.op == 0
                    && f.t.as_deref() == Some("MESSAGE_CREATE")
                    && let Some((seq, sent)) = bench_marker(&f.raw)
                {
                    seen.lock().unwrap().push((seq, sent, unix_nanos()));
                }
            }
        }
    }
}

/// Parses `bench:SEQ:SEND_NS` out of a MESSAGE_CREATE's content.
pub fn bench_marker(raw: &[u8]) -> Option<(u32, u64)> {
    let at = gw::find(raw, b"\"content\":\"bench:")? + b"\"content\":\"bench:".len();
    let rest = &raw[at..];
    let colon = rest.iter().position(|b| *b == b':')?;
    let seq = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let rest = &rest[colon + 1..];
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    Some((seq, std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?))
}

/// The parent's side: a set of worker processes.
pub struct Workers {
    procs: Vec<(Child, ChildStdin, tokio::io::Lines<BufReader<ChildStdout>>)>,
}

/// What the workers reported once connected.
#[derive(Debug, Default)]
pub struct Connected {
    pub ok: u64,
    pub failed: u64,
    pub errors: Vec<String>,
    pub ready: Histogram,
    pub first_start_ns: u64,
    pub last_ready_ns: u64,
}

impl Workers {
    /// Starts enough workers for `sessions` sessions (tokens used round-robin) at
    /// `rate` sessions/s in total, and waits until every session identified or failed.
    #[allow(clippy::too_many_arguments)]
    pub async fn spawn(
        exe: &Path,
        gateway: &str,
        compress: Compress,
        tokens_file: &Path,
        sessions: usize,
        per_worker: usize,
        rate: f64,
        intents: u64,
    ) -> Res<(Workers, Connected)> {
        Workers::spawn_with(exe, gateway, compress, tokens_file, sessions, per_worker, rate, intents, &[]).await
    }

    /// [`Workers::spawn`] with extra worker arguments (`--mode`, `--rcvbuf`, ...).
    #[allow(clippy::too_many_arguments)]
    pub async fn spawn_with(
        exe: &Path,
        gateway: &str,
        compress: Compress,
        tokens_file: &Path,
        sessions: usize,
        per_worker: usize,
        rate: f64,
        intents: u64,
        extra: &[String],
    ) -> Res<(Workers, Connected)> {
        let count = sessions.div_ceil(per_worker.max(1)).max(1);
        let mut procs = Vec::new();
        for w in 0..count {
            let from = sessions * w / count;
            let to = sessions * (w + 1) / count;
            let mut child = Command::new(exe)
                .arg("worker")
                .args(["--gateway", gateway, "--compress", compress.name()])
                .arg("--tokens")
                .arg(tokens_file)
                .args(["--from", &from.to_string(), "--to", &to.to_string()])
                .args(["--rate", &(rate / count as f64).to_string(), "--intents", &intents.to_string()])
                .args(extra)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("starting worker {}: {e}", exe.display()))?;
            let stdin = child.stdin.take().ok_or("worker stdin")?;
            let stdout = BufReader::new(child.stdout.take().ok_or("worker stdout")?).lines();
            procs.push((child, stdin, stdout));
        }
        let mut ws = Workers { procs };
        let mut c = Connected { first_start_ns: u64::MAX, ..Connected::default() };
        for v in ws.read_all("connected").await? {
            c.ok += v["ok"].as_u64().unwrap_or(0);
            c.failed += v["failed"].as_u64().unwrap_or(0);
            for e in v["errors"].as_array().into_iter().flatten() {
                if c.errors.len() < 5 {
                    c.errors.push(e.as_str().unwrap_or("").to_string());
                }
            }
            c.ready.merge(&Histogram::from_wire(&v["ready_hist"]));
            c.first_start_ns = c.first_start_ns.min(v["first_start_ns"].as_u64().unwrap_or(u64::MAX));
            c.last_ready_ns = c.last_ready_ns.max(v["last_ready_ns"].as_u64().unwrap_or(0));
        }
        Ok((ws, c))
    }

    async fn read_all(&mut self, kind: &str) -> Res<Vec<Value>> {
        let mut out = Vec::new();
        for (i, (_, _, lines)) in self.procs.iter_mut().enumerate() {
            loop {
                let line = lines.next_line().await.map_err(|e| e.to_string())?;
                let Some(line) = line else { return Err(format!("worker {i} exited before '{kind}'")) };
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                if v["kind"] == kind {
                    out.push(v);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Total CPU time (user + system, ns) the worker processes used so far.
    pub fn cpu_ns(&self) -> u64 {
        self.procs
            .iter()
            .filter_map(|(c, _, _)| c.id())
            .filter_map(crate::server::ProcSample::read)
            .map(|p| p.utime_ns + p.stime_ns)
            .sum()
    }

    pub async fn send(&mut self, line: &str) -> Res<()> {
        for (_, stdin, _) in self.procs.iter_mut() {
            stdin.write_all(format!("{line}\n").as_bytes()).await.map_err(|e| format!("worker stdin: {e}"))?;
            stdin.flush().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Asks for the delivery report after `expected` messages.
    pub async fn report(&mut self, expected: usize) -> Res<Vec<Value>> {
        self.send(&format!("report {expected}")).await?;
        self.read_all("report").await
    }

    /// Asks for the delivery report of seqs `from..to`.
    pub async fn report_range(&mut self, from: usize, to: usize) -> Res<Vec<Value>> {
        self.send(&format!("report {from} {to}")).await?;
        self.read_all("report").await
    }

    /// Sends `line` to every worker and waits for each one's answer of `kind`.
    pub async fn request(&mut self, line: &str, kind: &str) -> Res<Vec<Value>> {
        self.send(line).await?;
        self.read_all(kind).await
    }

    pub async fn quit(mut self) {
        let _ = self.send("quit").await;
        for (child, _, _) in self.procs.iter_mut() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

/// Writes the tokens as a JSON array for workers.
pub fn write_tokens(dir: &Path, tokens: &[String]) -> Res<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let p = dir.join(format!("tokens-{}-{}.json", std::process::id(), unix_nanos()));
    std::fs::write(&p, serde_json::to_vec(tokens).unwrap_or_default()).map_err(|e| e.to_string())?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_parses_and_report_checks_order() {
        let raw = br#"{"op":0,"s":5,"t":"MESSAGE_CREATE","d":{"id":"1","content":"bench:17:123456789","x":1}}"#;
        assert_eq!(bench_marker(raw), Some((17, 123456789)));
        assert_eq!(bench_marker(br#"{"content":"hello"}"#), None);
        let good: Seen = Arc::new(Mutex::new(vec![(0, 10, 20), (1, 30, 45)]));
        let bad: Seen = Arc::new(Mutex::new(vec![(1, 30, 50), (0, 10, 60), (0, 10, 70)]));
        let r = report(std::slice::from_ref(&good), 2);
        assert_eq!(
            (r["deliveries"].as_u64(), r["bad_sessions"].as_u64(), r["missing"].as_u64()),
            (Some(2), Some(0), Some(0))
        );
        assert_eq!(r["last"], json!([20, 45]));
        let r = report(&[good, bad], 3);
        assert_eq!(r["missing"].as_u64(), Some(2)); // seq 2 missing from both
        assert_eq!(r["dups"].as_u64(), Some(1));
        assert_eq!(r["reordered"].as_u64(), Some(2));
        assert_eq!(r["bad_sessions"].as_u64(), Some(2));
    }
}
