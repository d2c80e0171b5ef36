//! Untrusted text → Slack text, in one place (SPEC §10). Pure; depends on nothing else in the crate.
//!
//! Every string that came from a person, a form, a deploy event, an alert or the catalog goes through here
//! before it reaches a Slack message, topic, view or bookmark, or a pager's summary:
//! - **Normalised where it comes in.** Slash-command text arrives with `&`, `<`, `>` already escaped by Slack:
//!   [`decode_slash`] undoes exactly that once, at the front door, so the bot holds the text the person typed
//!   (modal fields arrive raw and need nothing). A title is read with [`Title::parse`]: control characters and
//!   runs of whitespace become one space, and Unicode direction overrides and zero-width characters
//!   ([`is_invisible`]) are removed, so what is stored is what people see.
//! - **Escaped where it is rendered.** [`escape`] turns text into Slack text: invisible characters removed,
//!   control characters made spaces, `&` `<` `>` escaped (`&amp;` `&lt;` `&gt;`), so `<!channel>`,
//!   `<@U…>` or `<https://…|label>` typed by someone shows as typed and pings or links nobody. The same
//!   escaping is used for `plain_text` objects (Slack decodes the three entities there too).
//! - **Links are built by the bot** ([`link`]) from URLs that pass [`checked_url`] (`http`/`https`, parseable,
//!   no `|`, `<`, `>`); any other URL is shown as escaped text in a code span, which Slack does not link.
//!   Mentions of users and channels are built from ids that look like Slack ids ([`user`], [`channel`]).
//! - **Cut to Slack's limits** with `…` ([`cut`], [`cut_plain`], and the limits below), never in the middle of
//!   an entity or of a link the bot built.

/// A `section` block's `text` (and a `context` element's text).
pub const SECTION_TEXT: usize = 3_000;
/// One of a `section` block's `fields`.
pub const FIELD_TEXT: usize = 2_000;
/// A `header` block's text.
pub const HEADER_TEXT: usize = 150;
/// A button's text.
pub const BUTTON_TEXT: usize = 75;
/// A `plain_text` option's text (static selects).
pub const OPTION_TEXT: usize = 75;
/// A channel topic.
pub const TOPIC: usize = 250;
/// A message's top-level `text`.
pub const MESSAGE_TEXT: usize = 40_000;
/// Blocks in one message.
pub const MESSAGE_BLOCKS: usize = 50;
/// Blocks in one modal.
pub const MODAL_BLOCKS: usize = 100;
/// A title as stored: longer ones are cut (Slack shows at most a section's worth of it anyway).
pub const TITLE_MAX: usize = 4_000;

/// Unicode direction overrides, embeddings, isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
/// U+061C) and zero-width characters (U+200B–U+200D, U+2060, U+FEFF): they make text read otherwise than it is.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200E}' | '\u{200F}' | '\u{061C}'
        | '\u{200B}'..='\u{200D}'
        | '\u{2060}' | '\u{FEFF}')
}

/// Pictographs that a zero-width joiner glues into one emoji (👩‍👩‍👧): the joiner is kept between two of these.
fn is_pictograph(c: char) -> bool {
    matches!(c, '\u{1F000}'..='\u{1FAFF}' | '\u{2600}'..='\u{27BF}' | '\u{FE0F}')
}

/// `s` without [`is_invisible`] characters; a zero-width joiner between two pictographs (an emoji sequence
/// such as 👩‍👩‍👧) stays.
pub fn strip_invisible(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let emoji_joiner = c == '\u{200D}'
            && i > 0
            && chars.get(i + 1).is_some_and(|n| is_pictograph(*n))
            && is_pictograph(chars[i - 1]);
        if !is_invisible(c) || emoji_joiner {
            out.push(c);
        }
    }
    out
}

