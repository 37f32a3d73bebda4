//! Fuzz target: `guildhall_api::extract::parse_json` (every JSON REST body goes through it)
//! for real body types, plus the message validators that run right after it. Any input
//! must give `Ok` or a Discord error, never a panic.
#![no_main]

use guildhall_api::extract::parse_json;
use guildhall_api::routes::channels::OverwriteBody;
use guildhall_api::routes::messages::{CreateMessageBody, EditMessageBody, validate_create, validate_edit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_json::<serde_json::Value>(data);
    if let Ok(body) = parse_json::<CreateMessageBody>(data) {
        if let Ok(message) = validate_create(body) {
            let _ = guildhall_api::routes::messages::parse_mentions(&message.content);
        }
    }
    if let Ok(body) = parse_json::<EditMessageBody>(data) {
        let _ = validate_edit(body);
    }
    let _ = parse_json::<OverwriteBody>(data);
    let _ = parse_json::<Vec<OverwriteBody>>(data);
});
