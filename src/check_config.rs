//! `incident-bot check-config`: finds configuration mistakes before they page anyone, and reports the
//! catalog's alert-to-runbook coverage.
//!
//! Each finding names where it is — `config/incident-bot.toml:12: error: slack.broadcast_channel: …`, or
//! `environment:` for a value set by a variable — and the key. What is checked:
//! - the TOML parses (syntax errors with their line);
//! - no unknown keys (figment ignores them silently; a typo would quietly fall back to the default), with a
//!   "did you mean" from the known keys;
//! - every value has the right type, and values that would break at run time are caught now: time zones,
//!   Slack channel names, URLs, addresses, timeouts and retry settings;
//! - secrets: the Slack tokens are present and of the right kind (values are never printed);
//! - the catalog parses (errors carry file, line and key) and every pager route's variable is set (warning);
//! - alert routes (`[[alerts.routes]]`): every matcher parses, the action is `declare`, `attach` or `notify`,
//!   the severity is P1–P3 and the service is in the catalog;
//! - then the coverage table: services without runbook, dashboard, owner or pager.
//!
//! Errors make the command exit non-zero; warnings do not. `serve` runs the same check first and refuses to
//! start on any error ([`refuse_errors`]); a configuration file named explicitly (`--config`,
//! `INCIDENT_BOT_CONFIG`) that does not exist is an error, and so is a missing `SLACK_BOT_TOKEN`, or neither
//! `SLACK_SIGNING_SECRET` nor `SLACK_APP_TOKEN` (the bot could not call Slack, or Slack could not reach it).

use std::fmt;
use std::path::{Path, PathBuf};

use figment::Figment;
use serde_json::Value;
use toml_edit::{ArrayOfTables, ImDocument, Item, TableLike};

use crate::catalog::{self, Catalog, PagerRoute};
use crate::config::Settings;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

/// Where a finding's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file, and the 1-based line when known.
    File(PathBuf, Option<usize>),
    /// An environment variable.
    Environment,
    /// The built-in default.
    Default,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub origin: Origin,
    /// The key, e.g. `slack.broadcast_channel` or `metadata.annotations.incident-bot/pager`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File(path, Some(line)) => write!(f, "{}:{line}: ", path.display())?,
            Origin::File(path, None) => write!(f, "{}: ", path.display())?,
            Origin::Environment => f.write_str("environment: ")?,
            Origin::Default => f.write_str("default: ")?,
        }
        f.write_str(match self.level {
            Level::Error => "error: ",
            Level::Warning => "warning: ",
        })?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything `check-config` found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// The catalog's path and service count, and the coverage table, when the catalog loaded.
    pub coverage: Option<(PathBuf, usize, String)>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.count(Level::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Level::Warning)
    }

    fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    /// The findings, the coverage table and a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!("{f}\n"));
        }
        if let Some((path, n, table)) = &self.coverage {
            if !self.findings.is_empty() {
                out.push('\n');
            }
            let noun = if *n == 1 { "service" } else { "services" };
            out.push_str(&format!("Catalog {}: {n} {noun}\n", path.display()));
            out.push_str(table);
        }
        let (e, w) = (self.errors(), self.warnings());
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        out.push_str(&format!(
            "\n{}, {}{}\n",
            plural(e, "error"),
            plural(w, "warning"),
            if e > 0 {
                " — the bot would not work as configured"
            } else {
                ""
            }
        ));
        out
    }
}

