//! Answering deploy questions in Slack: `@incident-bot was there a deploy to payments recently?` (answered in
//! a thread by [`crate::http::slack::events`], after the event is acknowledged) and `/incident deploys <service> [window]` (ephemeral).
//!
//! The answer lists production deploys to the service and to the services it depends on (marked
//! "(dependency)") with version, author, age and link, newest first, or says "None" plainly. A service that is
//! neither in the catalog nor in the deploy history gets "no service called X — did you mean …?" with
//! suggestions from both. An unreadable question gets a one-line hint. Times like `since 14:00` are read in
//! the asker's Slack time zone (`users.info`), else `incidents.default_timezone`.

use chrono::{DateTime, Duration, Utc};

use super::{history_services, recent, recent_all, Deploy};
use crate::domain::question::{self, human_span, RECENTLY};
use crate::domain::text::{self, escape_cut};
use crate::slack::blocks::{deploy_line, unknown_service_line};
use crate::state::AppState;

/// Most deploys listed in one answer.
pub const MAX_LINES: usize = 15;

/// The answer to "deploys to `service` (or every service) between `since` and `until`", as Slack mrkdwn.
/// `window` describes the span in words (`in the last 2 h`).
pub async fn answer_text(
    state: &AppState,
    service: Option<&str>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    window: &str,
) -> Result<String, sqlx::Error> {
    let now = state.clock.now();
    let fetch = i64::try_from(MAX_LINES + 1).unwrap_or(i64::MAX);
    let Some(asked) = service else {
        let deploys = recent_all(&state.db, since, until, fetch).await?;
        return Ok(render(&deploys, None, &[], window, now));
    };
    let (name, deps) = match state.catalog.get(asked) {
        Some(s) => (s.name.clone(), state.catalog.dependency_names(&s.name)),
        None => {
            let history = history_services(&state.db).await?;
            match history.iter().find(|h| h.eq_ignore_ascii_case(asked)) {
                Some(h) => (h.clone(), Vec::new()),
                None => {
                    let line = unknown_service_line(asked, &state.catalog.suggest(asked, &history));
                    return Ok(capitalized(&line));
                }
            }
        }
    };
    let mut names = vec![name.clone()];
    names.extend(deps.iter().cloned());
    let deploys = recent(&state.db, &names, since, until, fetch).await?;
    Ok(render(&deploys, Some(&name), &deps, window, now))
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The answer's text (pure). Service names and deploy fields are escaped; the whole is cut to a section's
/// 3,000 characters.
pub(crate) fn render(
    deploys: &[Deploy],
    service: Option<&str>,
    deps: &[String],
    window: &str,
    now: DateTime<Utc>,
) -> String {
    text::cut(
        &render_uncut(deploys, service, deps, window, now),
        text::SECTION_TEXT,
    )
}

fn render_uncut(
    deploys: &[Deploy],
    service: Option<&str>,
    deps: &[String],
    window: &str,
    now: DateTime<Utc>,
) -> String {
    let deps_list = escape_cut(&deps.join(", "), 500);
    let shown = service.map(|s| escape_cut(s, 80));
    let subject = match (shown.as_deref(), deps.is_empty()) {
        (None, _) => "any service".to_string(),
        (Some(s), true) => format!("*{s}*"),
        (Some(s), false) => format!("*{s}* or its dependencies ({deps_list})"),
    };
    if deploys.is_empty() {
        return format!("None — no production deploys to {subject} {window}.");
    }
    let heading = match (shown.as_deref(), deps.is_empty()) {
        (None, _) => format!("*Production deploys to all services {window}:*"),
        (Some(s), true) => format!("*Production deploys to {s} {window}:*"),
        (Some(s), false) => {
            format!("*Production deploys to {s} and its dependencies ({deps_list}) {window}:*")
        }
    };
    let mut lines = vec![heading];
    for d in deploys.iter().take(MAX_LINES) {
        let dependency = service.is_some_and(|s| !d.service.eq_ignore_ascii_case(s));
        lines.push(deploy_line(d, dependency, now, "ago"));
    }
    if deploys.len() > MAX_LINES {
        lines.push(format!(
            "_…and more: these are the {MAX_LINES} most recent. Narrow the window to see the rest._"
        ));
    }
    lines.join("\n")
}

/// `/incident deploys <service> [window]` (default: the last 2 hours): the ephemeral reply's text.
pub async fn for_command(
    state: &AppState,
    service: &str,
    window: Option<Duration>,
) -> Result<String, sqlx::Error> {
    let span = window.unwrap_or(RECENTLY);
    let now = state.clock.now();
    let since = now
        .checked_sub_signed(span)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let words = format!("in the last {}", human_span(span));
    // `#payments` and `` `payments` `` are typed too.
    let service = service.trim_matches(|c| matches!(c, '`' | '*' | '"' | '\'' | '#'));
    answer_text(state, Some(service), since, now, &words).await
}

/// The reply to a mention's text.
pub async fn mention_reply(state: &AppState, user: Option<&str>, text: &str) -> String {
    let q = match question::parse(text) {
        Ok(q) => q,
        Err(e) => return e.hint(),
    };
    let tz = if q.window.needs_time_zone() {
        asker_tz(state, user).await
    } else {
        state.default_tz()
    };
    let (since, until) = q.window.resolve(state.clock.now(), tz);
    let words = q.window.describe(tz);
    match answer_text(state, q.service.as_deref(), since, until, &words).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "could not read the deploy history");
            "Sorry — I could not read the deploy history just now. Try again in a minute."
                .to_string()
        }
    }
}

