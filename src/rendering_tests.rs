//! Every renderer the bot has, fed hostile and maximal text: nothing raw survives (no mention, link or special
//! command the bot did not build, no direction override or zero-width character), and every message, topic
//! and view fits Slack's limits ([`crate::slack::limits`]).

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::digest::render::{self, Heading};
use crate::digest::stats::{self, IncidentRow, Origin, Period};
use crate::domain::command;
use crate::domain::deploy::Deploy;
use crate::domain::phase::{Milestone, Timeline};
use crate::domain::severity::{DetectionMethod, Severity};
use crate::domain::text::{is_invisible, HOSTILE, TOPIC};
use crate::incidents::summary::Summary;
use crate::incidents::Incident;
use crate::slack::blocks::{self, CardView};
use crate::slack::limits::{check_message, check_view};

const DECLARER: &str = "U0DECLARER";
const RESPONDER: &str = "U0RESPOND";
const WAR_ROOM: &str = "C0WARROOM";
/// The only links the bot may build in these tests: to checked URLs that are not the attacker's.
const SAFE_LINK_PREFIXES: &[&str] = &["<https://ci.example/", "<https://runbooks.example/"];

fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
}

/// Untrusted fields, all from one attacker.
#[derive(Clone, Debug)]
struct Hostile {
    title: String,
    service: String,
    author: String,
    version: String,
    url: String,
}

fn incident(h: &Hostile, resolved: bool) -> Incident {
    let mut timeline = Timeline::new(t(13, 0), t(13, 5));
    timeline
        .record(Milestone::Acknowledged, t(13, 10), Some(RESPONDER.into()))
        .unwrap();
    if resolved {
        timeline
            .record(Milestone::Resolved, t(14, 0), Some(RESPONDER.into()))
            .unwrap();
    }
    Incident {
        private: false,
        id: "inc-hostile".into(),
        team_id: "T1".into(),
        number: 42,
        title: h.title.clone(),
        severity: Severity::P1,
        peak_severity: Severity::P1,
        service: Some(h.service.clone()),
        detection: DetectionMethod::Customer,
        declared_by: DECLARER.into(),
        origin_channel: None,
        response_url: None,
        channel_id: Some(WAR_ROOM.into()),
        channel_name: Some("inc-42-x".into()),
        card_ts: None,
        timeline,
        roles: Default::default(),
        version: 3,
    }
}

fn deploys(h: &Hostile, n: usize) -> Vec<Deploy> {
    (0..n)
        .map(|i| Deploy {
            id: format!("d{i}"),
            service: if i % 2 == 0 {
                h.service.clone()
            } else {
                "auth".into()
            },
            environment: "production".into(),
            version: Some(h.version.clone()),
            commit_sha: Some(format!("{}{}", h.version, "f95f852bd8")),
            url: Some(if i % 3 == 0 {
                "https://ci.example/run/1?a=1&b=2".to_string()
            } else {
                h.url.clone()
            }),
            author: Some(h.author.clone()),
            deployed_at: t(12, 30),
            source: "api".into(),
        })
        .collect()
}

