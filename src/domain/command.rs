//! Parsing the text of the `/incident` slash command (SPEC §2) into a [`Command`], and the time expressions it
//! accepts (`14:05`, `-20m`, ISO-8601) into a [`TimeSpec`] that is resolved against the caller's `now` and time zone.

use std::fmt;

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc,
};

use super::duration;
use super::followup::{self, NewFollowup};
use super::incident::Role;
use super::phase::{CorrectionTarget, Milestone};
use super::severity::{DetectionMethod, Severity};
use super::text::{self, Title};

/// Short help listing every command (Slack mrkdwn).
pub const USAGE: &str = "\
*Usage:* `/incident &lt;command&gt;`
• `start &lt;title&gt; [sev:P1|P2|P3] [service:&lt;name&gt;] [via:alert|customer|engineer] [started:&lt;HH:MM|-20m&gt;] [private:yes]` — declare an incident (options anywhere; no title opens a form)
• `ack` · `identified` · `fixed` · `resolved` · `reopen` — record a phase, in the incident channel
• `set &lt;started|ack|identified|fixed|resolved&gt; &lt;HH:MM|ISO-8601&gt;` — correct a timestamp
• `role &lt;ic|comms&gt; &lt;@user|me&gt;` — give the incident commander or comms lead role, in the incident channel
• `sev &lt;P1|P2|P3&gt;` — change the severity, in the incident channel
• `update` — post a status update (form), in the incident channel and the announcement's thread
• `status` — current phase, timestamps and elapsed time
• `deploys &lt;service&gt; [2h|30m|1d]` — recent deploys to a service and what it depends on
• `list` — open incidents
• `timeline` — this incident's timeline (📌 a message or use “Add to incident timeline” to add it)
• `postmortem` — upload this incident's postmortem draft (Markdown) to its channel
• `followup &lt;text&gt; [@owner] [due:YYYY-MM-DD]` — note a follow-up, in the incident channel; `followup done &lt;id&gt;` · `followup assign &lt;id&gt; @owner`
• `followups` — open follow-ups (this incident's in its channel, else all, oldest due first)
• `digest` — post this channel's MTTR digest now
• `help` — this help";

/// The subcommands by their main names, as [`USAGE`] lists them (metrics count commands by these).
pub const SUBCOMMANDS: &[&str] = &[
    "start",
    "ack",
    "identified",
    "fixed",
    "resolved",
    "reopen",
    "set",
    "role",
    "sev",
    "update",
    "status",
    "deploys",
    "list",
    "timeline",
    "postmortem",
    "followup",
    "followups",
    "digest",
    "help",
];

/// The longest span accepted in `-20m`, `2h`-style input.
const MAX_SPAN_DAYS: i64 = 400;

/// A parsed `/incident` command.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `start <title> [options]`.
    Start(StartArgs),
    /// `start` without a title: open the declare modal.
    StartModal,
    /// `ack`, `identified`, `fixed`, `resolved` (and aliases): same as the buttons.
    Milestone(Milestone),
    Reopen,
    /// `set <phase|started> <time>`: correct a timestamp.
    Set {
        target: CorrectionTarget,
        when: TimeSpec,
    },
    /// `role ic|comms <@user|me>`: give a role.
    Role {
        role: Role,
        user: Holder,
    },
    /// `sev P1|P2|P3`: change the severity.
    Severity(Severity),
    /// `update`: open the status update form, in the incident channel.
    Update,
    Status,
    /// `deploys <service> [window]`; `window` is `None` when not given (the caller picks the default).
    Deploys {
        service: String,
        window: Option<Duration>,
    },
    List,
    /// `timeline`: the incident's timeline, in its channel.
    Timeline,
    /// `postmortem`: upload the postmortem draft, in the incident channel.
    Postmortem,
    /// `followup <text> [@owner] [due:YYYY-MM-DD]`: note a follow-up, in the incident channel.
    Followup(NewFollowup),
    /// `followup done <id>`: complete a follow-up.
    FollowupDone(i64),
    /// `followup assign <id> <@user|me>`: give a follow-up an owner.
    FollowupAssign {
        id: i64,
        owner: Holder,
    },
    /// `followups`: the open follow-ups.
    Followups,
    Digest,
    Help,
}

/// Who `/incident role` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// `me`: the person typing.
    Me,
    /// A Slack user id, from the mention Slack sends (`<@U123|alice>`, the manifest's `should_escape: true`).
    User(String),
}

/// Everything `/incident start` can say.
#[derive(Clone, Debug, PartialEq)]
pub struct StartArgs {
    /// Normalised ([`Title::parse`]): what is stored.
    pub title: Title,
    pub severity: Severity,
    pub service: Option<String>,
    pub via: DetectionMethod,
    /// When impact began, if the declarer said; otherwise the declaration time.
    pub started: Option<TimeSpec>,
    /// `private:yes`: a private channel, and nothing of it in the broadcast channel but that it was declared.
    pub private: bool,
}

/// Bad input; `message` is a one-line reason to show next to [`USAGE`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
}

impl UsageError {
    fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
        }
    }
}

/// A point in time as a user typed it; see [`TimeSpec::resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    /// `-20m`, `20m`, `1h30m ago`: that long before `now`.
    Ago(Duration),
    /// `14:05`: a wall-clock time in the user's time zone, today or (if that is still ahead) yesterday.
    Clock(NaiveTime),
    /// ISO-8601 with a zone: `2026-11-25T14:32:00Z`, `2026-11-25T16:32+02:00`.
    At(DateTime<FixedOffset>),
    /// ISO-8601 without a zone: `2026-11-25 14:32`, taken in the user's time zone.
    Local(NaiveDateTime),
}

