//! Chat over real HTTP: the message rules, the channels and who may use them,
//! mutes, reports, paged history and pruning on both stores; live delivery as
//! Server-Sent Events across two processes through Redis pub/sub.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{open_store, redis_reachable, Scratch, StoreKind, TestApp, REDIS_URL};
use chrono::{TimeZone, Utc};
use divine_heroes::ops::Command;
use divine_heroes::platform::clock::{Clock, ManualClock, SystemClock};
use divine_heroes::platform::config::{Role, Settings};
use serde_json::{json, Value};

async fn send(app: &TestApp, token: &str, channel: &str, key: &str, text: &str) -> (u16, Value) {
    let r = app.post(&format!("/api/chat/{channel}"), Some(token), Some(key), json!({"text": text})).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

fn code(b: &Value) -> &str {
    b["error"]["code"].as_str().unwrap_or("")
}

/// `a` asks `b` (by username) and `b` accepts.
async fn befriend(app: &TestApp, (a, a_id): (&str, &str), (b, b_name): (&str, &str)) {
    let r = app.post("/api/friends/requests", Some(a), Some("befriend"), json!({"username": b_name})).await;
    assert_eq!(r.status(), 200);
    let path = format!("/api/friends/requests/{a_id}/accept");
    assert_eq!(app.post(&path, Some(b), Some("befriend"), json!({})).await.status(), 200);
}

/// Messages are checked, masked, limited, sent once per key, paged; channels
/// are the caller's own; mutes and reports work; old messages are pruned.
async fn chat_rules_and_channels(kind: StoreKind) {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap());
    let Some(app) = TestApp::spawn_with(kind, Role::All, |_| {}, Arc::new(clock.clone())).await else { return };
    let (ann, ann_id) = app.register("ChatAnn").await;
    let (bob, bob_id) = app.register("ChatBob").await;
    let (cat, cat_id) = app.register("ChatCat").await;

    let (s, m) = send(&app, &ann, "world", "w1", "  hello, you ＩＤＩＯＴ  ").await;
    assert_eq!(s, 200, "{m}");
    assert_eq!((m["text"].as_str(), m["channel"].as_str()), (Some("hello, you *****"), Some("world")), "{m}");
    let r = app.post("/api/chat/world", Some(&ann), Some("w1"), json!({"text": "  hello, you ＩＤＩＯＴ  "})).await;
    assert_eq!(r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(r.json::<Value>().await.unwrap()["id"], m["id"], "one message per key");
    assert_eq!(code(&send(&app, &ann, "world", "w1", "something else").await.1), "IDEMPOTENCY_KEY_REUSED");
    for (text, why) in [("see cheapgold.com", "link"), ("me@example.org", "e-mail"), ("   ", "empty")] {
        let (s, b) = send(&app, &ann, "world", &format!("bad-{why}"), text).await;
        assert_eq!((s, code(&b)), (422, "VALIDATION_FAILED"), "{why}: {b}");
    }
    assert_eq!(send(&app, &ann, "world", "long", &"x".repeat(201)).await.0, 422);
    assert_eq!(send(&app, &ann, "trade", "t", "hi").await.0, 404);
    for i in 2..=6 {
        assert_eq!(send(&app, &ann, "world", &format!("w{i}"), &format!("message {i}")).await.0, 200);
    }
    // History: newest first, in pages.
    let page: Value = app.get("/api/chat/world?limit=4", Some(&bob)).await.json().await.unwrap();
    let texts: Vec<&str> = page["items"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["message 6", "message 5", "message 4", "message 3"]);
    let next = page["next_cursor"].as_str().unwrap();
    let rest: Value =
        app.get(&format!("/api/chat/world?limit=100&before={next}"), Some(&bob)).await.json().await.unwrap();
    let texts: Vec<&str> = rest["items"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["message 2", "hello, you *****"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    // 10 messages a minute per player: an eleventh sent at once is refused.
    let (chatty, _) = app.register("Chatty").await;
    for i in 0..10 {
        assert_eq!(send(&app, &chatty, "world", &format!("c{i}"), &format!("chat {i}")).await.0, 200);
    }
    let r = app.post("/api/chat/world", Some(&chatty), Some("c10"), json!({"text": "one more"})).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // Guild channel: members only, each guild its own.
    let (s, b) = send(&app, &bob, "guild", "g0", "anyone?").await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "{b}");
    app.set_balance(&bob_id, divine_heroes::game::economy::Currency::Gold, 100_000).await;
    let create = json!({"name": "Chatters", "tag": "chat", "join_policy": "open"});
    let r = app.post("/api/guilds", Some(&bob), Some("g"), create).await;
    let gid = r.json::<Value>().await.unwrap()["guild"]["guild"]["guild_id"].as_str().unwrap().to_string();
    assert_eq!(app.post(&format!("/api/guilds/{gid}/join"), Some(&cat), Some("j"), json!({})).await.status(), 200);
    let (s, gm) = send(&app, &bob, "guild", "g1", "guild only").await;
    assert_eq!((s, gm["channel"].as_str()), (200, Some(format!("guild:{gid}").as_str())));
    let theirs: Value = app.get("/api/chat/guild", Some(&cat)).await.json().await.unwrap();
    assert_eq!(theirs["items"][0]["text"], "guild only");
    assert_eq!(app.get("/api/chat/guild", Some(&ann)).await.status(), 403, "not a member");
    let world: Value = app.get("/api/chat/world?limit=100", Some(&ann)).await.json().await.unwrap();
    assert!(!world.to_string().contains("guild only"));

    // Direct messages: between friends only, and only the two see them.
    let (s, b) = send(&app, &ann, &format!("dm:{bob_id}"), "d0", "psst").await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "{b}");
    befriend(&app, (&ann, &ann_id), (&bob, "ChatBob")).await;
    let (s, dm) = send(&app, &ann, &format!("dm:{bob_id}"), "d1", "psst").await;
    assert_eq!(s, 200, "{dm}");
    let inbox: Value = app.get(&format!("/api/chat/dm:{ann_id}"), Some(&bob)).await.json().await.unwrap();
    assert_eq!(inbox["items"][0]["id"], dm["id"]);
    assert_eq!(app.get(&format!("/api/chat/dm:{ann_id}"), Some(&cat)).await.status(), 403);

    // Reports: of a message the reporter can see, once; operators list them.
    let report = |id: &str| format!("/api/chat/messages/{id}/report");
    let why = json!({"reason": "insults"});
    assert_eq!(app.post(&report(m["id"].as_str().unwrap()), Some(&bob), Some("r1"), why.clone()).await.status(), 200);
    let again = app.post(&report(m["id"].as_str().unwrap()), Some(&bob), Some("r2"), why.clone()).await;
    assert_eq!(again.status(), 409);
    let hidden = app.post(&report(dm["id"].as_str().unwrap()), Some(&cat), Some("r3"), why.clone()).await;
    assert_eq!(hidden.status(), 404, "Cat cannot see Ann and Bob's conversation");
    let listed = Command::ChatReports.run(&app.writer(), clock.now()).await.unwrap();
    assert!(listed.contains(m["id"].as_str().unwrap()) && listed.ends_with("1 reports"), "{listed}");

    // A muted player's message is refused until the mute ends or is lifted.
    let muted = Command::ChatMute { player: "chatcat".into(), hours: 2 }.run(&app.writer(), clock.now()).await;
    assert!(muted.unwrap().contains("muted"));
    let (s, b) = send(&app, &cat, "world", "m1", "let me talk").await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "{b}");
    Command::ChatUnmute { player: "ChatCat".into() }.run(&app.writer(), clock.now()).await.unwrap();
    assert_eq!(send(&app, &cat, "world", "m2", "thanks").await.0, 200);
    let _ = cat_id;

    // Messages go after the retention (the embedded store prunes; MongoDB's TTL index does it there).
    if matches!(kind, StoreKind::Embedded) {
        let later = clock.now() + chrono::Duration::days(31);
        let pruned = app.state.store.prune_chat(later, 1000).await.unwrap();
        assert!(pruned >= 19, "{pruned}");
        assert!(app.state.store.chat_history("world", None, 10).await.unwrap().is_empty());
        assert!(app.state.store.chat_message(m["id"].as_str().unwrap()).await.unwrap().is_none());
    }
}

