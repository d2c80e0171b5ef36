//! Block Kit rendering: the incident card, the channel topic, the announcement, the declare modal, and the
//! follow-up buttons and form.
//! Pure functions of the incident and what the caller already looked up. Every untrusted string (title, service,
//! deploy fields, catalog text) goes through [`crate::domain::text`]: escaped, linked only when checked, cut to
//! Slack's limits.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::domain::alert::Counts;
use crate::domain::deploy::Deploy;
use crate::domain::duration::format_duration;
use crate::domain::incident::{Incident, Role};
use crate::domain::mttr;
use crate::domain::phase::{Milestone, Status};
use crate::domain::severity::{DetectionMethod, Severity};
use crate::domain::text::{self, escape, escape_cut};

/// `block_id` of the card's first block: lets a retry find a card that was posted but not recorded.
pub fn card_block_id(incident_id: &str) -> String {
    format!("card:{incident_id}")
}

/// Whether a message (as `conversations.history` returns it) has a block with `block_id`.
pub fn has_block_id(message: &Value, block_id: &str) -> bool {
    message["blocks"]
        .as_array()
        .is_some_and(|bs| bs.iter().any(|b| b["block_id"].as_str() == Some(block_id)))
}

/// `block_id` of the announcement's first block.
pub fn announce_block_id(incident_id: &str) -> String {
    format!("announce:{incident_id}")
}

/// The action block's id; buttons carry the incident id as their value.
pub const PHASE_ACTIONS_BLOCK: &str = "phase_actions";
/// `block_id` of the card's role buttons ("Take command").
pub const ROLE_ACTIONS_BLOCK: &str = "role_actions";
/// `action_id` of the card's severity select (each option's value is `<severity>|<incident id>`).
pub const SEVERITY_ACTION_ID: &str = "severity_select";

/// The card's severity select, showing the current severity.
fn severity_select(inc: &Incident) -> Value {
    let option = |s: Severity| {
        json!({
            "text": { "type": "plain_text", "text": format!("{} {} — {}", severity_emoji(s), s.as_str(), s.description()), "emoji": true },
            "value": format!("{}|{}", s.as_str(), inc.id)
        })
    };
    json!({
        "type": "static_select",
        "action_id": SEVERITY_ACTION_ID,
        "placeholder": { "type": "plain_text", "text": "Severity" },
        "options": Severity::ALL.into_iter().map(option).collect::<Vec<_>>(),
        "initial_option": option(inc.severity),
    })
}

/// `action_id` of the card's "Take command" button (its value is the incident id).
pub const TAKE_COMMAND_ACTION_ID: &str = "role_take_ic";

/// The card's field for `role`: its holder (a mention built from the Slack user id the bot was given), or who
/// should take it.
fn role_field(inc: &Incident, role: Role) -> String {
    let holder = match inc.roles.get(role) {
        Some(u) => text::user(u),
        None if role == Role::Commander => "_nobody yet — click *Take command*_".to_string(),
        None => "_nobody yet_".to_string(),
    };
    format!("*{}*\n{holder}", role.label())
}

pub fn severity_emoji(s: Severity) -> &'static str {
    match s {
        Severity::P1 => "🔴",
        Severity::P2 => "🟠",
        Severity::P3 => "🟡",
    }
}

/// Slack's date formatting: every reader sees their own time zone.
pub fn slack_time(t: DateTime<Utc>) -> String {
    format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        t.timestamp(),
        t.format("%Y-%m-%d %H:%M UTC")
    )
}

/// `🔴 P1 · payments · Card payments failing | INC-42` (Slack caps topics at 250 characters).
pub fn topic(inc: &Incident) -> String {
    let service = escape_cut(inc.service.as_deref().unwrap_or("no service"), 60);
    let head = format!(
        "{} {} · {service} · ",
        severity_emoji(inc.severity),
        inc.severity.as_str(),
    );
    let tail = format!(" | {}", inc.key());
    let room = text::TOPIC.saturating_sub(head.chars().count() + tail.chars().count());
    format!("{head}{}{tail}", escape_cut(&inc.title, room))
}

