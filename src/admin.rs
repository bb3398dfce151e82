//! Operator commands while the server runs. The embedded store's file is held
//! by one process, so `grant`, `mail send`, `minor` or `arena close-season` run
//! beside a running server cannot open it. Such a server therefore listens for
//! those commands on its own address (`ADMIN_HOST`, loopback by default;
//! `ADMIN_PORT`, a free port by default) behind a bearer token (`ADMIN_TOKEN`,
//! random per start by default), and leaves where and how to reach it in
//! `DATA_DIR/admin.json`, readable by its owner only. The command line finds it
//! there and the server performs the write through the same code
//! (`ops::Command::run`). Against MongoDB the commands write directly.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ops::Command;
use crate::platform::config::Settings;
use crate::state::AppState;

/// The file under `DATA_DIR` that names the running server's endpoint.
pub const ADMIN_FILE: &str = "admin.json";
/// Longest an operator command may take over the endpoint (`mail send --all` to many players).
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_mins(10);

/// Where a running server takes commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminEndpoint {
    /// `host:port`.
    pub addr: String,
    /// Bearer token.
    pub token: String,
}

/// The endpoint's token, as app data.
struct AdminToken(String);

/// A running admin endpoint: stop it and remove its file when the server stops.
pub struct AdminServer {
    /// The HTTP server.
    pub server: actix_web::dev::Server,
    /// `DATA_DIR/admin.json`.
    pub file: PathBuf,
}

/// Starts the endpoint for `state` and writes its file.
pub fn start(settings: &Settings, state: web::Data<AppState>) -> anyhow::Result<AdminServer> {
    let addr = format!("{}:{}", settings.admin_host, settings.admin_port);
    let listener = TcpListener::bind(&addr).with_context(|| format!("binding the admin endpoint {addr}"))?;
    let bound = listener.local_addr()?;
    let token = match &settings.admin_token {
        Some(t) => t.expose_secret().to_string(),
        None => hex::encode(crate::game::rng::fresh_secret()),
    };
    let file = settings.data_dir.join(ADMIN_FILE);
    write_private(&file, &serde_json::to_vec(&AdminEndpoint { addr: bound.to_string(), token: token.clone() })?)
        .with_context(|| format!("writing {}", file.display()))?;
    let token = web::Data::new(AdminToken(token));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(token.clone())
            .app_data(web::JsonConfig::default().limit(64 * 1024))
            .route("/admin/command", web::post().to(command))
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .run();
    tracing::info!(addr = %bound, file = %file.display(), "admin endpoint for operator commands listening");
    Ok(AdminServer { server, file })
}

/// Writes `bytes` to `path`, readable and writable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// Equal tokens, compared without an early exit (through their digests).
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(status: actix_web::http::StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({"error": {"code": code, "message": message.into()}}))
}

/// `POST /admin/command`: performs one operator command.
async fn command(
    req: HttpRequest,
    state: web::Data<AppState>,
    token: web::Data<AdminToken>,
    body: web::Json<Command>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_token(given, &token.0) {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "a valid admin token is required");
    }
    let command = body.into_inner();
    tracing::info!(?command, "operator command over the admin endpoint");
    let writer = state.writer();
    match command.run(&writer, state.clock.now()).await {
        Ok(message) => HttpResponse::Ok().json(serde_json::json!({"message": message})),
        Err(e) => refuse(StatusCode::UNPROCESSABLE_ENTITY, "COMMAND_FAILED", format!("{e:#}")),
    }
}

/// Sends `command` to the server named in `data_dir/admin.json`. `None` when
/// no server is there to take it (no file, or nothing listening: a server that
/// died without removing it): the caller then opens the store itself.
pub async fn forward(data_dir: &Path, command: &Command) -> Option<anyhow::Result<String>> {
    let text = std::fs::read(data_dir.join(ADMIN_FILE)).ok()?;
    let endpoint: AdminEndpoint = serde_json::from_slice(&text).ok()?;
    let stream =
        tokio::time::timeout(std::time::Duration::from_secs(2), tokio::net::TcpStream::connect(endpoint.addr.as_str()))
            .await
            .ok()?
            .ok()?;
    Some(
        tokio::time::timeout(COMMAND_TIMEOUT, send(stream, &endpoint, command)).await.unwrap_or_else(|_| {
            Err(anyhow::anyhow!("the server did not answer within {} s", COMMAND_TIMEOUT.as_secs()))
        }),
    )
}

/// One HTTP/1.1 exchange on loopback (no client library for a single request).
async fn send(
    mut stream: tokio::net::TcpStream,
    endpoint: &AdminEndpoint,
    command: &Command,
) -> anyhow::Result<String> {
    let body = serde_json::to_vec(command)?;
    let head = format!(
        "POST /admin/command HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.addr,
        endpoint.token,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").context("a malformed answer from the admin endpoint")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status in the answer")?;
    let json: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    if status == 200 {
        Ok(json["message"].as_str().unwrap_or_default().to_string())
    } else {
        anyhow::bail!(
            "the server refused the command ({status}): {}",
            json["error"]["message"].as_str().unwrap_or(body)
        )
    }
}
