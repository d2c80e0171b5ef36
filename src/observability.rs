//! Observability: the Prometheus metrics behind `GET /metrics`, the helpers that record into them, and the
//! log writer that keeps secrets out of the logs.
//!
//! Metrics live in one process-wide registry (several bots in one test process share it, so tests compare
//! before/after values). Every family is declared in [`FAMILIES`] with its help text; label values come from
//! bounded sets chosen by the code (subcommand names, Web API methods, step names, Slack error codes), never
//! from free text typed by users.
//!
//! The registry is ours, not a crate's: `prometheus-client` writes OpenMetrics (`# TYPE` without `_total`,
//! `# EOF`, another content type) and `metrics-exporter-prometheus` omits families with no sample yet, so either
//! would change the text-format 0.0.4 page that scrapers and the tests read (every family listed, even empty).
//!
//! Logs: [`RedactingStderr`] is the `tracing` writer of the binary. Every secret value the bot knows (Slack
//! tokens, signing secret, webhook secrets, pager routing keys, the database password) is registered with
//! [`register_secrets`] and replaced by `***` in every line before it reaches stderr — in every form a
//! formatter can write it (as it is, JSON-escaped, `Debug`-escaped, both), so a secret holding `"` or `\` is
//! masked in JSON logs too.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::Duration;

use crate::config::Secrets;

/// What kind of metric a family is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// Buckets (seconds) for calls and steps that take milliseconds to seconds.
const FAST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets (seconds) for incident phases: 30 s to a day.
const PHASE_BUCKETS: &[f64] = &[
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0, 43200.0,
    86400.0,
];

/// `/incident` commands handled, by subcommand and result.
pub const SLASH_COMMANDS: &str = "incident_bot_slash_commands_total";
/// Slack requests (HTTP) refused because the signature did not hold.
pub const SLACK_REQUESTS_REFUSED: &str = "incident_bot_slack_requests_refused_total";
/// Slack Web API calls, by method and result.
pub const SLACK_CALLS: &str = "incident_bot_slack_api_calls_total";
/// Slack Web API call latency, by method.
pub const SLACK_CALL_SECONDS: &str = "incident_bot_slack_api_call_duration_seconds";
/// Slack answers with HTTP 429, by method.
pub const SLACK_RATE_LIMITED: &str = "incident_bot_slack_rate_limited_total";
/// War-room step attempts, by step and outcome (`done`, `retry`, `failed`).
pub const SETUP_STEP_SECONDS: &str = "incident_bot_setup_step_duration_seconds";
/// War-room step retries scheduled, by step.
pub const SETUP_RETRIES: &str = "incident_bot_setup_step_retries_total";
/// Phase durations of resolved incidents, by phase.
pub const PHASE_SECONDS: &str = "incident_bot_phase_duration_seconds";
/// Socket Mode connection events (`opened`, `closed`, `disconnect_requested`, `open_failed`).
pub const SOCKET_CONNECTIONS: &str = "incident_bot_socket_mode_connections_total";
/// Socket Mode envelopes, by type and result.
pub const SOCKET_ENVELOPES: &str = "incident_bot_socket_mode_envelopes_total";
/// 1 while a Socket Mode connection is open.
pub const SOCKET_CONNECTED: &str = "incident_bot_socket_mode_connected";

/// Alerts received, by result (`stored`, `duplicate`).
pub const ALERTS_RECEIVED: &str = "incident_bot_alerts_received_total";
/// Alerts processed, by outcome (`declared`, `attached`, `notified`, `resolved`, `acknowledged`, `ignored`).
pub const ALERTS_PROCESSED: &str = "incident_bot_alerts_processed_total";