/// Slash-command text as Slack sends it (`&`, `<`, `>` escaped as `&amp;`, `&lt;`, `&gt;`) → the text typed.
/// Exactly those three entities, once: `&amp;lt;` becomes `&lt;` (what was typed), not `<`.
pub fn decode_slash(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (ch, len) = if tail.starts_with("&amp;") {
            ('&', 5)
        } else if tail.starts_with("&lt;") {
            ('<', 4)
        } else if tail.starts_with("&gt;") {
            ('>', 4)
        } else {
            ('&', 1)
        };
        out.push(ch);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// Untrusted text → Slack text (mrkdwn or `plain_text`): invisible characters removed, control characters
/// (line breaks included) made spaces, `&` `<` `>` escaped. Nothing in the result is a mention, a link or a
/// special command.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in strip_invisible(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// [`escape`] and [`cut`] to `max` characters.
pub fn escape_cut(s: &str, max: usize) -> String {
    cut(&escape(s), max)
}

/// Untrusted text for a non-Slack reader (a pager's summary): invisible characters removed, control characters
/// made spaces, cut to `max` characters with `…`.
pub fn plain(s: &str, max: usize) -> String {
    let clean: String = strip_invisible(s)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cut_plain(&clean, max)
}

/// Cuts text that is not Slack text to at most `max` characters, ending in `…` when anything was cut.
pub fn cut_plain(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push('…');
    }
    out
}

/// Cuts Slack text (already escaped, maybe with links the bot built) to at most `max` characters, ending in `…`
/// when anything was cut. The cut never leaves half an entity (`&am`) or half a link or mention (`<https://…`):
/// it moves back before it.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    if let Some(i) = out.rfind('<') {
        if !out[i..].contains('>') {
            out.truncate(i);
        }
    }
    if let Some(i) = out.rfind('&') {
        if !out[i..].contains(';') {
            out.truncate(i);
        }
    }
    out.push('…');
    out
}

/// The URL if the bot may link it: `http` or `https`, parseable, with a host, and without `|`, `<`, `>` (which
/// would end or relabel a Slack link) or whitespace.
pub fn checked_url(s: &str) -> Option<url::Url> {
    let s = s.trim();
    if s.is_empty()
        || s.len() > 2_000
        || s.chars()
            .any(|c| matches!(c, '|' | '<' | '>') || c.is_whitespace() || c.is_control())
        || s.chars().any(is_invisible)
    {
        return None;
    }
    let u = url::Url::parse(s).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
        .then_some(u)
}

/// A Slack link `<url|label>` the bot builds, when `url` passes [`checked_url`]; otherwise the label followed by
/// the URL as escaped text in a code span (not a link). `label` is untrusted text too.
pub fn link(url: &str, label: &str) -> String {
    match checked_url(url) {
        Some(u) => format!("<{}|{}>", escape(u.as_str()), escape(label)),
        None => format!(
            "{} `{}`",
            escape(label),
            escape(&url.replace('`', "'").chars().take(200).collect::<String>())
        ),
    }
}

