//! The service catalog: Backstage `catalog-info.yaml` descriptors read from `config/catalog.yaml`.
//!
//! Standard Backstage descriptors are accepted as they are. Only `kind: Component` entities become
//! [`Service`]s; every other kind (System, Group, Resource, ...) is noted and skipped. The bot's own
//! settings live in annotations under the `incident-bot/` prefix (Slack owners, on-call users, team,
//! pager and escalation routes, deploy aliases); see the comments in `config/catalog.yaml`.
//!
//! Also here: did-you-mean suggestions for unknown service names, mapping deploy sources (GitHub
//! repositories, GitLab projects, Argo CD apps) to services, and the coverage-gap report behind
//! `incident-bot check-config`. Everything except [`Catalog::load`] is pure.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_yaml::Value;

/// Annotation: Slack user IDs invited to the war room.
pub const ANNOTATION_SLACK_OWNERS: &str = "incident-bot/slack-owners";
/// Annotation: Slack user IDs of the on-call engineers, also invited.
pub const ANNOTATION_ONCALL: &str = "incident-bot/oncall";
/// Annotation: team name used in digests.
pub const ANNOTATION_TEAM: &str = "incident-bot/team";
/// Annotation: the secondary on-call route ([`PagerRoute`] syntax).
pub const ANNOTATION_PAGER: &str = "incident-bot/pager";
/// Annotation: the escalation target ([`PagerRoute`] syntax).
pub const ANNOTATION_ESCALATION: &str = "incident-bot/escalation";
/// Annotation: other names under which deploys of the service arrive.
pub const ANNOTATION_DEPLOY_ALIASES: &str = "incident-bot/deploy-aliases";
/// Backstage annotation: `owner/repo` on GitHub.
pub const ANNOTATION_GITHUB_SLUG: &str = "github.com/project-slug";
/// Backstage annotation: `group/project` path on GitLab.
pub const ANNOTATION_GITLAB_SLUG: &str = "gitlab.com/project-slug";
/// Backstage annotation: the Argo CD application name.
pub const ANNOTATION_ARGOCD_APP: &str = "argocd/app-name";
/// Backstage annotation (PagerDuty plugin): the PagerDuty service ID, for `import pagerduty`.
pub const ANNOTATION_PAGERDUTY_SERVICE: &str = "pagerduty.com/service-id";

/// A link from `metadata.links`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub title: Option<String>,
    pub url: String,
    /// Backstage's `type` field (`runbook`, `dashboard`, ...).
    pub link_type: Option<String>,
}

/// Where to page someone: the secondary on-call or the escalation target.
///
/// Written in the catalog as `pagerduty:<ENV_VAR>`, `opsgenie:<ENV_VAR>[:<team>]` or
/// `webhook:<url>`. The environment variables hold the secrets (routing key, GenieKey).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PagerRoute {
    /// PagerDuty Events API v2; the routing key is read from this environment variable.
    PagerDuty { routing_key_env: String },
    /// Opsgenie Alert API; the GenieKey is read from this environment variable.
    Opsgenie {
        api_key_env: String,
        team: Option<String>,
    },
    /// A generic JSON webhook.
    Webhook { url: String },
}

impl PagerRoute {
    /// Parses `pagerduty:ENV`, `opsgenie:ENV[:team]` or `webhook:https://...`.
    ///
    /// Webhook URLs must be `https://`, except `http://` to localhost (for tests and stand-ins).
    pub fn parse(s: &str) -> Result<PagerRoute, String> {
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(format!(
                "{s:?} is not a pager route (expected pagerduty:<ENV_VAR>, \
                 opsgenie:<ENV_VAR>[:<team>] or webhook:<https url>)"
            ));
        };
        let rest = rest.trim();
        match scheme.trim().to_ascii_lowercase().as_str() {
            "pagerduty" => {
                check_env_var_name(rest)?;
                Ok(PagerRoute::PagerDuty {
                    routing_key_env: rest.to_string(),
                })
            }
            "opsgenie" => {
                let (env, team) = match rest.split_once(':') {
                    Some((env, team)) => {
                        let team = team.trim();
                        if team.is_empty() {
                            return Err("opsgenie: the team after the second ':' is empty".into());
                        }
                        (env.trim(), Some(team.to_string()))
                    }
                    None => (rest, None),
                };
                check_env_var_name(env)?;
                Ok(PagerRoute::Opsgenie {
                    api_key_env: env.to_string(),
                    team,
                })
            }
            "webhook" => {
                check_webhook_url(rest)?;
                Ok(PagerRoute::Webhook {
                    url: rest.to_string(),
                })
            }
            other => Err(format!(
                "unknown pager {other:?} (expected pagerduty, opsgenie or webhook)"
            )),
        }
    }
}

impl fmt::Display for PagerRoute {
    /// Writes the route back in catalog syntax (no secrets are involved: only variable names).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagerRoute::PagerDuty { routing_key_env } => write!(f, "pagerduty:{routing_key_env}"),
            PagerRoute::Opsgenie {
                api_key_env,
                team: Some(team),
            } => write!(f, "opsgenie:{api_key_env}:{team}"),
            PagerRoute::Opsgenie {
                api_key_env,
                team: None,
            } => write!(f, "opsgenie:{api_key_env}"),
            PagerRoute::Webhook { url } => write!(f, "webhook:{url}"),
        }
    }
}

fn check_env_var_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else if name.is_empty() {
        Err("the environment variable name is missing".into())
    } else {
        Err(format!(
            "{name:?} is not an environment variable name (the catalog names the variable \
             holding the secret, never the secret itself)"
        ))
    }
}