impl TimeSpec {
    /// The instant meant, for a user in time zone `tz` at `now`.
    pub fn resolve(&self, now: DateTime<Utc>, tz: chrono_tz::Tz) -> DateTime<Utc> {
        match *self {
            TimeSpec::Ago(d) => now
                .checked_sub_signed(d)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            TimeSpec::At(dt) => dt.with_timezone(&Utc),
            TimeSpec::Local(ndt) => local_instants(tz, ndt)
                .first()
                .copied()
                .unwrap_or_else(|| Utc.from_utc_datetime(&ndt)),
            TimeSpec::Clock(time) => {
                let today = now.with_timezone(&tz).date_naive();
                let latest_past = |day: NaiveDate| {
                    local_instants(tz, day.and_time(time))
                        .into_iter()
                        .filter(|i| *i <= now)
                        .max()
                };
                latest_past(today)
                    .or_else(|| today.pred_opt().and_then(latest_past))
                    .unwrap_or(now)
            }
        }
    }
}

impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSpec::Ago(d) => write!(f, "-{}", duration::format_duration(*d)),
            TimeSpec::Clock(t) => write!(f, "{}", t.format("%H:%M")),
            TimeSpec::At(dt) => write!(f, "{}", dt.to_rfc3339()),
            TimeSpec::Local(ndt) => write!(f, "{}", ndt.format("%Y-%m-%d %H:%M")),
        }
    }
}

/// How far ahead of the bot's clock a typed time may be and still count as "now" (clocks differ a little).
pub fn clock_skew() -> Duration {
    Duration::minutes(1)
}

/// Refuses a start of impact later than `now` (beyond [`clock_skew`]): impact cannot have begun in the future.
/// `typed` is what the user wrote, echoed back.
pub fn not_in_future(
    typed: &TimeSpec,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), UsageError> {
    if at <= now + clock_skew() {
        return Ok(());
    }
    Err(UsageError::new(format!(
        "`started:{}` is in the future ({} — it is now {}): impact cannot have started yet. Use a time that \
         has passed, e.g. `started:14:05` or `started:-20m`.",
        short(&typed.to_string()),
        at.format("%Y-%m-%d %H:%M UTC"),
        now.format("%Y-%m-%d %H:%M UTC")
    )))
}

/// The instants a local wall-clock time maps to in `tz`: one, two around a DST fall-back, and for a time that
/// does not exist (spring-forward gap) the first existing time after it.
fn local_instants(tz: chrono_tz::Tz, ndt: NaiveDateTime) -> Vec<DateTime<Utc>> {
    let mut probe = ndt;
    for _ in 0..=8 {
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(d) => return vec![d.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => {
                return vec![a.with_timezone(&Utc), b.with_timezone(&Utc)]
            }
            LocalResult::None => match probe.checked_add_signed(Duration::minutes(15)) {
                Some(next) => probe = next,
                None => break,
            },
        }
    }
    Vec::new()
}

/// Parses a time window: `2h`, `30m`, `1d`, `90m`, `1h30m` (positive, at most 400 days).
pub fn parse_window(s: &str) -> Option<Duration> {
    parse_span(s).filter(|d| *d > Duration::zero())
}

/// A [`duration::parse`] span of at most [`MAX_SPAN_DAYS`]; zero allowed.
fn parse_span(s: &str) -> Option<Duration> {
    duration::parse(s).filter(|d| *d <= Duration::days(MAX_SPAN_DAYS))
}

/// Parses a time expression: `14:05`, `9:05:30`, `-20m`, `20m ago`, `now`, `2026-11-25T14:32:00Z`,
/// `2026-11-25T16:32+02:00`, `2026-11-25 14:32` (no zone: the user's), `2026-11-25 14:32 UTC`.
pub fn parse_time_spec(s: &str) -> Option<TimeSpec> {
    let s = s.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower == "now" {
        return Some(TimeSpec::Ago(Duration::zero()));
    }
    let span_text = lower
        .strip_suffix("ago")
        .map(str::trim_end)
        .or_else(|| lower.strip_prefix('-'))
        .unwrap_or(&lower);
    if let Some(d) = parse_span(span_text) {
        return Some(TimeSpec::Ago(d));
    }
    for fmt in ["%H:%M", "%H:%M:%S"] {
        if let Ok(t) = NaiveTime::parse_from_str(s, fmt) {
            return Some(TimeSpec::Clock(t));
        }
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(TimeSpec::At(dt));
    }
    // Zoned forms RFC 3339 does not cover: no seconds, `Z`/`UTC` suffixes, `+0200` offsets.
    let zoned = if let Some(x) = s.strip_suffix(['Z', 'z']) {
        Some(format!("{}+00:00", x.trim_end()))
    } else if lower.ends_with("utc") {
        Some(format!("{}+00:00", s[..s.len() - 3].trim_end()))
    } else {
        None
    };
    let candidate = zoned.as_deref().unwrap_or(s);
    for fmt in [
        "%Y-%m-%dT%H:%M%z",
        "%Y-%m-%d %H:%M%z",
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(candidate, fmt) {
            return Some(TimeSpec::At(dt));
        }
    }
    if zoned.is_some() {
        return None;
    }
    for fmt in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(ndt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(TimeSpec::Local(ndt));
        }
    }
    None
}

