//! An incident's timeline as people read it (SPEC §12): every `timeline_events` line in order — phase changes,
//! corrections, detection, alerts, and the messages responders captured (📌 or the "Add to incident timeline"
//! shortcut) — rendered for Slack (`/incident timeline`, escaped and cut to Slack's limits) and for export
//! (`incident-bot export … --format md|json`). Pure: the caller reads the rows and picks the time zone.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::text;

/// The `kind` of a captured message's line.
pub const MESSAGE_KIND: &str = "message";

/// How much of `/incident timeline` one ephemeral reply holds (far inside a message's 40,000 characters).
pub const SLACK_REPLY_MAX: usize = 12_000;

/// The most characters of one captured message shown in Slack.
const SLACK_ENTRY_TEXT: usize = 500;

/// One timeline line as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub kind: String,
    /// Who did it (a Slack user id) or who wrote the captured message.
    pub actor: Option<String>,
    /// The line's text; for a captured message its text as Slack gave it (untrusted, `&`, `<`, `>` as entities).
    pub detail: String,
    /// Slack's link to a captured message.
    pub permalink: Option<String>,
    /// A captured message that was deleted in Slack.
    pub deleted: bool,
}

impl Entry {
    fn is_message(&self) -> bool {
        self.kind == MESSAGE_KIND
    }

    /// The text for a reader outside Slack: a captured message's Slack entities decoded; the bot's own lines
    /// (Slack text it wrote) as plain text — mentions as `@U…`, dates as their fallback, links as `label (url)`.
    fn plain_text(&self) -> String {
        if self.is_message() {
            text::decode_slash(&self.detail)
        } else {
            text::mrkdwn_plain(&self.detail).replace('\n', " · ")
        }
    }
}

/// `/incident timeline`: one line per entry, times in `tz`, untrusted text escaped; at most
/// [`SLACK_REPLY_MAX`] characters, the rest counted in a last line.
pub fn slack_reply(key: &str, entries: &[Entry], tz: Tz) -> String {
    let zone = tz.name();
    let head = format!("*{key} timeline* (times in {zone})");
    if entries.is_empty() {
        return format!("{head}\nNothing on the timeline yet.");
    }
    let lines: Vec<String> = entries.iter().map(|e| slack_line(e, tz)).collect();
    let mut out = head;
    // Room kept for the "… more" line.
    let budget = SLACK_REPLY_MAX - 200;
    for (i, line) in lines.iter().enumerate() {
        if out.chars().count() + 1 + line.chars().count() > budget {
            out.push_str(&format!(
                "\n… and {} more — `incident-bot export {key} --format md` has the whole timeline",
                lines.len() - i
            ));
            return out;
        }
        out.push('\n');
        out.push_str(line);
    }
    out
}

fn slack_line(e: &Entry, tz: Tz) -> String {
    let when = e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M");
    let who = e.actor.as_deref().map(text::user);
    if e.is_message() {
        let body = if e.deleted {
            "_(message deleted)_".to_string()
        } else {
            format!(
                "“{}”",
                text::escape_cut(
                    &text::decode_slash(&text::readable_mentions(&e.detail)),
                    SLACK_ENTRY_TEXT
                )
            )
        };
        let link = e
            .permalink
            .as_deref()
            .filter(|_| !e.deleted)
            .filter(|p| text::checked_url(p).is_some())
            .map(|p| format!(" · {}", text::link(p, "message")))
            .unwrap_or_default();
        format!(
            "`{when}` 📌 {}: {body}{link}",
            who.unwrap_or_else(|| "someone".into())
        )
    } else {
        let by = who.map(|w| format!(" — {w}")).unwrap_or_default();
        format!(
            "`{when}` *{}* {}{by}",
            text::escape_cut(&e.kind, 40),
            own_line(&e.detail)
        )
    }
}

/// One of the bot's own lines (Slack text it wrote when it stored the line, untrusted parts already escaped)
/// for `/incident timeline`: its mentions, dates and links kept so Slack renders them, on one line, cut to
/// Slack's limits. Should a special mention (`<!channel>`, `<!here>`, …) be in it all the same, it is shown as
/// text, never sent as one: only `<!date^…>` keeps its markup.
fn own_line(detail: &str) -> String {
    let one_line: String = text::strip_invisible(&detail.replace('\n', " · "))
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut safe = String::with_capacity(one_line.len());
    let mut rest = one_line.as_str();
    while let Some(i) = rest.find("<!") {
        safe.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find('>').map_or(tail.len(), |e| e + 1);
        if tail.starts_with("<!date^") {
            safe.push_str(&tail[..end]);
        } else {
            safe.push_str(&text::escape(&tail[..end]));
        }
        rest = &tail[end..];
    }
    safe.push_str(rest);
    text::cut(&safe, SLACK_ENTRY_TEXT)
}

