//! Importing incident history from elsewhere as baseline MTTR data: [`pagerduty`] (`incident-bot import
//! pagerduty`), plus the progress display — a bar on a terminal ([`BarProgress`], indicatif), plain progress
//! lines otherwise ([`LineProgress`], for CI logs and pipes).

pub mod pagerduty;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub use pagerduty::Progress;

/// A progress bar on a terminal.
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {pos}/{len} incidents ({eta} left) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        BarProgress { bar }
    }
}

impl Default for BarProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for BarProgress {
    fn found(&mut self, n: u64) {
        self.bar.inc_length(n);
    }
    fn done(&mut self, n: u64) {
        self.bar.inc(n);
    }
    fn note(&mut self, msg: &str) {
        self.bar.set_message(msg.to_string());
    }
    fn finish(&mut self, summary: &str) {
        self.bar.finish_and_clear();
        println!("{summary}");
    }
}

/// Plain lines on stdout: one when more incidents are found, then at most one every few seconds (and every
/// 100 incidents), so a CI log stays readable.
pub struct LineProgress<W: Write + Send> {
    out: W,
    total: u64,
    done: u64,
    last: Option<Instant>,
}

impl<W: Write + Send> LineProgress<W> {
    pub fn new(out: W) -> Self {
        LineProgress {
            out,
            total: 0,
            done: 0,
            last: None,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> Progress for LineProgress<W> {
    fn found(&mut self, n: u64) {
        self.total += n;
        let _ = writeln!(self.out, "found {} incidents to import so far", self.total);
    }
    fn done(&mut self, n: u64) {
        self.done += n;
        let due = self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
            || self.done.is_multiple_of(100)
            || self.done == self.total;
        if due {
            let _ = writeln!(self.out, "imported {}/{} incidents", self.done, self.total);
            self.last = Some(Instant::now());
        }
    }
    fn note(&mut self, msg: &str) {
        let _ = writeln!(self.out, "{msg}");
    }
    fn finish(&mut self, summary: &str) {
        let _ = writeln!(self.out, "{summary}");
    }
}

/// A bar when stdout is a terminal, plain lines otherwise.
pub fn progress_for_stdout() -> Box<dyn Progress> {
    if std::io::stdout().is_terminal() {
        Box::new(BarProgress::new())
    } else {
        Box::new(LineProgress::new(std::io::stdout()))
    }
}

/// `incident-bot import pagerduty --since 30d [--until …]`: imports into the configured database, with
/// `PAGERDUTY_API_TOKEN` against `PAGERDUTY_API_URL` (default `https://api.pagerduty.com`).
pub async fn pagerduty_cli(
    settings: &crate::config::Settings,
    catalog: &crate::catalog::Catalog,
    secrets: &crate::config::Secrets,
    since: &str,
    until: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<pagerduty::Summary> {
    let token = secrets.pagerduty_api_token.as_ref().ok_or_else(|| {
        anyhow::anyhow!("PAGERDUTY_API_TOKEN is not set (a PagerDuty REST API key)")
    })?;
    let tz: chrono_tz::Tz = settings
        .incidents
        .default_timezone
        .parse()
        .unwrap_or(chrono_tz::UTC);
    let since = crate::digest::report::parse_instant(since, now, tz).map_err(anyhow::Error::msg)?;
    let until = match until {
        Some(u) => crate::digest::report::parse_instant(u, now, tz).map_err(anyhow::Error::msg)?,
        None => now,
    };
    let db = crate::db::Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    let opts = pagerduty::Options::new(
        &settings.pager.pagerduty_api_url,
        token.expose(),
        since,
        until,
    );
    let mut progress = progress_for_stdout();
    let summary = pagerduty::run(&db, catalog, opts, progress.as_mut()).await?;
    for (id, why) in summary.skipped.iter().take(20) {
        println!("skipped {id}: {why}");
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_progress_lines_count_up_to_the_total() {
        let mut p = LineProgress::new(Vec::new());
        p.found(3);
        p.done(1);
        p.note("rate limited by PagerDuty; waiting 1 s");
        p.done(1);
        p.done(1);
        p.finish("3 PagerDuty incidents: 3 new, 0 updated, 0 skipped");
        let text = String::from_utf8(p.into_inner()).expect("utf-8");
        assert!(
            text.starts_with("found 3 incidents to import so far\nimported 1/3 incidents\n"),
            "{text}"
        );
        assert!(text.contains("rate limited by PagerDuty; waiting 1 s\n"));
        assert!(text.contains("imported 3/3 incidents\n"));
        assert!(text.ends_with("3 new, 0 updated, 0 skipped\n"));
    }
}
