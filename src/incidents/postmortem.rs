//! The postmortem draft of an incident (SPEC §13): gathers what the bot stored — the incident, its timeline lines,
//! the deploys before impact, the service's coverage in the catalog and the alert routes, the follow-ups — into a
//! [`crate::domain::postmortem::Draft`] and renders it. Uploaded to the incident channel at resolution (an outbox
//! row queued with the MTTR summary, [`super::outbox`]) and on `/incident postmortem`
//! ([`super::followups::request_postmortem`], beside the other learning commands); written to stdout by
//! `incident-bot export INC-n --format postmortem` (read-only), with the same bytes for the same data. Times are
//! in the configured zone (`incidents.default_timezone`).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Incident;
use crate::catalog::Catalog;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::deploy::Deploy;
use crate::domain::postmortem::{self, Coverage, Draft};
use crate::domain::text;
use crate::state::AppState;
use crate::store::{deploys, followups, incidents};

/// A rendered draft, ready to upload.
pub struct Built {
    pub filename: String,
    pub title: String,
    /// The upload's comment (Slack text: escaped, no mention).
    pub comment: String,
    pub markdown: String,
}

/// The zone the draft is written in: `incidents.default_timezone`, else UTC.
pub fn zone(settings: &Settings) -> Tz {
    settings
        .incidents
        .default_timezone
        .parse()
        .unwrap_or(chrono_tz::UTC)
}

/// Production deploys to the incident's service and its dependencies in the 2 hours before impact.
async fn deploys_before(
    db: &Db,
    catalog: &Catalog,
    inc: &Incident,
) -> Result<Vec<Deploy>, sqlx::Error> {
    let Some(service) = inc.service.as_deref() else {
        return Ok(Vec::new());
    };
    let mut names = vec![catalog
        .get(service)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| service.to_string())];
    names.extend(catalog.dependency_names(service));
    let until = inc.timeline.started_at;
    deploys::recent(db, &names, until - chrono::Duration::hours(2), until, 10).await
}

/// The service's coverage: the catalog's runbook, dashboard, owner and pager, and the alert routes naming it.
fn coverage(settings: &Settings, catalog: &Catalog, service: &str) -> Option<Coverage> {
    let s = catalog.get(service)?;
    let alert_routes = settings
        .alerts
        .routes
        .iter()
        .filter(|r| {
            r.service
                .as_deref()
                .and_then(|n| catalog.get(n))
                .is_some_and(|t| t.name == s.name)
        })
        .map(|r| r.action.clone())
        .collect();
    Some(Coverage {
        service: s.name.clone(),
        runbook_url: s.runbook_url.clone(),
        dashboard_url: s.dashboard_url.clone(),
        owner: !s.slack_owners.is_empty() || !s.oncall_users.is_empty(),
        pager: s.pager.is_some(),
        alert_routes,
    })
}

/// Everything the draft of `inc` shows, read from `db`.
pub async fn gather(
    db: &Db,
    settings: &Settings,
    catalog: &Catalog,
    inc: &Incident,
    now: DateTime<Utc>,
) -> Result<Draft, sqlx::Error> {
    let mut entries = incidents::timeline_entries(db, &inc.id).await?;
    // Lines of one instant in a stable order (their stored ids are random).
    entries.sort_by(|a, b| {
        (a.at, &a.kind, &a.detail, &a.actor).cmp(&(b.at, &b.kind, &b.detail, &b.actor))
    });
    Ok(Draft {
        key: inc.key(),
        title: inc.title.clone(),
        severity: inc.severity,
        peak_severity: inc.peak_severity,
        service: inc.service.clone(),
        declared_by: inc.declared_by.clone(),
        ic: inc.roles.ic.clone(),
        comms: inc.roles.comms.clone(),
        detection: inc.detection,
        timeline: inc.timeline.clone(),
        entries,
        deploys: deploys_before(db, catalog, inc).await?,
        coverage: inc
            .service
            .as_deref()
            .and_then(|s| coverage(settings, catalog, s)),
        followups: followups::of_incident(db, &inc.id).await?,
        tz: zone(settings),
        now,
    })
}

/// The draft of `inc` rendered, with the file's name and title and the upload's comment.
pub fn built(inc: &Incident, draft: &Draft) -> Built {
    let key = inc.key();
    Built {
        filename: format!("{key}-postmortem.md"),
        title: format!("{key} postmortem draft"),
        comment: format!(
            "📝 Postmortem draft for *{key}* · {} — download it, edit it, share it. Follow-ups: `/incident followups`.",
            text::escape_cut(&inc.title, 200)
        ),
        markdown: postmortem::render(draft),
    }
}

/// The draft of `inc` from the running bot's database, catalog and settings.
pub async fn build(state: &AppState, inc: &Incident) -> Result<Built, sqlx::Error> {
    let draft = gather(
        &state.db,
        &state.settings,
        &state.catalog,
        inc,
        state.clock.now(),
    )
    .await?;
    Ok(built(inc, &draft))
}

/// `incident-bot export <INC-n> --format postmortem`: the draft, read without writing (the database is opened
/// read-only and never migrated); the same bytes the bot uploads for the same data.
pub async fn export_cli(
    settings: &Settings,
    catalog: &Catalog,
    database_url: &str,
    key: &str,
    tz: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let mut settings = settings.clone();
    if let Some(tz) = tz {
        tz.parse::<Tz>()
            .map_err(|_| anyhow::anyhow!("--tz `{tz}` is not an IANA time zone"))?;
        settings.incidents.default_timezone = tz.to_string();
    }
    let settings = &settings;
    let db = Db::connect_read_only(database_url).await?;
    let inc = super::timeline::find_by_key(&db, key).await?;
    let draft = gather(&db, settings, catalog, &inc, now).await?;
    Ok(postmortem::render(&draft))
}
