//! Durations as users type them and as the bot writes them: the one grammar for spans (`15m`, `2h`, `1d`,
//! `1h30m`, `3 hours` in questions) and the one human format (`1h 05m`).
//!
//! The grammar is ours rather than `humantime`'s: that crate is case-sensitive (`2H` fails, `M` is a month),
//! rejects `wk`, and reads a month as 30.44 days where questions read it as 30.

use chrono::Duration;

/// One of `unit` (`s`/`sec`/`second(s)`, `m`/`min(s)`/`minute(s)`, `h`/`hr(s)`/`hour(s)`, `d`/`day(s)`,
/// `w`/`wk(s)`/`week(s)`, `month(s)` as 30 days), lowercase.
pub fn unit(word: &str) -> Option<Duration> {
    Some(match word {
        "s" | "sec" | "secs" | "second" | "seconds" => Duration::seconds(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Duration::minutes(1),
        "h" | "hr" | "hrs" | "hour" | "hours" => Duration::hours(1),
        "d" | "day" | "days" => Duration::days(1),
        "w" | "wk" | "wks" | "week" | "weeks" => Duration::weeks(1),
        "month" | "months" => Duration::days(30),
        _ => return None,
    })
}

/// Parses `<number><unit>` groups written together, any case, e.g. `15m`, `2H`, `1d`, `1h30m`; zero allowed,
/// at most 7 digits a group. Callers bound the result.
pub fn parse(s: &str) -> Option<Duration> {
    let s = s.trim().to_ascii_lowercase();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::zero();
    let mut rest = s.as_str();
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || digits > 7 {
            return None;
        }
        let n: i32 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let part = unit(&rest[..unit_len])?.checked_mul(n)?;
        rest = &rest[unit_len..];
        total = total.checked_add(&part)?;
    }
    Some(total)
}

/// A duration for humans: `"0s"`, `"45s"`, `"12m"`, `"1h 05m"`, `"2d 3h"`. Seconds only under a minute;
/// truncated, never rounded up; negative durations show as `"0s"`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{mins}m")
    } else if days == 0 {
        format!("{hours}h {mins:02}m")
    } else {
        format!("{days}d {hours}h")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_in_any_case_and_in_groups() {
        assert_eq!(parse("15m"), Some(Duration::minutes(15)));
        assert_eq!(parse("2H"), Some(Duration::hours(2)));
        assert_eq!(parse(" 1d "), Some(Duration::days(1)));
        assert_eq!(parse("2w"), Some(Duration::weeks(2)));
        assert_eq!(parse("1h30m"), Some(Duration::minutes(90)));
        assert_eq!(parse("3hours"), Some(Duration::hours(3)));
        assert_eq!(parse("0m"), Some(Duration::zero()));
        for bad in [
            "",
            "h",
            "2",
            "2x",
            "-2h",
            "+2h",
            "99999999d",
            "２h",
            "1.5h",
            "2 h",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_format_like_a_human_would_write_them() {
        let hms = |h: i64, m: i64, s: i64| Duration::seconds(h * 3600 + m * 60 + s);
        assert_eq!(format_duration(Duration::zero()), "0s");
        assert_eq!(format_duration(Duration::seconds(45)), "45s");
        assert_eq!(format_duration(Duration::seconds(59)), "59s");
        assert_eq!(format_duration(Duration::seconds(60)), "1m");
        assert_eq!(format_duration(hms(0, 12, 59)), "12m");
        assert_eq!(format_duration(hms(1, 5, 0)), "1h 05m");
        assert_eq!(format_duration(hms(23, 59, 59)), "23h 59m");
        assert_eq!(format_duration(hms(51, 0, 0)), "2d 3h");
        assert_eq!(format_duration(Duration::seconds(-30)), "0s");
    }
}