/// The asker's time zone from `users.info`, else the configured default.
async fn asker_tz(state: &AppState, user: Option<&str>) -> chrono_tz::Tz {
    match user {
        Some(user) => state.user_tz(user).await,
        None => state.default_tz(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
    }

    fn deploy(service: &str, version: &str, at: DateTime<Utc>) -> Deploy {
        Deploy {
            id: format!("{service}-{version}"),
            service: service.into(),
            environment: "production".into(),
            version: Some(version.into()),
            commit_sha: Some("f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into()),
            url: Some(format!("https://ci.example/{service}/{version}")),
            author: Some("alice".into()),
            deployed_at: at,
            source: "api".into(),
        }
    }

    #[test]
    fn deploys_are_listed_with_dependencies_marked() {
        let text = render(
            &[
                deploy("payments", "v2", at(14, 35)),
                deploy("auth", "v7", at(13, 50)),
            ],
            Some("payments"),
            &["auth".into(), "inventory".into()],
            "in the last 2 h",
            at(15, 0),
        );
        assert_eq!(
            text,
            "*Production deploys to payments and its dependencies (auth, inventory) in the last 2 h:*\n\
             • *payments* `v2` by alice, 25m ago · <https://ci.example/payments/v2|f95f852>\n\
             • *auth* (dependency) `v7` by alice, 1h 10m ago · <https://ci.example/auth/v7|f95f852>"
        );
    }

    #[test]
    fn no_deploys_is_said_plainly() {
        assert_eq!(
            render(&[], Some("payments"), &["auth".into()], "today (since 00:00 UTC)", at(15, 0)),
            "None — no production deploys to *payments* or its dependencies (auth) today (since 00:00 UTC)."
        );
        assert_eq!(
            render(&[], None, &[], "in the last 2 h", at(15, 0)),
            "None — no production deploys to any service in the last 2 h."
        );
    }

    #[test]
    fn a_long_list_is_cut_and_says_so() {
        let many: Vec<Deploy> = (0..MAX_LINES + 1)
            .map(|i| deploy("search", &format!("v{i}"), at(14, 0)))
            .collect();
        let text = render(&many, None, &[], "today", at(15, 0));
        assert_eq!(
            text.lines().filter(|l| l.starts_with('•')).count(),
            MAX_LINES
        );
        assert!(text.contains("15 most recent"), "{text}");
        assert!(
            !text.contains("(dependency)"),
            "all-services answers mark no dependency"
        );
    }
}