/// Every message, topic and view the bot builds from these fields, as (what, value) pairs; messages as
/// `{"text", "blocks"}`.
fn everything(h: &Hostile, n_deploys: usize, catalog_names: &[String]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let open = incident(h, false);
    let resolved = incident(h, true);
    for inc in [&open, &resolved] {
        let view = CardView {
            inc,
            service_name: inc.service.clone(),
            runbook: Some(h.url.clone()),
            dashboard: Some("https://runbooks.example/dash".into()),
            deploys: deploys(h, n_deploys),
            unknown_service: Some(blocks::unknown_service_line(&h.service, catalog_names)),
            now: t(14, 30),
            monitoring: Duration::minutes(30),
            // Alerts are untrusted too: titles, sources and links straight from a monitoring tool.
            alerts: Some(crate::domain::alert::Counts {
                total: 10_000,
                firing: 9_999,
                first: (0..crate::domain::alert::LISTED)
                    .map(|i| crate::domain::alert::Listed {
                        title: h.title.clone(),
                        source: h.service.clone(),
                        link: Some(if i % 2 == 0 {
                            h.url.clone()
                        } else {
                            "https://ci.example/alert?a=1&b=2".into()
                        }),
                        starts_at: t(12, 55),
                    })
                    .collect(),
            }),
        };
        out.push((
            "card".into(),
            json!({ "text": view.fallback_text(), "blocks": view.blocks() }),
        ));
        out.push(("topic".into(), json!({ "topic": blocks::topic(inc) })));
        out.push((
            "announcement".into(),
            json!({ "text": blocks::announcement_text(inc), "blocks": blocks::announcement(inc, None) }),
        ));
    }
    let summary = Summary::compute(&resolved, &[], deploys(h, n_deploys), 2).unwrap();
    for broadcast in [false, true] {
        out.push((
            "summary".into(),
            json!({ "text": summary.fallback(), "blocks": summary.render("ob:1", broadcast) }),
        ));
    }
    let rows: Vec<IncidentRow> = (0..12)
        .map(|i| IncidentRow {
            id: format!("id{i}"),
            number: i,
            title: h.title.clone(),
            severity: Severity::ALL[i as usize % 3],
            service: Some(format!("{}{i}", h.service)),
            team: Some(h.author.clone()),
            detection: Some(DetectionMethod::Customer),
            origin: Origin::Slack,
            timeline: if i % 2 == 0 {
                resolved.timeline.clone()
            } else {
                open.timeline.clone()
            },
            deploy_before: true,
            channel_id: Some(WAR_ROOM.into()),
        })
        .collect();
    let period = Period::days_before(t(20, 0), 7);
    let digest = stats::compute(&rows, period, chrono_tz::UTC, t(20, 0));
    let heading = Heading {
        title: "Incident digest".into(),
        scope: format!("team {}", h.author),
        tz: chrono_tz::UTC,
    };
    out.push((
        "digest".into(),
        json!({ "blocks": render::blocks(&digest, &heading, "digest:1") }),
    ));
    out.push((
        "deploy answer".into(),
        json!({ "text": crate::deploys::answer::render(&deploys(h, n_deploys), Some(&h.service), std::slice::from_ref(&h.author), "in the last 2 h", t(14, 0)) }),
    ));
    // The timeline: captured messages are untrusted text (and authors, kinds, links) from anyone in the channel;
    // the bot's own lines are Slack text it wrote, untrusted parts escaped when the line was stored.
    let entries: Vec<crate::domain::timeline::Entry> = (0..(n_deploys * 10).max(3))
        .map(|i| crate::domain::timeline::Entry {
            at: t(13, (i % 60) as u32),
            kind: if i % 3 == 0 {
                h.service.clone()
            } else {
                crate::domain::timeline::MESSAGE_KIND.into()
            },
            actor: Some(if i % 2 == 0 {
                RESPONDER.into()
            } else {
                h.author.clone()
            }),
            detail: if i % 3 == 0 {
                format!(
                    "🚨 Declared by <@{RESPONDER}> at <!date^1764079200^{{time}}|13:00 UTC>: *{}* {}",
                    crate::domain::text::escape(&h.title),
                    crate::domain::text::link(&h.url, &h.version)
                )
            } else {
                format!("{} {}", h.title, h.version)
            },
            permalink: Some(h.url.clone()),
            deleted: i % 7 == 6,
        })
        .collect();
    out.push((
        "timeline".into(),
        json!({ "text": crate::domain::timeline::slack_reply("INC-42", &entries, chrono_tz::UTC) }),
    ));
    out.push((
        "declare modal".into(),
        blocks::declare_modal(catalog_names, "CGENERAL"),
    ));
    for typed in [
        format!("start x sev:{}", h.title),
        format!("start x via:{}", h.service),
        format!("start x started:{}", h.version),
        format!("deploys {} {}", h.service, h.author),
        format!("frobnicate{}", h.title),
        format!("set {} 14:00", h.author),
    ] {
        if let Err(e) = command::parse(&typed) {
            out.push(("usage reply".into(), json!({ "text": e.to_string() })));
        }
    }
    out
}

/// Every string inside `v` that Slack shows (an option's or a button's `value` is only sent back to the bot).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "value")
            .for_each(|(_, x)| strings(x, out)),
        _ => {}
    }
}

/// A link `<url|label>` to a URL the bot checked (not the attacker's host), with a label free of markup.
fn bot_built_link(rest: &str) -> bool {
    let Some(end) = rest.find('>') else {
        return false;
    };
    let inner = &rest[1..end];
    let Some((url, label)) = inner.split_once('|') else {
        return false;
    };
    crate::domain::text::checked_url(&url.replace("&amp;", "&")).is_some()
        && !url.contains("evil.example")
        && !label.contains('<')
}

