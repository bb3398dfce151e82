//! Real processes for deployment tests: the built binary, nginx, Prometheus.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_divine-heroes");

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A child process in its own process group, killed with all of its
/// descendants when dropped (nginx's workers, for one, outlive a killed master).
pub struct Proc {
    pub child: Child,
    pub port: u16,
}

impl Proc {
    /// Spawns a third-party server (Redis, nginx, Prometheus) on the real wall
    /// clock: the shifted-clock CI run checks our code's dates, not theirs
    /// (redis-server does not even start under libfaketime).
    pub fn spawn_tool(mut cmd: Command, port: u16) -> Self {
        cmd.env_remove("LD_PRELOAD").env_remove("FAKETIME");
        Self::spawn(cmd, port)
    }

    /// Spawns `cmd` as the leader of a new process group.
    pub fn spawn(mut cmd: Command, port: u16) -> Self {
        cmd.process_group(0);
        let program = cmd.get_program().to_string_lossy().into_owned();
        Proc { child: cmd.spawn().unwrap_or_else(|e| panic!("{program} starts: {e}")), port }
    }

    /// Kills the whole group now (SIGKILL) and reaps the leader.
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether an external tool exists; in CI a missing one is a failure.
pub fn require_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{name} is required in CI");
        eprintln!("{name} not installed: skipping");
    }
    found
}

/// Starts a role of the binary with `env` on a free port and waits until ready.
pub async fn start_role(role: &str, env: &[(&str, String)], data_dir: &Path) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["serve", "--role", role, "--port", &port.to_string()])
        .env("HOST", "127.0.0.1")
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let proc = Proc::spawn(cmd, port);
    wait_ready(&format!("http://127.0.0.1:{port}/health/ready")).await;
    proc
}

/// Polls a URL until it answers 200 (bounded: 15 s).
pub async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} not ready within 15 s");
}

/// Registers a player on a running process; returns its token.
pub async fn register(http: &reqwest::Client, base: &str, username: &str, password: &str) -> String {
    let reg: serde_json::Value = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .expect("register sent")
        .json()
        .await
        .expect("register answers JSON");
    reg["token"].as_str().expect("a token").to_string()
}

/// A private Redis on `port`: without persistence (`None`), or keeping its data
/// in `dir` across restarts with every write synced, as the deployment's
/// append-only setup does.
pub fn redis_server(port: u16, dir: Option<&Path>) -> Proc {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""]);
    match dir {
        Some(d) => cmd.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]).arg(d),
        None => cmd.args(["--appendonly", "no"]),
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Proc::spawn_tool(cmd, port)
}

/// A private MongoDB-compatible server (SecantusDB) in `dir`, for tests that cut
/// MongoDB transactions off mid-way: this server, unlike MongoDB, never aborts a
/// transaction its client abandoned, and its locks would stall every other test
/// on the shared server. Found through `SECANTUSD` (set by `.ci/run`) or the
/// venv `.ci/run` installs; `None` locally without it (CI requires it).
pub async fn private_mongo(dir: &Path) -> Option<(Proc, String)> {
    let bin = std::env::var_os("SECANTUSD").map(std::path::PathBuf::from).or_else(|| {
        let home = std::env::var_os("HOME")?;
        let venv = Path::new(&home).join(".cache/divine-heroes/venv-secantus/bin/secantusd-py");
        venv.exists().then_some(venv)
    });
    let Some(bin) = bin.filter(|b| b.exists()) else {
        assert!(std::env::var_os("CI").is_none(), "SecantusDB (SECANTUSD) is required in CI");
        eprintln!("SecantusDB not installed: skipping");
        return None;
    };
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--sync-on-commit", "--log-level", "WARNING"])
        .arg("--storage-path")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let proc = Proc::spawn_tool(cmd, port);
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some((proc, format!("mongodb://127.0.0.1:{port}/?directConnection=true")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the private SecantusDB did not open port {port} within 30 s");
}
