//! `incident-bot report`: the digest's figures for any period (with the period of equal length before it for
//! comparison) plus MTTR count, mean, median and max for each calendar month, over all severities and per
//! severity — as text for people, JSON for scripts, or long-format CSV (`period,metric,group,value,unit`) for
//! spreadsheets. p50/p90 with n go beside the means ("not enough data" under 5), and the change-failure rate and
//! failed-deployment recovery time (DORA) come from production deploys linked to incidents (docs/distributions.md).
//! It only reads: a database without this version's schema is reported (run `incident-bot
//! migrate`), never migrated.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::data;
use super::render::{self, Heading, Style};
use super::stats::{self, Digest, Figures, Filter, MonthFigures, MttrStat, Period};
use crate::catalog::Catalog;
use crate::db::Db;
use crate::domain::duration::{self, format_duration};
use crate::domain::mttr::{PhaseKind, Spread};
use crate::domain::severity::Severity;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            other => Err(format!("--format `{other}`: use text, json or csv")),
        }
    }
}

/// A report's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub filter: Filter,
    #[serde(flatten)]
    pub digest: Digest,
    pub monthly: Vec<MonthFigures>,
    /// Follow-up completion per team ([`super::followups`]).
    pub followups: Vec<crate::domain::followup::TeamCompletion>,
}

