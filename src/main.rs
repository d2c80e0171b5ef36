//! The `incident-bot` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use incident_bot::catalog::Catalog;
use incident_bot::config::{Secrets, Settings};
use incident_bot::startup::Application;

#[derive(Parser)]
#[command(
    name = "incident-bot",
    version,
    about = "A Slack bot that cuts Mean Time to Restore"
)]
struct Cli {
    /// Configuration file (every key can be overridden from the environment).
    #[arg(
        long,
        global = true,
        default_value = "config/incident-bot.toml",
        env = "INCIDENT_BOT_CONFIG"
    )]
    config: PathBuf,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bot: HTTP server and background workers.
    Serve {
        /// Address to listen on (overrides `listen` and PORT).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Check the configuration and the catalog's coverage (runbook, dashboard, owner, pager).
    CheckConfig,
    /// Run a whole incident against the built-in Slack stand-in and print what Slack would show.
    Demo,
}

fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Demo => {
            init_tracing(cli.log_json, "warn");
            incident_bot::demo::run().await
        }
        Cmd::Serve { listen } => {
            init_tracing(cli.log_json, "info,sqlx=warn,tower_http=info");
            serve(&cli.config, listen).await
        }
        Cmd::Migrate => {
            init_tracing(cli.log_json, "info");
            migrate(&cli.config).await
        }
        Cmd::CheckConfig => {
            init_tracing(cli.log_json, "warn");
            check_config(&cli.config)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_catalog(settings: &Settings) -> anyhow::Result<Catalog> {
    if settings.catalog_path.exists() {
        Ok(Catalog::load(&settings.catalog_path)?)
    } else {
        tracing::warn!(path = %settings.catalog_path.display(), "no service catalog: no owners, runbooks or pager routes");
        Ok(Catalog::empty())
    }
}

async fn serve(config: &std::path::Path, listen: Option<String>) -> anyhow::Result<()> {
    let mut settings = Settings::load(config)?;
    if let Some(l) = listen {
        settings.listen = l;
    }
    let catalog = load_catalog(&settings)?;
    let secrets = Secrets::from_env(catalog.secret_vars().iter().map(String::as_str));
    if secrets.slack_signing_secret.is_none() {
        tracing::warn!("SLACK_SIGNING_SECRET is not set: every Slack request will be refused");
    }
    let app = Application::build(settings, secrets, catalog).await?;
    // One line on stdout that scripts (and the restart test) can wait for.
    println!("incident-bot listening on port {}", app.port());
    app.run_until_stopped().await
}

async fn migrate(config: &std::path::Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let db = incident_bot::db::Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    println!("migrations applied ({:?})", db.backend);
    Ok(())
}

fn check_config(config: &std::path::Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let catalog = Catalog::load(&settings.catalog_path)?;
    println!(
        "{}: {} services",
        settings.catalog_path.display(),
        catalog.services().len()
    );
    let gaps = catalog.coverage_gaps();
    println!(
        "{}",
        incident_bot::catalog::render_gaps_table(&gaps, catalog.services())
    );
    Ok(())
}
