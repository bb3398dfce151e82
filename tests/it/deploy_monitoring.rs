//! Every dashboard panel and every alert of k8s/monitoring/10-monitoring.yaml, run by a real
//! Prometheus against the real binary's series: none may come back empty (a
//! misspelled metric or label would). Alerts are run without their threshold;
//! the two built on kube-state-metrics series are covered by promtool's tests.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::procs::{free_port, require_tool, start_role, wait_ready, Proc};
use serde_json::{json, Value};

/// Series that come from kube-state-metrics, not from this service.
const EXTERNAL: &[&str] = &["kube_pod_container_status_restarts_total", "kube_pod_status_ready"];

/// The expressions to check: (name, PromQL).
fn expressions() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/monitoring/10-monitoring.yaml")).unwrap();
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        match v["kind"].as_str() {
            Some("PrometheusRule") => {
                for group in v["spec"]["groups"].as_sequence().unwrap() {
                    for rule in group["rules"].as_sequence().unwrap() {
                        let expr = rule["expr"].as_str().unwrap();
                        if EXTERNAL.iter().any(|m| expr.contains(m)) {
                            continue;
                        }
                        // Drop the top-level threshold: "LEFT > 0.05" → "LEFT".
                        let left =
                            [" > ", " == "].iter().filter_map(|op| expr.rfind(op)).max().map_or(expr, |i| &expr[..i]);
                        out.push((format!("alert {}", rule["alert"].as_str().unwrap()), left.trim().to_string()));
                    }
                }
            }
            Some("ConfigMap") => {
                let dash: Value = serde_json::from_str(v["data"]["divine-heroes.json"].as_str().unwrap()).unwrap();
                for p in dash["panels"].as_array().unwrap() {
                    for t in p["targets"].as_array().unwrap() {
                        out.push((format!("panel {}", p["title"]), t["expr"].as_str().unwrap().to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_expression_returns_data() {
    if !require_tool("prometheus") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let env = [("METRICS_ENABLED", "true".to_string())];
    let app = start_role("all", &env, scratch.path()).await;
    let base = format!("http://127.0.0.1:{}", app.port);
    let http = reqwest::Client::new();
    // Traffic that touches every family: accounts, a summon, a fight, an arena
    // challenge, an error.
    let token = crate::common::procs::register(&http, &base, "Scraped", "scrape-me-123").await;
    let post = |path: &str, key: &str, body: Value| {
        http.post(format!("{base}{path}")).bearer_auth(&token).header("Idempotency-Key", key).json(&body).send()
    };
    let traffic = || async {
        post("/api/gacha/summon", &uuid::Uuid::new_v4().to_string(), json!({"banner_id": "divine", "count": 1}))
            .await
            .unwrap();
        post("/api/battle/campaign/1/1/fight", &uuid::Uuid::new_v4().to_string(), json!({})).await.unwrap();
        http.get(format!("{base}/api/nowhere")).send().await.unwrap();
        http.get(format!("{base}/api/player")).bearer_auth(&token).send().await.unwrap();
    };
    traffic().await;
    let offered: Value = http
        .get(format!("{base}/api/battle/arena/opponents"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let opponent = offered["items"][0]["opponent_id"].clone();
    let duel = post("/api/battle/arena/challenge", "duel", json!({"opponent_id": opponent})).await.unwrap();
    assert_eq!(duel.status(), 200, "an offered opponent");

    let prom_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: api-service\n    metrics_path: /metrics/prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        app.port
    );
    let config_path = scratch.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.args([
        &format!("--config.file={}", config_path.display()),
        &format!("--storage.tsdb.path={}", scratch.path().join("tsdb").display()),
        &format!("--web.listen-address=127.0.0.1:{prom_port}"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _prometheus = Proc::spawn_tool(cmd, prom_port);
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_ready(&format!("{prom}/-/ready")).await;
    // A few scrapes with traffic between them, so that rates have two points.
    for _ in 0..4 {
        traffic().await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let mut empty = Vec::new();
    for (name, expr) in expressions() {
        let mut found = false;
        for _ in 0..10 {
            let r: Value = http
                .get(format!("{prom}/api/v1/query"))
                .query(&[("query", expr.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(r["status"], "success", "{name}: {expr}: {r}");
            if r["data"]["result"].as_array().is_some_and(|a| !a.is_empty()) {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !found {
            empty.push(format!("{name}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "expressions with no data:\n{}", empty.join("\n"));
    drop(app);
}
