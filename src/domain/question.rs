//! Reading a deploy question addressed to the bot in Slack (SPEC §2): `was there a deploy to payments
//! recently?`, `any deploys to checkout in the last 3 hours?`, `what shipped to search since 14:00?`,
//! `deploys today` — and their natural variants — into a [`Question`]: an optional service and a
//! [`Window`]. Pure: no I/O, no clock; [`Window::resolve`] takes `now` and the asker's time zone.
//!
//! How a question is read: Slack markup (`<@U123>`, `<#C1|name>`, links) is removed, the text is split into
//! words, the time window is found and taken out (`recently` = the last 2 hours, `in the last 3 hours`,
//! `past 30 min`, `2h`, `since 14:00` / `since 2pm` / `since 3 hours ago` / `since yesterday` /
//! `since monday`, `today`, `yesterday`, `this week`), and the service is the word after `to`/`for`/`of`/
//! `on`/`in`/`into`, else the first word that is not part of the question's grammar. No window means
//! "recently"; no service means every service.

use chrono::{DateTime, Utc};
use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};

use super::command::{parse_time_spec, TimeSpec};
use super::duration;

/// What "recently" means (and the window when the question names none).
pub const RECENTLY: Duration = Duration::hours(2);

/// The longest window accepted.
const MAX_WINDOW_DAYS: i64 = 400;

/// The one-line hint given to a question that cannot be read.
pub const HINT: &str = "Ask me about deploys, e.g. `was there a deploy to payments recently?`, \
`any deploys to checkout in the last 3 hours?`, `what shipped to search since 14:00?` or `deploys today`.";

/// A deploy question.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The service as the asker wrote it (lowercase); `None` = every service.
    pub service: Option<String>,
    pub window: Window,
}

/// The time span a question asks about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// The span up to now: `recently` (2 h), `in the last 3 hours`, `past 30 min`, `2h`.
    Last(Duration),
    /// From a point in time until now: `since 14:00` (asker's time zone), `since 2026-11-25T14:00Z`.
    Since(TimeSpec),
    /// Since 00:00 today in the asker's time zone.
    Today,
    /// 00:00 yesterday until 00:00 today.
    Yesterday,
    /// Since 00:00 yesterday until now.
    SinceYesterday,
    /// Since 00:00 on the most recent such weekday (today if it is that day).
    SinceWeekday(Weekday),
    /// Since Monday 00:00 of the current week.
    ThisWeek,
}

/// Why a question could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuestionError {
    /// Nothing in it is about deploys.
    #[error("that is not a question about deploys")]
    NotAboutDeploys,
    /// A time expression it could not read, quoted.
    #[error("I could not read the time in `{0}`")]
    BadTime(String),
}

impl QuestionError {
    /// The one-line answer for the asker.
    pub fn hint(&self) -> String {
        match self {
            QuestionError::NotAboutDeploys => HINT.to_string(),
            QuestionError::BadTime(t) => format!(
                "I could not read the time in `{}` — try `since 14:00`, `since 2pm`, \
                 `in the last 3 hours`, `today` or `this week`.",
                super::text::escape_cut(&t.replace('`', "'"), 60)
            ),
        }
    }
}

impl Window {
    /// Whether resolving needs the asker's time zone (so the caller knows whether to look it up).
    pub fn needs_time_zone(&self) -> bool {
        !matches!(
            self,
            Window::Last(_) | Window::Since(TimeSpec::Ago(_)) | Window::Since(TimeSpec::At(_))
        )
    }

    /// `(since, until)` for an asker in `tz` at `now`; `since <= until` always.
    pub fn resolve(&self, now: DateTime<Utc>, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let local_today = now.with_timezone(&tz).date_naive();
        let start_of = |day: NaiveDate| -> DateTime<Utc> {
            TimeSpec::Local(day.and_time(NaiveTime::MIN)).resolve(now, tz)
        };
        let days_back = |n: i64| {
            local_today
                .checked_sub_signed(Duration::days(n))
                .unwrap_or(local_today)
        };
        let (since, until) = match *self {
            Window::Last(d) => (
                now.checked_sub_signed(d)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                now,
            ),
            Window::Since(spec) => (spec.resolve(now, tz), now),
            Window::Today => (start_of(local_today), now),
            Window::Yesterday => (start_of(days_back(1)), start_of(local_today)),
            Window::SinceYesterday => (start_of(days_back(1)), now),
            Window::SinceWeekday(w) => {
                let back = (local_today.weekday().num_days_from_monday() + 7
                    - w.num_days_from_monday())
                    % 7;
                (start_of(days_back(i64::from(back))), now)
            }
            Window::ThisWeek => {
                let back = local_today.weekday().num_days_from_monday();
                (start_of(days_back(i64::from(back))), now)
            }
        };
        (since.min(until), until)
    }

