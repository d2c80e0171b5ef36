//! The Slack Web API client, the only code that calls Slack: slack-morphism's hyper transport, one generic
//! [`SlackClient::call`] with typed methods on it (uploads and `response_url` replies included), and a
//! classification of failures ([`SlackError`]) that the retry logic of the war-room steps relies on.
//!
//! Every call has a deadline (`slack.call_timeout_ms`): a slow or dropped response becomes
//! [`SlackError::Timeout`]/[`SlackError::Transport`], whose outcome is unknown, so callers reconcile before
//! retrying a call that is not idempotent.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use crate::config::Secret;

type Connector = SlackClientHyperConnector<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
>;

/// A failed Web API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlackError {
    /// Slack answered `ok: false` with this error code.
    #[error("{method}: Slack error `{code}`")]
    Api { method: String, code: String },
    /// HTTP 429; wait `retry_after` (Slack's `Retry-After`) before calling again.
    #[error("{method}: rate limited (retry after {retry_after:?})")]
    RateLimited {
        method: String,
        retry_after: Option<Duration>,
    },
    /// No answer in time; Slack may or may not have applied the call.
    #[error("{method}: no answer within the deadline")]
    Timeout { method: String },
    /// Connection or HTTP-level failure (5xx, dropped connection, unreadable body).
    #[error("{method}: {message}")]
    Transport {
        method: String,
        message: String,
        retryable: bool,
    },
    /// No bot token configured.
    #[error("SLACK_BOT_TOKEN is not set")]
    NoToken,
}

impl SlackError {
    /// Whether calling again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SlackError::Api { code, .. } => matches!(
                code.as_str(),
                "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
                    | "ratelimited"
            ),
            SlackError::RateLimited { .. } | SlackError::Timeout { .. } => true,
            SlackError::Transport { retryable, .. } => *retryable,
            SlackError::NoToken => false,
        }
    }

    /// Slack's error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SlackError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Most Web API calls in flight at once, per process. Each call in flight holds an HTTP/1.1 connection with its
/// buffers: 200 war rooms set up at once opened over a thousand, and the bot's memory peaked near 60 MB. Slack's
/// rate limits would not take such a burst anyway; calls beyond this wait for a free slot (not counted in their
/// deadline, so a call that waits is never mistaken for one whose outcome is unknown).
const MAX_IN_FLIGHT: usize = 128;

/// Messages per `conversations.history` page (Slack recommends no more than 200).
const HISTORY_PAGE: u32 = 200;

/// Most `conversations.history` pages [`SlackClient::find_message`] reads (40,000 messages).
const MAX_HISTORY_PAGES: usize = 200;

/// How far Slack's clock may be behind this machine's: history is read back this much before an attempt began.
const CLOCK_SKEW_MS: i64 = 60_000;

/// A Slack Web API client bound to the bot token.
#[derive(Clone)]
pub struct SlackClient {
    client: Arc<slack_morphism::SlackClient<Connector>>,
    token: Option<SlackApiToken>,
    timeout: Duration,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// For what is not a Web API method: `response_url` replies and file uploads (same deadline).
    http: reqwest::Client,
    /// `https://slack.com/api` (no trailing slash), for the form-encoded calls.
    base_url: String,
    /// What Slack said once and the bot remembers ([`super::memory`]).
    pub(super) memory: Arc<super::memory::Memory>,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SlackClient {
    /// `base_url` like `https://slack.com/api` (a trailing slash is dropped).
    pub fn new(base_url: &str, token: Option<&Secret>, timeout: Duration) -> anyhow::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        let connector = SlackClientHyperConnector::with_connector(https)
            .with_slack_api_url(base_url.trim_end_matches('/'));
        Ok(SlackClient {
            client: Arc::new(slack_morphism::SlackClient::new(connector)),
            token: token.map(|t| SlackApiToken::new(SlackApiTokenValue(t.expose().to_string()))),
            timeout,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            http: reqwest::Client::builder().timeout(timeout).build()?,
            base_url: base_url.trim_end_matches('/').to_string(),
            memory: Arc::default(),
        })
    }

