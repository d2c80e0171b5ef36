//! CI/CD webhook payloads as deploy events. Pure: the HTTP side (`crate::http::webhooks`) checks the
//! signature or token first, then hands the parsed body here.
//!
//! - GitHub `deployment_status` with state `success` → a deploy. Service: `deployment.payload.service` if the
//!   workflow sets one (monorepos), else the repository mapped through the catalog
//!   (`github.com/project-slug`, then the repo name against service names and aliases), else the repo
//!   name. Dedup id `github:<owner/repo>:<deployment id>`, so a redelivery or a second `success` status of the
//!   same deployment changes nothing (the delivery GUID is used only when there is no deployment id).
//! - GitLab `Deployment Hook` with status `success` → a deploy; project via `gitlab.com/project-slug`, then
//!   its last path segment; id `gitlab:<project id>:<deployment id>`.
//! - Argo CD: the JSON body of the notifications template documented in README.md (`app`, `phase`,
//!   `revision`, `finishedAt`, `url`, `author`, `environment`, optional `version` and `id`); app via
//!   `argocd/app-name`, then names and aliases. Go templates render missing values as `<no value>`: treated
//!   as absent. A `phase` other than `Succeeded` is ignored; a body without one is refused (`400` naming
//!   `phase`): the documented template always sends it, so its absence means a template that cannot tell a
//!   successful sync from a failed one, and storing that as a deploy would invent production deploys.
//!
//! Everything else (pings, other events, other states) is [`Outcome::Ignored`] — acknowledged, not stored.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::input::{parse_instant, DeployFields, FieldError};
use crate::catalog::{Catalog, RepoKind};

/// What a webhook delivery amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A deploy to store (still to be checked by [`super::input::validate`]).
    Deploy(DeployFields),
    /// Acknowledged and not stored, with the reason (`ping`, `deployment_status failure`, …).
    Ignored(String),
}

/// A non-empty string at a JSON pointer (`/deployment/sha`), skipping Go's `<no value>`.
fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s != "<no value>").then(|| s.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn first_of(v: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| text(v, p))
}

fn service_for(catalog: &Catalog, kind: RepoKind, key: &str, fallback: &str) -> String {
    catalog
        .resolve_deploy_source(kind, key)
        .map_or_else(|| fallback.to_string(), |s| s.name.clone())
}

/// An instant in RFC 3339 (checked now, so that the error names the payload's field).
fn instant(field: &str, v: Option<String>) -> Result<Option<String>, FieldError> {
    match v {
        None => Ok(None),
        Some(t) => parse_instant(field, &t).map(|d| Some(d.to_rfc3339())),
    }
}

/// A GitHub delivery: `event` is `X-GitHub-Event`, `delivery` is `X-GitHub-Delivery`.
pub fn github(
    event: &str,
    delivery: Option<&str>,
    body: &Value,
    catalog: &Catalog,
) -> Result<Outcome, FieldError> {
    if event != "deployment_status" {
        return Ok(Outcome::Ignored(format!("{event} event")));
    }
    let state = text(body, "/deployment_status/state")
        .ok_or_else(|| FieldError::new("deployment_status.state", "missing"))?;
    if state != "success" {
        return Ok(Outcome::Ignored(format!("deployment_status {state}")));
    }
    let full_name = text(body, "/repository/full_name")
        .ok_or_else(|| FieldError::new("repository.full_name", "missing"))?;
    let repo_name = text(body, "/repository/name").unwrap_or_else(|| {
        full_name
            .rsplit('/')
            .next()
            .unwrap_or(&full_name)
            .to_string()
    });
    let service = match text(body, "/deployment/payload/service") {
        Some(s) => service_for(catalog, RepoKind::Name, &s, &s),
        None => service_for(catalog, RepoKind::GitHub, &full_name, &repo_name),
    };
    let sha = text(body, "/deployment/sha");
    let url = first_of(
        body,
        &[
            "/deployment_status/target_url",
            "/deployment_status/log_url",
            "/deployment_status/environment_url",
        ],
    )
    .or_else(|| {
        let repo_url = text(body, "/repository/html_url")?;
        Some(match &sha {
            Some(sha) => format!("{repo_url}/commit/{sha}"),
            None => repo_url,
        })
    });
    let id = match text(body, "/deployment/id") {
        Some(dep) => Some(format!("github:{full_name}:{dep}")),
        None => delivery
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| format!("github-delivery:{d}")),
    };
    Ok(Outcome::Deploy(DeployFields {
        id,
        service: Some(service),
        environment: first_of(
            body,
            &["/deployment_status/environment", "/deployment/environment"],
        ),
        version: first_of(body, &["/deployment/payload/version", "/deployment/ref"]),
        commit_sha: sha,
        url,
        author: first_of(
            body,
            &[
                "/deployment/creator/login",
                "/deployment_status/creator/login",
                "/sender/login",
            ],
        ),
        deployed_at: instant(
            "deployment_status.created_at",
            first_of(
                body,
                &[
                    "/deployment_status/created_at",
                    "/deployment_status/updated_at",
                ],
            ),
        )?,
        source: Some("github".into()),
    }))
}

