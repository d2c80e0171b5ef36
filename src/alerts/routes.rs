//! The configured alert routes (`[[alerts.routes]]`) read into [`Route`]s, and what `check-config` says about
//! them: a matcher that does not parse, an unknown action or severity, a service the catalog does not know.

use crate::catalog::Catalog;
use crate::config::{AlertRouteSettings, AlertSettings};
use crate::domain::alert::{Action, Matcher, Route};
use crate::domain::severity::Severity;

/// One route read, or every problem with it as `(dotted key, message)`.
fn read(i: usize, r: &AlertRouteSettings) -> Result<Route, Vec<(String, String)>> {
    let key = |k: &str| format!("alerts.routes.{i}.{k}");
    let mut problems = Vec::new();
    let mut matchers = Vec::new();
    for (j, m) in r.matchers.iter().enumerate() {
        match Matcher::parse(m) {
            Ok(m) => matchers.push(m),
            Err(e) => problems.push((format!("{}.{j}", key("matchers")), e)),
        }
    }
    let action = Action::parse(&r.action).ok_or_else(|| {
        (
            key("action"),
            format!(
                "unknown action {:?}: expected declare, attach or notify",
                r.action
            ),
        )
    });
    let severity = match r.severity.as_deref() {
        None => Ok(None),
        Some(s) => Severity::parse(s).map(Some).ok_or_else(|| {
            (
                key("severity"),
                format!("unknown severity {s:?}: expected P1, P2 or P3"),
            )
        }),
    };
    let (action, severity) = match (action, severity) {
        (Ok(a), Ok(s)) if problems.is_empty() => (a, s),
        (a, s) => {
            problems.extend(a.err());
            problems.extend(s.err());
            return Err(problems);
        }
    };
    Ok(Route {
        matchers,
        service: r.service.clone(),
        severity,
        action,
        auto_resolve: r.auto_resolve,
    })
}

/// The routes in order; a route with a problem is left out (`serve` refuses to start with one, see
/// [`check`]).
pub fn compile(settings: &AlertSettings) -> Vec<Route> {
    settings
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| read(i, r).ok())
        .collect()
}

/// Every problem of the configured routes as `(dotted key, message)`; services are checked against `catalog`
/// (when it could be read).
pub fn check(settings: &AlertSettings, catalog: Option<&Catalog>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, r) in settings.routes.iter().enumerate() {
        if let Err(problems) = read(i, r) {
            out.extend(problems);
        }
        if let (Some(service), Some(catalog)) = (&r.service, catalog) {
            if catalog.get(service).is_none() {
                let hint = catalog.suggest(service, &[]);
                let mut msg = format!("no service called {service:?} in the catalog");
                if let Some(first) = hint.first() {
                    msg.push_str(&format!("; did you mean {first:?}?"));
                }
                out.push((format!("alerts.routes.{i}.service"), msg));
            }
        }
        if r.matchers.is_empty() {
            // Legal (it matches every alert), but every route after it is then unreachable.
            if i + 1 < settings.routes.len() {
                out.push((
                    format!("alerts.routes.{i}.matchers"),
                    "no matchers: this route takes every alert, so the routes after it never match"
                        .into(),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(matchers: &[&str], service: Option<&str>, action: &str) -> AlertRouteSettings {
        AlertRouteSettings {
            matchers: matchers.iter().map(|m| m.to_string()).collect(),
            service: service.map(str::to_string),
            severity: Some("P1".into()),
            action: action.into(),
            auto_resolve: false,
        }
    }

    #[test]
    fn bad_matchers_unknown_actions_and_unknown_services_are_named_by_key() {
        let catalog = Catalog::parse(include_str!("../../config/catalog.yaml")).unwrap();
        let settings = AlertSettings {
            routes: vec![
                route(&["team=\"payments\""], Some("payments"), "declare"),
                route(&["severity=~\"(\""], None, "declare"),
                route(&["team=x"], None, "escalate"),
                route(&["team=y"], Some("paymnets"), "attach"),
            ],
            ..AlertSettings::default()
        };
        let problems = check(&settings, Some(&catalog));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "alerts.routes.1.matchers.0",
                "alerts.routes.2.action",
                "alerts.routes.3.service"
            ]
        );
        assert!(problems[2].1.contains("did you mean \"payments\""));
        assert_eq!(compile(&settings).len(), 2, "the two good routes");
    }
}