/// Everything the card shows besides the incident itself.
#[derive(Debug, Clone)]
pub struct CardView<'a> {
    pub inc: &'a Incident,
    /// The service's catalog name (an alias typed at declaration resolves to it); as typed when unknown.
    pub service_name: Option<String>,
    pub runbook: Option<String>,
    pub dashboard: Option<String>,
    /// Deploys to the service and its dependencies in the 2 hours before impact.
    pub deploys: Vec<Deploy>,
    /// "no service called X — did you mean Y?" when the service is not in the catalog.
    pub unknown_service: Option<String>,
    pub now: DateTime<Utc>,
    /// The monitoring window after `Resolved` (`incidents.monitoring_minutes`).
    pub monitoring: chrono::Duration,
    /// The alerts attached to the incident (declared by or attached to by alerts), if any.
    pub alerts: Option<Counts>,
}

impl CardView<'_> {
    /// The same view with the incident's alerts.
    #[must_use]
    pub fn with_alerts(mut self, alerts: Option<Counts>) -> Self {
        self.alerts = alerts;
        self
    }

    pub fn fallback_text(&self) -> String {
        format!(
            "{} {} {} — {}",
            severity_emoji(self.inc.severity),
            self.inc.key(),
            escape_cut(&self.inc.title, text::SECTION_TEXT),
            self.inc.severity.as_str()
        )
    }

    pub fn blocks(&self) -> Value {
        let inc = self.inc;
        let status = inc.timeline.status();
        let mut blocks = vec![
            json!({
                "type": "header",
                "block_id": card_block_id(&inc.id),
                "text": { "type": "plain_text", "text": text::cut(&format!("{} {} · {}", severity_emoji(inc.severity), inc.key(), escape(&inc.title)), text::HEADER_TEXT), "emoji": true }
            }),
            json!({
                "type": "section",
                "fields": [
                    { "type": "mrkdwn", "text": format!("*Severity*\n{} — {}", inc.severity.as_str(), inc.severity.description()) },
                    { "type": "mrkdwn", "text": format!("*Status*\n{}", status.label()) },
                    { "type": "mrkdwn", "text": format!("*Service*\n{}", escape_cut(inc.service.as_deref().unwrap_or("—"), 200)) },
                    { "type": "mrkdwn", "text": format!("*Declared by*\n{}", text::user(&inc.declared_by)) },
                    { "type": "mrkdwn", "text": format!("*Impact started*\n{}", slack_time(inc.timeline.started_at)) },
                    { "type": "mrkdwn", "text": format!("*Detected via*\n{}", detected_via(inc.detection)) },
                    { "type": "mrkdwn", "text": role_field(inc, Role::Commander) },
                    { "type": "mrkdwn", "text": role_field(inc, Role::Comms) },
                ]
            }),
        ];
        if inc.detection == DetectionMethod::Unknown && status != Status::Closed {
            blocks.extend(detection_question(&inc.id));
        }
        let runbook = match &self.runbook {
            Some(u) => format!("📖 {}", text::link(u, "Runbook")),
            None => "📖 no runbook in the catalog".to_string(),
        };
        let dashboard = match &self.dashboard {
            Some(u) => format!("📊 {}", text::link(u, "Dashboard")),
            None => "📊 no dashboard in the catalog".to_string(),
        };
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("{runbook}   {dashboard}") } }));
        blocks.push(
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": text::cut(&self.deploys_text(), text::SECTION_TEXT) } }),
        );
        if let Some(a) = &self.alerts {
            blocks.push(json!({ "type": "section", "block_id": ALERTS_BLOCK, "text": { "type": "mrkdwn", "text": alerts_text(a) } }));
        }
        if let Some(line) = &self.unknown_service {
            blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": text::cut(&format!("⚠️ {line}"), text::SECTION_TEXT) }] }));
        }
        blocks.push(
            json!({ "type": "section", "text": { "type": "mrkdwn", "text": self.phases_text() } }),
        );
        if let Some(note) = self.state_note(status) {
            blocks.push(
                json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": note }] }),
            );
        }
        let buttons = self.buttons(status);
        if !buttons.is_empty() {
            blocks.push(
                json!({ "type": "actions", "block_id": PHASE_ACTIONS_BLOCK, "elements": buttons }),
            );
        }
        if status.is_active() {
            blocks.push(
                json!({ "type": "actions", "block_id": ROLE_ACTIONS_BLOCK, "elements": [{
                "type": "button", "action_id": TAKE_COMMAND_ACTION_ID, "value": inc.id,
                "text": { "type": "plain_text", "text": "Take command" }
            }, severity_select(inc)] }),
            );
        }
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!("Updated {}", slack_time(self.now)) }] }));
        Value::Array(blocks)
    }

    fn deploys_text(&self) -> String {
        if self.deploys.is_empty() {
            return "*Deploys in the 2 h before impact:* none".to_string();
        }
        let own = self.service_name.as_deref().unwrap_or_default();
        let mut lines = vec!["*Deploys in the 2 h before impact:*".to_string()];
        for d in &self.deploys {
            lines.push(deploy_line(
                d,
                !d.service.eq_ignore_ascii_case(own),
                self.inc.timeline.started_at,
                "before impact",
            ));
        }
        lines.join("\n")
    }

    pub fn phases_text(&self) -> String {
        let b = mttr::breakdown(&self.inc.timeline, self.now);
        let t = &self.inc.timeline;
        let mut lines = Vec::new();
        for (span, end) in b.phases.iter().zip(Milestone::ALL) {
            let stamp = t.get(end);
            let value = if span.skipped {
                "_skipped_".to_string()
            } else if span.ongoing {
                format!("{} so far ⏳", format_duration(span.duration))
            } else if stamp.is_some() {
                format_duration(span.duration)
            } else {
                "—".to_string()
            };
            let who = match stamp {
                Some(s) if !s.implicit => match &s.by {
                    Some(u) => format!(" · {} {}", text::user(u), slack_time(s.at)),
                    None => format!(" · {}", slack_time(s.at)),
                },
                _ => String::new(),
            };
            lines.push(format!("*{}*: {value}{who}", span.kind.label()));
        }
        let total = if b.resolved { "MTTR" } else { "Elapsed" };
        lines.push(format!("*{total}*: {}", format_duration(b.mttr)));
        lines.join("\n")
    }

    /// While monitoring: until when `Reopen` is offered; once closed: that it is closed (no more buttons).
    fn state_note(&self, status: Status) -> Option<String> {
        let t = &self.inc.timeline;
        match status {
            Status::Monitoring => t.monitoring_ends_at(self.monitoring).map(|end| {
                format!(
                    "👀 *Monitoring* until {} — click *Reopen* if it comes back; after that the incident is closed.",
                    slack_time(end)
                )
            }),
            Status::Closed => Some(format!(
                "🔒 *Closed* {} — the monitoring window passed without a reopen. Timestamps can still be corrected with `/incident set`.",
                slack_time(t.closed_at.unwrap_or(self.now))
            )),
            _ => None,
        }
    }

    fn buttons(&self, status: Status) -> Vec<Value> {
        let id = &self.inc.id;
        match status {
            Status::Closed => Vec::new(),
            Status::Monitoring => vec![json!({
                "type": "button", "action_id": "phase_reopen", "value": id,
                "text": { "type": "plain_text", "text": "Reopen" }
            })],
            _ => Milestone::ALL
                .into_iter()
                .filter(|m| self.inc.timeline.get(*m).is_none())
                .map(|m| {
                    let mut b = json!({
                        "type": "button", "action_id": m.action_id(), "value": id,
                        "text": { "type": "plain_text", "text": m.label() }
                    });
                    if m == Milestone::Resolved {
                        b["style"] = json!("primary");
                    }
                    b
                })
                .collect(),
        }
    }
}

