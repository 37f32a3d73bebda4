//! Fuzz target: `guildhall_gateway::handshake::parse_upgrade` on arbitrary method, target
//! and header values. The input is split on '\n' into method, target, then `name: value`
//! header lines (non-UTF-8 input is decoded lossily); the parser must answer `None` or an
//! `Upgrade` (possibly with `reject` set), never panic.
#![no_main]

use guildhall_gateway::handshake::{accept_key, parse_upgrade};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or("");
    let target = lines.next().unwrap_or("");
    let headers: Vec<(&str, &str)> =
        lines.map(|l| l.split_once(':').map_or((l, ""), |(n, v)| (n.trim(), v.trim()))).collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
    if let Some(up) = parse_upgrade(method, target, header) {
        if up.reject.is_none() {
            assert!(!up.key.is_empty());
            let _ = accept_key(&up.key);
        }
    }
});
