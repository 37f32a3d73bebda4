//! Session scenarios, op by op and close code by close code, in virtual time (a fixed
//! `Instant` plus offsets).

use std::time::{Duration, Instant};

use bytes::Bytes;
use guildhall_model::Intents;
use guildhall_model::gateway::CloseCode;
use guildhall_model::id::GuildId;
use guildhall_proto::frame;
use guildhall_proto::{
    Command, Compression, Encoder, EncoderConfig, MemberQuery, Outbox, Phase, ReplayLimits, ResumeError, Session,
    SessionConfig, WsMessage,
};

const IDENTIFY: &[u8] =
    br#"{"op":2,"d":{"token":"tok","intents":513,"properties":{"os":"linux","browser":"x","device":"x"}}}"#;

fn session() -> (Session, Instant) {
    let t0 = Instant::now();
    (Session::new(SessionConfig::default(), t0), t0)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn close(session: &mut Session, payload: &[u8], now: Instant) -> CloseCode {
    match session.handle_frame(payload, now) {
        Err(code) => code,
        Ok(command) => panic!("expected a close, got {command:?}"),
    }
}

fn identified(session: &mut Session, now: Instant) {
    let Ok(Command::Identify(_)) = session.handle_frame(IDENTIFY, now) else { panic!("identify") };
    session.identified("sess-1");
}

#[test]
fn hello_frame_announces_the_interval() {
    let (session, _) = session();
    assert_eq!(&session.hello_frame()[..], br#"{"op":10,"s":null,"t":null,"d":{"heartbeat_interval":41250}}"#);
}

#[test]
fn heartbeat_is_acked_before_identify_with_seq_or_null() {
    let (mut s, t0) = session();
    for hb in [&br#"{"op":1,"d":null}"#[..], br#"{"op":1}"#, br#"{"op":1,"d":17,"s":null,"t":null}"#] {
        match s.handle_frame(hb, t0) {
            Ok(Command::Reply(bytes)) => assert_eq!(&bytes[..], frame::HEARTBEAT_ACK),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.phase(), Phase::Connected);
}

#[test]
fn heartbeat_with_a_non_integer_d_is_4001() {
    let (mut s, t0) = session();
    assert_eq!(close(&mut s, br#"{"op":1,"d":"x"}"#, t0), CloseCode::UnknownOpcode);
}

#[test]
fn identify_ok_then_second_identify_is_4005() {
    let (mut s, t0) = session();
    let Ok(Command::Identify(id)) = s.handle_frame(IDENTIFY, t0) else { panic!("identify") };
    assert_eq!(id.token, "tok");
    assert_eq!(id.intents, Intents(513));
    assert_eq!(id.properties.os, "linux");
    assert_eq!(s.phase(), Phase::Identifying);
    // Even before the shell confirmed the first one.
    assert_eq!(close(&mut s, IDENTIFY, t0), CloseCode::AlreadyAuthenticated);

    let (mut s, t0) = session();
    identified(&mut s, t0);
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(close(&mut s, IDENTIFY, t0), CloseCode::AlreadyAuthenticated);
}

#[test]
fn resume_after_identify_is_4005() {
    let (mut s, t0) = session();
    identified(&mut s, t0);
    let resume = br#"{"op":6,"d":{"token":"tok","session_id":"sess-1","seq":1}}"#;
    assert_eq!(close(&mut s, resume, t0), CloseCode::AlreadyAuthenticated);
}

#[test]
fn identify_rejected_allows_a_new_identify() {
    let (mut s, t0) = session();
    assert!(s.handle_frame(IDENTIFY, t0).is_ok());
    s.identify_rejected();
    assert_eq!(s.phase(), Phase::Connected);
    assert!(matches!(s.handle_frame(IDENTIFY, t0), Ok(Command::Identify(_))));
}

#[test]
fn ops_before_identify_are_4003() {
    for payload in [
        &br#"{"op":3,"d":{"since":null,"activities":[],"status":"online","afk":false}}"#[..],
        br#"{"op":3,"d":"not even a presence"}"#,
        br#"{"op":4,"d":{"guild_id":"1","channel_id":null}}"#,
        br#"{"op":8,"d":{"guild_id":"1","query":"","limit":0}}"#,
        br#"{"op":31,"d":{"guild_ids":["1"]}}"#,
        br#"{"op":43,"d":{"guild_id":"1","fields":["status"]}}"#,
    ] {
        let (mut s, t0) = session();
        assert_eq!(close(&mut s, payload, t0), CloseCode::NotAuthenticated, "{}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn unknown_and_server_only_ops_are_4001_at_any_phase() {
    for op in [0, 5, 7, 9, 10, 11, 12, 42, 99999] {
        let (mut s, t0) = session();
        let payload = format!(r#"{{"op":{op},"d":null}}"#);
        assert_eq!(close(&mut s, payload.as_bytes(), t0), CloseCode::UnknownOpcode, "op {op}");
        let (mut s, t0) = session();
        identified(&mut s, t0);
        assert_eq!(close(&mut s, payload.as_bytes(), t0), CloseCode::UnknownOpcode, "op {op}");
    }
}

#[test]
fn undecodable_payloads_are_4002() {
    for payload in [
        &b"{\"op\":1,"[..],
        b"not json",
        b"[1,null]",
        b"1",
        b"\"op\"",
        b"",
        br#"{"d":null}"#,
        br#"{"op":"1","d":null}"#,
        br#"{"op":-1,"d":null}"#,
        br#"{"op":1,"d":null} trailing"#,
        b"\x78\x9c\xff\x00\x13\x37\xfe",
    ] {
        let (mut s, t0) = session();
        assert_eq!(close(&mut s, payload, t0), CloseCode::DecodeError, "{payload:?}");
    }
}

#[test]
fn payload_size_limit_is_4096_bytes() {
    let pad = |total: usize| {
        let mut p = br#"{"op":1,"d":null}"#.to_vec();
        p.insert(1, b' ');
        while p.len() < total {
            p.insert(1, b' ');
        }
        p
    };
    let (mut s, t0) = session();
    assert_eq!(pad(4096).len(), 4096);
    assert!(matches!(s.handle_frame(&pad(4096), t0), Ok(Command::Reply(_))));
    assert_eq!(close(&mut s, &pad(4097), t0), CloseCode::DecodeError);
}

#[test]
fn send_limit_120_per_60s_then_4008_and_the_window_resets() {
    let hb = br#"{"op":1,"d":null}"#;
    let (mut s, t0) = session();
    for i in 0..120 {
        assert!(s.handle_frame(hb, t0 + ms(i * 400)).is_ok(), "frame {i}");
    }
    assert_eq!(close(&mut s, hb, t0 + ms(59_999)), CloseCode::RateLimited);

    let (mut s, t0) = session();
    for i in 0..120 {
        assert!(s.handle_frame(hb, t0 + ms(i)).is_ok());
    }
    // A new window starts once 60 s have passed since the first frame of the old one.
    for i in 0..120 {
        assert!(s.handle_frame(hb, t0 + ms(60_000 + i)).is_ok(), "frame {i} of window 2");
    }
    assert_eq!(close(&mut s, hb, t0 + ms(60_500)), CloseCode::RateLimited);
}

#[test]
fn invalid_intents_are_4013_and_bad_shard_is_4010() {
    let (mut s, t0) = session();
    let bad_intents = br#"{"op":2,"d":{"token":"t","intents":4294967295,"properties":{}}}"#;
    assert_eq!(close(&mut s, bad_intents, t0), CloseCode::InvalidIntents);
    let (mut s, t0) = session();
    let bad_shard = br#"{"op":2,"d":{"token":"t","intents":1,"properties":{},"shard":[1,1]}}"#;
    assert_eq!(close(&mut s, bad_shard, t0), CloseCode::InvalidShard);
    let (mut s, t0) = session();
    let no_token = br#"{"op":2,"d":{"intents":1,"properties":{}}}"#;
    assert_eq!(close(&mut s, no_token, t0), CloseCode::UnknownOpcode);
}

#[test]
fn heartbeat_timeout_closes_with_4009_and_heartbeats_push_the_deadline() {
    let (mut s, t0) = session();
    let deadline = t0 + ms(41_250) + Duration::from_secs(10);
    assert_eq!(s.poll_timeout(), deadline);
    assert_eq!(s.handle_timeout(deadline - ms(1)), Ok(()));

    assert!(s.handle_frame(br#"{"op":1,"d":null}"#, t0 + ms(30_000)).is_ok());
    let moved = t0 + ms(30_000 + 41_250 + 10_000);
    assert_eq!(s.poll_timeout(), moved);
    assert_eq!(s.handle_timeout(deadline), Ok(()));
    assert_eq!(s.handle_timeout(moved), Err(CloseCode::SessionTimedOut));
    // The session stays closed.
    assert_eq!(close(&mut s, br#"{"op":1,"d":null}"#, moved), CloseCode::SessionTimedOut);
    assert_eq!(s.close_code(), Some(CloseCode::SessionTimedOut));
}

#[test]
fn grace_is_configurable() {
    let t0 = Instant::now();
    let config = SessionConfig { heartbeat_grace: ms(1), ..SessionConfig::default() };
    let mut s = Session::new(config, t0);
    assert_eq!(s.handle_timeout(t0 + ms(41_251)), Err(CloseCode::SessionTimedOut));
}

#[test]
fn a_closed_session_keeps_returning_its_code() {
    let (mut s, t0) = session();
    assert_eq!(close(&mut s, b"garbage", t0), CloseCode::DecodeError);
    assert_eq!(close(&mut s, br#"{"op":1,"d":null}"#, t0), CloseCode::DecodeError);
    assert_eq!(s.handle_timeout(t0), Err(CloseCode::DecodeError));
}

#[test]
fn dispatch_numbers_from_one_and_frames_are_exact() {
    let (mut s, t0) = session();
    identified(&mut s, t0);
    let ready = s.dispatch_frame("READY", &Bytes::from_static(br#"{"v":10,"session_id":"sess-1"}"#));
    assert_eq!(&ready[..], br#"{"op":0,"s":1,"t":"READY","d":{"v":10,"session_id":"sess-1"}}"#);
    let body = Bytes::from_static(br#"{"id":"1","content":"hi"}"#);
    let frame = s.dispatch("MESSAGE_CREATE", &body);
    assert_eq!(frame.seq(), 2);
    assert_eq!(frame.head(), br#"{"op":0,"s":2,"t":"MESSAGE_CREATE","d":"#);
    assert_eq!(frame.body().as_ptr(), body.as_ptr(), "the shared body is not copied");
    assert_eq!(&frame.to_bytes()[..], br#"{"op":0,"s":2,"t":"MESSAGE_CREATE","d":{"id":"1","content":"hi"}}"#);
    assert_eq!(s.outbox().unwrap().seq(), 2);
}

#[test]
fn commands_after_identify_are_typed() {
    let (mut s, t0) = session();
    identified(&mut s, t0);
    let op8 = br#"{"op":8,"d":{"guild_id":"7","query":"ab","limit":5,"nonce":"n1"}}"#;
    let Ok(Command::RequestGuildMembers(r)) = s.handle_frame(op8, t0) else { panic!("op 8") };
    assert_eq!(r.guild_id, GuildId::new(7));
    assert_eq!(r.query, MemberQuery::Prefix { query: "ab".into(), limit: 5 });
    assert_eq!(r.nonce.as_deref(), Some("n1"));
    let op3 = br#"{"op":3,"d":{"since":null,"activities":[],"status":"idle","afk":true}}"#;
    assert!(matches!(s.handle_frame(op3, t0), Ok(Command::PresenceUpdate(p)) if p.afk));
    let op4 = br#"{"op":4,"d":{"guild_id":"7","channel_id":"8","self_mute":false,"self_deaf":true}}"#;
    assert!(matches!(s.handle_frame(op4, t0), Ok(Command::VoiceStateUpdate(v)) if v.self_deaf));
    let op31 = br#"{"op":31,"d":{"guild_ids":["7"]}}"#;
    assert!(matches!(s.handle_frame(op31, t0), Ok(Command::RequestSoundboardSounds(_))));
    let op43 = br#"{"op":43,"d":{"guild_id":"7","fields":["status"]}}"#;
    assert!(matches!(s.handle_frame(op43, t0), Ok(Command::RequestChannelInfo(d)) if d.get().contains("status")));
    let bad_op8 = br#"{"op":8,"d":{"guild_id":"7"}}"#;
    assert_eq!(close(&mut s, bad_op8, t0), CloseCode::UnknownOpcode);
}

/// A connection drops after the client saw seq 3 of 5; three more events arrive while it is
/// away; the new connection RESUMEs with seq 3 and must get exactly 4..=8, then RESUMED.
#[test]
fn resume_replays_exactly_the_missed_events_then_resumed() {
    let (mut a, t0) = session();
    identified(&mut a, t0);
    let bodies: Vec<Bytes> = (1..=8).map(|i| Bytes::from(format!(r#"{{"n":{i}}}"#))).collect();
    for body in &bodies[..5] {
        a.dispatch("MESSAGE_CREATE", body);
    }
    let mut outbox = a.into_outbox().expect("identified sessions have an outbox");
    for body in &bodies[5..] {
        outbox.push("MESSAGE_CREATE", body);
    }

    let mut b = Session::new(SessionConfig::default(), t0 + ms(5_000));
    let resume = br#"{"op":6,"d":{"token":"tok","session_id":"sess-1","seq":3}}"#;
    let Ok(Command::Resume(r)) = b.handle_frame(resume, t0 + ms(5_001)) else { panic!("resume") };
    assert_eq!((r.session_id.as_str(), r.seq), ("sess-1", 3));
    assert_eq!(outbox.session_id(), "sess-1");
    let replayed: Vec<Bytes> = b.resume(outbox, r.seq).expect("resumable").map(|f| f.to_bytes()).collect();
    let expected: Vec<Vec<u8>> =
        (4..=8).map(|i| format!(r#"{{"op":0,"s":{i},"t":"MESSAGE_CREATE","d":{{"n":{i}}}}}"#).into_bytes()).collect();
    assert_eq!(replayed.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), expected);
    let resumed = b.resumed_frame();
    assert_eq!(&resumed.to_bytes()[..], br#"{"op":0,"s":9,"t":"RESUMED","d":{}}"#);
    assert_eq!(b.phase(), Phase::Ready);
    assert_eq!(b.dispatch("MESSAGE_CREATE", &bodies[0]).seq(), 10);
}

#[test]
fn resume_with_seq_ahead_is_invalid_seq_and_the_client_may_identify() {
    let (mut a, t0) = session();
    identified(&mut a, t0);
    a.dispatch("READY", &Bytes::from_static(b"{}"));
    let outbox = a.into_outbox().unwrap();
    let mut b = Session::new(SessionConfig::default(), t0);
    let resume = br#"{"op":6,"d":{"token":"tok","session_id":"sess-1","seq":2}}"#;
    assert!(matches!(b.handle_frame(resume, t0), Ok(Command::Resume(_))));
    assert_eq!(b.resume(outbox, 2).err(), Some(ResumeError::SeqAhead { requested: 2, latest: 1 }));
    assert_eq!(b.phase(), Phase::Connected);
    assert!(matches!(b.handle_frame(IDENTIFY, t0), Ok(Command::Identify(_))));
}

#[test]
fn resume_older_than_the_buffer_is_expired() {
    let t0 = Instant::now();
    let config =
        SessionConfig { replay: ReplayLimits { max_events: 4, max_bytes: 1 << 20 }, ..SessionConfig::default() };
    let mut a = Session::new(config, t0);
    identified(&mut a, t0);
    for _ in 0..10 {
        a.dispatch("TYPING_START", &Bytes::from_static(b"{}"));
    }
    let outbox = a.into_outbox().unwrap();
    assert_eq!(outbox.oldest_kept(), 7);
    let mut b = Session::new(config, t0);
    let resume = br#"{"op":6,"d":{"token":"tok","session_id":"sess-1","seq":5}}"#;
    assert!(b.handle_frame(resume, t0).is_ok());
    assert_eq!(b.resume(outbox, 5).err(), Some(ResumeError::Expired { requested: 5, oldest_kept: 7 }));
}

#[test]
fn resume_rejected_allows_identify_and_replay_needs_a_session() {
    let (mut s, t0) = session();
    let resume = br#"{"op":6,"d":{"token":"tok","session_id":"nope","seq":0}}"#;
    assert!(s.handle_frame(resume, t0).is_ok());
    assert_eq!(s.replay_after(0).err(), Some(ResumeError::NoSession));
    s.resume_rejected();
    assert!(matches!(s.handle_frame(IDENTIFY, t0), Ok(Command::Identify(_))));
}

/// The whole outbound path on a zlib-stream connection: one client inflater sees HELLO, the
/// ACK, READY and a replay after resume, across an encoder release.
#[test]
fn frames_survive_the_zlib_stream_encoder() {
    use flate2::{Decompress, FlushDecompress};
    let mut inflater = Decompress::new(true);
    let mut inflate = |msg: WsMessage| {
        let WsMessage::Binary(bytes) = msg else { panic!("binary expected") };
        let mut out = Vec::with_capacity(64 * 1024);
        inflater.decompress_vec(&bytes, &mut out, FlushDecompress::Sync).unwrap();
        String::from_utf8(out).unwrap()
    };
    let (mut s, t0) = session();
    let mut encoder = Encoder::new(Compression::ZlibStream, EncoderConfig::default());
    assert!(inflate(encoder.encode(s.hello_frame())).contains("heartbeat_interval"));
    let Ok(Command::Reply(ack)) = s.handle_frame(br#"{"op":1,"d":null}"#, t0) else { panic!() };
    assert_eq!(inflate(encoder.encode(ack)).as_bytes(), frame::HEARTBEAT_ACK);
    identified(&mut s, t0);
    let ready = s.dispatch("READY", &Bytes::from_static(b"{\"v\":10}"));
    assert_eq!(inflate(encoder.encode_dispatch(&ready)), r#"{"op":0,"s":1,"t":"READY","d":{"v":10}}"#);
    encoder.release();
    let replay: Vec<_> = s.replay_after(0).unwrap().collect();
    assert_eq!(inflate(encoder.encode_dispatch(&replay[0])), r#"{"op":0,"s":1,"t":"READY","d":{"v":10}}"#);
    let _: Option<Outbox> = s.into_outbox();
}

/// A heartbeat's `d` is the last `s` the client received: the replay buffer lets go of it
/// and everything before, a later RESUME from that `s` still replays what came after, and
/// a `d` past the last dispatch (or `null`) is harmless.
#[test]
fn a_heartbeat_acknowledges_what_the_replay_buffer_may_forget() {
    let (mut a, t0) = session();
    identified(&mut a, t0);
    for i in 1..=5 {
        a.dispatch("MESSAGE_CREATE", &Bytes::from(format!(r#"{{"n":{i}}}"#)));
    }
    assert!(matches!(a.handle_frame(br#"{"op":1,"d":null}"#, t0), Ok(Command::Reply(_))));
    assert_eq!(a.outbox().unwrap().buffered_events(), 5);
    assert!(matches!(a.handle_frame(br#"{"op":1,"d":3}"#, t0), Ok(Command::Reply(_))));
    assert_eq!(a.outbox().unwrap().buffered_events(), 2);
    assert_eq!(a.outbox().unwrap().oldest_kept(), 4);
    a.dispatch("MESSAGE_CREATE", &Bytes::from_static(br#"{"n":6}"#));

    let outbox = a.into_outbox().unwrap();
    let mut b = Session::new(SessionConfig::default(), t0);
    assert!(b.handle_frame(br#"{"op":6,"d":{"token":"tok","session_id":"sess-1","seq":3}}"#, t0).is_ok());
    let replayed: Vec<u64> = b.resume(outbox, 3).expect("resumable").map(|f| f.seq()).collect();
    assert_eq!(replayed, vec![4, 5, 6]);

    // Ahead of the last dispatch: everything is forgotten, numbering goes on.
    assert!(matches!(b.handle_frame(br#"{"op":1,"d":1000}"#, t0), Ok(Command::Reply(_))));
    assert_eq!(b.outbox().unwrap().buffered_events(), 0);
    assert_eq!(b.resumed_frame().seq(), 7);

    // A client that resumes from before what it acknowledged must IDENTIFY again.
    let outbox = b.into_outbox().unwrap();
    assert_eq!(outbox.check_resume(2).err(), Some(ResumeError::Expired { requested: 2, oldest_kept: 7 }));
}
