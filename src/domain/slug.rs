//! Slack channel names for incident war rooms: `inc-42-db-is-down` (lowercase, `a-z0-9-_`, at most 80 chars).

/// Slack's limit on channel name length.
pub const MAX_CHANNEL_NAME: usize = 80;

/// Makes a slug: ASCII letters lowercased, digits, `-` and `_` kept; whitespace and punctuation become `-`;
/// apostrophes and anything non-ASCII alphanumeric are dropped (nothing is transliterated); runs of `-` collapse
/// and the ends are trimmed.
pub fn slugify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let mapped = if c.is_ascii_alphanumeric() || c == '_' {
            Some(c.to_ascii_lowercase())
        } else if matches!(c, '\'' | '’' | '‘' | '`') || c.is_alphanumeric() {
            None
        } else {
            Some('-')
        };
        if let Some(m) = mapped {
            if !(m == '-' && (out.is_empty() || out.ends_with('-'))) {
                out.push(m);
            }
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Cuts `s` (ASCII after [`slugify`]) to at most `max` bytes on a char boundary and trims trailing `-`.
/// Not [`super::text::cut`]: a channel name takes no `…`.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end_matches('-')
}

/// The war-room channel name: `channel_name("inc", 42, "DB is down!")` is `inc-42-db-is-down`. A title with
/// nothing usable gives `inc-42`. An empty or unusable prefix falls back to `inc`.
pub fn channel_name(prefix: &str, number: i64, title: &str) -> String {
    let prefix = match slugify(prefix) {
        p if p.is_empty() => "inc".to_string(),
        p => p,
    };
    let base = format!("{}-{}", cut(&prefix, 40), number.unsigned_abs());
    let slug = slugify(title);
    let room = MAX_CHANNEL_NAME.saturating_sub(base.len() + 1);
    let slug = cut(&slug, room);
    if slug.is_empty() {
        base
    } else {
        format!("{base}-{slug}")
    }
}

/// `name-2`, cutting `name` so the result stays within 80 chars (for Slack's `name_taken`).
pub fn with_suffix(name: &str, n: u32) -> String {
    let suffix = format!("-{n}");
    let stem = cut(name, MAX_CHANNEL_NAME - suffix.len());
    if stem.is_empty() {
        n.to_string()
    } else {
        format!("{stem}{suffix}")
    }
}

/// `true` if Slack would accept `name` as a channel name and it is tidy (no leading/trailing/double `-`).
pub fn is_valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn invisible_characters_stripped_from_a_title_leave_its_slug_alone() {
        let typed = "\u{202E}Card\u{200B} pay\u{2066}ments\u{2069} failing\u{FEFF}";
        let stored = crate::domain::text::Title::parse(typed).unwrap();
        assert_eq!(stored.as_str(), "Card payments failing");
        assert_eq!(
            channel_name("inc", 7, stored.as_str()),
            "inc-7-card-payments-failing"
        );
    }

    #[test]
    fn titles_become_lowercase_hyphenated_slugs() {
        assert_eq!(channel_name("inc", 42, "DB is down"), "inc-42-db-is-down");
        assert_eq!(
            channel_name("inc", 7, "  Checkout: 500s / payments!!  "),
            "inc-7-checkout-500s-payments"
        );
        assert_eq!(channel_name("inc", 3, "can't log_in"), "inc-3-cant-log_in");
    }

    #[test]
    fn non_ascii_letters_are_dropped_not_transliterated() {
        assert_eq!(
            channel_name("inc", 1, "Café Zürich 🔥 down"),
            "inc-1-caf-zrich-down"
        );
        assert_eq!(channel_name("inc", 1, "日本語 outage"), "inc-1-outage");
    }

    #[test]
    fn a_title_of_only_symbols_gives_just_prefix_and_number() {
        assert_eq!(channel_name("inc", 42, "!!! ??? 🔥🔥"), "inc-42");
        assert_eq!(channel_name("inc", 42, ""), "inc-42");
    }

    #[test]
    fn long_titles_are_cut_to_80_chars_without_a_trailing_hyphen() {
        let title = "a".repeat(70) + " bbbbbbbbbbbbbbbbbbbbbb";
        let name = channel_name("inc", 12345, &title);
        assert!(name.len() <= 80);
        assert!(!name.ends_with('-'));
        assert!(name.starts_with("inc-12345-aaaa"));
        // The cut lands right after the hyphen: "inc-12345-" (10) + 70 a's = 80, the hyphen is trimmed.
        assert_eq!(name, format!("inc-12345-{}", "a".repeat(70)));
    }

    #[test]
    fn a_strange_prefix_is_cleaned_up() {
        assert_eq!(channel_name("INC", 5, "x"), "inc-5-x");
        assert_eq!(channel_name("", 5, "x"), "inc-5-x");
        assert_eq!(channel_name("sev 1", 5, "x"), "sev-1-5-x");
    }

    #[test]
    fn suffixes_keep_the_name_within_80_chars() {
        assert_eq!(with_suffix("inc-42-db-is-down", 2), "inc-42-db-is-down-2");
        let long = channel_name("inc", 1, &"x".repeat(200));
        assert_eq!(long.len(), 80);
        let s = with_suffix(&long, 12);
        assert_eq!(s.len(), 80);
        assert!(s.ends_with("-12"));
        // Cutting 80 chars to 78 would leave a trailing hyphen: it goes.
        let hyphen_at_cut = format!("{}-{}", "a".repeat(77), "b".repeat(2));
        assert_eq!(
            with_suffix(&hyphen_at_cut, 2),
            format!("{}-2", "a".repeat(77))
        );
    }

    proptest! {
        #[test]
        fn any_title_gives_a_valid_slack_channel_name(title in any::<String>(), number in 1i64..10_000_000) {
            let name = channel_name("inc", number, &title);
            prop_assert!(is_valid_channel_name(&name), "{name:?}");
            let expected_prefix = format!("inc-{number}");
            prop_assert!(name.starts_with(&expected_prefix));
            let suffixed = with_suffix(&name, 99);
            prop_assert!(is_valid_channel_name(&suffixed), "{suffixed:?}");
        }

        #[test]
        fn ascii_word_titles_keep_every_word_when_short(words in proptest::collection::vec("[a-z0-9]{1,8}", 1..5)) {
            let name = channel_name("inc", 9, &words.join(" "));
            prop_assert_eq!(name, format!("inc-9-{}", words.join("-")));
        }
    }
}