/// Every metric family: name, kind, help.
pub const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        SLASH_COMMANDS,
        Kind::Counter,
        "`/incident` commands handled, by subcommand and result (ok, usage, bad_request, error, late).",
    ),
    (
        SLACK_REQUESTS_REFUSED,
        Kind::Counter,
        "Requests to /slack/* refused because the Slack signature was missing, wrong or stale.",
    ),
    (
        SLACK_CALLS,
        Kind::Counter,
        "Slack Web API calls, by method and result (ok, the Slack error code, ratelimited, timeout, transport).",
    ),
    (
        SLACK_CALL_SECONDS,
        Kind::Histogram(FAST_BUCKETS),
        "Slack Web API call latency in seconds, by method.",
    ),
    (
        SLACK_RATE_LIMITED,
        Kind::Counter,
        "Slack Web API calls answered with HTTP 429 (rate limited), by method.",
    ),
    (
        SETUP_STEP_SECONDS,
        Kind::Histogram(FAST_BUCKETS),
        "War-room setup step attempts in seconds, by step and outcome (done, retry, failed).",
    ),
    (
        SETUP_RETRIES,
        Kind::Counter,
        "War-room setup step retries scheduled, by step.",
    ),
    (
        PHASE_SECONDS,
        Kind::Histogram(PHASE_BUCKETS),
        "Recovery phase durations of resolved incidents in seconds, by phase \
         (detection, triage, remediation, verification, mttr).",
    ),
    (
        SOCKET_CONNECTIONS,
        Kind::Counter,
        "Socket Mode connection events (opened, closed, disconnect_requested, open_failed).",
    ),
    (
        SOCKET_ENVELOPES,
        Kind::Counter,
        "Socket Mode envelopes received, by type and result (acked, error, ignored).",
    ),
    (
        ALERTS_RECEIVED,
        Kind::Counter,
        "Alerts received on /api/v1/alerts/*, by result (stored, duplicate).",
    ),
    (
        ALERTS_PROCESSED,
        Kind::Counter,
        "Alerts processed, by outcome (declared, attached, notified, resolved, acknowledged, ignored).",
    ),
    (
        SOCKET_CONNECTED,
        Kind::Gauge,
        "1 while this process holds an open Socket Mode connection.",
    ),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative), same order as the family's bounds.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn kind_of(name: &str) -> Option<Kind> {
    FAMILIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, k, _)| *k)
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, label_value(v))).collect()
}

/// Keeps label values short and printable (they come from code, but Slack error codes come from Slack).
fn label_value(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Adds `n` to a counter.
pub fn add(name: &'static str, pairs: &[(&'static str, &str)], n: u64) {
    let mut reg = registry();
    let reg = reg.get_or_insert_with(Registry::default);
    *reg.counters.entry((name, labels(pairs))).or_default() += n;
}

/// Sets a gauge.
pub fn set_gauge(name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
    let mut reg = registry();
    let reg = reg.get_or_insert_with(Registry::default);
    reg.gauges.insert((name, labels(pairs)), value);
}

/// Adds `delta` to a gauge.
pub fn add_gauge(name: &'static str, pairs: &[(&'static str, &str)], delta: f64) {
    let mut reg = registry();
    let reg = reg.get_or_insert_with(Registry::default);
    *reg.gauges.entry((name, labels(pairs))).or_default() += delta;
}

/// Records one observation in a histogram family.
pub fn observe(name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
    let Some(Kind::Histogram(bounds)) = kind_of(name) else {
        return;
    };
    if !value.is_finite() {
        return;
    }
    let mut reg = registry();
    let reg = reg.get_or_insert_with(Registry::default);
    let h = reg
        .histograms
        .entry((name, labels(pairs)))
        .or_insert_with(|| Histogram {
            buckets: vec![0; bounds.len()],
            ..Histogram::default()
        });
    if let Some(i) = bounds.iter().position(|b| value <= *b) {
        h.buckets[i] += 1;
    }
    h.sum += value;
    h.count += 1;
}

// ---------------------------------------------------------------------------------------------------------
// What the bot records
// ---------------------------------------------------------------------------------------------------------

/// The bounded label for the subcommand typed in `text`: one of [`crate::domain::command::SUBCOMMANDS`] as typed
/// (an alias such as `declare` is `unknown`), or `unknown`, or `none` for an empty command.
pub fn subcommand_label(text: &str) -> &'static str {
    match text.split_whitespace().next() {
        None => "none",
        Some(word) => {
            let word = word.to_ascii_lowercase();
            crate::domain::command::SUBCOMMANDS
                .iter()
                .find(|s| **s == word)
                .copied()
                .unwrap_or("unknown")
        }
    }
}

/// One `/incident` command was handled: `subcommand` from [`subcommand_label`]; `result` is `ok`, `usage` (bad
/// input, answered with usage), `bad_request`, `unauthorized`, `error` or `late` (not answered within `slack.answer_within_ms`).
pub fn command(subcommand: &'static str, result: &str) {
    add(
        SLASH_COMMANDS,
        &[("subcommand", subcommand), ("result", result)],
        1,
    );
}

/// A request to `/slack/*` was refused (bad signature).
pub fn slack_request_refused() {
    add(SLACK_REQUESTS_REFUSED, &[], 1);
}