/// `block_id` of the card's alerts section.
pub const ALERTS_BLOCK: &str = "alerts";

/// The card's alerts section: how many, how many still firing, the first few with their links (checked URLs
/// only; every title escaped and cut).
pub fn alerts_text(a: &Counts) -> String {
    let noun = if a.total == 1 { "alert" } else { "alerts" };
    let mut lines = vec![format!(
        "🚨 *Alerts:* {} {noun} · {} firing",
        a.total, a.firing
    )];
    for l in &a.first {
        let title = text::plain(&l.title, 150);
        let shown = match &l.link {
            Some(u) if text::checked_url(u).is_some() => text::link(u, &title),
            _ => escape(&title),
        };
        lines.push(format!(
            "• {shown} — {}, since {}",
            escape_cut(&l.source, 20),
            slack_time(l.starts_at)
        ));
    }
    let more = a.total - a.first.len() as i64;
    if more > 0 {
        lines.push(format!("…and {more} more"));
    }
    text::cut(&lines.join("\n"), text::SECTION_TEXT)
}

/// The card's field: the method, or that nobody has said yet.
fn detected_via(m: DetectionMethod) -> &'static str {
    match m {
        DetectionMethod::Unknown => "unknown — not said yet",
        known => known.as_str(),
    }
}

/// `block_id` of the card's detection question.
pub const DETECTION_ACTIONS_BLOCK: &str = "detection_actions";