fn check_webhook_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("the webhook URL is missing".into());
    }
    let lower = url.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("https://") {
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("{url:?} has no host"));
        }
        return Ok(());
    }
    if let Some(rest) = lower.strip_prefix("http://") {
        let host_port = rest.split('/').next().unwrap_or("");
        let host = if host_port.starts_with('[') {
            host_port.split(']').next().map(|h| format!("{h}]"))
        } else {
            host_port.split(':').next().map(str::to_string)
        }
        .unwrap_or_default();
        if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
            return Ok(());
        }
        return Err(format!(
            "{url:?} must use https:// (plain http:// is only allowed to localhost)"
        ));
    }
    Err(format!("{url:?} is not an https:// URL"))
}

/// One `kind: Component` entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Service {
    /// `metadata.name`.
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// `spec.owner` as written, e.g. `group:team-payments`.
    pub owner: Option<String>,
    /// `incident-bot/team`, else `spec.owner` without its kind and namespace.
    pub team: Option<String>,
    /// Component names from `spec.dependsOn` (`component:` and namespaces stripped; resources dropped).
    pub depends_on: Vec<String>,
    pub runbook_url: Option<String>,
    pub dashboard_url: Option<String>,
    pub links: Vec<Link>,
    /// Slack user IDs from `incident-bot/slack-owners`.
    pub slack_owners: Vec<String>,
    /// Slack user IDs from `incident-bot/oncall`.
    pub oncall_users: Vec<String>,
    pub pager: Option<PagerRoute>,
    pub escalation: Option<PagerRoute>,
    pub github_slug: Option<String>,
    pub gitlab_slug: Option<String>,
    pub argocd_app: Option<String>,
    /// `pagerduty.com/service-id`: PagerDuty incidents of this service are imported under this name.
    pub pagerduty_service_id: Option<String>,
    /// Names from `incident-bot/deploy-aliases`.
    pub aliases: Vec<String>,
    /// 1-based line of the document's first content line (after `---` and comments).
    pub source_line: usize,
}

impl Service {
    /// Every Slack user to invite to the war room: owners then on-call users, without repeats.
    pub fn invitees(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for id in self.slack_owners.iter().chain(&self.oncall_users) {
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }

    fn answers_to(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// A document that is not a Component and was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredEntity {
    pub kind: String,
    pub name: Option<String>,
    pub line: usize,
}

/// A catalog error, displayed as `config/catalog.yaml:12: metadata.name: missing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    pub path: Option<PathBuf>,
    /// 1-based line.
    pub line: Option<usize>,
    /// The offending key, e.g. `metadata.annotations.incident-bot/pager`.
    pub key: Option<String>,
    pub message: String,
}

impl CatalogError {
    fn at(line: usize, key: impl Into<String>, message: impl Into<String>) -> CatalogError {
        CatalogError {
            path: None,
            line: Some(line),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    fn with_path(mut self, path: &Path) -> CatalogError {
        self.path = Some(path.to_path_buf());
        self
    }
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => write!(f, "{}:{line}: ", path.display())?,
            (Some(path), None) => write!(f, "{}: ", path.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for CatalogError {}

/// Which kind of deploy source a key comes from (see [`Catalog::resolve_deploy_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// `owner/repo` (a full `https://github.com/...` URL is accepted too).
    GitHub,
    /// `group/subgroup/project` path.
    GitLab,
    /// Argo CD application name.
    ArgoCd,
    /// A plain service name or deploy alias.
    Name,
}

/// A service with coverage gaps: what `check-config` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub service: String,
    /// Any of `"runbook"`, `"dashboard"`, `"owner"`, `"pager"`, in that order.
    pub missing: Vec<&'static str>,
}

/// The parsed catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    services: Vec<Service>,
    ignored: Vec<IgnoredEntity>,
}

impl Catalog {
    /// A catalog with no services (the bot still works, with fewer links and nobody auto-invited).
    pub fn empty() -> Catalog {
        Catalog::default()
    }

