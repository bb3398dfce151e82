//! Redis stopped during a bounded load: no request fails, readiness reports it,
//! and once Redis is back the cache is used again without a restart.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::procs::{free_port, require_tool, Proc};
use crate::common::{StoreKind, TestApp};
use divine_heroes::platform::clock::SystemClock;
use divine_heroes::platform::config::Role;
use serde_json::Value;

fn start_redis(port: u16) -> Proc {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc::spawn_tool(cmd, port)
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
    let app = TestApp::spawn_with(
        StoreKind::Embedded,
        Role::All,
        |s| {
            s.redis_enabled = true;
            s.redis_url = url.clone();
            s.ready_timeout_ms = 300;
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
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
