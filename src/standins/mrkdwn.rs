//! Slack's mrkdwn and Block Kit, rendered for a reader outside Slack: terminal text (bold/italic/strike as
//! ANSI when asked, plain otherwise) for `incident-bot demo`, and HTML for `demo --html`. Pure functions, used
//! only by the demo.
//!
//! What is rendered: `*bold*`, `_italic_`, `~strike~`, `` `code` `` and ```` ```pre``` ````; `<@U123>` as
//! `@name` (names from the caller), `<#C123|name>` as `#name`, `<!here>` as `@here`, `<!date^…|fallback>` as its
//! fallback, `<url|label>` as a link; `&lt;`, `&gt;` and `&amp;` unescaped. In HTML every piece of text is
//! escaped again, and only `http(s):` and `mailto:` links become `<a>`; images are shown as their alt text, so
//! the page fetches nothing.

use serde_json::Value;

/// Bold, italic and strike-through, as they apply to one piece of text.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub bold: bool,
    pub italic: bool,
    pub strike: bool,
}

/// What a piece of text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Text,
    Code,
    Mention,
    /// A link to this URL; the piece's text is its label.
    Link(String),
}

/// One run of text with one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub text: String,
    pub style: Style,
    pub kind: Kind,
}

/// A display name for a user id (`U…`) or a channel id (`C…`); empty when unknown.
pub type Names<'a> = &'a dyn Fn(&str) -> String;

/// `&lt;`, `&gt;` and `&amp;` back to `<`, `>` and `&`.
pub fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Text made safe for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn is_mark(c: char) -> bool {
    matches!(c, '*' | '_' | '~')
}

fn set(style: &mut Style, mark: char, on: bool) {
    match mark {
        '*' => style.bold = on,
        '_' => style.italic = on,
        _ => style.strike = on,
    }
}

fn get(style: &Style, mark: char) -> bool {
    match mark {
        '*' => style.bold,
        '_' => style.italic,
        _ => style.strike,
    }
}

/// Whether a closing `mark` follows on the same line: preceded by a non-space, followed by a non-word.
fn closes_later(chars: &[char], from: usize, mark: char) -> bool {
    let mut i = from + 1;
    while i < chars.len() && chars[i] != '\n' {
        if chars[i] == mark
            && i > from + 1
            && !chars[i - 1].is_whitespace()
            && chars.get(i + 1).is_none_or(|n| !n.is_alphanumeric())
        {
            return true;
        }
        i += 1;
    }
    false
}

/// Splits mrkdwn into styled runs.
pub fn parse(text: &str, names: Names) -> Vec<Seg> {
    let chars: Vec<char> = text.chars().collect();
    let mut segs: Vec<Seg> = Vec::new();
    let mut style = Style::default();
    let mut buf = String::new();
    let flush = |buf: &mut String, segs: &mut Vec<Seg>, style: Style| {
        if !buf.is_empty() {
            segs.push(Seg {
                text: unescape(buf),
                style,
                kind: Kind::Text,
            });
            buf.clear();
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            let fence = chars[i..].starts_with(&['`', '`', '`']);
            let width = if fence { 3 } else { 1 };
            let end = (i + width..chars.len()).find(|&j| {
                if fence {
                    chars[j..].starts_with(&['`', '`', '`'])
                } else {
                    chars[j] == '`' || chars[j] == '\n'
                }
            });
            if let Some(j) = end.filter(|&j| j > i + width && chars[j] == '`') {
                flush(&mut buf, &mut segs, style);
                let inner: String = chars[i + width..j].iter().collect();
                segs.push(Seg {
                    text: tokens_as_text(inner.trim_matches('\n'), names),
                    style,
                    kind: Kind::Code,
                });
                i = j + width;
                continue;
            }
        } else if c == '<' {
            if let Some(len) = chars[i..].iter().position(|&x| x == '>') {
                let inner: String = chars[i + 1..i + len].iter().collect();
                flush(&mut buf, &mut segs, style);
                segs.push(token(&inner, style, names));
                i += len + 1;
                continue;
            }
        } else if is_mark(c) {
            let before_ok = i == 0 || !chars[i - 1].is_alphanumeric();
            let after = chars.get(i + 1);
            if !get(&style, c)
                && before_ok
                && after.is_some_and(|a| !a.is_whitespace())
                && closes_later(&chars, i, c)
            {
                flush(&mut buf, &mut segs, style);
                set(&mut style, c, true);
                i += 1;
                continue;
            }
            if get(&style, c)
                && i > 0
                && !chars[i - 1].is_whitespace()
                && after.is_none_or(|a| !a.is_alphanumeric())
            {
                flush(&mut buf, &mut segs, style);
                set(&mut style, c, false);
                i += 1;
                continue;
            }
        }
        buf.push(c);
        i += 1;
    }
    flush(&mut buf, &mut segs, style);
    segs
}

