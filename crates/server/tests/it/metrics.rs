//! `GET /metrics`: Prometheus text with per-route counters and runtime figures.

use reqwest::StatusCode;

use crate::common::TestServer;

async fn scrape(s: &TestServer) -> String {
    let res = s.http.get(format!("http://{}/metrics", s.addr)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    res.text().await.unwrap()
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).map(|v| v.parse().unwrap()))
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_report_the_runtime() {
    let s = TestServer::start().await;
    let token = s.register("metered").await;
    for _ in 0..3 {
        let (status, _) = s.get("/users/@me", &token).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = s.get("/users/@me", "bogus").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The v9 mount counts under the same route.
    let res =
        s.http.get(format!("http://{}/api/v9/users/@me", s.addr)).header("Authorization", &token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    s.guild(&token, "Measured").await;

    let text = scrape(&s).await;
    let ok = r#"guildhall_http_requests_total{method="GET",route="/users/@me",status="2xx"}"#;
    assert_eq!(value(&text, ok), Some(4.0), "{text}");
    assert_eq!(
        value(&text, r#"guildhall_http_requests_total{method="GET",route="/users/@me",status="4xx"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"guildhall_http_requests_total{method="POST",route="/auth/register",status="2xx"}"#),
        Some(1.0)
    );
    assert_eq!(value(&text, r#"guildhall_http_requests_total{method="POST",route="/guilds",status="2xx"}"#), Some(1.0));
    assert_eq!(
        value(&text, r#"guildhall_http_request_duration_seconds_count{method="GET",route="/users/@me",status="2xx"}"#),
        Some(4.0)
    );
    assert_eq!(
        value(
            &text,
            r#"guildhall_http_request_duration_seconds_bucket{method="GET",route="/users/@me",status="2xx",le="+Inf"}"#
        ),
        Some(4.0)
    );
    assert!(text.contains("# TYPE guildhall_http_request_duration_seconds histogram"));
    assert_eq!(value(&text, "guildhall_guilds"), Some(1.0));
    assert_eq!(value(&text, "guildhall_users"), Some(1.0));
    assert_eq!(value(&text, "guildhall_gateway_sessions"), Some(0.0));
    assert_eq!(value(&text, "guildhall_gateway_connections"), Some(0.0), "gateway counters are exported");
    assert_eq!(value(&text, "guildhall_gateway_dispatches_total"), Some(0.0));
    assert!(value(&text, "guildhall_store_batches_total").unwrap() >= 2.0, "the account and the guild were written");
    assert!(value(&text, "guildhall_store_syncs_total").is_some());
    assert!(value(&text, "guildhall_store_history_reads_total").is_some());
    // The account and guild writes sit in the memtables until a flush.
    assert!(value(&text, "guildhall_store_memtable_bytes").unwrap() > 0.0, "{text}");
    assert!(value(&text, "guildhall_store_block_cache_bytes").is_some());
    // Nothing flushed yet: no tables, so no filters or indexes.
    assert_eq!(value(&text, "guildhall_store_table_index_bytes"), Some(0.0), "{text}");

    // Scraping is not itself an API request.
    let again = scrape(&s).await;
    assert_eq!(value(&again, ok), Some(4.0));
}
