//! The odds page in a real browser: headless Chromium (Debian's `chromium`)
//! renders `/gacha/{banner}` to a screenshot, logs no console message (the page
//! has no script; a blocked style or resource would log one), and every number
//! the page carries equals the JSON disclosure's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{StoreKind, TestApp};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Runs headless Chromium with `args` on `url`; (stdout, stderr).
async fn run(browser: &'static str, profile: &Path, args: &[&str], url: &str) -> (String, String) {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        // The shifted-clock run preloads libfaketime into the tests and what they
        // start; Chromium hangs under it, and its clock plays no part here.
        .env_remove("LD_PRELOAD")
        .env_remove("FAKETIME")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium ran");
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every value of attribute `name` in `html`, in document order.
fn attr_values(html: &str, name: &str) -> Vec<f64> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest[..rest.find('"').unwrap()].parse::<f64>().unwrap()
        })
        .collect()
}

/// Equal to the last bit or one unit in the last place: serde_json's default
/// float parser (no `float_roundtrip`) may round the JSON side one ulp off.
fn same(page: &[f64], json: &[f64], what: &str) {
    assert_eq!(page.len(), json.len(), "{what}: {page:?} vs {json:?}");
    for (a, b) in page.iter().zip(json) {
        assert!((a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()), "{what}: {a} vs {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_odds_page_renders_in_chromium_with_the_jsons_numbers() {
    let Some(browser) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "Chromium is required in CI (.ci/run installs it)");
        eprintln!("skipping: no chromium");
        return;
    };
    let app = TestApp::spawn(StoreKind::Embedded).await.unwrap();
    let direct = app.get("/gacha/celestial_descent", None).await;
    assert_eq!(direct.status(), 200);
    assert!(direct.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(!direct.headers()["content-security-policy"].to_str().unwrap().contains("script-src"), "no script allowed");
    assert!(!direct.text().await.unwrap().contains("<script"), "no script on the page");
    assert_eq!(app.get("/gacha/nope", None).await.status(), 404);

    let url = app.url("/gacha/celestial_descent");
    let scratch = tempfile::tempdir().unwrap();
    let shot = scratch.path().join("page.png");
    let (_, log) = run(
        browser,
        &scratch.path().join("profile-1"),
        &[&format!("--screenshot={}", shot.display()), "--window-size=412,2400"],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("a screenshot: {e}; chromium said: {log}"));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real picture, {} bytes", png.len());

    let (dom, log) =
        run(browser, &scratch.path().join("profile-2"), &["--dump-dom", "--enable-logging=stderr", "--v=0"], &url)
            .await;
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(dom.contains("<svg id=\"per-pull\"") && dom.contains("<svg id=\"cumulative\""), "both charts");

    let json: Value = app.get("/api/gacha/banners/celestial_descent/rates", None).await.json().await.unwrap();
    let from_json = |list: &str, field: &str| -> Vec<f64> {
        json[list].as_array().unwrap().iter().map(|v| v.pointer(field).unwrap().as_f64().unwrap()).collect()
    };
    same(&attr_values(&dom, "data-probability"), &from_json("items", "/probability"), "every item");
    same(&attr_values(&dom, "data-rate"), &from_json("consolidated", "/consolidated_rate"), "every category");
    same(&attr_values(&dom, "data-pulls-mean"), &from_json("milestones", "/pulls/mean"), "pulls");
    same(&attr_values(&dom, "data-cost-ten-mean"), &from_json("milestones", "/cost_ten_pulls_only/mean"), "ten");
    same(&attr_values(&dom, "data-cost-single-mean"), &from_json("milestones", "/cost_single_pulls/mean"), "single");
    assert_eq!(attr_values(&dom, "data-version"), vec![json["version"].as_f64().unwrap()]);
    let curve = attr_values(&dom, "data-points");
    assert_eq!(curve, vec![80.0, 80.0], "each chart has a point per pull to hard pity");
}
