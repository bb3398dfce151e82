//! The store conformance suite: the same behaviour, checked on every store.

use std::sync::Arc;

use crate::common::{open_store, set_balance, StoreKind};
use chrono::Utc;
use divine_heroes::game::economy::Currency;
use divine_heroes::game::error::GameError;
use divine_heroes::game::player::Player;
use divine_heroes::store::{
    DynStore, Effects, IdempotencyRequest, LedgerReason, MutateOutcome, Mutation, StoreError, StoredResponse,
};
use serde_json::json;

fn new_player(name: &str) -> Player {
    Player::new(uuid::Uuid::new_v4().simple().to_string(), name, "hash".into(), Utc::now())
}

/// Debits `amount` gold; the response carries a value drawn inside the rule, so
/// identical responses prove a replay rather than a second run.
fn debit(amount: i64) -> Mutation {
    Arc::new(move |p: &mut Player| {
        p.balances.debit(Currency::Gold, amount)?;
        Ok(Effects {
            reason: LedgerReason::Adjustment,
            event: None,
            ref_id: "r".into(),
            history: vec![json!({"debited": amount})],
            battles: vec![],
            response: StoredResponse::json(
                200,
                &json!({"run": uuid::Uuid::new_v4().to_string(), "gold": p.balances.gold}),
            )
            .unwrap(),
            traceparent: None,
        })
    })
}

async fn ledger_count(store: &DynStore, id: &str, reason: LedgerReason) -> usize {
    let page = store.ledger(id, 100, None).await.expect("ledger");
    page.items.iter().filter(|e| e.reason == reason).count()
}

/// Ledger entries of `debit(100)` (set_balance adjusts by other amounts).
async fn debit_entries(store: &DynStore, id: &str) -> usize {
    let page = store.ledger(id, 100, None).await.expect("ledger");
    page.items.iter().filter(|e| e.reason == LedgerReason::Adjustment && e.delta == -100).count()
}