/// Code as Slack shows it: no formatting, but mentions and links as their names and labels.
fn tokens_as_text(code: &str, names: Names) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(i) = rest.find('<') {
        out.push_str(&unescape(&rest[..i]));
        let tail = &rest[i..];
        match tail.find('>') {
            Some(end) => {
                out.push_str(&token(&tail[1..end], Style::default(), names).text);
                rest = &tail[end + 1..];
            }
            None => {
                out.push_str(&unescape(tail));
                rest = "";
            }
        }
    }
    out.push_str(&unescape(rest));
    out
}

/// One `<…>` token.
fn token(inner: &str, style: Style, names: Names) -> Seg {
    let (target, label) = match inner.split_once('|') {
        Some((t, l)) => (t, Some(unescape(l))),
        None => (inner, None),
    };
    let seg = |text: String, kind: Kind| Seg { text, style, kind };
    if let Some(user) = target.strip_prefix('@') {
        let name = names(user);
        let name = if name.is_empty() {
            label.unwrap_or_else(|| user.to_string())
        } else {
            name
        };
        return seg(format!("@{}", name.trim_start_matches('@')), Kind::Mention);
    }
    if let Some(channel) = target.strip_prefix('#') {
        let name = label
            .or_else(|| Some(names(channel)).filter(|n| !n.is_empty()))
            .unwrap_or_else(|| channel.to_string());
        return seg(format!("#{name}"), Kind::Mention);
    }
    if let Some(special) = target.strip_prefix('!') {
        let text = match label {
            Some(l) => l,
            None => format!("@{}", special.split('^').next().unwrap_or_default()),
        };
        let kind = if special.starts_with("date^") {
            Kind::Text
        } else {
            Kind::Mention
        };
        return seg(text, kind);
    }
    let url = unescape(target);
    seg(label.unwrap_or_else(|| url.clone()), Kind::Link(url))
}

const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn ansi_start(style: Style, extra: &str) -> String {
    let mut s = String::new();
    if style.bold {
        s.push_str(BOLD);
    }
    if style.italic {
        s.push_str("\x1b[3m");
    }
    if style.strike {
        s.push_str("\x1b[9m");
    }
    s.push_str(extra);
    s
}

/// Runs as terminal text: styles as ANSI escapes when `ansi`, plain otherwise; links as `label (url)`.
pub fn segs_to_terminal(segs: &[Seg], ansi: bool) -> String {
    let mut out = String::new();
    for s in segs {
        let text = match &s.kind {
            Kind::Link(url) if *url != s.text && !url.ends_with(&s.text) => {
                format!("{} ({url})", s.text)
            }
            _ => s.text.clone(),
        };
        let extra = match (&s.kind, ansi) {
            (Kind::Mention, true) => "\x1b[36m",
            (Kind::Link(_), true) => "\x1b[4m",
            _ => "",
        };
        let start = if ansi {
            ansi_start(s.style, extra)
        } else {
            String::new()
        };
        if start.is_empty() {
            out.push_str(&text);
        } else {
            out.push_str(&start);
            out.push_str(&text);
            out.push_str(RESET);
        }
    }
    out
}

