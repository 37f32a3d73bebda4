//! Latency histogram: HDR-like logarithmic buckets (32 sub-buckets per power of
//! two, so about 3 % precision) over nanoseconds, percentiles, a sparse wire form
//! for worker processes, and a hand-written SVG picture.

use serde_json::{Value, json};

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const LINEAR: u64 = 2 * SUB;
const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64 - 1) * SUB) as usize;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    min: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0, min: u64::MAX, sum: 0 }
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as u64; // >= SUB_BITS + 1
    let sub = (v >> (e - SUB_BITS as u64)) - SUB;
    (LINEAR + (e - SUB_BITS as u64 - 1) * SUB + sub) as usize
}

/// Lowest value of bucket `i`.
fn low(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let k = i - LINEAR;
    let e = k / SUB + SUB_BITS as u64 + 1;
    (SUB + k % SUB) << (e - SUB_BITS as u64)
}

/// Highest value of bucket `i`.
fn high(i: usize) -> u64 {
    if i + 1 >= BUCKETS { u64::MAX } else { low(i + 1) - 1 }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram::default()
    }

    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
        self.min = self.min.min(v);
        self.sum += v as u128;
    }

    pub fn record_duration(&mut self, d: std::time::Duration) {
        self.record(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += *b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }
    pub fn max(&self) -> u64 {
        self.max
    }
    pub fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    /// The value at quantile `q` (0..=1): the upper edge of its bucket, capped at the max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return high(i).min(self.max).max(self.min);
            }
        }
        self.max
    }

    /// Summary in milliseconds, for results files.
    pub fn summary_ms(&self) -> Value {
        json!({
            "count": self.total,
            "mean_ms": ms(self.mean() as u64),
            "p50_ms": ms(self.quantile(0.50)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max),
        })
    }

    /// Sparse form `[[bucket, count], ...]` plus exact min/max/sum, for worker → parent.
    pub fn to_wire(&self) -> Value {
        let buckets: Vec<Value> =
            self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| json!([i, c])).collect();
        json!({ "b": buckets, "max": self.max, "min": self.min, "sum": self.sum.to_string() })
    }

    pub fn from_wire(v: &Value) -> Histogram {
        let mut h = Histogram::new();
        for pair in v["b"].as_array().into_iter().flatten() {
            let (i, c) = (pair[0].as_u64().unwrap_or(0) as usize, pair[1].as_u64().unwrap_or(0));
            if i < BUCKETS {
                h.counts[i] += c;
                h.total += c;
            }
        }
        h.max = v["max"].as_u64().unwrap_or(0);
        h.min = v["min"].as_u64().unwrap_or(u64::MAX);
        h.sum = v["sum"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
        h
    }

    /// A bar chart of the distribution on a logarithmic time axis, with the
    /// p50/p99/p99.9/max marked.
    pub fn to_svg(&self, title: &str) -> String {
        let (w, h) = (900.0_f64, 420.0_f64);
        let (left, right, top, bottom) = (70.0, 20.0, 50.0, 60.0);
        let pw = w - left - right;
        let ph = h - top - bottom;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"24\" font-size=\"15\">{}</text>\n",
            xml_escape(title)
        );
        if self.total == 0 {
            s.push_str("<text x=\"70\" y=\"200\">no samples</text>\n</svg>\n");
            return s;
        }
        let lo = (self.min.max(1) as f64).log10().floor();
        let hi = (self.max.max(2) as f64).log10().ceil().max(lo + 1.0);
        let x = |v: f64| left + (v.max(1.0).log10() - lo) / (hi - lo) * pw;
        let peak = *self.counts.iter().max().unwrap_or(&1) as f64;
        for (i, c) in self.counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            let x0 = x(low(i) as f64);
            let x1 = x((high(i).min(self.max.max(low(i))) + 1) as f64).max(x0 + 1.0);
            let bh = (*c as f64 / peak) * ph;
            s.push_str(&format!(
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#4a7ebb\"/>\n",
                top + ph - bh,
                x1 - x0
            ));
        }
        // Axes and decade ticks.
        s.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{0}\" stroke=\"black\"/>\n",
            top + ph,
            left + pw
        ));
        let mut d = lo;
        while d <= hi {
            let v = 10f64.powf(d);
            let px = x(v);
            s.push_str(&format!(
                "<line x1=\"{px:.1}\" y1=\"{0}\" x2=\"{px:.1}\" y2=\"{1}\" stroke=\"black\"/>\n<text x=\"{px:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>\n",
                top + ph,
                top + ph + 5.0,
                top + ph + 20.0,
                fmt_ns(v as u64)
            ));
            d += 1.0;
        }
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">latency (log scale)</text>\n<text x=\"15\" y=\"{}\" transform=\"rotate(-90 15 {})\" text-anchor=\"middle\">count (peak {})</text>\n",
            left + pw / 2.0,
            h - 15.0,
            top + ph / 2.0,
            top + ph / 2.0,
            peak as u64
        ));
        let marks = [
            ("p50", self.quantile(0.5), "#2a9d3a"),
            ("p99", self.quantile(0.99), "#e08a00"),
            ("p99.9", self.quantile(0.999), "#c0392b"),
            ("max", self.max, "#555555"),
        ];
        for (k, (name, v, color)) in marks.iter().enumerate() {
            let px = x(*v as f64);
            s.push_str(&format!(
                "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{0}\" stroke=\"{color}\" stroke-dasharray=\"4 3\"/>\n<text x=\"{1:.1}\" y=\"{2}\" fill=\"{color}\">{name} {3}</text>\n",
                top + ph,
                (px + 3.0).min(w - 120.0),
                top + 14.0 + 14.0 * k as f64,
                fmt_ns(*v)
            ));
        }
        s.push_str(&format!(
            "<text x=\"{}\" y=\"38\" fill=\"#333\">n = {}, mean {}</text>\n</svg>\n",
            left,
            self.total,
            fmt_ns(self.mean() as u64)
        ));
        s
    }
}

pub fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e6 * 1000.0).round() / 1000.0
}

/// Human form of a duration in nanoseconds: "830 ns", "12.4 µs", "3.10 ms", "1.20 s".
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if v < 1e3 {
        format!("{ns} ns")
    } else if v < 1e6 {
        format!("{:.3} µs", v / 1e3).trim_end_matches('0').trim_end_matches('.').to_string()
    } else if v < 1e9 {
        format!("{:.3} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 1_000_000, 123_456_789, u64::MAX / 3] {
            let i = index(v);
            assert!(low(i) <= v && v <= high(i), "{v} in bucket {i} [{}, {}]", low(i), high(i));
            assert!((high(i) - low(i)) as f64 <= v as f64 / 30.0 + 1.0);
        }
        for i in 0..BUCKETS - 1 {
            assert_eq!(high(i) + 1, low(i + 1));
        }
    }

    #[test]
    fn quantiles_and_wire_round_trip() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 5_000_000.0).abs() / 5_000_000.0 < 0.04, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 - 9_900_000.0).abs() / 9_900_000.0 < 0.04, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
        let back = Histogram::from_wire(&h.to_wire());
        assert_eq!(back.count(), h.count());
        assert_eq!(back.quantile(0.99), h.quantile(0.99));
        assert_eq!(back.mean(), h.mean());
        let svg = h.to_svg("t");
        assert!(svg.starts_with("<svg") && svg.contains("p99"));
    }
}
