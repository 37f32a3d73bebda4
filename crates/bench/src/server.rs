//! The server under test: either one this process starts (`--spawn BIN`, on a
//! free loopback port with a temporary or given data directory, cheap password
//! hashing and rate limits lifted) or one already running (`--server URL`, with
//! `--pid` for /proc figures). Also the /proc readings: VmRSS and utime/stime.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Res;

pub struct Target {
    /// `http://host:port`, no trailing slash.
    pub base: String,
    pub pid: Option<u32>,
    spawned: Option<Spawned>,
}

struct Spawned {
    bin: PathBuf,
    child: Child,
    data_dir: PathBuf,
    remove_dir: bool,
    port: u16,
    log: PathBuf,
}

/// Environment for a spawned server: cheap Argon2 and no REST rate limits.
pub const SPAWN_ENV: &[(&str, &str)] = &[
    ("GUILDHALL_PASSWORD_MEMORY_KIB", "64"),
    ("GUILDHALL_PASSWORD_ITERATIONS", "1"),
    ("GUILDHALL_RATELIMIT_ROUTE_LIMIT", "0"),
    ("GUILDHALL_RATELIMIT_GLOBAL_PER_SECOND", "0"),
    ("RUST_LOG", "warn"),
];

impl Target {
    /// Targets a running server.
    pub fn remote(url: &str, pid: Option<u32>) -> Target {
        Target { base: url.trim_end_matches('/').to_string(), pid, spawned: None }
    }

    /// Starts `bin serve` on a free port. `data_dir` None → a fresh temporary
    /// directory removed on drop.
    pub fn spawn(bin: &Path, data_dir: Option<&Path>, log_dir: &Path) -> Res<Target> {
        let (dir, remove) = match data_dir {
            Some(d) => (d.to_path_buf(), false),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "guildhall-bench-{}-{}",
                    std::process::id(),
                    crate::unix_nanos()
                ));
                (d, true)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::fs::create_dir_all(log_dir).map_err(|e| format!("creating {}: {e}", log_dir.display()))?;
        let port = free_port()?;
        let log = log_dir.join(format!("server-{port}.log"));
        let child = start(bin, &dir, port, &log)?;
        let mut t = Target {
            base: format!("http://127.0.0.1:{port}"),
            pid: Some(child.id()),
            spawned: Some(Spawned { bin: bin.to_path_buf(), child, data_dir: dir, remove_dir: remove, port, log }),
        };
        t.wait_healthy()?;
        Ok(t)
    }

    /// Stops a spawned server (SIGTERM, then SIGKILL) and starts it again on the
    /// same port and data directory: a fresh process for clean memory figures.
    pub fn restart(&mut self) -> Res<()> {
        let Some(s) = self.spawned.as_mut() else {
            return Err("restart needs a spawned server (--spawn)".into());
        };
        stop(&mut s.child);
        s.child = start(&s.bin, &s.data_dir, s.port, &s.log)?;
        self.pid = Some(s.child.id());
        self.wait_healthy()
    }

    pub fn is_spawned(&self) -> bool {
        self.spawned.is_some()
    }

    fn wait_healthy(&mut self) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = self.base.trim_start_matches("http://").to_string();
        loop {
            if let Some(s) = self.spawned.as_mut()
                && let Ok(Some(status)) = s.child.try_wait()
            {
                let tail = std::fs::read_to_string(&s.log).unwrap_or_default();
                return Err(format!("server exited with {status}; log {}:\n{tail}", s.log.display()));
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("server at {} did not come up within 30 s", self.base));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn api(&self) -> String {
        format!("{}/api/v10", self.base)
    }

    pub fn proc(&self) -> Option<ProcSample> {
        self.pid.and_then(ProcSample::read)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(s) = self.spawned.as_mut() {
            stop(&mut s.child);
            if s.remove_dir {
                let _ = std::fs::remove_dir_all(&s.data_dir);
            }
        }
    }
}

fn start(bin: &Path, dir: &Path, port: u16, log: &Path) -> Res<Child> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in SPAWN_ENV {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    cmd.spawn().map_err(|e| format!("starting {}: {e}", bin.display()))
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// One reading of /proc/PID: resident memory and CPU time.
#[derive(Clone, Copy, Debug)]
pub struct ProcSample {
    pub rss_kib: u64,
    /// User and system CPU time, nanoseconds.
    pub utime_ns: u64,
    pub stime_ns: u64,
    pub at: Instant,
}

impl ProcSample {
    pub fn read(pid: u32) -> Option<ProcSample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tick = 1_000_000_000 / clock_ticks();
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        Some(ProcSample { rss_kib, utime_ns: utime * tick, stime_ns: stime * tick, at: Instant::now() })
    }
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once (100 on Linux in practice).
pub fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// System-wide TCP counters that explain connection-storm latency: accept-queue
/// overflows (the client's handshake ACK is dropped and retried after ~1 s) and
/// retransmissions. From /proc/net/netstat and /proc/net/snmp.
pub fn tcp_counters() -> std::collections::BTreeMap<String, u64> {
    let wanted = ["ListenOverflows", "ListenDrops", "TCPTimeouts", "TCPSynRetrans", "RetransSegs"];
    let mut out = std::collections::BTreeMap::new();
    for file in ["/proc/net/netstat", "/proc/net/snmp"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { continue };
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
                if wanted.contains(&n) {
                    out.insert(n.to_string(), v.parse().unwrap_or(0));
                }
            }
        }
    }
    out
}

/// `after − before` for every counter.
pub fn tcp_delta(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> serde_json::Value {
    let m: serde_json::Map<String, serde_json::Value> =
        after.iter().map(|(k, v)| (k.clone(), (v.saturating_sub(*before.get(k).unwrap_or(&0))).into())).collect();
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_proc() {
        let s = ProcSample::read(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0);
    }
}
