//! The test harness: a server on an ephemeral port and a small REST client.

#![allow(dead_code)]

use guildhall::{Config, Server};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub struct TestServer {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Cheap password hashing so tests stay fast.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        password_memory_kib: 64,
        password_iterations: 1,
        // Rate limits stay on (headers are sent) but far above any test's pace.
        ratelimit_route_limit: 1_000_000,
        ratelimit_global_per_second: 1_000_000,
        ..Config::default()
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> TestServer {
        Self::start_with(dir, |_| {}).await
    }

    /// Starts with `test_config` adjusted by `tweak` (e.g. low rate limits).
    pub async fn start_with(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let server = Server::bind(config).await.unwrap();
        let addr = server.addr;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            base: format!("http://{addr}/api/v10"),
            addr,
            http: reqwest::Client::new(),
            data_dir: dir,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server gracefully and returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        // Dropping the server released the store; give its thread a moment.
        self.data_dir
    }

    pub fn gateway_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Sends a request; `token` is sent as-is in Authorization (prefix included).
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            rb = rb.header("Authorization", t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status();
        let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        let bytes = res.bytes().await.unwrap();
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if !bytes.is_empty() {
            assert_eq!(ct.as_deref(), Some("application/json"), "JSON responses carry exactly application/json");
        }
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.req(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PATCH, path, Some(token), Some(body)).await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PUT, path, Some(token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.req(Method::DELETE, path, Some(token), None).await
    }

    /// Registers a user and returns its token.
    pub async fn register(&self, username: &str) -> String {
        let (status, body) = self
            .req(
                Method::POST,
                "/auth/register",
                None,
                Some(serde_json::json!({
                    "username": username, "password": "correct horse battery", "email": format!("{username}@example.test"), "consent": true
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Registers a user and returns (token, user id).
    pub async fn user(&self, username: &str) -> (String, String) {
        let token = self.register(username).await;
        let (_, me) = self.get("/users/@me", &token).await;
        (token, me["id"].as_str().unwrap().to_string())
    }

    /// Creates a guild; returns (guild id, id of its #general text channel).
    pub async fn guild(&self, token: &str, name: &str) -> (String, String) {
        let (status, g) = self.post("/guilds", token, serde_json::json!({ "name": name })).await;
        assert_eq!(status, StatusCode::CREATED, "{g}");
        let gid = g["id"].as_str().unwrap().to_string();
        let general = g["system_channel_id"].as_str().unwrap().to_string();
        (gid, general)
    }
}