    /// How the answer names the window: `in the last 2 h`, `since 14:00 (Europe/Berlin)`, `today`.
    pub fn describe(&self, tz: chrono_tz::Tz) -> String {
        match *self {
            Window::Last(d) | Window::Since(TimeSpec::Ago(d)) => {
                format!("in the last {}", human_span(d))
            }
            Window::Since(TimeSpec::Clock(t)) => format!("since {} ({tz})", t.format("%H:%M")),
            Window::Since(TimeSpec::At(dt)) => format!("since {}", dt.to_rfc3339()),
            Window::Since(TimeSpec::Local(ndt)) => {
                format!("since {} ({tz})", ndt.format("%Y-%m-%d %H:%M"))
            }
            Window::Today => format!("today (since 00:00 {tz})"),
            Window::Yesterday => format!("yesterday (00:00–24:00 {tz})"),
            Window::SinceYesterday => format!("since yesterday 00:00 ({tz})"),
            Window::SinceWeekday(w) => format!("since {} 00:00 ({tz})", weekday_name(w)),
            Window::ThisWeek => format!("this week (since Monday 00:00 {tz})"),
        }
    }
}

/// `2 h`, `30 min`, `1 h 30 min`, `3 d`, `1 d 2 h`.
pub fn human_span(d: Duration) -> String {
    let mins = d.num_minutes().max(0);
    let (days, hours, m) = (mins / 1440, mins / 60 % 24, mins % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} d"));
    }
    if hours > 0 {
        parts.push(format!("{hours} h"));
    }
    if m > 0 && days == 0 {
        parts.push(format!("{m} min"));
    }
    if parts.is_empty() {
        let secs = d.num_seconds().max(0);
        return format!("{secs} s");
    }
    parts.join(" ")
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

/// Words that make a message a deploy question.
const DEPLOY_WORDS: &[&str] = &[
    "deploy",
    "deploys",
    "deployed",
    "deploying",
    "deployment",
    "deployments",
    "ship",
    "ships",
    "shipped",
    "shipping",
    "release",
    "releases",
    "released",
    "rollout",
    "rollouts",
    "rolled",
    "pushed",
    "landed",
    "changes",
    "changed",
];

/// Words of the question's grammar: never a service name.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "after",
    "afternoon",
    "ago",
    "all",
    "and",
    "any",
    "anything",
    "are",
    "around",
    "at",
    "be",
    "been",
    "being",
    "bot",
    "by",
    "can",
    "could",
    "dependencies",
    "deps",
    "did",
    "do",
    "does",
    "done",
    "during",
    "env",
    "environment",
    "evening",
    "ever",
    "everything",
    "far",
    "for",
    "from",
    "get",
    "give",
    "go",
    "goes",
    "going",
    "gone",
    "got",
    "had",
    "happen",
    "happened",
    "has",
    "have",
    "hello",
    "hey",
    "hi",
    "how",
    "i",
    "in",
    "incident",
    "incident-bot",
    "into",
    "is",
    "it",
    "its",
    "just",
    "know",
    "last",
    "latest",
    "lately",
    "list",
    "live",
    "made",
    "make",
    "many",
    "me",
    "morning",
    "much",
    "new",
    "now",
    "of",
    "on",
    "or",
    "out",
    "over",
    "past",
    "please",
    "pls",
    "prod",
    "production",
    "recent",
    "recently",
    "service",
    "services",
    "show",
    "since",
    "so",
    "some",
    "something",
    "thanks",
    "that",
    "the",
    "their",
    "there",
    "these",
    "this",
    "those",
    "to",
    "today",
    "tonight",
    "up",
    "us",
    "was",
    "we",
    "were",
    "went",
    "what",
    "whats",
    "when",
    "which",
    "while",
    "who",
    "with",
    "within",
    "yesterday",
    "yet",
    "you",
];

