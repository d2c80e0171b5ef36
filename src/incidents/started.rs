//! When impact began, for a declaration that says so (`/incident start … started:14:05`, `started:-20m`, or the
//! declare form's field): reading the time in the declarer's own Slack time zone without calling Slack before
//! the acknowledgement ([`ImpactStart`]). A time in the future (beyond a minute of clock skew) is refused: impact
//! cannot have begun yet.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::command::{not_in_future, TimeSpec, UsageError};
use crate::state::AppState;

/// When impact began, as declared.
///
/// A clock time (`14:05`, `2026-11-25 14:05`) means the declarer's own time zone. Slack does not send it with a
/// command, and no Slack call runs before the acknowledgement: when the bot already knows the zone (remembered
/// for 12 h after any `users.info`), the time is read in it at once; otherwise it is read in
/// `incidents.default_timezone` for the moment, and [`ImpactStart::confirm`] asks Slack after the
/// acknowledgement and corrects the start if the declarer's zone differs.
#[derive(Debug, Clone)]
pub struct ImpactStart {
    /// The instant stored with the declaration.
    pub at: DateTime<Utc>,
    spec: TimeSpec,
    /// The zone a clock time was read in: the declarer's (known), or the default pending confirmation.
    zone: Zone,
    /// When the declaration was typed: clock times are the latest such time before it.
    now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
enum Zone {
    /// Not a clock time: no zone needed.
    None,
    /// The declarer's Slack time zone, already known.
    Known(chrono_tz::Tz),
    /// The default zone, until Slack says the declarer's.
    Default(chrono_tz::Tz),
}

impl ImpactStart {
    /// Reads `spec`, typed by `user` at `now` (see the type's doc). Never calls Slack. A time in the future
    /// (beyond a minute of clock skew) is refused; one read in the default zone is refused only when it is in
    /// the future in every time zone, and [`ImpactStart::confirm`] checks it again in the declarer's.
    pub fn read(
        state: &AppState,
        user: &str,
        spec: TimeSpec,
        now: DateTime<Utc>,
    ) -> Result<ImpactStart, UsageError> {
        let (zone, tz) = match spec {
            TimeSpec::Clock(_) | TimeSpec::Local(_) => match state.slack.known_time_zone(user, now)
            {
                Some(tz) => (Zone::Known(tz), tz),
                None => (Zone::Default(state.default_tz()), state.default_tz()),
            },
            // A moment ago or a time with its own zone: the zone does not matter.
            _ => (Zone::None, state.default_tz()),
        };
        let earliest = match zone {
            // The zone furthest east (UTC+14) gives the earliest instant a wall-clock time can mean.
            Zone::Default(_) => spec.resolve(now, chrono_tz::Pacific::Kiritimati),
            _ => spec.resolve(now, tz),
        };
        not_in_future(&spec, earliest, now)?;
        Ok(ImpactStart {
            at: spec.resolve(now, tz).min(now),
            spec,
            zone,
            now,
        })
    }

    /// A line for the acknowledgement saying how a clock time was read; `None` for other forms.
    pub fn line(&self) -> Option<String> {
        match self.zone {
            Zone::None => None,
            Zone::Known(tz) => Some(format!("Impact started {}.", self.read_as(tz, self.at))),
            Zone::Default(_) => Some(format!(
                "Impact started {}: checking your Slack time zone…",
                self.spec
            )),
        }
    }

    fn read_as(&self, tz: chrono_tz::Tz, at: DateTime<Utc>) -> String {
        format!(
            "{} {} = {}",
            self.spec,
            tz.name(),
            at.format("%Y-%m-%d %H:%M UTC")
        )
    }

    /// After the acknowledgement, when the clock time was read in the default zone: asks Slack for `user`'s
    /// zone; if the time means another instant there, corrects the incident's start (as a `/incident set started`
    /// by `user` would: card, timeline line, every figure); then tells `user` how the time was read (through
    /// `response_url`, else ephemerally in `channel`). Waits for the incident row, stored a few milliseconds
    /// after the acknowledgement.
    pub fn confirm(
        self,
        state: &Arc<AppState>,
        incident_id: String,
        user: String,
        response_url: Option<String>,
        channel: Option<String>,
    ) {
        let Zone::Default(default) = self.zone else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let Some(tz) = state.slack.time_zone(&user, state.clock.now()).await else {
                let text = format!(
                    "Impact started {}: Slack did not say your time zone, so {} was used. If that is wrong: \
                     `/incident set started &lt;time&gt;` in the incident channel.",
                    self.read_as(default, self.at),
                    default.name()
                );
                state
                    .slack
                    .tell(response_url.as_deref(), channel.as_deref(), &user, &text)
                    .await;
                return;
            };
            let meant = self.spec.resolve(self.now, tz);
            if let Err(e) = not_in_future(&self.spec, meant, self.now) {
                let text = self
                    .future_in_users_zone(&state, &incident_id, &user, tz, &e)
                    .await;
                state
                    .slack
                    .tell(response_url.as_deref(), channel.as_deref(), &user, &text)
                    .await;
                return;
            }
            let at = meant.min(self.now);
            let mut text = format!("Impact started {}.", self.read_as(tz, at));
            if at != self.at {
                match correct_start(&state, &incident_id, &user, at).await {
                    Ok(Some(refused)) => {
                        text = format!(
                            "Impact start left at {}: {refused}. Correct it with `/incident set started &lt;time&gt;`.",
                            self.read_as(default, self.at)
                        )
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "could not correct the start of impact to the declarer's time zone");
                        text = format!(
                            "Impact start left at {}: it could not be corrected to your time zone. Correct it with \
                             `/incident set started &lt;time&gt;`.",
                            self.read_as(default, self.at)
                        );
                    }
                }
            }
            state
                .slack
                .tell(response_url.as_deref(), channel.as_deref(), &user, &text)
                .await;
        });
    }
}

impl ImpactStart {
    /// The time typed is in the future in the declarer's own zone (it was not in the default zone): impact is
    /// taken to have started at the declaration, as if no time had been given. Returns what to tell them.
    async fn future_in_users_zone(
        &self,
        state: &Arc<AppState>,
        incident_id: &str,
        user: &str,
        tz: chrono_tz::Tz,
        refusal: &UsageError,
    ) -> String {
        // Stored timestamps are whole milliseconds: the declaration's is not before this.
        let declared = crate::db::from_ms(crate::db::ms(self.now));
        let outcome = if self.at == declared {
            Ok(None)
        } else {
            correct_start(state, incident_id, user, declared).await
        };
        let left_at = match outcome {
            Ok(None) => declared,
            Ok(Some(_)) | Err(_) => self.at,
        };
        format!(
            "In your time zone ({}) {refusal} The start of impact is {}; correct it with \
             `/incident set started &lt;time&gt;` in the incident channel.",
            tz.name(),
            left_at.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

/// Corrects the start of impact of an incident declared a moment ago, once its row is stored (5 s at most).
/// Returns why it was refused, if it was.
async fn correct_start(
    state: &Arc<AppState>,
    incident_id: &str,
    user: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while super::load(&state.db, incident_id).await?.is_none() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the incident was not stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let change = super::phases::Change::Correct {
        target: crate::domain::phase::CorrectionTarget::Started,
        at,
    };
    Ok(
        match super::phases::apply(state, incident_id, change, Some(user)).await? {
            super::phases::Outcome::Applied { .. } => None,
            super::phases::Outcome::Refused { reason } => Some(reason),
        },
    )
}