    /// Calls `method` with JSON `args`; returns Slack's whole answer on `ok: true`.
    #[tracing::instrument(name = "slack", skip_all, fields(method = %method))]
    pub async fn call(&self, method: &str, args: Value) -> Result<Value, SlackError> {
        let started = std::time::Instant::now();
        let result = self.call_once(method, args).await;
        let label = match &result {
            Ok(_) => "ok",
            Err(SlackError::Api { code, .. }) => code.as_str(),
            Err(SlackError::RateLimited { .. }) => "ratelimited",
            Err(SlackError::Timeout { .. }) => "timeout",
            Err(SlackError::Transport { .. }) => "transport",
            Err(SlackError::NoToken) => "no_token",
        };
        crate::observability::slack_call(method, label, started.elapsed());
        result
    }

    async fn call_once(&self, method: &str, args: Value) -> Result<Value, SlackError> {
        let token = self.token.as_ref().ok_or(SlackError::NoToken)?;
        // The semaphore is never closed.
        let _slot = self.in_flight.acquire().await;
        let session = self.client.open_session(token);
        let fut = session
            .http_session_api
            .http_post::<Value, Value>(method, &args, None);
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(SlackError::Timeout {
                method: method.into(),
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(method, e)),
        }
    }
}

fn classify(method: &str, e: SlackClientError) -> SlackError {
    let method = method.to_string();
    match e {
        SlackClientError::ApiError(a) => SlackError::Api {
            method,
            code: a.code,
        },
        SlackClientError::RateLimitError(r) => SlackError::RateLimited {
            method,
            retry_after: r.retry_after,
        },
        SlackClientError::HttpError(h) => {
            let status = h.status_code.as_u16();
            SlackError::Transport {
                method,
                message: format!("HTTP {status}"),
                retryable: status >= 500 || status == 408,
            }
        }
        other => SlackError::Transport {
            method,
            // slack-morphism's messages carry no token; keep only the first line.
            message: other
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            retryable: true,
        },
    }
}

/// Whether an answer's `error` means "the thing already exists/is already so" — success for idempotent steps.
pub fn is_already_done(code: &str) -> bool {
    matches!(
        code,
        "already_pinned" | "already_in_channel" | "already_reacted"
    )
}