/// The text of a slash command as Slack sent it → the text [`parse`] reads: decoded once
/// ([`text::decode_slash`]); for `start`, the mentions Slack made of what was picked with `@`/`#`
/// (`<@U123|alice>`, with the manifest's `should_escape: true`) first become the readable `@alice`, while
/// mention-like text typed by hand (sent as `&lt;@U…&gt;`) stays as typed.
pub fn prepare(raw: &str) -> String {
    let first = raw.split_whitespace().next().unwrap_or_default();
    if first.eq_ignore_ascii_case("start") || first.eq_ignore_ascii_case("declare") {
        text::decode_slash(&text::readable_mentions(raw))
    } else {
        text::decode_slash(raw)
    }
}

/// Parses the text after `/incident`.
pub fn parse(text: &str) -> Result<Command, UsageError> {
    // Control characters (NUL, ESC, BEL, …) separate words like spaces: they never reach a stored title or
    // service name (PostgreSQL refuses NUL in text; terminals act on ESC in logs).
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let Some((first, rest)) = tokens.split_first() else {
        return Ok(Command::Help);
    };
    let sub = first.to_lowercase();
    match sub.as_str() {
        "help" | "-h" | "--help" | "?" | "usage" => Ok(Command::Help),
        "start" | "declare" => parse_start(rest),
        "set" | "correct" => parse_set(rest),
        "deploys" | "deploy" => parse_deploys(rest),
        "role" | "roles" | "assign" => parse_role(rest),
        "sev" | "severity" => match rest {
            [s] => Severity::parse(s.trim_start_matches("sev:"))
                .map(Command::Severity)
                .ok_or_else(|| {
                    UsageError::new(format!(
                        "no severity called `{}` — use `/incident sev P1`, `P2` or `P3`",
                        short(s)
                    ))
                }),
            _ => Err(UsageError::new("use `/incident sev P1`, `P2` or `P3`")),
        },
        "update" => no_arguments("update", rest, Command::Update),
        "reopen" => no_arguments("reopen", rest, Command::Reopen),
        "status" => no_arguments("status", rest, Command::Status),
        "list" | "ls" => no_arguments("list", rest, Command::List),
        "timeline" => no_arguments("timeline", rest, Command::Timeline),
        "postmortem" | "pm" => no_arguments("postmortem", rest, Command::Postmortem),
        "followups" => no_arguments("followups", rest, Command::Followups),
        "followup" | "follow-up" | "fu" => parse_followup(rest),
        "digest" => no_arguments("digest", rest, Command::Digest),
        _ => match Milestone::parse(&sub) {
            Some(m) if rest.is_empty() => Ok(Command::Milestone(m)),
            Some(m) => Err(UsageError::new(format!(
                "`/incident {}` takes no arguments — to correct its time use `/incident set {} 14:32`",
                short(first),
                m.as_str()
            ))),
            None => Err(UsageError::new(format!(
                "unknown command `{}` — try `/incident help`",
                short(first)
            ))),
        },
    }
}

fn no_arguments(name: &str, rest: &[&str], cmd: Command) -> Result<Command, UsageError> {
    if rest.is_empty() {
        Ok(cmd)
    } else {
        Err(UsageError::new(format!(
            "`/incident {name}` takes no arguments"
        )))
    }
}

/// User text echoed back in an error (Slack text): escaped, and cut to a sane length.
fn short(s: &str) -> String {
    text::escape_cut(&s.replace('`', "'"), 41)
}

fn parse_start(rest: &[&str]) -> Result<Command, UsageError> {
    let mut words = Vec::new();
    let mut severity = None;
    let mut service = None;
    let mut via = None;
    let mut started = None;
    let mut private = None;
    let mut i = 0;
    while i < rest.len() {
        let token = rest[i];
        i += 1;
        let Some((key, value)) = token.split_once(':') else {
            words.push(token);
            continue;
        };
        let key = key.to_ascii_lowercase();
        let key = match key.as_str() {
            "sev" | "severity" => "sev",
            "service" | "svc" => "service",
            "via" => "via",
            "started" => "started",
            "private" => "private",
            _ => {
                words.push(token);
                continue;
            }
        };
        if value.is_empty() {
            return Err(UsageError::new(match key {
                "sev" => "`sev:` needs a value: P1, P2 or P3",
                "service" => "`service:` needs a service name",
                "via" => "`via:` needs a value: alert, customer or engineer",
                "private" => "`private:` needs a value: yes or no",
                _ => "`started:` needs a time: HH:MM or -20m",
            }));
        }
        let duplicate = || UsageError::new(format!("`{key}:` is given twice"));
        match key {
            "sev" => {
                let sev = Severity::parse(value).ok_or_else(|| {
                    UsageError::new(format!(
                        "unknown severity `{}` — use P1, P2 or P3",
                        short(value)
                    ))
                })?;
                if severity.replace(sev).is_some() {
                    return Err(duplicate());
                }
            }
            "service" => {
                if service.replace(value.to_string()).is_some() {
                    return Err(duplicate());
                }
            }
            "via" => {
                let method = DetectionMethod::parse(value).ok_or_else(|| {
                    UsageError::new(format!(
                        "unknown detection method `{}` — use alert, customer or engineer",
                        short(value)
                    ))
                })?;
                if via.replace(method).is_some() {
                    return Err(duplicate());
                }
            }
            "private" => {
                let yes = match value.to_ascii_lowercase().as_str() {
                    "yes" | "y" | "true" | "1" => true,
                    "no" | "n" | "false" | "0" => false,
                    _ => {
                        return Err(UsageError::new(format!(
                            "`private:{}` — use `private:yes` or `private:no`",
                            short(value)
                        )))
                    }
                };
                if private.replace(yes).is_some() {
                    return Err(duplicate());
                }
            }
            _ => {
                // `started:2026-11-25 14:05` arrives as two tokens.
                let mut spec = None;
                if NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok() {
                    if let Some(next) = rest.get(i) {
                        spec = parse_time_spec(&format!("{value} {next}"));
                        if spec.is_some() {
                            i += 1;
                        }
                    }
                }
                let spec = spec.or_else(|| parse_time_spec(value)).ok_or_else(|| {
                    UsageError::new(format!(
                        "`{}` is not a time — use `started:14:05`, `started:-20m` or an ISO-8601 time",
                        short(value)
                    ))
                })?;
                if started.replace(spec).is_some() {
                    return Err(duplicate());
                }
            }
        }
    }
    let Some(title) = Title::parse(&words.join(" ")) else {
        return Ok(Command::StartModal);
    };
    Ok(Command::Start(StartArgs {
        title,
        severity: severity.unwrap_or_default(),
        service,
        via: via.unwrap_or_default(),
        started,
        private: private.unwrap_or(false),
    }))
}

