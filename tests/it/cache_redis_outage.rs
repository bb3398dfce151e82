//! Redis stopped during a bounded load: no request fails, readiness reports it,
//! and once Redis is back the cache is used again without a restart. Redis
//! paused, or restarted with its data, while players write: no read after a
//! write that returned serves the balance from before it.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::common::procs::{free_port, redis_server, require_tool, Proc};
use crate::common::{StoreKind, TestApp};
use deadpool_redis::redis;
use divine_heroes::platform::cache::PlayerLookup;
use divine_heroes::platform::clock::SystemClock;
use divine_heroes::platform::config::Role;
use serde_json::Value;

fn start_redis(port: u16) -> Proc {
    redis_server(port, None)
}

fn start_persistent_redis(port: u16, dir: &std::path::Path) -> Proc {
    redis_server(port, Some(dir))
}

/// A private Redis that keeps its data, started and answering: its directory,
/// port, URL and process.
async fn persistent_redis() -> (tempfile::TempDir, u16, String, Proc) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let redis = start_persistent_redis(port, dir.path());
    assert!(crate::common::redis_reachable_within(&url, Duration::from_secs(5)).await);
    (dir, port, url, redis)
}

/// The `all` role on the embedded store with its cache on the Redis at `url`.
async fn app_on_redis(url: &str) -> TestApp {
    let url = url.to_string();
    let tweak = move |s: &mut divine_heroes::platform::config::Settings| {
        s.redis_enabled = true;
        s.redis_url = url;
        s.ready_timeout_ms = 300;
    };
    TestApp::spawn_with(StoreKind::Embedded, Role::All, tweak, Arc::new(SystemClock)).await.unwrap()
}