    /// Reads and parses a catalog file; errors name the path.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogError {
            path: Some(path.to_path_buf()),
            line: None,
            key: None,
            message: format!("cannot read the service catalog: {e}"),
        })?;
        Catalog::parse(&text).map_err(|e| e.with_path(path))
    }

    /// Parses multi-document YAML made of Backstage descriptors.
    pub fn parse(yaml: &str) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::default();
        // name or alias (lowercase) -> (owning service, line where it was defined)
        let mut taken: HashMap<String, (String, usize)> = HashMap::new();
        for doc in split_documents(yaml) {
            let value: Value = serde_yaml::from_str(&doc.text).map_err(|e| CatalogError {
                path: None,
                line: e.location().map(|l| l.line()).or(Some(doc.start_line)),
                key: None,
                message: format!("invalid YAML: {e}"),
            })?;
            let line = doc.start_line;
            if value.is_null() {
                continue;
            }
            if !value.is_mapping() {
                return Err(CatalogError {
                    path: None,
                    line: Some(line),
                    key: None,
                    message: "expected a mapping (a Backstage entity descriptor)".into(),
                });
            }
            let kind = opt_string(&value, &["kind"], line)?
                .ok_or_else(|| CatalogError::at(line, "kind", "missing"))?;
            if !kind.eq_ignore_ascii_case("component") {
                catalog.ignored.push(IgnoredEntity {
                    kind,
                    name: opt_string(&value, &["metadata", "name"], line)
                        .ok()
                        .flatten(),
                    line,
                });
                continue;
            }
            let service = parse_component(&value, line)?;
            let mut names = vec![(service.name.clone(), "metadata.name".to_string())];
            for alias in &service.aliases {
                names.push((
                    alias.clone(),
                    format!("metadata.annotations.{ANNOTATION_DEPLOY_ALIASES}"),
                ));
            }
            for (name, key) in names {
                let lower = name.to_ascii_lowercase();
                if let Some((owner, first_line)) = taken.get(&lower) {
                    let message = if owner.eq_ignore_ascii_case(&name) {
                        format!(
                            "duplicate service name {name:?} (first defined at line {first_line})"
                        )
                    } else {
                        format!(
                            "{name:?} is already used by service {owner:?} (line {first_line}); \
                             names and deploy aliases must be unique"
                        )
                    };
                    return Err(CatalogError::at(line, key, message));
                }
                taken.insert(lower, (service.name.clone(), line));
            }
            catalog.services.push(service);
        }
        Ok(catalog)
    }

    /// All services, in file order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// Documents of other kinds that were skipped (System, Group, Resource, ...).
    pub fn ignored(&self) -> &[IgnoredEntity] {
        &self.ignored
    }

    /// Looks a service up by name or deploy alias, case-insensitively. An entity reference such
    /// as `component:default/payments` works too.
    pub fn get(&self, name: &str) -> Option<&Service> {
        let name = strip_entity_ref(name.trim());
        if name.is_empty() {
            return None;
        }
        self.services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .or_else(|| self.services.iter().find(|s| s.answers_to(name)))
    }

    /// The service's direct `dependsOn` components that are in the catalog, in order.
    pub fn dependencies(&self, name: &str) -> Vec<&Service> {
        let Some(service) = self.get(name) else {
            return Vec::new();
        };
        let mut out: Vec<&Service> = Vec::new();
        for dep in &service.depends_on {
            if let Some(d) = self.get(dep) {
                if !out.iter().any(|o| o.name == d.name) {
                    out.push(d);
                }
            }
        }
        out
    }

    /// The service's direct `dependsOn` component names, including components not in the catalog
    /// (catalog services under their catalog spelling). Empty for an unknown service.
    pub fn dependency_names(&self, name: &str) -> Vec<String> {
        let Some(service) = self.get(name) else {
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for dep in &service.depends_on {
            let name = self
                .get(dep)
                .map_or_else(|| dep.clone(), |d| d.name.clone());
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&name)) {
                out.push(name);
            }
        }
        out
    }

    /// Did-you-mean: up to 3 names from the catalog and `extra` (e.g. services seen in deploy
    /// history) close to `name`, best first. Closeness is the Damerau-Levenshtein distance
    /// (at most 1 for names up to 4 characters, 2 up to 8, else 3), or a prefix or substring
    /// match of at least 3 characters; a trailing `-service`/`-svc`/`-api`/`-app` is also tried
    /// without. Deploy aliases count as spellings of their service.
    pub fn suggest(&self, name: &str, extra: &[String]) -> Vec<String> {
        let query = normalize(name);
        if query.is_empty() {
            return Vec::new();
        }
        // `inventroy-service` is compared as itself and as `inventroy`.
        let mut query_forms = vec![query.clone()];
        for suffix in ["-service", "-svc", "-api", "-app"] {
            if let Some(stem) = query
                .strip_suffix(suffix)
                .filter(|s| s.chars().count() >= 3)
            {
                query_forms.push(stem.to_string());
            }
        }
        // (suggested name, spelling to compare)
        let mut candidates: Vec<(String, String)> = Vec::new();
        for s in &self.services {
            candidates.push((s.name.clone(), s.name.clone()));
            for a in &s.aliases {
                candidates.push((s.name.clone(), a.clone()));
            }
        }
        for e in extra {
            let e = e.trim();
            if !e.is_empty() {
                candidates.push((e.to_string(), e.to_string()));
            }
        }
        // best (rank, distance) per suggested name, compared case-insensitively
        let mut best: Vec<(String, (usize, usize))> = Vec::new();
        for (suggested, spelling) in candidates {
            let spelling = normalize(&spelling);
            let Some(score) = query_forms
                .iter()
                .filter_map(|q| closeness(q, &spelling))
                .min()
            else {
                continue;
            };
            match best
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(&suggested))
            {
                Some((_, s)) if score < *s => *s = score,
                Some(_) => {}
                None => best.push((suggested, score)),
            }
        }
        best.sort_by(|(a, sa), (b, sb)| sa.cmp(sb).then_with(|| a.cmp(b)));
        best.into_iter().take(3).map(|(n, _)| n).collect()
    }

    /// Maps a deploy source to a service: a GitHub `owner/repo` (matched against
    /// `github.com/project-slug`, then its repo part against names and aliases), a GitLab project
    /// path (`gitlab.com/project-slug`, then its last segment), an Argo CD app (`argocd/app-name`,
    /// then names and aliases), or a plain name. With several services on one slug (a monorepo),
    /// the first in the file wins.
    pub fn resolve_deploy_source(&self, kind: RepoKind, key: &str) -> Option<&Service> {
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        match kind {
            RepoKind::Name => self.get(key),
            RepoKind::ArgoCd => self
                .services
                .iter()
                .find(|s| eq_opt(&s.argocd_app, key))
                .or_else(|| self.get(key)),
            RepoKind::GitHub | RepoKind::GitLab => {
                let host = if kind == RepoKind::GitHub {
                    "github.com/"
                } else {
                    "gitlab.com/"
                };
                let slug = clean_slug(key, host);
                let by_slug = self.services.iter().find(|s| {
                    let own = if kind == RepoKind::GitHub {
                        &s.github_slug
                    } else {
                        &s.gitlab_slug
                    };
                    own.as_deref()
                        .is_some_and(|o| clean_slug(o, host).eq_ignore_ascii_case(&slug))
                });
                by_slug.or_else(|| {
                    let last = slug.rsplit('/').next().unwrap_or(&slug);
                    self.get(last)
                })
            }
        }
    }

    /// Services lacking a runbook, a dashboard, an owner (Slack owners or on-call users to invite)
    /// or a pager route, in file order.
    pub fn coverage_gaps(&self) -> Vec<Gap> {
        self.services
            .iter()
            .filter_map(|s| {
                let missing = missing_coverage(s);
                (!missing.is_empty()).then(|| Gap {
                    service: s.name.clone(),
                    missing,
                })
            })
            .collect()
    }
}

