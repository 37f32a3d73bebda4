//! ready: IDENTIFY → READY and IDENTIFY → last GUILD_CREATE for a user who is in
//! G guilds of M members each (seeded here unless a seed file is given).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use crate::gw::{Compress, Gw};
use crate::hist::Histogram;
use crate::report::{Goal, Report};
use crate::rest::Rest;
use crate::seed::{SeedFile, SeedPlan, seed};
use crate::{Common, Res};

#[derive(Args, Debug, Clone)]
pub struct ReadyArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 100)]
    pub guilds: usize,
    /// Members per guild (the same users are in every guild).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// IDENTIFYs to time.
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    #[arg(long, default_value = "plain")]
    pub compress: String,
    /// Use this seed file (user 0 must be in every guild) instead of seeding.
    #[arg(long)]
    pub seed: Option<PathBuf>,
}

pub async fn run(a: ReadyArgs) -> Res<PathBuf> {
    let target = a.common.target()?;
    let rest = Rest::new(&target.base);
    let compress = Compress::parse(&a.compress)?;
    let mut r = Report::new(
        "ready",
        json!({ "guilds": a.guilds, "members": a.members, "repeat": a.repeat, "compress": a.compress }),
    );
    let file = match &a.seed {
        Some(p) => SeedFile::load(p)?,
        None => {
            let plan = SeedPlan {
                users: a.members,
                guilds: a.guilds,
                members: a.members,
                concurrency: a.common.seed_concurrency,
            };
            eprintln!("ready: seeding {} guilds of {} members", a.guilds, a.members);
            let t = Instant::now();
            let (file, times) = seed(&rest, &plan).await?;
            r.row("seeding time", "s", Goal::None, t.elapsed().as_secs_f64());
            r.row("invite joins/s while seeding", "joins/s", Goal::None, times.joins as f64 / times.join_s.max(1e-9));
            file
        }
    };
    let gateway = rest.gateway_url().await?;
    // Time a member (not the owner) and the owner alternately.
    let who = [file.users.get(1).unwrap_or(&file.users[0]).token.clone(), file.users[0].token.clone()];
    let (mut to_ready, mut to_last, mut bytes) = (Histogram::new(), Histogram::new(), 0usize);
    let mut guilds_seen = 0;
    for i in 0..a.repeat.max(1) {
        let mut gw = Gw::connect(&gateway, compress).await?;
        let t0 = Instant::now();
        gw.identify(&who[i % 2], 1).await?;
        let mut expected = None;
        let mut seen = 0usize;
        loop {
            let f = gw.next_frame().await?;
            if f.op != 0 {
                continue;
            }
            match f.t.as_deref() {
                Some("READY") => {
                    to_ready.record_duration(t0.elapsed());
                    let v = f.json()?;
                    expected = Some(v["d"]["guilds"].as_array().map(|g| g.len()).unwrap_or(0));
                }
                Some("GUILD_CREATE") => {
                    seen += 1;
                    bytes += f.raw.len();
                }
                _ => {}
            }
            if expected.is_some_and(|e| seen >= e) {
                break;
            }
        }
        to_last.record_duration(t0.elapsed());
        guilds_seen = seen;
        gw.close().await;
    }
    r.row("guilds in READY / GUILD_CREATEs received", "", Goal::AtLeast(a.guilds as f64), guilds_seen as f64);
    r.latency("IDENTIFY→READY", &to_ready, None);
    r.latency("IDENTIFY→last GUILD_CREATE", &to_last, None);
    r.row(
        "GUILD_CREATE bytes per IDENTIFY (decoded)",
        "KiB",
        Goal::None,
        bytes as f64 / a.repeat.max(1) as f64 / 1024.0,
    );
    r.finish(&a.common.results).map_err(|e| e.to_string())
}