/// Conveniences built on [`SlackClient::call`] that several features share.
impl SlackClient {
    /// The first public channel (not archived) that `matches`, paging through `conversations.list`.
    pub async fn find_channel(
        &self,
        matches: impl Fn(&ChannelInfo) -> bool,
    ) -> Result<Option<ChannelInfo>, SlackError> {
        let mut cursor = String::new();
        for _ in 0..50 {
            let mut args = serde_json::json!({ "types": "public_channel", "exclude_archived": true, "limit": 1000 });
            if !cursor.is_empty() {
                args["cursor"] = Value::from(cursor.clone());
            }
            let v = self.call("conversations.list", args).await?;
            if let Some(c) = v["channels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(ChannelInfo::from_json)
                .find(|c| matches(c))
            {
                return Ok(Some(c));
            }
            cursor = v["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if cursor.is_empty() {
                break;
            }
        }
        Ok(None)
    }

    /// The `ts` of a message in `channel` whose blocks carry `block_id` — how a retried post finds the message an
    /// interrupted attempt already made. Reads `conversations.history` page by page, newest first, back to
    /// `since` (wall-clock epoch ms when the first attempt began, less [`CLOCK_SKEW_MS`] for Slack's clock; all
    /// of it when unknown), so however many messages were posted since, the attempt's own post is found.
    pub async fn find_message(
        &self,
        channel: &str,
        block_id: &str,
        since: Option<i64>,
    ) -> Result<Option<String>, SlackError> {
        let mut args = serde_json::json!({ "channel": channel, "limit": HISTORY_PAGE });
        if let Some(ms) = since {
            let oldest = (ms - CLOCK_SKEW_MS).max(0);
            args["oldest"] =
                Value::from(format!("{}.{:06}", oldest / 1000, (oldest % 1000) * 1000));
        }
        for _ in 0..MAX_HISTORY_PAGES {
            let v = self.call("conversations.history", args.clone()).await?;
            if let Some(ts) = v["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| crate::slack::blocks::has_block_id(m, block_id))
                .and_then(|m| m["ts"].as_str())
            {
                return Ok(Some(ts.to_string()));
            }
            let cursor = v["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default();
            if !v["has_more"].as_bool().unwrap_or(false) || cursor.is_empty() {
                return Ok(None);
            }
            args["cursor"] = Value::from(cursor);
        }
        tracing::warn!(
            channel,
            block_id,
            "gave up looking for an earlier attempt's post after {MAX_HISTORY_PAGES} pages of history"
        );
        Ok(None)
    }

    /// `chat.postMessage`, joining the channel first when Slack says the bot is not in it; the message `ts`.
    pub async fn post_message_joining(
        &self,
        post: &Post<'_>,
    ) -> Result<Option<String>, SlackError> {
        match self.post_message(post).await {
            Err(e) if e.code() == Some("not_in_channel") => {
                self.call(
                    "conversations.join",
                    serde_json::json!({ "channel": post.channel }),
                )
                .await?;
                self.post_message(post).await
            }
            other => other,
        }
    }
}

/// A message to post ([`SlackClient::post_message`]) or to put in place of a posted one
/// ([`SlackClient::update_message`]).
#[derive(Debug, Clone)]
pub struct Post<'a> {
    pub channel: &'a str,
    /// The notification text (and the whole message without blocks).
    pub text: &'a str,
    pub blocks: Option<Value>,
    /// `unfurl_links: false`.
    pub no_unfurl_links: bool,
    /// `unfurl_media: false`.
    pub no_unfurl_media: bool,
    /// Posted as a reply in the thread of this message (`chat.postMessage` only).
    pub thread_ts: Option<&'a str>,
}

impl<'a> Post<'a> {
    /// Plain text.
    pub fn text(channel: &'a str, text: &'a str) -> Self {
        Post {
            channel,
            text,
            blocks: None,
            no_unfurl_links: false,
            no_unfurl_media: false,
            thread_ts: None,
        }
    }

    /// Blocks with `text` as their notification text, links not unfurled.
    pub fn blocks(channel: &'a str, text: &'a str, blocks: Value) -> Self {
        Post {
            blocks: Some(blocks),
            no_unfurl_links: true,
            ..Post::text(channel, text)
        }
    }

    fn args(&self) -> Value {
        let mut args = serde_json::json!({ "channel": self.channel, "text": self.text });
        if let Some(b) = &self.blocks {
            args["blocks"] = b.clone();
        }
        if self.no_unfurl_links {
            args["unfurl_links"] = Value::Bool(false);
        }
        if self.no_unfurl_media {
            args["unfurl_media"] = Value::Bool(false);
        }
        if let Some(ts) = self.thread_ts {
            args["thread_ts"] = Value::from(ts);
        }
        args
    }
}

/// A channel as `conversations.list` describes it (absent fields empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub id: Option<String>,
    pub name: Option<String>,
    /// The user who created it.
    pub creator: Option<String>,
    /// When it was created (epoch seconds; 0 when not said).
    pub created: i64,
}

impl ChannelInfo {
    fn from_json(c: &Value) -> ChannelInfo {
        let text = |k: &str| c[k].as_str().map(str::to_string);
        ChannelInfo {
            id: text("id"),
            name: text("name"),
            creator: text("creator"),
            created: c["created"].as_i64().unwrap_or(0),
        }
    }
}

/// A message as `conversations.history` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// Empty when not said.
    pub ts: String,
    pub text: Option<String>,
    /// Set on messages posted by a bot.
    pub bot_id: Option<String>,
    /// Who wrote it, when a person did.
    pub user: Option<String>,
    /// The `block_id` of each of its blocks.
    pub block_ids: Vec<String>,
}

