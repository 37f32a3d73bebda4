//! Fuzz target: the REST decoders for URL parts (`guildhall_api::extract`): query strings
//! (`form_pairs`, percent-decoding), snowflake path segments (`message_path`) and the
//! typed query helpers (`query_limit`, `query_id`, `query_timestamp`). Bad input must give
//! a Discord error (50035), never a panic.
#![no_main]

use guildhall_api::extract::{form_pairs, message_path, query_id, query_limit, query_timestamp};
use guildhall_model::id::UserId;
use guildhall_runtime::FormErrors;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    let mut segments = path.split('/');
    let _ = message_path(segments.next().unwrap_or(""), segments.next().unwrap_or(""));
    let mut errors = FormErrors::default();
    for (k, v) in form_pairs(query) {
        match k.as_str() {
            "limit" => {
                let n = query_limit(Some(&v), 50, 100, "limit", &mut errors);
                assert!(n <= 100, "limit {n} above max");
            }
            "before" | "after" | "around" => {
                let _ = query_id::<UserId>(Some(&v), &k, &mut errors);
            }
            _ => {
                let _ = query_timestamp(Some(&v), &k, &mut errors);
                let _ = query_id::<u64>(Some(&v), &k, &mut errors);
            }
        }
    }
});
