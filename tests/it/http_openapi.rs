//! The OpenAPI document is generated from the mounted routes: each role lists
//! exactly its own, every documented operation is mounted, and every operation
//! carries its response schema, its error schema, its security and (for the
//! spending routes) the Idempotency-Key header.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::common::{StoreKind, TestApp};
use divine_heroes::platform::clock::SystemClock;
use divine_heroes::platform::config::Role;
use serde_json::Value;

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

async fn document(role: Role) -> (TestApp, Value) {
    let app = TestApp::spawn_with(StoreKind::Embedded, role, |_| {}, Arc::new(SystemClock)).await.expect("app");
    let doc: Value = app.get("/api/openapi.json", None).await.json().await.expect("json");
    (app, doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_documents_exactly_its_own_routes() {
    let prefixes = |role: Role| -> BTreeSet<&'static str> {
        match role {
            Role::Gacha => ["/api/gacha/", "/gacha/"].into(),
            Role::Battle => ["/api/battle/"].into(),
            Role::Api => [
                "/api/auth/",
                "/api/player",
                "/api/heroes",
                "/api/team",
                "/api/idle",
                "/api/daily-login",
                "/api/mail",
                "/api/leaderboards/",
                "/api/quests",
                "/api/shop",
                "/api/webhooks/",
                "/api/codes/",
                "/api/events",
                "/api/pass",
                "/api/friends",
                "/api/guilds",
                "/api/chat/",
            ]
            .into(),
            Role::All => BTreeSet::new(),
        }
    };
    let common: BTreeSet<&str> =
        ["/health/live", "/health/ready", "/metrics", "/metrics/prometheus", "/api/openapi.json"].into();
    let mut all_paths = BTreeSet::new();
    for role in [Role::Api, Role::Battle, Role::Gacha] {
        let (_app, doc) = document(role).await;
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true), "{}", doc["openapi"]);
        for (_, path, _) in operations(&doc) {
            let own = prefixes(role).iter().any(|p| path.starts_with(p));
            assert!(own || common.contains(path.as_str()), "{} documents {path}", role.name());
            all_paths.insert(path);
        }
        for p in prefixes(role) {
            assert!(operations(&doc).iter().any(|(_, path, _)| path.starts_with(p)), "{} lacks {p}", role.name());
        }
    }
    let (_app, all) = document(Role::All).await;
    let all_role: BTreeSet<String> = operations(&all).into_iter().map(|(_, p, _)| p).collect();
    assert_eq!(all_role, all_paths, "the all role documents the union of the three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_mounted_and_typed() {
    let (app, doc) = document(Role::All).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 35, "{} operations", ops.len());
    for (method, path, op) in &ops {
        // 204 (logout) has no body by definition; every other success is typed.
        if op["responses"].get("204").is_none() {
            let ok = ["200", "201"]
                .iter()
                .find_map(|s| op["responses"].get(*s))
                .unwrap_or_else(|| panic!("{method} {path}: no success response"));
            let content = &ok["content"];
            assert!(content.as_object().is_some_and(|c| !c.is_empty()), "{method} {path}: no response schema");
        }
        assert!(
            op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .is_some_and(|r| r.ends_with("/ErrorView")),
            "{method} {path}: no error schema"
        );
        if *method == "post" || *method == "put" {
            let needs_body = (!path.ends_with("/claim") || path == "/api/pass/claim")
                && !path.ends_with("/fight")
                && !path.ends_with("/promote")
                && !path.ends_with("/logout")
                && !path.ends_with("/unlock")
                && !path.ends_with("/claim-all")
                && !path.ends_with("/accept")
                && !path.ends_with("/decline")
                && !path.ends_with("/gift")
                && !path.ends_with("/block")
                && !path.ends_with("/join")
                && !path.ends_with("/leave")
                && !path.ends_with("/approve")
                && !path.ends_with("/reject")
                && !path.ends_with("/{action}")
                && !path.ends_with("/attack");
            assert_eq!(op.get("requestBody").is_some(), needs_body, "{method} {path}: request body");
        }
        // A provider's webhook is keyed by its transaction id and signed instead.
        let webhook = path.starts_with("/api/webhooks/");
        let spends = *method == "post" && !path.starts_with("/api/auth/") && !webhook;
        if webhook {
            assert!(
                op["parameters"].as_array().into_iter().flatten().any(|p| p["name"] == "X-Signature"),
                "{method} {path}: the signature header"
            );
        }
        let has_key = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
        assert_eq!(has_key, spends, "{method} {path}: Idempotency-Key");
        // Mounted: a request with no token reaches the route (never the catch-all 404).
        let concrete = path.replace("{chapter}", "1").replace("{stage}", "1").replace(['{', '}'], "");
        let r = app.http.request(method.to_uppercase().parse().unwrap(), app.url(&concrete)).send().await.unwrap();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let msg = body["error"]["message"].as_str().unwrap_or_default();
        assert!(!msg.starts_with("no route for"), "{method} {path} is documented but not mounted");
    }
    let secured = ops.iter().filter(|(_, _, op)| op.get("security").is_some()).count();
    assert!(secured >= 25, "{secured} operations declare the bearer scheme");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    for name in ["SummonReceipt", "FightView", "ChallengeView", "PlayerView", "ErrorView"] {
        assert!(doc["components"]["schemas"].get(name).is_some(), "schema {name}");
    }
}

/// Every string enum names its members (`x-enum-varnames`), one distinct name
/// per value: generated clients otherwise fold `SSR` and `SSR+` into one member
/// and fail on the other value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_enum_value_has_its_own_member_name() {
    let (_app, doc) = document(Role::All).await;
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut checked = 0;
    for (name, schema) in schemas {
        let Some(values) = schema["enum"].as_array() else { continue };
        let names = schema["x-enum-varnames"].as_array().unwrap_or_else(|| panic!("{name} names its members"));
        assert_eq!(names.len(), values.len(), "{name}");
        let distinct: std::collections::BTreeSet<&str> = names.iter().filter_map(Value::as_str).collect();
        assert_eq!(distinct.len(), values.len(), "{name}: distinct member names {names:?}");
        checked += 1;
    }
    assert!(schemas["Rarity"]["x-enum-varnames"].as_array().is_some_and(|n| n.iter().any(|v| v == "SSR_PLUS")));
    assert!(checked >= 3, "the document has its enums ({checked})");
}