impl HistoryMessage {
    fn from_json(m: &Value) -> HistoryMessage {
        HistoryMessage {
            ts: m["ts"].as_str().unwrap_or_default().to_string(),
            text: m["text"].as_str().map(str::to_string),
            bot_id: m["bot_id"].as_str().map(str::to_string),
            user: m["user"].as_str().map(str::to_string),
            block_ids: m["blocks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["block_id"].as_str().map(str::to_string))
                .collect(),
        }
    }

    /// Whether one of its blocks has `block_id`.
    pub fn has_block(&self, block_id: &str) -> bool {
        self.block_ids.iter().any(|b| b == block_id)
    }
}

/// A created channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: String,
    pub name: String,
}

/// Typed Web API methods: the arguments of each call are built here and nowhere else.
impl SlackClient {
    /// `chat.postMessage`; the message `ts` (when Slack gave one).
    pub async fn post_message(&self, post: &Post<'_>) -> Result<Option<String>, SlackError> {
        let v = self.call("chat.postMessage", post.args()).await?;
        Ok(v["ts"].as_str().map(str::to_string))
    }

    /// `chat.update`: the message `ts` of `post.channel` becomes `post` (text and blocks).
    pub async fn update_message(&self, ts: &str, post: &Post<'_>) -> Result<(), SlackError> {
        let mut args = serde_json::json!({ "channel": post.channel, "ts": ts, "text": post.text });
        if let Some(b) = &post.blocks {
            args["blocks"] = b.clone();
        }
        self.call("chat.update", args).await.map(|_| ())
    }

    /// `conversations.create` of a public (or, with `private`, a private) channel; `None` when Slack answered
    /// without a channel id.
    pub async fn create_channel(
        &self,
        name: &str,
        private: bool,
    ) -> Result<Option<Channel>, SlackError> {
        let v = self
            .call(
                "conversations.create",
                serde_json::json!({ "name": name, "is_private": private }),
            )
            .await?;
        Ok(v["channel"]["id"].as_str().map(|id| Channel {
            id: id.to_string(),
            name: v["channel"]["name"].as_str().unwrap_or(name).to_string(),
        }))
    }

    /// `conversations.setTopic`.
    pub async fn set_topic(&self, channel: &str, topic: &str) -> Result<(), SlackError> {
        self.call(
            "conversations.setTopic",
            serde_json::json!({ "channel": channel, "topic": topic }),
        )
        .await
        .map(|_| ())
    }

    /// `conversations.invite` of `users` (comma-separated user ids).
    pub async fn invite(&self, channel: &str, users: &str) -> Result<(), SlackError> {
        self.call(
            "conversations.invite",
            serde_json::json!({ "channel": channel, "users": users }),
        )
        .await
        .map(|_| ())
    }

    /// `pins.add` of message `ts`.
    pub async fn pin(&self, channel: &str, ts: &str) -> Result<(), SlackError> {
        self.call(
            "pins.add",
            serde_json::json!({ "channel": channel, "timestamp": ts }),
        )
        .await
        .map(|_| ())
    }