fn signal(proc: &Proc, sig: &str) {
    let ok = Command::new("kill").args([sig, &proc.child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

async fn catalog_hits(app: &TestApp) -> f64 {
    let text = app.get("/metrics/prometheus", None).await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("divine_heroes_cache_hit{") && l.contains("kind=\"catalog\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_no_request() {
    if !require_tool("redis-server") {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = start_redis(port);
    assert!(crate::common::redis_reachable_within(&url, Duration::from_secs(5)).await, "private Redis starts");
    let app = app_on_redis(&url).await;
    let (token, _) = app.register("Steady").await;
    let mut statuses = Vec::new();
    let mut degraded_seen = false;
    for i in 0..240 {
        if i == 60 {
            redis.kill();
        }
        if i == 160 {
            redis = start_redis(port);
            assert!(crate::common::redis_reachable_within(&url, Duration::from_secs(5)).await, "Redis restarts");
        }
        statuses.push(app.get("/api/player", Some(&token)).await.status().as_u16());
        statuses.push(app.get("/api/heroes/catalog", None).await.status().as_u16());
        statuses.push(app.get("/api/leaderboards/power", Some(&token)).await.status().as_u16());
        if i % 40 == 0 {
            // Six summons: within the starting divine essence whatever the pulls return.
            let r = app.summon(&token, "divine", 1, &format!("steady-{i}")).await;
            statuses.push(r.status().as_u16());
        }
        if i == 100 {
            let ready = app.get("/health/ready", None).await;
            assert_eq!(ready.status(), 200, "a Redis outage degrades, it does not unready");
            let body: Value = ready.json().await.unwrap();
            degraded_seen = body["checks"]["redis"]["status"] == "degraded";
        }
    }
    assert!(degraded_seen, "readiness reported the outage");
    let failed: Vec<_> = statuses.iter().filter(|&&s| s != 200).collect();
    assert!(failed.is_empty(), "{} of {} requests failed: {failed:?}", failed.len(), statuses.len());
    // Back in use without a restart: a read fills the cache, the next one hits.
    let mut back = false;
    for _ in 0..20 {
        app.get("/api/heroes/catalog", None).await;
        let before = catalog_hits(&app).await;
        app.get("/api/heroes/catalog", None).await;
        if catalog_hits(&app).await > before {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(back, "the cache is used again after Redis returns");
    let ready: Value = app.get("/health/ready", None).await.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "up");
}

fn pool(url: &str) -> deadpool_redis::Pool {
    deadpool_redis::Config::from_url(url).create_pool(Some(deadpool_redis::Runtime::Tokio1)).unwrap()
}

fn cached_version(found: PlayerLookup) -> Option<u64> {
    match found {
        PlayerLookup::Hit(p) => Some(p.version),
        PlayerLookup::Miss(_) => None,
    }
}

/// Two pods share a Redis that goes down and comes back with its data. A write
/// on pod A while it was away could not raise the player's mark, so the old copy
/// and the old mark both return; pod A fences before anything is served, and
/// pod B never serves the copy from before the write. Once fenced, the cache
/// works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_missed_is_fenced_before_any_pod_serves_the_old_copy() {
    use divine_heroes::platform::cache::Cache;
    if !require_tool("redis-server") {
        return;
    }
    let (dir, port, url, mut redis) = persistent_redis().await;
    let (a, b) =
        (Cache::new("fence", Some(pool(&url)), false, [60; 3]), Cache::new("fence", Some(pool(&url)), false, [60; 3]));
    let mut player =
        divine_heroes::game::player::Player::new("p-1".into(), "Fenced", "hash".into(), chrono::Utc::now());
    player.version = 1;
    let PlayerLookup::Miss(ticket) = b.player(&player.id).await else { panic!("nothing cached yet") };
    b.put_player(&Arc::new(player.clone()), ticket).await;
    assert_eq!(cached_version(a.player(&player.id).await), Some(1), "both pods serve the cached copy");

    redis.kill();
    player.version = 2;
    a.player_written(Arc::new(player.clone())).await;
    assert!(a.fence_owed(), "the write could not reach Redis");
    redis = start_persistent_redis(port, dir.path());
    assert!(crate::common::redis_reachable_within(&url, Duration::from_secs(5)).await, "Redis restarts");
    let mut kept = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let old: Option<String> = redis::cmd("GET").arg("fence:player:p-1").query_async(&mut kept).await.unwrap();
    assert!(old.is_some_and(|v| v.contains("\"version\":1")), "Redis came back with the old copy");

    // Pod A's background retry pays the fence without any request on pod A.
    for _ in 0..50 {
        if !a.fence_owed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!a.fence_owed(), "the fence is raised once Redis is back");
    assert_eq!(cached_version(b.player(&player.id).await), None, "pod B does not serve the copy from before the write");
    assert_eq!(cached_version(a.player(&player.id).await), None, "nor does pod A");

    // The cache is in use again: a later write caches its copy for both pods.
    player.version = 3;
    a.player_written(Arc::new(player.clone())).await;
    assert_eq!(cached_version(b.player(&player.id).await), Some(3));
    drop(redis);
}

/// The served balance after each write, through the HTTP API, while Redis is
/// paused (SIGSTOP) and while it is killed and restarted with its data: every
/// `GET /api/player` after a level-up returned shows the gold that level-up left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_balance_after_redis_pauses_or_returns_with_its_data() {
    if !require_tool("redis-server") {
        return;
    }
    let (dir, port, url, mut redis) = persistent_redis().await;
    let app = app_on_redis(&url).await;
    let (token, id) = app.register("Blinker").await;
    let mut gold = 50_000_000;
    app.set_balance(&id, divine_heroes::game::economy::Currency::Gold, gold).await;
    let (mut writes, mut stale) = (0, Vec::new());
    // 40 level-ups stay under the 1-star cap of level 50.
    for step in 0..40 {
        match step {
            8 => signal(&redis, "-STOP"),
            16 => signal(&redis, "-CONT"),
            24 => redis.kill(),
            32 => {
                redis = start_persistent_redis(port, dir.path());
                assert!(crate::common::redis_reachable_within(&url, Duration::from_secs(5)).await);
            }
            _ => {}
        }
        // A read first, so that the cache holds the current copy when Redis goes.
        let before: Value = app.get("/api/player", Some(&token)).await.json().await.unwrap();
        assert_eq!(before["balances"]["gold"], gold, "step {step}: the balance before the write");
        let r = app
            .post(
                "/api/heroes/kai_the_tempest/level-up",
                Some(&token),
                Some(&format!("blink-{step}")),
                serde_json::json!({"levels": 1}),
            )
            .await;
        assert_eq!(r.status(), 200, "step {step}: a Redis fault never fails a write");
        gold -= r.json::<Value>().await.unwrap()["level_up"]["gold_spent"].as_i64().unwrap();
        writes += 1;
        for read in 0..3 {
            let now: Value = app.get("/api/player", Some(&token)).await.json().await.unwrap();
            if now["balances"]["gold"] != gold {
                stale.push((step, read, now["balances"]["gold"].clone()));
            }
        }
    }
    eprintln!(
        "drill redis-paused-and-restarted-with-data: {writes} writes, {} reads after them, {} stale",
        writes * 3,
        stale.len()
    );
    assert_eq!(writes, 40);
    assert!(stale.is_empty(), "reads after a returned write served an older balance (step, read, gold): {stale:?}");
    assert!(app.metric_sum("divine_heroes_cache_hit").await > 0.0, "the cache was in use");
}
