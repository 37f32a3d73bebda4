//! Store-level benchmark (no HTTP): durable message writes per second through
//! `Store::apply` with many concurrent writers, each awaiting its `Durable`
//! (group commit), and latest-50 history page reads, warm, both from the
//! latest-page cache and from the engine (a `Before` page bypasses the cache).
//! First prints the disk's fsync latency, which bounds group commit.
//!
//! Run: `cargo run --release -p guildhall-store --example store_bench -- [messages] [writers] [channels] [size]`
//! (defaults 300000 1024 1000 200). The last line is a JSON summary.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use guildhall_domain::entity::Message;
use guildhall_model::id::{ChannelId, Id, MessageId};
use guildhall_model::snowflake::SnowflakeGenerator;
use guildhall_store::{EmbeddedStore, EmbeddedStoreConfig, HistoryQuery, Mutation, Store};

fn pct(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

fn message(id: u64, channel: u64, size: usize) -> Message {
    Message::plain(Id::new(id), Id::new(channel), Some(Id::new(channel)), Id::new(42), "m".repeat(size))
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let total = args.first().copied().unwrap_or(300_000);
    let writers = args.get(1).copied().unwrap_or(1024).max(1);
    let channels = args.get(2).copied().unwrap_or(1000).max(1) as u64;
    let size = args.get(3).copied().unwrap_or(200);
    let dir = tempfile::tempdir().expect("temp dir");

    // 1. fsync latency of this disk.
    let mut syncs = Vec::new();
    {
        let mut f = std::fs::File::create(dir.path().join("fsync-probe")).expect("probe file");
        let block = vec![7u8; 4096];
        for _ in 0..200 {
            f.write_all(&block).expect("write");
            let t = Instant::now();
            f.sync_data().expect("fdatasync");
            syncs.push(t.elapsed());
        }
    }
    syncs.sort();
    println!("fsync (4 KiB append + fdatasync): p50 {:.3} ms, p99 {:.3} ms", pct(&syncs, 0.5), pct(&syncs, 0.99));

    let store =
        Arc::new(EmbeddedStore::open(&dir.path().join("store"), EmbeddedStoreConfig::default()).expect("open store"));
    let ids = Arc::new(SnowflakeGenerator::new(1, 1));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    // 2. Durable writes: `writers` tasks, each applying one message at a time and awaiting durability.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let lat: Vec<Duration> = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (store, ids, next) = (store.clone(), ids.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let ch = (w as u64 + i as u64) % channels + 1;
                    let m = message(ids.next(), ch, size);
                    let t = Instant::now();
                    match store.apply(vec![Mutation::PutMessage(m)]).await {
                        Ok(()) => lat.push(t.elapsed()),
                        Err(e) => {
                            eprintln!("apply failed: {e}");
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("writer task"));
        }
        all
    });
    let wall = t0.elapsed().as_secs_f64();
    let mut lat = lat;
    lat.sort();
    let stats = store.stats();
    let rate = lat.len() as f64 / wall;
    println!(
        "durable writes: {} messages ({size} B content) from {writers} writers over {channels} channels in {wall:.2} s = {rate:.0} msgs/s (target ≥ 150,000)",
        lat.len()
    );
    println!(
        "  apply → durable: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; {} batches, {} fsyncs ({:.0} msgs per fsync)",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        stats.batches,
        stats.syncs,
        lat.len() as f64 / stats.syncs.max(1) as f64
    );

    // 3. Latest-50 reads, warm: one pass to fill caches, then timed passes.
    let reads = 200_000usize;
    let read = |query: HistoryQuery, n: usize| {
        let mut l = Vec::with_capacity(n);
        let t = Instant::now();
        for i in 0..n {
            let ch: ChannelId = Id::new(i as u64 % channels + 1);
            let s = Instant::now();
            let page = store.messages(ch, query, 50).expect("history read");
            l.push(s.elapsed());
            assert!(!page.is_empty());
        }
        let secs = t.elapsed().as_secs_f64();
        l.sort();
        (n as f64 / secs, l)
    };
    let _ = read(HistoryQuery::Latest, channels as usize);
    let (cached_rate, cached) = read(HistoryQuery::Latest, reads);
    let top: MessageId = Id::new(u64::MAX >> 1);
    let _ = read(HistoryQuery::Before(top), channels as usize);
    let (engine_rate, engine) = read(HistoryQuery::Before(top), reads / 4);
    println!(
        "latest-50, warm, latest-page cache: {cached_rate:.0} reads/s on one thread, p50 {:.4} ms, p99 {:.4} ms (target p99 ≤ 0.5 ms)",
        pct(&cached, 0.5),
        pct(&cached, 0.99)
    );
    println!(
        "latest-50, warm, engine range scan (Before page, no cache): {engine_rate:.0} reads/s on one thread, p50 {:.4} ms, p99 {:.4} ms",
        pct(&engine, 0.5),
        pct(&engine, 0.99)
    );
    println!(
        "{}",
        serde_json::json!({
            "fsync_p50_ms": pct(&syncs, 0.5), "fsync_p99_ms": pct(&syncs, 0.99),
            "messages": lat.len(), "writers": writers, "channels": channels, "size": size,
            "durable_msgs_per_s": rate, "commit_p50_ms": pct(&lat, 0.5), "commit_p99_ms": pct(&lat, 0.99),
            "batches": stats.batches, "fsyncs": stats.syncs,
            "latest50_cached_reads_per_s": cached_rate, "latest50_cached_p99_ms": pct(&cached, 0.99),
            "latest50_engine_reads_per_s": engine_rate, "latest50_engine_p99_ms": pct(&engine, 0.99),
        })
    );
}