/// GitLab's `status_changed_at`: `2021-04-28 21:50:00 +0200` (RFC 3339 accepted too).
fn gitlab_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(v.trim(), "%Y-%m-%d %H:%M:%S %z")
        .or_else(|_| DateTime::parse_from_rfc3339(v.trim()))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// A GitLab delivery: `event` is `X-Gitlab-Event`.
pub fn gitlab(event: Option<&str>, body: &Value, catalog: &Catalog) -> Result<Outcome, FieldError> {
    let kind = text(body, "/object_kind").unwrap_or_default();
    if kind != "deployment" {
        let what = event
            .map(str::to_string)
            .unwrap_or_else(|| format!("object_kind {kind}"));
        return Ok(Outcome::Ignored(format!("{what} event")));
    }
    let status = text(body, "/status").ok_or_else(|| FieldError::new("status", "missing"))?;
    if status != "success" {
        return Ok(Outcome::Ignored(format!("deployment {status}")));
    }
    let path = text(body, "/project/path_with_namespace")
        .ok_or_else(|| FieldError::new("project.path_with_namespace", "missing"))?;
    let name = text(body, "/project/name")
        .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(&path).to_string());
    let commit_sha = text(body, "/commit_url")
        .and_then(|u| u.rsplit('/').next().map(str::to_string))
        .filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()))
        .or_else(|| text(body, "/short_sha"));
    let deployed_at = match text(body, "/status_changed_at") {
        None => None,
        Some(t) => Some(
            gitlab_time(&t)
                .ok_or_else(|| {
                    FieldError::new(
                        "status_changed_at",
                        format!("`{t}` is not a time like 2021-04-28 21:50:00 +0200"),
                    )
                })?
                .to_rfc3339(),
        ),
    };
    let id = match (text(body, "/project/id"), text(body, "/deployment_id")) {
        (Some(p), Some(d)) => Some(format!("gitlab:{p}:{d}")),
        (None, Some(d)) => Some(format!("gitlab:{path}:{d}")),
        _ => None,
    };
    Ok(Outcome::Deploy(DeployFields {
        id,
        service: Some(service_for(catalog, RepoKind::GitLab, &path, &name)),
        environment: text(body, "/environment"),
        version: None,
        commit_sha,
        url: first_of(
            body,
            &[
                "/deployable_url",
                "/commit_url",
                "/environment_external_url",
            ],
        ),
        author: first_of(body, &["/user/username", "/user_username", "/user/name"]),
        deployed_at,
        source: Some("gitlab".into()),
    }))
}