async fn concurrent_debits_never_overdraw(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let p = new_player("Debtor");
    store.create_player(&p).await.expect("create");
    set_balance(&store, &p.id, Currency::Gold, 1000, Utc::now()).await;

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let id = p.id.clone();
            tokio::spawn(async move { store.mutate(&id, None, Utc::now(), debit(100)).await })
        })
        .collect();
    let (mut applied, mut refused) = (0, 0);
    for t in tasks {
        match t.await.expect("task").expect("store ok") {
            MutateOutcome::Applied(..) => applied += 1,
            MutateOutcome::Rejected(GameError::InsufficientFunds(f)) => {
                assert_eq!((f.currency, f.needed), (Currency::Gold, 100));
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((applied, refused), (10, 40));
    let after = store.player_by_id(&p.id).await.unwrap().unwrap();
    assert_eq!(after.balances.gold, 0);
    assert_eq!(debit_entries(&store, &p.id).await, 10);
    let ledger = store.ledger(&p.id, 100, None).await.unwrap();
    let last = ledger.items.iter().find(|e| e.reason == LedgerReason::Adjustment && e.delta == -100).unwrap();
    assert_eq!((last.delta, last.balance_after), (-100, 0), "newest entry first");
    assert_eq!(store.history(&p.id, 100, None).await.unwrap().items.len(), 10);
}

async fn one_idempotency_key_has_one_effect(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let p = new_player("Replayer");
    store.create_player(&p).await.expect("create");
    let key = IdempotencyRequest { key: "same-key".into(), fingerprint: "f1".into() };
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, id, key) = (store.clone(), p.id.clone(), key.clone());
            tokio::spawn(async move { store.mutate(&id, Some(key), Utc::now(), debit(100)).await })
        })
        .collect();
    let mut bodies = Vec::new();
    let mut fresh = 0;
    for t in tasks {
        match t.await.expect("task").expect("store ok") {
            MutateOutcome::Applied(r, _) => {
                fresh += 1;
                bodies.push(r.body.get().to_string());
            }
            MutateOutcome::Replayed(r) => bodies.push(r.body.get().to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request applied the effect");
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "20 identical responses");
    let after = store.player_by_id(&p.id).await.unwrap().unwrap();
    assert_eq!(after.balances.gold, 5000 - 100);
    assert_eq!(debit_entries(&store, &p.id).await, 1);

    let other = IdempotencyRequest { key: "same-key".into(), fingerprint: "f2".into() };
    assert!(matches!(store.mutate(&p.id, Some(other), Utc::now(), debit(1)).await.unwrap(), MutateOutcome::KeyReused));
    // Keys are per player: another player may use the same key.
    let q = new_player("Other");
    store.create_player(&q).await.unwrap();
    assert!(matches!(store.mutate(&q.id, Some(key), Utc::now(), debit(1)).await.unwrap(), MutateOutcome::Applied(..)));
}

async fn usernames_are_unique_case_insensitively(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let name = if i % 2 == 0 { "Twin" } else { "tWIN" };
            tokio::spawn(async move { store.create_player(&new_player(name)).await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::UsernameTaken) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(created, 1);
    let found = store.player_by_username("twin").await.unwrap().expect("one player");
    assert_eq!(found.username_lower, "twin");
    assert_eq!(found.heroes.len(), 3);
    assert_eq!(
        ledger_count(&store, &found.id, LedgerReason::StartingGrant).await,
        6,
        "one entry per non-zero starting balance"
    );
}

async fn a_refused_rule_writes_nothing(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let p = new_player("Careful");
    store.create_player(&p).await.unwrap();
    let before = store.player_by_id(&p.id).await.unwrap().unwrap();
    let key = IdempotencyRequest { key: "k".into(), fingerprint: "f".into() };
    let out = store.mutate(&p.id, Some(key.clone()), Utc::now(), debit(1_000_000)).await.unwrap();
    assert!(matches!(out, MutateOutcome::Rejected(GameError::InsufficientFunds(_))));
    let after = store.player_by_id(&p.id).await.unwrap().unwrap();
    assert_eq!(after.version, before.version);
    assert_eq!(after.balances, before.balances);
    assert_eq!(debit_entries(&store, &p.id).await, 0);
    // The key was not consumed by the refusal: the same request can succeed later.
    assert!(matches!(store.mutate(&p.id, Some(key), Utc::now(), debit(10)).await.unwrap(), MutateOutcome::Applied(..)));
    assert!(matches!(store.mutate("nobody", None, Utc::now(), debit(1)).await.unwrap(), MutateOutcome::PlayerNotFound));
}

async fn ledger_pages_newest_first(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let p = new_player("Pager");
    store.create_player(&p).await.unwrap();
    for _ in 0..7 {
        store.mutate(&p.id, None, Utc::now(), debit(1)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.ledger(&p.id, 4, before).await.unwrap();
        seen.extend(page.items.iter().map(|e| e.seq));
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7 + 6);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "strictly newest first: {seen:?}");
}

async fn stored_responses_round_trip_exactly(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let p = new_player("Exact");
    store.create_player(&p).await.unwrap();
    let body = json!({"big": u64::MAX, "neg": i64::MIN, "float": 0.1, "nested": {"z": 1, "a": [null, true]}});
    let sent = body.clone();
    let op: Mutation = Arc::new(move |_p: &mut Player| {
        Ok(Effects {
            reason: LedgerReason::Team,
            event: None,
            ref_id: String::new(),
            history: vec![],
            battles: vec![("b-exact".into(), sent.clone())],
            response: StoredResponse::json(201, &sent).unwrap(),
            traceparent: None,
        })
    });
    let key = IdempotencyRequest { key: "exact".into(), fingerprint: "f".into() };
    store.mutate(&p.id, Some(key.clone()), Utc::now(), op.clone()).await.unwrap();
    match store.mutate(&p.id, Some(key), Utc::now(), op).await.unwrap() {
        // Byte for byte: the text first written, not a re-encoding of it.
        MutateOutcome::Replayed(r) => assert_eq!((r.status, r.body.get()), (201, body.to_string().as_str())),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_eq!(store.battle("b-exact").await.unwrap(), Some(body));
    assert_eq!(store.battle("missing").await.unwrap(), None);
}

async fn each_event_is_consumed_once(kind: StoreKind) {
    use divine_heroes::store::events::ConsumeItem;
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let item = |id: &str| ConsumeItem {
        event_id: id.into(),
        counters: vec![("gacha:test:SR".into(), 1)],
        audit: None,
        draws: vec![],
    };
    // Two copies in one batch, then a redelivery of both ids in a later one.
    let first = store.consume_batch("c", &[item("e1"), item("e1"), item("e2")], &[]).await.unwrap();
    assert_eq!(first, vec![true, false, true]);
    let again = store.consume_batch("c", &[item("e2"), item("e1")], &[]).await.unwrap();
    assert_eq!(again, vec![false, false]);
    assert_eq!(store.counters("gacha:test:").await.unwrap(), vec![("gacha:test:SR".to_string(), 2)]);
    // Another consumer keeps its own record.
    assert_eq!(store.consume_batch("other", &[item("e1")], &[]).await.unwrap(), vec![true]);
}

/// Published events stay in the store as unconsumed until a consumer applied
/// them, so that what a broker loses after accepting it can be published again.
async fn published_events_stay_until_consumed(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    for name in ["Herald", "Crier", "Scribe"] {
        store.create_player(&new_player(name)).await.expect("create");
    }
    let batch = store.outbox_batch(100).await.unwrap();
    assert_eq!(batch.len(), 3, "one registration event each");
    store.outbox_relayed(&batch).await.unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), 0, "nothing left to publish");
    assert!(store.outbox_batch(100).await.unwrap().is_empty());
    assert_eq!(store.unconsumed_len().await.unwrap(), 3, "published, not yet consumed");

    let first = store.unconsumed(None, 2).await.unwrap();
    let rest = store.unconsumed(Some(first[1].key.clone()), 2).await.unwrap();
    let mut paged: Vec<String> = first.iter().chain(&rest).map(|e| e.event.id.clone()).collect();
    assert!(paged.windows(2).all(|w| w[0] < w[1]), "in event-id order: {paged:?}");
    paged.sort();
    let mut sent: Vec<String> = batch.iter().map(|e| e.event.id.clone()).collect();
    sent.sort();
    assert_eq!(paged, sent, "every published event, once, across pages");

    // Applying one forgets it; the others wait for their consumer.
    store.consume_batch("consumers", &[], std::slice::from_ref(&batch[0].event.id)).await.unwrap();
    assert_eq!(store.unconsumed_len().await.unwrap(), 2);
    let left: Vec<String> = store.unconsumed(None, 10).await.unwrap().into_iter().map(|e| e.event.id).collect();
    assert!(!left.contains(&batch[0].event.id));
}

/// Retention: idempotency records, history and consumers' marks of events past
/// their time go, newer ones stay. The embedded store prunes them in the background; MongoDB expires them
/// with TTL indexes, whose expiry the settings choose.
async fn expired_records_go_and_fresh_ones_stay(kind: StoreKind) {
    use divine_heroes::store::events::ConsumeItem;
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let p = new_player("Keeper");
    store.create_player(&p).await.expect("create");
    let now = Utc::now();
    let key = |k: &str| IdempotencyRequest { key: k.into(), fingerprint: "f".into() };
    let old_write = store.mutate(&p.id, Some(key("old")), now - chrono::Duration::days(100), debit(100));
    assert!(matches!(old_write.await.unwrap(), MutateOutcome::Applied(..)));
    assert!(matches!(
        store.mutate(&p.id, Some(key("new")), now, debit(100)).await.unwrap(),
        MutateOutcome::Applied(..)
    ));

    // A consumer's marks of an event from two days ago and of one from now.
    let event_at = |t: chrono::DateTime<Utc>| {
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, t.timestamp().unsigned_abs(), 0);
        uuid::Uuid::new_v7(ts).simple().to_string()
    };
    let (old_event, new_event) = (event_at(now - chrono::Duration::days(2)), event_at(now));
    let item = |id: &str| ConsumeItem { event_id: id.into(), counters: vec![], audit: None, draws: vec![] };
    let marks = store.consume_batch("keeper", &[item(&old_event), item(&new_event)], &[]).await.unwrap();
    assert_eq!(marks, vec![true, true]);

    let pruned = store.prune(now - chrono::Duration::hours(24), now - chrono::Duration::days(90), 1000).await.unwrap();
    match kind {
        StoreKind::Embedded => {
            assert_eq!(pruned, 3, "one idempotency record, one history row and one consumer mark were past their time");
            let again = store.consume_batch("keeper", &[item(&old_event), item(&new_event)], &[]).await.unwrap();
            assert_eq!(again, vec![true, false], "the old mark went, the fresh one still guards its event");
            let history = store.history(&p.id, 100, None).await.unwrap();
            assert_eq!(history.items.len(), 1, "the 100-day-old row went, today's stayed");
            // The expired key is free again; the fresh one still replays.
            assert!(matches!(
                store.mutate(&p.id, Some(key("old")), now, debit(100)).await.unwrap(),
                MutateOutcome::Applied(..)
            ));
            assert!(matches!(
                store.mutate(&p.id, Some(key("new")), now, debit(100)).await.unwrap(),
                MutateOutcome::Replayed(_)
            ));
            // The ledger is never pruned: it proves the balance.
            assert_eq!(debit_entries(&store, &p.id).await, 3);
        }
        StoreKind::Mongo => {
            assert_eq!(pruned, 0, "MongoDB expires by TTL index");
            // Test stores keep records past the wall clock; a store opened with the
            // shipped retention sets these indexes to it (replacing them).
            let name = ts.mongo_db().expect("a Mongo store has a database");
            divine_heroes::store::mongo::MongoStore::connect(&crate::common::mongo_url(), name).await.unwrap();
            let client = mongodb::Client::with_uri_str(crate::common::mongo_url()).await.unwrap();
            let db = client.database(name);
            for (coll, name, secs) in [
                ("idempotency", "at_ttl", 86_400),
                ("consumed", "at_ttl", 86_400),
                ("draws", "at_ttl", 90 * 86_400),
                ("history", "at_date_ttl", 90 * 86_400),
            ] {
                let mut cursor = db.collection::<mongodb::bson::Document>(coll).list_indexes().await.unwrap();
                let mut expiry = None;
                while cursor.advance().await.unwrap() {
                    let ix = cursor.deserialize_current().unwrap();
                    if ix.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name) {
                        expiry = ix.options.and_then(|o| o.expire_after).map(|d| d.as_secs());
                    }
                }
                assert_eq!(expiry, Some(secs), "{coll} has a TTL index of {secs} s");
            }
        }
    }
}