/// Prints the report for `config_path` (`named`: given explicitly, so it must exist) to stdout; an error when
/// the configuration has errors.
pub fn run(config_path: &Path, named: bool) -> anyhow::Result<()> {
    let report = check(config_path, named);
    print!("{}", report.render());
    if report.errors() > 0 {
        anyhow::bail!(
            "{} configuration error{}",
            report.errors(),
            if report.errors() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// For `serve`: the same check as `check-config`; an error naming every error found (warnings are logged).
pub fn refuse_errors(config_path: &Path, named: bool) -> anyhow::Result<()> {
    let report = check(config_path, named);
    let mut errors = Vec::new();
    for f in &report.findings {
        match f.level {
            Level::Error => errors.push(format!("  {f}")),
            Level::Warning => tracing::warn!("{f}"),
        }
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "refusing to start: {} configuration error{} (`incident-bot check-config` shows them all):\n{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors.join("\n")
        );
    }
    Ok(())
}

/// Checks the configuration file (under the process environment) and the catalog it names. `named`: the file
/// was given explicitly (flag or `INCIDENT_BOT_CONFIG`), so its absence is an error rather than the defaults.
pub fn check(config_path: &Path, named: bool) -> Report {
    let mut report = Report::default();
    let text = match std::fs::read_to_string(config_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.findings.push(Finding {
                level: if named { Level::Error } else { Level::Warning },
                origin: Origin::File(config_path.to_path_buf(), None),
                key: None,
                message: if named {
                    "no such file (named by --config or INCIDENT_BOT_CONFIG)".into()
                } else {
                    "no such file: built-in defaults and the environment apply".into()
                },
            });
            None
        }
        Err(e) => {
            report.findings.push(Finding {
                level: Level::Error,
                origin: Origin::File(config_path.to_path_buf(), None),
                key: None,
                message: format!("cannot read: {e}"),
            });
            None
        }
    };
    let file = |line: Option<usize>| Origin::File(config_path.to_path_buf(), line);

    // Syntax, then unknown keys.
    let exists = text.is_some();
    let text = text.unwrap_or_default();
    let doc = match exists.then(|| ImDocument::parse(text.as_str())) {
        Some(Ok(doc)) => Some(doc),
        Some(Err(e)) => {
            let line = e.span().map(|s| line_at(&text, s.start));
            report.findings.push(Finding {
                level: Level::Error,
                origin: file(line),
                key: None,
                message: format!("TOML syntax: {}", e.message().trim()),
            });
            None
        }
        None => None,
    };
    let schema = serde_json::to_value(Settings::default()).unwrap_or(Value::Null);
    if let Some(doc) = &doc {
        for (key, offset, hint) in unknown_keys(doc.as_table(), &schema) {
            let mut message = "unknown key (ignored: the default applies)".to_string();
            if let Some(hint) = hint {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            report.findings.push(Finding {
                level: Level::Error,
                origin: file(offset.map(|o| line_at(&text, o))),
                key: Some(key),
                message,
            });
        }
    }

    // Types and values, as the bot would load them.
    let figment = Settings::figment(config_path);
    let origin_of = |key: &str| -> Origin {
        let in_file = || {
            let path: Vec<&str> = key.split('.').collect();
            doc.as_ref()
                .and_then(|d| line_of(d.as_table(), &path))
                .map(|offset| file(Some(line_at(&text, offset))))
        };
        origin(&figment, key, in_file)
    };
    let settings = if doc.is_some() || !exists {
        match figment.extract::<Settings>() {
            Ok(s) => Some(s),
            Err(errors) => {
                // Check the other values anyway: drop the ones that failed and let their defaults apply.
                let mut tree = figment.extract::<Value>().unwrap_or(Value::Null);
                for e in errors.clone() {
                    prune(&mut tree, &e.path);
                }
                let lenient = serde_json::from_value::<Settings>(tree).ok();
                for e in errors {
                    let key = e.path.join(".");
                    let env = e
                        .metadata
                        .as_ref()
                        .is_some_and(|m| m.name.contains("environment"));
                    report.findings.push(Finding {
                        level: Level::Error,
                        origin: if env {
                            Origin::Environment
                        } else {
                            origin_of(&key)
                        },
                        key: (!key.is_empty()).then_some(key),
                        message: e.kind.to_string(),
                    });
                }
                lenient
            }
        }
    } else {
        None
    };
    let settings = match settings {
        Some(s) => {
            for (level, key, message) in validate(&s) {
                report.findings.push(Finding {
                    level,
                    origin: origin_of(&key),
                    key: Some(key),
                    message,
                });
            }
            s
        }
        None => {
            // Still check the catalog, where the configuration would most likely have put it.
            let mut s = Settings::default();
            if let Ok(p) = figment.extract_inner::<PathBuf>("catalog_path") {
                s.catalog_path = p;
            }
            s
        }
    };

    report.findings.extend(check_secrets(&|k| {
        std::env::var(k).ok().filter(|v| !v.is_empty())
    }));
    check_catalog(&settings.catalog_path, &mut report);
    let catalog = crate::catalog::Catalog::load(&settings.catalog_path).ok();
    for (key, message) in crate::alerts::routes::check(&settings.alerts, catalog.as_ref()) {
        report.findings.push(Finding {
            level: Level::Error,
            origin: origin_of(&key),
            key: Some(key),
            message,
        });
    }
    report.findings.sort_by_key(|f| origin_key(&f.origin));
    report
}

/// Removes the value at `path` (list indexes as numbers) from a JSON tree.
fn prune(tree: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        *tree = Value::Null;
        return;
    };
    let mut node = tree;
    for seg in parents {
        node = match node {
            Value::Object(m) => match m.get_mut(seg) {
                Some(n) => n,
                None => return,
            },
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(n) => n,
                None => return,
            },
            _ => return,
        };
    }
    match node {
        Value::Object(m) => {
            m.remove(last);
        }
        Value::Array(a) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// The variables that set a key directly (SPEC §8), besides `INCIDENT_BOT_<SECTION>__<KEY>`.
const WELL_KNOWN: &[(&str, &str)] = &[
    ("database_url", "DATABASE_URL"),
    ("listen", "PORT"),
    ("slack.api_url", "SLACK_API_URL"),
    ("pager.pagerduty_events_url", "PAGERDUTY_EVENTS_URL"),
    ("pager.pagerduty_api_url", "PAGERDUTY_API_URL"),
    ("pager.opsgenie_api_url", "OPSGENIE_API_URL"),
    ("catalog_path", "CATALOG_PATH"),
];

/// Where the effective value of `key` comes from: the file (`in_file` finds its line), a variable, or the
/// default.
fn origin(figment: &Figment, key: &str, in_file: impl Fn() -> Option<Origin>) -> Origin {
    let meta = figment.find_metadata(key);
    if meta.is_some_and(|m| m.name.contains("environment")) {
        return Origin::Environment;
    }
    if meta.is_some_and(|m| matches!(m.source, Some(figment::Source::File(_)))) {
        return in_file().unwrap_or(Origin::Default);
    }
    let well_known = WELL_KNOWN
        .iter()
        .any(|(k, var)| *k == key && std::env::var_os(var).is_some());
    if well_known {
        Origin::Environment
    } else {
        // A list item (e.g. `digests.0.timezone`) has no metadata of its own: it can only come from the file.
        in_file().unwrap_or(Origin::Default)
    }
}

fn origin_key(o: &Origin) -> (u8, Option<PathBuf>, usize) {
    match o {
        Origin::File(p, line) => (0, Some(p.clone()), line.unwrap_or(0)),
        Origin::Environment => (1, None, 0),
        Origin::Default => (2, None, 0),
    }
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Keys in `table` that the schema (the JSON form of the defaults) does not know: `(dotted key, byte offset,
/// closest known key)`. Sections whose default is empty (free-form maps, lists of tables) are not checked
/// inside unless the default shows their shape.
fn unknown_keys(
    table: &dyn TableLike,
    schema: &Value,
) -> Vec<(String, Option<usize>, Option<String>)> {
    let mut out = Vec::new();
    walk_unknown(table, schema, "", &mut out);
    out
}

fn walk_unknown(
    table: &dyn TableLike,
    schema: &Value,
    prefix: &str,
    out: &mut Vec<(String, Option<usize>, Option<String>)>,
) {
    let Some(known) = schema.as_object().filter(|o| !o.is_empty()) else {
        return;
    };
    for (key, item) in table.iter() {
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        let offset = table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| item.span())
            .map(|s| s.start);
        match known.get(key) {
            None => {
                let hint = closest(key, known.keys().map(String::as_str));
                out.push((path, offset, hint));
            }
            Some(sub) => match (item, sub) {
                (Item::ArrayOfTables(aot), Value::Array(shape)) => {
                    if let Some(first) = shape.first() {
                        for (i, t) in aot.iter().enumerate() {
                            walk_unknown(t, first, &format!("{path}.{i}"), out);
                        }
                    }
                }
                _ => {
                    if let Some(t) = item.as_table_like() {
                        walk_unknown(t, sub, &path, out);
                    }
                }
            },
        }
    }
}

/// The known key closest to `key` (edit distance at most 3), for "did you mean".
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    known
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k.to_string())
}