fn is_slack_id(s: &str, prefixes: &[char]) -> bool {
    s.len() >= 2
        && s.len() <= 32
        && s.starts_with(prefixes)
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Mentions as Slack sends them in a slash command with `should_escape: true` made readable text: `<@U123|alice>`
/// → `@alice`, `<@U123>` → `@U123`, `<#C123|general>` → `#general`. Anything else (`<!here>`, links) is left as
/// it is; the result is still untrusted text, escaped when rendered.
pub fn readable_mentions(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let sigil = match tail.as_bytes().get(1) {
            Some(b'@') => Some('@'),
            Some(b'#') => Some('#'),
            _ => None,
        };
        let end = tail.find('>');
        match (sigil, end) {
            (Some(sigil), Some(end)) if !tail[2..end].contains('<') => {
                let inner = &tail[2..end];
                let (id, label) = inner.split_once('|').unwrap_or((inner, ""));
                let prefixes: &[char] = if sigil == '@' {
                    &['U', 'W']
                } else {
                    &['C', 'G']
                };
                if is_slack_id(id, prefixes) {
                    out.push(sigil);
                    out.push_str(if label.is_empty() { id } else { label });
                } else {
                    out.push_str(&tail[..=end]);
                }
                rest = &tail[end + 1..];
            }
            _ => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Slack text the bot wrote (mrkdwn) for a reader outside Slack: `<@U1|name>`/`<@U1>` → `@name`/`@U1`,
/// `<#C1|name>` → `#name`, `<!date^…|fallback>` → the fallback, `<!here>` → `@here`, `<url|label>` →
/// `label (url)`, `<url>` → `url`; then `&amp;` `&lt;` `&gt;` decoded. The result is plain text, not Slack text.
pub fn mrkdwn_plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find('>').filter(|&e| !tail[1..e].contains('<')) else {
            out.push('<');
            rest = &tail[1..];
            continue;
        };
        let inner = &tail[1..end];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        if let Some(id) = target
            .strip_prefix('@')
            .or_else(|| target.strip_prefix('#'))
        {
            out.push_str(&target[..1]);
            out.push_str(if label.is_empty() { id } else { label });
        } else if let Some(special) = target.strip_prefix('!') {
            if !label.is_empty() {
                out.push_str(label);
            } else {
                out.push('@');
                out.push_str(special.split('^').next().unwrap_or(special));
            }
        } else if label.is_empty() {
            out.push_str(target);
        } else {
            out.push_str(&format!("{label} ({target})"));
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    decode_slash(&out)
}

/// A mention of user `id` (`<@U…>`) when it looks like a Slack user id; otherwise the id as escaped text.
pub fn user(id: &str) -> String {
    if is_slack_id(id, &['U', 'W']) {
        format!("<@{id}>")
    } else {
        escape(id)
    }
}

/// A link to channel `id` (`<#C…>`) when it looks like a Slack channel id; otherwise the id as escaped text.
pub fn channel(id: &str) -> String {
    if is_slack_id(id, &['C', 'G', 'D']) {
        format!("<#{id}>")
    } else {
        escape(id)
    }
}

/// An incident title as stored: control characters and runs of whitespace are one space, [`is_invisible`]
/// characters are gone, straight or curly quotes around the whole title are dropped, and it is at most
/// [`TITLE_MAX`] characters. The channel slug is made from it, so it is unaffected by what was stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// The title in `s` (already decoded if it came from a slash command); `None` when nothing visible is left.
    pub fn parse(s: &str) -> Option<Title> {
        let words: Vec<&str> = s
            .split(|c: char| c.is_control() || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let joined = strip_invisible(&words.join(" "));
        let collapsed = joined.split_whitespace().collect::<Vec<_>>().join(" ");
        let unquoted = strip_quotes(&collapsed);
        let t = cut_plain(unquoted, TITLE_MAX);
        (!t.is_empty()).then_some(Title(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl PartialEq<&str> for Title {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for Title {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `"db is down"` → `db is down` (straight or curly quotes around the whole title).
fn strip_quotes(s: &str) -> &str {
    let s = s.trim();
    for (open, close) in [('"', '"'), ('“', '”'), ('\'', '\'')] {
        if let Some(inner) = s.strip_prefix(open).and_then(|x| x.strip_suffix(close)) {
            return inner.trim();
        }
    }
    s
}

/// Every Slack control sequence a hostile string may carry, raw and pre-escaped.
#[cfg(test)]
pub(crate) const HOSTILE: &[&str] = &[
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S123>",
    "<!subteam^S123|@oncall>",
    "<@U123>",
    "<@U123|alice>",
    "<#C123>",
    "<#C123|general>",
    "<https://evil.example|Join war room>",
    "<https://evil.example>",
    "<mailto:x@evil.example|mail>",
    "&lt;!channel&gt;",
    "&amp;lt;!here&amp;gt;",
    "@here",
    "@channel",
    "\u{202E}gnp.exe",
    "\u{2066}isolate\u{2069}",
    "zero\u{200B}width\u{FEFF}",
    "<!date^1^{date}|x>",
    "a\nb\r\n<!here>",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escaping_neutralises_every_control_sequence() {
        for h in HOSTILE {
            let e = escape(h);
            assert!(!e.contains('<') && !e.contains('>'), "{h:?} → {e:?}");
            assert!(!e.chars().any(is_invisible), "{h:?} → {e:?}");
            assert!(!e.chars().any(char::is_control), "{h:?} → {e:?}");
        }
        assert_eq!(escape("<!channel> & co"), "&lt;!channel&gt; &amp; co");
        assert_eq!(escape("&lt;!here&gt;"), "&amp;lt;!here&amp;gt;");
    }

    #[test]
    fn slash_text_is_decoded_exactly_once() {
        assert_eq!(
            decode_slash("&lt;!channel&gt; A &amp; B"),
            "<!channel> A & B"
        );
        assert_eq!(decode_slash("&amp;lt;"), "&lt;");
        assert_eq!(decode_slash("AT&T & &quot; &"), "AT&T & &quot; &");
        // Decode then escape: what Slack sent, not `&amp;amp;`.
        assert_eq!(escape(&decode_slash("A &amp; B")), "A &amp; B");
    }

    #[test]
    fn invisible_characters_are_stripped_but_emoji_sequences_kept() {
        assert_eq!(strip_invisible("\u{202E}abc\u{202C}"), "abc");
        assert_eq!(strip_invisible("a\u{200B}b\u{2060}c\u{FEFF}"), "abc");
        assert_eq!(
            strip_invisible("\u{200F}مدفوعات\u{200F}\u{061C}"),
            "مدفوعات"
        );
        assert_eq!(
            strip_invisible("👩\u{200D}👩\u{200D}👧"),
            "👩\u{200D}👩\u{200D}👧"
        );
        assert_eq!(strip_invisible("a\u{200D}b"), "ab");
    }

    #[test]
    fn titles_are_stored_clean() {
        let t = Title::parse("  \u{202E}Card\u{200B} payments\u{2066}   failing\n ").unwrap();
        assert_eq!(t.as_str(), "Card payments failing");
        assert_eq!(Title::parse("\u{200B}\u{202E} \u{FEFF}"), None);
        assert_eq!(
            Title::parse("\"db is down\"").unwrap().as_str(),
            "db is down"
        );
        assert_eq!(
            Title::parse(&"x".repeat(5_000))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            TITLE_MAX
        );
    }

    #[test]
    fn only_checked_urls_become_links() {
        assert_eq!(
            link("https://ci.example/run?a=1&b=2", "abc1234"),
            "<https://ci.example/run?a=1&amp;b=2|abc1234>"
        );
        for bad in [
            "https://evil.example|Join war room",
            "<https://evil.example>",
            "javascript:alert(1)",
            "ftp://files.example/x",
            "https://evil.example/a b",
            "not a url",
            "https://",
            "https://evil.example/\u{202E}x",
        ] {
            let l = link(bad, "label");
            assert!(!l.contains('<') && !l.contains('>'), "{bad:?} → {l}");
            assert!(l.starts_with("label `"), "{bad:?} → {l}");
        }
    }

    #[test]
    fn mentions_slack_sent_become_readable_text() {
        assert_eq!(
            readable_mentions("ask <@U0ALICE|alice> in <#C0OPS|ops> <@W0BOB>"),
            "ask @alice in #ops @W0BOB"
        );
        assert_eq!(
            readable_mentions("<!here> <@x|y> a<b >"),
            "<!here> <@x|y> a<b >"
        );
        assert_eq!(readable_mentions("<@U1|é> <"), "@é <");
    }

    #[test]
    fn mentions_are_built_only_from_ids() {
        assert_eq!(user("U0DECLARER"), "<@U0DECLARER>");
        assert_eq!(user("U1|x><!channel"), "U1|x&gt;&lt;!channel");
        assert_eq!(channel("C0123"), "<#C0123>");
        assert_eq!(channel("!here"), "!here");
    }

    #[test]
    fn cuts_keep_entities_and_links_whole() {
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("ab &amp; cd", 6), "ab …");
        assert_eq!(cut("see <https://x.example|here> now", 12), "see …");
        assert_eq!(cut_plain("a & b c", 4), "a &…");
        assert_eq!(cut("", 0), "");
    }

    proptest! {
        #[test]
        fn escaped_text_never_carries_markup(s in any::<String>(), pick in 0usize..21, max in 1usize..400) {
            let text = format!("{s}{}{s}", HOSTILE[pick % HOSTILE.len()]);
            let e = escape_cut(&text, max);
            prop_assert!(e.chars().count() <= max);
            prop_assert!(!e.contains('<') && !e.contains('>'));
            prop_assert!(!e.chars().any(is_invisible));
            prop_assert!(!e.chars().any(char::is_control));
            // Every `&` starts one of the three entities.
            for (i, _) in e.match_indices('&') {
                let rest = &e[i..];
                prop_assert!(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"), "{e:?}");
            }
        }

        #[test]
        fn decoding_then_escaping_gives_back_slack_text(s in "[a-z &<>;!@]{0,40}") {
            // Slack escapes what was typed; the bot decodes once and escapes once: the same text again.
            let slack = s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            prop_assert_eq!(escape(&decode_slash(&slack)), slack);
        }

        #[test]
        fn titles_never_keep_invisible_or_control_characters(s in any::<String>()) {
            if let Some(t) = Title::parse(&s) {
                prop_assert!(!t.as_str().chars().any(|c| c.is_control()));
                let zwj = '\u{200D}';
                prop_assert!(!t.as_str().chars().any(|c| is_invisible(c) && c != zwj), "{:?}", t);
                prop_assert!(t.as_str().chars().count() <= TITLE_MAX);
            }
        }
    }
}