fn missing_coverage(s: &Service) -> Vec<&'static str> {
    let mut missing = Vec::new();
    if s.runbook_url.is_none() {
        missing.push("runbook");
    }
    if s.dashboard_url.is_none() {
        missing.push("dashboard");
    }
    if s.slack_owners.is_empty() && s.oncall_users.is_empty() {
        missing.push("owner");
    }
    if s.pager.is_none() {
        missing.push("pager");
    }
    missing
}

/// An aligned text table of every service with ✓/✗ per coverage item, and a summary line such as
/// `2 of 6 services have coverage gaps`.
pub fn render_gaps_table(gaps: &[Gap], services: &[Service]) -> String {
    const COLUMNS: [&str; 4] = ["runbook", "dashboard", "owner", "pager"];
    if services.is_empty() {
        return "The catalog has no services.\n".to_string();
    }
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("service")
        .chain(COLUMNS)
        .map(str::to_string)
        .collect()];
    for s in services {
        let gap = gaps.iter().find(|g| g.service == s.name);
        let mut row = vec![s.name.clone()];
        for col in COLUMNS {
            let missing = gap.is_some_and(|g| g.missing.contains(&col));
            row.push(if missing { "✗" } else { "✓" }.to_string());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..=COLUMNS.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(cell);
            let pad = width - cell.chars().count() + 2;
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let with_gaps = services
        .iter()
        .filter(|s| {
            gaps.iter()
                .any(|g| g.service == s.name && !g.missing.is_empty())
        })
        .count();
    let total = services.len();
    if with_gaps == 0 && total == 1 {
        out.push_str("The service has a runbook, dashboard, owner and pager.\n");
    } else if with_gaps == 0 {
        out.push_str(&format!(
            "All {total} services have a runbook, dashboard, owner and pager.\n"
        ));
    } else {
        let verb = if with_gaps == 1 { "has" } else { "have" };
        let noun = if total == 1 { "service" } else { "services" };
        out.push_str(&format!(
            "{with_gaps} of {total} {noun} {verb} coverage gaps \
             (owner = Slack users to invite: {ANNOTATION_SLACK_OWNERS} or {ANNOTATION_ONCALL})\n"
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers

struct RawDocument {
    /// The document padded with blank lines so that YAML error locations are file lines.
    text: String,
    /// 1-based first content line.
    start_line: usize,
}

fn is_doc_start(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn is_doc_end(line: &str) -> bool {
    line.strip_prefix("...")
        .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
}

/// Splits multi-document YAML on `---` lines, remembering where each document's content starts.
fn split_documents(yaml: &str) -> Vec<RawDocument> {
    let yaml = yaml.strip_prefix('\u{feff}').unwrap_or(yaml);
    let lines: Vec<&str> = yaml.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let mut starts: Vec<usize> = vec![0];
    for (i, line) in lines.iter().enumerate() {
        if i > 0 && is_doc_start(line) {
            starts.push(i);
        }
    }
    let mut docs = Vec::new();
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(lines.len());
        let mut text = "\n".repeat(start);
        let mut first_content = None;
        for (i, line) in lines.iter().enumerate().take(end).skip(start) {
            // Directives and document-end markers sit outside documents: blank them.
            let keep = !(line.starts_with('%') || is_doc_end(line));
            if keep {
                text.push_str(line);
            }
            text.push('\n');
            if first_content.is_none() && keep {
                let content = if is_doc_start(line) { &line[3..] } else { line };
                let content = content.trim();
                if !content.is_empty() && !content.starts_with('#') {
                    first_content = Some(i + 1);
                }
            }
        }
        docs.push(RawDocument {
            text,
            start_line: first_content.unwrap_or(start + 1),
        });
    }
    docs
}

fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut v = value;
    for key in path {
        v = v.get(*key)?;
        if v.is_null() {
            return None;
        }
    }
    Some(v)
}

fn scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_to_string(&t.value),
        _ => None,
    }
}

/// A scalar at `path` as a non-empty string; a mapping or sequence there is an error.
fn opt_string(value: &Value, path: &[&str], line: usize) -> Result<Option<String>, CatalogError> {
    match lookup(value, path) {
        None => Ok(None),
        Some(v) => match scalar_to_string(v) {
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => Ok(Some(s)),
            None => Err(CatalogError::at(line, path.join("."), "expected a string")),
        },
    }
}

fn annotation(value: &Value, key: &str, line: usize) -> Result<Option<String>, CatalogError> {
    match lookup(value, &["metadata", "annotations"]).and_then(|a| a.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match scalar_to_string(v) {
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => Ok(Some(s)),
            None => Err(CatalogError::at(
                line,
                format!("metadata.annotations.{key}"),
                "expected a string",
            )),
        },
    }
}

/// A comma- or whitespace-separated annotation (a YAML list is accepted too).
fn annotation_list(value: &Value, key: &str, line: usize) -> Result<Vec<String>, CatalogError> {
    let raw = lookup(value, &["metadata", "annotations"]).and_then(|a| a.get(key));
    let items: Vec<String> = match raw {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(seq)) => seq.iter().filter_map(scalar_to_string).collect(),
        Some(v) => match scalar_to_string(v) {
            Some(s) => vec![s],
            None => {
                return Err(CatalogError::at(
                    line,
                    format!("metadata.annotations.{key}"),
                    "expected a comma-separated string",
                ))
            }
        },
    };
    let mut out: Vec<String> = Vec::new();
    for item in &items {
        for part in item.split(|c: char| c == ',' || c.is_whitespace()) {
            let part = part.trim();
            if !part.is_empty() && !out.iter().any(|o| o == part) {
                out.push(part.to_string());
            }
        }
    }
    Ok(out)
}

fn slack_user_ids(value: &Value, key: &str, line: usize) -> Result<Vec<String>, CatalogError> {
    let ids = annotation_list(value, key, line)?;
    for id in &ids {
        let valid = id.len() >= 3
            && id.starts_with(['U', 'W'])
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid {
            return Err(CatalogError::at(
                line,
                format!("metadata.annotations.{key}"),
                format!(
                    "{id:?} is not a Slack user ID (expected IDs such as U012AB3CD, \
                     comma separated; Slack shows them under Profile > Copy member ID)"
                ),
            ));
        }
    }
    Ok(ids)
}

fn pager_annotation(
    value: &Value,
    key: &str,
    line: usize,
) -> Result<Option<PagerRoute>, CatalogError> {
    annotation(value, key, line)?
        .map(|s| {
            PagerRoute::parse(&s)
                .map_err(|m| CatalogError::at(line, format!("metadata.annotations.{key}"), m))
        })
        .transpose()
}

/// `[kind:][namespace/]name` -> `(kind, name)`.
fn split_entity_ref(reference: &str) -> (Option<&str>, &str) {
    let (kind, rest) = match reference.split_once(':') {
        Some((k, r)) => (Some(k.trim()), r.trim()),
        None => (None, reference.trim()),
    };
    let name = rest.rsplit('/').next().unwrap_or(rest).trim();
    (kind, name)
}

fn strip_entity_ref(reference: &str) -> &str {
    split_entity_ref(reference).1
}

fn parse_links(value: &Value, line: usize) -> Result<Vec<Link>, CatalogError> {
    let Some(raw) = lookup(value, &["metadata", "links"]) else {
        return Ok(Vec::new());
    };
    let Value::Sequence(seq) = raw else {
        return Err(CatalogError::at(line, "metadata.links", "expected a list"));
    };
    let mut links = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        if !item.is_mapping() {
            return Err(CatalogError::at(
                line,
                format!("metadata.links[{i}]"),
                "expected a mapping with url, title and type",
            ));
        }
        let url = opt_string(item, &["url"], line)
            .map_err(|e| CatalogError::at(line, format!("metadata.links[{i}].url"), e.message))?
            .ok_or_else(|| CatalogError::at(line, format!("metadata.links[{i}].url"), "missing"))?;
        let title = opt_string(item, &["title"], line)
            .map_err(|e| CatalogError::at(line, format!("metadata.links[{i}].title"), e.message))?;
        let link_type = opt_string(item, &["type"], line)
            .map_err(|e| CatalogError::at(line, format!("metadata.links[{i}].type"), e.message))?;
        links.push(Link {
            title,
            url,
            link_type,
        });
    }
    Ok(links)
}

