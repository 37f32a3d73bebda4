//! guildhall-bench: a load generator that speaks Guildhall's REST API and
//! gateway over real sockets, never touching server internals.
//!
//! Scenarios (each prints "metric | target | measured | ok?" and writes
//! `<results>/<scenario>-<unix time>.json`, plus SVG histograms for latencies):
//! - `seed`: registers users, creates guilds, joins members through invites.
//! - `store`: durable REST message sends/s with many concurrent senders, latest-50
//!   history reads at a target rate, and the 1,000-identical-reads coalescing check.
//! - `idle`: N identified, heartbeating sessions spread over worker processes;
//!   server RSS per session for plain / zlib-stream / zstd-stream, IDENTIFY→READY.
//! - `fanout`: M online members of one guild, one REST sender at R msgs/s; delivery
//!   latency, last-recipient latency, server CPU per delivery, exactly-once-in-order.
//! - `ready`: IDENTIFY → last GUILD_CREATE for a user in G guilds of M members.
//! - `stalled`: sessions that stop reading while a busy guild fans out: server RSS
//!   per stalled session, when the server closes them, other readers' latency.
//! - `soak`: a stable population with connection churn (clean closes, drops +
//!   RESUME, drops + re-IDENTIFY) and traffic for a long time: RSS and open fds
//!   over time, resume correctness.
//!
//! The server is either started by the bench (`--spawn path/to/guildhall`) or
//! already running (`--server URL`, `--pid` for /proc figures). Worker processes
//! are this same binary run as `guildhall-bench worker ...`; they talk JSON lines
//! on stdin/stdout.

pub mod fanout;
pub mod gw;
pub mod hist;
pub mod http1;
pub mod idle;
pub mod ready;
pub mod report;
pub mod rest;
pub mod sample;
pub mod seed;
pub mod server;
pub mod soak;
pub mod stalled;
pub mod store;
pub mod worker;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub type Res<T> = Result<T, String>;

pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[derive(Parser, Debug)]
#[command(name = "guildhall-bench", version, about = "Load generator and benchmarks for Guildhall")]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Start this guildhall binary (`guildhall serve` on a free loopback port).
    #[arg(long, global = true, conflicts_with = "server")]
    pub spawn: Option<PathBuf>,
    /// Target a running server, e.g. http://127.0.0.1:8080.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// PID of the running server, for /proc memory and CPU figures.
    #[arg(long, global = true)]
    pub pid: Option<u32>,
    /// Data directory for a spawned server (default: a temporary one, removed after).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Where results (JSON, SVG, server log) go.
    #[arg(long, global = true, default_value = "results")]
    pub results: PathBuf,
    /// Concurrent REST requests while seeding.
    #[arg(long, global = true, default_value_t = 64)]
    pub seed_concurrency: usize,
    /// The worker executable (default: this binary).
    #[arg(long, global = true, hide = true)]
    pub worker_exe: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Create users, guilds and memberships; write their tokens to a seed file.
    Seed {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        users: usize,
        #[arg(long, default_value_t = 1)]
        guilds: usize,
        /// Members per guild, owner included (default: all users).
        #[arg(long)]
        members: Option<usize>,
        /// Seed file to write (default RESULTS/seed.json).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Durable message sends and history reads over REST; the coalescing check.
    Store(store::StoreArgs),
    /// Idle identified sessions: server memory per session, IDENTIFY→READY.
    Idle(idle::IdleArgs),
    /// One guild, one sender, M online recipients: latency and CPU per delivery.
    Fanout(fanout::FanoutArgs),
    /// IDENTIFY → last GUILD_CREATE for a user in many big guilds.
    Ready(ready::ReadyArgs),
    /// Sessions that never read while a guild fans out: server memory bound, others' latency.
    Stalled(stalled::StalledArgs),
    /// Connection churn plus traffic for a long time: server RSS and fds, RESUME correctness.
    Soak(soak::SoakArgs),
    /// (internal) Holds gateway sessions for a parent bench process.
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

impl Common {
    /// Starts or targets the server.
    pub fn target(&self) -> Res<server::Target> {
        match (&self.spawn, &self.server) {
            (Some(bin), _) => server::Target::spawn(bin, self.data_dir.as_deref(), &self.results),
            (None, Some(url)) => Ok(server::Target::remote(url, self.pid)),
            (None, None) => Err("give --spawn PATH_TO_guildhall or --server URL".into()),
        }
    }

    pub fn worker_exe(&self) -> Res<PathBuf> {
        match &self.worker_exe {
            Some(p) => Ok(p.clone()),
            None => std::env::current_exe().map_err(|e| e.to_string()),
        }
    }
}

/// Runs one scenario; returns the path of its results file (workers return None).
pub async fn run(cli: Cli) -> Res<Option<PathBuf>> {
    match cli.scenario {
        Scenario::Seed { common, users, guilds, members, out } => {
            let target = common.target()?;
            let rest = rest::Rest::new(&target.base);
            let plan = seed::SeedPlan {
                users,
                guilds,
                members: members.unwrap_or(users),
                concurrency: common.seed_concurrency,
            };
            let (file, times) = seed::seed(&rest, &plan).await?;
            let out = out.unwrap_or_else(|| common.results.join("seed.json"));
            file.save(&out)?;
            let mut r = seed::report_seed(&plan, &times);
            r.extra("seed_file", out.display().to_string().into());
            if target.is_spawned() && common.data_dir.is_none() {
                r.note("the spawned server's temporary data directory is removed on exit; pass --data-dir to keep the seeded data");
            }
            Ok(Some(r.finish(&common.results).map_err(|e| e.to_string())?))
        }
        Scenario::Store(a) => store::run(a).await.map(Some),
        Scenario::Idle(a) => idle::run(a).await.map(Some),
        Scenario::Fanout(a) => fanout::run(a).await.map(Some),
        Scenario::Ready(a) => ready::run(a).await.map(Some),
        Scenario::Stalled(a) => stalled::run(a).await.map(Some),
        Scenario::Soak(a) => soak::run(a).await.map(Some),
        Scenario::Worker(a) => worker::run(a).await.map(|_| None),
    }
}
