//! Follow-ups (SPEC §13): the actions people note on an incident, as stored ([`Followup`]), the arguments of
//! `/incident followup <text> [@owner] [due:YYYY-MM-DD]` ([`NewFollowup`], read by
//! [`super::command::parse`]), when the owner is reminded
//! ([`reminder_at`]), and the Slack lines for creating, completing and listing them. Pure.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::text;

/// The local hour (in the configured zone, `incidents.default_timezone`) at which owners are reminded on the due day.
pub const REMIND_HOUR: u32 = 9;
/// Most characters of a follow-up's text kept.
pub const TEXT_MAX: usize = 500;

/// One follow-up as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Followup {
    /// The short number people type (`/incident followup done 3`).
    pub id: i64,
    pub incident_id: String,
    /// As typed (untrusted: escaped when rendered).
    pub text: String,
    /// A Slack user id.
    pub owner: Option<String>,
    pub due_on: Option<NaiveDate>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub done_by: Option<String>,
}

impl Followup {
    pub fn is_done(&self) -> bool {
        self.done_at.is_some()
    }
}

/// What `/incident followup <text> [@owner] [due:YYYY-MM-DD]` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFollowup {
    pub text: String,
    pub owner: Option<String>,
    pub due_on: Option<NaiveDate>,
}

/// Usage of the follow-up commands (Slack text).
pub const USAGE: &str = "use `/incident followup &lt;text&gt; [@owner] [due:YYYY-MM-DD]`, \
`/incident followup done &lt;id&gt;`, `/incident followup assign &lt;id&gt; @owner` or `/incident followups`";

/// When the owner of a follow-up due on `due_on` is reminded: [`REMIND_HOUR`] that day in `tz`, or `now` when
/// that hour has passed but the day (in `tz`) has not. `None` when the day is over: no reminder.
pub fn reminder_at(due_on: NaiveDate, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = now.with_timezone(&tz).date_naive();
    if due_on < today {
        return None;
    }
    let local = due_on.and_time(NaiveTime::from_hms_opt(REMIND_HOUR, 0, 0)?);
    // Around a DST change the hour may be ambiguous (take the first) or missing (an hour later).
    let at = tz
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })?
        .with_timezone(&Utc);
    Some(if at < now { now } else { at })
}

/// `#3 Add an alert on card errors · owner @alice · due 2026-12-10` (Slack text; the text escaped).
pub fn slack_label(f: &Followup) -> String {
    let mut s = format!("*#{}* {}", f.id, text::escape_cut(&f.text, TEXT_MAX));
    match &f.owner {
        Some(o) => s.push_str(&format!(" · owner {}", text::user(o))),
        None => s.push_str(" · no owner"),
    }
    if let Some(d) = f.due_on {
        s.push_str(&format!(" · due {}", d.format("%Y-%m-%d")));
    }
    s
}

/// The timeline line of a new follow-up.
pub fn created_line(key: &str, f: &Followup) -> String {
    format!(
        "📝 Follow-up added to {key} by {}: {}",
        text::user(&f.created_by),
        slack_label(f)
    )
}

/// The timeline line of a follow-up given to `owner` by `by`.
pub fn assigned_line(key: &str, f: &Followup, owner: &str, by: &str) -> String {
    format!(
        "👤 Follow-up *#{}* of {key} given to {} by {}: {}",
        f.id,
        text::user(owner),
        text::user(by),
        text::escape_cut(&f.text, TEXT_MAX)
    )
}

/// The timeline line of a completed follow-up.
pub fn done_line(key: &str, f: &Followup, by: &str) -> String {
    format!(
        "✅ Follow-up *#{}* of {key} done (by {}): {}",
        f.id,
        text::user(by),
        text::escape_cut(&f.text, TEXT_MAX)
    )
}

/// The reminder on the due day: to the owner, else the channel.
pub fn reminder_line(key: &str, f: &Followup) -> String {
    let who = f
        .owner
        .as_deref()
        .map(|o| format!("{}: ", text::user(o)))
        .unwrap_or_default();
    format!(
        "⏰ {who}follow-up *#{}* of {key} is due today — {}. Mark it done with `/incident followup done {}`.",
        f.id,
        text::escape_cut(&f.text, TEXT_MAX),
        f.id
    )
}

/// Follow-up completion of one team over a period (the digest's and `report`'s figure).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TeamCompletion {
    /// The catalog team of the incident's service; [`NO_TEAM`] otherwise.
    pub team: String,
    /// Of `total`, those completed before the period's end.
    pub done: usize,
    /// Follow-ups created in the period, plus those created before it and still open at its start.
    pub total: usize,
}