/// One Slack Web API call finished. `result`: `ok`, Slack's error code, `ratelimited`, `timeout`,
/// `transport` or `no_token`.
pub fn slack_call(method: &str, result: &str, elapsed: Duration) {
    let result: String = result
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    add(SLACK_CALLS, &[("method", method), ("result", &result)], 1);
    if result == "ratelimited" {
        add(SLACK_RATE_LIMITED, &[("method", method)], 1);
    }
    observe(
        SLACK_CALL_SECONDS,
        &[("method", method)],
        elapsed.as_secs_f64(),
    );
}

/// A request's alerts were stored: `received` in it, `stored` new.
pub fn alerts_received(received: u64, stored: u64) {
    add(ALERTS_RECEIVED, &[("result", "stored")], stored);
    add(
        ALERTS_RECEIVED,
        &[("result", "duplicate")],
        received.saturating_sub(stored),
    );
}

/// `n` alerts were processed with `outcome`.
pub fn alerts_processed(outcome: &str, n: u64) {
    add(ALERTS_PROCESSED, &[("outcome", outcome)], n);
}

/// One war-room step attempt finished: `outcome` is `done`, `retry` or `failed`.
pub fn setup_step(step: &str, outcome: &str, elapsed: Duration) {
    observe(
        SETUP_STEP_SECONDS,
        &[("step", step), ("outcome", outcome)],
        elapsed.as_secs_f64(),
    );
    if outcome == "retry" {
        add(SETUP_RETRIES, &[("step", step)], 1);
    }
}

/// Records the duration of one recovery phase of a resolved incident.
///
/// `kind` is `detection`, `triage`, `remediation`, `verification` or `mttr` (the whole); a skipped phase is
/// observed as 0. Call it once per phase when an incident is resolved for good.
pub fn observe_phase(kind: &str, seconds: f64) {
    observe(PHASE_SECONDS, &[("phase", kind)], seconds.max(0.0));
}

/// A Socket Mode connection event: `opened`, `closed`, `disconnect_requested` or `open_failed`.
pub fn socket_connection(event: &str) {
    add(SOCKET_CONNECTIONS, &[("event", event)], 1);
    match event {
        "opened" => add_gauge(SOCKET_CONNECTED, &[], 1.0),
        "closed" => add_gauge(SOCKET_CONNECTED, &[], -1.0),
        _ => {}
    }
}

/// A Socket Mode envelope was handled: `result` is `acked`, `error` or `ignored`.
pub fn socket_envelope(kind: &str, result: &str) {
    let kind = match kind {
        "slash_commands" | "interactive" | "events_api" => kind,
        _ => "other",
    };
    add(SOCKET_ENVELOPES, &[("type", kind), ("result", result)], 1);
}

