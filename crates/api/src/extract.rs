//! Request extractors with Discord's error semantics: `DiscordJson<T>` for bodies
//! (invalid JSON → 50109, wrong shape → 50035 with the failing field's path),
//! `DiscordQuery<T>` for query strings, `path_id` for snowflake path segments, and
//! `query_limit` / `query_id` / `query_timestamp` for the common query parameters.
//!
//! JSON nesting depth: a body (or multipart `payload_json`) with arrays/objects
//! nested deeper than [`MAX_JSON_DEPTH`] is refused with 400 50109 by a byte scan
//! before any parsing, so depth costs neither recursion nor allocation.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use guildhall_model::id::{ChannelId, MessageId};
use guildhall_model::{Timestamp, error_code};
use guildhall_runtime::{Error, ErrorKind, FormErrors};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Accepts `application/json` (any parameters) and
/// `application/x-www-form-urlencoded` is rejected as Discord does for JSON routes.
pub struct DiscordJson<T>(pub T);

/// Largest JSON body accepted on JSON routes.
pub const MAX_JSON_BYTES: usize = 1 << 20;

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for DiscordJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
            .unwrap_or(false);
        let bytes = Bytes::from_request(req, state).await.map_err(|_| too_large())?;
        if bytes.len() > MAX_JSON_BYTES {
            return Err(too_large());
        }
        if !is_json && !bytes.is_empty() {
            let mut f = FormErrors::default();
            f.add(
                "_errors",
                "CONTENT_TYPE_INVALID",
                "Expected \"Content-Type\" header to be one of {'application/json'}.",
            );
            return Err(ApiError(f.into_error()));
        }
        parse_json(if bytes.is_empty() { b"{}" } else { &bytes }).map(DiscordJson)
    }
}

fn too_large() -> ApiError {
    ApiError(Error::new(ErrorKind::PayloadTooLarge, error_code::REQUEST_TOO_LARGE, "Request entity too large"))
}

/// Deepest array/object nesting accepted in a JSON body (no Discord payload
/// comes close; serde_json's own recursion limit is 128).
pub const MAX_JSON_DEPTH: usize = 64;

/// Whether `bytes` nests arrays/objects deeper than `max`, brackets inside
/// strings not counted. A linear scan with no allocation; malformed input is left
/// to the parser.
pub fn json_too_deep(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parses JSON with Discord's error codes; exposed for multipart `payload_json`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if json_too_deep(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError(Error::bad_request(error_code::INVALID_JSON, "The request body contains invalid JSON.")));
    }
    // Syntax first, so "not JSON" and "JSON of the wrong shape" answer differently.
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| {
        ApiError(Error::bad_request(error_code::INVALID_JSON, "The request body contains invalid JSON."))
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let mut f = FormErrors::default();
        // serde names a missing field only in its message (missing field `x`); the
        // path points at the containing object. Discord reports it at the field.
        if let Some(name) = inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            let full = if path == "." || path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
            f.add(&full, "BASE_TYPE_REQUIRED", "This field is required");
        } else {
            let full = if path == "." || path.is_empty() { "_errors".to_string() } else { path };
            f.add(&full, "BASE_TYPE_INVALID", &inner);
        }
        ApiError(f.into_error())
    })
}

/// A query string, with 50035 on bad values.
pub struct DiscordQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for DiscordQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = form_pairs(q);
        // Build a JSON object of strings so field types are parsed by each
        // struct's deserializers (see `crate::query` helpers).
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            map.insert(k, serde_json::Value::String(v));
        }
        serde_path_to_error::deserialize(serde_json::Value::Object(map)).map(DiscordQuery).map_err(|e| {
            let path = e.path().to_string();
            let mut f = FormErrors::default();
            f.add(if path == "." { "_errors" } else { &path }, "NUMBER_TYPE_COERCE", &e.into_inner().to_string());
            ApiError(f.into_error())
        })
    }
}

/// Splits `a=1&b=2`, percent-decoding keys and values.
pub fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                // Both characters must be hex digits (`from_str_radix` alone would take a `+`).
                let hex = (b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit())
                    .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
                    .flatten();
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a snowflake path segment; a malformed one is 50035 as on Discord.
pub fn path_id<M>(raw: &str, field: &str) -> Result<guildhall_model::Id<M>, ApiError> {
    raw.parse().map_err(|_| {
        ApiError(Error::form_field(field, "NUMBER_TYPE_COERCE", &format!("Value \"{raw}\" is not snowflake.")))
    })
}

/// The channel and message ids of a `/channels/{channel_id}/…/{message_id}`
/// route, each checked as `path_id` does (the channel first).
pub fn message_path(channel: &str, message: &str) -> Result<(ChannelId, MessageId), ApiError> {
    Ok((path_id(channel, "channel_id")?, path_id(message, "message_id")?))
}

