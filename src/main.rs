//! `divine-heroes`: parse the command line, load settings, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use divine_heroes::game::data::GameData;
use divine_heroes::game::gacha::simulate::simulate;
use divine_heroes::platform::config::{Role, Settings};
use divine_heroes::platform::telemetry::init_telemetry;
use divine_heroes::server::Server;

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
    },
    /// Load and validate the settings and every game data table, then exit.
    CheckConfig {
        /// Extra settings file, layered over config/default.toml.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Credit a player's balance in the configured store (operator compensation).
    /// Ledgered with reason "operator_grant". Stop the server first when it uses
    /// the embedded store: its file is opened by one process at a time.
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
    /// Gacha tools for designers.
    Gacha {
        #[command(subcommand)]
        command: GachaCommand,
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
}

fn load(config: Option<&PathBuf>) -> Result<Settings, String> {
    Settings::load(config.map(|p| p.as_path())).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { role, port, config } => {
            let mut settings = match load(config.as_ref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            if port.is_some() {
                settings.port = port;
            }
            init_telemetry(settings.log_format);
            let result = actix_web::rt::System::new().block_on(async move {
                let server = Server::build(settings, role).await?;
                tracing::info!(role = role.name(), port = server.port(), "divine-heroes listening");
                server.run_until_stopped().await?;
                tracing::info!("stopped cleanly");
                anyhow::Ok(())
            });
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
                    println!("banners:");
                    for b in data.banners.all() {
                        println!(
                            "  {} ({}): {} {}/{}, hard pity {} on {}",
                            b.id, b.name, b.currency, b.cost_single, b.cost_ten, b.hard_pity, b.pity_category
                        );
                    }
                    println!("configuration OK");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("invalid game data: {e}")),
            }
        }
        Command::Grant { to, currency, amount, note, config } => {
            let settings = match load(config.as_ref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let result = actix_web::rt::System::new().block_on(grant(settings, to, currency, amount, note));
            match result {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("{e:#}")),
            }
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

async fn grant(settings: Settings, to: String, currency: String, amount: i64, note: String) -> anyhow::Result<String> {
    use std::sync::Arc;

    use divine_heroes::game::economy::Currency;
    use divine_heroes::store::{Effects, MutateOutcome, Mutation, StoredResponse};

    let currency: Currency =
        serde_json::from_value(serde_json::json!(currency)).map_err(|_| anyhow::anyhow!("unknown currency"))?;
    anyhow::ensure!(amount > 0, "amount must be positive");
    let store = divine_heroes::server::open_store(&settings).await?;
    let player =
        store.player_by_username(&to.to_ascii_lowercase()).await?.ok_or_else(|| anyhow::anyhow!("no player {to:?}"))?;
    let op: Mutation = Arc::new(move |p| {
        p.balances.credit(currency, amount);
        Ok(Effects {
            reason: "operator_grant".into(),
            ref_id: note.clone(),
            history: vec![],
            response: StoredResponse { status: 200, body: serde_json::json!({}) },
        })
    });
    match store.mutate(&player.id, None, chrono::Utc::now(), op).await? {
        MutateOutcome::Applied(_, p) => Ok(format!("{} now has {} {currency}", p.username, p.balances.get(currency))),
        other => anyhow::bail!("grant not applied: {other:?}"),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("divine-heroes: {msg}");
    ExitCode::FAILURE
}