/// The whole timeline as a Markdown table, times in `tz`.
pub fn markdown(key: &str, title: &str, entries: &[Entry], tz: Tz) -> String {
    let cell = |s: &str| {
        text::plain(s, usize::MAX)
            .replace('\\', "\\\\")
            .replace('|', "\\|")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = format!(
        "# {key} timeline — {}\n\nTimes in {}.\n\n| time | kind | author | text | link |\n|---|---|---|---|---|\n",
        cell(title),
        tz.name()
    );
    for e in entries {
        let mut body = cell(&e.plain_text());
        if e.deleted {
            body = format!("~~{body}~~ (deleted)");
        }
        let link = e
            .permalink
            .as_deref()
            .and_then(text::checked_url)
            .map(|u| format!("[message]({u})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {} | {body} | {link} |\n",
            e.at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
            cell(&e.kind),
            cell(e.actor.as_deref().unwrap_or("")),
        ));
    }
    out
}

/// The whole timeline as a JSON array: `at` (ISO-8601 in `tz`), `kind`, `author`, `text`, `permalink`,
/// `deleted`.
pub fn json(entries: &[Entry], tz: Tz) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                json!({
                    "at": e.at.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Millis, true),
                    "kind": e.kind,
                    "author": e.actor,
                    "text": e.plain_text(),
                    "permalink": e.permalink,
                    "deleted": e.deleted,
                })
            })
            .collect(),
    )
}

/// A Slack message `ts` (`1360782400.498405`) as an instant.
pub fn ts_instant(ts: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: i64 = secs.parse().ok()?;
    let micros: u32 = format!("{:0<6}", frac.get(..6.min(frac.len()))?)
        .parse()
        .ok()?;
    DateTime::from_timestamp(secs, micros * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn msg(detail: &str) -> Entry {
        Entry {
            at: Utc.with_ymd_and_hms(2026, 12, 1, 14, 5, 0).unwrap(),
            kind: MESSAGE_KIND.into(),
            actor: Some("U0ALICE1".into()),
            detail: detail.into(),
            permalink: Some("https://acme.slack.com/archives/C1/p1".into()),
            deleted: false,
        }
    }

    #[test]
    fn hostile_message_text_is_escaped_for_slack() {
        let out = slack_reply(
            "INC-1",
            &[msg("&lt;!channel&gt; <!here> <@U999|x>")],
            chrono_tz::UTC,
        );
        assert!(!out.contains("<!channel>"), "{out}");
        assert!(!out.contains("<!here>"), "{out}");
        assert!(!out.contains("<@U999"), "{out}");
        assert!(out.contains("&lt;!channel&gt;"), "{out}");
    }

    #[test]
    fn the_bots_own_lines_keep_their_markup_and_never_ping() {
        let own = Entry {
            kind: "acknowledged".into(),
            detail:
                "✅ Acknowledged by <@U1> at <!date^1^{time}|14:05 UTC> <!channel> *x &lt;y&gt;*"
                    .into(),
            permalink: None,
            ..msg("")
        };
        let out = slack_reply("INC-1", std::slice::from_ref(&own), chrono_tz::UTC);
        assert!(
            out.contains("by <@U1> at <!date^1^{time}|14:05 UTC>"),
            "{out}"
        );
        assert!(out.contains("&lt;!channel&gt; *x &lt;y&gt;*"), "{out}");
        assert!(
            !out.contains("<!channel>") && !out.contains("&amp;"),
            "{out}"
        );
        let md = markdown("INC-1", "t", &[own], chrono_tz::UTC);
        assert!(md.contains("Acknowledged by @U1 at 14:05 UTC"), "{md}");
    }

    #[test]
    fn times_are_in_the_readers_zone_and_long_timelines_are_cut_with_a_count() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let out = slack_reply("INC-1", &[msg("hi")], tz);
        assert!(out.contains("2026-12-01 15:05"), "{out}");
        let many: Vec<Entry> = (0..200).map(|_| msg(&"x".repeat(400))).collect();
        let out = slack_reply("INC-1", &many, tz);
        assert!(out.chars().count() <= SLACK_REPLY_MAX, "{}", out.len());
        assert!(out.contains("more — `incident-bot export INC-1"), "{out}");
    }

    #[test]
    fn ts_reads_as_an_instant() {
        let t = ts_instant("1360782400.498405").unwrap();
        assert_eq!(t.timestamp(), 1360782400);
        assert_eq!(t.timestamp_subsec_micros(), 498405);
        assert!(ts_instant("nope").is_none());
    }

    #[test]
    fn exports_decode_entities_and_escape_table_cells() {
        let e = msg("a | b &lt;x&gt;");
        let md = markdown("INC-1", "t", std::slice::from_ref(&e), chrono_tz::UTC);
        assert!(md.contains("a \\| b &lt;x&gt;"), "{md}");
        let j = json(&[e], chrono_tz::UTC);
        assert_eq!(j[0]["text"], "a | b <x>");
        assert_eq!(j[0]["at"], "2026-12-01T14:05:00.000Z");
    }
}
