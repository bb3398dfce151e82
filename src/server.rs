//! Builds the server for a role: state, middleware, routes; runs it with a
//! graceful shutdown.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;

use crate::game::data::GameData;
use crate::platform::auth::PlayerSource;
use crate::platform::clock::{Clock, SystemClock};
use crate::platform::config::{MqBackend, Role, Settings};
use crate::platform::error::{json_error, path_error, query_error};
use crate::platform::metrics::observe;
use crate::platform::queue::{MemoryQueue, Queue, RabbitQueue, RedisStreamQueue};
use crate::platform::rate_limit::limit_general;
use crate::roles;
use crate::roles::common::OpenApiJson;
use crate::state::AppState;
use crate::store::embedded::EmbeddedStore;
use crate::store::mongo::MongoStore;
use crate::store::DynStore;

/// Largest JSON body accepted.
/// Largest JSON body any route takes: the biggest real one (a team, credentials)
/// is a few hundred bytes, so this is small; a larger body is a 413.
const JSON_LIMIT_BYTES: usize = 16 * 1024;
/// How long a client may take to send a request's head; a slower one is cut.
const CLIENT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A built, bound, not yet running server.
pub struct Server {
    port: u16,
    server: actix_web::dev::Server,
    state: web::Data<AppState>,
    /// The queue the workers use; `None`: this process runs no workers.
    queue: Option<Arc<dyn Queue>>,
    /// The operator endpoint (embedded store only).
    admin: Option<crate::admin::AdminServer>,
}

/// Opens the configured queue (`MQ_BACKEND`); a Redis that cannot be reached is
/// a start-up error that says so.
pub async fn open_queue(settings: &Settings) -> anyhow::Result<Arc<dyn Queue>> {
    Ok(match settings.mq_backend {
        MqBackend::Memory => Arc::new(MemoryQueue::default()),
        MqBackend::Redis => {
            let mut s = settings.clone();
            s.redis_enabled = true;
            let pool = redis_pool(&s)?.context("REDIS_URL")?;
            let stream = format!("{}:events", settings.cache_prefix);
            let group = format!("{}:consumers", settings.cache_prefix);
            Arc::new(
                RedisStreamQueue::new(pool, stream, group)
                    .await
                    .with_context(|| format!("MQ_BACKEND=redis: cannot reach Redis at {}", settings.redis_url))?,
            )
        }
        MqBackend::Rabbitmq => Arc::new(
            RabbitQueue::connect(&settings.rabbitmq_url, format!("{}.events", settings.cache_prefix))
                .await
                .context("MQ_BACKEND=rabbitmq: cannot reach RabbitMQ at RABBITMQ_URL")?,
        ),
        MqBackend::Kafka => {
            let prefix = &settings.cache_prefix;
            let kafka = crate::platform::kafka::KafkaSettings {
                brokers: settings.kafka_brokers.clone(),
                topic: settings.kafka_topic.clone().unwrap_or_else(|| format!("{prefix}.events")),
                group: settings.kafka_group.clone().unwrap_or_else(|| format!("{prefix}-consumers")),
                partitions: settings.kafka_partitions,
            };
            Arc::new(
                crate::platform::kafka::KafkaQueue::connect(kafka)
                    .await
                    .with_context(|| format!("MQ_BACKEND=kafka: cannot reach Kafka at {}", settings.kafka_brokers))?,
            )
        }
    })
}

/// Opens the configured store: MongoDB when `MONGO_URL` is set, else the embedded one.
pub async fn open_store(settings: &Settings) -> anyhow::Result<DynStore> {
    Ok(match &settings.mongo_url {
        Some(url) => Arc::new(
            MongoStore::connect_with(
                url.expose_secret(),
                &settings.mongo_db,
                settings.retention(),
                Duration::from_millis(settings.store_write_timeout_ms),
            )
            .await
            .context("connecting to MongoDB (MONGO_URL)")?
            .with_read_preference(&settings.mongo_read_preference)?,
        ),
        None => Arc::new(
            EmbeddedStore::open_with(&settings.data_dir, settings.store_cache_mb)
                .with_context(|| format!("opening the embedded store in {}", settings.data_dir.display()))?,
        ),
    })
}

/// The Redis pool when `REDIS_ENABLED=true`. Connections are made lazily, so an
/// unreachable Redis does not stop the start (readiness reports it).
pub fn redis_pool(settings: &Settings) -> anyhow::Result<Option<deadpool_redis::Pool>> {
    if !settings.redis_enabled {
        return Ok(None);
    }
    let pool = deadpool_redis::Config::from_url(settings.redis_url.clone())
        .builder()
        .context("REDIS_URL")?
        .max_size(32)
        .wait_timeout(Some(Duration::from_millis(500)))
        .create_timeout(Some(Duration::from_millis(500)))
        .recycle_timeout(Some(Duration::from_millis(500)))
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .context("building the Redis pool")?;
    Ok(Some(pool))
}

