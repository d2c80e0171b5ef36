//! The demo's narrator: after each step it prints what appeared in the Slack stand-in since the last look —
//! each new message once (mrkdwn rendered for the terminal, names instead of user ids), an edited message as
//! the lines that changed, new topics, bookmarks, ephemeral and `response_url` replies. Every time shown is the
//! message's Slack timestamp, which the stand-in takes from the demo's simulated clock.

use std::collections::HashMap;

use serde_json::Value;

use crate::standins::mrkdwn;
use crate::standins::slack::{Channel, Message, SlackStandin};

/// What has been shown so far.
pub struct Story {
    slack: SlackStandin,
    ansi: bool,
    /// (channel id, ts) → the message as last shown (plain text), and whether it was pinned.
    seen: HashMap<(String, String), (String, bool)>,
    topics: HashMap<String, String>,
    bookmarks: HashMap<String, usize>,
    ephemerals: usize,
    responses: usize,
}

impl Story {
    pub fn new(slack: SlackStandin, ansi: bool) -> Story {
        let mut story = Story {
            slack,
            ansi,
            seen: HashMap::new(),
            topics: HashMap::new(),
            bookmarks: HashMap::new(),
            ephemerals: 0,
            responses: 0,
        };
        // The seeded channels' topics are not news.
        for ch in story.slack.channels() {
            story.topics.insert(ch.id.clone(), ch.topic.clone());
        }
        story
    }

    /// A scene's heading.
    pub fn scene(&self, title: &str) {
        if self.ansi {
            println!("\n\x1b[1m━━ {title}\x1b[0m");
        } else {
            println!("\n━━ {title}");
        }
    }

    /// A line of narration (mrkdwn allowed); more lines are indented under it.
    pub fn say(&self, text: &str) {
        println!("   {}", self.md(text).replace('\n', "\n     "));
    }

    /// mrkdwn rendered for this terminal.
    pub fn md(&self, text: &str) -> String {
        let names = |id: &str| self.name_of(id);
        mrkdwn::to_terminal(text, &names, self.ansi)
    }

    /// A user's or a channel's name.
    pub fn name_of(&self, id: &str) -> String {
        match self.slack.channel_name(id) {
            Some(name) => name,
            None => self.slack.user_name(id),
        }
    }

    fn body(&self, m: &Message, ansi: bool) -> String {
        let names = |id: &str| self.name_of(id);
        let mut parts = Vec::new();
        match &m.blocks {
            Some(b) => parts.push(mrkdwn::blocks_to_terminal(b, &names, ansi)),
            None if !m.text.is_empty() => parts.push(mrkdwn::to_terminal(&m.text, &names, ansi)),
            None => {}
        }
        for a in m
            .attachments
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(b) = a.get("blocks") {
                parts.push(mrkdwn::blocks_to_terminal(b, &names, ansi));
            } else if let Some(t) = a.get("text").and_then(Value::as_str) {
                parts.push(mrkdwn::to_terminal(t, &names, ansi));
            }
        }
        for f in &m.files {
            parts.push(format!("📎 {f}"));
        }
        parts.join("\n")
    }

    /// Prints everything new in Slack since the last call.
    pub fn catch_up(&mut self) {
        let channels = self.slack.channels();
        let mut fresh: Vec<(&Channel, &Message)> = Vec::new();
        let mut edits: Vec<(&Channel, &Message, String)> = Vec::new();
        for ch in &channels {
            let topic = self.topics.entry(ch.id.clone()).or_default();
            if *topic != ch.topic {
                *topic = ch.topic.clone();
                println!("   #{} topic: {}", ch.name, self.md(&ch.topic));
            }
            let shown = self.bookmarks.entry(ch.id.clone()).or_default();
            for b in ch.bookmarks.iter().skip(*shown) {
                println!("   #{} bookmark: 🔖 {} ({})", ch.name, b.title, b.link);
            }
            *shown = ch.bookmarks.len();
            for m in &ch.messages {
                match self.seen.get(&(ch.id.clone(), m.ts.clone())) {
                    None => fresh.push((ch, m)),
                    Some((before, _)) if *before != self.body(m, false) => {
                        edits.push((ch, m, before.clone()))
                    }
                    Some(_) => {}
                }
            }
        }
        fresh.sort_by(|a, b| a.1.ts.cmp(&b.1.ts));
        for (ch, m) in fresh {
            self.print_message(ch, m);
        }
        for (ch, m, before) in edits {
            let after = self.body(m, false);
            let what = if ch.pins.contains(&m.ts) {
                "card"
            } else {
                "message"
            };
            println!("   ✎ {what} updated in #{}:", ch.name);
            for line in diff(&before, &after) {
                println!("     {line}");
            }
            let pinned = ch.pins.contains(&m.ts);
            self.seen
                .insert((ch.id.clone(), m.ts.clone()), (after, pinned));
        }
        let ephemerals = self.slack.ephemerals();
        for (channel, user, text) in ephemerals.iter().skip(self.ephemerals) {
            let name = channels
                .iter()
                .find(|c| c.id == *channel)
                .map_or(channel.clone(), |c| c.name.clone());
            self.say(&format!(
                "(only @{} sees, in #{name}) {text}",
                self.slack.user_name(user)
            ));
        }
        self.ephemerals = ephemerals.len();
        let responses = self.slack.responses();
        for (_, body) in responses.iter().skip(self.responses) {
            let text = body["text"].as_str().unwrap_or_default();
            self.say(&format!(
                "(reply to the command, only its author sees) {text}"
            ));
        }
        self.responses = responses.len();
    }

    fn print_message(&mut self, ch: &Channel, m: &Message) {
        let pinned = ch.pins.contains(&m.ts);
        let thread = m.thread_ts.as_ref().is_some_and(|t| *t != m.ts);
        let author = self.slack.user_name(&m.user);
        let author = if self.ansi {
            format!("\x1b[1m{author}\x1b[0m")
        } else {
            author
        };
        println!(
            "   #{} · {} · {author}{}{}",
            ch.name,
            time_of(&m.ts),
            if pinned { " 📌" } else { "" },
            if thread { " (in a thread)" } else { "" }
        );
        for line in self.body(m, self.ansi).lines() {
            println!("   │ {line}");
        }
        self.seen
            .insert((ch.id.clone(), m.ts.clone()), (self.body(m, false), pinned));
    }
}

/// A Slack timestamp as `HH:MM` UTC.
pub fn time_of(ts: &str) -> String {
    let secs = ts
        .split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

/// The lines that changed from `before` to `after`: `− old` and `+ new`, in order (a longest-common-
/// subsequence diff; unchanged lines left out).
pub fn diff(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("− {}", a[i].trim_start()));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j].trim_start()));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_shows_only_changed_lines() {
        let before = "INC-1\n  • Status Investigating\n  • Elapsed 5m\n[Acknowledge]";
        let after = "INC-1\n  • Status Acknowledged\n  • Elapsed 5m\n[Acknowledge]\nUpdated 04:40";
        assert_eq!(
            diff(before, after),
            vec![
                "− • Status Investigating",
                "+ • Status Acknowledged",
                "+ Updated 04:40"
            ]
        );
        assert!(diff("same\ntext", "same\ntext").is_empty());
    }

    #[test]
    fn slack_timestamps_print_as_utc_minutes() {
        assert_eq!(time_of("1764081240.000100"), "14:34");
    }
}