/// The team of follow-ups whose incident has no service, or a service without a catalog team.
pub const NO_TEAM: &str = "no team";

/// One follow-up as the completion figure reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub team: Option<String>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
}

/// Completion per team over `[start, end)`: a follow-up counts when it was created in the period or was still
/// open at its start; it is done when completed before the period's end. Teams by name, "no team" last.
pub fn completion(
    rows: &[Counted],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<TeamCompletion> {
    let mut out: Vec<TeamCompletion> = Vec::new();
    for r in rows {
        let in_period = r.created_at >= start && r.created_at < end;
        let open_at_start = r.created_at < start && r.done_at.is_none_or(|d| d >= start);
        if !(in_period || open_at_start) {
            continue;
        }
        let team = r.team.clone().unwrap_or_else(|| NO_TEAM.to_string());
        let i = match out.iter().position(|t| t.team == team) {
            Some(i) => i,
            None => {
                out.push(TeamCompletion {
                    team,
                    done: 0,
                    total: 0,
                });
                out.len() - 1
            }
        };
        out[i].total += 1;
        if r.done_at.is_some_and(|d| d < end) {
            out[i].done += 1;
        }
    }
    out.sort_by(|a, b| (a.team == NO_TEAM, &a.team).cmp(&(b.team == NO_TEAM, &b.team)));
    out
}

/// `payments 3/4 done (75%)` per team, or a line saying there were none.
pub fn completion_lines(teams: &[TeamCompletion]) -> Vec<String> {
    if teams.is_empty() {
        return vec!["No follow-ups created in the period or open at its start.".into()];
    }
    teams
        .iter()
        .map(|t| {
            format!(
                "{}: {}/{} done ({}%)",
                t.team,
                t.done,
                t.total,
                (t.done * 100).checked_div(t.total).unwrap_or(0)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reminder_is_at_nine_local_on_the_due_day_or_now_later_that_day() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
        let before = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(
            reminder_at(day, tz, before),
            Some(Utc.with_ymd_and_hms(2026, 12, 10, 8, 0, 0).unwrap())
        );
        let that_noon = Utc.with_ymd_and_hms(2026, 12, 10, 11, 0, 0).unwrap();
        assert_eq!(reminder_at(day, tz, that_noon), Some(that_noon));
        let after = Utc.with_ymd_and_hms(2026, 12, 11, 0, 30, 0).unwrap();
        assert_eq!(
            reminder_at(day, tz, after),
            None,
            "00:30 in Paris is the 11th"
        );
    }

    #[test]
    fn completion_counts_those_created_in_the_period_or_open_at_its_start() {
        let t = |d: u32| Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap();
        let row = |team: Option<&str>, c: u32, d: Option<u32>| Counted {
            team: team.map(str::to_string),
            created_at: t(c),
            done_at: d.map(t),
        };
        let rows = vec![
            row(Some("payments"), 10, Some(12)), // in the period, done in it
            row(Some("payments"), 11, None),     // in the period, open
            row(Some("payments"), 1, None),      // before, still open at the start
            row(Some("payments"), 1, Some(5)),   // before, done before the start: not counted
            row(None, 12, Some(20)),             // done after the end: not done
            row(Some("search"), 2, Some(11)),    // before, open at the start, done in the period
        ];
        let c = completion(&rows, t(8), t(15));
        assert_eq!(
            c,
            vec![
                TeamCompletion {
                    team: "payments".into(),
                    done: 1,
                    total: 3
                },
                TeamCompletion {
                    team: "search".into(),
                    done: 1,
                    total: 1
                },
                TeamCompletion {
                    team: NO_TEAM.into(),
                    done: 0,
                    total: 1
                },
            ]
        );
        assert_eq!(completion_lines(&c)[0], "payments: 1/3 done (33%)");
    }

    #[test]
    fn lines_escape_the_text() {
        let f = Followup {
            id: 3,
            incident_id: "i".into(),
            text: "<!channel> fix *it*".into(),
            owner: Some("U0ALICE".into()),
            due_on: None,
            created_by: "U0BOB".into(),
            created_at: Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap(),
            done_at: None,
            done_by: None,
        };
        let l = created_line("INC-1", &f);
        assert!(!l.contains("<!channel>"), "{l}");
        assert!(l.contains("owner <@U0ALICE>"), "{l}");
        assert!(reminder_line("INC-1", &f).starts_with("⏰ <@U0ALICE>: follow-up *#3*"));
    }
}