/// Builds the report of `period` for the incidents `filter` selects.
pub async fn build(
    db: &Db,
    catalog: &Catalog,
    filter: &Filter,
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Report, sqlx::Error> {
    let rows = data::load(db, catalog, filter, period).await?;
    let deploys = data::load_deploys(db, catalog, filter, period).await?;
    Ok(Report {
        filter: filter.clone(),
        digest: stats::compute_with_deploys(&rows, &deploys, period, tz, now),
        monthly: stats::monthly(&rows, period, tz),
        followups: super::followups::completion(db, catalog, filter, period).await?,
    })
}

/// A `--since`/`--until` value: `30d`, `12h`, `90m` or `2w` before now; a date (`2026-10-01`, local midnight
/// in `tz`); a local date-time (`2026-10-01T14:00` or `2026-10-01 14:00`); or RFC 3339 (`…Z`, `…+02:00`).
pub fn parse_instant(s: &str, now: DateTime<Utc>, tz: Tz) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(d) = duration::parse(s) {
        return now
            .checked_sub_signed(d)
            .ok_or_else(|| format!("`{s}` reaches before the calendar"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = |n: NaiveDateTime| {
        tz.from_local_datetime(&n)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("`{s}` does not exist in {}", tz.name()))
    };
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return local(n);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local(d.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    Err(format!(
        "`{s}` is not a time: use 30d, 12h, 2026-10-01, 2026-10-01T14:00 or RFC 3339"
    ))
}

/// The report in `format`.
pub fn render(r: &Report, format: Format, tz: Tz) -> String {
    match format {
        Format::Text => text(r, tz),
        Format::Json => serde_json::to_string_pretty(r).unwrap_or_else(|_| "{}".into()) + "\n",
        Format::Csv => csv(r),
    }
}

fn text(r: &Report, tz: Tz) -> String {
    let heading = Heading {
        title: "Incident report".into(),
        scope: r.filter.label(),
        tz,
    };
    let mut out = render::text(&r.digest, &heading, Style::Plain).replace(
        "compared with the 7 days before",
        "compared with the period before",
    );
    out.push_str(&format!("\n\n{}", render::FAILED_DEPLOYMENT));
    out.push_str(
        "\n\nMonthly MTTR, all severities and per severity (mean / median / max · resolved)\n",
    );
    if r.monthly.is_empty() {
        out.push_str("No incidents in the period.\n");
    }
    let cell = |m: &MttrStat| match (m.mean, m.median, m.max) {
        (Some(a), Some(b), Some(c)) => format!(
            "{} / {} / {} · {}",
            format_duration(a),
            format_duration(b),
            format_duration(c),
            m.count
        ),
        _ => "—".into(),
    };
    for m in &r.monthly {
        let cols: Vec<String> = std::iter::once(format!("all {:<30}", cell(&m.mttr)))
            .chain(
                m.severities
                    .iter()
                    .map(|s| format!("{} {:<30}", s.severity.as_str(), cell(&s.mttr))),
            )
            .collect();
        out.push_str(&format!("{}  {}\n", m.month, cols.join(" ").trim_end()));
    }
    if !r.monthly.is_empty() {
        out.push_str("\nMonthly MTTR p50 / p90 (n), all severities and per severity\n");
    }
    for m in &r.monthly {
        let cols: Vec<String> = std::iter::once(format!("all {}", render::spread(&m.distribution)))
            .chain(m.severities.iter().map(|s| {
                format!(
                    "{} {}",
                    s.severity.as_str(),
                    render::spread(&s.distribution)
                )
            }))
            .collect();
        out.push_str(&format!("{}  {}\n", m.month, cols.join(" · ")));
    }
    out.push('\n');
    for l in super::followups::section(&r.followups, false) {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn minutes(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1}", d.num_milliseconds() as f64 / 60_000.0))
        .unwrap_or_default()
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}", v * 100.0)).unwrap_or_default()
}

struct Csv(Vec<[String; 5]>);

impl Csv {
    fn row(&mut self, period: &str, metric: &str, group: &str, value: String, unit: &str) {
        self.0.push([
            period.to_string(),
            metric.to_string(),
            group.to_string(),
            value,
            unit.to_string(),
        ]);
    }

    fn stat(&mut self, period: &str, prefix: &str, group: &str, m: &MttrStat) {
        self.row(
            period,
            &format!("{prefix}count"),
            group,
            m.count.to_string(),
            "incidents",
        );
        self.row(
            period,
            &format!("{prefix}mean"),
            group,
            minutes(m.mean),
            "minutes",
        );
        self.row(
            period,
            &format!("{prefix}median"),
            group,
            minutes(m.median),
            "minutes",
        );
        self.row(
            period,
            &format!("{prefix}max"),
            group,
            minutes(m.max),
            "minutes",
        );
    }

    /// `{prefix}p50`, `{prefix}p90` (minutes, empty under 5 values) and `{prefix}n`.
    fn spread(&mut self, period: &str, prefix: &str, group: &str, s: &Spread) {
        self.row(
            period,
            &format!("{prefix}p50"),
            group,
            minutes(s.p50),
            "minutes",
        );
        self.row(
            period,
            &format!("{prefix}p90"),
            group,
            minutes(s.p90),
            "minutes",
        );
        self.row(
            period,
            &format!("{prefix}n"),
            group,
            s.n.to_string(),
            "count",
        );
    }

    fn figures(&mut self, period: &str, f: &Figures) {
        self.row(
            period,
            "period_start",
            "all",
            f.period.start.to_rfc3339(),
            "utc",
        );
        self.row(
            period,
            "period_end",
            "all",
            f.period.end.to_rfc3339(),
            "utc",
        );
        self.row(
            period,
            "incidents",
            "all",
            f.incidents.to_string(),
            "incidents",
        );
        self.row(
            period,
            "open_at_end",
            "all",
            f.open_at_end.to_string(),
            "incidents",
        );
        self.stat(period, "mttr_", "all", &f.mttr);
        for s in &f.severities {
            let g = s.severity.as_str();
            self.row(period, "incidents", g, s.incidents.to_string(), "incidents");
            self.stat(period, "mttr_", g, &s.mttr);
            self.spread(period, "mttr_", g, &s.distribution);
            self.row(
                period,
                "tier",
                g,
                s.tier.map(|t| t.as_str().to_string()).unwrap_or_default(),
                "tier",
            );
        }
        for k in PhaseKind::ALL {
            let p = f.phases.get(k);
            self.row(
                period,
                "phase_share",
                k.as_str(),
                percent(p.average_share),
                "percent",
            );
            self.row(period, "phase_mean", k.as_str(), minutes(p.mean), "minutes");
            self.spread(period, "phase_", k.as_str(), &p.distribution);
            self.row(
                period,
                "phase_slowest",
                k.as_str(),
                p.slowest.to_string(),
                "incidents",
            );
        }
        let d = &f.detection;
        for (g, n) in [
            ("alert", d.alert),
            ("customer", d.customer),
            ("engineer", d.engineer),
            ("unknown", d.unknown),
            ("imported", d.imported),
        ] {
            self.row(period, "detected_by", g, n.to_string(), "incidents");
        }
        self.row(
            period,
            "p1_customer_share",
            "P1",
            percent(d.p1_customer_share),
            "percent",
        );
        self.row(
            period,
            "p1_customer_warning",
            "P1",
            u8::from(d.customer_warning).to_string(),
            "flag",
        );
        self.row(
            period,
            "deploy_before_share",
            "all",
            percent(f.deploys.share),
            "percent",
        );
        let c = &f.change_failure;
        self.row(
            period,
            "production_deploys",
            "all",
            c.deploys.to_string(),
            "deploys",
        );
        self.row(
            period,
            "failed_deploys",
            "all",
            c.failed.to_string(),
            "deploys",
        );
        self.row(
            period,
            "change_failure_rate",
            "all",
            percent(c.rate),
            "percent",
        );
        self.spread(period, "failed_deploy_recovery_", "all", &c.recovery);
        self.row(
            period,
            "failed_deploys_unrecovered",
            "all",
            c.unrecovered.to_string(),
            "deploys",
        );
        self.stat(period, "in_hours_mttr_", "all", &f.hours.in_hours);
        self.stat(period, "out_of_hours_mttr_", "all", &f.hours.out_of_hours);
        for s in &f.services {
            self.row(
                period,
                "service_mttr_mean",
                &s.name,
                minutes(s.mttr.mean),
                "minutes",
            );
        }
        for t in &f.teams {
            self.row(
                period,
                "team_mttr_mean",
                &t.name,
                minutes(t.mttr.mean),
                "minutes",
            );
        }
    }
}

fn csv(r: &Report) -> String {
    let mut c = Csv(Vec::new());
    c.figures("current", &r.digest.current);
    for t in &r.followups {
        c.row(
            "current",
            "followups_done",
            &t.team,
            t.done.to_string(),
            "followups",
        );
        c.row(
            "current",
            "followups_total",
            &t.team,
            t.total.to_string(),
            "followups",
        );
    }
    c.figures("previous", &r.digest.previous);
    c.row(
        "now",
        "still_open",
        "all",
        r.digest.still_open.len().to_string(),
        "incidents",
    );
    for m in &r.monthly {
        c.row(
            &m.month,
            "incidents",
            "all",
            m.incidents.to_string(),
            "incidents",
        );
        c.stat(&m.month, "mttr_", "all", &m.mttr);
        c.spread(&m.month, "mttr_", "all", &m.distribution);
        for s in &m.severities {
            c.stat(&m.month, "mttr_", s.severity.as_str(), &s.mttr);
            c.spread(&m.month, "mttr_", s.severity.as_str(), &s.distribution);
        }
    }
    let mut out = String::from("period,metric,group,value,unit\n");
    for row in c.0 {
        let fields: Vec<String> = row.iter().map(|f| csv_field(f)).collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The command line's options, as typed.
#[derive(Debug, Clone, Default)]
pub struct ReportArgs {
    /// Default: 7 days ago.
    pub since: Option<String>,
    /// Default: now.
    pub until: Option<String>,
    pub service: Option<String>,
    pub team: Option<String>,
    pub severity: Option<String>,
    /// `text` (default), `json` or `csv`.
    pub format: Option<String>,
    /// IANA time zone for dates, months and working hours; default `incidents.default_timezone`.
    pub tz: Option<String>,
}

/// `incident-bot report …`: reads the database named by the configuration and returns the report.
pub async fn run_cli(
    settings: &crate::config::Settings,
    catalog: &Catalog,
    args: &ReportArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let tz_name = args
        .tz
        .clone()
        .unwrap_or_else(|| settings.incidents.default_timezone.clone());
    let tz: Tz = tz_name
        .parse()
        .map_err(|_| anyhow::anyhow!("--tz `{tz_name}` is not an IANA time zone"))?;
    let format =
        Format::parse(args.format.as_deref().unwrap_or("text")).map_err(anyhow::Error::msg)?;
    let since = parse_instant(args.since.as_deref().unwrap_or("7d"), now, tz)
        .map_err(anyhow::Error::msg)?;
    let until = match &args.until {
        Some(u) => parse_instant(u, now, tz).map_err(anyhow::Error::msg)?,
        None => now,
    };
    if since >= until {
        anyhow::bail!("--since must be before --until");
    }
    let filter = Filter {
        service: args.service.clone(),
        team: args.team.clone(),
        severity: args
            .severity
            .as_deref()
            .map(parse_severity)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    // Read-only: never creates or migrates the database it is pointed at.
    let db = Db::connect_read_only(&settings.database_url).await?;
    let report = build(&db, catalog, &filter, Period::new(since, until), tz, now).await?;
    Ok(render(&report, format, tz))
}

/// The severity given with `--severity`.
pub fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("--severity `{s}`: use P1, P2 or P3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    #[test]
    fn since_and_until_accept_relative_and_absolute_times() {
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        assert_eq!(
            parse_instant("30d", now(), berlin),
            Ok(now() - Duration::days(30))
        );
        assert_eq!(
            parse_instant("2w", now(), berlin),
            Ok(now() - Duration::days(14))
        );
        assert_eq!(
            parse_instant("2026-10-01", now(), berlin),
            Ok(Utc.with_ymd_and_hms(2026, 9, 30, 22, 0, 0).unwrap())
        );
        assert_eq!(
            parse_instant("2026-11-02T14:30", now(), berlin),
            Ok(Utc.with_ymd_and_hms(2026, 11, 2, 13, 30, 0).unwrap())
        );
        assert_eq!(
            parse_instant("2026-11-02T14:30:00Z", now(), berlin),
            Ok(Utc.with_ymd_and_hms(2026, 11, 2, 14, 30, 0).unwrap())
        );
        assert_eq!(
            parse_instant("1d12H", now(), berlin),
            Ok(now() - Duration::hours(36))
        );
        assert!(parse_instant("last tuesday", now(), berlin).is_err());
        assert!(parse_instant("9999999w9999999w", now(), berlin).is_err());
        assert!(Format::parse("xml").is_err());
        assert_eq!(Format::parse("CSV"), Ok(Format::Csv));
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("payments"), "payments");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn an_empty_report_renders_in_every_format() {
        let period = Period::days_before(now(), 30);
        let r = Report {
            filter: Filter::default(),
            digest: stats::compute(&[], period, chrono_tz::UTC, now()),
            monthly: Vec::new(),
            followups: vec![crate::domain::followup::TeamCompletion {
                team: "payments".into(),
                done: 1,
                total: 2,
            }],
        };
        let text = render(&r, Format::Text, chrono_tz::UTC);
        assert!(text.contains("Incidents: 0 (= from 0)"), "{text}");
        assert!(text.contains("payments: 1/2 done (50%)"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&render(&r, Format::Json, chrono_tz::UTC)).expect("json");
        assert_eq!(json["current"]["incidents"], 0);
        let csv = render(&r, Format::Csv, chrono_tz::UTC);
        assert!(csv.starts_with("period,metric,group,value,unit\n"));
        assert!(csv.contains("current,incidents,all,0,incidents\n"));
        assert!(
            csv.contains("current,followups_done,payments,1,followups\n"),
            "{csv}"
        );
        assert!(
            csv.contains("current,followups_total,payments,2,followups\n"),
            "{csv}"
        );
    }
}
