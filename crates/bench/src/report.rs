//! Results: rows of "metric | target | measured | ok?", printed as a table and
//! written with the run's parameters, the machine and any extra figures to
//! `<results>/<scenario>-<timestamp>.json`; histograms go next to it as SVG.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::hist::Histogram;

/// Which way a target points.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    /// The measured value must be at most the target.
    AtMost(f64),
    /// The measured value must be at least the target.
    AtLeast(f64),
    /// Informational only.
    None,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub metric: String,
    pub unit: String,
    pub goal: Goal,
    pub measured: f64,
}

impl Row {
    pub fn ok(&self) -> Option<bool> {
        match self.goal {
            Goal::AtMost(t) => Some(self.measured <= t),
            Goal::AtLeast(t) => Some(self.measured >= t),
            Goal::None => None,
        }
    }
    fn target_text(&self) -> String {
        match self.goal {
            Goal::AtMost(t) => format!("≤ {} {}", num(t), self.unit),
            Goal::AtLeast(t) => format!("≥ {} {}", num(t), self.unit),
            Goal::None => "-".into(),
        }
    }
}

fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        let s = format!("{}", v as i64);
        // Thousands separators for readability.
        let (sign, digits) = if let Some(d) = s.strip_prefix('-') { ("-", d) } else { ("", s.as_str()) };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

pub struct Report {
    pub scenario: String,
    pub params: Value,
    pub rows: Vec<Row>,
    pub extra: serde_json::Map<String, Value>,
    pub histograms: Vec<(String, Histogram)>,
    /// Other pictures (name, SVG text), written next to the JSON.
    pub svgs: Vec<(String, String)>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, params: Value) -> Report {
        Report {
            scenario: scenario.into(),
            params,
            rows: Vec::new(),
            extra: serde_json::Map::new(),
            histograms: Vec::new(),
            svgs: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, metric: impl Into<String>, unit: &str, goal: Goal, measured: f64) {
        self.rows.push(Row { metric: metric.into(), unit: unit.into(), goal, measured });
    }

    pub fn extra(&mut self, key: &str, value: Value) {
        self.extra.insert(key.into(), value);
    }

    /// Adds a picture written as `<scenario>-<stamp>-<name>.svg`.
    pub fn svg(&mut self, name: &str, svg: String) {
        self.svgs.push((name.to_string(), svg));
    }

    pub fn note(&mut self, text: impl Into<String>) {
        let t = text.into();
        eprintln!("note: {t}");
        self.notes.push(t);
    }

    /// Adds a latency histogram: p50/p99 rows (with the given targets) plus an SVG.
    pub fn latency(&mut self, name: &str, h: &Histogram, p99_target_ms: Option<f64>) {
        self.row(format!("{name} p50"), "ms", Goal::None, crate::hist::ms(h.quantile(0.5)));
        let goal = p99_target_ms.map(Goal::AtMost).unwrap_or(Goal::None);
        self.row(format!("{name} p99"), "ms", goal, crate::hist::ms(h.quantile(0.99)));
        self.extra(&format!("{name} histogram"), h.summary_ms());
        self.histograms.push((name.to_string(), h.clone()));
    }

    pub fn table(&self) -> String {
        let mut lines = vec![("metric".to_string(), "target".to_string(), "measured".to_string(), "ok?".to_string())];
        for r in &self.rows {
            let ok = match r.ok() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            lines.push((r.metric.clone(), r.target_text(), format!("{} {}", num(r.measured), r.unit), ok.into()));
        }
        let w0 = lines.iter().map(|l| l.0.chars().count()).max().unwrap_or(0);
        let w1 = lines.iter().map(|l| l.1.chars().count()).max().unwrap_or(0);
        let w2 = lines.iter().map(|l| l.2.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (i, (a, b, c, d)) in lines.iter().enumerate() {
            out.push_str(&format!("{} | {} | {} | {}\n", pad(a, w0), pad(b, w1), pad(c, w2), d));
            if i == 0 {
                out.push_str(&format!("{}-|-{}-|-{}-|----\n", "-".repeat(w0), "-".repeat(w1), "-".repeat(w2)));
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let (kind, target) = match r.goal {
                    Goal::AtMost(t) => ("at_most", Some(t)),
                    Goal::AtLeast(t) => ("at_least", Some(t)),
                    Goal::None => ("none", None),
                };
                json!({ "metric": r.metric, "unit": r.unit, "target_kind": kind, "target": target, "measured": r.measured, "ok": r.ok() })
            })
            .collect();
        json!({
            "scenario": self.scenario,
            "unix_time": unix_secs(),
            "machine": machine(),
            "params": self.params,
            "rows": rows,
            "extra": self.extra,
            "notes": self.notes,
        })
    }

    /// Prints the table and writes JSON (and SVGs) under `dir`; returns the JSON path.
    pub fn finish(&self, dir: &Path) -> std::io::Result<PathBuf> {
        println!("\n== {} ==\n{}", self.scenario, self.table());
        for n in &self.notes {
            println!("note: {n}");
        }
        std::fs::create_dir_all(dir)?;
        let stamp = unix_secs();
        let path = dir.join(format!("{}-{stamp}.json", self.scenario));
        std::fs::write(&path, serde_json::to_vec_pretty(&self.to_json()).unwrap_or_default())?;
        let file = |name: &str| -> String {
            let f: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
            format!("{}-{stamp}-{f}.svg", self.scenario)
        };
        for (name, h) in &self.histograms {
            std::fs::write(dir.join(file(name)), h.to_svg(&format!("{}: {name}", self.scenario)))?;
        }
        for (name, svg) in &self.svgs {
            std::fs::write(dir.join(file(name)), svg)?;
        }
        println!("results: {}", path.display());
        Ok(path)
    }
}

fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

pub fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Cores, memory and kernel of this machine.
pub fn machine() -> Value {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    json!({ "cores": cores, "mem_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0, "kernel": kernel, "cpu": cpu })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_marks_targets() {
        let mut r = Report::new("t", json!({}));
        r.row("rate", "msgs/s", Goal::AtLeast(150_000.0), 200_000.0);
        r.row("p99", "ms", Goal::AtMost(2.0), 3.5);
        r.row("info", "x", Goal::None, 0.25);
        let t = r.table();
        assert!(t.contains("≥ 150,000 msgs/s") && t.contains("200,000 msgs/s") && t.contains("| yes"), "{t}");
        assert!(t.contains("≤ 2 ms") && t.contains("| NO"), "{t}");
        let v = r.to_json();
        assert_eq!(v["rows"][1]["ok"], json!(false));
        assert_eq!(v["rows"][2]["ok"], Value::Null);
    }
}