impl Server {
    /// Builds the server on the system clock.
    pub async fn build(settings: Settings, role: Role) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, role, Arc::new(SystemClock)).await
    }

    /// Builds the server with a given time source (tests move it).
    pub async fn build_with_clock(settings: Settings, role: Role, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let data = Arc::new(GameData::load(&settings.game_data_dir).context("loading game data")?);
        for line in &data.unrecorded_versions {
            tracing::warn!(entry = %line, "a rate-table version is not in config/rate-tables.lock yet: append this line");
        }
        let store = open_store(&settings).await?;
        let queue = if settings.runs_workers(role) { Some(open_queue(&settings).await?) } else { None };
        // This process holds the embedded store's file: operator commands come through it.
        let embedded = store.kind() == "embedded";
        let admin_settings = settings.clone();
        let mut server = Self::build_with(settings, role, clock, store, data)?;
        server.queue = queue;
        if embedded {
            server.admin = Some(crate::admin::start(&admin_settings, server.state.clone())?);
        }
        Ok(server)
    }

    /// Builds the server from already-opened parts.
    pub fn build_with(
        settings: Settings,
        role: Role,
        clock: Arc<dyn Clock>,
        store: DynStore,
        data: Arc<GameData>,
    ) -> anyhow::Result<Self> {
        let redis = redis_pool(&settings)?;
        // The recorder must exist before the first gauge is set.
        crate::platform::metrics::install();
        #[cfg(feature = "gacha")]
        roles::gacha::publish_rate_metrics(&data);
        let addr = format!("{}:{}", settings.host, settings.port_for(role));
        let listener = TcpListener::bind(&addr).with_context(|| format!("binding {addr}"))?;
        let port = listener.local_addr()?.port();
        let shutdown_timeout = settings.shutdown_timeout_secs;
        let state = web::Data::new(AppState::new(settings, role, store, data, clock, redis));
        let app_state = state.clone();
        // The routes document themselves (`OpenApiJson`): what this role mounts.
        let openapi = web::Data::new(OpenApiJson::new(role));
        let server = HttpServer::new(move || {
            // The handlers alone: the document is built once, by `OpenApiJson`.
            App::new()
                .configure(|cfg| roles::configure(role, cfg))
                .app_data(openapi.clone())
                .app_data(app_state.clone())
                // Narrow app data of the middleware and extractors, so none of them needs AppState.
                .app_data(web::Data::from(app_state.authenticator.clone()))
                .app_data(web::Data::from(app_state.limits.clone()))
                .app_data(web::Data::from(app_state.clone().into_inner() as Arc<dyn PlayerSource>))
                .app_data(web::Data::new(app_state.role))
                .app_data(web::JsonConfig::default().limit(JSON_LIMIT_BYTES).error_handler(json_error))
                .app_data(web::PathConfig::default().error_handler(path_error))
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .wrap(from_fn(limit_general))
                .wrap(security_headers())
                .wrap(from_fn(observe))
                .wrap(from_fn(head_as_get))
                .wrap(from_fn(close_when_draining))
                .default_service(web::to(roles::common::not_found))
        })
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(shutdown_timeout)
        .run();
        Ok(Self { port, server, state, queue: None, admin: None })
    }

    /// Runs the relay and consumers on `queue` in this process.
    pub fn attach_queue(&mut self, queue: Arc<dyn Queue>) {
        self.queue = Some(queue);
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state (tests reach the store and clock through it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Runs until SIGTERM or SIGINT, then drains the way load balancers need:
    /// readiness turns 503 at once while the server keeps accepting and serving
    /// for `SHUTDOWN_DELAY_SECS` (each answer closing its connection, so kept-alive
    /// clients reconnect elsewhere rather than meet a closed socket); then the
    /// listener closes and in-flight requests get `SHUTDOWN_TIMEOUT_SECS` to finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let state = self.state.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            state.begin_shutdown();
            let delay = state.settings.shutdown_delay_secs;
            tracing::info!(
                delay_secs = delay,
                "shutdown signal received: readiness is 503; serving on until the delay ends"
            );
            tokio::time::sleep(Duration::from_secs(delay)).await;
            tracing::info!("closing the listener; draining in-flight requests");
            handle.stop(true).await;
        });
        self.run().await
    }

    /// Runs without signal handling (tests stop it through the handle).
    pub async fn run(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let pruner = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_mins(1));
            loop {
                tick.tick().await;
                state.limits.general.prune();
                state.limits.auth.prune();
                state.limits.redeem.prune();
                state.limits.chat.prune();
            }
        });
        let chat_listener = self.state.chat.spawn_listener();
        let workers = match &self.queue {
            Some(q) => crate::workers::spawn(self.state.clone(), q.clone()),
            None => Vec::new(),
        };
        let admin = self.admin.map(|a| {
            let handle = a.server.handle();
            tokio::spawn(a.server);
            (handle, a.file)
        });
        let r = self.server.await;
        if let Some((handle, file)) = admin {
            // Commands go to the store directly once the file is free.
            let _ = std::fs::remove_file(file);
            handle.stop(true).await;
        }
        pruner.abort();
        if let Some(l) = chat_listener {
            l.abort();
        }
        // In-flight events stay in the outbox or unacknowledged in the broker.
        workers.iter().for_each(tokio::task::JoinHandle::abort);
        r
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// HEAD is answered wherever GET is (load balancers and uptime checks probe with
/// it): it is routed as GET, and the HTTP layer, which parsed it as HEAD, sends
/// the answer's headers without its body.
async fn head_as_get(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// Once shutdown began, every answer closes its connection: a kept-alive client
/// sends its next request on a new connection, which the load balancer (told by
/// readiness) gives to another pod.
async fn close_when_draining(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut res = next.call(req).await?;
    if state.is_some_and(|s| s.shutting_down.load(std::sync::atomic::Ordering::SeqCst)) {
        res.response_mut().head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(res)
}

/// Headers on every response: the API serves JSON only, so nothing may be
/// sniffed as another type, framed, cached by intermediaries or run as a page.
fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}
