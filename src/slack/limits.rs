//! Slack's size limits on what a message or a view may hold, as Slack checks them: the Slack stand-in refuses
//! what breaks them with Slack's error (`invalid_blocks`, `msg_too_long`, `invalid_arguments`), and tests check
//! the bot's renderers against them. The limits themselves are [`crate::domain::text`]'s constants.
//!
//! Checked (from Slack's Block Kit reference): blocks per message (50) and per modal (100); `block_id` and
//! `action_id` 255; `section` text 3,000, up to 10 `fields` of 2,000; `header` text 150; `context` up to 10
//! elements of 3,000; `actions` up to 25 elements; button text 75, value 2,000, url 3,000; option text 75, value
//! 150, up to 100 options; input label 2,000; modal title, submit and close 24, `private_metadata` 3,000; a
//! message's `text` 40,000.

use serde_json::Value;

use crate::domain::text::{
    BUTTON_TEXT, FIELD_TEXT, HEADER_TEXT, MESSAGE_BLOCKS, MESSAGE_TEXT, MODAL_BLOCKS, OPTION_TEXT,
    SECTION_TEXT,
};

/// Why Slack would refuse it: Slack's error code and what broke the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub detail: String,
}

fn len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

fn over(what: &str, v: &Value, max: usize) -> Result<(), String> {
    let n = len(v);
    if n > max {
        Err(format!("{what}: {n} characters, more than {max}"))
    } else {
        Ok(())
    }
}

fn text_obj(what: &str, t: &Value, max: usize) -> Result<(), String> {
    over(what, &t["text"], max)
}

fn many(what: &str, v: &Value, max: usize) -> Result<(), String> {
    let n = v.as_array().map_or(0, Vec::len);
    if n > max {
        Err(format!("{what}: {n} items, more than {max}"))
    } else {
        Ok(())
    }
}

fn element(e: &Value) -> Result<(), String> {
    over("action_id", &e["action_id"], 255)?;
    match e["type"].as_str().unwrap_or_default() {
        "button" => {
            text_obj("button text", &e["text"], BUTTON_TEXT)?;
            over("button value", &e["value"], 2_000)?;
            over("button url", &e["url"], 3_000)
        }
        "static_select" => {
            many("options", &e["options"], 100)?;
            let initial = std::iter::once(&e["initial_option"]).filter(|o| !o.is_null());
            for o in e["options"].as_array().into_iter().flatten().chain(initial) {
                text_obj("option text", &o["text"], OPTION_TEXT)?;
                over("option value", &o["value"], 150)?;
            }
            Ok(())
        }
        "plain_text_input" => over("initial_value", &e["initial_value"], 3_000),
        _ => Ok(()),
    }
}

fn block(b: &Value) -> Result<(), String> {
    over("block_id", &b["block_id"], 255)?;
    match b["type"].as_str().unwrap_or_default() {
        "section" => {
            if b["text"].is_null() && b["fields"].is_null() {
                return Err("section without text or fields".into());
            }
            text_obj("section text", &b["text"], SECTION_TEXT)?;
            many("section fields", &b["fields"], 10)?;
            for f in b["fields"].as_array().into_iter().flatten() {
                text_obj("section field", f, FIELD_TEXT)?;
            }
            if !b["accessory"].is_null() {
                element(&b["accessory"])?;
            }
            Ok(())
        }
        "header" => text_obj("header text", &b["text"], HEADER_TEXT),
        "context" => {
            many("context elements", &b["elements"], 10)?;
            for e in b["elements"].as_array().into_iter().flatten() {
                text_obj("context element", e, SECTION_TEXT)?;
            }
            Ok(())
        }
        "actions" => {
            many("actions elements", &b["elements"], 25)?;
            b["elements"]
                .as_array()
                .into_iter()
                .flatten()
                .try_for_each(element)
        }
        "input" => {
            text_obj("input label", &b["label"], 2_000)?;
            element(&b["element"])
        }
        _ => Ok(()),
    }
}

fn blocks(list: &Value, max: usize) -> Result<(), String> {
    let Some(items) = list.as_array() else {
        return Err("blocks is not an array".into());
    };
    if items.len() > max {
        return Err(format!("{} blocks, more than {max}", items.len()));
    }
    items.iter().try_for_each(block)
}

/// What `chat.postMessage`, `chat.update` and `chat.postEphemeral` would say of a message with this `text` and
/// these `blocks`.
pub fn check_message(text: Option<&str>, blocks_json: Option<&Value>) -> Result<(), Refusal> {
    if let Some(t) = text {
        let n = t.chars().count();
        if n > MESSAGE_TEXT {
            return Err(Refusal {
                code: "msg_too_long",
                detail: format!("text: {n} characters, more than {MESSAGE_TEXT}"),
            });
        }
    }
    match blocks_json {
        Some(b) => blocks(b, MESSAGE_BLOCKS).map_err(|detail| Refusal {
            code: "invalid_blocks",
            detail,
        }),
        None => Ok(()),
    }
}

/// What `views.open` would say of this view.
pub fn check_view(view: &Value) -> Result<(), Refusal> {
    let fail = |detail: String| Refusal {
        code: "invalid_arguments",
        detail,
    };
    for key in ["title", "submit", "close"] {
        text_obj(key, &view[key], 24).map_err(fail)?;
    }
    over("private_metadata", &view["private_metadata"], 3_000).map_err(fail)?;
    over("callback_id", &view["callback_id"], 255).map_err(fail)?;
    blocks(&view["blocks"], MODAL_BLOCKS).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slack_refuses_what_breaks_its_limits() {
        let section = |n: usize| json!({ "type": "section", "text": { "type": "mrkdwn", "text": "x".repeat(n) } });
        assert!(check_message(Some("hi"), Some(&json!([section(3_000)]))).is_ok());
        assert_eq!(
            check_message(None, Some(&json!([section(3_001)])))
                .unwrap_err()
                .code,
            "invalid_blocks"
        );
        let header = json!([{ "type": "header", "text": { "type": "plain_text", "text": "h".repeat(151) } }]);
        assert_eq!(
            check_message(None, Some(&header)).unwrap_err().code,
            "invalid_blocks"
        );
        let fifty_one = Value::Array((0..51).map(|_| section(1)).collect());
        assert_eq!(
            check_message(None, Some(&fifty_one)).unwrap_err().code,
            "invalid_blocks"
        );
        let button = json!([{ "type": "actions", "elements": [{ "type": "button", "action_id": "a", "text": { "type": "plain_text", "text": "b".repeat(76) } }] }]);
        assert_eq!(
            check_message(None, Some(&button)).unwrap_err().code,
            "invalid_blocks"
        );
        assert_eq!(
            check_message(Some(&"t".repeat(40_001)), None)
                .unwrap_err()
                .code,
            "msg_too_long"
        );
        let view = json!({ "type": "modal", "title": { "type": "plain_text", "text": "A title far too long for Slack" }, "blocks": [] });
        assert_eq!(check_view(&view).unwrap_err().code, "invalid_arguments");
    }
}
