//! Gateway counters as plain atomics, for the server's metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters. Gauges go up and down; totals only go up.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Gauge: open WebSocket connections.
    pub connections_open: AtomicU64,
    /// Gauge: sessions that exist (identified, live or waiting for a RESUME).
    pub sessions_open: AtomicU64,
    /// Total: dispatches written to sockets (replays included).
    pub dispatches_delivered: AtomicU64,
    /// Total: WebSocket message payload bytes written (after compression).
    pub bytes_written: AtomicU64,
    /// Total: successful IDENTIFYs.
    pub identifies: AtomicU64,
    /// Total: successful RESUMEs.
    pub resumes: AtomicU64,
    /// Total: sessions ended because their outbound queue overflowed.
    pub overflows: AtomicU64,
}

/// A copy of [`GatewayStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_open: u64,
    pub sessions_open: u64,
    pub dispatches_delivered: u64,
    pub bytes_written: u64,
    pub identifies: u64,
    pub resumes: u64,
    pub overflows: u64,
}

impl GatewayStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_open: get(&self.connections_open),
            sessions_open: get(&self.sessions_open),
            dispatches_delivered: get(&self.dispatches_delivered),
            bytes_written: get(&self.bytes_written),
            identifies: get(&self.identifies),
            resumes: get(&self.resumes),
            overflows: get(&self.overflows),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}
