//! Follow-up completion per team for the digest and `incident-bot report` (SPEC §13). A follow-up counts in a
//! period when it was created in it or was still open at its start, and is done when completed before the
//! period's end ([`crate::domain::followup::completion`]); its team is the catalog team of its incident's
//! service ("no team" otherwise). The report's service, team and severity filter applies to the incident.

use crate::catalog::Catalog;
use crate::db::Db;
use crate::domain::followup::{self, Counted, TeamCompletion};

use super::stats::{Filter, Period};

/// Completion per team over `period` for the incidents `filter` selects.
pub async fn completion(
    db: &Db,
    catalog: &Catalog,
    filter: &Filter,
    period: Period,
) -> Result<Vec<TeamCompletion>, sqlx::Error> {
    let rows = crate::store::followups::for_counts(db, period.start, period.end).await?;
    let eq = |want: &Option<String>, have: Option<&str>| {
        want.as_deref()
            .is_none_or(|w| have.is_some_and(|h| h.eq_ignore_ascii_case(w.trim())))
    };
    let counted: Vec<Counted> = rows
        .into_iter()
        .filter_map(|r| {
            let svc = r.service.as_deref().and_then(|s| catalog.get(s));
            let name = svc.map(|s| s.name.clone()).or(r.service.clone());
            let team = svc.and_then(|s| s.team.clone());
            let keep = eq(&filter.service, name.as_deref())
                && eq(&filter.team, team.as_deref())
                && filter.severity.is_none_or(|s| Some(s) == r.severity);
            keep.then_some(Counted {
                team,
                created_at: r.created_at,
                done_at: r.done_at,
            })
        })
        .collect();
    Ok(followup::completion(&counted, period.start, period.end))
}

/// The digest's section: a heading line and one line per team.
pub fn section(teams: &[TeamCompletion], slack: bool) -> Vec<String> {
    let head = if slack {
        "*Follow-ups done* (created in the period or open at its start, per team)".to_string()
    } else {
        "Follow-ups done (created in the period or open at its start, per team)".to_string()
    };
    std::iter::once(head)
        .chain(followup::completion_lines(teams).into_iter().map(|l| {
            if slack {
                crate::domain::text::escape(&l)
            } else {
                l
            }
        }))
        .collect()
}