/// The prefix of the question's buttons: `detected_alert`, `detected_customer`, `detected_engineer`.
const DETECTION_ACTION_PREFIX: &str = "detected_";

/// The `action_id` of the button that answers `method`.
pub fn detection_action_id(method: DetectionMethod) -> String {
    format!("{DETECTION_ACTION_PREFIX}{}", method.as_str())
}

/// The method a button of the question answers, if `action_id` is one.
pub fn detection_from_action_id(action_id: &str) -> Option<DetectionMethod> {
    action_id
        .strip_prefix(DETECTION_ACTION_PREFIX)
        .and_then(DetectionMethod::parse)
}

/// "How was this detected? [Alert] [Customer] [Engineer]": asked on the card until somebody answers.
fn detection_question(incident_id: &str) -> [Value; 2] {
    let buttons: Vec<Value> = DetectionMethod::KNOWN
        .into_iter()
        .map(|m| {
            let label = match m {
                DetectionMethod::Alert => "Alert",
                DetectionMethod::Customer => "Customer",
                _ => "Engineer",
            };
            json!({
                "type": "button", "action_id": detection_action_id(m), "value": incident_id,
                "text": { "type": "plain_text", "text": label }
            })
        })
        .collect();
    [
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": "*How was this detected?* An alert, a customer, or an engineer who noticed? Until someone says, it counts as _unknown_ in the digests." } }),
        json!({ "type": "actions", "block_id": DETECTION_ACTIONS_BLOCK, "elements": buttons }),
    ]
}

/// One deploy as a card/answer line: `• payments v1.4.2 by alice, 25m before impact · <url|abc1234>`. Every
/// field of the deploy is untrusted: escaped and cut; the link only from a checked URL.
pub fn deploy_line(
    d: &Deploy,
    dependency: bool,
    reference: DateTime<Utc>,
    relation: &str,
) -> String {
    let mut s = format!("• *{}*", escape_cut(&d.service, 80));
    if dependency {
        s.push_str(" (dependency)");
    }
    if let Some(v) = &d.version {
        s.push_str(&format!(" `{}`", escape_cut(&v.replace('`', "'"), 60)));
    }
    if let Some(a) = &d.author {
        s.push_str(&format!(" by {}", escape_cut(a, 60)));
    }
    let age = reference - d.deployed_at;
    s.push_str(&format!(
        ", {} {relation}",
        format_duration(age.max(chrono::Duration::zero()))
    ));
    let sha = d
        .commit_sha
        .as_deref()
        .map(|c| c.chars().take(7).collect::<String>());
    match (&d.url, sha) {
        (Some(u), Some(sha)) => s.push_str(&format!(" · {}", text::link(u, &sha))),
        (Some(u), None) => s.push_str(&format!(" · {}", text::link(u, "link"))),
        (None, Some(sha)) => s.push_str(&format!(" · {}", escape(&sha))),
        (None, None) => {}
    }
    s
}

/// `no service called "paymnts" — did you mean payments?` (Slack text: the name typed is escaped).
pub fn unknown_service_line(name: &str, suggestions: &[String]) -> String {
    let name = escape_cut(&name.replace('`', "'"), 80);
    if suggestions.is_empty() {
        format!("no service called `{name}` in the catalog")
    } else {
        let list: Vec<String> = suggestions
            .iter()
            .map(|s| format!("`{}`", escape_cut(&s.replace('`', "'"), 80)))
            .collect();
        format!(
            "no service called `{name}` — did you mean {}?",
            list.join(" or ")
        )
    }
}

/// The announcement's notification text.
pub fn announcement_text(inc: &Incident) -> String {
    if inc.private {
        return private_announcement(inc);
    }
    format!(
        "{} {} declared: {} ({}, {})",
        severity_emoji(inc.severity),
        inc.key(),
        escape_cut(&inc.title, 2_000),
        inc.severity.as_str(),
        escape_cut(inc.service.as_deref().unwrap_or("no service"), 200)
    )
}

/// All the broadcast channel learns of a private incident: that one was declared, and by whom.
pub fn private_announcement(inc: &Incident) -> String {
    format!(
        "🔒 A private incident was declared by {}",
        text::user(&inc.declared_by)
    )
}