/// mrkdwn as terminal text.
pub fn to_terminal(text: &str, names: Names, ansi: bool) -> String {
    segs_to_terminal(&parse(text, names), ansi)
}

/// Whether a URL may become a link in the page.
fn safe_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
}

/// Runs as HTML; every piece of text escaped.
pub fn segs_to_html(segs: &[Seg]) -> String {
    let mut out = String::new();
    let mut after_block = false;
    for s in segs {
        // A code block is a block of its own: the line break after it is not a blank line.
        let own = if after_block {
            s.text.strip_prefix('\n').unwrap_or(&s.text)
        } else {
            &s.text
        };
        after_block = s.kind == Kind::Code && s.text.contains('\n');
        let text = html_escape(own).replace('\n', "<br>");
        let mut inner = match &s.kind {
            Kind::Text => text,
            Kind::Code if s.text.contains('\n') => {
                format!("<code class=\"pre\">{}</code>", html_escape(&s.text))
            }
            Kind::Code => format!("<code>{text}</code>"),
            Kind::Mention => format!("<span class=\"mention\">{text}</span>"),
            Kind::Link(url) if safe_url(url) => format!(
                "<a href=\"{}\" rel=\"noopener noreferrer\">{text}</a>",
                html_escape(url)
            ),
            Kind::Link(_) => text,
        };
        if s.style.strike {
            inner = format!("<s>{inner}</s>");
        }
        if s.style.italic {
            inner = format!("<i>{inner}</i>");
        }
        if s.style.bold {
            inner = format!("<b>{inner}</b>");
        }
        out.push_str(&inner);
    }
    out
}

/// mrkdwn as HTML.
pub fn to_html(text: &str, names: Names) -> String {
    segs_to_html(&parse(text, names))
}

// ---------------------------------------------------------------------------------------------------------
// Block Kit
// ---------------------------------------------------------------------------------------------------------

/// A text object (`mrkdwn` or `plain_text`) or a bare string as runs: only mrkdwn is parsed.
fn text_segs(v: &Value, names: Names) -> Vec<Seg> {
    match v {
        Value::String(s) => parse(s, names),
        Value::Object(o) => {
            let text = o.get("text").and_then(Value::as_str).unwrap_or_default();
            if o.get("type").and_then(Value::as_str) == Some("plain_text") {
                vec![Seg {
                    text: text.to_string(),
                    style: Style::default(),
                    kind: Kind::Text,
                }]
            } else {
                parse(text, names)
            }
        }
        _ => Vec::new(),
    }
}

fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.get("text").map(plain_text).unwrap_or_default(),
        _ => String::new(),
    }
}

fn blocks_of(blocks: &Value) -> Vec<&Value> {
    match blocks {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![blocks],
        _ => Vec::new(),
    }
}

