//! The store conformance suite: behaviour every backend must show. Each check is a
//! function over `&dyn Store` so another backend runs the same suite.

use std::sync::Arc;

use guildhall_domain::GuildState;
use guildhall_domain::entity::*;
use guildhall_model::Timestamp;
use guildhall_model::id::{ChannelId, GuildId, Id, MessageId, UserId};
use guildhall_store::{EmbeddedStore, EmbeddedStoreConfig, HistoryQuery, Mutation, Store};

fn message(channel: u64, id: u64, content: &str) -> Message {
    Message::plain(Id::new(id << 22), Id::new(channel), Some(Id::new(1)), Id::new(7), content.into())
}

fn guild(id: u64) -> Guild {
    Guild::new(Id::new(id), "g", Id::new(7))
}

fn contents(page: &[Message]) -> Vec<String> {
    page.iter().map(|m| m.content.clone()).collect()
}

async fn history_is_in_snowflake_order(store: &dyn Store) {
    // Interleave two channels; write out of order to prove ordering comes from keys.
    let mut batch = Vec::new();
    for i in (1..=30u64).rev() {
        batch.push(Mutation::PutMessage(message(10, i, &format!("a{i}"))));
        batch.push(Mutation::PutMessage(message(11, i, &format!("b{i}"))));
    }
    store.apply(batch).await.unwrap();
    let c: ChannelId = Id::new(10);
    assert_eq!(contents(&store.messages(c, HistoryQuery::Latest, 3).unwrap()), ["a30", "a29", "a28"]);
    let before = store.messages(c, HistoryQuery::Before(Id::new(5 << 22)), 10).unwrap();
    assert_eq!(contents(&before), ["a4", "a3", "a2", "a1"]);
    let after = store.messages(c, HistoryQuery::After(Id::new(27 << 22)), 10).unwrap();
    assert_eq!(contents(&after), ["a30", "a29", "a28"]);
    let around = store.messages(c, HistoryQuery::Around(Id::new(15 << 22)), 4).unwrap();
    assert_eq!(contents(&around), ["a16", "a15", "a14", "a13"]);
    let m: MessageId = Id::new(3 << 22);
    assert_eq!(store.message(c, m).unwrap().unwrap().content, "a3");
    assert!(store.message(Id::new(12), m).unwrap().is_none());
}

async fn latest_page_cache_sees_every_write(store: &dyn Store) {
    let c: ChannelId = Id::new(20);
    store.apply(vec![Mutation::PutMessage(message(20, 1, "one"))]).await.unwrap();
    let reads = store.stats().history_reads;
    for _ in 0..1000 {
        assert_eq!(contents(&store.messages(c, HistoryQuery::Latest, 50).unwrap()), ["one"]);
    }
    assert!(store.stats().history_reads - reads <= 1, "identical reads share one engine read");
    store.apply(vec![Mutation::PutMessage(message(20, 2, "two"))]).await.unwrap();
    assert_eq!(contents(&store.messages(c, HistoryQuery::Latest, 50).unwrap()), ["two", "one"]);
    store.apply(vec![Mutation::DeleteMessage(c, Id::new(2 << 22))]).await.unwrap();
    assert_eq!(contents(&store.messages(c, HistoryQuery::Latest, 50).unwrap()), ["one"]);
}

