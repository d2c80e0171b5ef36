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
    /// Configuration file (every key can be overridden from the environment) [default:
    /// config/incident-bot.toml, which may be absent; a file named here must exist].
    #[arg(long, global = true, env = "INCIDENT_BOT_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines (LOG_JSON=1, true, yes or on).
    #[arg(long, global = true, env = "LOG_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
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
    /// Run a whole incident against the built-in Slack stand-in and tell what Slack shows, scene by scene.
    Demo {
        /// Keep the database and the digest chart in this directory, and print the `report` command for them.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Also write the whole conversation as one self-contained, Slack-like HTML page.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Deploy events: `deploy record` tells a running bot about a deploy (for CI pipelines).
    Deploy {
        #[command(subcommand)]
        action: incident_bot::deploys::record::DeployCmd,
    },
    /// Digest figures for any period: MTTR per severity (and per month), phases, detection, deploys, hours.
    ///
    /// p50/p90 with n beside the means ("not enough data" under 5). Change-failure rate = failed deployments /
    /// production deploys in the period; a failed deployment is a production deploy to an incident's service or
    /// one of its dependencies in the 2 hours before the incident started; its recovery time runs from the
    /// deploy to the last resolution of its incidents (docs/distributions.md).
    Report {
        /// Start: `30d`, `2w`, `2026-10-01`, `2026-10-01T14:00` or RFC 3339 (default: 7 days ago).
        #[arg(long)]
        since: Option<String>,
        /// End, same forms (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Only incidents of this service.
        #[arg(long)]
        service: Option<String>,
        /// Only incidents of this catalog team's services.
        #[arg(long)]
        team: Option<String>,
        /// Only P1, P2 or P3.
        #[arg(long)]
        severity: Option<String>,
        /// text, json or csv.
        #[arg(long, default_value = "text")]
        format: String,
        /// IANA time zone for dates, months and working hours (default: incidents.default_timezone).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Write one incident's whole timeline, or its postmortem draft, to stdout (read-only: never migrates the
    /// database).
    Export {
        /// The incident, e.g. INC-42.
        incident: String,
        /// md (a Markdown table), json (an array of {at, kind, author, text, permalink, deleted}) or postmortem
        /// (the postmortem draft the bot uploads, same bytes for the same data).
        #[arg(long, default_value = "md")]
        format: String,
        /// IANA time zone for the times (default: UTC; for postmortem, incidents.default_timezone).
        #[arg(long)]
        tz: Option<String>,
        /// Database to read (default: the configuration's database_url).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Import incident history as baseline MTTR data.
    Import {
        #[command(subcommand)]
        source: ImportCmd,
    },
    /// Benchmarks that print their figures (build with --release).
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
}

#[derive(Subcommand)]
enum ImportCmd {
    /// Resolved PagerDuty incidents (REST API; PAGERDUTY_API_TOKEN, PAGERDUTY_API_URL). Safe to run again.
    Pagerduty {
        /// How far back: `30d`, `12w`, `2026-10-01`, … (by creation time).
        #[arg(long, default_value = "30d")]
        since: String,
        /// Up to (default: now).
        #[arg(long)]
        until: Option<String>,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Building the weekly digest over 100,000 stored incidents (target ≤ 500 ms on SQLite).
    Digest {
        /// Incidents to store.
        #[arg(long, default_value_t = 100_000)]
        incidents: usize,
        /// Days they are spread over.
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// Database: default a new SQLite file.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// An alert storm: alerts accepted per second, 202 latency, incidents made, card edits, Slack calls.
    Alerts {
        /// Firing alerts to send (for three services).
        #[arg(long, default_value_t = 10_000)]
        alerts: usize,
        /// Alerts per Alertmanager webhook.
        #[arg(long, default_value_t = 10)]
        per_request: usize,
        /// Webhooks in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Database: default a new SQLite file; `postgres://…` makes a fresh database on that server.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Acknowledgement latency and time to a ready war room against a slow Slack.
    Warroom {
        /// Slash commands in flight at once for the acknowledgement figure: one figure for each number.
        #[arg(long, value_delimiter = ',', default_value = "200,20")]
        commands: Vec<usize>,
        /// How long the Slack stand-in takes to answer each call, in ms.
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
        /// Incidents timed one at a time for the card and war-room figures.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Bursts of `commands` sent for the acknowledgement figure, one after another.
        #[arg(long, default_value_t = 5)]
        bursts: usize,
    },
    /// The load generator of `bench warroom`, which runs it as a child process: bursts on standard input.
    #[command(hide = true)]
    SlackLoad {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        response_url: String,
        #[arg(long)]
        connections: usize,
    },
    /// What the bot costs to run: idle RSS, RSS under a burst of commands, start to /readyz, binary size.
    Resources {
        /// Slash commands sent at once for the RSS-under-load figure.
        #[arg(long, default_value_t = 200)]
        commands: usize,
        /// How long the Slack stand-in takes to answer each call, in ms.
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
        /// Starts timed per case (fresh database file, already migrated one).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The deploy store at scale: 1,000,000 events, the "recent deploys to X" lookup, API ingestion.
    Deploys {
        /// Deploy events to load.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Database: default a new SQLite file; `postgres://…` runs on a fresh database made on that server.
        #[arg(long)]
        database_url: Option<String>,
    },
}

const DEFAULT_CONFIG: &str = "config/incident-bot.toml";

fn init_tracing(json: bool, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Every line goes through the redacting writer: known secret values never reach the logs.
    incident_bot::observability::register_env_secrets();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(incident_bot::observability::RedactingStderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // The one TLS provider of every client (Slack, pagers, Socket Mode). The tests, the benchmarks and the demo
    // get the same from the stand-ins (`standins::install_tls`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // A file named explicitly must exist; the default one may be absent (defaults and environment apply).
    let named = cli.config.is_some();
    let config = cli.config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let result = match cli.command {
        Cmd::Demo { keep, html } => {
            init_tracing(cli.log_json, "warn");
            incident_bot::standins::demo::run(incident_bot::standins::demo::Options { keep, html })
                .await
        }
        Cmd::Serve { listen } => {
            init_tracing(cli.log_json, "info,sqlx=warn,tower_http=info");
            serve(&config, named, listen).await
        }
        Cmd::Migrate => {
            init_tracing(cli.log_json, "info");
            migrate(&config).await
        }
        Cmd::Bench { which } => {
            init_tracing(cli.log_json, "error");
            match which {
                BenchCmd::Warroom {
                    commands,
                    latency_ms,
                    runs,
                    bursts,
                } => {
                    incident_bot::bench::warroom::run(incident_bot::bench::warroom::Options {
                        commands,
                        latency: std::time::Duration::from_millis(latency_ms),
                        runs,
                        bursts,
                    })
                    .await
                }
                BenchCmd::SlackLoad {
                    addr,
                    response_url,
                    connections,
                } => {
                    incident_bot::bench::warroom::serve_load(&addr, &response_url, connections)
                        .await
                }
                BenchCmd::Alerts {
                    alerts,
                    per_request,
                    concurrency,
                    database_url,
                } => {
                    incident_bot::bench::alerts::run(incident_bot::bench::alerts::Options {
                        alerts,
                        per_request,
                        concurrency,
                        database_url,
                    })
                    .await
                }
                BenchCmd::Digest {
                    incidents,
                    days,
                    database_url,
                } => {
                    incident_bot::bench::digest::run(incident_bot::bench::digest::Options {
                        incidents,
                        days,
                        database_url,
                        ..Default::default()
                    })
                    .await
                }
                BenchCmd::Resources {
                    commands,
                    latency_ms,
                    runs,
                } => {
                    incident_bot::bench::resources::run(incident_bot::bench::resources::Options {
                        commands,
                        latency: std::time::Duration::from_millis(latency_ms),
                        runs,
                    })
                    .await
                }
                BenchCmd::Deploys {
                    events,
                    database_url,
                } => {
                    incident_bot::bench::deploys::run(incident_bot::bench::deploys::Options {
                        events,
                        database_url,
                        ..Default::default()
                    })
                    .await
                }
            }
        }
        Cmd::Report {
            since,
            until,
            service,
            team,
            severity,
            format,
            tz,
        } => {
            init_tracing(cli.log_json, "warn");
            report(
                &config,
                incident_bot::digest::report::ReportArgs {
                    since,
                    until,
                    service,
                    team,
                    severity,
                    format: Some(format),
                    tz,
                },
            )
            .await
        }
        Cmd::Export {
            incident,
            format,
            tz,
            database_url,
        } => {
            init_tracing(cli.log_json, "warn");
            export(&config, &incident, &format, tz.as_deref(), database_url).await
        }
        Cmd::Import {
            source: ImportCmd::Pagerduty { since, until },
        } => {
            init_tracing(cli.log_json, "warn");
            import_pagerduty(&config, &since, until.as_deref()).await
        }
        Cmd::Deploy { action } => {
            init_tracing(cli.log_json, "warn");
            incident_bot::deploys::record::run(action).await
        }
        Cmd::CheckConfig => {
            init_tracing(cli.log_json, "warn");
            incident_bot::check_config::run(&config, named)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: many errors quote their source, which `{:#}` would print again.
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            eprintln!("error: {}", incident_bot::errors::once(e));
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

async fn serve(
    config: &std::path::Path,
    named: bool,
    listen: Option<String>,
) -> anyhow::Result<()> {
    // The one check `check-config` runs: any error there (a misspelt key, an unknown time zone, a missing named
    // file or Slack token, …) and the bot does not start.
    incident_bot::check_config::refuse_errors(config, named)?;
    let mut settings = Settings::load(config)?;
    if let Some(l) = listen {
        settings.listen = l;
    }
    let catalog = load_catalog(&settings)?;
    let secrets = Secrets::from_env(catalog.secret_vars().iter().map(String::as_str));
    incident_bot::observability::register_secrets(&secrets, &settings.database_url);
    let app = Application::build(settings, secrets, catalog).await?;
    // One line on stdout that scripts (and the restart test) can wait for.
    println!("incident-bot listening on port {}", app.port());
    app.run_until_stopped().await
}

async fn report(
    config: &std::path::Path,
    args: incident_bot::digest::report::ReportArgs,
) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let catalog = load_catalog(&settings)?;
    let out = incident_bot::digest::report::run_cli(&settings, &catalog, &args, chrono::Utc::now())
        .await?;
    print!("{out}");
    Ok(())
}

async fn export(
    config: &std::path::Path,
    incident: &str,
    format: &str,
    tz: Option<&str>,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    let out = if format == "postmortem" {
        let settings = Settings::load(config)?;
        let catalog = load_catalog(&settings)?;
        let url = database_url.unwrap_or_else(|| settings.database_url.clone());
        incident_bot::incidents::postmortem::export_cli(
            &settings,
            &catalog,
            &url,
            incident,
            tz,
            chrono::Utc::now(),
        )
        .await?
    } else {
        let url = match database_url {
            Some(u) => u,
            None => Settings::load(config)?.database_url,
        };
        incident_bot::incidents::timeline::export_cli(&url, incident, format, tz.unwrap_or("UTC"))
            .await?
    };
    print!("{out}");
    Ok(())
}

async fn import_pagerduty(
    config: &std::path::Path,
    since: &str,
    until: Option<&str>,
) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let catalog = load_catalog(&settings)?;
    let secrets = Secrets::from_env(catalog.secret_vars().iter().map(String::as_str));
    incident_bot::import::pagerduty_cli(
        &settings,
        &catalog,
        &secrets,
        since,
        until,
        chrono::Utc::now(),
    )
    .await?;
    Ok(())
}

async fn migrate(config: &std::path::Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let db = incident_bot::db::Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    println!("migrations applied ({:?})", db.backend);
    Ok(())
}
