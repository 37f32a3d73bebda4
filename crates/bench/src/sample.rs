//! A background sampler of the server process over time: VmRSS and open file
//! descriptors from /proc/PID, plus the gateway gauges and counters from
//! `/metrics` (sessions, connections, overflows, resumes, identifies, the storage
//! engine's memtable and block cache bytes). Each sample
//! carries the scenario's current phase label. Also a small SVG line chart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::rest::{Rest, metric_value};

#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Seconds since the sampler started.
    pub t: f64,
    pub phase: String,
    pub rss_kib: Option<u64>,
    pub fds: Option<u64>,
    /// `guildhall_gateway_sessions_open`: live sessions plus those kept for RESUME.
    pub sessions_open: Option<u64>,
    pub connections: Option<u64>,
    pub overflows: Option<u64>,
    pub resumes: Option<u64>,
    pub identifies: Option<u64>,
    /// System-wide kernel memory of TCP sockets (`/proc/net/sockstat` "TCP: ... mem"),
    /// KiB: socket buffers are not in any process's RSS.
    pub tcp_mem_kib: Option<u64>,
    /// The storage engine's memtables + block cache + tables' in-memory filters and
    /// indexes (`/metrics`), KiB: memory that fills with written and read data (up to
    /// configured bounds, but for the filters, which grow with the data). The memtables
    /// as the allocator counts them (`guildhall_store_write_buffer_heap_bytes`) where
    /// the server exports that, else the engine's estimate, which leaves out the
    /// memtables' index nodes (~12 % of them).
    pub store_kib: Option<u64>,
}

/// `/proc/net/sockstat`'s TCP `mem` (pages) in KiB.
pub fn tcp_mem_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut w = line.split_whitespace();
    while let Some(k) = w.next() {
        if k == "mem" {
            return w.next()?.parse::<u64>().ok().map(|p| p * 4);
        }
    }
    None
}

impl Sample {
    pub fn to_json(&self) -> Value {
        json!({
            "t_s": (self.t * 100.0).round() / 100.0, "phase": self.phase, "rss_kib": self.rss_kib, "fds": self.fds,
            "sessions_open": self.sessions_open, "connections": self.connections, "overflows": self.overflows,
            "resumes": self.resumes, "identifies": self.identifies, "tcp_mem_kib": self.tcp_mem_kib,
            "store_kib": self.store_kib,
        })
    }
}

/// Count of `/proc/PID/fd` entries.
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// `Rss`, `Anonymous` and `LazyFree` (kB) from /proc/PID/smaps_rollup: LazyFree is
/// memory the allocator gave back with `MADV_FREE`, still counted in RSS until the
/// kernel needs it.
pub fn smaps_rollup(pid: u32) -> Value {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let mut out = serde_json::Map::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if let (Some(k), Some(v)) = (w.next(), w.next())
            && ["Rss:", "Anonymous:", "LazyFree:", "Private_Dirty:"].contains(&k)
            && let Ok(v) = v.parse::<u64>()
        {
            out.insert(format!("{}_kib", k.trim_end_matches(':').to_lowercase()), v.into());
        }
    }
    Value::Object(out)
}

/// One reading now.
pub async fn sample_now(pid: Option<u32>, rest: &Rest, t0: Instant, phase: &str) -> Sample {
    let metrics = rest.metrics().await.ok();
    let m = |name: &str| metrics.as_deref().and_then(|t| metric_value(t, name)).map(|v| v as u64);
    Sample {
        t: t0.elapsed().as_secs_f64(),
        phase: phase.to_string(),
        rss_kib: pid.and_then(crate::server::ProcSample::read).map(|p| p.rss_kib),
        fds: pid.and_then(fd_count),
        sessions_open: m("guildhall_gateway_sessions_open"),
        connections: m("guildhall_gateway_connections"),
        overflows: m("guildhall_gateway_overflows_total"),
        resumes: m("guildhall_gateway_resumes_total"),
        identifies: m("guildhall_gateway_identifies_total"),
        tcp_mem_kib: tcp_mem_kib(),
        store_kib: m("guildhall_store_write_buffer_heap_bytes")
            .or_else(|| m("guildhall_store_memtable_bytes"))
            .zip(m("guildhall_store_block_cache_bytes"))
            .map(|(a, b)| (a + b + m("guildhall_store_table_index_bytes").unwrap_or(0)) / 1024),
    }
}

pub struct Sampler {
    pub t0: Instant,
    samples: Arc<Mutex<Vec<Sample>>>,
    phase: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Samples every `every` until [`Sampler::finish`].
    pub fn start(pid: Option<u32>, rest: &Rest, every: Duration, phase: &str) -> Sampler {
        let t0 = Instant::now();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let phase = Arc::new(Mutex::new(phase.to_string()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, p2, st2, rest) = (samples.clone(), phase.clone(), stop.clone(), rest.clone());
        let task = tokio::spawn(async move {
            let mut next = tokio::time::Instant::now();
            while !st2.load(Ordering::Relaxed) {
                let label = p2.lock().unwrap().clone();
                let s = sample_now(pid, &rest, t0, &label).await;
                s2.lock().unwrap().push(s);
                next += every;
                tokio::time::sleep_until(next).await;
            }
        });
        Sampler { t0, samples, phase, stop, task }
    }

    pub fn set_phase(&self, phase: &str) {
        *self.phase.lock().unwrap() = phase.to_string();
    }

    /// Samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// The latest sample so far.
    pub fn last(&self) -> Option<Sample> {
        self.samples.lock().unwrap().last().cloned()
    }

    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.samples.lock().unwrap().clone()
    }
}

/// A line chart: one or more series of (x, y) over a shared x axis, each scaled to
/// its own y range (min..max of that series) and labelled with that range.
pub fn line_svg(title: &str, x_label: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 360.0, 70.0, 20.0, 40.0, 50.0);
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (x0, x1) = if x0 > x1 { (0.0, 1.0) } else { (x0, x1.max(x0 + 1e-9)) };
    let pw = w - left - right;
    let ph = h - top - bottom;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"20\" font-size=\"14\">{}</text>\n\
         <rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>\n",
        xml(title)
    );
    for k in 0..=4 {
        let x = x0 + (x1 - x0) * k as f64 / 4.0;
        let px = left + pw * k as f64 / 4.0;
        out.push_str(&format!(
            "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x:.0}</text>\n",
            top + ph + 16.0
        ));
    }
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2.0,
        h - 12.0,
        xml(x_label)
    ));
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = colors[i % colors.len()];
        let (y0, y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (y0, y1) = if y0 > y1 { (0.0, 1.0) } else { (y0, y1) };
        // Pad the range so a flat line sits mid-chart.
        let pad = ((y1 - y0) * 0.1).max(y1.abs() * 0.01).max(1e-9);
        let (lo, hi) = (y0 - pad, y1 + pad);
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| {
                let px = left + pw * (x - x0) / (x1 - x0);
                let py = top + ph * (1.0 - (y - lo) / (hi - lo));
                format!("{px:.1},{py:.1}")
            })
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            path.join(" ")
        ));
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{} (min {y0:.1}, max {y1:.1})</text>\n",
            left + 320.0 * i as f64,
            top - 6.0,
            xml(name)
        ));
    }
    out.push_str("</svg>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_fds_and_chart() {
        assert!(fd_count(std::process::id()).unwrap() >= 3);
        let svg = line_svg("t", "s", &[("rss".into(), vec![(0.0, 10.0), (5.0, 12.0)]), ("fds".into(), vec![])]);
        assert!(svg.contains("<polyline") && svg.contains("rss (min 10.0, max 12.0)"), "{svg}");
    }
}
