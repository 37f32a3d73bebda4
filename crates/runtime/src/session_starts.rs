//! Session start limits (protocol notes 1.5, 1.11): how many IDENTIFYs a bot may
//! make. The gateway consumes a start on each accepted IDENTIFY (RESUME is free);
//! `GET /gateway/bot` reads what is left. Both reach this through the runtime.
//!
//! Two limits, both per user:
//! - `total` IDENTIFYs per `reset_after` window (Discord: 1000 per 24 h). The window
//!   starts at the first IDENTIFY after the previous one ended.
//! - `max_concurrency` IDENTIFYs per 5 s in each bucket `shard_id % max_concurrency`
//!   (an unsharded session is shard 0). Discord allows one per bucket; a
//!   self-hosted node allows `max_concurrency` per bucket (default 16), so an
//!   unsharded bot that restarts a few times in a row is not refused, while an
//!   identify storm still is.
//!
//! Over either limit the gateway answers op 9 `d:false` and the client may retry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guildhall_model::id::UserId;

/// The configured limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStartLimits {
    pub total: u32,
    pub reset_after: Duration,
    pub max_concurrency: u32,
    /// Length of a concurrency window (Discord: 5 s).
    pub concurrency_window: Duration,
}

impl Default for SessionStartLimits {
    fn default() -> Self {
        SessionStartLimits {
            total: 1000,
            reset_after: Duration::from_secs(24 * 60 * 60),
            max_concurrency: 16,
            concurrency_window: Duration::from_secs(5),
        }
    }
}

/// `session_start_limit` of `GET /gateway/bot`, for one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStartLimit {
    pub total: u32,
    pub remaining: u32,
    /// Milliseconds until `remaining` is back to `total`.
    pub reset_after_ms: u64,
    pub max_concurrency: u32,
}

/// Why an IDENTIFY was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartRefused {
    /// No starts left in the `reset_after` window.
    Exhausted,
    /// The shard's concurrency bucket is full for this 5 s window.
    Concurrency,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    used: u32,
}

impl Window {
    /// Uses of this window at `now` (0 once it has ended).
    fn used_at(&self, now: Instant, length: Duration) -> u32 {
        if now.saturating_duration_since(self.started) >= length { 0 } else { self.used }
    }
}

#[derive(Default)]
struct Counters {
    daily: HashMap<UserId, Window>,
    buckets: HashMap<(UserId, u32), Window>,
}

/// The counters of every user. One mutex: an IDENTIFY is rare next to everything else.
pub struct SessionStarts {
    limits: SessionStartLimits,
    counters: Mutex<Counters>,
}

impl SessionStarts {
    pub fn new(limits: SessionStartLimits) -> SessionStarts {
        SessionStarts { limits, counters: Mutex::new(Counters::default()) }
    }

    pub fn limits(&self) -> SessionStartLimits {
        self.limits
    }

    /// Consumes one start for `user` identifying as `shard` (`None` = shard 0), or
    /// says which limit refuses it (and consumes nothing).
    pub fn try_start(&self, user: UserId, shard: Option<(u32, u32)>, now: Instant) -> Result<(), StartRefused> {
        let l = self.limits;
        let bucket = shard.map_or(0, |(id, _)| id % l.max_concurrency.max(1));
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        // Forget ended windows now and then so the maps hold only active users.
        if c.buckets.len() > 1024 {
            c.buckets.retain(|_, w| w.used_at(now, l.concurrency_window) > 0);
        }
        let daily = c.daily.get(&user).map_or(0, |w| w.used_at(now, l.reset_after));
        if daily >= l.total {
            return Err(StartRefused::Exhausted);
        }
        let concurrent = c.buckets.get(&(user, bucket)).map_or(0, |w| w.used_at(now, l.concurrency_window));
        if concurrent >= l.max_concurrency {
            return Err(StartRefused::Concurrency);
        }
        bump(c.daily.entry(user), now, daily);
        bump(c.buckets.entry((user, bucket)), now, concurrent);
        Ok(())
    }

    /// What `GET /gateway/bot` reports to `user`.
    pub fn limit_of(&self, user: UserId, now: Instant) -> SessionStartLimit {
        let l = self.limits;
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let (remaining, reset_after) = match c.daily.get(&user) {
            Some(w) if w.used_at(now, l.reset_after) > 0 => {
                (l.total.saturating_sub(w.used), l.reset_after.saturating_sub(now.saturating_duration_since(w.started)))
            }
            _ => (l.total, l.reset_after),
        };
        SessionStartLimit {
            total: l.total,
            remaining,
            reset_after_ms: u64::try_from(reset_after.as_millis()).unwrap_or(u64::MAX),
            max_concurrency: l.max_concurrency,
        }
    }
}

/// Counts one use in a window whose current count is `used` (0 = start a new one).
fn bump<K>(entry: std::collections::hash_map::Entry<'_, K, Window>, now: Instant, used: u32) {
    let w = entry.or_insert(Window { started: now, used: 0 });
    if used == 0 {
        *w = Window { started: now, used: 0 };
    }
    w.used += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(total: u32, max_concurrency: u32) -> SessionStarts {
        SessionStarts::new(SessionStartLimits {
            total,
            reset_after: Duration::from_secs(100),
            max_concurrency,
            concurrency_window: Duration::from_secs(5),
        })
    }

    #[test]
    fn concurrency_is_per_bucket_and_window() {
        let s = starts(100, 2);
        let u = UserId::new(7);
        let t = Instant::now();
        assert_eq!(s.try_start(u, None, t), Ok(()));
        assert_eq!(s.try_start(u, Some((2, 4)), t), Ok(()), "shard 2 % 2 is bucket 0 too");
        assert_eq!(s.try_start(u, Some((0, 4)), t), Err(StartRefused::Concurrency));
        assert_eq!(s.try_start(u, Some((1, 4)), t), Ok(()), "bucket 1 is separate");
        assert_eq!(s.try_start(UserId::new(8), None, t), Ok(()), "other users have their own");
        assert_eq!(s.try_start(u, None, t + Duration::from_secs(5)), Ok(()), "a new window");
        assert_eq!(s.limit_of(u, t).remaining, 96);
    }

    #[test]
    fn total_per_window_and_reset_after() {
        let s = starts(2, 16);
        let u = UserId::new(7);
        let t = Instant::now();
        let fresh = s.limit_of(u, t);
        assert_eq!((fresh.total, fresh.remaining, fresh.reset_after_ms, fresh.max_concurrency), (2, 2, 100_000, 16));
        s.try_start(u, None, t).unwrap();
        s.try_start(u, None, t + Duration::from_secs(10)).unwrap();
        assert_eq!(s.try_start(u, None, t + Duration::from_secs(20)), Err(StartRefused::Exhausted));
        let l = s.limit_of(u, t + Duration::from_secs(30));
        assert_eq!((l.remaining, l.reset_after_ms), (0, 70_000));
        assert_eq!(s.try_start(u, None, t + Duration::from_secs(100)), Ok(()));
        assert_eq!(s.limit_of(u, t + Duration::from_secs(100)).remaining, 1);
    }
}