/// Panics on anything raw: a `<…>` the bot did not build, a control or invisible character.
fn assert_nothing_raw(what: &str, v: &Value) {
    let mut all = Vec::new();
    strings(v, &mut all);
    for s in all {
        for (i, _) in s.match_indices('<') {
            let rest = &s[i..];
            let ok = rest.starts_with(&format!("<@{DECLARER}>"))
                || rest.starts_with(&format!("<@{RESPONDER}>"))
                || rest.starts_with(&format!("<#{WAR_ROOM}>"))
                || rest.starts_with("<!date^")
                || SAFE_LINK_PREFIXES.iter().any(|p| rest.starts_with(p))
                || bot_built_link(rest);
            assert!(
                ok,
                "{what}: raw markup at {:?} in {s:?}",
                rest.chars().take(60).collect::<String>()
            );
        }
        for bad in [
            "<!channel",
            "<!here",
            "<!everyone",
            "<!subteam",
            "<https://evil",
            "<mailto",
        ] {
            assert!(!s.contains(bad), "{what}: {bad} in {s:?}");
        }
        assert!(
            !s.chars().any(|c| is_invisible(c) && c != '\u{200D}'),
            "{what}: invisible character in {s:?}"
        );
        assert!(
            !s.chars().any(|c| c.is_control() && c != '\n'),
            "{what}: control character in {s:?}"
        );
    }
}

/// Panics on anything Slack would refuse.
fn assert_fits(what: &str, v: &Value) {
    if let Some(topic) = v["topic"].as_str() {
        assert!(topic.chars().count() <= TOPIC, "{what}: topic too long");
        return;
    }
    if v["type"] == "modal" {
        assert_eq!(check_view(v), Ok(()), "{what}");
        return;
    }
    let blocks = v.get("blocks").filter(|b| !b.is_null());
    assert_eq!(check_message(v["text"].as_str(), blocks), Ok(()), "{what}");
}

fn hostile_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..HOSTILE.len()).prop_map(|i| HOSTILE[i].to_string()),
        any::<String>(),
        "[<>&|!@#^a-zA-Z0-9:/. \u{202E}\u{200B}\u{2066}\u{FEFF}]{0,40}",
    ]
}

fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_piece(), 1..4).prop_map(|v| v.join(" "))
}

fn hostile() -> impl Strategy<Value = Hostile> {
    (
        hostile_text(),
        hostile_text(),
        hostile_text(),
        hostile_text(),
        prop_oneof![
            hostile_text(),
            Just("https://evil.example|Join war room".to_string()),
            Just("<https://evil.example|Join war room>".to_string()),
            Just("javascript:alert(1)".to_string()),
        ],
    )
        .prop_map(|(title, service, author, version, url)| Hostile {
            title,
            service,
            author,
            version,
            url,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn nothing_raw_survives_any_renderer(h in hostile(), names in prop::collection::vec(hostile_text(), 0..5)) {
        for (what, v) in everything(&h, 4, &names) {
            assert_nothing_raw(&what, &v);
            assert_fits(&what, &v);
        }
    }
}

#[test]
fn every_control_sequence_is_neutralised_in_every_field() {
    for (i, piece) in HOSTILE.iter().enumerate() {
        let h = Hostile {
            title: format!("DB down {piece}"),
            service: piece.to_string(),
            author: piece.to_string(),
            version: piece.to_string(),
            url: if i % 2 == 0 {
                "https://evil.example|Join war room".into()
            } else {
                piece.to_string()
            },
        };
        for (what, v) in everything(&h, 3, &[piece.to_string()]) {
            assert_nothing_raw(&what, &v);
        }
    }
}

#[test]
fn maximal_inputs_fit_slacks_limits() {
    let long = |c: &str, n: usize| c.repeat(n);
    let h = Hostile {
        title: format!("{}{}", long("&", 3_000), long("é", 7_000)),
        service: long("<", 5_000),
        author: long("a", 5_000),
        version: long(">", 5_000),
        url: format!("https://ci.example/{}", long("x", 5_000)),
    };
    let names: Vec<String> = (0..500).map(|i| format!("{i}{}", long("s", 200))).collect();
    let all = everything(&h, 20, &names);
    assert!(all.len() >= 12, "every renderer ran: {}", all.len());
    for (what, v) in &all {
        assert_fits(what, v);
        assert_nothing_raw(what, v);
    }
    // The title is still recognisable where it is shown, cut with `…`.
    let card = &all[0].1;
    let header = card["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(header.starts_with("🔴 INC-42 · &amp;&amp;"), "{header}");
    assert!(header.ends_with('…'), "{header}");
}
