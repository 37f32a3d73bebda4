//! op 8 REQUEST_GUILD_MEMBERS: a job on the guild's actor that selects members and
//! pushes GUILD_MEMBERS_CHUNK dispatches (at most 1000 members each, always at least
//! one chunk) into the requesting session's queue only.
//!
//! Rules (protocol notes 1.15):
//! - `user_ids`: those members; ids that are not members go to `not_found`.
//! - `query` non-empty: members whose username or nick starts with it
//!   (case-insensitive), at most `limit` (1..=100; 0 means 100).
//! - `query` empty: every member up to `limit` (0 = all). Needs GUILD_MEMBERS; without
//!   it the answer is one empty chunk.
//! - `presences: true` needs GUILD_PRESENCES; the chunk then carries the presences
//!   of its online members.
//! - A requester that is not a member of the guild (or whose shard does not cover
//!   it) gets nothing, as on Discord.

use bytes::Bytes;
use guildhall_domain::wire::MemberView;
use guildhall_model::Intents;
use guildhall_model::id::{GuildId, UserId};
use guildhall_proto::{MemberQuery, RequestGuildMembers};
use guildhall_runtime::event::{Outbound, to_bytes};
use guildhall_runtime::{GuildActor, Presence, Runtime, SessionHandle};
use serde::Serialize;

/// Members per GUILD_MEMBERS_CHUNK.
pub const CHUNK_SIZE: usize = 1000;
/// Most members a prefix query returns.
pub const MAX_QUERY_LIMIT: usize = 100;

#[derive(Serialize)]
struct Chunk<'a> {
    guild_id: GuildId,
    members: &'a [MemberView<'a>],
    chunk_index: usize,
    chunk_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_found: Option<&'a [UserId]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presences: Option<Vec<&'a Presence>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// `prefix` is already lower-cased.
fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.to_lowercase().starts_with(prefix)
}

/// Queues the request on the guild's actor. Returns once the job is queued.
pub async fn request(rt: &Runtime, session: &SessionHandle, req: RequestGuildMembers) {
    if !session.wants_guild(Some(req.guild_id)) {
        return;
    }
    let Ok(guild) = rt.guild(req.guild_id) else { return };
    let session = session.clone();
    guild.cast_wait(move |a: &mut GuildActor| answer(a, &session, &req)).await;
}

fn answer(a: &mut GuildActor, session: &SessionHandle, req: &RequestGuildMembers) {
    let state = &a.state.guild;
    if !state.members.contains_key(&session.user_id) {
        return;
    }
    let all_allowed = session.intents.contains(Intents::GUILD_MEMBERS);
    let with_presences = req.presences && session.intents.contains(Intents::GUILD_PRESENCES);
    let bodies: Vec<Bytes> = a.shared.directory.with_users(|users| {
        let mut not_found = Vec::new();
        let selected: Vec<MemberView<'_>> = match &req.query {
            MemberQuery::UserIds(ids) => ids
                .iter()
                .filter_map(|id| {
                    let found = state.members.get(id).zip(users.get(id));
                    if found.is_none() && !not_found.contains(id) {
                        not_found.push(*id);
                    }
                    found
                })
                .map(|(m, u)| MemberView::new(m, Some(u.as_ref())))
                .collect(),
            MemberQuery::Prefix { query, limit } => {
                let query = query.to_lowercase();
                let limit = usize::try_from(*limit).unwrap_or(usize::MAX);
                let limit = if query.is_empty() {
                    if !all_allowed {
                        0
                    } else if limit == 0 {
                        usize::MAX
                    } else {
                        limit
                    }
                } else if limit == 0 {
                    MAX_QUERY_LIMIT
                } else {
                    limit.min(MAX_QUERY_LIMIT)
                };
                let mut members: Vec<_> = state
                    .members
                    .values()
                    .filter_map(|m| users.get(&m.user_id).map(|u| (m, u)))
                    .filter(|(m, u)| {
                        query.is_empty()
                            || starts_with_ci(&u.username, &query)
                            || m.nick.as_deref().is_some_and(|n| starts_with_ci(n, &query))
                    })
                    .collect();
                members.sort_unstable_by_key(|(m, _)| m.user_id);
                members.into_iter().take(limit).map(|(m, u)| MemberView::new(m, Some(u.as_ref()))).collect()
            }
        };
        let is_ids = matches!(req.query, MemberQuery::UserIds(_));
        let chunk_count = selected.len().div_ceil(CHUNK_SIZE).max(1);
        let mut bodies = Vec::with_capacity(chunk_count);
        for index in 0..chunk_count {
            let members =
                selected.get(index * CHUNK_SIZE..((index + 1) * CHUNK_SIZE).min(selected.len())).unwrap_or(&[]);
            let presences = with_presences.then(|| {
                members
                    .iter()
                    .filter_map(|m| m.user.as_ref().and_then(|u| a.state.presences.get(&u.id)))
                    .collect::<Vec<_>>()
            });
            bodies.push(to_bytes(&Chunk {
                guild_id: state.guild.id,
                members,
                chunk_index: index,
                chunk_count,
                not_found: (is_ids && index == 0).then_some(not_found.as_slice()),
                presences,
                nonce: req.nonce.as_deref(),
            }));
        }
        bodies
    });
    for body in bodies {
        session.push(Outbound::dispatch("GUILD_MEMBERS_CHUNK", body));
    }
}