/// Every stored balance is the sum of its ledger, including what the clock gave
/// between writes (stamina regeneration, the daily ticket refill), and each
/// entry's `balance_after` chains from the one before.
async fn the_ledger_sums_to_every_stored_balance(kind: StoreKind) {
    let Some(ts) = open_store(kind).await else { return };
    let store = ts.store.clone();
    let mut p = new_player("Regenerator");
    p.balances.stamina = 10;
    p.balances.arena_tickets = 0;
    store.create_player(&p).await.expect("create");
    let later = Utc::now() + chrono::Duration::days(2);
    assert!(matches!(store.mutate(&p.id, None, later, debit(100)).await.unwrap(), MutateOutcome::Applied(..)));
    let stored = store.player_by_id(&p.id).await.unwrap().unwrap();
    assert!(stored.balances.stamina > 10 && stored.balances.arena_tickets > 0, "the write materialised both");
    let mut entries = store.ledger(&p.id, 100, None).await.unwrap().items;
    entries.reverse();
    for c in Currency::ALL {
        let mut running = 0;
        for e in entries.iter().filter(|e| e.currency == c) {
            running += e.delta;
            assert_eq!(e.balance_after, running, "{c:?} chain at seq {}", e.seq);
        }
        assert_eq!(running, stored.balances.get(c), "{c:?}: the ledger sums to the stored balance");
    }
    let reasons: Vec<LedgerReason> = entries.iter().map(|e| e.reason).collect();
    assert!(
        reasons.contains(&LedgerReason::StaminaRegen) && reasons.contains(&LedgerReason::TicketRefill),
        "{reasons:?}"
    );
}

