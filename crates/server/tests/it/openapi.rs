//! The OpenAPI document: served without a token at `/api/v10/openapi.json`, and
//! in step with the router — every registered route and method is documented,
//! and nothing is documented that the server does not route.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::TestServer;

async fn fetch(s: &TestServer, prefix: &str) -> Value {
    let res = s.http.get(format!("http://{}{prefix}/openapi.json", s.addr)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    serde_json::from_slice(&res.bytes().await.unwrap()).expect("the document is JSON")
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Documented (method, path) pairs, paths without the `/api/v10` prefix.
fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let path = path.strip_prefix("/api/v10").unwrap_or_else(|| panic!("{path} lacks the /api/v10 prefix"));
        let methods: BTreeSet<String> =
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_uppercase()).collect();
        out.insert(path.to_string(), methods);
    }
    out
}

#[tokio::test]
async fn document_is_served_without_a_token_and_lists_known_routes() {
    let s = TestServer::start().await;
    let doc = fetch(&s, "/api/v10").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string());
    let ops = documented(&doc);
    for (method, path) in [
        ("POST", "/channels/{channel_id}/messages"),
        ("GET", "/channels/{channel_id}/messages"),
        ("GET", "/users/@me"),
        ("GET", "/gateway/bot"),
        ("POST", "/guilds"),
        ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user}"),
        ("GET", "/openapi.json"),
    ] {
        assert!(ops.get(path).is_some_and(|m| m.contains(method)), "{method} {path} is not documented");
    }
    // The snowflake path parameter and the bot token scheme are described.
    let send = &doc["paths"]["/api/v10/channels/{channel_id}/messages"]["post"];
    let param = send["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "channel_id").unwrap();
    assert_eq!(param["in"], "path");
    assert_eq!(param["required"], true);
    assert_eq!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CreateMessageBody"
    );
    assert_eq!(doc["components"]["securitySchemes"]["bot"]["name"], "Authorization");
    assert_eq!(doc["components"]["schemas"]["Snowflake"]["pattern"], "^[1-9][0-9]{0,18}$");
    // Discord's error body for every failure.
    assert_eq!(send["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error");
    // The unversioned and v9 prefixes serve the same document.
    assert_eq!(fetch(&s, "/api").await, doc);
    assert_eq!(fetch(&s, "/api/v9").await, doc);
    s.stop().await;
}

#[tokio::test]
async fn document_is_well_formed() {
    let s = TestServer::start().await;
    let doc = fetch(&s, "/api/v10").await;
    // operationIds are unique.
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                let id = op["operationId"].as_str().expect("every operation has an id");
                assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            }
        }
    }
    // Every `$ref` names a schema that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 100);
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "$ref {r} does not resolve");
    }
    s.stop().await;
}

/// The paths registered in the API router, read from its `Debug` output (axum
/// lists each route's path as `RouteId(n): "/path"`; the fallback router that
/// follows holds axum's own catch-all entries).
fn registered_paths() -> BTreeSet<String> {
    let dump = format!("{:?}", guildhall_api::api_routes());
    let (routes, _) =
        dump.split_once("fallback_router:").expect("axum's Router debug output names its fallback router");
    let mut out = BTreeSet::new();
    let mut rest = routes;
    while let Some(i) = rest.find("RouteId(") {
        rest = &rest[i + "RouteId(".len()..];
        let Some(after) = rest.split_once("): \"") else { continue };
        if !after.0.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = after.1.split('"').next().unwrap();
        out.insert(path.to_string());
    }
    out
}

#[tokio::test]
async fn every_registered_route_and_method_is_documented() {
    let routed = registered_paths();
    assert!(routed.len() > 40, "the router dump no longer lists paths: {routed:?}");
    let s = TestServer::start().await;
    let doc = fetch(&s, "/api/v10").await;
    let ops = documented(&doc);
    let documented_paths: BTreeSet<String> = ops.keys().cloned().collect();
    assert_eq!(
        routed.difference(&documented_paths).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes without documentation"
    );
    assert_eq!(
        documented_paths.difference(&routed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented paths the server does not route"
    );
    // Methods: a method no route has gets 405 with the path's `Allow` list.
    for (path, methods) in &ops {
        let concrete: String =
            path.split('/').map(|seg| if seg.starts_with('{') { "1" } else { seg }).collect::<Vec<_>>().join("/");
        let res = s.http.request(Method::TRACE, format!("{}{concrete}", s.base)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "TRACE {concrete}");
        let allow: BTreeSet<String> = res.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| m != "HEAD" && !m.is_empty())
            .collect();
        assert_eq!(&allow, methods, "methods routed vs documented for {path}");
    }
    s.stop().await;
}