/// The first link typed `word`, else the first whose title contains `word` (case-insensitive).
fn pick_link(links: &[Link], word: &str) -> Option<String> {
    links
        .iter()
        .find(|l| {
            l.link_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(word))
        })
        .or_else(|| {
            links.iter().find(|l| {
                l.title
                    .as_deref()
                    .is_some_and(|t| t.to_ascii_lowercase().contains(word))
            })
        })
        .map(|l| l.url.clone())
}

fn parse_depends_on(value: &Value, line: usize) -> Result<Vec<String>, CatalogError> {
    let Some(raw) = lookup(value, &["spec", "dependsOn"]) else {
        return Ok(Vec::new());
    };
    let Value::Sequence(seq) = raw else {
        return Err(CatalogError::at(
            line,
            "spec.dependsOn",
            "expected a list of entity references",
        ));
    };
    let mut out: Vec<String> = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let Some(reference) = scalar_to_string(item) else {
            return Err(CatalogError::at(
                line,
                format!("spec.dependsOn[{i}]"),
                "expected an entity reference such as component:auth",
            ));
        };
        let (kind, name) = split_entity_ref(&reference);
        let is_component = kind.is_none_or(|k| k.eq_ignore_ascii_case("component"));
        if is_component && !name.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(name)) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

fn parse_component(value: &Value, line: usize) -> Result<Service, CatalogError> {
    let name = opt_string(value, &["metadata", "name"], line)?
        .ok_or_else(|| CatalogError::at(line, "metadata.name", "missing"))?;
    let owner = opt_string(value, &["spec", "owner"], line)?;
    let team = annotation(value, ANNOTATION_TEAM, line)?.or_else(|| {
        owner
            .as_deref()
            .map(|o| strip_entity_ref(o).to_string())
            .filter(|t| !t.is_empty())
    });
    let links = parse_links(value, line)?;
    let aliases = annotation_list(value, ANNOTATION_DEPLOY_ALIASES, line)?
        .into_iter()
        .filter(|a| !a.eq_ignore_ascii_case(&name))
        .collect();
    Ok(Service {
        title: opt_string(value, &["metadata", "title"], line)?,
        description: opt_string(value, &["metadata", "description"], line)?,
        owner,
        team,
        depends_on: parse_depends_on(value, line)?,
        runbook_url: pick_link(&links, "runbook"),
        dashboard_url: pick_link(&links, "dashboard"),
        links,
        slack_owners: slack_user_ids(value, ANNOTATION_SLACK_OWNERS, line)?,
        oncall_users: slack_user_ids(value, ANNOTATION_ONCALL, line)?,
        pager: pager_annotation(value, ANNOTATION_PAGER, line)?,
        escalation: pager_annotation(value, ANNOTATION_ESCALATION, line)?,
        github_slug: annotation(value, ANNOTATION_GITHUB_SLUG, line)?,
        gitlab_slug: annotation(value, ANNOTATION_GITLAB_SLUG, line)?,
        argocd_app: annotation(value, ANNOTATION_ARGOCD_APP, line)?,
        pagerduty_service_id: annotation(value, ANNOTATION_PAGERDUTY_SERVICE, line)?,
        aliases,
        source_line: line,
        name,
    })
}

// ---------------------------------------------------------------------------------------------
// Matching helpers

fn eq_opt(own: &Option<String>, key: &str) -> bool {
    own.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(key))
}

