//! Accounts, errors, limits, health and metrics over real HTTP.

use std::sync::Arc;

use crate::common::{StoreKind, TestApp};
use divine_heroes::platform::auth::TokenKeys;
use divine_heroes::platform::clock::{ManualClock, SystemClock};
use divine_heroes::platform::config::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn assert_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status for {code}");
    let body: Value = r.json().await.expect("error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

async fn register_login_and_profile(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (_, id) = app.register("Nova_1").await;
    let r = app.post("/api/auth/login", None, None, json!({"username": "NOVA_1", "password": "correct-horse-1"})).await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();

    let profile: Value = app.get("/api/player", Some(&token)).await.json().await.unwrap();
    assert_eq!(profile["id"], id.as_str());
    assert_eq!(profile["username"], "Nova_1");
    assert_eq!(
        profile["balances"],
        json!({"gold": 5000, "coins": 10000, "crystals": 300, "divine_essence": 10, "stamina": 100, "arena_tickets": 5, "arena_medals": 0, "guild_coins": 0})
    );
    let heroes: Vec<&str> =
        profile["heroes"].as_array().unwrap().iter().map(|h| h["hero_id"].as_str().unwrap()).collect();
    assert_eq!(heroes.len(), 3);
    for h in ["marcus_the_shield", "soren_the_flame", "kai_the_tempest"] {
        assert!(heroes.contains(&h), "{h} in {heroes:?}");
    }
    assert_eq!(profile["team"], json!(["marcus_the_shield", "soren_the_flame", "kai_the_tempest", null, null, null]));
    // Marcus 855, Soren 90+540+140+100 = 870, Kai 100+510+160+115 = 885
    assert_eq!(profile["team_power"], 855 + 870 + 885);
    assert!(profile.get("password_hash").is_none() && !profile.to_string().contains("argon2"));

    let wrong =
        app.post("/api/auth/login", None, None, json!({"username": "nova_1", "password": "not-the-password"})).await;
    assert_error(wrong, 401, "INVALID_CREDENTIALS").await;
    let unknown =
        app.post("/api/auth/login", None, None, json!({"username": "nobody", "password": "whatever-123"})).await;
    assert_error(unknown, 401, "INVALID_CREDENTIALS").await;
    let taken =
        app.post("/api/auth/register", None, None, json!({"username": "nOvA_1", "password": "another-pass"})).await;
    assert_error(taken, 409, "USERNAME_TAKEN").await;
}

async fn bad_input_is_a_4xx_with_the_error_shape(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let raw = |body: &'static str| {
        app.http.post(app.url("/api/auth/register")).header("content-type", "application/json").body(body).send()
    };
    assert_error(raw("{\"username\": ").await.unwrap(), 400, "MALFORMED_JSON").await;
    assert_error(raw("{\"username\": \"abc\"}").await.unwrap(), 422, "VALIDATION_FAILED").await;
    assert_error(raw("{\"username\": 5, \"password\": \"abcdefgh\"}").await.unwrap(), 422, "VALIDATION_FAILED").await;
    let long = app
        .post("/api/auth/register", None, None, json!({"username": "a".repeat(200), "password": "long-enough"}))
        .await;
    let body = assert_error(long, 422, "VALIDATION_FAILED").await;
    assert_eq!(body["error"]["details"]["field"], "username");
    let short = app.post("/api/auth/register", None, None, json!({"username": "shorty", "password": "abc"})).await;
    assert_error(short, 422, "VALIDATION_FAILED").await;
    let bad_chars =
        app.post("/api/auth/register", None, None, json!({"username": "no spaces!", "password": "long-enough"})).await;
    assert_error(bad_chars, 422, "VALIDATION_FAILED").await;
    let text = app
        .http
        .post(app.url("/api/auth/register"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_error(text, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    assert_error(app.get("/api/player", None).await, 401, "UNAUTHORIZED").await;
    assert_error(app.get("/api/player", Some("not.a.token")).await, 401, "INVALID_TOKEN").await;
    let forged = TokenKeys::new(&"someone-else's-secret-0123456789".to_string().into(), 3600);
    let (t, _) = forged.issue("any-player", 0, app.state.clock.now()).unwrap();
    assert_error(app.get("/api/player", Some(&t)).await, 401, "INVALID_TOKEN").await;
    let (expired, _) =
        app.state.tokens.issue("any-player", 0, app.state.clock.now() - chrono::Duration::days(2)).unwrap();
    assert_error(app.get("/api/player", Some(&expired)).await, 401, "TOKEN_EXPIRED").await;
    assert_error(app.get("/api/nowhere", None).await, 404, "NOT_FOUND").await;
    assert_error(
        app.get("/api/player/ledger?limit=1000", Some(&app.register("Limits").await.0)).await,
        422,
        "VALIDATION_FAILED",
    )
    .await;
}

on_both_stores!(register_login_and_profile, bad_input_is_a_4xx_with_the_error_shape);

/// A token lives exactly its TTL on the server's own clock, whatever today's
/// date: checked at a manual time years in the past and years in the future.
async fn a_token_lives_its_ttl_on_the_servers_clock(kind: StoreKind) {
    for issued_at in ["2019-03-01T12:00:00Z", "2041-07-15T23:59:30Z"] {
        let t = issued_at.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let clock = ManualClock::new(t);
        let Some(app) = TestApp::spawn_with(kind, Role::All, |s| s.jwt_ttl_secs = 3600, Arc::new(clock.clone())).await
        else {
            return;
        };
        let r =
            app.post("/api/auth/register", None, None, json!({"username": "Timely", "password": "on-time-123"})).await;
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_string();
        let expires_at = body["expires_at"].as_str().map(|e| e.parse::<chrono::DateTime<chrono::Utc>>().unwrap());
        assert_eq!(expires_at, Some(t + chrono::Duration::seconds(3600)), "{body}");
        assert_eq!(app.get("/api/player", Some(&token)).await.status(), 200, "fresh at {issued_at}");
        clock.advance(chrono::Duration::seconds(3600 - 1));
        assert_eq!(app.get("/api/player", Some(&token)).await.status(), 200, "valid at T + TTL - 1 s");
        clock.advance(chrono::Duration::seconds(2));
        assert_error(app.get("/api/player", Some(&token)).await, 401, "TOKEN_EXPIRED").await;
    }
}

on_both_stores!(a_token_lives_its_ttl_on_the_servers_clock);

/// A well-signed token whose player does not exist is refused on every route
/// that reads the caller, lists included (not answered with an empty page).
async fn a_token_for_a_missing_player_is_refused_everywhere(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (ghost, _) = app.state.tokens.issue("no-such-player", 0, app.state.clock.now()).unwrap();
    for path in ["/api/player", "/api/player/ledger", "/api/gacha/history", "/api/heroes", "/api/gacha/pity"] {
        assert_error(app.get(path, Some(&ghost)).await, 401, "INVALID_TOKEN").await;
    }
}

/// HEAD is answered wherever GET is, health checks included: the same status
/// and headers, no body; a path that does not exist stays a 404.
async fn head_is_answered_wherever_get_is(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, _) = app.register("Header").await;
    let client = reqwest::Client::new();
    for (path, auth) in [("/health/live", false), ("/health/ready", false), ("/api/player", true)] {
        let mut req = client.head(app.url(path));
        if auth {
            req = req.bearer_auth(&token);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "HEAD {path}");
        assert_eq!(
            r.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "HEAD {path} has GET's headers"
        );
        assert!(r.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }
    // On the wire: the headers end the answer (a body would corrupt a kept-alive connection).
    let raw = tokio::task::spawn_blocking({
        let addr = app.base.trim_start_matches("http://").to_string();
        move || {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.write_all(b"HEAD /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer).unwrap();
            String::from_utf8(answer).unwrap()
        }
    })
    .await
    .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete header block");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "", "no body after the headers");
    assert_eq!(client.head(app.url("/api/nowhere")).send().await.unwrap().status(), 404);
    // A route that only takes POST does not answer HEAD as if it were a GET.
    let post_only = client.head(app.url("/api/gacha/summon")).bearer_auth(&token).send().await.unwrap().status();
    assert!(post_only.is_client_error(), "HEAD on a POST route: {post_only}");
}

on_both_stores!(a_token_for_a_missing_player_is_refused_everywhere, head_is_answered_wherever_get_is);

#[tokio::test]
async fn the_sixth_request_in_a_window_is_refused() {
    let app = TestApp::spawn_with(
        StoreKind::Embedded,
        Role::All,
        |s| {
            s.rate_limit_requests = 5;
            s.rate_limit_window = 60;
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let before = app.metric_sum("divine_heroes_rate_limit_exceeded").await;
    for i in 0..5 {
        let r = app.get("/api/gacha/banners", None).await;
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.headers()["x-ratelimit-limit"], "5");
        assert_eq!(r.headers()["x-ratelimit-remaining"], (4 - i).to_string().as_str());
    }
    let r = app.get("/api/gacha/banners", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "retry after {retry}");
    assert_error(r, 429, "RATE_LIMITED").await;
    // Health and metrics are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/health/live", None).await.status(), 200);
        assert_eq!(app.get("/health/ready", None).await.status(), 200);
    }
    assert!(app.metric_sum("divine_heroes_rate_limit_exceeded").await >= before + 1.0);
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let app = TestApp::spawn_with(
        StoreKind::Embedded,
        Role::All,
        |s| {
            s.rate_limit_requests = 2;
            // A range, as a cluster's proxies come from one.
            s.trusted_proxies = "10.0.0.0/8, 127.0.0.0/8".into();
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let get = |ip: &'static str| app.http.get(app.url("/api/gacha/banners")).header("x-forwarded-for", ip).send();
    // Each forwarded client has its own bucket behind the trusted proxy, also
    // when a second proxy of the trusted range stands between (the right-most
    // untrusted hop is the client).
    for ip in ["203.0.113.1", "203.0.113.2, 10.1.2.3"] {
        assert_eq!(get(ip).await.unwrap().status(), 200);
        assert_eq!(get(ip).await.unwrap().status(), 200);
        assert_eq!(get(ip).await.unwrap().status(), 429);
    }
    let untrusted =
        TestApp::spawn_with(StoreKind::Embedded, Role::All, |s| s.rate_limit_requests = 2, Arc::new(SystemClock))
            .await
            .unwrap();
    let get =
        |ip: &'static str| untrusted.http.get(untrusted.url("/api/gacha/banners")).header("x-forwarded-for", ip).send();
    assert_eq!(get("198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(get("198.51.100.2").await.unwrap().status(), 200);
    assert_eq!(get("198.51.100.3").await.unwrap().status(), 429, "a spoofed header does not buy a new bucket");
}

#[tokio::test]
async fn login_has_a_stricter_bucket() {
    let app =
        TestApp::spawn_with(StoreKind::Embedded, Role::All, |s| s.auth_rate_limit_requests = 3, Arc::new(SystemClock))
            .await
            .unwrap();
    for _ in 0..3 {
        let r = app.post("/api/auth/login", None, None, json!({"username": "ghost", "password": "whatever-123"})).await;
        assert_eq!(r.status(), 401);
    }
    let r = app.post("/api/auth/login", None, None, json!({"username": "ghost", "password": "whatever-123"})).await;
    assert_error(r, 429, "RATE_LIMITED").await;
    assert_eq!(app.get("/api/gacha/banners", None).await.status(), 200, "other routes keep the general bucket");
}

#[tokio::test]
async fn metrics_are_404_unless_enabled() {
    let app = TestApp::spawn_with(StoreKind::Embedded, Role::All, |s| s.metrics_enabled = false, Arc::new(SystemClock))
        .await
        .unwrap();
    assert_error(app.get("/metrics", None).await, 404, "NOT_FOUND").await;
    assert_error(app.get("/metrics/prometheus", None).await, 404, "NOT_FOUND").await;
}

/// The six names of the operators' guide.
const PROMISED: [&str; 6] = [
    "divine_heroes_request_success",
    "divine_heroes_request_error",
    "divine_heroes_request_duration_ms",
    "divine_heroes_cache_hit",
    "divine_heroes_cache_miss",
    "divine_heroes_rate_limit_exceeded",
];

#[tokio::test]
async fn prometheus_exposition_has_the_promised_names_and_passes_promtool() {
    let app = TestApp::spawn(StoreKind::Embedded).await.unwrap();
    app.register("Scraped").await;
    app.get("/api/nowhere", None).await;
    let text = app.get("/metrics/prometheus", None).await.text().await.unwrap();
    for name in PROMISED {
        assert!(text.lines().any(|l| l.starts_with(name) && !l.starts_with('#')), "{name} missing");
    }
    assert!(text.contains("# TYPE divine_heroes_request_duration_ms histogram"));
    assert!(text.contains("route=\"/api/auth/register\""), "route pattern label");
    assert!(!text.contains("/api/nowhere"), "raw paths never become labels");
    let json: Value = app.get("/metrics", None).await.json().await.unwrap();
    assert!(json["divine_heroes_request_success"].as_array().is_some_and(|a| !a.is_empty()));

    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            // Exit 1 is a parse error: never acceptable. Exit 3 is naming lints only;
            // the operators' guide promised six names that break two of them (no
            // `_total` on counters, `_ms` in a name), so those and only those pass.
            match out.status.code() {
                Some(0) => {}
                Some(3) => {
                    for finding in report.lines().filter(|l| !l.trim().is_empty()) {
                        let promised = PROMISED.iter().any(|n| finding.starts_with(&format!("{n} ")));
                        let naming =
                            finding.contains("should have \"_total\" suffix") || finding.contains("abbreviated units");
                        assert!(promised && naming, "promtool finding beyond the promised names: {finding}");
                    }
                }
                _ => panic!("promtool rejected the exposition: {report}"),
            }
        }
        Err(e) if std::env::var_os("CI").is_some() => panic!("promtool is required in CI: {e}"),
        Err(e) => eprintln!("promtool not installed, skipping its check: {e}"),
    }
}

#[tokio::test]
async fn each_role_mounts_only_its_routes() {
    let gacha = TestApp::spawn_with(StoreKind::Embedded, Role::Gacha, |_| {}, Arc::new(SystemClock)).await.unwrap();
    let r = gacha.post("/api/auth/register", None, None, json!({"username": "Nope", "password": "long-enough"})).await;
    assert_error(r, 404, "NOT_FOUND").await;
    assert_eq!(gacha.get("/health/live", None).await.status(), 200);
    assert_eq!(gacha.get("/api/gacha/banners", None).await.status(), 200);
    let doc: Value = gacha.get("/api/openapi.json", None).await.json().await.unwrap();
    assert!(doc["paths"]["/api/gacha/summon"]["post"].is_object());
    assert!(doc["paths"].get("/api/auth/register").is_none());

    let api = TestApp::spawn_with(StoreKind::Embedded, Role::Api, |_| {}, Arc::new(SystemClock)).await.unwrap();
    assert_error(api.get("/api/gacha/banners", None).await, 404, "NOT_FOUND").await;
    let doc: Value = api.get("/api/openapi.json", None).await.json().await.unwrap();
    assert!(doc["paths"]["/api/auth/register"]["post"].is_object());
}

#[tokio::test]
async fn readiness_turns_503_when_draining() {
    let app = TestApp::spawn(StoreKind::Embedded).await.unwrap();
    let ready: Value = app.get("/health/ready", None).await.json().await.unwrap();
    assert_eq!(ready["checks"]["store"]["status"], "up");
    app.state.begin_shutdown();
    let r = app.get("/health/ready", None).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "shutting_down");
    assert_eq!(app.get("/health/live", None).await.status(), 200);
}

#[tokio::test]
async fn readiness_reports_an_unreachable_redis_without_failing() {
    let app = TestApp::spawn_with(
        StoreKind::Embedded,
        Role::All,
        |s| {
            s.redis_enabled = true;
            s.redis_url = "redis://127.0.0.1:1".into();
            s.ready_timeout_ms = 300;
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let r = app.get("/health/ready", None).await;
    assert_eq!(r.status(), 200, "the cache is optional: Redis down degrades, it does not unready");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["checks"]["redis"]["status"], "degraded");
}

/// OWASP API4 (unrestricted resource consumption) and API8 (security
/// misconfiguration): a body larger than any route needs is refused with a JSON
/// 413 before it is parsed; a client that never finishes its request head is
/// cut off; every response, errors included, carries the security headers.
#[tokio::test]
async fn api4_api8_bodies_are_small_slow_clients_are_cut_and_headers_are_set() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(StoreKind::Embedded).await.unwrap();
    let big = json!({"username": "x".repeat(20 * 1024), "password": "correct-horse-1"});
    let r = app.post("/api/auth/register", None, None, big).await;
    assert_error(r, 413, "PAYLOAD_TOO_LARGE").await;

    for (path, status) in [("/health/live", 200), ("/api/player", 401), ("/api/nowhere", 404)] {
        let r = app.get(path, None).await;
        assert_eq!(r.status().as_u16(), status, "{path}");
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"), "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }

    // Half a request head, then silence: the server gives up on it.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the slow client was cut off within 10 s");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(4), "after the request timeout, not at once");
}

/// OWASP API4 (unrestricted resource consumption), lists: no page is larger
/// than 100 items, whatever the client asks; a body sent to a route that takes
/// none is refused unread past 1 KiB.
async fn api4_pages_are_capped(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, _) = app.register("Pager").await;
    for path in ["/api/player/ledger", "/api/gacha/history", "/api/mail", "/api/leaderboards/power"] {
        for limit in ["0", "101", "1000000", "-1", "many"] {
            let r = app.get(&format!("{path}?limit={limit}"), Some(&token)).await;
            assert_eq!(r.status(), 422, "{path}?limit={limit}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "VALIDATION_FAILED", "{path}?limit={limit}: {e}");
        }
        assert_eq!(app.get(&format!("{path}?limit=100"), Some(&token)).await.status(), 200, "{path}");
    }
    let padding = json!({"padding": "x".repeat(2048)});
    let r = app.post("/api/battle/campaign/1/1/fight", Some(&token), Some("padded"), padding).await;
    assert_error(r, 413, "PAYLOAD_TOO_LARGE").await;
}

on_both_stores!(api4_pages_are_capped);

/// OWASP API6 (sensitive business flows), every value a client could send that
/// the server decides (the review is in the README's Security section): a
/// fight's stars, win, seed and rewards; a claim's hours or day; a promotion's
/// stars; a summon's price, seed or count beyond 1 and 10; a level-up beyond
/// what gold pays; a sweep of an uncleared stage; a team of heroes not owned; a
/// fight on a locked stage; starting balances at registration. Each is refused
/// with a 4xx naming what was wrong, and nothing about the player changes.
async fn api6_the_server_decides_every_outcome(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Decider").await;
    let before = app.player(&id).await;
    let forged = json!({"stars": 3, "won": true, "seed": 7, "rewards": {"gold": 999_999}});
    for path in [
        "/api/battle/campaign/1/1/fight",
        "/api/idle/claim",
        "/api/daily-login/claim",
        "/api/heroes/kai_the_tempest/promote",
        "/api/mail/any/claim",
    ] {
        let r = app.post(path, Some(&token), Some("forged"), forged.clone()).await;
        let e = assert_error(r, 422, "VALIDATION_FAILED").await;
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("\"stars\"") && message.contains("\"rewards\""), "{path}: {e}");
    }
    for (path, body, status, what) in [
        ("/api/gacha/summon", json!({"banner_id": "premium", "count": 100}), 422, "count"),
        ("/api/gacha/summon", json!({"banner_id": "premium", "count": 1, "cost": 0}), 422, "cost"),
        ("/api/gacha/summon", json!({"banner_id": "premium", "count": 1, "seed": 7}), 422, "seed"),
        ("/api/heroes/kai_the_tempest/level-up", json!({"levels": 1_000_000}), 422, "levels"),
        ("/api/heroes/kai_the_tempest/level-up", json!({"levels": 1, "gold_cost": 0}), 422, "gold_cost"),
        ("/api/battle/campaign/1/1/sweep", json!({"times": 3}), 409, "swept"),
        ("/api/battle/campaign/1/1/sweep", json!({"times": 3, "stars": 3}), 422, "stars"),
        ("/api/battle/campaign/9/9/fight", json!({}), 409, "locked"),
    ] {
        let r = app.post(path, Some(&token), Some("forged-2"), body.clone()).await;
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let e: Value = r.json().await.unwrap();
        let message = e["error"]["message"].as_str().unwrap_or_default().to_lowercase();
        assert!(message.contains(what), "{path} {body}: {e}");
    }
    let r = app
        .http
        .put(app.url("/api/team"))
        .bearer_auth(&token)
        .json(&json!({"slots": ["zephyr_the_unowned", null, null, null, null, null]}))
        .send()
        .await
        .unwrap();
    assert_error(r, 422, "VALIDATION_FAILED").await;
    let rich = json!({"username": "Rich", "password": "correct-horse-1", "balances": {"crystals": 1_000_000}});
    let r = app.post("/api/auth/register", None, None, rich).await;
    let e = assert_error(r, 422, "VALIDATION_FAILED").await;
    assert!(e["error"]["message"].as_str().unwrap().contains("balances"), "{e}");

    let after = app.player(&id).await;
    assert_eq!((after.version, after.balances), (before.version, before.balances), "nothing was written");
}

on_both_stores!(api6_the_server_decides_every_outcome);

/// OWASP API2 (broken authentication): a token is refused when unsigned
/// (`alg: none`), signed with another algorithm or another key, expired, or
/// revoked; a logout revokes every token of the player at once, a password
/// change too (the old password stops working, the returned token works).
async fn api2_tokens_are_refused_unless_signed_current_and_unrevoked(kind: StoreKind) {
    use base64::Engine;
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, id) = app.register("Guarded").await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let now = app.state.clock.now().timestamp();
    let claims = json!({"sub": id, "iat": now, "exp": now + 3600, "ver": 0});
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    assert_error(app.get("/api/player", Some(&unsigned)).await, 401, "INVALID_TOKEN").await;
    let secret = divine_heroes::platform::config::DEV_JWT_SECRET.as_bytes();
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    assert_error(app.get("/api/player", Some(&hs512)).await, 401, "INVALID_TOKEN").await;
    let hs256 = |claims: &Value, secret: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let wrong_key = hs256(&claims, b"not-the-server-secret-but-just-as-long-0123");
    assert_error(app.get("/api/player", Some(&wrong_key)).await, 401, "INVALID_TOKEN").await;
    let expired = hs256(&json!({"sub": id, "iat": now - 7200, "exp": now - 3600, "ver": 0}), secret);
    assert_error(app.get("/api/player", Some(&expired)).await, 401, "TOKEN_EXPIRED").await;
    assert_eq!(
        app.get("/api/player", Some(&hs256(&claims, secret))).await.status(),
        200,
        "the same claims, rightly signed"
    );

    // Two sessions; a logout ends both.
    let second = app.login("Guarded").await;
    assert_eq!(app.get("/api/player", Some(&second)).await.status(), 200);
    let out = app.post("/api/auth/logout", Some(&token), None, json!({})).await;
    assert_eq!(out.status(), 204);
    for t in [&token, &second] {
        let e = assert_error(app.get("/api/player", Some(t)).await, 401, "INVALID_TOKEN").await;
        assert!(e["error"]["message"].as_str().unwrap().contains("revoked"), "{e}");
    }

    // A password change: the old password is required, then revokes and re-issues.
    let fresh = app.login("Guarded").await;
    let wrong = app
        .post(
            "/api/auth/password",
            Some(&fresh),
            None,
            json!({"old_password": "not-it-123", "new_password": "n3w-horse-2"}),
        )
        .await;
    assert_error(wrong, 401, "INVALID_CREDENTIALS").await;
    let changed = app
        .post(
            "/api/auth/password",
            Some(&fresh),
            None,
            json!({"old_password": "correct-horse-1", "new_password": "n3w-horse-2"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let renewed = changed.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    assert_error(app.get("/api/player", Some(&fresh)).await, 401, "INVALID_TOKEN").await;
    assert_eq!(app.get("/api/player", Some(&renewed)).await.status(), 200, "the returned token works");
    let old =
        app.post("/api/auth/login", None, None, json!({"username": "Guarded", "password": "correct-horse-1"})).await;
    assert_error(old, 401, "INVALID_CREDENTIALS").await;
    let new = app.post("/api/auth/login", None, None, json!({"username": "Guarded", "password": "n3w-horse-2"})).await;
    assert_eq!(new.status(), 200);
}

on_both_stores!(api2_tokens_are_refused_unless_signed_current_and_unrevoked);

/// With Redis on, two server processes share one client's budget (a budget that
/// grew with the replica count would not be a limit); a Redis that does not
/// answer falls back to each process's own limiter, counted in a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_share_one_budget() {
    if !crate::common::redis_reachable(crate::common::REDIS_URL).await {
        return;
    }
    let scratch = crate::common::Scratch::new();
    let spawn = |redis_url: &'static str| {
        let prefix = scratch.prefix.clone();
        TestApp::spawn_with(
            StoreKind::Embedded,
            Role::All,
            move |s| {
                s.redis_enabled = true;
                s.redis_url = redis_url.into();
                s.cache_prefix = prefix;
                s.rate_limit_requests = 4;
            },
            Arc::new(SystemClock),
        )
    };
    let (a, b) = (spawn(crate::common::REDIS_URL).await.unwrap(), spawn(crate::common::REDIS_URL).await.unwrap());
    let get = |app: &TestApp| app.http.get(app.url("/api/gacha/banners")).send();
    for app in [&a, &b, &a, &b] {
        assert_eq!(get(app).await.unwrap().status(), 200);
    }
    for app in [&a, &b] {
        let r = get(app).await.unwrap();
        assert_eq!(r.status(), 429, "the fifth request, on either process, is over the shared budget of 4");
        assert!(r.headers().contains_key("retry-after"));
    }

    // Redis away: each process decides alone, and says so.
    let lost = TestApp::spawn_with(
        StoreKind::Embedded,
        Role::All,
        |s| {
            s.redis_enabled = true;
            s.redis_url = "redis://127.0.0.1:1".into();
            s.rate_limit_requests = 2;
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    assert_eq!(get(&lost).await.unwrap().status(), 200);
    assert_eq!(get(&lost).await.unwrap().status(), 200);
    assert_eq!(get(&lost).await.unwrap().status(), 429, "the local limiter still limits");
    assert!(lost.metric_sum("divine_heroes_rate_limit_fallback_total").await >= 3.0);
}

/// OWASP API1 (object-level authorisation): every route that takes an id acts
/// only on the caller's own objects. Another player's battle replay, a hero the
/// caller does not own, a mail that is not in the caller's box: all 404, and
/// nothing changes for either player.
async fn api1_no_route_reaches_another_players_objects(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (owner, owner_id) = app.register("Owner").await;
    let (intruder, _) = app.register("Intruder").await;
    let fight = app.post("/api/battle/campaign/1/1/fight", Some(&owner), Some("owner-fight"), json!({})).await;
    assert_eq!(fight.status(), 200);
    let battle_id = fight.json::<Value>().await.unwrap()["battle_id"].as_str().unwrap().to_string();
    assert_eq!(app.get(&format!("/api/battle/replays/{battle_id}"), Some(&owner)).await.status(), 200);
    assert_error(app.get(&format!("/api/battle/replays/{battle_id}"), Some(&intruder)).await, 404, "NOT_FOUND").await;

    let owners_heroes: Value = app.get("/api/heroes", Some(&owner)).await.json().await.unwrap();
    let owners_record = app.player(&owner_id).await;
    let intruders_heroes: Value = app.get("/api/heroes", Some(&intruder)).await.json().await.unwrap();
    let own = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|h| h["hero_id"].as_str().unwrap().to_string()).collect()
    };
    let catalog: Value = app.get("/api/heroes/catalog", None).await.json().await.unwrap();
    let not_owned = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .find(|id| !own(&intruders_heroes).contains(id))
        .expect("a hero the intruder lacks");
    let r = app
        .post(&format!("/api/heroes/{not_owned}/level-up"), Some(&intruder), Some("not-mine"), json!({"levels": 1}))
        .await;
    assert_error(r, 404, "NOT_FOUND").await;
    let r = app.post("/api/mail/someone-elses-mail/claim", Some(&intruder), Some("not-my-mail"), json!({})).await;
    assert_error(r, 404, "NOT_FOUND").await;
    let after: Value = app.get("/api/heroes", Some(&owner)).await.json().await.unwrap();
    assert_eq!(own(&after), own(&owners_heroes), "the owner's heroes are untouched");
    let owner_after = app.player(&owner_id).await;
    assert_eq!((owner_after.version, owner_after.balances), (owners_record.version, owners_record.balances));
}

/// OWASP API3 (object property level): no response carries a private field of
/// anyone (password hash, token version, another player's balances), and a
/// body with a field the route does not know is refused, not half-read.
async fn api3_no_private_field_leaves_and_unknown_fields_are_refused(kind: StoreKind) {
    let Some(app) = TestApp::spawn(kind).await else { return };
    let (token, _) = app.register("Private").await;
    let (_, _) = app.register("Neighbour").await;
    let mut bodies = Vec::new();
    for path in [
        "/api/player",
        "/api/heroes",
        "/api/leaderboards/power",
        "/api/leaderboards/arena",
        "/api/battle/arena/opponents",
        "/api/battle/arena",
        "/api/mail",
        "/api/player/ledger",
    ] {
        let r = app.get(path, Some(&token)).await;
        assert_eq!(r.status(), 200, "{path}");
        bodies.push((path, r.text().await.unwrap()));
    }
    for (path, body) in &bodies {
        for private in ["password", "argon2", "token_version", "username_lower", "arena_offer"] {
            assert!(!body.contains(private), "{path} leaks {private}: {body}");
        }
        if *path != "/api/player" && *path != "/api/player/ledger" {
            assert!(!body.contains("\"balances\""), "{path} shows balances: {body}");
        }
    }
    for (path, body) in [
        ("/api/battle/arena/challenge", json!({"opponent_id": "bot:0", "rating": 0})),
        ("/api/gacha/summon", json!({"banner_id": "divine", "count": 1, "free": true})),
        (
            "/api/auth/password",
            json!({"old_password": "correct-horse-1", "new_password": "n3w-horse-2", "admin": true}),
        ),
    ] {
        let r = app.post(path, Some(&token), Some("unknown-field"), body).await;
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    assert_eq!(app.get("/api/player", Some(&token)).await.status(), 200, "the password was not changed");
}

on_both_stores!(
    api1_no_route_reaches_another_players_objects,
    api3_no_private_field_leaves_and_unknown_fields_are_refused
);

/// Failed logins for one username back off exponentially (after three free
/// ones: 1 s, 2 s, 4 s ...), on the server's clock and for every pod (the count
/// is on the player record); a successful login clears them.
async fn failed_logins_back_off_exponentially(kind: StoreKind) {
    let clock = ManualClock::new(chrono::Utc::now());
    let Some(app) = TestApp::spawn_with(kind, Role::All, |_| {}, Arc::new(clock.clone())).await else { return };
    app.register("Guessed").await;
    let login = |password: &'static str| {
        app.post("/api/auth/login", None, None, json!({"username": "Guessed", "password": password}))
    };
    for _ in 0..4 {
        assert_error(login("wrong-guess-1").await, 401, "INVALID_CREDENTIALS").await;
    }
    // The fourth failure set a 1 s wait: even the right password waits.
    let r = login("correct-horse-1").await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_error(r, 429, "RATE_LIMITED").await;
    clock.advance(chrono::Duration::seconds(1));
    assert_error(login("wrong-guess-1").await, 401, "INVALID_CREDENTIALS").await;
    let r = login("wrong-guess-1").await;
    assert_eq!(r.headers()["retry-after"], "2", "the wait doubles");
    assert_error(r, 429, "RATE_LIMITED").await;
    clock.advance(chrono::Duration::seconds(2));
    assert_eq!(login("correct-horse-1").await.status(), 200);
    for _ in 0..3 {
        assert_error(login("wrong-guess-1").await, 401, "INVALID_CREDENTIALS").await;
    }
    assert_eq!(login("correct-horse-1").await.status(), 200, "a success cleared the count: three free failures again");
}

on_both_stores!(failed_logins_back_off_exponentially);