/// An Argo CD notification rendered by the template in README.md.
pub fn argocd(body: &Value, catalog: &Catalog) -> Result<Outcome, FieldError> {
    if !body.is_object() {
        return Err(FieldError::new(
            "body",
            "expected the JSON object of the incident-bot notifications template (see README)",
        ));
    }
    let app = text(body, "/app").ok_or_else(|| FieldError::new("app", "missing"))?;
    let phase = text(body, "/phase").ok_or_else(|| {
        FieldError::new(
            "phase",
            "missing: the template must send the sync phase (`{{.app.status.operationState.phase}}`, see README)",
        )
    })?;
    if phase != "Succeeded" {
        return Ok(Outcome::Ignored(format!("sync phase {phase}")));
    }
    let revision = text(body, "/revision");
    let finished_at = instant("finishedAt", text(body, "/finishedAt"))?;
    let id = text(body, "/id").or_else(|| {
        let rev = revision.as_deref()?;
        Some(match &finished_at {
            Some(at) => format!("argocd:{app}:{rev}:{at}"),
            None => format!("argocd:{app}:{rev}"),
        })
    });
    let commit_sha = revision
        .clone()
        .filter(|r| (7..=64).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit()));
    let version = text(body, "/version").or_else(|| {
        // A revision that is not a commit (a Helm chart version, a tag) is the version.
        revision.clone().filter(|_| commit_sha.is_none())
    });
    Ok(Outcome::Deploy(DeployFields {
        id,
        service: Some(service_for(catalog, RepoKind::ArgoCd, &app, &app)),
        environment: text(body, "/environment"),
        version,
        commit_sha,
        url: text(body, "/url"),
        author: text(body, "/author"),
        deployed_at: finished_at,
        source: Some("argocd".into()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GITHUB: &str = include_str!("../../tests/fixtures/github_deployment_status.json");
    const GITHUB_PING: &str = include_str!("../../tests/fixtures/github_ping.json");
    const GITLAB: &str = include_str!("../../tests/fixtures/gitlab_deployment.json");

    fn catalog() -> Catalog {
        Catalog::parse(include_str!("../../config/catalog.yaml")).expect("shipped catalog")
    }

    fn deploy(o: Outcome) -> DeployFields {
        match o {
            Outcome::Deploy(d) => d,
            Outcome::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn githubs_example_deployment_status_becomes_a_deploy_of_the_repo() {
        let body: Value = serde_json::from_str(GITHUB).unwrap();
        let d = deploy(github("deployment_status", Some("guid-1"), &body, &catalog()).unwrap());
        assert_eq!(
            d,
            DeployFields {
                id: Some("github:Codertocat/Hello-World:145988746".into()),
                service: Some("Hello-World".into()),
                environment: Some("production".into()),
                version: Some("master".into()),
                commit_sha: Some("f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into()),
                url: Some(
                    "https://github.com/Codertocat/Hello-World/commit/f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
                        .into()
                ),
                author: Some("Codertocat".into()),
                deployed_at: Some("2019-05-15T15:20:55+00:00".into()),
                source: Some("github".into()),
            }
        );
    }

    #[test]
    fn a_github_repo_with_a_project_slug_maps_to_its_service() {
        let mut body: Value = serde_json::from_str(GITHUB).unwrap();
        body["repository"]["full_name"] = json!("acme/payments-api");
        body["repository"]["name"] = json!("payments-api");
        let d = deploy(github("deployment_status", None, &body, &catalog()).unwrap());
        assert_eq!(d.service.as_deref(), Some("payments"));
        body["repository"]["full_name"] = json!("acme/checkout-web");
        let d = deploy(github("deployment_status", None, &body, &catalog()).unwrap());
        assert_eq!(
            d.service.as_deref(),
            Some("checkout"),
            "repo name matches an alias"
        );
        body["deployment"]["payload"] = json!({ "service": "auth", "version": "v7.2.1" });
        let d = deploy(github("deployment_status", None, &body, &catalog()).unwrap());
        assert_eq!(d.service.as_deref(), Some("auth"));
        assert_eq!(d.version.as_deref(), Some("v7.2.1"));
    }

    #[test]
    fn github_pings_other_events_and_other_states_are_ignored() {
        let ping: Value = serde_json::from_str(GITHUB_PING).unwrap();
        assert_eq!(
            github("ping", None, &ping, &catalog()).unwrap(),
            Outcome::Ignored("ping event".into())
        );
        let mut body: Value = serde_json::from_str(GITHUB).unwrap();
        body["deployment_status"]["state"] = json!("failure");
        assert_eq!(
            github("deployment_status", None, &body, &catalog()).unwrap(),
            Outcome::Ignored("deployment_status failure".into())
        );
        assert!(matches!(
            github("push", None, &body, &catalog()).unwrap(),
            Outcome::Ignored(_)
        ));
    }

    #[test]
    fn a_github_payload_without_its_repository_names_the_field() {
        let mut body: Value = serde_json::from_str(GITHUB).unwrap();
        body.as_object_mut().unwrap().remove("repository");
        assert_eq!(
            github("deployment_status", None, &body, &catalog())
                .unwrap_err()
                .field,
            "repository.full_name"
        );
    }

    #[test]
    fn gitlabs_example_deployment_becomes_a_deploy() {
        let body: Value = serde_json::from_str(GITLAB).unwrap();
        let d = deploy(gitlab(Some("Deployment Hook"), &body, &catalog()).unwrap());
        assert_eq!(d.id.as_deref(), Some("gitlab:30:15"));
        assert_eq!(d.service.as_deref(), Some("test-deployment-webhooks"));
        assert_eq!(d.environment.as_deref(), Some("staging"));
        assert_eq!(
            d.commit_sha.as_deref(),
            Some("279484c09fbe69ededfced8c1bb6e6d24616b468")
        );
        assert_eq!(
            d.url.as_deref(),
            Some("http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796")
        );
        assert_eq!(d.author.as_deref(), Some("root"));
        assert_eq!(d.deployed_at.as_deref(), Some("2021-04-28T19:50:00+00:00"));
    }

    #[test]
    fn a_gitlab_project_with_a_project_slug_maps_to_its_service() {
        let mut body: Value = serde_json::from_str(GITLAB).unwrap();
        body["project"]["path_with_namespace"] = json!("acme/discovery/search-service");
        let d = deploy(gitlab(None, &body, &catalog()).unwrap());
        assert_eq!(d.service.as_deref(), Some("search"));
    }

    #[test]
    fn gitlab_deployments_that_did_not_succeed_and_other_hooks_are_ignored() {
        let mut body: Value = serde_json::from_str(GITLAB).unwrap();
        body["status"] = json!("running");
        assert_eq!(
            gitlab(Some("Deployment Hook"), &body, &catalog()).unwrap(),
            Outcome::Ignored("deployment running".into())
        );
        let push = json!({ "object_kind": "push" });
        assert_eq!(
            gitlab(Some("Push Hook"), &push, &catalog()).unwrap(),
            Outcome::Ignored("Push Hook event".into())
        );
    }

    #[test]
    fn the_documented_argocd_template_body_becomes_a_deploy() {
        let body = json!({
            "app": "payments-prod",
            "phase": "Succeeded",
            "revision": "f3937462080c6946ff5ec4b5fa393e7c22388e4c",
            "finishedAt": "2026-11-25T14:02:11Z",
            "url": "https://argocd.acme.example/applications/payments-prod",
            "author": "<no value>",
            "environment": "production"
        });
        let d = deploy(argocd(&body, &catalog()).unwrap());
        assert_eq!(d.service.as_deref(), Some("payments"));
        assert_eq!(
            d.id.as_deref(),
            Some("argocd:payments-prod:f3937462080c6946ff5ec4b5fa393e7c22388e4c:2026-11-25T14:02:11+00:00")
        );
        assert_eq!(d.author, None, "Go's <no value> is absent");
        assert_eq!(d.version, None);
        assert_eq!(
            d.commit_sha.as_deref(),
            Some("f3937462080c6946ff5ec4b5fa393e7c22388e4c")
        );
    }

    #[test]
    fn an_argocd_app_not_in_the_catalog_keeps_its_name_and_a_failed_sync_is_ignored() {
        let d = deploy(
            argocd(
                &json!({ "app": "billing-prod", "phase": "Succeeded", "revision": "1.4.0" }),
                &catalog(),
            )
            .unwrap(),
        );
        assert_eq!(d.service.as_deref(), Some("billing-prod"));
        assert_eq!(d.version.as_deref(), Some("1.4.0"));
        assert_eq!(
            argocd(&json!({ "app": "x", "phase": "Failed" }), &catalog()).unwrap(),
            Outcome::Ignored("sync phase Failed".into())
        );
        assert_eq!(
            argocd(&json!({ "phase": "Succeeded" }), &catalog())
                .unwrap_err()
                .field,
            "app"
        );
        assert_eq!(
            argocd(
                &json!({ "app": "x", "phase": "Succeeded", "finishedAt": "soon" }),
                &catalog()
            )
            .unwrap_err()
            .field,
            "finishedAt"
        );
    }

    #[test]
    fn an_argocd_body_without_a_phase_is_refused_naming_it() {
        for body in [
            json!({ "app": "payments-prod", "revision": "f3937462080c6946ff5ec4b5fa393e7c22388e4c" }),
            json!({ "app": "payments-prod", "phase": "<no value>", "revision": "1.4.0" }),
            json!({ "app": "payments-prod", "phase": "", "revision": "1.4.0" }),
            json!({ "app": "payments-prod", "phase": null }),
        ] {
            let e = argocd(&body, &catalog()).unwrap_err();
            assert_eq!(e.field, "phase", "{body}");
        }
    }
}
