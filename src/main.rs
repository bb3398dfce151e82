//! `divine-heroes`: parse the command line, load settings, run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use divine_heroes::game::data::GameData;
use divine_heroes::game::gacha::simulate::simulate;
use divine_heroes::ops;
use divine_heroes::platform::cache::Cache;
use divine_heroes::platform::config::{Role, Settings};
use divine_heroes::server::Server;
use divine_heroes::writes::Writer;

#[derive(Parser)]
#[command(name = "divine-heroes", version, about = "Divine Heroes game server: one binary, three roles")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server for a role.
    Serve {
        /// Which modules to mount.
        #[arg(long, value_enum, default_value = "all")]
        role: Role,
        /// Port (default: api 8001, battle 8002, gacha 8003, all 8001).
        #[arg(long)]
        port: Option<u16>,
        /// Extra settings file, layered over config/default.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run the outbox relay and event consumers here (default: api and all roles).
        #[arg(long, conflicts_with = "no_workers")]
        workers: bool,
        /// Do not run them here.
        #[arg(long)]
        no_workers: bool,
    },
    /// Load and validate the settings and every game data table, then exit.
    CheckConfig {
        /// Extra settings file, layered over config/default.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Credit a player's balance in the configured store (operator compensation).
    /// Ledgered with reason "operator_grant". Beside a running server on the
    /// embedded store, the server performs it (its admin endpoint).
    Grant {
        /// Username (case-insensitive).
        #[arg(long)]
        to: String,
        /// Currency: gold, coins, crystals, divine_essence, stamina, arena_tickets, arena_medals.
        #[arg(long)]
        currency: String,
        /// Amount to add (positive).
        #[arg(long)]
        amount: i64,
        /// Why, kept in the ledger reference.
        #[arg(long, default_value = "operator")]
        note: String,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create many players at once for load tests: `<prefix><i>` for i in
    /// `start..start+players`, all with one password, in bulk writes (no events).
    /// Refused when APP_ENV=production.
    Seed {
        /// How many players.
        #[arg(long)]
        players: u64,
        /// Username prefix.
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// First number.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Their password.
        #[arg(long, default_value = "bench-password-1")]
        password: String,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Mark an account as a minor's (its summons are refused) or clear the mark
    /// (through a running server on the embedded store, as `grant`).
    Minor {
        /// Username (case-insensitive).
        #[arg(long)]
        to: String,
        /// Clear the mark instead of setting it.
        #[arg(long)]
        clear: bool,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check every player's ledger, summons, heroes and idempotency answers
    /// against each other (README, Security). Exits 1 on any mismatch.
    Audit {
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write every player (with ledger, history, mail, idempotency records) and
    /// every kept battle to FILE as JSON lines, owner-only (it holds password
    /// hashes). On the embedded store, stop the server first.
    Export {
        /// The file to write.
        #[arg(long)]
        to: PathBuf,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Read an export into the configured store (rows already there are
    /// replaced; a file cut short is refused before anything is written).
    Import {
        /// The export to read.
        #[arg(long)]
        from: PathBuf,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// System mail to players.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Arena operations.
    Arena {
        #[command(subcommand)]
        command: ArenaCommand,
    },
    /// Gacha tools for designers.
    Gacha {
        #[command(subcommand)]
        command: GachaCommand,
    },
    /// Purchases with real money.
    Purchases {
        #[command(subcommand)]
        command: PurchasesCommand,
    },
    /// Abyss tower operations.
    Tower {
        #[command(subcommand)]
        command: TowerCommand,
    },
    /// Chat moderation: mute, unmute, reports (through a running server on the
    /// embedded store, as `grant`).
    Chat {
        #[command(subcommand)]
        command: ChatCommand,
    },
    /// Redeem codes (through a running server on the embedded store, as `grant`).
    Codes {
        #[command(subcommand)]
        command: CodesCommand,
    },
}

#[derive(Subcommand)]
enum TowerCommand {
    /// Mail last week's board rewards by rank (run after Monday 00:00 UTC;
    /// re-running pays no one twice). Through a running server, as `grant`.
    CloseWeek {
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ChatCommand {
    /// Refuse a player's chat messages for some hours.
    Mute {
        /// Username (case-insensitive).
        #[arg(long)]
        player: String,
        /// How long, hours (at least 1).
        #[arg(long)]
        hours: u32,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Lift a player's mute.
    Unmute {
        /// Username (case-insensitive).
        #[arg(long)]
        player: String,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List reported messages, one JSON line each.
    Reports {
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CodesCommand {
    /// Create a code.
    Create {
        /// The code players type (3-32 of A-Z, 0-9, _ and -; case-insensitive).
        #[arg(long)]
        code: String,
        /// What one redemption gives, such as gold=1000,crystals=50.
        #[arg(long)]
        reward: String,
        /// Redemptions allowed in all (across every pod).
        #[arg(long)]
        max_uses: u64,
        /// Last valid day, YYYY-MM-DD (UTC), or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List every code with its uses, one JSON line each.
    List {
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Disable a code: later redemptions are refused.
    Disable {
        /// The code.
        code: String,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PurchasesCommand {
    /// List players whose refunds could not be taken back in full (crystals
    /// owed), one JSON line each (through a running server, as `grant`).
    Debts {
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MailCommand {
    /// Send a mail (with optional currency attachments) to one player or to all.
    /// Through a running server on the embedded store, as `grant`.
    Send {
        /// Username (case-insensitive).
        #[arg(long, conflicts_with = "all")]
        to: Option<String>,
        /// Every player.
        #[arg(long)]
        all: bool,
        /// Subject line.
        #[arg(long)]
        subject: String,
        /// Text.
        #[arg(long, default_value = "")]
        body: String,
        /// Attachment such as crystals=100; repeat for more.
        #[arg(long)]
        attach: Vec<String>,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ArenaCommand {
    /// Close the arena season for every player whose month has ended: mail the
    /// season reward by band (once per player per season) and softly reset ratings.
    /// Safe to re-run; a schedule of "shortly after 00:00 UTC on the 1st" fits.
    CloseSeason {
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum GachaCommand {
    /// Pull a banner offline and compare the observed shares with the published rates.
    Simulate {
        /// Banner id.
        #[arg(long)]
        banner: String,
        /// Number of pulls.
        #[arg(long, default_value_t = 1_000_000)]
        pulls: u64,
        /// RNG seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Extra settings file (for GAME_DATA_DIR).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Re-derive one of a player's summons from its provably-fair seed and
    /// compare it with what was recorded. Exits 1 when they differ.
    Verify {
        /// Username (case-insensitive).
        #[arg(long)]
        player: String,
        /// Summon id (from the receipt or the history).
        #[arg(long)]
        summon: String,
        /// A revealed server seed (hex) to check instead of the stored one
        /// (which an operator may use before it is revealed).
        #[arg(long)]
        server_seed: Option<String>,
        /// Extra settings file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<&PathBuf>) -> Result<Settings, String> {
    Settings::load(config.map(std::path::PathBuf::as_path)).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { role, port, config, workers, no_workers } => {
            let mut settings = match load(config.as_ref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            if port.is_some() {
                settings.port = port;
            }
            if workers || no_workers {
                settings.workers = Some(workers);
            }
            let tracing = match divine_heroes::platform::telemetry::init_with_tracing(
                settings.log_format,
                settings.otel_exporter_otlp_endpoint.as_deref(),
                &settings.service_name,
            ) {
                Ok(guard) => guard,
                Err(e) => return fail(&format!("OTEL_EXPORTER_OTLP_ENDPOINT: {e:#}")),
            };
            let result = actix_web::rt::System::new().block_on(async move {
                let server = Server::build(settings, role).await?;
                tracing::info!(role = role.name(), port = server.port(), "divine-heroes listening");
                server.run_until_stopped().await?;
                tracing::info!("stopped cleanly");
                anyhow::Ok(())
            });
            drop(tracing); // the last spans go out before the exit
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}")),
            }
        }
        Command::CheckConfig { config } => {
            let settings = match load(config.as_ref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            match GameData::load(&settings.game_data_dir) {
                Ok(data) => {
                    println!("settings: {settings:#?}");
                    println!(
                        "heroes: {} in {}",
                        data.catalog.all().len(),
                        settings.game_data_dir.join("heroes.toml").display()
                    );
                    if data.unrecorded_versions.is_empty() {
                        println!("rate tables: every version recorded in {}", divine_heroes::game::data::RATE_LOCK);
                    } else {
                        println!(
                            "rate tables: versions to record (append to {}):",
                            divine_heroes::game::data::RATE_LOCK
                        );
                        for line in &data.unrecorded_versions {
                            println!("{line}");
                        }
                    }
                    println!("banners:");
                    for b in data.banners.all() {
                        println!(
                            "  {} ({}): {} {}/{}, hard pity {} on {}",
                            b.id, b.name, b.currency, b.cost_single, b.cost_ten, b.hard_pity, b.pity_category
                        );
                    }
                    let r = &data.rewards;
                    println!(
                        "rewards: idle {} gold/h (+{}/stage) capped at {} h; {}-day login cycle; mail kept {} days",
                        r.idle.gold_per_hour,
                        r.idle.gold_per_hour_per_stage,
                        r.idle.cap_hours,
                        r.daily_login.len(),
                        r.mail.expiry_days
                    );
                    println!("configuration OK");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("invalid game data: {e}")),
            }
        }
        Command::Grant { to, currency, amount, note, config } => {
            run_command(config.as_ref(), ops::Command::Grant { to, currency, amount, note })
        }
        Command::Seed { players, prefix, start, password, config } => {
            let production =
                load(config.as_ref()).is_ok_and(|s| s.app_env == divine_heroes::platform::config::AppEnv::Production);
            if production {
                return fail("seed makes made-up players: refused with APP_ENV=production");
            }
            run_op(config.as_ref(), |store, _, data| async move {
                let started = std::time::Instant::now();
                let hash = divine_heroes::platform::auth::hash_password(&password.into())
                    .map_err(|e| anyhow::anyhow!("hashing the password: {e:?}"))?;
                let now = chrono::Utc::now();
                let n = ops::seed_players(&store, &data.catalog, &prefix, start, players, &hash, now).await?;
                let secs = started.elapsed().as_secs_f64();
                Ok(format!("created {n} players in {secs:.1} s ({:.0} per second)", n as f64 / secs.max(1e-9)))
            })
        }
        Command::Minor { to, clear, config } => run_command(config.as_ref(), ops::Command::Minor { to, clear }),
        Command::Audit { config } => {
            let history_kept = load(config.as_ref()).map(|s| s.retention().history).unwrap_or_default();
            run_op(config.as_ref(), move |store, _, data| async move {
                let scope = divine_heroes::audit::Scope { data: &data, now: chrono::Utc::now(), history_kept };
                let report = divine_heroes::audit::audit(&store, &scope).await?;
                anyhow::ensure!(report.clean(), "{report}");
                Ok(report.to_string())
            })
        }
        Command::Export { to, config } => run_op(config.as_ref(), |store, _, _| async move {
            let moved = divine_heroes::backup::export_file(&store, &to, &mut show_progress).await?;
            Ok(format!("exported {moved} to {}", to.display()))
        }),
        Command::Import { from, config } => run_op(config.as_ref(), |store, _, _| async move {
            let moved = divine_heroes::backup::import_file(&store, &from, &mut show_progress).await?;
            Ok(format!("imported {moved} from {}", from.display()))
        }),
        Command::Mail { command: MailCommand::Send { to, all, subject, body, attach, config } } => {
            run_command(config.as_ref(), ops::Command::MailSend { to, all, subject, body, attach })
        }
        Command::Arena { command: ArenaCommand::CloseSeason { config } } => {
            run_command(config.as_ref(), ops::Command::CloseSeason)
        }
        Command::Purchases { command: PurchasesCommand::Debts { config } } => {
            run_command(config.as_ref(), ops::Command::PurchaseDebts)
        }
        Command::Tower { command: TowerCommand::CloseWeek { config } } => {
            run_command(config.as_ref(), ops::Command::TowerCloseWeek)
        }
        Command::Chat { command } => match command {
            ChatCommand::Mute { player, hours, config } => {
                run_command(config.as_ref(), ops::Command::ChatMute { player, hours })
            }
            ChatCommand::Unmute { player, config } => run_command(config.as_ref(), ops::Command::ChatUnmute { player }),
            ChatCommand::Reports { config } => run_command(config.as_ref(), ops::Command::ChatReports),
        },
        Command::Codes { command } => match command {
            CodesCommand::Create { code, reward, max_uses, expires, config } => {
                run_command(config.as_ref(), ops::Command::CodesCreate { code, reward, max_uses, expires })
            }
            CodesCommand::List { config } => run_command(config.as_ref(), ops::Command::CodesList),
            CodesCommand::Disable { code, config } => run_command(config.as_ref(), ops::Command::CodesDisable { code }),
        },
        Command::Gacha { command: GachaCommand::Verify { player, summon, server_seed, config } } => {
            run_op(config.as_ref(), |store, _, data| async move {
                verify_summon(&store, &data, &player, &summon, server_seed.as_deref()).await
            })
        }
        Command::Gacha { command: GachaCommand::Simulate { banner, pulls, seed, config } } => {
            let settings = match load(config.as_ref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let data = match GameData::load(&settings.game_data_dir) {
                Ok(d) => d,
                Err(e) => return fail(&format!("invalid game data: {e}")),
            };
            let Some(b) = data.banners.get(&banner) else {
                let ids: Vec<_> = data.banners.all().iter().map(|b| b.id.as_str()).collect();
                return fail(&format!("no banner {banner:?}; banners: {}", ids.join(", ")));
            };
            let started = std::time::Instant::now();
            let rates = simulate(b, pulls, seed);
            let secs = started.elapsed().as_secs_f64();
            println!("banner {} ({}), {pulls} pulls, seed {seed}", b.id, b.name);
            println!("{:<16} {:>12} {:>12} {:>12} {:>8}", "category", "published", "observed", "±99.9%", "ok");
            let mut all_ok = true;
            for r in &rates {
                all_ok &= r.within_band();
                println!(
                    "{:<16} {:>11.5}% {:>11.5}% {:>11.5}% {:>8}",
                    r.id,
                    r.published * 100.0,
                    r.observed * 100.0,
                    r.band * 100.0,
                    if r.within_band() { "yes" } else { "NO" }
                );
            }
            println!("{:.0} pulls/s", pulls as f64 / secs);
            if all_ok {
                ExitCode::SUCCESS
            } else {
                fail("observed shares outside the 99.9% band")
            }
        }
    }
}

/// `gacha verify`: the re-derivation as JSON; an error when it does not match.
async fn verify_summon(
    store: &divine_heroes::store::DynStore,
    data: &GameData,
    username: &str,
    summon_id: &str,
    server_seed: Option<&str>,
) -> anyhow::Result<String> {
    use divine_heroes::game::gacha::fairness::parse_seed;
    use divine_heroes::verify::{find_summon, verify_record};
    let given = server_seed
        .map(|s| parse_seed(s).ok_or_else(|| anyhow::anyhow!("--server-seed must be 64 hexadecimal digits")))
        .transpose()?;
    let player = store
        .player_by_username(&username.to_ascii_lowercase())
        .await?
        .ok_or_else(|| anyhow::anyhow!("no player {username:?}"))?;
    let (record, row_version) =
        find_summon(store.as_ref(), &player.id, summon_id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let v = verify_record(data, &player, &record, row_version, given, true).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = serde_json::to_string_pretty(&v)?;
    anyhow::ensure!(v.results_match, "{text}\nsummon {summon_id} does NOT match its derivation");
    Ok(format!("{text}\nsummon {summon_id} matches its derivation from the committed seed"))
}

/// Shows a running count on a terminal (nothing in a pipe or a log).
fn show_progress(moved: divine_heroes::backup::Moved) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprint!("\r{moved} ");
    }
}

/// Runs a writing operator command: through the running server that holds the
/// embedded store when there is one (`divine_heroes::admin`), else on the store.
fn run_command(config: Option<&PathBuf>, command: ops::Command) -> ExitCode {
    let settings = match load(config) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if settings.mongo_url.is_none() {
        let dir = settings.data_dir.clone();
        let sent = command.clone();
        let forwarded =
            actix_web::rt::System::new().block_on(async move { divine_heroes::admin::forward(&dir, &sent).await });
        match forwarded {
            Some(Ok(msg)) => {
                println!("{msg} (performed by the running server)");
                return ExitCode::SUCCESS;
            }
            Some(Err(e)) => return fail(&format!("{e:#}")),
            None => {}
        }
    }
    run_op(config, |store, cache, data| async move {
        let writer = Writer { store: &store, cache: &cache, data: &data };
        command.run(&writer, chrono::Utc::now()).await
    })
}

/// Runs an operator command against the configured store and game data.
fn run_op<F, Fut>(config: Option<&PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(divine_heroes::store::DynStore, Cache, Arc<GameData>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>>,
{
    let settings = match load(config) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let data = match GameData::load(&settings.game_data_dir) {
        Ok(d) => Arc::new(d),
        Err(e) => return fail(&format!("invalid game data: {e}")),
    };
    let result = actix_web::rt::System::new().block_on(async move {
        let store = divine_heroes::server::open_store(&settings).await?;
        let redis = divine_heroes::server::redis_pool(&settings)?;
        let cache = Cache::new(
            &settings.cache_prefix,
            redis,
            false,
            [settings.cache_ttl_short, settings.cache_ttl_medium, settings.cache_ttl_long],
        );
        f(store, cache, data).await
    });
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("divine-heroes: {msg}");
    ExitCode::FAILURE
}