/// A `limit` query parameter: absent → `default`; anything but an integer in
/// `1..=max` is NUMBER_TYPE_MAX at `field` (and `default` is returned so parsing
/// can go on collecting errors).
pub fn query_limit(raw: Option<&str>, default: usize, max: usize, field: &str, errors: &mut FormErrors) -> usize {
    match raw {
        None => default,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                errors.add(field, "NUMBER_TYPE_MAX", &format!("int value should be between 1 and {max}."));
                default
            }
        },
    }
}

/// A snowflake query parameter (or string field): absent → `None`; one that does
/// not parse as `T` is NUMBER_TYPE_COERCE at `field`. `T` is an `Id<M>` for a
/// real id, or `u64` for a cursor that may be `0` (the libraries page from it).
pub fn query_id<T: std::str::FromStr>(raw: Option<&str>, field: &str, errors: &mut FormErrors) -> Option<T> {
    let raw = raw?;
    match raw.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            errors.add(field, "NUMBER_TYPE_COERCE", &format!("Value \"{raw}\" is not snowflake."));
            None
        }
    }
}

/// An ISO 8601 timestamp query parameter: absent → `None`; one that does not
/// parse is DATE_TYPE_PARSE at `field`.
pub fn query_timestamp(raw: Option<&str>, field: &str, errors: &mut FormErrors) -> Option<Timestamp> {
    let raw = raw?;
    let parsed = Timestamp::parse(raw);
    if parsed.is_none() {
        errors.add(field, "DATE_TYPE_PARSE", &format!("Could not parse {raw}. Should be ISO8601."));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan_counts_brackets_outside_strings_only() {
        assert!(!json_too_deep(br#"{"a":[[1]]}"#, 3));
        assert!(json_too_deep(br#"{"a":[[[1]]]}"#, 3));
        assert!(!json_too_deep(br#"{"a":"[[[[[\"[[[["}"#, 1));
        assert!(!json_too_deep(br#"[[]],[[]],[[]]"#, 2));
    }

    fn tree(errors: FormErrors) -> serde_json::Value {
        errors.into_error().errors.expect("a 50035 error carries its tree")
    }

    #[test]
    fn query_limit_defaults_accepts_range_and_rejects_the_rest() {
        let mut errors = FormErrors::default();
        assert_eq!(query_limit(None, 25, 100, "limit", &mut errors), 25);
        assert_eq!(query_limit(Some("1"), 25, 100, "limit", &mut errors), 1);
        assert_eq!(query_limit(Some("100"), 25, 100, "limit", &mut errors), 100);
        assert!(errors.is_empty());
        for bad in ["0", "101", "-1", "ten", ""] {
            let mut errors = FormErrors::default();
            query_limit(Some(bad), 25, 100, "limit", &mut errors);
            assert_eq!(
                tree(errors),
                serde_json::json!({ "limit": { "_errors": [
                    { "code": "NUMBER_TYPE_MAX", "message": "int value should be between 1 and 100." }
                ] } }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn query_id_parses_ids_and_cursors() {
        let mut errors = FormErrors::default();
        assert_eq!(query_id::<MessageId>(None, "before", &mut errors), None);
        assert_eq!(query_id::<MessageId>(Some("42"), "before", &mut errors).map(|id| id.get()), Some(42));
        // A `u64` cursor takes 0 (the libraries page from it); an id does not.
        assert_eq!(query_id::<u64>(Some("0"), "after", &mut errors), Some(0));
        assert!(errors.is_empty());
        assert_eq!(query_id::<MessageId>(Some("0"), "around", &mut errors), None);
        assert_eq!(query_id::<u64>(Some("x"), "after", &mut errors), None);
        assert_eq!(
            tree(errors),
            serde_json::json!({
                "around": { "_errors": [{ "code": "NUMBER_TYPE_COERCE", "message": "Value \"0\" is not snowflake." }] },
                "after": { "_errors": [{ "code": "NUMBER_TYPE_COERCE", "message": "Value \"x\" is not snowflake." }] },
            })
        );
    }

    #[test]
    fn query_timestamp_parses_iso8601() {
        let mut errors = FormErrors::default();
        assert_eq!(query_timestamp(None, "before", &mut errors), None);
        assert!(query_timestamp(Some("2024-01-02T03:04:05+00:00"), "before", &mut errors).is_some());
        assert!(errors.is_empty());
        assert_eq!(query_timestamp(Some("yesterday"), "before", &mut errors), None);
        assert_eq!(
            tree(errors),
            serde_json::json!({ "before": { "_errors": [
                { "code": "DATE_TYPE_PARSE", "message": "Could not parse yesterday. Should be ISO8601." }
            ] } })
        );
    }
}

#[cfg(test)]
mod percent_tests {
    use super::percent_decode;

    #[test]
    fn percent_decode_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        // The `%` stays literal; the `+` is then a form-encoded space.
        assert_eq!(percent_decode("%+1"), "% 1");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
