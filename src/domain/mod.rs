//! Pure domain logic: no I/O, no clocks read here — callers pass `now`.
//!
//! - [`severity`]: `P1`–`P3` and the detection method.
//! - [`incident`], [`deploy`], [`period`]: an incident as stored, deploy events, a span of time (data).
//! - [`alert`]: alerts from Alertmanager, Grafana, Datadog, PagerDuty and the generic API read into one shape, and
//!   the routes that decide what each does.
//! - [`phase`]: milestones, the incident timeline state machine (skip rule, reopen, close, corrections).
//! - [`mttr`]: phase breakdown, shares, tiers, medians.
//! - [`duration`]: the one grammar for typed spans (`15m`, `1h30m`) and the human format of durations.
//! - [`command`]: parsing `/incident …` text and user-typed times.
//! - [`slug`]: war-room channel names.
//! - [`text`]: untrusted text → Slack text (escaping, invisible characters, links, limits), and titles.
//! - [`question`]: reading deploy questions asked of the bot (`was there a deploy to X recently?`).
//! - [`timeline`]: an incident's timeline (captured messages included) for Slack and for export.
//! - [`followup`]: follow-ups (`/incident followup`), their reminder time and their lines.
//! - [`postmortem`]: the postmortem draft (Markdown) of an incident.

pub mod alert;
pub mod command;
pub mod deploy;
pub mod duration;
pub mod followup;
pub mod incident;
pub mod mttr;
pub mod period;
pub mod phase;
pub mod postmortem;
pub mod question;
pub mod severity;
pub mod slug;
pub mod text;
pub mod timeline;

pub use command::{parse_time_spec, parse_window, Command, StartArgs, TimeSpec, UsageError, USAGE};
pub use duration::format_duration;
pub use mttr::{bar, breakdown, median, tier, tier_bounds, Breakdown, PhaseKind, PhaseSpan, Tier};
pub use phase::{
    CorrectionError, CorrectionTarget, Milestone, Stamp, Status, Timeline, Transition,
    TransitionError,
};
pub use severity::{DetectionMethod, Severity};
pub use slug::{channel_name, with_suffix};