/// Byte offset of the deepest part of `path` (dotted key, list indexes as numbers) found in the document.
fn line_of(root: &dyn TableLike, path: &[&str]) -> Option<usize> {
    enum Node<'a> {
        Table(&'a dyn TableLike),
        Tables(&'a ArrayOfTables),
        Array(&'a toml_edit::Array),
        Leaf,
    }
    fn node(item: &Item) -> Node<'_> {
        match item {
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(toml_edit::Value::Array(a)) => Node::Array(a),
            other => other.as_table_like().map(Node::Table).unwrap_or(Node::Leaf),
        }
    }
    let mut current = Node::Table(root);
    let mut best = None;
    for seg in path {
        current = match current {
            Node::Table(t) => {
                let Some((key, item)) = t.get_key_value(seg) else {
                    break;
                };
                if let Some(span) = key.span().or_else(|| item.span()) {
                    best = Some(span.start);
                }
                node(item)
            }
            Node::Tables(aot) => {
                let Some(t) = seg.parse::<usize>().ok().and_then(|i| aot.get(i)) else {
                    break;
                };
                if let Some(span) = t.span() {
                    best = Some(span.start);
                }
                Node::Table(t)
            }
            Node::Array(arr) => {
                let Some(v) = seg.parse::<usize>().ok().and_then(|i| arr.get(i)) else {
                    break;
                };
                if let Some(span) = v.span() {
                    best = Some(span.start);
                }
                match v.as_inline_table() {
                    Some(t) => Node::Table(t),
                    None => Node::Leaf,
                }
            }
            Node::Leaf => break,
        };
    }
    best
}

/// Values that load but would break at run time. `(level, dotted key, message)`.
pub fn validate(s: &Settings) -> Vec<(Level, String, String)> {
    use Level::{Error, Warning};
    let mut out: Vec<(Level, String, String)> = Vec::new();
    let mut bad = |level: Level, key: &str, msg: String| out.push((level, key.to_string(), msg));

    if !is_listen_address(&s.listen) {
        bad(
            Error,
            "listen",
            format!(
                "{:?} is not an address to listen on (host:port, e.g. 0.0.0.0:3000)",
                s.listen
            ),
        );
    }
    let db = s.database_url.as_str();
    if !(db.starts_with("sqlite:") || db.starts_with("postgres:") || db.starts_with("postgresql:"))
    {
        bad(
            Error,
            "database_url",
            "must start with sqlite:// or postgres:// (value not shown: it may hold a password)"
                .into(),
        );
    }
    for (key, url) in [
        ("slack.api_url", &s.slack.api_url),
        ("pager.pagerduty_events_url", &s.pager.pagerduty_events_url),
        ("pager.pagerduty_api_url", &s.pager.pagerduty_api_url),
        ("pager.opsgenie_api_url", &s.pager.opsgenie_api_url),
    ] {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
            bad(Error, key, format!("{url:?} is not an http(s) URL"));
        }
    }
    let prefix = &s.slack.channel_prefix;
    if prefix.is_empty()
        || prefix.len() > 20
        || !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        bad(
            Error,
            "slack.channel_prefix",
            format!("{prefix:?} cannot start a Slack channel name (1-20 of a-z, 0-9, - and _)"),
        );
    }
    for (key, v) in [
        ("slack.call_timeout_ms", s.slack.call_timeout_ms),
        ("pager.call_timeout_ms", s.pager.call_timeout_ms),
        ("setup.backoff_base_ms", s.setup.backoff_base_ms),
        ("setup.lease_ms", s.setup.lease_ms),
        ("slack.answer_within_ms", s.slack.answer_within_ms),
        ("http.header_read_timeout_ms", s.http.header_read_timeout_ms),
        ("http.body_read_timeout_ms", s.http.body_read_timeout_ms),
    ] {
        if v == 0 {
            bad(Error, key, "must be more than 0".into());
        }
    }
    if s.slack.answer_within_ms >= 3_000 {
        bad(
            Error,
            "slack.answer_within_ms",
            "must be below 3000: Slack gives up on an answer after 3 s".into(),
        );
    }
    if s.slack.signature_tolerance_secs <= 0 {
        bad(
            Error,
            "slack.signature_tolerance_secs",
            "must be more than 0 (every Slack request would be refused)".into(),
        );
    }
    if s.setup.max_attempts < 1 {
        bad(Error, "setup.max_attempts", "must be at least 1".into());
    }
    if s.setup.backoff_base_ms > s.setup.backoff_max_ms {
        bad(
            Error,
            "setup.backoff_max_ms",
            format!(
                "{} is below setup.backoff_base_ms ({})",
                s.setup.backoff_max_ms, s.setup.backoff_base_ms
            ),
        );
    }
    if s.setup.lease_ms > 0 && s.setup.lease_ms <= s.slack.call_timeout_ms {
        bad(
            Warning,
            "setup.lease_ms",
            format!(
                "{} ms is not longer than slack.call_timeout_ms ({} ms): another replica could take over a \
                 step whose Slack call is still in flight",
                s.setup.lease_ms, s.slack.call_timeout_ms
            ),
        );
    }
    if s.setup.sweep_interval_ms < 50 {
        bad(
            Warning,
            "setup.sweep_interval_ms",
            "below 50 ms; the bot uses 50 ms".into(),
        );
    }
    if s.incidents.monitoring_minutes < 0 {
        bad(
            Error,
            "incidents.monitoring_minutes",
            "must not be negative".into(),
        );
    }
    for (key, v) in [
        (
            "incidents.p1_ack_escalation_minutes",
            s.incidents.p1_ack_escalation_minutes,
        ),
        (
            "incidents.unresolved_escalation_minutes",
            s.incidents.unresolved_escalation_minutes,
        ),
        (
            "incidents.ic_reminder_minutes",
            s.incidents.ic_reminder_minutes,
        ),
    ] {
        if v < 1 {
            bad(Error, key, "must be at least 1 minute".into());
        }
    }
    let pct = s.incidents.stalled_phase_percentile;
    if !(pct == 0.0 || (0.5..=1.0).contains(&pct)) {
        bad(
            Error,
            "incidents.stalled_phase_percentile",
            format!("{pct} is neither 0 (nudges off) nor a percentile between 0.5 and 1.0 (e.g. 0.9 for p90)"),
        );
    }
    if s.http.max_connections == 0 {
        bad(
            Error,
            "http.max_connections",
            "must be more than 0 (no request would be served)".into(),
        );
    }
    if s.http.body_limit_bytes < 4096 {
        bad(
            Error,
            "http.body_limit_bytes",
            "below 4096 bytes: Slack's own payloads would be refused".into(),
        );
    }
    // Every time zone and channel anywhere in the settings (digests included), by key name.
    let tree = serde_json::to_value(s).unwrap_or(Value::Null);
    let mut strings = Vec::new();
    collect_strings(&tree, String::new(), &mut strings);
    for (key, value) in strings {
        let leaf = key.rsplit('.').next().unwrap_or_default();
        if leaf.ends_with("timezone") && value.parse::<chrono_tz::Tz>().is_err() {
            bad(
                Error,
                &key,
                format!("{value:?} is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)"),
            );
        }
        if (leaf == "channel" || leaf.ends_with("_channel")) && !is_slack_channel(&value) {
            bad(
                Error,
                &key,
                format!(
                    "{value:?} is not a Slack channel name (lowercase a-z, 0-9, - and _, at most 80) or \
                     channel ID (C…/G…)"
                ),
            );
        }
    }
    out
}

