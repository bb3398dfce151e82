//! The deployment end to end: one api, two battle and two gacha processes of
//! the real binary sharing one MongoDB-compatible server and one Redis, nginx in
//! front with the repository's config (upstream hosts rewritten to 127.0.0.1),
//! and a player's whole journey through nginx, with one battle process killed
//! mid-way and no failed request.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::procs::{free_port, require_tool, start_role, wait_ready, Proc};
use crate::common::{Scratch, REDIS_URL};
use serde_json::{json, Value};

struct Edge {
    http: reqwest::Client,
    base: String,
    failures: Vec<String>,
}

impl Edge {
    /// One request through nginx; any 5xx or transport error counts as a failure.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        match r.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.json::<Value>().await.unwrap_or(Value::Null);
                if status >= 500 {
                    self.failures.push(format!("{method} {path}: {status} {body}"));
                }
                (status, body)
            }
            Err(e) => {
                self.failures.push(format!("{method} {path}: {e}"));
                (0, Value::Null)
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_players_journey_through_nginx_survives_a_dead_battle_process() {
    if !require_tool("nginx") {
        return;
    }
    // A MongoDB-compatible server of its own: this test kills a process that may
    // be mid-transaction (its relay and consumers run all the time), and
    // SecantusDB never aborts an abandoned transaction (a replica set does after
    // transactionLifetimeLimitSeconds), which held up every later test on the
    // shared server. Redis is shared (per-test names).
    let mongo_dir = tempfile::tempdir().unwrap();
    let Some((_mongo, mongo_url)) = crate::common::procs::private_mongo(mongo_dir.path()).await else { return };
    let scratch = tempfile::tempdir().unwrap();
    let names = Scratch::new();
    let env = vec![
        ("MONGO_URL", mongo_url),
        ("MONGO_DB", format!("dh_e2e_{}", uuid::Uuid::new_v4().simple())),
        ("CACHE_PREFIX", names.prefix.clone()),
        ("REDIS_ENABLED", "true".to_string()),
        ("REDIS_URL", REDIS_URL.to_string()),
        ("JWT_SECRET", "e2e-shared-secret-for-all-five-processes".to_string()),
        ("METRICS_ENABLED", "true".to_string()),
        ("TRUSTED_PROXIES", "127.0.0.1".to_string()),
        ("RATE_LIMIT_REQUESTS", "100000".to_string()),
        ("AUTH_RATE_LIMIT_REQUESTS", "100000".to_string()),
    ];
    let api = start_role("api", &env, scratch.path()).await;
    let mut battle =
        vec![start_role("battle", &env, scratch.path()).await, start_role("battle", &env, scratch.path()).await];
    let gacha = [start_role("gacha", &env, scratch.path()).await, start_role("gacha", &env, scratch.path()).await];

    let edge_port = free_port();
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/nginx.conf"))
        .unwrap()
        .replace("server api:8001", &format!("server 127.0.0.1:{}", api.port))
        .replace(
            "server battle:8002",
            &format!(
                "server 127.0.0.1:{} max_fails=2 fail_timeout=5s;\n        server 127.0.0.1:{}",
                battle[0].port, battle[1].port
            ),
        )
        .replace(
            "server gacha:8003",
            &format!(
                "server 127.0.0.1:{} max_fails=2 fail_timeout=5s;\n        server 127.0.0.1:{}",
                gacha[0].port, gacha[1].port
            ),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{edge_port};"))
        .replace("pid /tmp/nginx.pid;", &format!("pid {}/nginx.pid;", scratch.path().display()));
    let conf_path = scratch.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.args(["-c", conf_path.to_str().unwrap(), "-p", scratch.path().to_str().unwrap(), "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _nginx = Proc::spawn_tool(cmd, edge_port);
    wait_ready(&format!("http://127.0.0.1:{edge_port}/nginx-health")).await;

    let mut edge =
        Edge { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{edge_port}"), failures: Vec::new() };
    // Accounts (api role).
    let (s, reg) = edge
        .call(
            "POST",
            "/api/auth/register",
            None,
            None,
            Some(json!({"username": "Wanderer", "password": "journey-pass-1"})),
        )
        .await;
    assert_eq!(s, 201, "{reg}");
    let token = reg["token"].as_str().unwrap().to_string();
    let (s, rival) = edge
        .call(
            "POST",
            "/api/auth/register",
            None,
            None,
            Some(json!({"username": "Rival", "password": "journey-pass-2"})),
        )
        .await;
    assert_eq!(s, 201);
    let rival_id = rival["player"]["id"].as_str().unwrap().to_string();
    let (s, _) = edge
        .call(
            "POST",
            "/api/auth/login",
            None,
            None,
            Some(json!({"username": "wanderer", "password": "journey-pass-1"})),
        )
        .await;
    assert_eq!(s, 200);
    // Summons (gacha role, two processes).
    for i in 0..4 {
        let (s, r) = edge
            .call(
                "POST",
                "/api/gacha/summon",
                Some(&token),
                Some(&format!("pull-{i}")),
                Some(json!({"banner_id": "divine", "count": 1})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, h) = edge.call("GET", "/api/gacha/history", Some(&token), None, None).await;
    assert_eq!((s, h["items"].as_array().map(Vec::len)), (200, Some(4)));
    // Fights (battle role), then one battle process dies mid-way.
    let mut fights = 0;
    for i in 0..6 {
        if i == 3 {
            battle[0].kill();
        }
        let (s, r) = edge
            .call("POST", "/api/battle/campaign/1/1/fight", Some(&token), Some(&format!("fight-{i}")), Some(json!({})))
            .await;
        assert_eq!(s, 200, "{r}");
        fights += 1;
    }
    let (s, camp) = edge.call("GET", "/api/battle/campaign", Some(&token), None, None).await;
    assert_eq!(s, 200);
    assert!(camp["stamina"].as_i64().unwrap() <= 100 - 6 * fights);
    // Arena against the other player, and its replay.
    let (s, opp) = edge.call("GET", "/api/battle/arena/opponents", Some(&token), None, None).await;
    assert_eq!(s, 200);
    assert!(opp["items"].as_array().unwrap().iter().any(|o| o["opponent_id"] == rival_id.as_str()));
    let (s, duel) = edge
        .call("POST", "/api/battle/arena/challenge", Some(&token), Some("duel"), Some(json!({"opponent_id": rival_id})))
        .await;
    assert_eq!(s, 200, "{duel}");
    let (s, replay) = edge
        .call("GET", &format!("/api/battle/replays/{}", duel["battle_id"].as_str().unwrap()), Some(&token), None, None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(replay["battle"]["winner"], duel["winner"]);
    let (s, me) = edge.call("GET", "/api/player", Some(&token), None, None).await;
    assert_eq!(s, 200);
    assert_eq!(me["balances"]["arena_tickets"], 4);
    let (s, _) = edge.call("GET", "/api/leaderboards/arena", Some(&token), None, None).await;
    assert_eq!(s, 200);
    // Chat as Server-Sent Events through nginx: each event passed on as it
    // comes, and a quiet stream held open past the 10 s read timeout of the
    // other routes (the server's keep-alive comes every 15 s).
    let mut stream =
        edge.http.get(format!("{}/api/chat/world/stream", edge.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let opened = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await.expect("the stream opens");
    assert!(String::from_utf8_lossy(&opened.unwrap().unwrap()).contains(": connected"));
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (s, sent) = edge
        .call(
            "POST",
            "/api/chat/world",
            Some(&token),
            Some("edge-chat"),
            Some(json!({"text": "hello through the edge"})),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains("hello through the edge") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk()).await.expect("the message within 5 s");
        let chunk = chunk.expect("the stream stays open after 12 s of quiet").expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(&format!("id: {}", sent["id"].as_str().unwrap())), "{seen}");
    drop(stream);
    assert!(edge.failures.is_empty(), "failed requests: {:#?}", edge.failures);
    drop(battle);
}