async fn guild_state_round_trips_and_cascades(store: &dyn Store) {
    let gid: GuildId = Id::new(100);
    let mut channel = Channel::new(Id::new(101), channel_type::GUILD_TEXT, Some(gid));
    channel.name = Some("general".into());
    let role = Role::everyone(gid);
    let member = Member::new(Id::new(7), Timestamp(5));
    let invite = Invite {
        code: "abcdefgh".into(),
        guild_id: Some(gid),
        channel_id: channel.id,
        inviter_id: Some(Id::new(7)),
        created_at: Timestamp(1),
        max_age: 0,
        max_uses: 0,
        uses: 0,
        temporary: false,
    };
    store
        .apply(vec![
            Mutation::PutGuild(guild(100)),
            Mutation::PutRole(gid, role),
            Mutation::PutChannel(channel.clone()),
            Mutation::PutMember(gid, member),
            Mutation::PutInvite(invite),
            Mutation::PutBan(gid, Ban { user_id: Id::new(9), reason: Some("spam".into()) }),
            Mutation::PutMessage(message(101, 1, "hi")),
        ])
        .await
        .unwrap();
    let loaded: Vec<GuildState> = store.load_guilds().unwrap().into_iter().filter(|g| g.guild.id == gid).collect();
    assert_eq!(loaded.len(), 1);
    let g = &loaded[0];
    assert_eq!(g.channels[&channel.id].name.as_deref(), Some("general"));
    assert!(g.members.contains_key(&UserId::new(7)));
    assert_eq!(g.roles.len(), 1);
    assert!(g.invites.contains_key("abcdefgh"));
    assert_eq!(g.bans[&UserId::new(9)].reason.as_deref(), Some("spam"));

    store.apply(vec![Mutation::DeleteGuild(gid)]).await.unwrap();
    assert!(store.load_guilds().unwrap().iter().all(|g| g.guild.id != gid));
    assert!(store.messages(channel.id, HistoryQuery::Latest, 50).unwrap().is_empty(), "messages go with the guild");
}

async fn pins_newest_first(store: &dyn Store) {
    let mut a = message(30, 1, "first");
    a.pinned = true;
    a.pinned_at = Some(Timestamp(100));
    let mut b = message(30, 2, "second");
    b.pinned = true;
    b.pinned_at = Some(Timestamp(50));
    store.apply(vec![Mutation::PutMessage(a.clone()), Mutation::PutMessage(b)]).await.unwrap();
    assert_eq!(contents(&store.pinned_messages(Id::new(30)).unwrap()), ["first", "second"]);
    a.pinned = false;
    a.pinned_at = None;
    store.apply(vec![Mutation::PutMessage(a.clone())]).await.unwrap();
    assert_eq!(contents(&store.pinned_messages(Id::new(30)).unwrap()), ["second"]);
    // Pinned and unpinned again within one batch: the last write wins.
    let mut pinned = a.clone();
    pinned.pinned = true;
    pinned.pinned_at = Some(Timestamp(200));
    store.apply(vec![Mutation::PutMessage(pinned), Mutation::PutMessage(a)]).await.unwrap();
    assert_eq!(contents(&store.pinned_messages(Id::new(30)).unwrap()), ["second"]);
    // An edit that keeps the pin keeps it; the next one that drops it removes it.
    let mut edited = message(30, 2, "second, edited");
    edited.pinned = true;
    edited.pinned_at = Some(Timestamp(50));
    store.apply(vec![Mutation::PutMessage(edited.clone())]).await.unwrap();
    assert_eq!(contents(&store.pinned_messages(Id::new(30)).unwrap()), ["second, edited"]);
    edited.pinned = false;
    edited.pinned_at = None;
    store.apply(vec![Mutation::PutMessage(edited)]).await.unwrap();
    assert!(store.pinned_messages(Id::new(30)).unwrap().is_empty());
}

async fn many_concurrent_writers_share_fsyncs(store: Arc<dyn Store>) {
    let syncs = store.stats().syncs;
    let mut tasks = Vec::new();
    for w in 0..50u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                store.apply(vec![Mutation::PutMessage(message(1000 + w, i + 1, "x"))]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for w in 0..50u64 {
        assert_eq!(store.messages(Id::new(1000 + w), HistoryQuery::Latest, 100).unwrap().len(), 20);
    }
    let used = store.stats().syncs - syncs;
    assert!(used < 1000, "1000 durable writes used {used} fsyncs; group commit should share them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedStoreConfig::default()).unwrap());
    history_is_in_snowflake_order(&*store).await;
    latest_page_cache_sees_every_write(&*store).await;
    guild_state_round_trips_and_cascades(&*store).await;
    pins_newest_first(&*store).await;
    many_concurrent_writers_share_fsyncs(store.clone()).await;
}

#[tokio::test]
async fn durable_writes_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path(), EmbeddedStoreConfig::default()).unwrap();
        store.apply(vec![Mutation::PutMessage(message(5, 1, "kept"))]).await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path(), EmbeddedStoreConfig::default()).unwrap();
    assert_eq!(contents(&store.messages(Id::new(5), HistoryQuery::Latest, 10).unwrap()), ["kept"]);
}