fn collect_strings(v: &Value, path: String, out: &mut Vec<(String, String)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::String(s) => out.push((path, s.clone())),
        Value::Object(map) => {
            for (k, v) in map {
                collect_strings(v, join(k), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_strings(v, join(&i.to_string()), out);
            }
        }
        _ => {}
    }
}

fn is_listen_address(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// A channel name as Slack allows it (`#` optional), or a channel ID.
pub fn is_slack_channel(s: &str) -> bool {
    let name = s.strip_prefix('#').unwrap_or(s);
    let is_id = name.len() >= 9
        && name.starts_with(['C', 'G'])
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let is_name = !name.is_empty()
        && name.chars().count() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    is_id || is_name
}

/// The Slack secrets: present and of the right kind. Values are never printed.
fn check_secrets(env: &dyn Fn(&str) -> Option<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut note = |level: Level, key: &str, message: &str| {
        out.push(Finding {
            level,
            origin: Origin::Environment,
            key: Some(key.to_string()),
            message: message.to_string(),
        })
    };
    match env("SLACK_BOT_TOKEN") {
        None => note(
            Level::Error,
            "SLACK_BOT_TOKEN",
            "not set: the bot cannot call Slack (`serve` refuses to start)",
        ),
        Some(t) if !t.starts_with("xoxb-") => note(
            Level::Warning,
            "SLACK_BOT_TOKEN",
            "does not look like a bot token (xoxb-…)",
        ),
        Some(_) => {}
    }
    let app = env("SLACK_APP_TOKEN");
    if let Some(t) = &app {
        if !t.starts_with("xapp-") {
            note(
                Level::Error,
                "SLACK_APP_TOKEN",
                "must be an app-level token (xapp-…) with connections:write, for Socket Mode",
            );
        }
    }
    if env("SLACK_SIGNING_SECRET").is_none() && app.is_none() {
        note(
            Level::Error,
            "SLACK_SIGNING_SECRET",
            "not set, and no SLACK_APP_TOKEN for Socket Mode: every Slack request would be refused \
             (`serve` refuses to start)",
        );
    }
    out
}

/// The catalog: parse errors (file, line, key), pager variables that are not set, and the coverage table.
fn check_catalog(path: &Path, report: &mut Report) {
    if !path.exists() {
        report.findings.push(Finding {
            level: Level::Warning,
            origin: Origin::File(path.to_path_buf(), None),
            key: None,
            message: "no service catalog: no owners, runbooks or pager routes".into(),
        });
        return;
    }
    let catalog = match Catalog::load(path) {
        Ok(c) => c,
        Err(e) => {
            report.findings.push(Finding {
                level: Level::Error,
                origin: Origin::File(e.path.clone().unwrap_or_else(|| path.to_path_buf()), e.line),
                key: e.key.clone(),
                message: e.message.clone(),
            });
            return;
        }
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for s in catalog.services() {
        for (annotation, route) in [
            (catalog::ANNOTATION_PAGER, &s.pager),
            (catalog::ANNOTATION_ESCALATION, &s.escalation),
        ] {
            let var = match route {
                Some(PagerRoute::PagerDuty { routing_key_env }) => routing_key_env,
                Some(PagerRoute::Opsgenie { api_key_env, .. }) => api_key_env,
                _ => continue,
            };
            if std::env::var(var).ok().filter(|v| !v.is_empty()).is_none() {
                report.findings.push(Finding {
                    level: Level::Warning,
                    origin: Origin::File(
                        path.to_path_buf(),
                        Some(annotation_line(&text, s.source_line, annotation)),
                    ),
                    key: Some(format!("metadata.annotations.{annotation}")),
                    message: format!("{var} is not set: paging for service {} would fail", s.name),
                });
            }
        }
    }
    let table = catalog::render_gaps_table(&catalog.coverage_gaps(), catalog.services());
    report.coverage = Some((path.to_path_buf(), catalog.services().len(), table));
}

/// The line of `annotation` in the document starting at `from` (the document's line when not found).
fn annotation_line(text: &str, from: usize, annotation: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .take_while(|(i, l)| *i + 1 == from || !l.starts_with("---"))
        .find(|(_, l)| l.trim_start().starts_with(&format!("{annotation}:")))
        .map(|(i, _)| i + 1)
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        serde_json::to_value(Settings::default()).expect("defaults serialise")
    }

    #[test]
    fn a_misspelt_key_is_reported_with_its_line_and_a_suggestion() {
        let text = "listen = \"0.0.0.0:3000\"\n\n[slack]\nbroadcast_chanel = \"incidents\"\n";
        let doc = ImDocument::parse(text).expect("parses");
        let found = unknown_keys(doc.as_table(), &schema());
        assert_eq!(found.len(), 1, "{found:?}");
        let (key, offset, hint) = &found[0];
        assert_eq!(key, "slack.broadcast_chanel");
        assert_eq!(offset.map(|o| line_at(text, o)), Some(4));
        assert_eq!(hint.as_deref(), Some("broadcast_channel"));
    }

    #[test]
    fn an_unknown_section_is_one_finding() {
        let text = "[slak]\napi_url = \"x\"\n";
        let doc = ImDocument::parse(text).expect("parses");
        let found = unknown_keys(doc.as_table(), &schema());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "slak");
        assert_eq!(found[0].2.as_deref(), Some("slack"));
    }

    #[test]
    fn the_shipped_configuration_has_no_unknown_keys_and_no_invalid_values() {
        let text = include_str!("../config/incident-bot.toml");
        let doc = ImDocument::parse(text).expect("parses");
        assert_eq!(unknown_keys(doc.as_table(), &schema()), vec![]);
        assert_eq!(validate(&Settings::default()), vec![]);
    }

    #[test]
    fn the_stalled_phase_percentile_is_off_or_between_a_half_and_one() {
        for (p, ok) in [
            (0.0, true),
            (0.9, true),
            (0.5, true),
            (1.0, true),
            (0.3, false),
            (1.5, false),
        ] {
            let mut s = Settings::default();
            s.incidents.stalled_phase_percentile = p;
            let found = validate(&s);
            assert_eq!(found.is_empty(), ok, "{p}: {found:?}");
            if !ok {
                assert_eq!(found[0].1, "incidents.stalled_phase_percentile");
            }
        }
    }

    #[test]
    fn lines_are_found_for_nested_keys_and_list_items() {
        let text = "a = 1\n[slack]\napi_url = \"x\"\n\n[[digests]]\nchannel = \"a\"\n\n[[digests]]\nchannel = \"b\"\ntimezone = \"Mars\"\n";
        let doc = ImDocument::parse(text).expect("parses");
        let line = |p: &[&str]| line_of(doc.as_table(), p).map(|o| line_at(text, o));
        assert_eq!(line(&["slack", "api_url"]), Some(3));
        assert_eq!(line(&["digests", "1", "timezone"]), Some(10));
        assert_eq!(line(&["digests", "0", "channel"]), Some(6));
        assert_eq!(line(&["slack", "missing"]), Some(2));
        assert_eq!(line(&["nothing"]), None);
    }

    #[test]
    fn bad_time_zones_and_channel_names_are_errors() {
        let mut s = Settings::default();
        s.incidents.default_timezone = "Mars/Olympus_Mons".into();
        s.slack.broadcast_channel = "#Incident Room".into();
        let found = validate(&s);
        let keys: Vec<&str> = found.iter().map(|(_, k, _)| k.as_str()).collect();
        assert!(keys.contains(&"incidents.default_timezone"), "{found:?}");
        assert!(keys.contains(&"slack.broadcast_channel"), "{found:?}");
        assert!(found.iter().all(|(l, _, _)| *l == Level::Error));
    }

    #[test]
    fn slack_channel_names_and_ids_are_recognised() {
        assert!(is_slack_channel("#incidents"));
        assert!(is_slack_channel("team-payments_oncall"));
        assert!(is_slack_channel("C0123ABCDE"));
        assert!(!is_slack_channel("Incidents"));
        assert!(!is_slack_channel("inc room"));
        assert!(!is_slack_channel(""));
        assert!(!is_slack_channel(&"a".repeat(81)));
    }

    #[test]
    fn http_bounds_and_the_slack_answer_deadline_are_checked() {
        let mut s = Settings::default();
        s.http.max_connections = 0;
        s.http.header_read_timeout_ms = 0;
        s.slack.answer_within_ms = 3_000;
        let found = validate(&s);
        let keys: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.header_read_timeout_ms",
                "slack.answer_within_ms",
                "http.max_connections"
            ],
            "{found:?}"
        );
        assert!(found.iter().all(|f| f.0 == Level::Error));
    }

    #[test]
    fn a_short_lease_is_a_warning_not_an_error() {
        let mut s = Settings::default();
        s.setup.lease_ms = 5_000;
        let found = validate(&s);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Level::Warning);
        assert_eq!(found[0].1, "setup.lease_ms");
    }

    #[test]
    fn a_bot_token_given_as_app_token_is_an_error_without_showing_it() {
        let env = |k: &str| match k {
            "SLACK_BOT_TOKEN" => Some("xoxb-1".to_string()),
            "SLACK_APP_TOKEN" => Some("xoxb-secret-value".to_string()),
            _ => None,
        };
        let found = check_secrets(&env);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].level, Level::Error);
        assert!(!found[0].to_string().contains("secret-value"));
    }

    #[test]
    fn missing_slack_secrets_are_errors_naming_the_variable() {
        let none = |_: &str| None;
        let found = check_secrets(&none);
        let keys: Vec<_> = found
            .iter()
            .map(|f| (f.level, f.key.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            keys,
            [
                (Level::Error, "SLACK_BOT_TOKEN"),
                (Level::Error, "SLACK_SIGNING_SECRET")
            ]
        );
        // Socket Mode alone is enough to receive Slack's requests.
        let socket_only = |k: &str| match k {
            "SLACK_BOT_TOKEN" => Some("xoxb-1".to_string()),
            "SLACK_APP_TOKEN" => Some("xapp-1".to_string()),
            _ => None,
        };
        assert!(check_secrets(&socket_only).is_empty());
    }

    #[test]
    fn a_named_configuration_file_that_does_not_exist_is_an_error() {
        let path = Path::new("/nonexistent/incident-bot-check.toml");
        let first = |named| {
            check(path, named)
                .findings
                .into_iter()
                .find(|f| f.origin == Origin::File(path.to_path_buf(), None))
                .map(|f| f.level)
        };
        assert_eq!(first(true), Some(Level::Error));
        assert_eq!(first(false), Some(Level::Warning));
    }

    #[test]
    fn pruning_removes_only_the_failed_value() {
        let mut tree = serde_json::json!({"setup": {"max_attempts": "eight", "lease_ms": 1}, "digests": [{"a": 1}, {"b": 2}]});
        prune(
            &mut tree,
            &["setup".to_string(), "max_attempts".to_string()],
        );
        prune(&mut tree, &["digests".to_string(), "0".to_string()]);
        assert_eq!(
            tree,
            serde_json::json!({"setup": {"lease_ms": 1}, "digests": [{"b": 2}]})
        );
    }

    #[test]
    fn findings_print_file_line_level_and_key() {
        let f = Finding {
            level: Level::Error,
            origin: Origin::File(PathBuf::from("config/x.toml"), Some(7)),
            key: Some("slack.channel_prefix".into()),
            message: "bad".into(),
        };
        assert_eq!(
            f.to_string(),
            "config/x.toml:7: error: slack.channel_prefix: bad"
        );
    }

    #[test]
    fn annotation_lines_are_found_inside_their_document() {
        let text = "---\nkind: Component\nmetadata:\n  annotations:\n    incident-bot/pager: pagerduty:X\n---\nkind: Component\n";
        assert_eq!(annotation_line(text, 2, "incident-bot/pager"), 5);
        assert_eq!(annotation_line(text, 7, "incident-bot/pager"), 7);
    }
}