/// The broadcast-channel message (for a private incident, [`private_announcement`] only).
pub fn announcement(inc: &Incident, channel_link: Option<&str>) -> Value {
    if inc.private {
        return json!([{
            "type": "section",
            "block_id": announce_block_id(&inc.id),
            "text": { "type": "mrkdwn", "text": private_announcement(inc) }
        }]);
    }
    let room = match (&inc.channel_id, channel_link) {
        (Some(c), _) => format!("War room: {}", text::channel(c)),
        (None, _) => "No war-room channel could be created.".to_string(),
    };
    let head = format!("{} *{}* · ", severity_emoji(inc.severity), inc.key());
    let rest = format!(
        "\n*{}* — {} · service *{}* · declared by {}\n{room}",
        inc.severity.as_str(),
        inc.severity.description(),
        escape_cut(inc.service.as_deref().unwrap_or("—"), 200),
        text::user(&inc.declared_by)
    );
    let room_for_title =
        text::SECTION_TEXT.saturating_sub(head.chars().count() + rest.chars().count());
    json!([
        {
            "type": "section",
            "block_id": announce_block_id(&inc.id),
            "text": { "type": "mrkdwn", "text": format!("{head}{}{rest}", escape_cut(&inc.title, room_for_title)) }
        }
    ])
}

/// The modal opened by `/incident start` without a title. Its submission declares. Service names come from the
/// catalog: shown escaped and cut to an option's 75 characters (the value stays the name, as Slack sends it
/// back); at most 100 options, as Slack allows in a static select.
pub fn declare_modal(services: &[String], origin_channel: &str) -> Value {
    let mut service_options: Vec<Value> = services
        .iter()
        .filter(|s| !s.is_empty() && s.chars().count() <= 150)
        .take(100)
        .map(|s| json!({ "text": { "type": "plain_text", "text": escape_cut(s, text::OPTION_TEXT) }, "value": s }))
        .collect();
    if service_options.is_empty() {
        service_options
            .push(json!({ "text": { "type": "plain_text", "text": "(no catalog)" }, "value": "" }));
    }
    let opt = |v: &str, label: &str| json!({ "text": { "type": "plain_text", "text": label }, "value": v });
    json!({
        "type": "modal",
        "callback_id": "incident_start",
        "private_metadata": origin_channel,
        "title": { "type": "plain_text", "text": "Declare an incident" },
        "submit": { "type": "plain_text", "text": "Declare" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            { "type": "input", "block_id": "title", "label": { "type": "plain_text", "text": "What is broken?" },
              "element": { "type": "plain_text_input", "action_id": "value", "max_length": 150 } },
            { "type": "input", "block_id": "severity", "label": { "type": "plain_text", "text": "Severity" },
              "element": { "type": "static_select", "action_id": "value",
                "initial_option": opt("P2", "P2 — major degradation"),
                "options": [opt("P1", "P1 — full outage"), opt("P2", "P2 — major degradation"), opt("P3", "P3 — minor degradation")] } },
            { "type": "input", "block_id": "service", "optional": true, "label": { "type": "plain_text", "text": "Service" },
              "element": { "type": "static_select", "action_id": "value", "options": service_options } },
            { "type": "input", "block_id": "via", "optional": true,
              "label": { "type": "plain_text", "text": "Detected via (leave empty if not sure: the card will ask)" },
              "element": { "type": "static_select", "action_id": "value",
                "options": [opt("alert", "alert"), opt("customer", "customer"), opt("engineer", "engineer")] } },
            { "type": "input", "block_id": "started", "optional": true,
              "label": { "type": "plain_text", "text": "Impact started (HH:MM or -20m; empty = now)" },
              "element": { "type": "plain_text_input", "action_id": "value" } },
            { "type": "input", "block_id": "private", "optional": true, "label": { "type": "plain_text", "text": "Private" },
              "element": { "type": "checkboxes", "action_id": "value", "options": [
                { "text": { "type": "plain_text", "text": "Private: a private channel; its title stays out of other channels" }, "value": "yes" }
              ] } }
        ]
    })
}

/// The `callback_id` of the status update form.
pub const UPDATE_CALLBACK_ID: &str = "incident_update";

