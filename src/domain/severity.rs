//! Incident severities (`P1`–`P3`) and how an incident was detected (`alert`, `customer`, `engineer`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How bad an incident is. `P2` when the declarer does not say.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Severity {
    /// Full outage.
    #[serde(alias = "p1")]
    P1,
    /// Major degradation.
    #[default]
    #[serde(alias = "p2")]
    P2,
    /// Minor degradation.
    #[serde(alias = "p3")]
    P3,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 3] = [Severity::P1, Severity::P2, Severity::P3];

    /// Parses `P1`, `p2`, ` P3 ` (any case, surrounding whitespace ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("p1") {
            Some(Severity::P1)
        } else if s.eq_ignore_ascii_case("p2") {
            Some(Severity::P2)
        } else if s.eq_ignore_ascii_case("p3") {
            Some(Severity::P3)
        } else {
            None
        }
    }

    /// `"P1"`, `"P2"` or `"P3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }

    /// What the severity means, for humans: `"full outage"`, …
    pub fn description(self) -> &'static str {
        match self {
            Severity::P1 => "full outage",
            Severity::P2 => "major degradation",
            Severity::P3 => "minor degradation",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who or what noticed the incident first. `unknown` until someone says: the card asks (SPEC section 11).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DetectionMethod {
    /// Nobody has said yet.
    #[default]
    Unknown,
    /// Monitoring fired.
    Alert,
    /// A customer reported it.
    Customer,
    /// An engineer noticed it.
    Engineer,
}

impl DetectionMethod {
    /// The methods a person can name (`via:`, the form, the card's buttons).
    pub const KNOWN: [DetectionMethod; 3] = [
        DetectionMethod::Alert,
        DetectionMethod::Customer,
        DetectionMethod::Engineer,
    ];

    /// Parses `alert`, `customer` or `engineer` (any case, surrounding whitespace ignored); `unknown` is not a
    /// choice anybody makes, so it is not parsed here (see [`DetectionMethod::from_stored`]).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::KNOWN
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// Reads the stored column: one of the known methods, else `unknown`.
    pub fn from_stored(s: &str) -> Self {
        Self::parse(s).unwrap_or_default()
    }

    /// `"unknown"`, `"alert"`, `"customer"` or `"engineer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionMethod::Unknown => "unknown",
            DetectionMethod::Alert => "alert",
            DetectionMethod::Customer => "customer",
            DetectionMethod::Engineer => "engineer",
        }
    }
}

impl fmt::Display for DetectionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_parses_in_any_case() {
        assert_eq!(Severity::parse("P1"), Some(Severity::P1));
        assert_eq!(Severity::parse("p2"), Some(Severity::P2));
        assert_eq!(Severity::parse(" P3 "), Some(Severity::P3));
    }

    #[test]
    fn unknown_severities_are_rejected() {
        for bad in ["P9", "P0", "1", "sev1", "", "P", "p1x"] {
            assert_eq!(Severity::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn default_severity_is_p2_and_default_detection_is_unknown() {
        assert_eq!(Severity::default(), Severity::P2);
        assert_eq!(DetectionMethod::default(), DetectionMethod::Unknown);
    }

    #[test]
    fn severity_names_and_descriptions_match_the_spec() {
        assert_eq!(Severity::P1.to_string(), "P1");
        assert_eq!(Severity::P1.description(), "full outage");
        assert_eq!(Severity::P2.description(), "major degradation");
        assert_eq!(Severity::P3.description(), "minor degradation");
    }

    #[test]
    fn severity_serialises_as_its_name() {
        assert_eq!(serde_json::to_string(&Severity::P1).unwrap(), "\"P1\"");
        let back: Severity = serde_json::from_str("\"P3\"").unwrap();
        assert_eq!(back, Severity::P3);
        let lower: Severity = serde_json::from_str("\"p1\"").unwrap();
        assert_eq!(lower, Severity::P1);
    }

    #[test]
    fn detection_method_round_trips_through_text_and_serde() {
        for m in DetectionMethod::KNOWN {
            assert_eq!(DetectionMethod::parse(m.as_str()), Some(m));
            assert_eq!(DetectionMethod::from_stored(m.as_str()), m);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
        }
        assert_eq!(
            DetectionMethod::parse("Customer"),
            Some(DetectionMethod::Customer)
        );
        assert_eq!(DetectionMethod::parse("pager"), None);
        assert_eq!(DetectionMethod::parse("unknown"), None, "not a choice");
        assert_eq!(
            DetectionMethod::from_stored("unknown"),
            DetectionMethod::Unknown
        );
        assert_eq!(
            serde_json::to_string(&DetectionMethod::Unknown).unwrap(),
            "\"unknown\""
        );
    }
}
