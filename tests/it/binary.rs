//! The real binary: start-up checks, persistence across restarts and kill -9,
//! graceful shutdown, check-config.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_divine-heroes");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn command(data_dir: &Path, port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--role", "all", "--port", &port.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Kept through the clean environment: the shifted-clock CI run moves this process's clock too.
        .envs(
            ["LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC"]
                .into_iter()
                .filter_map(|k| Some((k, std::env::var(k).ok()?))),
        )
        .env("DATA_DIR", data_dir)
        .env("HOST", "127.0.0.1")
        // No pause before the listener closes, unless a test asks for one.
        .env("SHUTDOWN_DELAY_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(data_dir: &Path) -> Running {
    start_with(data_dir, &[]).await
}

async fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Running {
    let port = free_port();
    let child = command(data_dir, port).envs(env.iter().copied()).spawn().expect("binary starts");
    let base = format!("http://127.0.0.1:{port}");
    // Owned at once, so that a failed start still kills the process.
    let running = Running { child, base: base.clone() };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await {
            if r.status() == 200 {
                return running;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not ready within 5 s");
}

async fn login(base: &str, user: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": "persist-me-123"}))
        .send()
        .await
        .unwrap();
    (r.status() == 200).then_some(r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn players_survive_a_restart_and_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path()).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/auth/register", first.base))
        .json(&json!({"username": "Durable", "password": "persist-me-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A graceful stop: SIGTERM, exit 0.
    unsafe_sigterm(first.child.id());
    let status = first.child.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    let mut second = start(dir.path()).await;
    let token = login(&second.base, "durable").await.expect("player still there after a restart");
    let r = http
        .post(format!("{}/api/gacha/summon", second.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "before-the-crash")
        .json(&json!({"banner_id": "premium", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    second.child.kill().unwrap(); // SIGKILL: no chance to flush anything
    second.child.wait().unwrap();

    let mut third = start(dir.path()).await;
    let token = login(&third.base, "durable").await.expect("player still there after kill -9");
    let profile: Value =
        http.get(format!("{}/api/player", third.base)).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(profile["balances"]["crystals"], 0, "the acknowledged summon was durable");
    third.child.kill().unwrap();
    third.child.wait().unwrap();
    let (ok, out) = audit_cli(dir.path());
    assert!(ok && out.contains("1 summons") && out.contains("0 mismatches"), "the audit after the kill: {out}");
}

/// `divine-heroes audit` on the embedded store in `dir`: (exit 0, what it printed).
fn audit_cli(dir: &std::path::Path) -> (bool, String) {
    cli(dir, &["audit"])
}

/// The binary's command line on the embedded store in `dir`: (exit 0, what it printed).
fn cli(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .env("DATA_DIR", dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Registers `name` (password `persist-me-123`) on a running binary; its token.
async fn registered(base: &str, name: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": name, "password": "persist-me-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
}

/// SIGTERM with clients on kept-alive connections: readiness turns 503 at once,
/// every request that arrives during the delay is answered (each answer closing
/// its connection, so the next one opens a new one), and the process exits 0.
#[tokio::test]
async fn sigterm_answers_kept_alive_clients_through_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_with(dir.path(), &[("SHUTDOWN_DELAY_SECS", "2")]).await;
    // Several clients, each holding one idle kept-alive connection.
    let clients: Vec<reqwest::Client> =
        (0..8).map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap()).collect();
    for c in &clients {
        assert_eq!(c.get(format!("{}/health/live", running.base)).send().await.unwrap().status(), 200);
    }
    unsafe_sigterm(running.child.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = reqwest::get(format!("{}/health/ready", running.base)).await.unwrap();
    assert_eq!(ready.status(), 503, "readiness turns 503 as soon as the signal arrives");
    let (mut answered, mut closing) = (0, 0);
    for round in 0..3 {
        for c in &clients {
            let r = c.get(format!("{}/health/live", running.base)).send().await;
            let r = r.unwrap_or_else(|e| panic!("round {round}: a kept-alive client got no answer: {e}"));
            assert_eq!(r.status(), 200);
            answered += 1;
            closing += usize::from(r.headers().get("connection").is_some_and(|v| v == "close"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!((answered, closing), (24, 24), "every request answered, each answer closing its connection");
    let status = running.child.wait().unwrap();
    assert!(status.success(), "exits 0 after the delay and the drain, got {status}");
}

fn unsafe_sigterm(pid: u32) {
    let ok = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success();
    assert!(ok);
}

#[test]
fn production_refuses_the_default_secret_and_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), free_port()).env("APP_ENV", "production").stderr(Stdio::piped()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("JWT_SECRET"), "{err}");

    // The shipped Secret template's placeholder is refused too, with its reason.
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/01-configmap.yaml")).unwrap();
    let placeholder = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("JWT_SECRET:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("the template sets JWT_SECRET");
    let out = command(dir.path(), free_port())
        .env("APP_ENV", "production")
        .env("JWT_SECRET", &placeholder)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("JWT_SECRET") && err.contains("placeholder"), "{err}");

    let out = command(dir.path(), free_port())
        .env("APP_ENV", "production")
        .env("JWT_SECRET", "q7Vt2mXa9LwR4pZk8Jd3Nf6Hs1Yb5Ce0Gu+Ti/Ko")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MONGO_URL"));
}

/// A Kafka that cannot be reached stops the start with a message that names it.
#[test]
fn an_unreachable_kafka_is_a_clear_start_up_error() {
    if crate::common::under_faketime() {
        return; // librdkafka's timed waits hang under libfaketime (see common::under_faketime)
    }
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), free_port())
        .env("MQ_BACKEND", "kafka")
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MQ_BACKEND=kafka: cannot reach Kafka at 127.0.0.1:1"), "{err}");
}

#[test]
fn check_config_names_the_file_the_entry_and_the_problem() {
    let ok = Command::new(BIN).current_dir(env!("CARGO_MANIFEST_DIR")).arg("check-config").output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("heroes: 23") && out.contains("celestial_descent"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::copy(src.join("heroes.toml"), dir.path().join("heroes.toml")).unwrap();
    let banners = std::fs::read_to_string(src.join("banners.toml")).unwrap().replace("hard_pity = 40", "hard_pity = 0");
    std::fs::write(dir.path().join("banners.toml"), banners).unwrap();
    let bad = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check-config")
        .env("GAME_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("banners.toml") && err.contains("divine") && err.contains("hard_pity"), "{err}");

    let bad_env = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("check-config")
        .env("RATE_LIMIT_WINDOW", "soon")
        .output()
        .unwrap();
    assert!(!bad_env.status.success());
    assert!(String::from_utf8_lossy(&bad_env.stderr).contains("RATE_LIMIT_WINDOW"));
}

/// A client's malformed HTTP gets a 400 and writes no error line: the server's
/// error log is for the server's faults.
#[tokio::test]
async fn malformed_requests_are_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Logs go to stdout.
    let child = command(dir.path(), port).stdout(Stdio::piped()).env("LOG_FORMAT", "json").spawn().unwrap();
    let mut running = Running { child, base: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{}/health/live", running.base)).send().await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for garbage in [&b"GARBAGE\r\n\r\n"[..], b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"] {
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            conn.write_all(garbage).unwrap();
            let mut buf = Vec::new();
            let _ = conn.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    // A request with a verified token: its access-log line names the player.
    let r = http
        .post(format!("{}/api/auth/register", running.base))
        .json(&json!({"username": "Logged", "password": "log-me-please-1"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let (token, id) = (body["token"].as_str().unwrap(), body["player"]["id"].as_str().unwrap().to_string());
    let me = http.get(format!("{}/api/player", running.base)).bearer_auth(token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    unsafe_sigterm(running.child.id());
    let out = running.child.wait_with_output_ref();
    assert!(out.contains("\"level\":\"INFO\""), "the log was captured: {out}");
    let access = out.lines().find(|l| l.contains("/api/player") && l.contains("\"request\"") && l.contains("200"));
    assert!(access.is_some_and(|l| l.contains(&id)), "the access log names the player: {access:?}");
    let errors: Vec<&str> = out.lines().filter(|l| l.contains("\"level\":\"ERROR\"")).collect();
    assert!(errors.is_empty(), "no error lines for a client's malformed requests: {errors:?}");
}

trait WaitWithOutputRef {
    /// Waits for the process and returns what it wrote to stdout.
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitWithOutputRef for Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut err = String::new();
        if let Some(mut s) = self.stdout.take() {
            let _ = s.read_to_string(&mut err);
        }
        let _ = self.wait();
        err
    }
}

/// `divine-heroes audit` passes on an honest store and fails, naming the player
/// and the currency, on one where a ledger row was removed by hand.
#[tokio::test]
async fn audit_finds_a_ledger_row_removed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path()).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/auth/register", running.base))
        .json(&json!({"username": "Audited", "password": "persist-me-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let token = login(&running.base, "audited").await.unwrap();
    let r = http
        .post(format!("{}/api/gacha/summon", running.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "audited-pull")
        .json(&json!({"banner_id": "premium", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    let audit = || audit_cli(dir.path());
    let (ok, out) = audit();
    assert!(ok && out.contains("0 mismatches"), "{out}");

    // Remove the summon's crystals debit straight from the file.
    {
        let ledger: redb::TableDefinition<(&str, u64), &[u8]> = redb::TableDefinition::new("ledger");
        let db = redb::Database::open(dir.path().join("divine-heroes.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            use redb::ReadableTable;
            let mut t = txn.open_table(ledger).unwrap();
            let victim = t
                .iter()
                .unwrap()
                .map(Result::unwrap)
                .map(|(k, v)| (k.value().0.to_string(), k.value().1, String::from_utf8_lossy(v.value()).into_owned()))
                .find(|(_, _, row)| row.contains("\"summon\"") && row.contains("\"crystals\""))
                .expect("the summon's debit");
            t.remove((victim.0.as_str(), victim.1)).unwrap();
        }
        txn.commit().unwrap();
    }
    let (ok, out) = audit();
    assert!(!ok, "a removed ledger row fails the audit: {out}");
    assert!(out.contains("Audited") && out.contains("crystals"), "names the player and the currency: {out}");
}

/// `divine-heroes gacha verify` re-derives a summon from the stored seed (an
/// operator may check one not yet revealed) and exits 1 on a seed that is not
/// the committed one.
#[tokio::test]
async fn gacha_verify_rederives_a_summon_from_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path()).await;
    let token = registered(&running.base, "Checked").await;
    let receipt: Value = reqwest::Client::new()
        .post(format!("{}/api/gacha/summon", running.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "checked-pull")
        .json(&json!({"banner_id": "standard", "count": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let summon_id = receipt["summon_id"].as_str().expect("a receipt").to_string();
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    let verify = |extra: &[&str]| {
        let args: Vec<&str> = ["gacha", "verify", "--player", "Checked", "--summon", summon_id.as_str()]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        cli(dir.path(), &args)
    };
    let (ok, out) = verify(&[]);
    assert!(ok && out.contains("matches its derivation"), "{out}");
    assert!(out.contains(receipt["fairness"]["commitment"].as_str().unwrap()), "{out}");
    let (ok, out) = verify(&["--server-seed", &"00".repeat(32)]);
    assert!(!ok && out.contains("does NOT match"), "{out}");
}

/// Operator commands run beside a server on the embedded store go through its
/// admin endpoint (the server holds the file) and take effect at once; a wrong
/// token is refused; once the server is gone, the same command opens the store.
#[tokio::test]
async fn operator_commands_reach_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = start(dir.path()).await;
    let http = reqwest::Client::new();
    let token = registered(&running.base, "Operated").await;
    let crystals = |token: String, base: String| async move {
        let p: Value = reqwest::Client::new()
            .get(format!("{base}/api/player"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        p["balances"]["crystals"].as_i64().unwrap()
    };
    let before = crystals(token.clone(), running.base.clone()).await;
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .env("DATA_DIR", dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let (ok, out) = cli(&["grant", "--to", "Operated", "--currency", "crystals", "--amount", "500"]);
    assert!(ok && out.contains("performed by the running server"), "{out}");
    assert_eq!(crystals(token.clone(), running.base.clone()).await, before + 500, "visible at once");
    let (ok, out) = cli(&["mail", "send", "--all", "--subject", "Maintenance", "--attach", "gold=10"]);
    assert!(ok && out.contains("mail sent to 1 player"), "{out}");
    let (ok, out) = cli(&["grant", "--to", "Nobody", "--currency", "crystals", "--amount", "5"]);
    assert!(!ok && out.contains("no player"), "the server's refusal is the command's: {out}");

    // The file names a loopback address and the token; another token is refused.
    let file = std::fs::read_to_string(dir.path().join("admin.json")).unwrap();
    let endpoint: Value = serde_json::from_str(&file).unwrap();
    assert!(endpoint["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner only");
    }
    let r = http
        .post(format!("http://{}/admin/command", endpoint["addr"].as_str().unwrap()))
        .bearer_auth("forged")
        .json(&json!({"command": "grant", "to": "Operated", "currency": "crystals", "amount": 1, "note": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Stopped cleanly, the server removes the file; the command then writes itself.
    let pid = running.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    running.child.wait().unwrap();
    assert!(!dir.path().join("admin.json").exists());
    let (ok, out) = cli(&["grant", "--to", "Operated", "--currency", "crystals", "--amount", "1"]);
    assert!(ok && !out.contains("running server") && out.contains(&format!("{}", before + 501)), "{out}");
}

/// Every span name and (trace id, parent span id) an OTLP/HTTP JSON export holds.
fn spans_of(export: &Value) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for rs in export["resourceSpans"].as_array().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                let field = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                out.push((field("name"), field("traceId"), field("parentSpanId")));
            }
        }
    }
    out
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, one summon is one trace from the
/// client's `traceparent` through the request and its store write to the
/// consumer that applied its events, received by an OTLP/HTTP receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summon_is_one_trace_from_the_client_to_the_consumer() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let collector = listener.local_addr().unwrap().port();
    let receiver = actix_web::HttpServer::new(move || {
        let sink = sink.clone();
        actix_web::App::new().route(
            "/v1/traces",
            actix_web::web::post().to(move |body: actix_web::web::Bytes| {
                let sink = sink.clone();
                async move {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        sink.lock().unwrap().push(v);
                    }
                    actix_web::HttpResponse::Ok().content_type("application/json").body("{}")
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let receiver_handle = receiver.handle();
    tokio::spawn(receiver);

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{collector}");
    let running =
        start_with(dir.path(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    let token = registered(&running.base, "Traced").await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = reqwest::Client::new()
        .post(format!("{}/api/gacha/summon", running.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "traced-pull")
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .json(&json!({"banner_id": "standard", "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut ours = vec![];
    for _ in 0..100 {
        ours = received.lock().unwrap().iter().flat_map(spans_of).filter(|s| s.1 == trace).collect();
        if ["request", "store.mutate", "event.consumed"].iter().all(|n| ours.iter().any(|s| s.0 == *n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = ours.iter().map(|s| s.0.as_str()).collect();
    for expected in ["request", "store.mutate", "event.consumed"] {
        assert!(names.contains(&expected), "span {expected} in the client's trace: {names:?}");
    }
    let request = ours.iter().find(|s| s.0 == "request").unwrap();
    assert_eq!(request.2, parent, "the request span continues the client's span");
    receiver_handle.stop(false).await;
}