    /// `bookmarks.list`: the links bookmarked in `channel`.
    pub async fn bookmark_links(&self, channel: &str) -> Result<Vec<String>, SlackError> {
        let v = self
            .call(
                "bookmarks.list",
                serde_json::json!({ "channel_id": channel }),
            )
            .await?;
        Ok(v["bookmarks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["link"].as_str().map(str::to_string))
            .collect())
    }

    /// `bookmarks.add` of a link.
    pub async fn add_bookmark(
        &self,
        channel: &str,
        title: &str,
        link: &str,
    ) -> Result<(), SlackError> {
        self.call(
            "bookmarks.add",
            serde_json::json!({ "channel_id": channel, "title": title, "type": "link", "link": link }),
        )
        .await
        .map(|_| ())
    }

    /// `views.open` of a modal for `trigger_id`.
    pub async fn open_view(&self, trigger_id: &str, view: &Value) -> Result<(), SlackError> {
        self.call(
            "views.open",
            serde_json::json!({ "trigger_id": trigger_id, "view": view }),
        )
        .await
        .map(|_| ())
    }

    /// `conversations.history`: the channel's latest `limit` messages, newest first.
    pub async fn history(
        &self,
        channel: &str,
        limit: u32,
    ) -> Result<Vec<HistoryMessage>, SlackError> {
        let v = self
            .call(
                "conversations.history",
                serde_json::json!({ "channel": channel, "limit": limit }),
            )
            .await?;
        Ok(v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(HistoryMessage::from_json)
            .collect())
    }

    /// The message `ts` of `channel`, read with `conversations.history` (`latest` = `ts`, inclusive, one
    /// message) and, when it is a thread reply (not in history), with `conversations.replies`.
    pub async fn message_at(
        &self,
        channel: &str,
        ts: &str,
    ) -> Result<Option<HistoryMessage>, SlackError> {
        let v = self
            .call(
                "conversations.history",
                serde_json::json!({ "channel": channel, "latest": ts, "inclusive": true, "limit": 1 }),
            )
            .await?;
        let pick = |v: &Value| {
            v["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(HistoryMessage::from_json)
                .find(|m| m.ts == ts)
        };
        if let Some(m) = pick(&v) {
            return Ok(Some(m));
        }
        match self
            .call(
                "conversations.replies",
                serde_json::json!({ "channel": channel, "ts": ts, "oldest": ts, "latest": ts, "inclusive": true }),
            )
            .await
        {
            Ok(v) => Ok(pick(&v)),
            Err(e) if e.code() == Some("thread_not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `chat.getPermalink`: Slack's link to message `ts` of `channel`.
    pub async fn permalink(&self, channel: &str, ts: &str) -> Result<Option<String>, SlackError> {
        let v = self
            .call(
                "chat.getPermalink",
                serde_json::json!({ "channel": channel, "message_ts": ts }),
            )
            .await?;
        Ok(v["permalink"].as_str().map(str::to_string))
    }

    /// `apps.connections.open`: a Socket Mode WebSocket URL (with its one-time ticket), if Slack gave one.
    pub async fn open_connection(&self) -> Result<Option<String>, SlackError> {
        let v = self
            .call("apps.connections.open", serde_json::json!({}))
            .await?;
        Ok(v["url"].as_str().map(str::to_string))
    }
}

/// A file to upload ([`SlackClient::upload_file`]).
pub struct File<'a> {
    pub filename: &'a str,
    pub bytes: &'a [u8],
    /// Its title, also its alt text.
    pub title: &'a str,
}

/// A failed upload.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Slack(#[from] SlackError),
    /// The upload URL did not take the bytes.
    #[error("{0}")]
    Upload(String),
}

/// Files.
impl SlackClient {
    /// Uploads `file` and shares it in `channel_id` with `comment` (`files.getUploadURLExternal`, the bytes,
    /// `files.completeUploadExternal`); returns the file id.
    pub async fn upload_file(
        &self,
        channel_id: &str,
        file: &File<'_>,
        comment: &str,
    ) -> Result<String, UploadError> {
        let v = self
            .call_form(
                "files.getUploadURLExternal",
                &[
                    ("filename", file.filename.to_string()),
                    ("length", file.bytes.len().to_string()),
                    ("alt_txt", file.title.to_string()),
                ],
            )
            .await?;
        let (Some(url), Some(file_id)) = (v["upload_url"].as_str(), v["file_id"].as_str()) else {
            return Err(UploadError::Upload(
                "files.getUploadURLExternal gave no upload_url".into(),
            ));
        };
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(file.bytes.to_vec())
            .send()
            .await
            .map_err(|e| UploadError::Upload(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(UploadError::Upload(format!(
                "upload URL answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        self.call(
            "files.completeUploadExternal",
            serde_json::json!({
                "files": [{ "id": file_id, "title": file.title }],
                "channel_id": channel_id,
                "initial_comment": comment,
            }),
        )
        .await?;
        Ok(file_id.to_string())
    }

    /// Calls a Web API method with a form-encoded body (`files.getUploadURLExternal` takes no JSON).
    async fn call_form(
        &self,
        method: &str,
        params: &[(&str, String)],
    ) -> Result<Value, SlackError> {
        let token = self.token.as_ref().ok_or(SlackError::NoToken)?;
        let url = format!("{}/{method}", self.base_url);
        let resp = self
            .http
            .post(url)
            .bearer_auth(&token.token_value.0)
            .form(params)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    SlackError::Timeout {
                        method: method.into(),
                    }
                } else {
                    SlackError::Transport {
                        method: method.into(),
                        message: format!("{e}")
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                        retryable: true,
                    }
                }
            })?;
        let status = resp.status().as_u16();
        if status == 429 {
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(SlackError::RateLimited {
                method: method.into(),
                retry_after,
            });
        }
        let v: Value = resp.json().await.map_err(|_| SlackError::Transport {
            method: method.into(),
            message: format!("HTTP {status}: not JSON"),
            retryable: status >= 500,
        })?;
        if v["ok"].as_bool() == Some(true) {
            Ok(v)
        } else {
            Err(SlackError::Api {
                method: method.into(),
                code: v["error"].as_str().unwrap_or("unknown_error").to_string(),
            })
        }
    }
}

/// Messages.
impl SlackClient {
    /// `chat.postMessage` of plain `text` as a reply in the thread of `thread_ts` (links not unfurled).
    pub async fn post_in_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        text: &str,
    ) -> Result<(), SlackError> {
        let args = serde_json::json!({
            "channel": channel,
            "thread_ts": thread_ts,
            "text": text,
            "unfurl_links": false,
            "unfurl_media": false,
        });
        self.call("chat.postMessage", args).await.map(drop)
    }
}

/// A reply through a `response_url` (Slack gives one with a slash command or a click): seen only by the person
/// who typed or clicked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reply<'a> {
    response_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    replace_original: Option<bool>,
    text: &'a str,
}

impl<'a> Reply<'a> {
    /// An ephemeral reply.
    pub fn ephemeral(text: &'a str) -> Self {
        Reply {
            response_type: "ephemeral",
            replace_original: None,
            text,
        }
    }

    /// An ephemeral reply that leaves the message clicked (or the earlier reply) as it is.
    pub fn ephemeral_beside(text: &'a str) -> Self {
        Reply {
            replace_original: Some(false),
            ..Reply::ephemeral(text)
        }
    }
}

/// Replies to one person: `response_url` posts and ephemeral messages.
impl SlackClient {
    /// Posts `reply` to a `response_url`. Returns the HTTP status the URL answered, or why it could not be
    /// reached (without the URL, which lets anyone reply).
    pub async fn respond(
        &self,
        url: &str,
        reply: &Reply<'_>,
    ) -> Result<reqwest::StatusCode, reqwest::Error> {
        match self.http.post(url).json(reply).send().await {
            Ok(r) => Ok(r.status()),
            Err(e) => Err(e.without_url()),
        }
    }

    /// `chat.postEphemeral`: `text` to `user` in `channel`.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        text: &str,
    ) -> Result<(), SlackError> {
        self.call(
            "chat.postEphemeral",
            serde_json::json!({ "channel": channel, "user": user, "text": text }),
        )
        .await
        .map(drop)
    }

    /// Tells `user` something only they see: through `response_url` when there is one and it takes it, else
    /// with `chat.postEphemeral` in `channel`. Failures are logged.
    pub async fn tell(
        &self,
        response_url: Option<&str>,
        channel: Option<&str>,
        user: &str,
        text: &str,
    ) {
        if let Some(url) = response_url {
            match self.respond(url, &Reply::ephemeral_beside(text)).await {
                Ok(s) if s.is_success() => return,
                Ok(s) => tracing::warn!(status = %s, "response_url refused an ephemeral reply"),
                Err(e) => tracing::warn!(error = %e, "response_url unreachable"),
            }
        }
        if let Some(channel) = channel {
            if let Err(e) = self.post_ephemeral(channel, user, text).await {
                tracing::warn!(error = %e, "could not post an ephemeral reply");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standins::slack::SlackStandin;
    use serde_json::json;

    #[tokio::test]
    async fn the_stand_ins_history_pages_like_slacks() {
        let slack = SlackStandin::start().await.unwrap();
        let client = SlackClient::new(
            &slack.base_url(),
            Some(&Secret::new("xoxb-test-token")),
            Duration::from_secs(10),
        )
        .unwrap();
        let channel = crate::standins::slack::GENERAL_CHANNEL_ID;
        assert!(slack.post_as(channel, "U1", 5));
        let ts: Vec<String> = slack
            .channel_by_name(channel)
            .unwrap()
            .messages
            .iter()
            .map(|m| m.ts.clone())
            .collect();
        let history = |args: Value| {
            let client = client.clone();
            async move {
                let v = client.call("conversations.history", args).await.unwrap();
                let got: Vec<String> = v["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["ts"].as_str().unwrap().to_string())
                    .collect();
                let next = v["response_metadata"]["next_cursor"]
                    .as_str()
                    .unwrap()
                    .to_string();
                (got, v["has_more"].as_bool().unwrap(), next)
            }
        };
        // Newest first, two a page; a message posted between pages does not shift the next one.
        let (first, more, cursor) = history(json!({ "channel": channel, "limit": 2 })).await;
        assert_eq!(first, vec![ts[4].clone(), ts[3].clone()]);
        assert!(more && !cursor.is_empty());
        assert!(slack.post_as(channel, "U1", 1));
        let (second, _, _) =
            history(json!({ "channel": channel, "limit": 2, "cursor": cursor })).await;
        assert_eq!(second, vec![ts[2].clone(), ts[1].clone()]);
        // `oldest` and `latest` are exclusive unless `inclusive`.
        let (bounded, more, cursor) =
            history(json!({ "channel": channel, "oldest": ts[1], "latest": ts[4], "limit": 10 }))
                .await;
        assert_eq!(bounded, vec![ts[3].clone(), ts[2].clone()]);
        assert!(!more && cursor.is_empty());
        let (inclusive, _, _) = history(
            json!({ "channel": channel, "oldest": ts[1], "latest": ts[4], "inclusive": true }),
        )
        .await;
        assert_eq!(inclusive.len(), 4);
    }

    #[tokio::test]
    async fn calls_beyond_the_in_flight_limit_wait_for_a_free_slot() {
        let slack = SlackStandin::start().await.unwrap();
        let latency = Duration::from_millis(400);
        slack.set_latency(latency);
        let client = SlackClient::new(
            &slack.base_url(),
            Some(&Secret::new("xoxb-test-token")),
            Duration::from_secs(10),
        )
        .unwrap();
        let calls = (0..=MAX_IN_FLIGHT).map(|_| client.call("auth.test", serde_json::json!({})));
        for answer in futures::future::join_all(calls).await {
            answer.expect("every call is answered");
        }
        let mut arrived: Vec<std::time::Instant> =
            slack.calls_to("auth.test").iter().map(|c| c.at).collect();
        arrived.sort();
        assert_eq!(arrived.len(), MAX_IN_FLIGHT + 1);
        // The last call could only be sent once one of the first had been answered.
        let waited = arrived[MAX_IN_FLIGHT] - arrived[0];
        assert!(
            waited >= latency * 9 / 10,
            "call {} arrived {waited:?} after the first",
            MAX_IN_FLIGHT + 1
        );
    }
}
