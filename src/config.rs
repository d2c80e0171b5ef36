//! Configuration: `config/incident-bot.toml` layered under environment overrides.
//!
//! Order (later wins): built-in defaults → the TOML file → `INCIDENT_BOT_<SECTION>__<KEY>` variables →
//! the well-known variables of SPEC §8 (`DATABASE_URL`, `PORT`, `SLACK_API_URL`, `PAGERDUTY_EVENTS_URL`, …).
//! Secrets are read from the environment only and never from the file; [`Secret`] never prints its value.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Everything that is not a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub listen: String,
    /// `sqlite://…` (embedded, created on first run) or `postgres://…`.
    pub database_url: String,
    /// Path of the Backstage catalog.
    pub catalog_path: PathBuf,
    pub slack: SlackSettings,
    pub setup: SetupSettings,
    pub pager: PagerSettings,
    pub incidents: IncidentSettings,
    pub http: HttpSettings,
    /// Alerts that declare incidents (SPEC section 11).
    pub alerts: AlertSettings,
    /// Weekly digests, one per `[[digests]]` table (none by default).
    pub digests: Vec<DigestSettings>,
}

/// One scheduled digest: where, when (weekday, local time, IANA time zone) and for which incidents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSettings {
    /// Channel ID (`C0123…`) or name (`#team-payments`).
    pub channel: String,
    /// `monday` … `sunday` (or `mon` … `sun`).
    pub day: String,
    /// Local time, `HH:MM`.
    pub time: String,
    /// IANA time zone, e.g. `Europe/Berlin`; also decides what "in hours" means. Default `UTC`.
    #[serde(default = "default_digest_timezone")]
    pub timezone: String,
    /// Only incidents of services owned by this catalog team.
    #[serde(default)]
    pub team: Option<String>,
    /// Only incidents of this service.
    #[serde(default)]
    pub service: Option<String>,
}

fn default_digest_timezone() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SlackSettings {
    /// Base URL of the Slack Web API (no trailing slash needed).
    pub api_url: String,
    /// Channel (name or ID) where every incident is announced.
    pub broadcast_channel: String,
    /// Incident channels are named `<prefix>-<number>-<slug>`.
    pub channel_prefix: String,
    /// A Web API call that takes longer is abandoned and retried.
    pub call_timeout_ms: u64,
    /// Requests whose timestamp is further from now are refused (replay protection).
    pub signature_tolerance_secs: i64,
    /// Every Slack request is answered within this long, even while the database hangs ("try again").
    pub answer_within_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SetupSettings {
    /// Attempts per war-room step before it is marked failed.
    pub max_attempts: i64,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// A claimed step is owned this long by a live process; a process that stops heartbeating loses it sooner
    /// (see `store::lease`).
    pub lease_ms: u64,
    /// How often unfinished steps (e.g. after a restart) are looked for.
    pub sweep_interval_ms: u64,
    /// On SIGTERM, how long war rooms being set up may take to finish before the process exits.
    pub shutdown_grace_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PagerSettings {
    pub pagerduty_events_url: String,
    pub pagerduty_api_url: String,
    pub opsgenie_api_url: String,
    pub call_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentSettings {
    /// Minutes after `Resolved` during which `Reopen` is offered.
    pub monitoring_minutes: i64,
    /// A P1 not acknowledged within this many minutes pages the secondary again.
    pub p1_ack_escalation_minutes: i64,
    /// Any incident unresolved this long pages the escalation target.
    pub unresolved_escalation_minutes: i64,
    /// A P1 with no incident commander this many minutes after its declaration gets one reminder in its channel.
    pub ic_reminder_minutes: i64,
    /// Whether the broadcast channel is told "🔒 A private incident was declared by @user" (false: nothing).
    pub private_announce: bool,
    /// Time zone used when a user's own is unknown.
    pub default_timezone: String,
    /// How often due timers (escalations, end of monitoring) and pending Slack/pager updates are looked for.
    pub timer_tick_ms: u64,
    /// Stalled-phase nudges (SPEC 13): the percentile of the team's own history for the phase a running phase
    /// must pass before the channel is nudged (0.9 = p90); `0` switches nudges off.
    pub stalled_phase_percentile: f64,
    /// Deploy prompts (SPEC 13): whether a production deploy of the service (or a dependency) during triage or
    /// remediation asks "was this the fix?" in the incident channel.
    pub deploy_prompt: bool,
}

/// Alerts (`[alerts]`): how the card of a storm is refreshed, and the routes (`[[alerts.routes]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertSettings {
    /// The card of an incident receiving alerts is edited at most once per this many milliseconds.
    pub card_min_interval_ms: u64,
    /// Alerts processed per claim (one transaction per incident and claim).
    pub batch: i64,
    /// Largest body accepted on `/api/v1/alerts/*`, in bytes: an Alertmanager group in a storm carries every
    /// alert of the group (`max_alerts` 0), far more than other requests.
    pub body_limit_bytes: usize,
    /// The first route whose matchers all hold decides what an alert does; with none, the default of SPEC 11.
    pub routes: Vec<AlertRouteSettings>,
}

/// One alert route: `matchers` (Alertmanager style, `label="value"`, `!=`, `=~`, `!~`) on labels and fields →
/// `service`, `severity`, `action` (`declare`, `attach` or `notify`) and `auto_resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRouteSettings {
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default = "default_route_action")]
    pub action: String,
    #[serde(default)]
    pub auto_resolve: bool,
}