fn parse_set(rest: &[&str]) -> Result<Command, UsageError> {
    const HOW: &str =
        "usage: `/incident set &lt;started|ack|identified|fixed|resolved&gt; &lt;HH:MM|ISO-8601&gt;`";
    let Some((target_text, when_tokens)) = rest.split_first() else {
        return Err(UsageError::new(format!("what should be corrected? {HOW}")));
    };
    let target = match target_text.to_ascii_lowercase().as_str() {
        "started" | "start" => CorrectionTarget::Started,
        other => match Milestone::parse(other) {
            Some(m) => CorrectionTarget::Milestone(m),
            None => {
                return Err(UsageError::new(format!(
                    "unknown phase `{}` — use started, ack, identified, fixed or resolved",
                    short(target_text)
                )))
            }
        },
    };
    if when_tokens.is_empty() {
        return Err(UsageError::new(format!(
            "when? e.g. `/incident set {target} 14:32`"
        )));
    }
    let when_text = when_tokens.join(" ");
    let when = parse_time_spec(&when_text).ok_or_else(|| {
        UsageError::new(format!(
            "`{}` is not a time — use HH:MM (your time zone) or ISO-8601 like 2026-11-25T14:32Z",
            short(&when_text)
        ))
    })?;
    Ok(Command::Set { target, when })
}

const ROLE_USAGE: &str =
    "use `/incident role ic @someone` or `/incident role comms @someone` (pick the person from \
Slack's list as you type @), or `me`";

fn parse_role(rest: &[&str]) -> Result<Command, UsageError> {
    // A mention's label may hold spaces (`<@U123|Alice Smith>`): the rest of the text is the one holder.
    let [role, who @ ..] = rest else {
        return Err(UsageError::new(ROLE_USAGE));
    };
    if who.is_empty() {
        return Err(UsageError::new(ROLE_USAGE));
    }
    let who = who.join(" ");
    let who = who.as_str();
    let Some(role) = Role::parse(role) else {
        return Err(UsageError::new(format!(
            "no role called `{}` — {ROLE_USAGE}",
            short(role)
        )));
    };
    let user = if who.eq_ignore_ascii_case("me") {
        Holder::Me
    } else {
        match mentioned_user(who) {
            Some(id) => Holder::User(id),
            None => {
                return Err(UsageError::new(format!(
                    "`{}` is not a Slack user — {ROLE_USAGE}",
                    short(who)
                )))
            }
        }
    };
    Ok(Command::Role { role, user })
}

/// The user id of a user mention as Slack sends it in a slash command's text (`<@U123ABC>`,
/// `<@U123ABC|alice>`), when it is one; the id must look like a Slack user id.
pub fn mentioned_user(s: &str) -> Option<String> {
    let inner = s.strip_prefix("<@")?.strip_suffix('>')?;
    let id = inner.split('|').next()?;
    let ok = id.len() >= 3
        && id.len() <= 20
        && (id.starts_with('U') || id.starts_with('W'))
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    ok.then(|| id.to_string())
}

fn parse_followup(rest: &[&str]) -> Result<Command, UsageError> {
    let id_of = |w: Option<&&str>| -> Result<i64, UsageError> {
        let w =
            w.ok_or_else(|| UsageError::new(format!("which follow-up? {}", followup::USAGE)))?;
        w.trim_start_matches('#')
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                UsageError::new(format!(
                    "`{}` is not a follow-up number — `/incident followups` lists them",
                    short(w)
                ))
            })
    };
    match rest.first().map(|w| w.to_ascii_lowercase()).as_deref() {
        None => Err(UsageError::new(format!(
            "what should be done? {}",
            followup::USAGE
        ))),
        Some("done" | "complete" | "close") if rest.len() <= 2 => {
            Ok(Command::FollowupDone(id_of(rest.get(1))?))
        }
        Some("assign" | "owner") if rest.len() >= 3 => {
            let id = id_of(rest.get(1))?;
            let who = rest[2..].join(" ");
            let owner = if who.eq_ignore_ascii_case("me") {
                Holder::Me
            } else {
                Holder::User(mentioned_user(&who).ok_or_else(|| {
                    UsageError::new(format!(
                        "`{}` is not a Slack user — pick the person from Slack's list as you type @",
                        short(&who)
                    ))
                })?)
            };
            Ok(Command::FollowupAssign { id, owner })
        }
        _ => parse_followup_args(rest)
            .map(Command::Followup)
            .map_err(UsageError::new),
    }
}