/// A rank is one more than the players with a higher score (ties share it),
/// on boards with many ties and with scores spread over every byte of a u64's
/// low five, after players moved up, down and across; the top list agrees.
async fn ranks_count_the_players_above(kind: StoreKind) {
    use divine_heroes::store::Board;
    use rand::{Rng, SeedableRng};
    let Some(store) = open_store(kind).await else { return };
    let store = store.store;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let draw = |rng: &mut rand_chacha::ChaCha8Rng| -> u64 {
        match rng.gen_range(0..3) {
            0 => 1000 + rng.gen_range(0..4) * 16, // crowded: ties
            1 => rng.gen_range(0..1u64 << 40),    // spread over many levels
            _ => rng.gen_range(0..300),
        }
    };
    let mut scores = std::collections::BTreeMap::new();
    for i in 0..150 {
        let mut p = new_player(&format!("ranked{i}"));
        p.scores.arena = draw(&mut rng);
        scores.insert(p.id.clone(), p.scores.arena);
        store.create_player(&p).await.unwrap();
    }
    let ids: Vec<String> = scores.keys().cloned().collect();
    for id in ids.iter().take(60) {
        let to = draw(&mut rng);
        scores.insert(id.clone(), to);
        crate::common::direct_write(&store, id, Utc::now(), move |p| p.scores.arena = to).await;
    }
    for (id, &score) in &scores {
        let above = scores.values().filter(|&&s| s > score).count() as u64;
        let me = store.rank(Board::Arena, id).await.unwrap().expect("on the board");
        assert_eq!((me.rank, me.score), (above + 1, score), "{id}");
    }
    let top = store.leaderboard(Board::Arena, 150).await.unwrap();
    for row in &top {
        assert_eq!(row.rank, store.rank(Board::Arena, &row.player_id).await.unwrap().unwrap().rank);
    }
    assert!(top.windows(2).any(|w| w[0].rank == w[1].rank), "some ties share a rank");
}