fn default_route_action() -> String {
    "declare".into()
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            card_min_interval_ms: 3_000,
            batch: 500,
            body_limit_bytes: 8 * 1024 * 1024,
            routes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A client must send a request's headers within this long (an idle keep-alive connection its next request's),
    /// or its connection is closed.
    pub header_read_timeout_ms: u64,
    /// A request's body must have arrived within this long after its headers, or it is answered 408.
    pub body_read_timeout_ms: u64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "0.0.0.0:3000".into(),
            database_url: "sqlite://incident-bot.db".into(),
            catalog_path: PathBuf::from("config/catalog.yaml"),
            slack: SlackSettings::default(),
            setup: SetupSettings::default(),
            pager: PagerSettings::default(),
            incidents: IncidentSettings::default(),
            http: HttpSettings::default(),
            alerts: AlertSettings::default(),
            digests: Vec::new(),
        }
    }
}

impl Default for SlackSettings {
    fn default() -> Self {
        SlackSettings {
            api_url: "https://slack.com/api".into(),
            broadcast_channel: "incidents".into(),
            channel_prefix: "inc".into(),
            call_timeout_ms: 10_000,
            signature_tolerance_secs: 300,
            answer_within_ms: 2_500,
        }
    }
}

impl Default for SetupSettings {
    fn default() -> Self {
        SetupSettings {
            max_attempts: 8,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            lease_ms: 30_000,
            sweep_interval_ms: 1_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for PagerSettings {
    fn default() -> Self {
        PagerSettings {
            pagerduty_events_url: "https://events.pagerduty.com".into(),
            pagerduty_api_url: "https://api.pagerduty.com".into(),
            opsgenie_api_url: "https://api.opsgenie.com".into(),
            call_timeout_ms: 10_000,
        }
    }
}

impl Default for IncidentSettings {
    fn default() -> Self {
        IncidentSettings {
            monitoring_minutes: 30,
            p1_ack_escalation_minutes: 5,
            unresolved_escalation_minutes: 30,
            ic_reminder_minutes: 5,
            private_announce: true,
            default_timezone: "UTC".into(),
            timer_tick_ms: 200,
            stalled_phase_percentile: 0.9,
            deploy_prompt: true,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            body_limit_bytes: 256 * 1024,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 10_000,
            max_connections: 1024,
        }
    }
}

/// A secret value: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Secrets, from the environment only.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub slack_bot_token: Option<Secret>,
    pub slack_signing_secret: Option<Secret>,
    pub slack_app_token: Option<Secret>,
    pub deploy_api_token: Option<Secret>,
    pub github_webhook_secret: Option<Secret>,
    pub gitlab_webhook_token: Option<Secret>,
    pub argocd_webhook_token: Option<Secret>,
    pub pagerduty_api_token: Option<Secret>,
    /// Bearer token of `/api/v1/alerts/{alertmanager,grafana,datadog,generic}`.
    pub alert_api_token: Option<Secret>,
    /// Signing secret of PagerDuty V3 webhooks (`/api/v1/alerts/pagerduty`).
    pub pagerduty_webhook_secret: Option<Secret>,
    /// Other variables the catalog names (pager routing keys, Opsgenie keys), by variable name.
    pub named: HashMap<String, Secret>,
}

impl Secrets {
    /// Reads every secret from the process environment. `extra` names the variables the catalog refers to.
    pub fn from_env<'a>(extra: impl IntoIterator<Item = &'a str>) -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Secret);
        let named = extra
            .into_iter()
            .filter_map(|k| get(k).map(|v| (k.to_string(), v)))
            .collect();
        Secrets {
            slack_bot_token: get("SLACK_BOT_TOKEN"),
            slack_signing_secret: get("SLACK_SIGNING_SECRET"),
            slack_app_token: get("SLACK_APP_TOKEN"),
            deploy_api_token: get("DEPLOY_API_TOKEN"),
            github_webhook_secret: get("GITHUB_WEBHOOK_SECRET"),
            gitlab_webhook_token: get("GITLAB_WEBHOOK_TOKEN"),
            argocd_webhook_token: get("ARGOCD_WEBHOOK_TOKEN"),
            pagerduty_api_token: get("PAGERDUTY_API_TOKEN"),
            alert_api_token: get("ALERT_API_TOKEN"),
            pagerduty_webhook_secret: get("PAGERDUTY_WEBHOOK_SECRET"),
            named,
        }
    }

    /// A secret named by the catalog (e.g. a routing key's variable).
    pub fn named(&self, var: &str) -> Option<&Secret> {
        self.named.get(var)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Loads `path` (if it exists) under the environment overrides.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Self::figment(path)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))
    }

    /// The layered sources (defaults, file, environment) before extraction; `check-config` reads its errors.
    pub fn figment(path: &Path) -> Figment {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(path))
            .merge(Env::prefixed("INCIDENT_BOT_").split("__"));
        let well_known = [
            ("DATABASE_URL", "database_url"),
            ("SLACK_API_URL", "slack.api_url"),
            ("PAGERDUTY_EVENTS_URL", "pager.pagerduty_events_url"),
            ("PAGERDUTY_API_URL", "pager.pagerduty_api_url"),
            ("OPSGENIE_API_URL", "pager.opsgenie_api_url"),
            ("CATALOG_PATH", "catalog_path"),
        ];
        for (var, key) in well_known {
            if let Ok(v) = std::env::var(var) {
                fig = fig.merge(Serialized::default(key, v));
            }
        }
        if let Ok(port) = std::env::var("PORT") {
            fig = fig.merge(Serialized::default("listen", format!("0.0.0.0:{port}")));
        }
        fig
    }

    /// The Slack API base without a trailing slash (slack-morphism adds `/<method>`).
    pub fn slack_api_base(&self) -> String {
        self.slack.api_url.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_output_hides_the_value() {
        let s = Secret::new("xoxb-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!(
            "{:?}",
            Secrets {
                slack_bot_token: Some(s),
                ..Default::default()
            }
        )
        .contains("very-secret"));
    }

    #[test]
    fn shipped_config_file_parses_with_every_section() {
        let s: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/config/incident-bot.toml"
            )))
            .extract()
            .expect("config/incident-bot.toml parses");
        assert_eq!(s.slack.broadcast_channel, "incidents");
        assert_eq!(s.incidents.monitoring_minutes, 30);
    }

    #[test]
    fn slack_api_base_drops_the_trailing_slash() {
        let mut s = Settings::default();
        s.slack.api_url = "https://slack.com/api/".into();
        assert_eq!(s.slack_api_base(), "https://slack.com/api");
    }
}