/// Reads a Server-Sent Event stream until `n` messages arrived (bounded).
async fn read_events(resp: &mut reqwest::Response, n: usize, within: Duration) -> Vec<Value> {
    let mut buf = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while events.len() < n {
        let Ok(chunk) = tokio::time::timeout_at(deadline, resp.chunk()).await else { break };
        let Some(chunk) = chunk.expect("stream readable") else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                if frame.contains("event: message") {
                    events.push(serde_json::from_str(data).unwrap());
                }
            }
        }
    }
    events
}

async fn open_stream(app: &TestApp, token: &str, channel: &str) -> reqwest::Response {
    let mut r = app.http.get(app.url(&format!("/api/chat/{channel}/stream"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    // The first bytes come once the stream is subscribed.
    let first = tokio::time::timeout(Duration::from_secs(5), r.chunk()).await.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with(": connected"));
    r
}

/// Two processes on one MongoDB database and one Redis: a subscriber on one
/// receives, in order and each within a second, every message sent on the
/// other; a guild's messages reach its members only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_every_process_through_redis() {
    if !redis_reachable(REDIS_URL).await {
        assert!(std::env::var_os("CI").is_none(), "Redis is required in CI");
        return;
    }
    let Some(store) = open_store(StoreKind::Mongo).await else { return };
    let second = store.second_mongo_pod().await.expect("a second pod");
    let scratch = Scratch::new();
    let tweak = |prefix: String| {
        move |s: &mut Settings| {
            s.redis_enabled = true;
            s.redis_url = REDIS_URL.into();
            s.cache_prefix = prefix;
        }
    };
    let pod_a = TestApp::spawn_on_store(store, Role::Api, tweak(scratch.prefix.clone()), Arc::new(SystemClock), None);
    let pod_b = TestApp::spawn_on_store(second, Role::Api, tweak(scratch.prefix.clone()), Arc::new(SystemClock), None);
    let (speaker, speaker_id) = pod_a.register("Speaker").await;
    let (listener, _) = pod_b.register("Listener").await;
    let (outsider, _) = pod_b.register("Outsider").await;
    pod_a.set_balance(&speaker_id, divine_heroes::game::economy::Currency::Gold, 100_000).await;
    let r = pod_a
        .post("/api/guilds", Some(&speaker), Some("g"), json!({"name": "Relay", "tag": "rly", "join_policy": "open"}))
        .await;
    let gid = r.json::<Value>().await.unwrap()["guild"]["guild"]["guild_id"].as_str().unwrap().to_string();
    assert_eq!(
        pod_b.post(&format!("/api/guilds/{gid}/join"), Some(&listener), Some("j"), json!({})).await.status(),
        200
    );

    let mut world = open_stream(&pod_b, &listener, "world").await;
    let mut guild = open_stream(&pod_b, &listener, "guild").await;
    let mut outside = open_stream(&pod_b, &outsider, "world").await;
    let outsider_guild =
        pod_b.http.get(pod_b.url("/api/chat/guild/stream")).bearer_auth(&outsider).send().await.unwrap();
    assert_eq!(outsider_guild.status(), 403, "no guild, no guild stream");

    let mut sent = Vec::new();
    for i in 0..8 {
        let (s, m) = send(&pod_a, &speaker, "world", &format!("w{i}"), &format!("world {i}")).await;
        assert_eq!(s, 200, "{m}");
        // Each arrives on the other process within a second of being sent.
        let got = read_events(&mut world, 1, Duration::from_secs(1)).await;
        assert_eq!(got.first().map(|g| &g["id"]), Some(&m["id"]), "world {i} on the other process");
        sent.push(m["id"].clone());
    }
    let (s, gm) = send(&pod_a, &speaker, "guild", "g1", "members only").await;
    assert_eq!(s, 200, "{gm}");
    let got = read_events(&mut guild, 1, Duration::from_secs(1)).await;
    assert_eq!(got.first().map(|g| &g["text"]), Some(&json!("members only")));
    // The outsider's world stream had every world message, in order, and no guild message.
    let theirs = read_events(&mut outside, 9, Duration::from_secs(1)).await;
    let ids: Vec<&Value> = theirs.iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, sent.iter().collect::<Vec<_>>(), "in order, nothing else");

    // A muted player's message is refused on every process.
    Command::ChatMute { player: "Speaker".into(), hours: 1 }.run(&pod_a.writer(), Utc::now()).await.unwrap();
    let (s, b) = send(&pod_a, &speaker, "world", "muted", "still here?").await;
    assert_eq!((s, code(&b)), (403, "FORBIDDEN"), "{b}");
}

crate::on_both_stores!(chat_rules_and_channels);
