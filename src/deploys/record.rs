//! `incident-bot deploy record`: tells a running bot about a deploy, from a CI pipeline.
//!
//! Posts one event to `POST <bot-url>/api/v1/deploys` with `Authorization: Bearer $DEPLOY_API_TOKEN`. Without
//! `--id` a fresh id is made here, so that a retry after a lost answer cannot record the deploy twice; network
//! errors and 5xx answers are retried twice. A refusal (401, 400) or an unreachable bot ends with a clear
//! message and a non-zero exit, so the pipeline step shows it.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// `incident-bot deploy …`
#[derive(Debug, clap::Subcommand)]
pub enum DeployCmd {
    /// Record a deploy in a running bot (for CI pipelines). The token comes from DEPLOY_API_TOKEN.
    Record(RecordArgs),
}

/// `incident-bot deploy record` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RecordArgs {
    /// Service deployed (catalog name or deploy alias).
    #[arg(long)]
    pub service: String,
    /// Version deployed (tag, build number…).
    #[arg(long)]
    pub version: String,
    /// Commit hash.
    #[arg(long)]
    pub sha: Option<String>,
    /// Link to the pipeline, release or commit.
    #[arg(long)]
    pub url: Option<String>,
    /// Who deployed.
    #[arg(long)]
    pub author: Option<String>,
    /// Environment.
    #[arg(long, default_value = "production")]
    pub env: String,
    /// When it was deployed (RFC 3339, e.g. 2026-11-25T14:32:00Z); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Id that makes re-sending harmless (e.g. the pipeline run id); default a fresh one.
    #[arg(long)]
    pub id: Option<String>,
    /// Where the bot listens.
    #[arg(
        long,
        env = "INCIDENT_BOT_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub bot_url: String,
}

/// Runs `deploy …`.
pub async fn run(cmd: DeployCmd) -> anyhow::Result<()> {
    match cmd {
        DeployCmd::Record(args) => {
            let token = std::env::var("DEPLOY_API_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    anyhow!(
                        "DEPLOY_API_TOKEN is not set: export the token the bot was started with"
                    )
                })?;
            let line = record(&args, &token).await?;
            println!("{line}");
            Ok(())
        }
    }
}

/// The JSON event for `args` (with `id` filled in).
pub fn event(args: &RecordArgs, id: &str) -> Value {
    let mut e = json!({
        "id": id,
        "service": args.service,
        "version": args.version,
        "environment": args.env,
        "source": "cli",
    });
    for (key, v) in [
        ("commit_sha", &args.sha),
        ("url", &args.url),
        ("author", &args.author),
        ("deployed_at", &args.at),
    ] {
        if let Some(v) = v {
            e[key] = json!(v);
        }
    }
    e
}

/// Sends the event; returns the line to print on success.
pub async fn record(args: &RecordArgs, token: &str) -> anyhow::Result<String> {
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("cli:{}", uuid::Uuid::new_v4()));
    let base = args.bot_url.trim_end_matches('/');
    let url = format!("{base}/api/v1/deploys");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build an HTTP client")?;
    let body = event(args, &id);
    let mut delay = Duration::from_millis(500);
    let mut attempt = 1;
    let (status, answer) = loop {
        let sent = client
            .post(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(resp) if !resp.status().is_server_error() || attempt == 3 => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                break (status, text);
            }
            Ok(resp) => eprintln!(
                "the bot answered HTTP {} — retrying in {} ms",
                resp.status().as_u16(),
                delay.as_millis()
            ),
            Err(e) if attempt == 3 => {
                bail!("cannot reach the bot at {base}: {}", error_chain(&e));
            }
            Err(e) => eprintln!(
                "cannot reach the bot at {base} ({}) — retrying in {} ms",
                error_chain(&e),
                delay.as_millis()
            ),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    };
    let parsed: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    match status.as_u16() {
        200 | 201 => {
            let stored = parsed["stored"].as_u64().unwrap_or(0) > 0;
            let what = format!("{} {} ({})", args.service, args.version, args.env);
            Ok(if stored {
                format!("recorded deploy of {what} — id {id}")
            } else {
                format!(
                    "already recorded: a deploy with id {id} was stored before; nothing changed"
                )
            })
        }
        401 => bail!(
            "the bot at {base} refused the token (HTTP 401): DEPLOY_API_TOKEN must match the bot's"
        ),
        400 => bail!(
            "the bot refused the deploy (HTTP 400): {}: {}",
            parsed["field"].as_str().unwrap_or("body"),
            parsed["message"].as_str().unwrap_or(answer.as_str())
        ),
        other => bail!(
            "the bot at {base} answered HTTP {other}: {}",
            answer.chars().take(200).collect::<String>()
        ),
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let msg = s.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RecordArgs {
        RecordArgs {
            service: "payments".into(),
            version: "v2.14.0".into(),
            sha: Some("f95f852".into()),
            url: None,
            author: Some("alice".into()),
            env: "production".into(),
            at: None,
            id: None,
            bot_url: "http://127.0.0.1:3000".into(),
        }
    }

    #[test]
    fn the_event_carries_only_the_fields_given() {
        assert_eq!(
            event(&args(), "cli:1"),
            json!({
                "id": "cli:1", "service": "payments", "version": "v2.14.0", "environment": "production",
                "source": "cli", "commit_sha": "f95f852", "author": "alice"
            })
        );
    }
}
