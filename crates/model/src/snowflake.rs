//! The Snowflake generator: 42 bits of milliseconds since the Discord epoch
//! (2015-01-01), 5 bits of worker, 5 bits of process, 12 bits of sequence.
//!
//! Ids are strictly increasing per generator even if the wall clock steps back: a
//! generator never hands out an id at or below the last one; when the clock is
//! behind (or 4096 ids were taken in one millisecond) it borrows from the future by
//! incrementing, and the clock catches up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 2015-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Hands out unique, increasing snowflakes. Shared by reference across threads.
#[derive(Debug)]
pub struct SnowflakeGenerator {
    /// The last id handed out; the next one is strictly greater.
    last: AtomicU64,
    /// Worker and process bits, already shifted into place.
    node_bits: u64,
}

impl SnowflakeGenerator {
    /// `worker` and `process` are masked to 5 bits each.
    pub fn new(worker: u8, process: u8) -> Self {
        let node_bits = (u64::from(worker & 0x1F) << 17) | (u64::from(process & 0x1F) << 12);
        Self { last: AtomicU64::new(0), node_bits }
    }

    /// The next id, from the wall clock.
    pub fn next(&self) -> u64 {
        self.next_at(now_ms())
    }

    /// The next id as if the wall clock read `unix_ms`; the seam for tests.
    pub fn next_at(&self, unix_ms: u64) -> u64 {
        let since_epoch = unix_ms.saturating_sub(DISCORD_EPOCH_MS);
        let candidate = (since_epoch << 22) | self.node_bits;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = if candidate > last { candidate } else { self.bump(last) };
            match self.last.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The smallest id above `last` that carries this generator's node bits.
    fn bump(&self, last: u64) -> u64 {
        let seq = last & 0xFFF;
        let base = last & !0x3F_FFFF;
        if seq < 0xFFF {
            base | self.node_bits | (seq + 1)
        } else {
            // Sequence exhausted in this millisecond: move to the next one.
            (base + (1 << 22)) | self.node_bits
        }
    }

    /// Makes sure every later id is above `id` (used after loading stored ids, in
    /// case the clock is behind what was written before a restart).
    pub fn observe(&self, id: u64) {
        self.last.fetch_max(id, Ordering::Relaxed);
    }
}

/// Milliseconds since the Unix epoch by the wall clock.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The smallest snowflake at `unix_ms`: a pagination cursor for a point in time.
pub fn cursor_at(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(DISCORD_EPOCH_MS) << 22
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_matches_discord() {
        let g = SnowflakeGenerator::new(1, 2);
        let id = g.next_at(DISCORD_EPOCH_MS + 1000);
        assert_eq!(id >> 22, 1000);
        assert_eq!((id & 0x3E0000) >> 17, 1);
        assert_eq!((id & 0x1F000) >> 12, 2);
        assert_eq!(id & 0xFFF, 0);
    }

    proptest! {
        #[test]
        fn strictly_increasing_whatever_the_clock_does(clock in proptest::collection::vec(0u64..5_000, 1..2_000)) {
            let g = SnowflakeGenerator::new(3, 7);
            let mut prev = 0u64;
            for t in clock {
                let id = g.next_at(DISCORD_EPOCH_MS + 1_000_000 + t);
                prop_assert!(id > prev);
                prop_assert_eq!((id >> 12) & 0x3FF, (3 << 5) | 7);
                prev = id;
            }
        }

        #[test]
        fn exhausting_a_millisecond_moves_forward(n in 4000usize..9000) {
            let g = SnowflakeGenerator::new(0, 0);
            let t = DISCORD_EPOCH_MS + 5;
            let mut prev = 0;
            for _ in 0..n {
                let id = g.next_at(t);
                prop_assert!(id > prev);
                prev = id;
            }
            prop_assert!(prev >> 22 >= 5 + (n as u64 - 1) / 4096);
        }
    }
}