/// Prepositions after which the service is named (`deploys to payments`).
const SERVICE_PREPOSITIONS: &[&str] = &["to", "for", "of", "on", "in", "into"];

/// Words that introduce a starting time (`since 14:00`, `after 2pm`, `from monday`).
const SINCE_WORDS: &[&str] = &["since", "after", "from"];

/// Parses a question (the message text, bot mention included or not).
pub fn parse(text: &str) -> Result<Question, QuestionError> {
    // Bound the work on hostile input; real questions are short.
    let text: String = text.chars().take(2_000).collect();
    let cleaned = strip_slack_markup(&text);
    let words: Vec<String> = cleaned
        .split_whitespace()
        .map(clean_word)
        .filter(|w| !w.is_empty())
        .take(100)
        .collect();
    if !about_deploys(&words) {
        return Err(QuestionError::NotAboutDeploys);
    }
    let mut used = vec![false; words.len()];
    let window = find_window(&words, &mut used)?.unwrap_or(Window::Last(RECENTLY));
    let service = find_service(&words, &used);
    Ok(Question { service, window })
}

/// A deploy word, or `went out` / `go live` and the like.
fn about_deploys(words: &[String]) -> bool {
    words.iter().any(|w| DEPLOY_WORDS.contains(&w.as_str()))
        || words.windows(2).any(|p| {
            matches!(p[0].as_str(), "went" | "go" | "gone" | "going" | "goes")
                && matches!(p[1].as_str(), "out" | "live")
        })
}

/// Removes `<@U123>`, `<!here>`; keeps the label of `<#C123|name>` and `<https://x|label>`.
fn strip_slack_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                if !(inner.starts_with('@') || inner.starts_with('!')) {
                    if let Some((_, label)) = inner.split_once('|') {
                        out.push_str(label);
                    }
                }
                out.push(' ');
                rest = &after[end + 1..];
            }
            None => {
                out.push(' ');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("&amp;", "&")
        .replace("&lt;", " ")
        .replace("&gt;", " ")
}

/// Lowercases a word and trims punctuation and Slack formatting around it (`*payments*?` → `payments`).
fn clean_word(w: &str) -> String {
    let trimmed = w.trim_matches(|c: char| {
        matches!(
            c,
            '?' | '!'
                | '.'
                | ','
                | ';'
                | ':'
                | '"'
                | '\''
                | '`'
                | '*'
                | '_'
                | '~'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '#'
        )
    });
    let lower = trimmed.to_lowercase();
    match lower
        .strip_suffix("'s")
        .or_else(|| lower.strip_suffix("’s"))
    {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => lower,
    }
}

fn number_word(w: &str) -> Option<i64> {
    Some(match w {
        "a" | "an" | "one" => 1,
        "two" | "couple" => 2,
        "three" | "few" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "twelve" => 12,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        _ => {
            if w.is_empty() || w.len() > 6 || !w.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            return w.parse().ok();
        }
    })
}

