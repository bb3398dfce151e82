//! Fault drills under load, as an operator would run them: a broker that loses
//! everything, a MongoDB that stops answering. Each drill counts what happened
//! to every request, checks that no write was lost or doubled, and ends with the
//! integrity check (`divine-heroes audit`: every ledger chains to its balance).
//! The figures go to stderr (`cargo nextest run --no-capture fault_drills`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::procs::{free_port, redis_server, require_tool};
use crate::common::relay::PausableRelay;
use crate::common::{open_mongo_at, StoreKind, TestApp};
use divine_heroes::game::economy::Currency;
use divine_heroes::platform::clock::SystemClock;
use divine_heroes::platform::config::Role;
use divine_heroes::platform::queue::{Queue, RedisStreamQueue};
use divine_heroes::store::{DynStore, LedgerReason};
use serde_json::Value;
use tokio::sync::Mutex;

/// What happened to the requests of one drill.
#[derive(Debug, Default, Clone)]
struct Tally {
    sent: u64,
    ok: u64,
    client_errors: u64,
    server_errors: u64,
    transport_errors: u64,
}

impl Tally {
    fn count(&mut self, status: Option<u16>) {
        self.sent += 1;
        match status {
            Some(200..=299) => self.ok += 1,
            Some(400..=499) => self.client_errors += 1,
            Some(_) => self.server_errors += 1,
            None => self.transport_errors += 1,
        }
    }
}

fn report(drill: &str, t: &Tally, lost: u64, duplicated: u64, audit: &divine_heroes::audit::AuditReport) {
    eprintln!(
        "drill {drill}: sent {}, 2xx {}, 4xx {}, 5xx {}, transport errors {}, lost {lost}, duplicated {duplicated}, \
         ledger mismatches {} ({} players, {} ledger entries)",
        t.sent,
        t.ok,
        t.client_errors,
        t.server_errors,
        t.transport_errors,
        audit.mismatches,
        audit.players,
        audit.ledger_entries
    );
}

