//! Prometheus metrics: `GET /metrics` (outside /api, unauthenticated — a
//! self-hosted server exposes it to its own scraper; put it behind the reverse
//! proxy's ACL if the port is public) in the text exposition format.
//!
//! HTTP requests are recorded by a middleware on the API routes: per (matched
//! route template without the /api/vN prefix, method, status class) a request
//! counter and a fixed-bucket latency histogram, all atomics. The per-route
//! entry is found under a read lock with no allocation; only the first request
//! of a route takes the write lock. Store, guild, user and gateway-session
//! figures are read from the runtime at scrape time.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use guildhall_runtime::Runtime;

use crate::ratelimit::route_template;

/// Histogram bucket upper bounds, in microseconds (0.25 ms … 5 s).
const BUCKETS_US: [u64; 13] =
    [250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 5_000_000];
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
struct ClassStats {
    count: AtomicU64,
    sum_us: AtomicU64,
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
}

#[derive(Default)]
struct RouteStats {
    methods: [OnceLock<Box<[ClassStats; 5]>>; 6],
}

/// The registry of HTTP figures.
pub struct Metrics {
    routes: RwLock<HashMap<Box<str>, Arc<RouteStats>>>,
    started: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { routes: RwLock::new(HashMap::new()), started: Instant::now() }
    }
}

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        _ => 5,
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Records one request to `route` (a template without the /api/vN prefix).
    pub fn record(&self, route: &str, method: &Method, status: u16, elapsed_us: u64) {
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        let stats = {
            let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
            map.get(route).cloned()
        };
        let stats = match stats {
            Some(s) => s,
            None => self.routes.write().unwrap_or_else(|p| p.into_inner()).entry(route.into()).or_default().clone(),
        };
        let c = &stats.methods[method_index(method)].get_or_init(Box::default)[class];
        c.count.fetch_add(1, Ordering::Relaxed);
        c.sum_us.fetch_add(elapsed_us, Ordering::Relaxed);
        let slot = BUCKETS_US.iter().position(|b| elapsed_us <= *b).unwrap_or(BUCKETS_US.len());
        c.buckets[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The HTTP part of the exposition.
    fn render_http(&self, out: &mut String) {
        let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let mut routes: Vec<(&str, &RouteStats)> = map.iter().map(|(k, v)| (&**k, &**v)).collect();
        routes.sort_unstable_by_key(|(k, _)| *k);
        let each = |f: &mut dyn FnMut(String, &ClassStats)| {
            for (route, stats) in &routes {
                for (mi, slot) in stats.methods.iter().enumerate() {
                    let Some(classes) = slot.get() else { continue };
                    for (ci, c) in classes.iter().enumerate() {
                        if c.count.load(Ordering::Relaxed) == 0 {
                            continue;
                        }
                        let labels = format!(
                            "method=\"{}\",route=\"{}\",status=\"{}\"",
                            METHODS[mi],
                            escape(route),
                            CLASSES[ci]
                        );
                        f(labels, c);
                    }
                }
            }
        };
        out.push_str(
            "# HELP guildhall_http_requests_total HTTP API requests by matched route, method and status class.\n",
        );
        out.push_str("# TYPE guildhall_http_requests_total counter\n");
        each(&mut |l, c| {
            let _ = writeln!(out, "guildhall_http_requests_total{{{l}}} {}", c.count.load(Ordering::Relaxed));
        });
        out.push_str("# HELP guildhall_http_request_duration_seconds HTTP API latency by matched route, method and status class.\n");
        out.push_str("# TYPE guildhall_http_request_duration_seconds histogram\n");
        each(&mut |l, c| {
            let mut cumulative = 0;
            for (i, b) in c.buckets.iter().enumerate() {
                cumulative += b.load(Ordering::Relaxed);
                match BUCKETS_US.get(i) {
                    Some(us) => {
                        let _ = writeln!(
                            out,
                            "guildhall_http_request_duration_seconds_bucket{{{l},le=\"{}\"}} {cumulative}",
                            *us as f64 / 1e6
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "guildhall_http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {cumulative}"
                        );
                    }
                }
            }
            let _ = writeln!(
                out,
                "guildhall_http_request_duration_seconds_sum{{{l}}} {}",
                c.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(out, "guildhall_http_request_duration_seconds_count{{{l}}} {cumulative}");
        });
    }

    /// The whole exposition: HTTP figures plus the runtime's.
    pub fn render(&self, rt: &Runtime) -> String {
        let mut out = String::with_capacity(4096);
        self.render_http(&mut out);
        let st = rt.store.stats();
        let users = rt.directory.with_users(|u| u.len());
        let bots = rt.directory.with_users(|u| u.values().filter(|x| x.bot).count());
        let rows: [(&str, &str, &str, u64); 12] = [
            (
                "guildhall_store_history_reads_total",
                "counter",
                "History pages read from the storage engine.",
                st.history_reads,
            ),
            (
                "guildhall_store_history_coalesced_total",
                "counter",
                "History pages answered from the cache or a read in flight.",
                st.history_coalesced,
            ),
            ("guildhall_store_batches_total", "counter", "Write batches applied.", st.batches),
            ("guildhall_store_syncs_total", "counter", "fsyncs issued by group commit.", st.syncs),
            (
                "guildhall_store_memtable_bytes",
                "gauge",
                "Bytes in the storage engine's memtables (written, not yet flushed to tables).",
                st.memtable_bytes,
            ),
            (
                "guildhall_store_block_cache_bytes",
                "gauge",
                "Bytes of the storage engine's block cache in use.",
                st.block_cache_bytes,
            ),
            (
                "guildhall_store_table_index_bytes",
                "gauge",
                "Bytes of the storage engine's table filters and block indexes held in memory.",
                st.table_index_bytes,
            ),
            ("guildhall_guilds", "gauge", "Guilds on this node.", rt.guild_count() as u64),
            ("guildhall_users", "gauge", "Known users, bots included.", users as u64),
            ("guildhall_bot_users", "gauge", "Known bot users.", bots as u64),
            ("guildhall_gateway_sessions", "gauge", "Live gateway sessions.", rt.sessions.count() as u64),
            (
                "guildhall_uptime_seconds",
                "gauge",
                "Seconds since the HTTP layer started.",
                self.started.elapsed().as_secs(),
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        if let Some(value) = st.write_buffer_heap_bytes {
            let name = "guildhall_store_write_buffer_heap_bytes";
            let _ = writeln!(
                out,
                "# HELP {name} Bytes the allocator holds for the storage engine's write buffers \
                 (memtables with their index nodes, exact).\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\\', '"', '\n']) {
        s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
    } else {
        s.into()
    }
}

/// The recording middleware (`route_layer`, so the matched path is known).
pub async fn middleware(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    if let Some(route) = route {
        let us = start.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
        metrics.record(route_template(route.as_str()), &method, res.status().as_u16(), us);
    }
    res
}

#[derive(Clone)]
struct MetricsState {
    metrics: Arc<Metrics>,
    rt: Runtime,
    extra: Option<crate::ExtraMetrics>,
}

/// `GET /metrics`, with its own state so it merges into any router.
pub fn router<S: Clone + Send + Sync + 'static>(
    metrics: Arc<Metrics>,
    rt: Runtime,
    extra: Option<crate::ExtraMetrics>,
) -> Router<S> {
    Router::new().route("/metrics", get(scrape)).with_state(MetricsState { metrics, rt, extra })
}

async fn scrape(State(s): State<MetricsState>) -> Response {
    let mut body = s.metrics.render(&s.rt);
    if let Some(extra) = &s.extra {
        extra(&mut body);
    }
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_counts_and_cumulative_buckets() {
        let m = Metrics::new();
        m.record("/users/@me", &Method::GET, 200, 300);
        m.record("/users/@me", &Method::GET, 204, 7_000_000);
        m.record("/users/@me", &Method::GET, 404, 10);
        m.record("/guilds", &Method::POST, 201, 100);
        let mut out = String::new();
        m.render_http(&mut out);
        assert!(
            out.contains("guildhall_http_requests_total{method=\"GET\",route=\"/users/@me\",status=\"2xx\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("guildhall_http_requests_total{method=\"GET\",route=\"/users/@me\",status=\"4xx\"} 1\n"));
        assert!(out.contains("guildhall_http_requests_total{method=\"POST\",route=\"/guilds\",status=\"2xx\"} 1\n"));
        assert!(out.contains("guildhall_http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/@me\",status=\"2xx\",le=\"0.00025\"} 0\n"));
        assert!(out.contains("guildhall_http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/@me\",status=\"2xx\",le=\"0.0005\"} 1\n"));
        assert!(out.contains("guildhall_http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/@me\",status=\"2xx\",le=\"5\"} 1\n"));
        assert!(out.contains("guildhall_http_request_duration_seconds_bucket{method=\"GET\",route=\"/users/@me\",status=\"2xx\",le=\"+Inf\"} 2\n"));
        assert!(out.contains(
            "guildhall_http_request_duration_seconds_sum{method=\"GET\",route=\"/users/@me\",status=\"2xx\"} 7.0003\n"
        ));
        assert!(!out.contains("status=\"5xx\""));
    }
}
