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
    let audit = crate::common::audit(store, chrono::Utc::now()).await;
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
    // A server of its own: the cut-off transactions must not stall other tests.
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = crate::common::procs::private_mongo(dir.path()).await else { return };
    let target = url.trim_start_matches("mongodb://").split(['/', '?']).next().unwrap_or_default().to_string();
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
    let audit = crate::common::audit(store, chrono::Utc::now()).await;
    report("mongodb-stopped-10s", &tally, lost, duplicated, &audit);
    eprintln!("drill mongodb-stopped-10s: slowest 503 {slowest:?} (bound {bound:?})");
    assert!(tally.server_errors > 0, "the outage was felt: {tally:?}");
    assert!(slowest < bound + Duration::from_secs(2), "refusals came within the bound, slowest {slowest:?}");
    assert_eq!((lost, duplicated), (0, 0), "every answered summon in the ledger exactly once");
    assert_eq!(unanswered, 0, "no summon applied that no client was told of");
    assert!(audit.clean(), "{audit}");
}

/// Runs a command of the binary against the same store as a server started
/// with `env` and `data_dir`; returns whether it succeeded and what it printed.
fn cli(args: &[&str], env: &[(&str, String)], data_dir: &std::path::Path) -> (bool, String) {
    let mut cmd = std::process::Command::new(crate::common::procs::BIN);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args(args).env("DATA_DIR", data_dir).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// One summon through HTTP: the status and the receipt's summon id, or `None`
/// when no answer came (the process died under it).
async fn summon_once(http: &reqwest::Client, base: &str, token: &str, key: &str) -> Option<(u16, Option<String>)> {
    let r = http
        .post(format!("{base}/api/gacha/summon"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&serde_json::json!({"banner_id": "divine", "count": 1}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    if status >= 500 {
        eprintln!("{key}: {status} {body}");
    }
    Some((status, body["summon_id"].as_str().map(str::to_string)))
}

/// The binary on an embedded store in `data`, with `n` registered players
/// granted plenty of divine essence (with the CLI, while the server is
/// stopped: the embedded file has one owner). Returns the server, its base URL
/// and the players' tokens.
async fn funded_binary(
    env: &[(&str, String)],
    data: &std::path::Path,
    name: &str,
    n: usize,
) -> (crate::common::procs::Proc, String, Vec<String>) {
    use crate::common::procs::{register, start_role};
    let http = reqwest::Client::new();
    let mut server = start_role("all", env, data).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let mut tokens = Vec::new();
    for i in 0..n {
        tokens.push(register(&http, &base, &format!("{name}{i}"), "drill-password-1").await);
    }
    server.kill();
    for i in 0..n {
        let to = format!("{}{i}", name.to_lowercase());
        let (ok, out) = cli(&["grant", "--to", &to, "--currency", "divine_essence", "--amount", "1000000"], env, data);
        assert!(ok, "grant: {out}");
    }
    let server = start_role("all", env, data).await;
    let base = format!("http://127.0.0.1:{}", server.port);
    (server, base, tokens)
}

/// The real binary killed with SIGKILL under a summon load, then started again:
/// every summon that was answered 200 is in the ledger exactly once; the ones
/// cut off without an answer, retried with their key, apply once; and the
/// integrity check (`divine-heroes audit`) passes.
///
/// The embedded store only. On MongoDB the same drill kills a client in the
/// middle of its transactions: MongoDB aborts such a transaction after
/// `transactionLifetimeLimitSeconds` (60 s) and other writers meanwhile get
/// retryable write conflicts, but the test server (SecantusDB 0.7) keeps the
/// abandoned transaction's locks for good and every later write on the server
/// hangs, so the drill would stall the rest of the suite there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_on_the_embedded_store() {
    use crate::common::procs::start_role;
    let data = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = vec![("SHUTDOWN_DELAY_SECS", "0".into()), ("RATE_LIMIT_REQUESTS", "1000000".into())];
    let http = reqwest::Client::new();
    let (mut server, mut base, tokens) = funded_binary(&env, data.path(), "Crasher", 4).await;

    let tally = Arc::new(Mutex::new(Tally::default()));
    // (token, key, summon id if answered 200)
    let outcomes = Arc::new(Mutex::new(Vec::<(String, String, Option<String>)>::new()));
    let load: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(p, token)| {
            let (http, base, token, tally, outcomes) =
                (http.clone(), base.clone(), token.clone(), tally.clone(), outcomes.clone());
            tokio::spawn(async move {
                for i in 0..5_000 {
                    let key = format!("crash-{p}-{i}");
                    let got = summon_once(&http, &base, &token, &key).await;
                    tally.lock().await.count(got.as_ref().map(|(s, _)| *s));
                    let answered = got.as_ref().and_then(|(s, id)| (*s == 200).then(|| id.clone()).flatten());
                    outcomes.lock().await.push((token.clone(), key, answered));
                    if got.is_none() {
                        break; // the process is gone
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for task in load {
        task.await.expect("load task");
    }
    let tally = tally.lock().await.clone();

    server = start_role("all", &env, data.path()).await;
    base = format!("http://127.0.0.1:{}", server.port);
    // The requests the kill cut off, retried with their keys.
    let mut answers: Vec<String> = Vec::new();
    for (token, key, answered) in outcomes.lock().await.iter() {
        if let Some(id) = answered {
            answers.push(id.clone());
            continue;
        }
        let (status, id) = summon_once(&http, &base, token, key).await.expect("the restarted server answers");
        assert_eq!(status, 200, "the retry of {key} after the restart");
        answers.push(id.expect("a summon id"));
    }
    server.kill();

    let (ok, out) = cli(&["audit"], &env, data.path());
    assert!(ok, "divine-heroes audit: {out}");
    let store: DynStore = Arc::new(divine_heroes::store::embedded::EmbeddedStore::open(data.path()).unwrap());
    let mut in_ledger = HashMap::new();
    for id in store.player_ids(None, 100).await.unwrap() {
        in_ledger.extend(summons_in_ledger(&store, &id).await);
    }
    let (mut lost, mut duplicated) = (0, 0);
    for id in &answers {
        match in_ledger.get(id).copied().unwrap_or(0) {
            0 => lost += 1,
            1 => {}
            n => duplicated += n - 1,
        }
    }
    let audit = crate::common::audit(&store, chrono::Utc::now()).await;
    report("kill-9-embedded", &tally, lost, duplicated, &audit);
    assert!(tally.ok > 20, "the load ran before the kill: {tally:?}");
    assert_eq!((lost, duplicated), (0, 0), "acknowledged summons survive the kill, once each");
    assert_eq!(in_ledger.len(), answers.len(), "no summon applied that no client was told of");
    assert!(audit.clean(), "{audit}");
}

/// SIGTERM under a summon load, with more clients holding idle kept-alive
/// connections: readiness turns 503 at once; the load goes on for a second (a
/// load balancer noticing) and every idle client sends one more request during
/// the shutdown delay: all of them are answered, none gets a dropped
/// connection; the process exits 0 and the audit of its store passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_request() {
    let data = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = vec![("SHUTDOWN_DELAY_SECS", "2".into()), ("RATE_LIMIT_REQUESTS", "1000000".into())];
    let (mut server, base, tokens) = funded_binary(&env, data.path(), "Drainer", 4).await;
    // Idle clients, each holding one kept-alive connection.
    let idle: Vec<reqwest::Client> =
        (0..8).map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap()).collect();
    for c in &idle {
        assert_eq!(c.get(format!("{base}/health/live")).send().await.unwrap().status(), 200);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let load: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(p, token)| {
            let (base, token, tally, stop) = (base.clone(), token.clone(), tally.clone(), stop.clone());
            // One kept-alive connection per loaded client.
            let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            tokio::spawn(async move {
                for i in 0..20_000 {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    // Summons and profile reads, half each.
                    let r = if i % 2 == 0 {
                        summon_once(&http, &base, &token, &format!("drain-{p}-{i}")).await.map(|(s, _)| s)
                    } else {
                        http.get(format!("{base}/api/player"))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .ok()
                            .map(|r| r.status().as_u16())
                    };
                    tally.lock().await.count(r);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ok = std::process::Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(ok.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 503, "readiness turns 503 as soon as the signal arrives");
    let mut idle_tally = Tally::default();
    for c in &idle {
        idle_tally.count(c.get(format!("{base}/health/live")).send().await.ok().map(|r| r.status().as_u16()));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in load {
        task.await.expect("load task");
    }
    let status = server.child.wait().unwrap();
    let mut tally = tally.lock().await.clone();
    tally.sent += idle_tally.sent;
    tally.ok += idle_tally.ok;
    tally.client_errors += idle_tally.client_errors;
    tally.server_errors += idle_tally.server_errors;
    tally.transport_errors += idle_tally.transport_errors;
    let store: DynStore = Arc::new(divine_heroes::store::embedded::EmbeddedStore::open(data.path()).unwrap());
    let audit = crate::common::audit(&store, chrono::Utc::now()).await;
    report("sigterm-under-load", &tally, 0, 0, &audit);
    assert!(status.success(), "exits 0 after the delay and the drain, got {status}");
    assert_eq!(idle_tally.ok, 8, "every idle kept-alive client answered: {idle_tally:?}");
    assert_eq!(tally.transport_errors, 0, "no request without an answer: {tally:?}");
    assert_eq!(tally.server_errors, 0, "{tally:?}");
    assert!(audit.clean(), "{audit}");
    server.kill();
}