/// Reads the words after `followup`: the owner is the first user mention Slack made of a name picked with `@`
/// (`<@U123|alice>`; a label may hold spaces), the due date `due:YYYY-MM-DD`; the rest is the text (other
/// mentions in it become a readable `@name`). `Err` is the reason, for the user.
fn parse_followup_args(words: &[&str]) -> Result<NewFollowup, String> {
    let mut owner = None;
    let mut due_on = None;
    let mut text_words: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        if w.starts_with("<@") {
            let mut mention = w.to_string();
            while !mention.contains('>') && i < words.len() {
                mention.push(' ');
                mention.push_str(words[i]);
                i += 1;
            }
            match (mentioned_user(&mention), &owner) {
                (Some(id), None) => owner = Some(id),
                _ => text_words.push(text::readable_mentions(&mention)),
            }
            continue;
        }
        if let Some(d) = w
            .strip_prefix("due:")
            .or_else(|| w.strip_prefix("DUE:"))
            .or_else(|| w.strip_prefix("Due:"))
        {
            let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                format!(
                    "`due:{}` is not a date — use `due:YYYY-MM-DD`, e.g. `due:2026-12-24`",
                    text::escape_cut(&d.replace('`', "'"), 20)
                )
            })?;
            if due_on.replace(date).is_some() {
                return Err("`due:` is given twice".into());
            }
            continue;
        }
        text_words.push(w.to_string());
    }
    let joined = text_words.join(" ");
    let clean = text::plain(&joined, followup::TEXT_MAX).trim().to_string();
    if clean.is_empty() {
        return Err(format!("what should be done? {}", followup::USAGE));
    }
    Ok(NewFollowup {
        text: clean,
        owner,
        due_on,
    })
}

