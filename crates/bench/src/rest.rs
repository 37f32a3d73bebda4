//! A small REST client over reqwest, and a task pool that runs N indexed jobs
//! with bounded concurrency across the runtime's threads.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::Value;

use crate::Res;

#[derive(Clone)]
pub struct Rest {
    pub http: reqwest::Client,
    /// `http://host:port/api/v10`
    pub api: String,
    /// `http://host:port`
    pub base: String,
}

impl Rest {
    pub fn new(base: &str) -> Rest {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(4096)
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("reqwest client");
        Rest { http, api: format!("{base}/api/v10"), base: base.to_string() }
    }

    /// Sends a request and returns (status, JSON body or Null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Res<(u16, Value)> {
        let mut rb = self.http.request(method, format!("{}{path}", self.api));
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        if let Some(b) = body {
            rb = rb.header("Content-Type", "application/json").body(serde_json::to_vec(b).unwrap_or_default());
        }
        let res = rb.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await.map_err(|e| format!("{path}: {e}"))?;
        let v = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, v))
    }

    /// Like `call`, but a non-2xx status is an error.
    pub async fn ok(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Res<Value> {
        let (status, v) = self.call(method.clone(), path, token, body).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{method} {path}: HTTP {status} {v}"));
        }
        Ok(v)
    }

    /// `GET /api/v10/gateway` → the gateway URL.
    pub async fn gateway_url(&self) -> Res<String> {
        let v = self.ok(Method::GET, "/gateway", None, None).await?;
        v["url"].as_str().map(|s| s.trim_end_matches('/').to_string()).ok_or_else(|| format!("/gateway answered {v}"))
    }

    /// The server's `/metrics` text, if it has one.
    pub async fn metrics(&self) -> Res<String> {
        let res = self.http.get(format!("{}/metrics", self.base)).send().await.map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("/metrics: HTTP {}", res.status()));
        }
        res.text().await.map_err(|e| e.to_string())
    }
}

/// Sums every sample of a Prometheus-text metric whose name is `name` (labels ignored).
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(key), Some(val)) = (parts.next(), parts.next()) else { continue };
        let bare = key.split('{').next().unwrap_or(key);
        if bare == name
            && let Ok(v) = val.parse::<f64>()
        {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Runs `f(0..n)` with at most `conc` in flight, as `conc` spawned tasks; results by index.
pub async fn pool<T, F, Fut>(n: usize, conc: usize, f: F) -> Vec<Res<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Res<T>> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc.clamp(1, n.max(1)) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                out.push((i, f(i).await));
            }
            out
        }));
    }
    let mut slots: Vec<Option<Res<T>>> = (0..n).map(|_| None).collect();
    for t in tasks {
        match t.await {
            Ok(out) => {
                for (i, r) in out {
                    slots[i] = Some(r);
                }
            }
            Err(e) => eprintln!("pool task failed: {e}"),
        }
    }
    slots.into_iter().map(|s| s.unwrap_or_else(|| Err("task lost".into()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_sum_labels() {
        let text = "# HELP x\nguildhall_store_history_reads 7\nother 1\nguildhall_store_history_reads{shard=\"b\"} 3\n";
        assert_eq!(metric_value(text, "guildhall_store_history_reads"), Some(10.0));
        assert_eq!(metric_value(text, "missing"), None);
    }
}
