//! Web API conformance: checks that every call the bot made to the Slack stand-in uses a real Slack method
//! and real parameter names, against Slack's published Web API spec
//! (`tests/fixtures/slack_web_openapi_v2.json`, Swagger 2.0, Oct 2020) plus a hand-written table of the
//! methods published after it.

// Not every test uses every helper of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use incident_bot::standins::slack::RecordedCall;
use serde_json::Value;

/// Where Slack's Web API spec lives, relative to this crate.
pub const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/slack_web_openapi_v2.json"
);

/// Methods newer than the Oct 2020 spec, with the argument names their documentation lists
/// (docs.slack.dev/reference/methods/<method>). Added by hand; keep in step with Slack's docs.
pub const METHODS_NEWER_THAN_SPEC: &[(&str, &[&str])] = &[
    (
        "bookmarks.add",
        &[
            "channel_id",
            "title",
            "type",
            "link",
            "emoji",
            "entity_id",
            "parent_id",
            "access_level",
        ],
    ),
    ("bookmarks.list", &["channel_id"]),
    (
        "files.getUploadURLExternal",
        &["filename", "length", "alt_txt", "snippet_type"],
    ),
    (
        "files.completeUploadExternal",
        &[
            "files",
            "channel_id",
            "initial_comment",
            "thread_ts",
            "channels",
        ],
    ),
];

/// Parameters never checked: the bot sends its token as an `Authorization` header, not as a parameter.
const IGNORED_PARAMS: &[&str] = &["token"];

/// Slack's Web API methods and the parameter names each accepts.
pub struct SlackSpec {
    methods: BTreeMap<String, BTreeSet<String>>,
}

impl SlackSpec {
    /// Loads the spec from [`SPEC_PATH`] and adds [`METHODS_NEWER_THAN_SPEC`].
    pub fn load() -> Result<SlackSpec, String> {
        let text = std::fs::read_to_string(SPEC_PATH)
            .map_err(|e| format!("cannot read {SPEC_PATH}: {e}"))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("{SPEC_PATH} is not JSON: {e}"))?;
        SlackSpec::from_swagger(&doc)
    }

    /// Builds the table from a Swagger 2.0 document (`paths["/<method>"][verb].parameters[].name`),
    /// plus [`METHODS_NEWER_THAN_SPEC`].
    pub fn from_swagger(doc: &Value) -> Result<SlackSpec, String> {
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("the spec has no `paths` object")?;
        let mut methods: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (path, verbs) in paths {
            let method = path.trim_start_matches('/').to_string();
            let params = methods.entry(method).or_default();
            for op in verbs.as_object().into_iter().flat_map(|o| o.values()) {
                for p in op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = p.get("name").and_then(Value::as_str) {
                        params.insert(name.to_string());
                    }
                }
            }
        }
        for (method, params) in METHODS_NEWER_THAN_SPEC {
            methods
                .entry((*method).to_string())
                .or_default()
                .extend(params.iter().map(|p| (*p).to_string()));
        }
        Ok(SlackSpec { methods })
    }

    /// Whether `method` is a known Web API method.
    pub fn has_method(&self, method: &str) -> bool {
        self.methods.contains_key(method)
    }

    /// The parameter names `method` accepts, if it is known.
    pub fn params(&self, method: &str) -> Option<&BTreeSet<String>> {
        self.methods.get(method)
    }

    /// One line per problem: a method Slack does not have, or a parameter the method does not take.
    pub fn violations(&self, calls: &[RecordedCall]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, call) in calls.iter().enumerate() {
            let Some(known) = self.methods.get(&call.method) else {
                out.push(format!(
                    "call #{i}: `{}` is not a Slack Web API method",
                    call.method
                ));
                continue;
            };
            for name in call.params.keys() {
                if IGNORED_PARAMS.contains(&name.as_str()) || known.contains(name) {
                    continue;
                }
                out.push(format!(
                    "call #{i}: `{}` has no parameter `{name}` (it takes: {})",
                    call.method,
                    known
                        .iter()
                        .filter(|p| !IGNORED_PARAMS.contains(&p.as_str()))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        out
    }

    /// Panics with every violation listed, if there is any.
    pub fn assert_conforms(&self, calls: &[RecordedCall]) {
        let problems = self.violations(calls);
        assert!(
            problems.is_empty(),
            "Slack Web API calls that do not match Slack's spec:\n{}",
            problems.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};
    use std::time::Instant;

    fn call(method: &str, params: Value) -> RecordedCall {
        RecordedCall {
            method: method.to_string(),
            params: params.as_object().cloned().unwrap_or_else(Map::new),
            content_type: "application/json; charset=utf-8".into(),
            http_method: "POST".into(),
            at: Instant::now(),
        }
    }

    #[test]
    fn calls_with_real_methods_and_parameters_pass() {
        let spec = SlackSpec::load().expect("spec");
        let calls = [
            call(
                "conversations.create",
                json!({"name": "inc-1-db", "is_private": false}),
            ),
            call(
                "chat.postMessage",
                json!({"channel": "C1", "text": "hi", "blocks": [], "thread_ts": "1.2", "token": "xoxb-1"}),
            ),
            call(
                "bookmarks.add",
                json!({"channel_id": "C1", "title": "Runbook", "type": "link", "link": "https://x"}),
            ),
            call(
                "files.completeUploadExternal",
                json!({"files": [{"id": "F1", "title": "t"}], "channel_id": "C1"}),
            ),
        ];
        assert_eq!(spec.violations(&calls), Vec::<String>::new());
    }

    #[test]
    fn a_misspelt_parameter_is_reported() {
        let spec = SlackSpec::load().expect("spec");
        let problems = spec.violations(&[call(
            "chat.postMessage",
            json!({"channel": "C1", "txet": "hi"}),
        )]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("`txet`"), "{problems:?}");
    }

    #[test]
    fn a_method_slack_does_not_have_is_reported() {
        let spec = SlackSpec::load().expect("spec");
        let problems = spec.violations(&[call("chat.postMesage", json!({"channel": "C1"}))]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("chat.postMesage"));
        assert!(spec.has_method("conversations.invite"));
    }
}