// ---------------------------------------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------------------------------------

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn render_labels(labels: &Labels, extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Every family in the Prometheus text exposition format (0.0.4).
pub fn render() -> String {
    let reg = registry();
    let empty = Registry::default();
    let reg = reg.as_ref().unwrap_or(&empty);
    let mut out = String::new();
    for (name, kind, help) in FAMILIES {
        let type_name = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        out.push_str(&format!("# HELP {name} {}\n", escape_help(help)));
        out.push_str(&format!("# TYPE {name} {type_name}\n"));
        match kind {
            Kind::Counter => {
                for ((n, l), v) in &reg.counters {
                    if n == name {
                        out.push_str(&format!("{name}{} {v}\n", render_labels(l, None)));
                    }
                }
            }
            Kind::Gauge => {
                for ((n, l), v) in &reg.gauges {
                    if n == name {
                        out.push_str(&format!(
                            "{name}{} {}\n",
                            render_labels(l, None),
                            number(*v)
                        ));
                    }
                }
            }
            Kind::Histogram(bounds) => {
                for ((n, l), h) in &reg.histograms {
                    if n != name {
                        continue;
                    }
                    let mut cumulative = 0;
                    for (bound, c) in bounds.iter().zip(&h.buckets) {
                        cumulative += c;
                        out.push_str(&format!(
                            "{name}_bucket{} {cumulative}\n",
                            render_labels(l, Some(("le", &number(*bound))))
                        ));
                    }
                    out.push_str(&format!(
                        "{name}_bucket{} {}\n",
                        render_labels(l, Some(("le", "+Inf"))),
                        h.count
                    ));
                    out.push_str(&format!(
                        "{name}_sum{} {}\n",
                        render_labels(l, None),
                        number(h.sum)
                    ));
                    out.push_str(&format!(
                        "{name}_count{} {}\n",
                        render_labels(l, None),
                        h.count
                    ));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Logs: secrets never reach the output
// ---------------------------------------------------------------------------------------------------------

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Values shorter than this are not scrubbed (they would mangle ordinary words); real tokens are longer.
const MIN_SECRET_LEN: usize = 6;

/// Registers one secret value to be scrubbed from every log line, in every form a log line can hold it:
/// as it is, and as the formatters escape it — JSON strings (`"` → `\"`, `\` → `\\`, control characters),
/// Rust's `Debug` (fields logged with `?`), and both (a `Debug` field inside a JSON line).
pub fn register_secret(value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in escaped_forms(value) {
        if !all.contains(&form) {
            all.push(form);
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    all.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// `value` as it is and as each log formatter may escape it.
fn escaped_forms(value: &str) -> Vec<String> {
    let json = |s: &str| {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        quoted[1..quoted.len() - 1].to_string()
    };
    let debug = |s: &str| {
        let quoted = format!("{s:?}");
        quoted[1..quoted.len() - 1].to_string()
    };
    let mut forms = vec![
        value.to_string(),
        json(value),
        debug(value),
        json(&debug(value)),
    ];
    forms.dedup();
    forms
}

/// Registers every secret the bot holds, and the password of a database URL.
pub fn register_secrets(secrets: &Secrets, database_url: &str) {
    let fixed = [
        &secrets.slack_bot_token,
        &secrets.slack_signing_secret,
        &secrets.slack_app_token,
        &secrets.deploy_api_token,
        &secrets.github_webhook_secret,
        &secrets.gitlab_webhook_token,
        &secrets.argocd_webhook_token,
        &secrets.pagerduty_api_token,
    ];
    for s in fixed.into_iter().flatten() {
        register_secret(s.expose());
    }
    for s in secrets.named.values() {
        register_secret(s.expose());
    }
    register_url_password(database_url);
}

/// Registers the password of a database URL, as written (percent-encoded) and decoded (as a driver would use
/// and might echo it).
fn register_url_password(url: &str) {
    if let Some(password) = url_password(url) {
        register_secret(password);
        if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
            register_secret(&decoded);
        }
    }
}

/// Registers the secrets found in the process environment under their well-known names, and the password of
/// `DATABASE_URL`: called before the first log line; [`register_secrets`] adds the catalog's variables later.
pub fn register_env_secrets() {
    for var in [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "DEPLOY_API_TOKEN",
        "GITHUB_WEBHOOK_SECRET",
        "GITLAB_WEBHOOK_TOKEN",
        "ARGOCD_WEBHOOK_TOKEN",
        "PAGERDUTY_API_TOKEN",
    ] {
        if let Ok(v) = std::env::var(var) {
            register_secret(&v);
        }
    }
    if let Ok(url) = std::env::var("DATABASE_URL") {
        register_url_password(&url);
    }
}

/// The password in `scheme://user:password@host/…`, if any.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

/// `line` with every registered secret replaced by `***`.
pub fn scrub(line: &str) -> String {
    let all = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = line.to_string();
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// The binary's log writer: stderr, each event scrubbed of secrets ([`scrub`]) before it is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

/// Any log writer (a `MakeWriter`) with each event scrubbed of secrets before it is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redacting<M>(pub M);

/// One log event, buffered until the formatter is done with it, then scrubbed and written to `out`.
#[derive(Debug)]
pub struct RedactedLine<W: Write> {
    buf: Vec<u8>,
    out: W,
}

impl<W: Write> Write for RedactedLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactedLine<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let clean = scrub(&text);
        let _ = self.out.write_all(clean.as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedLine<std::io::StderrLock<'static>>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine {
            buf: Vec::new(),
            out: std::io::stderr().lock(),
        }
    }
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Redacting<M>
{
    type Writer = RedactedLine<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine {
            buf: Vec::new(),
            out: self.0.make_writer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn counters_render_with_labels_help_and_type() {
        command(subcommand_label("start Payments down sev:P1"), "ok");
        command(subcommand_label("START x"), "ok");
        let text = render();
        assert!(text.contains("# TYPE incident_bot_slash_commands_total counter"));
        let v = series(
            &text,
            "incident_bot_slash_commands_total{subcommand=\"start\",result=\"ok\"} ",
        )
        .expect("series present");
        assert!(v >= 2.0, "{v}");
    }

    #[test]
    fn free_text_never_becomes_a_label_value() {
        assert_eq!(subcommand_label("frobnicate the database"), "unknown");
        assert_eq!(subcommand_label("   "), "none");
        assert_eq!(subcommand_label("Ack"), "ack");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        observe(PHASE_SECONDS, &[("phase", "unit-test-phase")], 45.0);
        observe(PHASE_SECONDS, &[("phase", "unit-test-phase")], 4000.0);
        observe_phase("unit-test-phase", 100_000.0);
        let text = render();
        let p = "incident_bot_phase_duration_seconds_bucket{phase=\"unit-test-phase\",le=";
        assert_eq!(series(&text, &format!("{p}\"30\"}}")), Some(0.0));
        assert_eq!(series(&text, &format!("{p}\"60\"}}")), Some(1.0));
        assert_eq!(series(&text, &format!("{p}\"7200\"}}")), Some(2.0));
        assert_eq!(series(&text, &format!("{p}\"86400\"}}")), Some(2.0));
        assert_eq!(series(&text, &format!("{p}\"+Inf\"}}")), Some(3.0));
        assert_eq!(
            series(
                &text,
                "incident_bot_phase_duration_seconds_count{phase=\"unit-test-phase\"} "
            ),
            Some(3.0)
        );
        assert_eq!(
            series(
                &text,
                "incident_bot_phase_duration_seconds_sum{phase=\"unit-test-phase\"} "
            ),
            Some(104_045.0)
        );
    }

    #[test]
    fn slack_error_codes_are_sanitised_and_429s_counted_apart() {
        slack_call("unit.test", "rate\"limited\n{x}", Duration::from_millis(3));
        slack_call("unit.test", "ratelimited", Duration::from_millis(3));
        let text = render();
        assert!(text.contains("method=\"unit.test\",result=\"rate_limited__x_\""));
        assert!(
            series(
                &text,
                "incident_bot_slack_rate_limited_total{method=\"unit.test\"} "
            ) >= Some(1.0)
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let l = labels(&[("a", "x\"y\\z")]);
        assert_eq!(render_labels(&l, None), "{a=\"x\\\"y\\\\z\"}");
    }

    #[test]
    fn registered_secrets_are_scrubbed_from_log_lines() {
        register_secret("xoxb-unit-test-secret-123");
        register_secret("abc"); // too short to scrub
        let line =
            "calling Slack with xoxb-unit-test-secret-123 twice xoxb-unit-test-secret-123 abc";
        assert_eq!(scrub(line), "calling Slack with *** twice *** abc");
    }

    #[test]
    fn the_database_password_is_found_in_urls() {
        assert_eq!(
            url_password("postgres://bot:s3cr3t@db:5432/incidents"),
            Some("s3cr3t")
        );
        assert_eq!(url_password("postgres://bot@db/incidents"), None);
        assert_eq!(url_password("sqlite://incident-bot.db"), None);
    }

    /// Log lines captured in memory, through the same redaction as the binary's stderr.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every string in a JSON value, keys and values.
    fn strings(v: &serde_json::Value) -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a.iter().flat_map(strings).collect(),
            serde_json::Value::Object(o) => o
                .iter()
                .flat_map(|(k, v)| std::iter::once(k.clone()).chain(strings(v)))
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn secrets_with_quotes_and_backslashes_never_reach_json_logs_in_any_form() {
        let secrets = [
            r#"sig"quote"secret-91c2"#,
            r#"sig\back\slash-4f7a"#,
            "sig\"both\\\n-tab\t-ctl\u{1}-e5d3",
            "xoxb-ünï-cødé-\u{202e}-77aa",
        ];
        for s in secrets {
            register_secret(s);
        }
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(Redacting(move || sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for s in secrets {
                tracing::info!(shown = %s, debugged = ?s, "message holding {s} and {s:?}");
                let _span = tracing::info_span!("span", token = %s).entered();
                tracing::warn!(error = %format!("Slack refused {s}"), "call failed");
            }
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logs.lines().count() >= 8, "{logs}");
        for line in logs.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).expect("still one JSON object a line");
            assert!(v["fields"].is_object(), "{line}");
        }
        for s in secrets {
            for form in escaped_forms(s) {
                assert!(!logs.contains(&form), "{form:?} is in the logs:\n{logs}");
            }
            // Read back as JSON, no value holds the secret either.
            for line in logs.lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
                assert!(!strings(&v).iter().any(|t| t.contains(s)), "{line}");
            }
        }
        assert!(logs.contains("***"));
    }

    #[test]
    fn the_decoded_database_password_is_scrubbed_too() {
        register_url_password("postgres://bot:p%22w%5Cd-0b1e@db:5432/incidents");
        assert_eq!(
            scrub(r#"auth failed for p"w\d-0b1e"#),
            "auth failed for ***"
        );
        assert_eq!(scrub("url p%22w%5Cd-0b1e"), "url ***");
    }
}
