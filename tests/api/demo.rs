//! `incident-bot demo`, run as the real binary: the story it prints, `--keep DIR` (the printed `report` command
//! works on what it kept) and `--html FILE` (opened in a real headless Chromium: what a reader sees).
//!
//! The browser test needs Chromium (`chromium`, `chromium-browser` or `google-chrome` on the PATH). Without
//! one it is skipped with a message, unless `REQUIRE_CHROMIUM=1` (as `scripts/test.sh` sets after installing
//! Debian's `chromium`): then it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("incident-bot-test-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Runs the binary; returns stdout, failing with stderr when it exits non-zero.
fn run(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_incident-bot"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_demo_tells_a_story_and_keeps_what_report_reads() {
    let dir = scratch("demo-keep");
    let out = run(&["demo", "--keep", dir.to_str().expect("utf-8 path")], &[]);

    // A story: scene headings, Slack markup rendered (names, no raw mentions, links, dates or bold marks).
    assert!(out.contains("━━ An incident is declared"), "{out}");
    assert!(out.contains("━━ [Resolved]"), "{out}");
    assert!(out.contains("Declared by @dana"), "{out}");
    assert!(
        out.contains("📖 Runbook (https://runbooks.acme.example/payments)"),
        "{out}"
    );
    for raw in ["<!date^", "*Severity*", "&lt;", "<https://", "<@U"] {
        assert!(!out.contains(raw), "raw Slack markup {raw:?} in:\n{out}");
    }
    // Triage runs past the team's p90 of the seeded history: one nudge, with the figure, n, suspects, buttons.
    let nudge = out
        .lines()
        .find(|l| l.contains("🐢 Triage has been running for"))
        .unwrap_or_else(|| panic!("no stalled-phase nudge in:\n{out}"));
    assert!(
        nudge.contains("longer than the team's p90 for triage in P1 incidents (p90 12m, n = 7)"),
        "{nudge}"
    );
    assert_eq!(out.matches("🐢 ").count(), 1, "one nudge:\n{out}");
    assert!(
        out.contains("Suspect deploys (since 2 h before impact):"),
        "{out}"
    );
    assert!(
        out.contains("[Page escalation target] [Open payments v2.14.0]"),
        "{out}"
    );
    // The fix's deploy arrives through the deploy API: the bot asks, the click records the deploy's time.
    let prompt = out
        .lines()
        .find(|l| l.contains("🚀 payments v2.14.1 deployed at "))
        .unwrap_or_else(|| panic!("no deploy prompt in:\n{out}"));
    assert!(prompt.ends_with("by omar — was this the fix?"), "{prompt}");
    let at = &prompt[prompt.find("deployed at ").unwrap() + "deployed at ".len()..][..5];
    assert!(out.contains(&format!("[Fix deployed at {at}]")), "{out}");
    let card = out
        .lines()
        .find(|l| l.contains("+ Remediation: 12m · @omar"))
        .unwrap_or_else(|| panic!("the card does not show the fix:\n{out}"));
    assert!(
        card.ends_with(&format!("{at} UTC")),
        "{card} (deployed at {at})"
    );
    assert!(
        out.find("🐢 Triage").unwrap() < out.find("🚀 payments").unwrap(),
        "nudge, then prompt"
    );

    // The postmortem draft uploaded at resolution, with every section, then follow-ups from it.
    let draft = out
        .find("📎 INC-1-postmortem.md (")
        .unwrap_or_else(|| panic!("no postmortem draft in the story:\n{out}"));
    let sections = &out[draft..];
    let mut at = 0;
    for section in [
        "Summary",
        "Impact window",
        "Phases",
        "Timeline",
        "Deploys in the 2 hours before impact",
        "Detection",
        "Alert and runbook coverage",
        "Questions worth answering",
        "Follow-ups",
    ] {
        let found = sections[at..]
            .find(&format!("\n     {section}\n"))
            .unwrap_or_else(|| panic!("section {section:?} missing or out of order:\n{out}"));
        at += found + 1;
    }
    assert!(
        out.contains("Open follow-ups of INC-1\n     • #1 Alert on Visa declines before customers notice · owner @omar · due "),
        "{out}"
    );

    // The card is shown whole once per incident; later only what changed.
    assert_eq!(
        out.matches("Detected via unknown — not said yet").count(),
        1,
        "{out}"
    );
    assert!(
        out.contains("✎ card updated in #inc-1-card-payments-failing-at-checkout:"),
        "{out}"
    );
    assert!(
        out.contains("− • Status Investigating\n     + • Status Acknowledged"),
        "{out}"
    );

    // What was kept, and the command that reads it.
    let chart = std::fs::read(dir.join("digest-chart.png")).expect("the chart is kept");
    assert!(chart.starts_with(b"\x89PNG"), "a PNG");
    let line = out
        .lines()
        .find(|l| l.starts_with("DATABASE_URL="))
        .unwrap_or_else(|| panic!("no report command in:\n{out}"));
    let mut words = line.split_whitespace();
    let url = words
        .next()
        .and_then(|w| w.strip_prefix("DATABASE_URL="))
        .expect("DATABASE_URL=…");
    assert!(
        Path::new(url.trim_start_matches("sqlite://")).exists(),
        "{url} exists"
    );
    assert_eq!(words.next(), Some("incident-bot"), "{line}");
    let args: Vec<&str> = words.collect();
    assert_eq!(args.first(), Some(&"report"), "{line}");
    let report = run(&args, &[("DATABASE_URL", url)]);
    assert!(report.contains("Incidents: 2 "), "{report}");
    assert!(report.contains("MTTR: mean 54m"), "{report}");
    // The kept incident's timeline exports as readable Markdown: mentions as ids, no escaped Slack markup.
    let md = run(
        &["export", "INC-1", "--format", "md"],
        &[("DATABASE_URL", url)],
    );
    assert!(md.contains("| ✋ @U0PAYONC1 acknowledged at "), "{md}");
    for raw in ["&lt;@", "<@U", "<!date^", "&amp;"] {
        assert!(!md.contains(raw), "{raw:?} in:\n{md}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Chromium's binary, if one is on the PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// `&lt;` `&gt;` `&quot;` `&amp;` back (Chromium's `--dump-dom` escapes text).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

#[test]
fn the_demo_page_shows_a_reader_the_incident_in_a_real_browser() {
    let Some(browser) = chromium() else {
        if std::env::var("REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("REQUIRE_CHROMIUM=1 but no chromium on the PATH");
        }
        eprintln!("skipped: no chromium on the PATH (scripts/test.sh installs Debian's)");
        return;
    };
    let dir = scratch("demo-html");
    let page = dir.join("demo.html");
    run(&["demo", "--html", page.to_str().expect("utf-8 path")], &[]);
    let html = std::fs::read_to_string(&page).expect("the page is written");
    // Self-contained: nothing to fetch.
    for external in [" src=\"http", "<link", "@import", "url(http"] {
        assert!(!html.contains(external), "{external:?} in the page");
    }

    // Headless Chromium dumps the page when its virtual time budget runs out, which can come before the
    // page's check (it waits for the images to decode) on a machine busy with other tests: give it longer,
    // up to three times. What the check then reports is asserted below, whichever attempt it came from.
    let profile = dir.join("profile");
    let mut tries = Vec::new();
    let dom = [5_000, 20_000, 60_000]
        .into_iter()
        .find_map(|budget| {
            let out = Command::new(&browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    &format!("--virtual-time-budget={budget}"),
                    &format!("--user-data-dir={}", profile.display()),
                    "--dump-dom",
                    &format!("file://{}?check", page.display()),
                ])
                .output()
                .expect("run chromium");
            let dom = String::from_utf8_lossy(&out.stdout).into_owned();
            if dom.contains("<pre id=\"check\"") {
                Some(dom)
            } else {
                tries.push(format!(
                    "budget {budget} ms:\n{}\n{}",
                    &dom[..dom.len().min(2000)],
                    String::from_utf8_lossy(&out.stderr)
                ));
                None
            }
        })
        .unwrap_or_else(|| panic!("the page's check did not run:\n{}", tries.join("\n")));
    let start = dom.find("<pre id=\"check\"").expect("found above");
    let check = &dom[start..];
    let attrs = &check[..check.find('>').expect("tag end")];
    let seen = unescape(&check[attrs.len() + 1..check.find("</pre>").expect("pre end")]);

    // What a reader sees: the incident, its figures, names instead of ids, no Slack markup.
    for visible in [
        "INC-1 · Card payments failing at checkout",
        "MTTR 54m",
        "Declared by",
        "@dana",
        "Incident digest",
        "Mark Resolved",
        "Triage has been running for",
        "(p90 12m, n = 7)",
        "Page escalation target",
        "was this the fix?",
        "Fix deployed at",
    ] {
        assert!(
            seen.contains(visible),
            "{visible:?} not visible in:\n{seen}"
        );
    }
    for raw in ["*Severity*", "<@U0", "<!date^", "<https://"] {
        assert!(
            !seen.contains(raw),
            "raw markup {raw:?} visible in:\n{seen}"
        );
    }
    // The digest chart is an image the browser decoded.
    let images = attrs
        .split("data-images=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("data-images");
    // Each image as `WIDTHxHEIGHT:P%` (the share of its pixels painted) or `…:broken`.
    let sizes: Vec<(u32, u32, &str)> = images
        .split_whitespace()
        .filter_map(|s| {
            let (size, state) = s.split_once(':')?;
            let (w, h) = size.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?, state))
        })
        .collect();
    assert!(!sizes.is_empty(), "no image in the page: {images:?}");
    assert!(
        sizes
            .iter()
            .all(|&(w, h, state)| w > 100 && h > 100 && state == "100%"),
        "an image did not decode: {images}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
