//! When digests are due — pure. A [`Schedule`] is a weekday and a local time in an IANA time zone; its *slot*
//! is each week's instant at that local time, and the digest posted at a slot covers the 7 days (local calendar
//! days, so DST weeks are 167 or 169 hours) before it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::stats::{Filter, Period};
use crate::config::DigestSettings;

/// A parsed `[[digests]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// As configured (ID, or name without `#`).
    pub channel: String,
    pub weekday: Weekday,
    pub time: NaiveTime,
    pub tz: Tz,
    pub filter: Filter,
}

impl Schedule {
    /// Checks one configured digest; the error names the bad key.
    pub fn parse(cfg: &DigestSettings) -> Result<Schedule, String> {
        let channel = cfg.channel.trim().trim_start_matches('#').to_string();
        if channel.is_empty() {
            return Err("digests.channel is empty".into());
        }
        let weekday = parse_weekday(&cfg.day).ok_or_else(|| {
            format!(
                "digests.day `{}` is not a weekday (monday … sunday)",
                cfg.day
            )
        })?;
        let time = NaiveTime::parse_from_str(cfg.time.trim(), "%H:%M")
            .map_err(|_| format!("digests.time `{}` is not HH:MM", cfg.time))?;
        let tz: Tz = cfg.timezone.trim().parse().map_err(|_| {
            format!(
                "digests.timezone `{}` is not an IANA time zone",
                cfg.timezone
            )
        })?;
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        Ok(Schedule {
            channel,
            weekday,
            time,
            tz,
            filter: Filter {
                service: clean(&cfg.service),
                team: clean(&cfg.team),
                severity: None,
            },
        })
    }

    /// The filter as stored with each run: `""`, `team=x`, `service=y` or both.
    pub fn scope(&self) -> String {
        scope_of(&self.filter)
    }

    /// The most recent slot at or before `now`.
    pub fn latest_slot(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.tz).date_naive();
        let back =
            (today.weekday().num_days_from_monday() + 7 - self.weekday.num_days_from_monday()) % 7;
        let mut date = today - Duration::days(i64::from(back));
        let mut slot = self.at(date);
        if slot > now {
            date -= Duration::days(7);
            slot = self.at(date);
        }
        slot
    }

    /// The 7 days a slot's digest covers: from the same local time a week earlier up to the slot.
    pub fn period_of(&self, slot: DateTime<Utc>) -> Period {
        let date = slot.with_timezone(&self.tz).date_naive();
        Period::new(self.at(date - Duration::days(7)), slot)
    }

    /// The instant of `time` on local `date`. A time skipped by a DST change moves forward by the gap; a
    /// repeated one takes its first occurrence.
    fn at(&self, date: NaiveDate) -> DateTime<Utc> {
        let naive = date.and_time(self.time);
        for shift in 0..=4 {
            let t = naive + Duration::minutes(30 * shift);
            if let Some(local) = self.tz.from_local_datetime(&t).earliest() {
                return local.with_timezone(&Utc);
            }
        }
        Utc.from_utc_datetime(&naive)
    }
}

/// The stored scope string of a filter.
pub fn scope_of(filter: &Filter) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &filter.team {
        parts.push(format!("team={}", t.to_ascii_lowercase()));
    }
    if let Some(s) = &filter.service {
        parts.push(format!("service={}", s.to_ascii_lowercase()));
    }
    parts.join(",")
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    let s = s.trim().to_ascii_lowercase();
    let days = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];
    let full = |w: Weekday| match w {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    };
    days.iter()
        .find(|(short, w)| s == *short || s == full(*w))
        .map(|(_, w)| *w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(day: &str, time: &str, tz: &str) -> DigestSettings {
        DigestSettings {
            channel: "#team-payments".into(),
            day: day.into(),
            time: time.into(),
            timezone: tz.into(),
            team: Some(" team-payments ".into()),
            service: None,
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_configured_digest_parses_and_names_bad_keys() {
        let s = Schedule::parse(&cfg("Monday", "09:00", "Europe/Berlin")).expect("valid");
        assert_eq!(s.channel, "team-payments");
        assert_eq!(s.weekday, Weekday::Mon);
        assert_eq!(s.scope(), "team=team-payments");
        assert!(Schedule::parse(&cfg("moonday", "09:00", "UTC"))
            .unwrap_err()
            .contains("digests.day"));
        assert!(Schedule::parse(&cfg("mon", "9am", "UTC"))
            .unwrap_err()
            .contains("digests.time"));
        assert!(Schedule::parse(&cfg("mon", "09:00", "Mars/Olympus"))
            .unwrap_err()
            .contains("digests.timezone"));
    }

    #[test]
    fn latest_slot_is_this_weeks_when_it_has_passed_else_last_weeks() {
        let s = Schedule::parse(&cfg("mon", "09:00", "Europe/Berlin")).expect("valid");
        // Monday 2026-11-23 09:00 in Berlin is 08:00 UTC.
        assert_eq!(
            s.latest_slot(utc(2026, 11, 23, 8, 0)),
            utc(2026, 11, 23, 8, 0)
        );
        assert_eq!(
            s.latest_slot(utc(2026, 11, 25, 12, 0)),
            utc(2026, 11, 23, 8, 0)
        );
        assert_eq!(
            s.latest_slot(utc(2026, 11, 23, 7, 59)),
            utc(2026, 11, 16, 8, 0)
        );
    }

    #[test]
    fn the_period_is_the_seven_local_days_before_the_slot() {
        let s = Schedule::parse(&cfg("mon", "09:00", "Europe/Berlin")).expect("valid");
        let p = s.period_of(utc(2026, 11, 23, 8, 0));
        assert_eq!(p.start, utc(2026, 11, 16, 8, 0));
        assert_eq!(p.end, utc(2026, 11, 23, 8, 0));
        // The week over the end of summer time (25 Oct 2026) has 169 hours.
        let p = s.period_of(utc(2026, 10, 26, 8, 0));
        assert_eq!(p.start, utc(2026, 10, 19, 7, 0));
        assert_eq!(p.end - p.start, Duration::hours(169));
    }

    #[test]
    fn a_time_skipped_by_dst_moves_forward() {
        // 29 Mar 2026 02:30 does not exist in Berlin; 03:00 CEST (01:00 UTC) is used.
        let s = Schedule::parse(&cfg("sun", "02:30", "Europe/Berlin")).expect("valid");
        assert_eq!(
            s.latest_slot(utc(2026, 3, 29, 12, 0)),
            utc(2026, 3, 29, 1, 0)
        );
    }
}