on_both_stores!(
    ranks_count_the_players_above,
    the_ledger_sums_to_every_stored_balance,
    expired_records_go_and_fresh_ones_stay,
    each_event_is_consumed_once,
    published_events_stay_until_consumed,
    stored_responses_round_trip_exactly,
    concurrent_debits_never_overdraw,
    one_idempotency_key_has_one_effect,
    usernames_are_unique_case_insensitively,
    a_refused_rule_writes_nothing,
    ledger_pages_newest_first,
);

/// MongoDB stops answering mid-write: the write fails as unavailable within the
/// bound (not after the outage), and the client's retry with the same key once
/// it answers again is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_mongodb_outage_fails_in_time_and_applies_once_after() {
    use divine_heroes::store::mongo::MongoStore;
    use std::time::{Duration, Instant};
    // A server of its own: the cut-off transaction must not stall other tests.
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = crate::common::procs::private_mongo(dir.path()).await else { return };
    let target = url.trim_start_matches("mongodb://").split(['/', '?']).next().unwrap_or_default().to_string();
    let relay = crate::common::relay::PausableRelay::start(target).await;
    let db = format!("dh_test_{}", uuid::Uuid::new_v4().simple());
    let _scratch = crate::common::MongoScratch(db.clone());
    let relayed = format!("mongodb://127.0.0.1:{}/?directConnection=true", relay.port);
    let store: DynStore = Arc::new(
        MongoStore::connect_with(&relayed, &db, crate::common::wall_clock_safe_retention(), Duration::from_secs(1))
            .await
            .unwrap(),
    );
    let p = new_player("Outlast");
    store.create_player(&p).await.unwrap();
    let key = IdempotencyRequest { key: "through-the-outage".into(), fingerprint: "f".into() };

    relay.set_paused(true);
    let started = Instant::now();
    let cut = store.mutate(&p.id, Some(key.clone()), Utc::now(), debit(100)).await;
    let took = started.elapsed();
    assert!(matches!(cut, Err(StoreError::Unavailable(_))), "{cut:?}");
    assert!(took < Duration::from_secs(3), "failed within the 1 s bound (and some slack), took {took:?}");

    relay.set_paused(false);
    let mut outcome = None;
    for _ in 0..50 {
        match store.mutate(&p.id, Some(key.clone()), Utc::now(), debit(100)).await {
            Ok(o) => {
                outcome = Some(o);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(
        matches!(outcome, Some(MutateOutcome::Applied(..) | MutateOutcome::Replayed(_))),
        "the retry goes through once MongoDB answers: {outcome:?}"
    );
    let after = store.player_by_id(&p.id).await.unwrap().unwrap();
    assert_eq!(after.balances.gold, 5000 - 100, "applied exactly once");
    assert_eq!(debit_entries(&store, &p.id).await, 1);
}

/// `MONGO_READ_PREFERENCE`: a store that sends stale-tolerant reads to
/// secondaries still answers them (on a single server the primary serves them),
/// an unknown value is refused by name, and the connection pool is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_reads_follow_the_read_preference_and_the_pool_is_counted() {
    use divine_heroes::store::mongo::{read_preference, MongoStore};
    use divine_heroes::store::Board;
    let Some(plain) = open_store(StoreKind::Mongo).await else { return };
    let db = plain.mongo_db().unwrap().to_string();
    let store = MongoStore::connect(&crate::common::mongo_url(), &db)
        .await
        .unwrap()
        .with_read_preference("secondaryPreferred")
        .unwrap();
    let store: DynStore = Arc::new(store);
    let p = new_player("Reader");
    store.create_player(&p).await.unwrap();
    let top = store.leaderboard(Board::Power, 10).await.unwrap();
    assert_eq!(top[0].player_id, p.id, "a leaderboard read on the preferred members");
    assert!(store.counters("gacha:").await.unwrap().is_empty());
    assert!(store.draws("premium", None, 5).await.unwrap().is_empty());
    let pool = store.pool().expect("MongoDB has a pool");
    assert!(pool.open >= 1 && pool.in_use <= pool.open && pool.max == 10, "{pool:?}");
    let err = read_preference("mostlyPrimary").unwrap_err().to_string();
    assert!(err.contains("mostlyPrimary") && err.contains("secondaryPreferred"), "{err}");
    assert!(read_preference("primary").unwrap().is_none());
}

/// The pool gauge is on `/metrics` of a server on MongoDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mongodb_pool_is_on_the_metrics() {
    let Some(app) = crate::common::TestApp::spawn(StoreKind::Mongo).await else { return };
    app.register("Gauged").await;
    let text = app.get("/metrics/prometheus", None).await.text().await.unwrap();
    assert!(text.contains("divine_heroes_store_connections{state=\"max\"} 10"), "{text}");
    assert!(text.contains("divine_heroes_store_connections{state=\"open\"}"), "{text}");
}