fn weekday(w: &str) -> Option<Weekday> {
    Some(match w {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn checked_window(d: Duration) -> Option<Duration> {
    (d > Duration::zero() && d <= Duration::days(MAX_WINDOW_DAYS)).then_some(d)
}

/// A span starting at `words[i]`: `3h`, `1h30m`, `3 hours`, `an hour`, `90 mins`. Returns it and the
/// number of words it took.
fn span_at(words: &[String], i: usize) -> Option<(Duration, usize)> {
    let w = words.get(i)?;
    if w.starts_with(|c: char| c.is_ascii_digit()) {
        if let Some(d) = super::command::parse_window(w) {
            return Some((d, 1));
        }
    }
    let n = number_word(w)?;
    let u = duration::unit(words.get(i + 1)?)?;
    let d = u.checked_mul(i32::try_from(n).ok()?)?;
    Some((d, 2))
}

/// `2pm`, `2:30pm`, `2 pm`, `noon`, `midnight` as a wall-clock time; returns it and the words taken.
fn clock_at(words: &[String], i: usize) -> Option<(NaiveTime, usize)> {
    let w = words.get(i)?;
    match w.as_str() {
        "noon" | "midday" => return Some((NaiveTime::from_hms_opt(12, 0, 0)?, 1)),
        "midnight" => return Some((NaiveTime::MIN, 1)),
        _ => {}
    }
    let (body, suffix, taken) = if let Some(b) = w.strip_suffix("am") {
        (b, "am", 1)
    } else if let Some(b) = w.strip_suffix("pm") {
        (b, "pm", 1)
    } else {
        match words.get(i + 1).map(String::as_str) {
            Some(s @ ("am" | "pm" | "a.m" | "p.m")) => (w.as_str(), &s[..1], 2),
            _ => return None,
        }
    };
    let (h, m) = match body.split_once(':') {
        Some((h, m)) => (h, m),
        None => (body, "0"),
    };
    if h.is_empty() || h.len() > 2 || m.is_empty() || m.len() > 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if !(1..=12).contains(&h) {
        return None;
    }
    let h24 = match (suffix.starts_with('a'), h) {
        (true, 12) => 0,
        (true, h) => h,
        (false, 12) => 12,
        (false, h) => h + 12,
    };
    Some((NaiveTime::from_hms_opt(h24, m, 0)?, taken))
}

/// What follows `since`: a clock time, an ISO time, `3 hours ago`, `yesterday`, `monday`.
fn since_at(words: &[String], i: usize) -> Option<(Window, usize)> {
    let w = words.get(i)?;
    if w == "yesterday" {
        return Some((Window::SinceYesterday, 1));
    }
    if w == "today" || w == "midnight" || w == "this" && words.get(i + 1)? == "morning" {
        let taken = if w == "this" { 2 } else { 1 };
        return Some((Window::Today, taken));
    }
    if let Some(day) = weekday(w) {
        return Some((Window::SinceWeekday(day), 1));
    }
    if let Some((t, n)) = clock_at(words, i) {
        return Some((Window::Since(TimeSpec::Clock(t)), n));
    }
    // `3 hours ago`, `3h ago`, `an hour ago`
    if let Some((d, n)) = span_at(words, i) {
        if words.get(i + n).map(String::as_str) == Some("ago") {
            return Some((Window::Last(checked_window(d)?), n + 1));
        }
    }
    // `2026-11-25 14:32` (two words) before a one-word form.
    if let Some(next) = words.get(i + 1) {
        if let Some(spec @ (TimeSpec::Local(_) | TimeSpec::At(_))) =
            parse_time_spec(&format!("{w} {next}"))
        {
            return Some((Window::Since(spec), 2));
        }
    }
    // `14:00`, `-20m`, `20m ago` is handled above; ISO with zone; uppercase matters for `Z`.
    let spec = parse_time_spec(w).or_else(|| parse_time_spec(&w.to_uppercase()))?;
    let window = match spec {
        TimeSpec::Ago(d) => Window::Last(checked_window(d)?),
        other => Window::Since(other),
    };
    Some((window, 1))
}

fn mark(used: &mut [bool], from: usize, n: usize) {
    for u in used.iter_mut().skip(from).take(n) {
        *u = true;
    }
}

/// Finds the window and marks the words it used.
fn find_window(words: &[String], used: &mut [bool]) -> Result<Option<Window>, QuestionError> {
    let mut found: Option<Window> = None;
    let mut recently = false;
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        if found.is_some() {
            break;
        }
        if SINCE_WORDS.contains(&w) {
            // `from` is also a preposition ("deploys from ci"): only a time after it counts.
            match since_at(words, i + 1) {
                Some((win, n)) => {
                    mark(used, i, n + 1);
                    found = Some(win);
                }
                None if w == "since" => {
                    let quoted: Vec<&str> =
                        words.iter().skip(i).take(3).map(String::as_str).collect();
                    return Err(QuestionError::BadTime(quoted.join(" ")));
                }
                None => {}
            }
        } else if w == "last" || w == "past" {
            // `last 3 hours`, `past hour`, `last week`, `last 2h`
            if let Some((d, n)) = span_at(words, i + 1) {
                let d = checked_window(d)
                    .ok_or_else(|| QuestionError::BadTime(format!("{w} {}", words[i + 1])))?;
                mark(used, i, n + 1);
                found = Some(Window::Last(d));
            } else if let Some(u) = next.and_then(duration::unit) {
                mark(used, i, 2);
                found = Some(Window::Last(u));
            } else if next.is_some_and(|n| number_word(n).is_some()) {
                return Err(QuestionError::BadTime(
                    words
                        .iter()
                        .skip(i)
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
            }
        } else if w == "today" || w == "tonight" {
            mark(used, i, 1);
            found = Some(Window::Today);
        } else if w == "yesterday" {
            mark(used, i, 1);
            found = Some(Window::Yesterday);
        } else if w == "this" {
            match next {
                Some("week") => {
                    mark(used, i, 2);
                    found = Some(Window::ThisWeek);
                }
                Some("morning" | "afternoon" | "evening") => {
                    mark(used, i, 2);
                    found = Some(Window::Today);
                }
                _ => {}
            }
        } else if matches!(w, "recently" | "recent" | "lately") {
            mark(used, i, 1);
            recently = true;
        } else if w.starts_with(|c: char| c.is_ascii_digit()) {
            // a bare span: `deploys to payments 3h`, `in 3 hours`
            if let Some((d, n)) = span_at(words, i) {
                let d =
                    checked_window(d).ok_or_else(|| QuestionError::BadTime(words[i].clone()))?;
                mark(used, i, n);
                found = Some(Window::Last(d));
            }
        }
        i += 1;
    }
    Ok(found.or(recently.then_some(Window::Last(RECENTLY))))
}

/// A word that can be a service name: letters, digits and `-_./:`, with at least one letter.
fn looks_like_service(w: &str) -> bool {
    w.len() <= 100
        && w.chars().any(|c| c.is_alphabetic())
        && w.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'))
        && !STOPWORDS.contains(&w)
        && !DEPLOY_WORDS.contains(&w)
        && duration::unit(w).is_none()
        && number_word(w).is_none()
        && weekday(w).is_none()
}

fn find_service(words: &[String], used: &[bool]) -> Option<String> {
    let candidate = |i: usize| -> Option<String> {
        let w = words.get(i)?;
        (!used.get(i).copied().unwrap_or(true) && looks_like_service(w)).then(|| w.clone())
    };
    // After a preposition, skipping articles: `deploys to the payments service`.
    for (i, w) in words.iter().enumerate() {
        if used[i] || !SERVICE_PREPOSITIONS.contains(&w.as_str()) {
            continue;
        }
        let mut j = i + 1;
        while words
            .get(j)
            .is_some_and(|n| matches!(n.as_str(), "the" | "a" | "an"))
        {
            j += 1;
        }
        if let Some(s) = candidate(j) {
            return Some(s);
        }
    }
    (0..words.len()).find_map(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Tz;
    use proptest::prelude::*;

    fn q(text: &str) -> Question {
        parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn service(text: &str) -> Option<String> {
        q(text).service
    }

    #[test]
    fn the_phrasings_of_the_spec_are_understood() {
        assert_eq!(
            q("<@U0LAN0Z89> was there a deploy to payments recently?"),
            Question {
                service: Some("payments".into()),
                window: Window::Last(Duration::hours(2))
            }
        );
        assert_eq!(
            q("any deploys to checkout in the last 3 hours?"),
            Question {
                service: Some("checkout".into()),
                window: Window::Last(Duration::hours(3))
            }
        );
        assert_eq!(
            q("what shipped to search since 14:00?"),
            Question {
                service: Some("search".into()),
                window: Window::Since(TimeSpec::Clock(NaiveTime::from_hms_opt(14, 0, 0).unwrap()))
            }
        );
        assert_eq!(
            q("deploys today"),
            Question {
                service: None,
                window: Window::Today
            }
        );
    }

    #[test]
    fn recently_means_the_last_two_hours_and_is_the_default() {
        assert_eq!(q("deploys to payments?").window, Window::Last(RECENTLY));
        assert_eq!(
            q("recent deploys to payments").window,
            Window::Last(RECENTLY)
        );
        assert_eq!(
            q("anything deployed lately?").window,
            Window::Last(RECENTLY)
        );
        assert_eq!(RECENTLY, Duration::hours(2));
    }

    #[test]
    fn relative_windows_in_words_and_abbreviations() {
        let last = |t: &str| q(t).window;
        assert_eq!(
            last("deploys to payments last 30 minutes"),
            Window::Last(Duration::minutes(30))
        );
        assert_eq!(
            last("deploys to payments in the past hour"),
            Window::Last(Duration::hours(1))
        );
        assert_eq!(
            last("deploys to payments in the last hour"),
            Window::Last(Duration::hours(1))
        );
        assert_eq!(
            last("deploys to payments over the last two days"),
            Window::Last(Duration::days(2))
        );
        assert_eq!(
            last("payments deploys last 90 mins"),
            Window::Last(Duration::minutes(90))
        );
        assert_eq!(
            last("deploys to payments last 1h30m"),
            Window::Last(Duration::minutes(90))
        );
        assert_eq!(
            last("deploys to payments 3h"),
            Window::Last(Duration::hours(3))
        );
        assert_eq!(
            last("deploys to payments in 24 hours"),
            Window::Last(Duration::hours(24))
        );
        assert_eq!(last("deploys last week"), Window::Last(Duration::weeks(1)));
        assert_eq!(
            last("deploys to auth since 3 hours ago"),
            Window::Last(Duration::hours(3))
        );
        assert_eq!(
            last("deploys to auth since 20m ago"),
            Window::Last(Duration::minutes(20))
        );
    }

    #[test]
    fn clock_and_calendar_windows() {
        let t = |h, m| Window::Since(TimeSpec::Clock(NaiveTime::from_hms_opt(h, m, 0).unwrap()));
        assert_eq!(q("what shipped to search since 2pm").window, t(14, 0));
        assert_eq!(q("what shipped to search since 9:30 am").window, t(9, 30));
        assert_eq!(q("what shipped to search since 12am").window, t(0, 0));
        assert_eq!(q("deploys to search after 09:15").window, t(9, 15));
        assert_eq!(q("deploys since noon").window, t(12, 0));
        assert_eq!(q("deploys to search yesterday").window, Window::Yesterday);
        assert_eq!(
            q("deploys to search since yesterday").window,
            Window::SinceYesterday
        );
        assert_eq!(q("deploys to search this week").window, Window::ThisWeek);
        assert_eq!(q("deploys to search this morning").window, Window::Today);
        assert_eq!(
            q("deploys to search since monday").window,
            Window::SinceWeekday(Weekday::Mon)
        );
        assert!(matches!(
            q("deploys since 2026-11-25T14:00:00Z").window,
            Window::Since(TimeSpec::At(_))
        ));
        assert!(matches!(
            q("deploys since 2026-11-25 14:00").window,
            Window::Since(TimeSpec::Local(_))
        ));
    }

    #[test]
    fn the_service_is_found_in_natural_variants() {
        assert_eq!(
            service("has payments been deployed recently?"),
            Some("payments".into())
        );
        assert_eq!(service("payments deploys today"), Some("payments".into()));
        assert_eq!(
            service("Did *Payments-API* get deployed in the past 30 min?"),
            Some("payments-api".into())
        );
        assert_eq!(
            service("any releases of `checkout` this week"),
            Some("checkout".into())
        );
        assert_eq!(
            service("deploys to the auth service today"),
            Some("auth".into())
        );
        assert_eq!(
            service("what went out to <#C123|inventory> since 9am"),
            Some("inventory".into())
        );
        assert_eq!(
            service("what's been shipped to search's api?"),
            Some("search".into())
        );
        assert_eq!(
            service("deploys to component:default/payments"),
            Some("component:default/payments".into())
        );
        assert_eq!(service("any deploys at all today?"), None);
        assert_eq!(service("deploys to all services this week"), None);
        assert_eq!(service("<@UBOT> deploys"), None);
    }

    #[test]
    fn a_message_about_something_else_gets_the_hint() {
        assert_eq!(
            parse("is it everything a river should be?"),
            Err(QuestionError::NotAboutDeploys)
        );
        assert_eq!(parse(""), Err(QuestionError::NotAboutDeploys));
        assert_eq!(
            parse("where did everyone go?"),
            Err(QuestionError::NotAboutDeploys)
        );
        assert!(QuestionError::NotAboutDeploys
            .hint()
            .contains("deploy to payments recently"));
    }

    #[test]
    fn an_unreadable_time_is_quoted_back() {
        assert_eq!(
            parse("deploys to payments since the outage began"),
            Err(QuestionError::BadTime("since the outage".into()))
        );
        assert!(matches!(
            parse("deploys in the last 9999 days"),
            Err(QuestionError::BadTime(_))
        ));
        assert!(QuestionError::BadTime("since x".into())
            .hint()
            .contains("since 14:00"));
    }

    #[test]
    fn since_a_clock_time_is_read_in_the_askers_time_zone() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 15:30 UTC is 10:30 in New York (EST, UTC-5).
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 15, 30, 0).unwrap();
        let (since, until) = q("what shipped to search since 9:00?")
            .window
            .resolve(now, tz);
        assert_eq!(since, Utc.with_ymd_and_hms(2026, 11, 25, 14, 0, 0).unwrap());
        assert_eq!(until, now);
        // A time still ahead today means yesterday.
        let (since, _) = q("deploys since 11:00").window.resolve(now, tz);
        assert_eq!(since, Utc.with_ymd_and_hms(2026, 11, 24, 16, 0, 0).unwrap());
    }

    #[test]
    fn calendar_windows_resolve_to_local_midnights() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        // Wednesday 2026-11-25 10:00 UTC = 11:00 in Berlin (UTC+1).
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let midnight = |d| Utc.with_ymd_and_hms(2026, 11, d, 23, 0, 0).unwrap();
        assert_eq!(Window::Today.resolve(now, tz), (midnight(24), now));
        assert_eq!(
            Window::Yesterday.resolve(now, tz),
            (midnight(23), midnight(24))
        );
        assert_eq!(Window::SinceYesterday.resolve(now, tz), (midnight(23), now));
        // Monday 23 November 00:00 Berlin = 22 November 23:00 UTC.
        assert_eq!(Window::ThisWeek.resolve(now, tz), (midnight(22), now));
        assert_eq!(
            Window::SinceWeekday(Weekday::Mon).resolve(now, tz),
            (midnight(22), now)
        );
        assert_eq!(
            Window::SinceWeekday(Weekday::Wed).resolve(now, tz),
            (midnight(24), now)
        );
        assert_eq!(
            Window::Last(Duration::hours(2)).resolve(now, tz).0,
            now - Duration::hours(2)
        );
    }

    #[test]
    fn windows_describe_themselves_for_the_answer() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(Window::Last(RECENTLY).describe(tz), "in the last 2 h");
        assert_eq!(
            Window::Last(Duration::minutes(90)).describe(tz),
            "in the last 1 h 30 min"
        );
        assert_eq!(
            q("deploys since 14:00").window.describe(tz),
            "since 14:00 (Europe/Berlin)"
        );
        assert_eq!(
            Window::Today.describe(tz),
            "today (since 00:00 Europe/Berlin)"
        );
        assert!(!Window::Last(RECENTLY).needs_time_zone());
        assert!(Window::Today.needs_time_zone());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_on_any_text(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn parsing_and_resolving_never_panic_on_question_like_text(
            words in proptest::collection::vec(prop_oneof![
                Just("deploys".to_string()), Just("to".to_string()), Just("since".to_string()),
                Just("last".to_string()), Just("past".to_string()), Just("the".to_string()),
                Just("today".to_string()), Just("this".to_string()), Just("week".to_string()),
                Just("ago".to_string()), Just("am".to_string()), Just("pm".to_string()),
                Just("<@U1>".to_string()), Just("<#C1|x>".to_string()), Just("<".to_string()),
                "[0-9]{1,9}[a-z]{0,6}", "[0-9]{1,3}:[0-9]{1,3}", "[a-z-]{1,12}", "\\PC{1,8}",
            ], 0..12),
            now_secs in 0i64..4_000_000_000,
            tz_index in 0usize..5,
        ) {
            let text = words.join(" ");
            if let Ok(question) = parse(&text) {
                let tz = [chrono_tz::UTC, chrono_tz::Europe::Berlin, chrono_tz::America::Santiago,
                    chrono_tz::Asia::Kolkata, chrono_tz::Pacific::Chatham][tz_index];
                let now = Utc.timestamp_opt(now_secs, 0).unwrap();
                let (since, until) = question.window.resolve(now, tz);
                prop_assert!(since <= until);
                prop_assert!(until <= now);
                let _ = question.window.describe(tz);
                if let Some(s) = question.service {
                    prop_assert!(looks_like_service(&s));
                }
            }
        }
    }
}
