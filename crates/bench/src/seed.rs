//! seed: registers users concurrently over REST, has user 0 create the guilds,
//! and joins members through invites (`POST /channels/{id}/invites`, then
//! `POST /invites/{code}` per member). Writes a seed file the other scenarios read.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Res;
use crate::report::{Goal, Report};
use crate::rest::{Rest, pool};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedUser {
    pub username: String,
    pub token: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeedGuild {
    pub id: String,
    /// The guild's #general (its system channel).
    pub channel_id: String,
    /// Users `0..members` are members (user 0 owns every guild).
    pub members: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeedFile {
    pub base: String,
    pub users: Vec<SeedUser>,
    pub guilds: Vec<SeedGuild>,
}

impl SeedFile {
    pub fn load(path: &Path) -> Res<SeedFile> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }
    pub fn save(&self, path: &Path) -> Res<()> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, serde_json::to_vec(self).unwrap_or_default())
            .map_err(|e| format!("writing {}: {e}", path.display()))
    }
}

#[derive(Clone, Debug)]
pub struct SeedPlan {
    pub users: usize,
    pub guilds: usize,
    /// Members per guild, owner included (≤ users).
    pub members: usize,
    pub concurrency: usize,
}

/// Timings of one seeding.
#[derive(Clone, Debug, Default)]
pub struct SeedTimes {
    pub register_s: f64,
    pub guilds_s: f64,
    pub join_s: f64,
    pub joins: usize,
}

/// A run tag for unique usernames: 6 base-36 digits from the clock.
fn run_tag() -> String {
    let mut n = crate::unix_nanos() / 1000;
    let mut s = String::new();
    for _ in 0..6 {
        let d = (n % 36) as u8;
        s.push(if d < 10 { (b'0' + d) as char } else { (b'a' + d - 10) as char });
        n /= 36;
    }
    s
}

pub async fn register_users(rest: &Rest, n: usize, conc: usize) -> Res<Vec<SeedUser>> {
    let tag = run_tag();
    let rest2 = rest.clone();
    let results = pool(n, conc, move |i| {
        let rest = rest2.clone();
        let username = format!("b{tag}_{i}");
        async move {
            let body = json!({ "username": username, "password": "bench password 1", "consent": true });
            let v = rest.ok(Method::POST, "/auth/register", None, Some(&body)).await?;
            let token = v["token"].as_str().ok_or_else(|| format!("register answered {v}"))?.to_string();
            Ok(SeedUser { username, token })
        }
    })
    .await;
    results.into_iter().collect()
}

/// Creates `n` guilds owned by `owner`; returns (guild id, #general id).
pub async fn create_guilds(rest: &Rest, owner: &str, n: usize, conc: usize) -> Res<Vec<(String, String)>> {
    let (rest2, owner) = (rest.clone(), owner.to_string());
    let results = pool(n, conc, move |i| {
        let (rest, owner) = (rest2.clone(), owner.clone());
        async move {
            let g = rest
                .ok(Method::POST, "/guilds", Some(&owner), Some(&json!({ "name": format!("bench guild {i}") })))
                .await?;
            let id = g["id"].as_str().ok_or_else(|| format!("guild create answered {g}"))?.to_string();
            let channel = g["system_channel_id"]
                .as_str()
                .ok_or_else(|| format!("guild {id} has no system channel: {g}"))?
                .to_string();
            Ok((id, channel))
        }
    })
    .await;
    results.into_iter().collect()
}

/// Joins `users[1..members]` to the guild through one invite.
pub async fn join_members(rest: &Rest, owner: &str, channel: &str, users: &[SeedUser], conc: usize) -> Res<usize> {
    if users.len() <= 1 {
        return Ok(0);
    }
    let inv = rest
        .ok(
            Method::POST,
            &format!("/channels/{channel}/invites"),
            Some(owner),
            Some(&json!({ "max_age": 0, "max_uses": 0 })),
        )
        .await?;
    let code = inv["code"].as_str().ok_or_else(|| format!("invite create answered {inv}"))?.to_string();
    let tokens: Arc<Vec<String>> = Arc::new(users[1..].iter().map(|u| u.token.clone()).collect());
    let n = tokens.len();
    let rest2 = rest.clone();
    let results = pool(n, conc, move |i| {
        let (rest, tokens, code) = (rest2.clone(), tokens.clone(), code.clone());
        async move {
            rest.ok(Method::POST, &format!("/invites/{code}"), Some(&tokens[i]), Some(&json!({}))).await?;
            Ok(())
        }
    })
    .await;
    for r in results {
        r?;
    }
    Ok(n)
}

/// Seeds a server per `plan`.
pub async fn seed(rest: &Rest, plan: &SeedPlan) -> Res<(SeedFile, SeedTimes)> {
    let mut times = SeedTimes::default();
    let t = Instant::now();
    let users = register_users(rest, plan.users.max(1), plan.concurrency).await?;
    times.register_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let owner = users[0].token.clone();
    let guilds = create_guilds(rest, &owner, plan.guilds, plan.concurrency.min(16)).await?;
    times.guilds_s = t.elapsed().as_secs_f64();
    let members = plan.members.clamp(1, users.len());
    let t = Instant::now();
    let mut out = Vec::new();
    for (id, channel) in guilds {
        times.joins += join_members(rest, &owner, &channel, &users[..members], plan.concurrency).await?;
        out.push(SeedGuild { id, channel_id: channel, members });
    }
    times.join_s = t.elapsed().as_secs_f64();
    Ok((SeedFile { base: rest.base.clone(), users, guilds: out }, times))
}

pub fn report_seed(plan: &SeedPlan, times: &SeedTimes) -> Report {
    let mut r = Report::new(
        "seed",
        json!({ "users": plan.users, "guilds": plan.guilds, "members": plan.members, "concurrency": plan.concurrency }),
    );
    r.row("users registered", "", Goal::None, plan.users as f64);
    r.row("registrations/s (REST, concurrent)", "users/s", Goal::None, plan.users as f64 / times.register_s.max(1e-9));
    r.row("guilds created/s", "guilds/s", Goal::None, plan.guilds as f64 / times.guilds_s.max(1e-9));
    if times.joins > 0 {
        r.row("invite joins/s", "joins/s", Goal::None, times.joins as f64 / times.join_s.max(1e-9));
    }
    r.row("total seeding time", "s", Goal::None, times.register_s + times.guilds_s + times.join_s);
    r
}