fn parse_deploys(rest: &[&str]) -> Result<Command, UsageError> {
    match rest {
        [] => Err(UsageError::new(
            "which service? usage: `/incident deploys &lt;service&gt; [2h|30m|1d]`",
        )),
        [service] => Ok(Command::Deploys {
            service: service.to_string(),
            window: None,
        }),
        [service, window] => {
            let window = parse_window(window).ok_or_else(|| {
                UsageError::new(format!(
                    "`{}` is not a time window — use e.g. 2h, 30m or 1d",
                    short(window)
                ))
            })?;
            Ok(Command::Deploys {
                service: service.to_string(),
                window: Some(window),
            })
        }
        _ => Err(UsageError::new(
            "too many words — usage: `/incident deploys &lt;service&gt; [2h|30m|1d]`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;
    use proptest::prelude::*;

    fn start(text: &str) -> StartArgs {
        match parse(text) {
            Ok(Command::Start(args)) => args,
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("{text:?} parsed as {c:?}"),
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn clock(h: u32, m: u32) -> TimeSpec {
        TimeSpec::Clock(NaiveTime::from_hms_opt(h, m, 0).unwrap())
    }

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    #[test]
    fn owner_and_due_date_are_read_anywhere_and_the_rest_is_the_text() {
        let a = parse_followup_args(&words(
            "add <@U0ALICE|alice> an alert due:2026-12-10 on errors",
        ))
        .unwrap();
        assert_eq!(a.text, "add an alert on errors");
        assert_eq!(a.owner.as_deref(), Some("U0ALICE"));
        assert_eq!(a.due_on, NaiveDate::from_ymd_opt(2026, 12, 10));
        let b = parse_followup_args(&words("ask <@U0BOB|Bob Smith> and <@U0CAROL|carol>")).unwrap();
        assert_eq!(b.owner.as_deref(), Some("U0BOB"));
        assert_eq!(b.text, "ask and @carol");
        assert!(parse_followup_args(&words("x due:tomorrow"))
            .unwrap_err()
            .contains("not a date"));
        assert!(
            parse_followup_args(&words("<@U0ALICE|alice>")).is_err(),
            "no text"
        );
        assert!(parse_followup_args(&words("x due:2026-01-01 due:2026-01-02")).is_err());
    }

    #[test]
    fn empty_text_and_help_give_help() {
        assert_eq!(parse(""), Ok(Command::Help));
        assert_eq!(parse("   \t "), Ok(Command::Help));
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("HELP"), Ok(Command::Help));
    }

    #[test]
    fn start_with_a_bare_title_uses_the_defaults() {
        let a = start("start DB is down");
        assert_eq!(a.title, "DB is down");
        assert_eq!(a.severity, Severity::P2);
        assert_eq!(a.service, None);
        assert_eq!(a.via, DetectionMethod::Unknown, "until someone says");
        assert_eq!(a.started, None);
    }

    #[test]
    fn start_options_may_appear_anywhere_in_any_case() {
        let a = start(
            "start sev:P1 checkout   errors SERVICE:payments via:Customer spike started:14:05",
        );
        assert_eq!(a.title, "checkout errors spike");
        assert_eq!(a.severity, Severity::P1);
        assert_eq!(a.service.as_deref(), Some("payments"));
        assert_eq!(a.via, DetectionMethod::Customer);
        assert_eq!(a.started, Some(clock(14, 5)));
        assert_eq!(start("start x sev:p3").severity, Severity::P3);
        assert!(start("start x private:yes").private);
        assert!(!start("start x private:no").private);
        assert!(!start("start x").private);
        assert!(err("start x private:maybe").contains("private:yes"));
        assert!(err("start x private:yes private:no").contains("twice"));
        assert_eq!(parse("update"), Ok(Command::Update));
    }

    #[test]
    fn started_accepts_minutes_ago_and_iso_times() {
        assert_eq!(
            start("start x started:-20m").started,
            Some(TimeSpec::Ago(Duration::minutes(20)))
        );
        assert_eq!(
            start("start x started:2026-11-25T14:05:00Z").started,
            Some(TimeSpec::At(
                DateTime::parse_from_rfc3339("2026-11-25T14:05:00Z").unwrap()
            ))
        );
        let a = start("start x started:2026-11-25 14:05 more title");
        assert_eq!(
            a.started,
            Some(TimeSpec::Local(
                NaiveDate::from_ymd_opt(2026, 11, 25)
                    .unwrap()
                    .and_hms_opt(14, 5, 0)
                    .unwrap()
            ))
        );
        assert_eq!(a.title, "x more title");
    }

    #[test]
    fn unknown_option_values_are_named_in_the_error() {
        assert_eq!(
            err("start db down sev:P9"),
            "unknown severity `P9` — use P1, P2 or P3"
        );
        assert!(err("start db via:twitter").contains("`twitter`"));
        assert!(err("start db started:teatime").contains("`teatime`"));
        assert!(err("start db sev:").contains("sev:"));
        assert!(err("start db sev:P1 sev:P2").contains("twice"));
    }

    #[test]
    fn words_with_colons_that_are_not_options_stay_in_the_title() {
        let a = start("start API: 500s on /v1:orders");
        assert_eq!(a.title, "API: 500s on /v1:orders");
    }

    #[test]
    fn control_characters_never_reach_the_title_or_the_service() {
        let a = start("start db\u{0}is down\u{1b}[31m sev:P1 service:pay\u{7}");
        assert_eq!(a.title, "db is down [31m");
        assert_eq!(a.service.as_deref(), Some("pay"));
        assert!(matches!(parse("start \u{0}\u{7}"), Ok(Command::StartModal)));
    }

    #[test]
    fn form_titles_lose_control_characters_and_extra_whitespace() {
        assert_eq!(
            Title::parse("  db\u{0} is\n\n down\u{1b}[31m \t").unwrap(),
            "db is down [31m"
        );
        assert_eq!(Title::parse("\u{7}\u{0}"), None);
    }

    #[test]
    fn a_start_of_impact_in_the_future_is_refused_beyond_clock_skew() {
        let now = utc(2026, 11, 25, 14, 0);
        let spec = parse_time_spec("2026-11-26T09:00Z").unwrap();
        assert_eq!(
            not_in_future(&spec, now + Duration::seconds(59), now),
            Ok(())
        );
        assert_eq!(not_in_future(&spec, now - Duration::hours(3), now), Ok(()));
        let e = not_in_future(&spec, now + Duration::minutes(2), now).unwrap_err();
        assert!(e.message.contains("is in the future"), "{e}");
        assert!(e.message.contains("it is now 2026-11-25 14:00 UTC"), "{e}");
    }

    #[test]
    fn usage_replies_escape_what_they_echo() {
        for text in [
            "start x started:<!here>",
            "start x sev:<!channel>",
            "start x via:<@U123>",
            "frobnicate<https://evil.example|x>",
            "deploys payments <!everyone>",
            "set <#C1> 14:00",
        ] {
            let e = err(text);
            assert!(!e.contains('<') && !e.contains('>'), "{text}: {e}");
            assert!(e.contains("&lt;"), "{text}: {e}");
        }
        assert!(
            !USAGE.contains('<'),
            "the usage's placeholders are escaped too"
        );
    }

    #[test]
    fn quoted_titles_lose_their_quotes() {
        assert_eq!(start("start \"db is down\" sev:P1").title, "db is down");
        assert_eq!(start("start “db is down”").title, "db is down");
    }

    #[test]
    fn start_without_a_title_opens_the_modal() {
        assert_eq!(parse("start"), Ok(Command::StartModal));
        assert_eq!(parse("start    "), Ok(Command::StartModal));
        assert_eq!(parse("Start sev:P1"), Ok(Command::StartModal));
    }

    #[test]
    fn milestone_commands_and_aliases_map_to_milestones() {
        assert_eq!(
            parse("ack"),
            Ok(Command::Milestone(Milestone::Acknowledged))
        );
        assert_eq!(
            parse("identified"),
            Ok(Command::Milestone(Milestone::Identified))
        );
        assert_eq!(parse("rca"), Ok(Command::Milestone(Milestone::Identified)));
        assert_eq!(parse("Fixed"), Ok(Command::Milestone(Milestone::Fixed)));
        assert_eq!(
            parse("resolve"),
            Ok(Command::Milestone(Milestone::Resolved))
        );
    }

    #[test]
    fn a_milestone_with_a_time_points_to_set_instead_of_recording_now() {
        assert!(err("fixed 14:32").contains("/incident set fixed 14:32"));
    }

    #[test]
    fn simple_commands_parse_and_reject_extra_words() {
        assert_eq!(parse("reopen"), Ok(Command::Reopen));
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("list"), Ok(Command::List));
        assert_eq!(parse("digest"), Ok(Command::Digest));
        assert!(err("status please").contains("takes no arguments"));
    }

    #[test]
    fn unknown_subcommands_are_named() {
        assert!(err("foo bar").starts_with("unknown command `foo`"));
    }

    #[test]
    fn set_parses_phase_and_time() {
        assert_eq!(
            parse("set identified 14:32"),
            Ok(Command::Set {
                target: CorrectionTarget::Milestone(Milestone::Identified),
                when: clock(14, 32)
            })
        );
        assert_eq!(
            parse("set started 2026-11-25 14:32"),
            Ok(Command::Set {
                target: CorrectionTarget::Started,
                when: TimeSpec::Local(
                    NaiveDate::from_ymd_opt(2026, 11, 25)
                        .unwrap()
                        .and_hms_opt(14, 32, 0)
                        .unwrap()
                )
            })
        );
        assert!(matches!(
            parse("set ack 2026-11-25T14:32:00+02:00"),
            Ok(Command::Set {
                when: TimeSpec::At(_),
                ..
            })
        ));
    }

    #[test]
    fn set_with_bad_phase_or_time_explains_itself() {
        assert!(err("set").contains("usage"));
        assert!(err("set lunch 14:32").contains("unknown phase `lunch`"));
        assert!(err("set fixed").contains("when?"));
        assert!(err("set fixed 25:99").contains("`25:99` is not a time"));
    }

    #[test]
    fn deploys_takes_a_service_and_an_optional_window() {
        assert_eq!(
            parse("deploys payments"),
            Ok(Command::Deploys {
                service: "payments".into(),
                window: None
            })
        );
        assert_eq!(
            parse("deploys payments 90m"),
            Ok(Command::Deploys {
                service: "payments".into(),
                window: Some(Duration::minutes(90))
            })
        );
        assert!(err("deploys").contains("which service"));
        assert!(err("deploys payments 2x").contains("`2x` is not a time window"));
        assert!(err("deploys a b c").contains("too many"));
    }

    #[test]
    fn every_subcommand_is_parsed_and_listed_in_the_usage() {
        for sub in SUBCOMMANDS {
            if let Err(e) = parse(sub) {
                assert!(!e.to_string().contains("unknown command"), "{sub}: {e}");
            }
            assert!(
                USAGE.contains(&format!("`{sub}")),
                "{sub} missing from USAGE"
            );
        }
    }

    #[test]
    fn role_takes_a_role_and_a_slack_mention_or_me() {
        assert_eq!(
            parse("role ic <@U0ALICE|alice>"),
            Ok(Command::Role {
                role: Role::Commander,
                user: Holder::User("U0ALICE".into())
            })
        );
        assert_eq!(
            parse("role Comms <@W0BOB>"),
            Ok(Command::Role {
                role: Role::Comms,
                user: Holder::User("W0BOB".into())
            })
        );
        assert_eq!(
            parse("role ic me"),
            Ok(Command::Role {
                role: Role::Commander,
                user: Holder::Me
            })
        );
        assert!(err("role ic @alice").contains("is not a Slack user"));
        assert!(err("role ic <!channel>").contains("is not a Slack user"));
        assert!(err("role ic <@U0ALICE|x> extra").contains("is not a Slack user"));
        assert!(err("role ic").contains("/incident role ic @someone"));
        assert_eq!(
            parse("role ic <@U0ALICE|Alice Smith>"),
            Ok(Command::Role {
                role: Role::Commander,
                user: Holder::User("U0ALICE".into())
            })
        );
        assert!(err("role boss <@U0ALICE>").contains("no role called `boss`"));
        assert!(err("role").contains("/incident role ic @someone"));
        // What is echoed back is escaped.
        assert!(err("role <b> me").contains("&lt;b&gt;"));
    }

    #[test]
    fn mentions_in_a_title_read_as_people_typed_them() {
        assert_eq!(
            start(&prepare(
                "start db down ask <@U0ALICE|alice> in <#C0OPS|ops> <!here> &lt;@U0EVIL&gt;"
            ))
            .title
            .as_str(),
            "db down ask @alice in #ops <!here> <@U0EVIL>"
        );
        assert_eq!(
            parse(&prepare("role ic <@U0ALICE|alice>")),
            Ok(Command::Role {
                role: Role::Commander,
                user: Holder::User("U0ALICE".into())
            })
        );
    }

    #[test]
    fn sev_takes_one_severity() {
        assert_eq!(parse("sev P1"), Ok(Command::Severity(Severity::P1)));
        assert_eq!(parse("severity p3"), Ok(Command::Severity(Severity::P3)));
        assert!(err("sev P0").contains("no severity called `P0`"));
        assert!(err("sev").contains("/incident sev P1"));
        assert!(err("sev P1 P2").contains("/incident sev P1"));
    }

    #[test]
    fn windows_parse_common_units() {
        assert_eq!(parse_window("2h"), Some(Duration::hours(2)));
        assert_eq!(parse_window("30m"), Some(Duration::minutes(30)));
        assert_eq!(parse_window("1d"), Some(Duration::days(1)));
        assert_eq!(parse_window("90M"), Some(Duration::minutes(90)));
        assert_eq!(parse_window("1h30m"), Some(Duration::minutes(90)));
        for bad in ["", "0m", "h", "2", "2x", "-2h", "99999999d", "1000d", "２h"] {
            assert_eq!(parse_window(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn time_specs_cover_the_documented_forms() {
        assert_eq!(
            parse_time_spec("now"),
            Some(TimeSpec::Ago(Duration::zero()))
        );
        assert_eq!(
            parse_time_spec("20m ago"),
            Some(TimeSpec::Ago(Duration::minutes(20)))
        );
        assert_eq!(parse_time_spec("9:05"), Some(clock(9, 5)));
        let z = parse_time_spec("2026-11-25T14:32Z").unwrap();
        assert_eq!(
            z.resolve(utc(2026, 11, 26, 0, 0), Tz::UTC),
            utc(2026, 11, 25, 14, 32)
        );
        let off = parse_time_spec("2026-11-25T16:32+02:00").unwrap();
        assert_eq!(
            off.resolve(utc(2026, 11, 26, 0, 0), Tz::UTC),
            utc(2026, 11, 25, 14, 32)
        );
        let u = parse_time_spec("2026-11-25 14:32 UTC").unwrap();
        assert_eq!(
            u.resolve(utc(2026, 11, 26, 0, 0), Tz::Europe__Berlin),
            utc(2026, 11, 25, 14, 32)
        );
        assert_eq!(parse_time_spec("24:00"), None);
        assert_eq!(parse_time_spec("2026-13-01 10:00"), None);
    }

    #[test]
    fn clock_times_are_read_in_the_users_zone() {
        // 14:05 in Berlin (UTC+1 in November) is 13:05 UTC.
        let now = utc(2026, 11, 25, 15, 0);
        assert_eq!(
            clock(14, 5).resolve(now, Tz::Europe__Berlin),
            utc(2026, 11, 25, 13, 5)
        );
    }

    #[test]
    fn a_clock_time_still_ahead_today_means_yesterday() {
        // An SRE typing started:23:50 at 00:10.
        let now = utc(2026, 11, 25, 0, 10);
        assert_eq!(
            clock(23, 50).resolve(now, Tz::UTC),
            utc(2026, 11, 24, 23, 50)
        );
        // Same in New York (UTC-5): 00:10 local is 05:10 UTC.
        let now = utc(2026, 11, 25, 5, 10);
        assert_eq!(
            clock(23, 50).resolve(now, Tz::America__New_York),
            utc(2026, 11, 25, 4, 50)
        );
    }

    #[test]
    fn naive_iso_times_are_taken_in_the_users_zone() {
        let spec = parse_time_spec("2026-11-25 14:32").unwrap();
        assert_eq!(
            spec.resolve(utc(2026, 11, 26, 0, 0), Tz::America__New_York),
            utc(2026, 11, 25, 19, 32)
        );
    }

    #[test]
    fn clock_times_in_a_dst_gap_or_overlap_resolve_sensibly() {
        // Europe/Berlin springs forward 2026-03-29 02:00 -> 03:00; 02:30 does not exist.
        let now = utc(2026, 3, 29, 5, 0);
        let gap = clock(2, 30).resolve(now, Tz::Europe__Berlin);
        assert_eq!(
            gap,
            utc(2026, 3, 29, 1, 0),
            "first existing time after the gap (03:00 CEST)"
        );
        // Falls back 2026-10-25 03:00 -> 02:00; 02:30 happens twice. At 02:40 of the second pass, the most recent one.
        let now = utc(2026, 10, 25, 1, 40);
        assert_eq!(
            clock(2, 30).resolve(now, Tz::Europe__Berlin),
            utc(2026, 10, 25, 1, 30)
        );
    }

    #[test]
    fn ago_subtracts_from_now() {
        let now = utc(2026, 11, 25, 14, 30);
        assert_eq!(
            TimeSpec::Ago(Duration::minutes(20)).resolve(now, Tz::UTC),
            utc(2026, 11, 25, 14, 10)
        );
    }

    #[test]
    fn usage_lists_every_command() {
        for cmd in [
            "start",
            "sev:",
            "service:",
            "via:",
            "started:",
            "ack",
            "identified",
            "fixed",
            "resolved",
            "reopen",
            "set",
            "status",
            "deploys",
            "list",
            "digest",
            "help",
        ] {
            assert!(USAGE.contains(cmd), "{cmd}");
        }
    }

    fn tokenish() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("start".to_string()),
            Just("set".to_string()),
            Just("deploys".to_string()),
            Just("started:".to_string()),
            Just("sev:".to_string()),
            Just("via:".to_string()),
            Just("service:".to_string()),
            Just("2026-11-25".to_string()),
            Just("14:05".to_string()),
            Just("-20m".to_string()),
            "[a-z0-9:+\\-TZ ]{0,12}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_text(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_command_like_text(parts in proptest::collection::vec(tokenish(), 0..6)) {
            let text = parts.concat();
            let _ = parse(&text);
            let _ = parse(&parts.join(" "));
        }

        #[test]
        fn resolving_any_parsed_time_never_panics(
            s in "[0-9:+\\-TZ ]{0,25}",
            secs in 0i64..4_000_000_000,
        ) {
            if let Some(spec) = parse_time_spec(&s) {
                let now = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
                for tz in [Tz::UTC, Tz::Europe__Berlin, Tz::America__New_York, Tz::Australia__Lord_Howe] {
                    let at = spec.resolve(now, tz);
                    if matches!(spec, TimeSpec::Clock(_) | TimeSpec::Ago(_)) {
                        prop_assert!(at <= now);
                    }
                }
            }
        }
    }
}
