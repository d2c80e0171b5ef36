//! The documentation's links lead somewhere: every relative link in README.md and docs/*.md names a file or
//! directory of the repository, and a `#section` names a heading of the page it points to (GitHub's anchors).
//! Links to the web (`https:`, `mailto:`) are not followed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Pages written on other branches, linked ahead of their merge. Empty it as they land: the test fails when a
/// path listed here exists, so the list cannot outlive its reason.
const PENDING: &[&str] = &[];

/// README.md and every Markdown page under docs/.
fn pages() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(ROOT).join("README.md")];
    let mut dirs = vec![PathBuf::from(ROOT).join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("docs/ exists") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The text outside fenced code blocks and inline code spans, where a `](` is a link.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of `[text](target)` and `![alt](target)` links.
fn links(text: &str) -> Vec<String> {
    let prose = prose(text);
    let mut out = Vec::new();
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            out.push(target.to_string());
            rest = &rest[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped (but `-` and `_`), spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Every broken link of `page`, as "page: target (why)".
fn broken_links(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page.strip_prefix(ROOT).unwrap().display().to_string();
    let mut broken = Vec::new();
    for target in links(&text) {
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let file = if path.is_empty() {
            page.to_path_buf()
        } else {
            page.parent().unwrap().join(path)
        };
        let rel = normalise(&file);
        if PENDING.contains(&rel.as_str()) {
            continue;
        }
        if !file.exists() {
            broken.push(format!("{name}: {target} (no such file)"));
            continue;
        }
        if let Some(anchor) = anchor {
            if file.extension().is_some_and(|e| e == "md") {
                let headings = anchors(&std::fs::read_to_string(&file).unwrap());
                if !headings.contains(anchor) {
                    broken.push(format!("{name}: {target} (no heading with that anchor)"));
                }
            }
        }
    }
    broken
}

/// `file` relative to the repository root, `..` resolved lexically, with `/` separators.
fn normalise(file: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in file.strip_prefix(ROOT).unwrap_or(file).components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let pages = pages();
    assert!(pages.len() > 1, "README.md and docs/*.md");
    let broken: Vec<String> = pages.iter().flat_map(|p| broken_links(p)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn pending_pages_are_still_missing() {
    let landed: Vec<&&str> = PENDING
        .iter()
        .filter(|p| Path::new(ROOT).join(p).exists())
        .collect();
    assert!(
        landed.is_empty(),
        "these now exist: take them out of PENDING in tests/api/doc_links.rs so their links are checked: {landed:?}"
    );
}

#[test]
fn anchors_follow_github() {
    assert_eq!(slug(" `/incident` commands"), "incident-commands");
    assert_eq!(
        slug("Try it in your workspace in 10 minutes"),
        "try-it-in-your-workspace-in-10-minutes"
    );
    assert_eq!(
        slug("Not built yet / known limits"),
        "not-built-yet--known-limits"
    );
}
