//! Fuzz target: the gateway session machine (`guildhall_proto::Session`) on arbitrary
//! client frames. The input is split on 0xFF (never valid UTF-8, so never inside a JSON
//! frame) into successive WebSocket messages; each goes through `handle_frame` like the
//! connection shell does, with the shell's follow-up calls (IDENTIFY accepted, RESUME
//! accepted or rejected, dispatches numbered). Close codes are fine; a panic is a bug.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use guildhall_proto::{Command, Outbox, ReplayLimits, Session, SessionConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut now = start;
    let mut session = Session::new(SessionConfig::default(), now);
    let _ = session.hello_frame();
    let body = Bytes::from_static(br#"{"content":"x"}"#);
    for (i, frame) in data.split(|&b| b == 0xff).enumerate() {
        // Advance the clock a little per frame so the send-limit window and the
        // heartbeat deadline both move.
        now += Duration::from_millis(250 * (i as u64 % 7));
        match session.handle_frame(frame, now) {
            Ok(Command::Identify(_)) => {
                if i % 2 == 0 {
                    session.identified("fuzz-session");
                    let _ = session.dispatch("READY", &body);
                } else {
                    session.identify_rejected();
                }
            }
            Ok(Command::Resume(resume)) => {
                if resume.seq % 2 == 0 {
                    let mut outbox = Outbox::new(resume.session_id.clone(), ReplayLimits::default());
                    outbox.push("MESSAGE_CREATE", &body);
                    let ok = session.resume(outbox, resume.seq).is_ok();
                    if ok {
                        let _ = session.resumed_frame();
                    }
                } else {
                    session.resume_rejected();
                }
            }
            Ok(_) => {
                if session.outbox().is_some() {
                    let _ = session.dispatch_frame("MESSAGE_CREATE", &body);
                    session.forget_replay_through(1);
                }
            }
            Err(code) => {
                // Closed for good: every later frame answers the same code.
                assert_eq!(session.handle_frame(b"{\"op\":1,\"d\":null}", now).err(), Some(code));
                break;
            }
        }
        if session.poll_timeout() <= now {
            let _ = session.handle_timeout(now);
        }
    }
    let _ = session.into_outbox();
});