/// The status update form (`/incident update`) of incident `incident_id` (`private_metadata`), titled with its
/// key. `statuses` are (value, label) pairs for the select; a typed status takes precedence.
pub fn update_modal(
    incident_id: &str,
    key: &str,
    statuses: &[(&str, &str)],
    default_minutes: i64,
    max_minutes: i64,
) -> Value {
    let options: Vec<Value> = statuses
        .iter()
        .map(|(v, l)| json!({ "text": { "type": "plain_text", "text": *l }, "value": *v }))
        .collect();
    json!({
        "type": "modal",
        "callback_id": UPDATE_CALLBACK_ID,
        "private_metadata": incident_id,
        "title": { "type": "plain_text", "text": text::cut_plain(&format!("Update {key}"), 24) },
        "submit": { "type": "plain_text", "text": "Post update" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            { "type": "input", "block_id": "status", "optional": true, "label": { "type": "plain_text", "text": "Status" },
              "element": { "type": "static_select", "action_id": "value", "options": options } },
            { "type": "input", "block_id": "status_text", "optional": true,
              "label": { "type": "plain_text", "text": "…or in your own words" },
              "element": { "type": "plain_text_input", "action_id": "value", "max_length": 80 } },
            { "type": "input", "block_id": "impact", "label": { "type": "plain_text", "text": "Impact" },
              "element": { "type": "plain_text_input", "action_id": "value", "multiline": true, "max_length": 1500 } },
            { "type": "input", "block_id": "next", "label": { "type": "plain_text", "text": "Next update in (minutes)" },
              "element": { "type": "number_input", "action_id": "value", "is_decimal_allowed": false,
                "initial_value": default_minutes.to_string(), "min_value": "1", "max_value": max_minutes.to_string() } }
        ]
    })
}

/// `action_id` of the "Done" button on a follow-up's message (its value is the follow-up's number).
pub const FOLLOWUP_DONE_ACTION_ID: &str = "followup_done";
/// `action_id` of the MTTR summary's "Add follow-up" button (its value is the incident id).
pub const FOLLOWUP_ADD_ACTION_ID: &str = "followup_add";
/// `callback_id` of the "Add follow-up" form (its `private_metadata` is the incident id).
pub const FOLLOWUP_FORM_CALLBACK_ID: &str = "followup_form";
/// The "Done" button of follow-up `id` (an `actions` block).
pub fn followup_done_button(id: i64) -> Value {
    json!({ "type": "actions", "block_id": format!("followup:{id}"), "elements": [{
        "type": "button", "action_id": FOLLOWUP_DONE_ACTION_ID, "value": id.to_string(), "style": "primary",
        "text": { "type": "plain_text", "text": "Done" }
    }] })
}

/// The "Add follow-up" button of the MTTR summary of incident `incident_id` (an `actions` block).
pub fn followup_add_button(incident_id: &str) -> Value {
    json!({ "type": "actions", "block_id": "followup_add", "elements": [{
        "type": "button", "action_id": FOLLOWUP_ADD_ACTION_ID, "value": incident_id,
        "text": { "type": "plain_text", "text": "Add follow-up" }
    }] })
}

/// The "Add follow-up" form: what to do, an owner (user select), a due date (date picker).
pub fn followup_form(incident_id: &str, key: &str) -> Value {
    json!({
        "type": "modal",
        "callback_id": FOLLOWUP_FORM_CALLBACK_ID,
        "private_metadata": incident_id,
        "title": { "type": "plain_text", "text": text::cut_plain(&format!("Follow-up · {key}"), 24) },
        "submit": { "type": "plain_text", "text": "Add" },
        "close": { "type": "plain_text", "text": "Cancel" },
        "blocks": [
            { "type": "input", "block_id": "text", "label": { "type": "plain_text", "text": "What should be done?" },
              "element": { "type": "plain_text_input", "action_id": "value", "max_length": crate::domain::followup::TEXT_MAX } },
            { "type": "input", "block_id": "owner", "optional": true, "label": { "type": "plain_text", "text": "Owner" },
              "element": { "type": "users_select", "action_id": "value" } },
            { "type": "input", "block_id": "due", "optional": true, "label": { "type": "plain_text", "text": "Due date" },
              "element": { "type": "datepicker", "action_id": "value" } }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_known_method_has_a_button_that_reads_back() {
        for m in DetectionMethod::KNOWN {
            assert_eq!(detection_from_action_id(&detection_action_id(m)), Some(m));
        }
        assert_eq!(detection_from_action_id("detected_unknown"), None);
        assert_eq!(detection_from_action_id("phase_ack"), None);
        assert_eq!(detection_from_action_id("detected_"), None);
    }
}