/// `rich_text` elements (as users' messages carry them) as runs.
fn rich_segs(v: &Value, names: Names, out: &mut Vec<Seg>) {
    match v {
        Value::Array(items) => items.iter().for_each(|e| rich_segs(e, names, out)),
        Value::Object(o) => {
            let st = o.get("style");
            let flag = |k: &str| {
                st.and_then(|s| s.get(k))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            let style = Style {
                bold: flag("bold"),
                italic: flag("italic"),
                strike: flag("strike"),
            };
            let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
            let mut push = |text: String, kind: Kind| out.push(Seg { text, style, kind });
            match kind {
                "text" => {
                    let text = o.get("text").and_then(Value::as_str).unwrap_or_default();
                    let k = if flag("code") { Kind::Code } else { Kind::Text };
                    push(text.to_string(), k);
                }
                "link" => {
                    let url = o.get("url").and_then(Value::as_str).unwrap_or_default();
                    let text = o.get("text").and_then(Value::as_str).unwrap_or(url);
                    push(text.to_string(), Kind::Link(url.to_string()));
                }
                "user" => {
                    let id = o.get("user_id").and_then(Value::as_str).unwrap_or_default();
                    push(format!("@{}", names(id)), Kind::Mention);
                }
                "channel" => {
                    let id = o
                        .get("channel_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    push(format!("#{id}"), Kind::Mention);
                }
                "emoji" => {
                    let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
                    push(format!(":{name}:"), Kind::Text);
                }
                _ => {
                    if let Some(e) = o.get("elements") {
                        rich_segs(e, names, out);
                        if matches!(
                            kind,
                            "rich_text_section" | "rich_text_preformatted" | "rich_text_quote"
                        ) {
                            out.push(Seg {
                                text: "\n".into(),
                                style: Style::default(),
                                kind: Kind::Text,
                            });
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// An interactive element as a short label: `[Button]`, `[Pick one ▾]`.
fn element_label(e: &Value) -> String {
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "button" => e.get("text").map(plain_text).unwrap_or_default(),
        "overflow" => "⋯".into(),
        k if k.ends_with("_select") || k == "datepicker" || k == "timepicker" => {
            let label = e
                .get("placeholder")
                .map(plain_text)
                .unwrap_or_else(|| k.to_string());
            format!("{label} ▾")
        }
        k => k.to_string(),
    }
}

/// Block Kit blocks as terminal lines: headers in bold, section text and fields, context lines joined by
/// ` · `, buttons as `[Label]`, dividers, images as their alt text.
pub fn blocks_to_terminal(blocks: &Value, names: Names, ansi: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    let render = |segs: &[Seg]| segs_to_terminal(segs, ansi);
    for b in blocks_of(blocks) {
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "header" => {
                let t = b.get("text").map(plain_text).unwrap_or_default();
                lines.push(if ansi { format!("{BOLD}{t}{RESET}") } else { t });
            }
            "section" => {
                let mut line = b
                    .get("text")
                    .map(|t| render(&text_segs(t, names)))
                    .unwrap_or_default();
                if let Some(acc) = b.get("accessory") {
                    let label = if acc.get("type").and_then(Value::as_str) == Some("image") {
                        format!(
                            "[image: {}]",
                            acc.get("alt_text").map(plain_text).unwrap_or_default()
                        )
                    } else {
                        format!("[{}]", element_label(acc))
                    };
                    line = if line.is_empty() {
                        label
                    } else {
                        format!("{line}  {label}")
                    };
                }
                if !line.is_empty() {
                    lines.push(line);
                }
                for f in b
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let t = render(&text_segs(f, names));
                    lines.push(format!("  • {}", t.lines().collect::<Vec<_>>().join(" ")));
                }
            }
            "context" => {
                let parts: Vec<String> = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        if e.get("type").and_then(Value::as_str) == Some("image") {
                            String::new()
                        } else {
                            render(&text_segs(e, names))
                        }
                    })
                    .filter(|s| !s.is_empty())
                    .collect();
                lines.push(parts.join(" · "));
            }
            "actions" => {
                let parts: Vec<String> = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| format!("[{}]", element_label(e)))
                    .collect();
                lines.push(parts.join(" "));
            }
            "divider" => lines.push("─".repeat(40)),
            "image" => lines.push(format!(
                "[image: {}]",
                b.get("alt_text").map(plain_text).unwrap_or_default()
            )),
            "rich_text" => {
                let mut segs = Vec::new();
                rich_segs(b.get("elements").unwrap_or(&Value::Null), names, &mut segs);
                lines.push(render(&segs).trim_end().to_string());
            }
            "markdown" => lines.push(render(&parse(
                b.get("text").and_then(Value::as_str).unwrap_or_default(),
                names,
            ))),
            "" => {}
            k => lines.push(format!("[{k}]")),
        }
    }
    lines.join("\n")
}

/// Block Kit blocks as HTML, Slack's layout in the page's CSS classes (`blk-…`, `btn`).
pub fn blocks_to_html(blocks: &Value, names: Names) -> String {
    let mut out = String::new();
    for b in blocks_of(blocks) {
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "header" => out.push_str(&format!(
                "<div class=\"blk-header\">{}</div>",
                html_escape(&b.get("text").map(plain_text).unwrap_or_default())
            )),
            "section" => {
                out.push_str("<div class=\"blk-section\"><div class=\"blk-main\">");
                if let Some(t) = b.get("text") {
                    out.push_str(&format!(
                        "<div class=\"blk-text\">{}</div>",
                        segs_to_html(&text_segs(t, names))
                    ));
                }
                let fields: Vec<&Value> = b
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .collect();
                if !fields.is_empty() {
                    out.push_str("<div class=\"blk-fields\">");
                    for f in fields {
                        out.push_str(&format!(
                            "<div class=\"blk-field\">{}</div>",
                            segs_to_html(&text_segs(f, names))
                        ));
                    }
                    out.push_str("</div>");
                }
                out.push_str("</div>");
                if let Some(acc) = b.get("accessory") {
                    out.push_str(&element_html(acc));
                }
                out.push_str("</div>");
            }
            "context" => {
                out.push_str("<div class=\"blk-context\">");
                for e in b
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if e.get("type").and_then(Value::as_str) == Some("image") {
                        continue;
                    }
                    out.push_str(&format!(
                        "<span>{}</span>",
                        segs_to_html(&text_segs(e, names))
                    ));
                }
                out.push_str("</div>");
            }
            "actions" => {
                out.push_str("<div class=\"blk-actions\">");
                for e in b
                    .get("elements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push_str(&element_html(e));
                }
                out.push_str("</div>");
            }
            "divider" => out.push_str("<hr class=\"blk-divider\">"),
            "image" => out.push_str(&format!(
                "<div class=\"blk-image\">[image: {}]</div>",
                html_escape(&b.get("alt_text").map(plain_text).unwrap_or_default())
            )),
            "rich_text" => {
                let mut segs = Vec::new();
                rich_segs(b.get("elements").unwrap_or(&Value::Null), names, &mut segs);
                while segs.last().is_some_and(|s| s.text == "\n") {
                    segs.pop();
                }
                out.push_str(&format!(
                    "<div class=\"blk-text\">{}</div>",
                    segs_to_html(&segs)
                ));
            }
            "markdown" => out.push_str(&format!(
                "<div class=\"blk-text\">{}</div>",
                to_html(
                    b.get("text").and_then(Value::as_str).unwrap_or_default(),
                    names
                )
            )),
            "" => {}
            k => out.push_str(&format!(
                "<div class=\"blk-other\">[{}]</div>",
                html_escape(k)
            )),
        }
    }
    out
}

fn element_html(e: &Value) -> String {
    let label = html_escape(&element_label(e));
    match e.get("type").and_then(Value::as_str).unwrap_or("") {
        "button" => {
            let class = match e.get("style").and_then(Value::as_str) {
                Some("primary") => "btn primary",
                Some("danger") => "btn danger",
                _ => "btn",
            };
            format!("<span class=\"{class}\">{label}</span>")
        }
        "image" => format!(
            "<span class=\"blk-image\">[image: {}]</span>",
            html_escape(&e.get("alt_text").map(plain_text).unwrap_or_default())
        ),
        _ => format!("<span class=\"btn select\">{label}</span>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(id: &str) -> String {
        match id {
            "U1" => "dana".into(),
            "C7" => "inc-7".into(),
            _ => String::new(),
        }
    }

    fn term(s: &str) -> String {
        to_terminal(s, &names, false)
    }

    #[test]
    fn marks_are_dropped_in_plain_text_and_become_ansi_on_a_tty() {
        assert_eq!(term("*Status* Investigating"), "Status Investigating");
        assert_eq!(
            to_terminal("*Status* now", &names, true),
            "\x1b[1mStatus\x1b[0m now"
        );
        assert_eq!(
            term("_nobody yet — click *Take command*_"),
            "nobody yet — click Take command"
        );
        assert_eq!(term("~gone~ and `a*b*c`"), "gone and a*b*c");
        assert_eq!(term("```\nby <@U1> &lt;x&gt;\n```"), "by @dana <x>");
    }

    #[test]
    fn marks_inside_words_and_unclosed_ones_stay() {
        assert_eq!(term("snake_case_name"), "snake_case_name");
        assert_eq!(term("2 * 3 = 6"), "2 * 3 = 6");
        assert_eq!(term("*unclosed"), "*unclosed");
        assert_eq!(term("a * b *"), "a * b *");
    }

    #[test]
    fn mentions_links_dates_and_entities() {
        assert_eq!(term("by <@U1>"), "by @dana");
        assert_eq!(term("by <@U9|someone>"), "by @someone");
        assert_eq!(term("<#C1|incidents> <!here>"), "#incidents @here");
        assert_eq!(term("<#C7> <#C8>"), "#inc-7 #C8");
        assert_eq!(
            term("📖 <https://r.example/p|Runbook>"),
            "📖 Runbook (https://r.example/p)"
        );
        assert_eq!(term("<https://r.example/p>"), "https://r.example/p");
        assert_eq!(
            term("at <!date^1764081240^{time}|14:34 UTC>"),
            "at 14:34 UTC"
        );
        assert_eq!(term("a &lt;b&gt; &amp; c"), "a <b> & c");
        assert_eq!(term("broken <tag"), "broken <tag");
    }

    #[test]
    fn html_escapes_all_text_and_links_only_web_urls() {
        let h = to_html(
            "*&lt;script&gt;x* <javascript:alert(1)|click> <https://a.example/?q=\"x\"|ok>",
            &names,
        );
        assert!(!h.contains("<script"), "{h}");
        assert!(h.contains("<b>&lt;script&gt;x</b>"), "{h}");
        assert!(!h.contains("href=\"javascript"), "{h}");
        assert!(
            h.contains("href=\"https://a.example/?q=&quot;x&quot;\""),
            "{h}"
        );
        let names_evil = |_: &str| "<img src=x>".to_string();
        assert!(to_html("<@U1>", &names_evil).contains("@&lt;img src=x&gt;"));
    }

    #[test]
    fn blocks_render_headers_fields_context_and_buttons() {
        let blocks = json!([
            {"type": "header", "text": {"type": "plain_text", "text": "INC-1 · *not bold*"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Severity*\nP2"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "by <@U1>"}, {"type": "plain_text", "text": "x"}]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Resolved"}, "style": "primary"}]}
        ]);
        assert_eq!(
            blocks_to_terminal(&blocks, &names, false),
            "INC-1 · *not bold*\n  • Severity P2\nby @dana · x\n[Resolved]"
        );
        let h = blocks_to_html(&blocks, &names);
        assert!(
            h.contains("<div class=\"blk-header\">INC-1 · *not bold*</div>"),
            "{h}"
        );
        assert!(h.contains("<b>Severity</b><br>P2"), "{h}");
        assert!(
            h.contains("<span class=\"btn primary\">Resolved</span>"),
            "{h}"
        );
    }

    #[test]
    fn rich_text_renders_mentions_and_styles() {
        let blocks = json!([{"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": "hi "}, {"type": "user", "user_id": "U1"},
            {"type": "text", "text": " <b>", "style": {"bold": true}}
        ]}]}]);
        assert_eq!(blocks_to_terminal(&blocks, &names, false), "hi @dana <b>");
        assert!(blocks_to_html(&blocks, &names).contains("<b> &lt;b&gt;</b>"));
    }
}