/// How many times each summon is in a player's ledger: the most entries any one
/// currency has for it (a summon moves several currencies, each once).
async fn summons_in_ledger(store: &DynStore, player_id: &str) -> HashMap<String, u64> {
    let mut per_currency: HashMap<(String, Currency), u64> = HashMap::new();
    let mut before = None;
    loop {
        let page = store.ledger(player_id, 500, before).await.expect("ledger");
        for e in page.items.iter().filter(|e| e.reason == LedgerReason::Summon) {
            *per_currency.entry((e.ref_id.clone(), e.currency)).or_insert(0) += 1;
        }
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    let mut seen: HashMap<String, u64> = HashMap::new();
    for ((summon, _), n) in per_currency {
        let most = seen.entry(summon).or_insert(0);
        *most = (*most).max(n);
    }
    seen
}

/// Players with plenty of divine essence, registered before the drill.
async fn funded_players(app: &TestApp, n: usize) -> Vec<(String, String)> {
    let mut players = Vec::new();
    for i in 0..n {
        let (token, id) = app.register(&format!("Driller{i}")).await;
        app.set_balance(&id, Currency::DivineEssence, 1_000_000).await;
        players.push((token, id));
    }
    players
}

/// Redis, the message broker here (`MQ_BACKEND=redis`), is killed under a
/// summon load and started again empty: its stream, consumer group and every
/// event it held are gone. Without a server restart, every summon's event is
/// consumed exactly once in the end: the consumer recreates its group and the
/// relay publishes again what was published and not yet consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_under_load_loses_no_event() {
    if !require_tool("redis-server") {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = redis_server(port, None);
    assert!(crate::common::redis_reachable_within(&url, Duration::from_secs(5)).await);
    let pool = deadpool_redis::Config::from_url(url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .expect("pool");
    let queue: Arc<dyn Queue> =
        Arc::new(RedisStreamQueue::new(pool, "drill:events".into(), "drill:consumers".into()).await.expect("queue"));
    let app = Arc::new(
        TestApp::spawn_full(StoreKind::Embedded, Role::All, |_| {}, Arc::new(SystemClock), Some(queue))
            .await
            .expect("embedded store"),
    );
    let players = funded_players(&app, 4).await;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let load: Vec<_> = players
        .iter()
        .enumerate()
        .map(|(p, (token, _))| {
            let (app, tally, token) = (app.clone(), tally.clone(), token.clone());
            tokio::spawn(async move {
                for i in 0..5_000 {
                    if started.elapsed() > Duration::from_secs(6) {
                        break;
                    }
                    let r = app.summon(&token, "divine", 1, &format!("drill-{p}-{i}")).await;
                    tally.lock().await.count(Some(r.status().as_u16()));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis = redis_server(port, None);
    assert!(crate::common::redis_reachable_within(&url, Duration::from_secs(5)).await, "Redis restarts");
    for task in load {
        task.await.expect("load task");
    }
    let tally = tally.lock().await.clone();
    let summons = tally.ok;
    assert_eq!(tally.ok, tally.sent, "a broker outage fails no write: {tally:?}");

    // Every summon's event applied once: one audit mark and one pull counted each.
    let store = &app.state.store;
    let mut last = (0, 0, u64::MAX);
    for _ in 0..300 {
        let audited = store.audit_count("gacha.summoned").await.expect("audit");
        let pulls: i64 = store.counters("gacha:divine:").await.expect("counters").iter().map(|(_, n)| n).sum();
        let unconsumed = store.unconsumed_len().await.expect("unconsumed");
        last = (audited, pulls, unconsumed);
        if audited >= summons && unconsumed == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (audited, pulls, unconsumed) = last;
    let audit = divine_heroes::audit::audit(store).await.expect("audit");
    let lost = summons.saturating_sub(audited);
    let duplicated = u64::try_from(pulls).unwrap_or(0).saturating_sub(summons);
    report("redis-restarted-empty", &tally, lost, duplicated, &audit);
    assert!(summons > 50, "the load ran through the outage: {summons} summons");
    assert_eq!((lost, duplicated), (0, 0), "every summon's event consumed exactly once");
    assert_eq!(pulls, i64::try_from(summons).unwrap(), "one pull counted per single summon");
    assert_eq!(unconsumed, 0, "nothing left waiting");
    assert!(audit.clean(), "{audit}");
    drop(redis);
}

/// MongoDB stops answering for 10 s under a summon load (a relay in front of it
/// holds every byte, as a hung server or a dead network would). Writes fail
/// within the store's bound with 503 and `Retry-After`; each client retries with
/// the same key until it gets its answer; afterwards every summon is in the
/// ledger exactly once and every ledger chains to its balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_stopped_for_10s_under_load_loses_and_doubles_nothing() {
    let url = crate::common::mongo_url();
    let target = url.trim_start_matches("mongodb://").split(['/', '?']).next().unwrap_or("127.0.0.1:27017").to_string();
    let relay = PausableRelay::start(target).await;
    let relayed = format!("mongodb://127.0.0.1:{}/?directConnection=true", relay.port);
    let bound = Duration::from_secs(1);
    let Some(store) = open_mongo_at(&relayed, bound).await else { return };
    let app = Arc::new(TestApp::spawn_on_store(store, Role::All, |_| {}, Arc::new(SystemClock), None));
    let players = funded_players(&app, 3).await;
    let tally = Arc::new(Mutex::new(Tally::default()));
    // Per key: the summon id its final answer named; and the slowest refusal.
    let answers = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let slowest_refusal = Arc::new(Mutex::new(Duration::ZERO));
    let started = Instant::now();
    let load: Vec<_> = players
        .iter()
        .enumerate()
        .map(|(p, (token, id))| {
            let (app, tally, answers, slowest) = (app.clone(), tally.clone(), answers.clone(), slowest_refusal.clone());
            let (token, id) = (token.clone(), id.clone());
            tokio::spawn(async move {
                for i in 0..5_000 {
                    if started.elapsed() > Duration::from_secs(15) {
                        break;
                    }
                    let key = format!("outage-{p}-{i}");
                    let mut answered = None;
                    for _attempt in 0..200 {
                        let sent = Instant::now();
                        let r = app
                            .http
                            .post(app.url("/api/gacha/summon"))
                            .bearer_auth(&token)
                            .header("Idempotency-Key", &key)
                            .json(&serde_json::json!({"banner_id": "divine", "count": 1}))
                            .timeout(Duration::from_secs(20))
                            .send()
                            .await;
                        let took = sent.elapsed();
                        tally.lock().await.count(r.as_ref().ok().map(|r| r.status().as_u16()));
                        match r {
                            Ok(r) if r.status() == 200 => {
                                let body: Value = r.json().await.expect("receipt");
                                answered = Some(body["summon_id"].as_str().expect("summon id").to_string());
                                break;
                            }
                            Ok(r) if r.status() == 503 => {
                                assert!(r.headers().contains_key("retry-after"), "a 503 says when to retry");
                                let mut s = slowest.lock().await;
                                *s = (*s).max(took);
                            }
                            Ok(r) => {
                                panic!("unexpected {} for {key}: {}", r.status(), r.text().await.unwrap_or_default())
                            }
                            Err(_) => {}
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    let summon = answered.unwrap_or_else(|| panic!("{key} never got its answer"));
                    answers.lock().await.push((id.clone(), summon));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    relay.set_paused(true);
    tokio::time::sleep(Duration::from_secs(10)).await;
    relay.set_paused(false);
    for task in load {
        task.await.expect("load task");
    }
    let tally = tally.lock().await.clone();
    let answers = answers.lock().await.clone();
    let slowest = *slowest_refusal.lock().await;

    let store = &app.state.store;
    let (mut lost, mut duplicated) = (0, 0);
    let mut in_ledger = HashMap::new();
    for (_, id) in &players {
        in_ledger.extend(summons_in_ledger(store, id).await);
    }
    for (_, summon) in &answers {
        match in_ledger.get(summon).copied().unwrap_or(0) {
            0 => lost += 1,
            1 => {}
            n => duplicated += n - 1,
        }
    }
    let unanswered = in_ledger.len() as u64 - answers.len() as u64;
    let audit = divine_heroes::audit::audit(store).await.expect("audit");
    report("mongodb-stopped-10s", &tally, lost, duplicated, &audit);
    eprintln!("drill mongodb-stopped-10s: slowest 503 {slowest:?} (bound {bound:?})");
    assert!(tally.server_errors > 0, "the outage was felt: {tally:?}");
    assert!(slowest < bound + Duration::from_secs(2), "refusals came within the bound, slowest {slowest:?}");
    assert_eq!((lost, duplicated), (0, 0), "every answered summon in the ledger exactly once");
    assert_eq!(unanswered, 0, "no summon applied that no client was told of");
    assert!(audit.clean(), "{audit}");
}