/// `https://github.com/acme/payments-api.git` -> `acme/payments-api`.
fn clean_slug(key: &str, host: &str) -> String {
    let mut s = key.trim();
    for scheme in ["https://", "http://", "ssh://git@", "git@"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            s = rest;
        }
    }
    if let Some(rest) = s.strip_prefix(host) {
        s = rest;
    } else if let Some(rest) = s.strip_prefix(&host.replace('/', ":")) {
        s = rest;
    }
    let s = s.trim_matches('/');
    s.strip_suffix(".git").unwrap_or(s).to_string()
}

fn normalize(s: &str) -> String {
    s.trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == '_' || c == ' ' { '-' } else { c })
        .collect()
}

/// `Some((rank, distance))` when `candidate` is a reasonable match for `query`; lower is better.
fn closeness(query: &str, candidate: &str) -> Option<(usize, usize)> {
    // optimal string alignment: insertions, deletions, substitutions and adjacent swaps
    let distance = strsim::osa_distance(query, candidate);
    let q_len = query.chars().count();
    let shorter = q_len.min(candidate.chars().count());
    let max_distance = match q_len {
        0..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    let prefix = shorter >= 3 && (candidate.starts_with(query) || query.starts_with(candidate));
    let contains = shorter >= 3 && (candidate.contains(query) || query.contains(candidate));
    let rank = if distance <= 1 {
        distance
    } else if prefix {
        1
    } else if distance <= max_distance {
        distance
    } else if contains {
        max_distance + 1
    } else {
        return None;
    };
    Some((rank, distance))
}

impl Catalog {
    /// The environment variables the catalog's pager routes name (routing keys, Opsgenie keys), deduplicated.
    pub fn secret_vars(&self) -> Vec<String> {
        let mut vars: Vec<String> = self
            .services()
            .iter()
            .flat_map(|s| [&s.pager, &s.escalation])
            .filter_map(|r| match r {
                Some(PagerRoute::PagerDuty { routing_key_env }) => Some(routing_key_env.clone()),
                Some(PagerRoute::Opsgenie { api_key_env, .. }) => Some(api_key_env.clone()),
                _ => None,
            })
            .collect();
        vars.sort();
        vars.dedup();
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../config/catalog.yaml");

    fn shipped() -> Catalog {
        match Catalog::parse(SHIPPED) {
            Ok(c) => c,
            Err(e) => panic!("shipped catalog does not parse: {e}"),
        }
    }

    fn parse_err(yaml: &str) -> CatalogError {
        match Catalog::parse(yaml) {
            Ok(c) => panic!("expected an error, got {} services", c.services().len()),
            Err(e) => e,
        }
    }

    /// The example from Backstage's "Descriptor Format of Catalog Entities" page, untouched.
    const BACKSTAGE_EXAMPLE: &str = "\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: artist-web
  description: The place to be, for great artists
  labels:
    example.com/custom: custom_label_value
  annotations:
    example.com/service-discovery: artistweb
    circleci.com/project-slug: github/example-org/artist-website
  tags:
    - java
  links:
    - url: https://admin.example-org.com
      title: Admin Dashboard
      icon: dashboard
      type: admin-dashboard
spec:
  type: website
  lifecycle: production
  owner: artist-relations-team
  system: public-websites
";

    #[test]
    fn shipped_catalog_has_six_services_and_skips_other_kinds() {
        let c = shipped();
        let names: Vec<&str> = c.services().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "payments",
                "checkout",
                "search",
                "auth",
                "inventory",
                "notifications"
            ]
        );
        let kinds: Vec<&str> = c.ignored().iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["System", "Group", "Resource"]);
    }

    #[test]
    fn shipped_payments_has_runbook_dashboard_people_and_routes() {
        let c = shipped();
        let p = c.get("payments").expect("payments");
        assert_eq!(p.title.as_deref(), Some("Payments API"));
        assert_eq!(
            p.runbook_url.as_deref(),
            Some("https://runbooks.acme.example/payments")
        );
        assert_eq!(
            p.dashboard_url.as_deref(),
            Some("https://grafana.acme.example/d/payments-overview")
        );
        assert_eq!(p.links.len(), 3);
        assert_eq!(p.owner.as_deref(), Some("group:team-payments"));
        assert_eq!(p.team.as_deref(), Some("payments"));
        assert_eq!(p.slack_owners, ["U0PAYOWN1", "U0PAYOWN2"]);
        assert_eq!(p.oncall_users, ["U0PAYONC1"]);
        assert_eq!(p.invitees(), ["U0PAYOWN1", "U0PAYOWN2", "U0PAYONC1"]);
        assert_eq!(
            p.pager,
            Some(PagerRoute::PagerDuty {
                routing_key_env: "PAGERDUTY_ROUTING_KEY_PAYMENTS".into()
            })
        );
        assert_eq!(p.aliases, ["payments-api", "payments-worker"]);
        assert_eq!(p.github_slug.as_deref(), Some("acme/payments-api"));
        assert_eq!(p.argocd_app.as_deref(), Some("payments-prod"));
        assert_eq!(p.depends_on, ["auth", "inventory"]);
        let line_of_payments = SHIPPED
            .lines()
            .position(|l| l == "  name: payments")
            .expect("payments in file")
            + 1;
        // the document starts two lines above `metadata.name` (apiVersion, kind, metadata)
        assert_eq!(p.source_line, line_of_payments - 3);
        assert!(SHIPPED
            .lines()
            .nth(p.source_line - 1)
            .is_some_and(|l| l.starts_with("apiVersion:")));
    }

    #[test]
    fn team_defaults_to_owner_without_group_prefix() {
        let c = shipped();
        assert_eq!(
            c.get("checkout").and_then(|s| s.team.as_deref()),
            Some("team-checkout")
        );
        let c = Catalog::parse(BACKSTAGE_EXAMPLE).expect("parses");
        assert_eq!(
            c.services()[0].team.as_deref(),
            Some("artist-relations-team")
        );
    }

    #[test]
    fn runbook_falls_back_to_a_title_containing_runbook() {
        let c = shipped();
        let inv = c.get("inventory").expect("inventory");
        assert_eq!(
            inv.runbook_url.as_deref(),
            Some("https://wiki.acme.example/inventory/runbook")
        );
        let search = c.get("search").expect("search");
        assert_eq!(search.runbook_url, None);
        assert_eq!(
            search.dashboard_url.as_deref(),
            Some("https://grafana.acme.example/d/search")
        );
    }

    #[test]
    fn opsgenie_and_webhook_routes_parse_from_the_shipped_file() {
        let c = shipped();
        let checkout = c.get("checkout").expect("checkout");
        assert_eq!(
            checkout.pager,
            Some(PagerRoute::Opsgenie {
                api_key_env: "OPSGENIE_API_KEY".into(),
                team: Some("Checkout".into())
            })
        );
        assert_eq!(
            checkout.escalation,
            Some(PagerRoute::Webhook {
                url: "https://hooks.acme.example/escalate/checkout".into()
            })
        );
    }

    #[test]
    fn get_is_case_insensitive_and_knows_deploy_aliases() {
        let c = shipped();
        assert_eq!(c.get("PAYMENTS").map(|s| s.name.as_str()), Some("payments"));
        assert_eq!(
            c.get("payments-worker").map(|s| s.name.as_str()),
            Some("payments")
        );
        assert_eq!(
            c.get(" Inventory-Sync ").map(|s| s.name.as_str()),
            Some("inventory")
        );
        assert_eq!(
            c.get("component:default/auth").map(|s| s.name.as_str()),
            Some("auth")
        );
        assert!(c.get("paymnets").is_none());
        assert!(c.get("").is_none());
    }

    #[test]
    fn dependencies_keep_order_and_only_catalog_components() {
        let c = shipped();
        let deps: Vec<&str> = c
            .dependencies("checkout")
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(deps, ["payments", "inventory", "auth"]);
        assert_eq!(
            c.dependency_names("checkout"),
            ["payments", "inventory", "auth", "recommendations"]
        );
        assert!(c.dependencies("auth").is_empty(), "resources are dropped");
        assert!(c.dependency_names("no-such-service").is_empty());
    }

    #[test]
    fn suggest_finds_transposed_and_truncated_names() {
        let c = shipped();
        assert_eq!(
            c.suggest("paymnets", &[]).first().map(String::as_str),
            Some("payments")
        );
        assert_eq!(c.suggest("chekout", &[]), ["checkout"]);
        assert_eq!(c.suggest("notif", &[]), ["notifications"]);
        assert_eq!(c.suggest("payments-wroker", &[]), ["payments"]);
        assert_eq!(c.suggest("inventroy-service", &[]), ["inventory"]);
    }

    #[test]
    fn suggest_includes_names_from_deploy_history_and_rejects_nonsense() {
        let c = shipped();
        let extra = vec!["recommendations".to_string(), "payments".to_string()];
        assert_eq!(c.suggest("recomendations", &extra), ["recommendations"]);
        assert!(c.suggest("kubernetes", &extra).is_empty());
        assert!(c.suggest("x", &extra).is_empty());
        assert!(c.suggest("  ", &extra).is_empty());
        assert!(c.suggest("anything", &[]).len() <= 3);
    }

    #[test]
    fn suggest_returns_at_most_three_best_first() {
        let yaml = ["pay1", "pay2", "pay3", "pay4", "payx"]
            .iter()
            .map(|n| format!("kind: Component\nmetadata:\n  name: {n}\n"))
            .collect::<Vec<_>>()
            .join("---\n");
        let c = Catalog::parse(&yaml).expect("parses");
        let s = c.suggest("pay4", &[]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0], "pay4");
    }

    #[test]
    fn deploy_sources_resolve_by_slug_repo_part_and_app_name() {
        let c = shipped();
        let name = |s: Option<&Service>| s.map(|s| s.name.clone());
        assert_eq!(
            name(c.resolve_deploy_source(RepoKind::GitHub, "acme/payments-api")),
            Some("payments".into())
        );
        assert_eq!(
            name(c.resolve_deploy_source(
                RepoKind::GitHub,
                "https://github.com/Acme/Auth-Service.git"
            )),
            Some("auth".into())
        );
        // not a slug in the catalog, but the repo part is a deploy alias
        assert_eq!(
            name(c.resolve_deploy_source(RepoKind::GitHub, "other-org/payments-worker")),
            Some("payments".into())
        );
        assert_eq!(
            name(c.resolve_deploy_source(RepoKind::GitLab, "acme/discovery/search-service")),
            Some("search".into())
        );
        assert_eq!(
            name(c.resolve_deploy_source(RepoKind::ArgoCd, "inventory-prod")),
            Some("inventory".into())
        );
        assert_eq!(
            name(c.resolve_deploy_source(RepoKind::ArgoCd, "checkout")),
            Some("checkout".into())
        );
        assert_eq!(
            name(c.resolve_deploy_source(RepoKind::Name, "checkout-web")),
            Some("checkout".into())
        );
        assert!(c
            .resolve_deploy_source(RepoKind::GitHub, "acme/unknown")
            .is_none());
    }

    #[test]
    fn plain_backstage_descriptor_without_bot_keys_loads() {
        let c = Catalog::parse(BACKSTAGE_EXAMPLE).expect("parses");
        let s = &c.services()[0];
        assert_eq!(s.name, "artist-web");
        assert_eq!(s.owner.as_deref(), Some("artist-relations-team"));
        assert_eq!(
            s.dashboard_url.as_deref(),
            Some("https://admin.example-org.com")
        );
        assert_eq!(s.runbook_url, None);
        assert!(s.slack_owners.is_empty() && s.pager.is_none() && s.aliases.is_empty());
        assert_eq!(s.source_line, 1);
    }

    #[test]
    fn empty_catalog_and_comment_only_documents_have_no_services() {
        assert!(Catalog::empty().services().is_empty());
        let c = Catalog::parse("# nothing yet\n---\n# still nothing\n").expect("parses");
        assert!(c.services().is_empty());
        assert!(Catalog::parse("").expect("parses").services().is_empty());
    }

    #[test]
    fn missing_name_is_reported_with_line_and_key() {
        let yaml = "kind: Component\nmetadata:\n  name: a\n---\n# comment\nkind: Component\nmetadata:\n  title: no name\n";
        let e = parse_err(yaml);
        assert_eq!(e.line, Some(6));
        assert_eq!(e.key.as_deref(), Some("metadata.name"));
        assert_eq!(e.to_string(), "line 6: metadata.name: missing");
    }

    #[test]
    fn bad_pager_route_names_the_annotation() {
        let yaml = "kind: Component\nmetadata:\n  name: a\n---\nkind: Component\nmetadata:\n  name: b\n  annotations:\n    incident-bot/pager: \"pagerdooty:KEY\"\n";
        let e = parse_err(yaml);
        assert_eq!(e.line, Some(5));
        assert_eq!(
            e.key.as_deref(),
            Some("metadata.annotations.incident-bot/pager")
        );
        assert!(e.message.contains("pagerdooty"), "{e}");
    }

    #[test]
    fn duplicate_names_and_clashing_aliases_are_errors() {
        let yaml =
            "kind: Component\nmetadata:\n  name: a\n---\nkind: Component\nmetadata:\n  name: A\n";
        let e = parse_err(yaml);
        assert_eq!((e.line, e.key.as_deref()), (Some(5), Some("metadata.name")));
        assert!(e.message.contains("duplicate"), "{e}");

        let yaml = "kind: Component\nmetadata:\n  name: a\n---\nkind: Component\nmetadata:\n  name: b\n  annotations:\n    incident-bot/deploy-aliases: a\n";
        let e = parse_err(yaml);
        assert_eq!(
            e.key.as_deref(),
            Some("metadata.annotations.incident-bot/deploy-aliases")
        );
    }

    #[test]
    fn yaml_syntax_errors_carry_the_file_line() {
        let yaml =
            "kind: Component\nmetadata:\n  name: a\n---\nkind: Component\nmetadata:\n  name: [b\n";
        let e = parse_err(yaml);
        assert!(e.line.is_some_and(|l| l >= 7), "{e:?}");
        let e = parse_err("kind: Component\nmetadata:\n  name: a\n   bad: indent\n");
        assert_eq!(e.line, Some(4), "{e:?}");
    }

    #[test]
    fn slack_owner_handles_instead_of_ids_are_rejected() {
        let yaml = "kind: Component\nmetadata:\n  name: a\n  annotations:\n    incident-bot/slack-owners: \"@alice\"\n";
        let e = parse_err(yaml);
        assert_eq!(
            e.key.as_deref(),
            Some("metadata.annotations.incident-bot/slack-owners")
        );
    }

    #[test]
    fn load_names_the_path_of_a_missing_file() {
        let e = Catalog::load(Path::new("/nonexistent/catalog.yaml")).expect_err("missing");
        assert!(
            e.to_string().starts_with("/nonexistent/catalog.yaml: "),
            "{e}"
        );
    }

    #[test]
    fn errors_display_path_line_key_and_message() {
        let e = CatalogError {
            path: Some(PathBuf::from("config/catalog.yaml")),
            line: Some(12),
            key: Some("metadata.name".into()),
            message: "missing".into(),
        };
        assert_eq!(
            e.to_string(),
            "config/catalog.yaml:12: metadata.name: missing"
        );
    }

    #[test]
    fn pager_routes_parse_and_round_trip() {
        for s in [
            "pagerduty:PD_KEY",
            "opsgenie:OG_KEY",
            "opsgenie:OG_KEY:SRE Team",
            "webhook:https://hooks.example.com/x",
            "webhook:http://127.0.0.1:9000/page",
        ] {
            let r = PagerRoute::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(r.to_string(), s);
        }
        assert_eq!(
            PagerRoute::parse(" PagerDuty: PD_KEY "),
            Ok(PagerRoute::PagerDuty {
                routing_key_env: "PD_KEY".into()
            })
        );
        for bad in [
            "",
            "pagerduty",
            "pagerduty:",
            "pagerduty:R0u7ingKey-with-dashes",
            "opsgenie:KEY:",
            "webhook:ftp://x",
            "webhook:http://hooks.example.com",
            "sms:123",
        ] {
            assert!(
                PagerRoute::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn shipped_catalog_gaps_are_search_runbook_and_notifications_owner_and_pager() {
        let c = shipped();
        assert_eq!(
            c.coverage_gaps(),
            [
                Gap {
                    service: "search".into(),
                    missing: vec!["runbook"]
                },
                Gap {
                    service: "notifications".into(),
                    missing: vec!["owner", "pager"]
                },
            ]
        );
    }

    #[test]
    fn gaps_table_is_aligned_and_summarised() {
        let c = shipped();
        let table = render_gaps_table(&c.coverage_gaps(), c.services());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 8, "{table}");
        assert_eq!(lines[0], "service        runbook  dashboard  owner  pager");
        assert_eq!(lines[3], "search         ✗        ✓          ✓      ✓");
        assert_eq!(lines[6], "notifications  ✓        ✓          ✗      ✗");
        assert!(
            lines[7].starts_with("2 of 6 services have coverage gaps"),
            "{table}"
        );

        let none = render_gaps_table(&[], &c.services()[..1]);
        assert!(none.ends_with("The service has a runbook, dashboard, owner and pager.\n"));
    }
}
