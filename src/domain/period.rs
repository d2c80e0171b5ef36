//! A half-open interval of time: the span a digest or a report covers.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// A half-open interval of time `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Period {
        Period {
            start: start.min(end),
            end,
        }
    }

    /// The `days` days up to `end`.
    pub fn days_before(end: DateTime<Utc>, days: i64) -> Period {
        Period::new(end - Duration::days(days), end)
    }

    /// The period of the same length right before this one.
    pub fn previous(&self) -> Period {
        let len = self.end - self.start;
        Period::new(self.start - len, self.start)
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}
