//! The Slack channel's behaviour over the SDK's host wrappers; unit-tested natively with the SDK's `MockHost`.
//!
//! Inbound: the host has verified `X-Slack-Signature` (v0 HMAC-SHA256 of `v0:{timestamp}:{body}`, 5-minute
//! window, replays refused) before [`handle_request`] runs; requests it did not verify are refused again here.
//! Slack wants an answer within 3 seconds and retries otherwise, so the handler does at most two short HTTP
//! calls (a `users.info` name lookup, cached; a pairing code) and answers 200; retried deliveries are dropped
//! by their `event_id` (the last [`MAX_RECENT_EVENTS`] are kept in the workspace by the SDK's `RecentIds`).
//!
//! Outbound: [`edit`] replaces a sent message's text with `chat.update` (streamed replies, world 0.2.0).
//! [`respond`] posts `chat.postMessage` to the original channel, in the thread recorded in the
//! message's metadata, with the bot token added by the host (`Authorization: Bearer`, credential `slack_bot`):
//! the guest never sees it. A response with `ok: false` becomes an error naming Slack's error code.

use airlock_channel::log::{self, Level};
use airlock_channel::text::{self as split_text, Unit};
use airlock_channel::workspace::{self, RecentIds};
use airlock_channel::{emit, http, Attachment};
use serde_json::{json, Value};

use crate::config::Config;
use crate::events::{self, Incoming, Kind, Parsed};

/// The pairing namespace (the channel's name).
pub const CHANNEL: &str = "slack";
pub const WEBHOOK_PATH: &str = "/webhook/slack";
pub const API: &str = "https://slack.com/api";
pub const CONFIG_PATH: &str = "state/config";
pub const BOT_USER_PATH: &str = "state/bot_user";
pub const RECENT_EVENTS_PATH: &str = "state/recent_events";
pub const USER_CACHE_PREFIX: &str = "state/users/";
/// Event ids remembered to drop Slack's retries of a delivery already handled.
pub const MAX_RECENT_EVENTS: usize = 200;
/// chat.postMessage refuses text over 40,000 characters (Slack docs, `msg_too_long`); longer replies are split.
pub const MAX_TEXT_CHARS: usize = 40_000;
/// Outbound calls made while Slack waits for our answer must leave room inside its 3-second budget.
pub const INBOUND_HTTP_TIMEOUT_MS: u32 = 2_000;
pub const REPLY_HTTP_TIMEOUT_MS: u32 = 10_000;

/// What the channel answers the HTTP request with (always JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    fn ok() -> Self {
        Self { status: 200, body: json!({"ok": true}) }
    }

    fn error(status: u16, message: &str) -> Self {
        Self { status, body: json!({"ok": false, "error": message}) }
    }
}

/// The parts of an incoming request the channel looks at.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub secret_validated: bool,
}

/// The agent's reply as `on-respond` gets it.
pub struct Reply<'a> {
    pub content: &'a str,
    pub thread_id: Option<&'a str>,
    /// The original message's metadata (a JSON object).
    pub metadata: &'a Value,
    /// Files to upload with the reply (files upload v2, [`crate::files`]).
    pub attachments: &'a [Attachment],
}

// ---- on-start --------------------------------------------------------------------------------------------

/// Check the config, keep it for later callbacks, and learn the bot's user id (config, else `auth.test`).
pub fn start(raw: &Value) -> Result<(), String> {
    let cfg = Config::from_json(raw)?;
    workspace::write_json(CONFIG_PATH, &cfg).map_err(|e| e.to_string())?;
    if cfg.bot_user_id.is_none() {
        match auth_test() {
            Ok(user) => {
                workspace::write(BOT_USER_PATH, &user).map_err(|e| e.to_string())?;
                log::log(Level::Info, &format!("slack bot user is {user}"));
            }
            Err(e) => log::log(Level::Warn, &format!("auth.test failed ({e}); the bot's id will be taken from events")),
        }
    }
    Ok(())
}

fn auth_test() -> Result<String, String> {
    let data = api_call("auth.test", "application/json; charset=utf-8", b"{}", INBOUND_HTTP_TIMEOUT_MS)?;
    data.get("user_id").and_then(Value::as_str).map(str::to_string).ok_or_else(|| "no user_id".into())
}

// ---- Web API calls ---------------------------------------------------------------------------------------

/// Slack error codes are short snake_case words; anything else in that field is not echoed.
fn safe_code(value: Option<&Value>) -> String {
    match value.and_then(Value::as_str) {
        Some(code)
            if !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            code.to_string()
        }
        _ => "unknown_error".into(),
    }
}

/// One Web API call; `Ok` is the response object when HTTP was 2xx and `ok` was true.
pub(crate) fn api_call(method: &str, content_type: &str, body: &[u8], timeout_ms: u32) -> Result<Value, String> {
    let url = format!("{API}/{method}");
    let resp = http::post(&url)
        .header("Content-Type", content_type)
        .body(body)
        .timeout_ms(timeout_ms)
        .send()
        .map_err(|e| format!("{method}: {e}"))?;
    api_answer(method, resp)
}

/// A Web API answer: the response object when HTTP was 2xx and `ok` was true, else an error naming the code.
pub(crate) fn api_answer(method: &str, resp: http::Response) -> Result<Value, String> {
    let http::Response { status, body, .. } = resp;
    if status == 429 {
        return Err(format!("{method}: rate limited by Slack (HTTP 429)"));
    }
    if !(200..300).contains(&status) {
        return Err(format!("{method}: HTTP {status}"));
    }
    let data: Value = serde_json::from_slice(&body).map_err(|_| format!("{method}: the answer is not JSON"))?;
    if data.get("ok").and_then(Value::as_bool) != Some(true) {
        return Err(format!("{method} failed: {}", safe_code(data.get("error"))));
    }
    Ok(data)
}

/// Post `text` (split if long) to `channel`, in `thread_ts` when given. Returns the ts of each message.
pub fn post_message(channel: &str, text: &str, thread_ts: Option<&str>) -> Result<Vec<String>, String> {
    let mut sent = Vec::new();
    for piece in split_text::split(text, MAX_TEXT_CHARS, Unit::Chars) {
        let mut payload = json!({"channel": channel, "text": piece});
        if let Some(ts) = thread_ts {
            payload["thread_ts"] = json!(ts);
        }
        let body = payload.to_string();
        let data =
            api_call("chat.postMessage", "application/json; charset=utf-8", body.as_bytes(), REPLY_HTTP_TIMEOUT_MS)?;
        sent.push(data.get("ts").and_then(Value::as_str).unwrap_or("").to_string());
    }
    Ok(sent)
}

// ---- inbound ---------------------------------------------------------------------------------------------

/// The config written by `on-start`, checked again (parts of it reach URLs); defaults when missing or
/// refused (the default policy, pairing, admits nobody unknown).
fn load_config() -> Config {
    workspace::read_checked(CONFIG_PATH, Config::from_json)
}

/// Handle one webhook request (see the module docs). Never fails: Slack retries anything but a 2xx.
pub fn handle_request(req: &Request<'_>) -> Response {
    if req.path != WEBHOOK_PATH {
        return Response::error(404, "not found");
    }
    if req.method != "POST" {
        return Response::error(405, "method not allowed");
    }
    if !req.secret_validated {
        log::log(Level::Warn, "slack request the host did not verify: refused");
        return Response::error(401, "unauthorized");
    }
    let Ok(value) = serde_json::from_slice::<Value>(req.body) else {
        log::log(Level::Warn, &format!("malformed slack request ({} bytes): ignored", req.body.len()));
        return Response::ok();
    };
    let cfg = load_config();
    let bot = cfg
        .bot_user_id
        .clone()
        .or_else(|| workspace::read(BOT_USER_PATH))
        .or_else(|| events::envelope_bot_user(&value));
    match events::parse(&value, bot.as_deref()) {
        Parsed::Challenge(challenge) => Response { status: 200, body: json!({ "challenge": challenge }) },
        Parsed::Ignored(why) => {
            log::log(Level::Debug, &format!("slack event ignored: {why}"));
            Response::ok()
        }
        Parsed::Message(msg) => {
            if first_delivery(msg.event_id.as_deref()) {
                admit_and_emit(&cfg, &msg);
            }
            Response::ok()
        }
    }
}

/// False for a redelivery of an event already handled; records the id otherwise.
fn first_delivery(event_id: Option<&str>) -> bool {
    let Some(id) = event_id else { return true };
    let mut recent = RecentIds::load(RECENT_EVENTS_PATH, MAX_RECENT_EVENTS);
    if !recent.first_time(id) {
        log::log(Level::Info, &format!("slack event {id} delivered again: dropped"));
        return false;
    }
    recent.save_or_warn();
    true
}

fn admit_and_emit(cfg: &Config, msg: &Incoming) {
    if msg.kind == Kind::DirectMessage {
        let meta = json!({"channel": msg.channel, "team": msg.team});
        let gate = cfg.gate();
        let send_code = |code: &str| post_message(&msg.channel, &gate.code_text(code), None);
        if !gate.admit_or_send_code(&msg.user, msg.profile_name.as_deref(), &meta, send_code) {
            return;
        }
    }
    let user_name = user_name(cfg, msg);
    to_outgoing(cfg, msg, user_name).emit();
}

/// The sender's name: the event's `user_profile`, else the workspace cache, else one `users.info` call
/// (cached, a failure too, so a missing `users:read` scope costs one call per user, not one per message).
fn user_name(cfg: &Config, msg: &Incoming) -> Option<String> {
    if msg.profile_name.is_some() || !cfg.resolve_user_names {
        return msg.profile_name.clone();
    }
    let path = format!("{USER_CACHE_PREFIX}{}", msg.user);
    if let Some(cached) = workspace::read(&path).and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        return cached.get("name").and_then(Value::as_str).map(str::to_string);
    }
    let form = format!("user={}", form_escape(&msg.user));
    let name =
        match api_call("users.info", "application/x-www-form-urlencoded", form.as_bytes(), INBOUND_HTTP_TIMEOUT_MS) {
            Ok(data) => name_of(&data["user"]),
            Err(e) => {
                log::log(Level::Debug, &format!("no name for {}: {e}", msg.user));
                None
            }
        };
    if let Err(e) = workspace::write(&path, &json!({ "name": name }).to_string()) {
        log::log(Level::Debug, &format!("could not cache the name of {}: {e}", msg.user));
    }
    name
}

fn name_of(user: &Value) -> Option<String> {
    let profile = &user["profile"];
    [&profile["display_name"], &profile["real_name"], &user["real_name"], &user["name"]]
        .into_iter()
        .find_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
}

fn form_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The message for the agent. `reply_thread_ts` in the metadata is where the answer goes: the thread the
/// message was in, or (for an @mention with `reply_in_thread`) a new thread under the mention itself.
pub fn to_outgoing(cfg: &Config, msg: &Incoming, user_name: Option<String>) -> emit::Message {
    let reply_thread = match (&msg.thread_ts, msg.kind) {
        (Some(t), _) => Some(t.clone()),
        (None, Kind::Mention) if cfg.reply_in_thread => Some(msg.ts.clone()),
        _ => None,
    };
    let metadata = json!({
        "channel": msg.channel,
        "channel_type": msg.channel_type,
        "ts": msg.ts,
        "thread_ts": msg.thread_ts,
        "reply_thread_ts": reply_thread,
        "user": msg.user,
        "team": msg.team,
        "event_id": msg.event_id,
        // Mentions come from shared channels: the host leaves their admission to the mention rule.
        "is_group": msg.kind == Kind::Mention,
    });
    emit::Message { user_name, thread_id: reply_thread, ..emit::Message::new(&msg.user, &msg.text).metadata(metadata) }
}

// ---- outbound --------------------------------------------------------------------------------------------

/// A Slack timestamp id: digits, one dot, digits (e.g. `1712345678.000100`).
fn is_ts(text: &str) -> bool {
    let mut parts = text.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// on-respond: post the reply where the original message came from. Returns the `ts` of the (last) message
/// posted, Slack's message id (world 0.2.0: edits name it); `None` when nothing was posted.
pub fn respond(reply: &Reply<'_>) -> Result<Option<String>, String> {
    let meta = reply.metadata;
    let channel = meta
        .get("channel")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "the original message's metadata has no slack channel".to_string())?;
    let thread = meta.get("reply_thread_ts").and_then(Value::as_str).or(reply.thread_id).filter(|t| is_ts(t));
    send(channel, reply, thread)
}

/// on-broadcast: a new message to `user_id` (Slack opens the app's DM with that user when the channel is a
/// user id). Returns the `ts` of the (last) message posted.
pub fn broadcast(user_id: &str, reply: &Reply<'_>) -> Result<Option<String>, String> {
    if user_id.is_empty() || user_id.len() > 32 || !user_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("not a slack user or channel id".into());
    }
    send(user_id, reply, None)
}

/// Post the text (if any), then upload and share the files in the same channel and thread. Returns the ts of the
/// last text message (edits replace its text); `None` when only files (or nothing) went out.
fn send(channel: &str, reply: &Reply<'_>, thread: Option<&str>) -> Result<Option<String>, String> {
    if reply.content.trim().is_empty() && reply.attachments.is_empty() {
        log::log(Level::Warn, "empty reply: nothing sent");
        return Ok(None);
    }
    let mut last = None;
    if !reply.content.trim().is_empty() {
        last = post_message(channel, reply.content, thread)?.into_iter().next_back().filter(|ts| is_ts(ts));
    }
    crate::files::upload(channel, thread, reply.attachments)?;
    Ok(last)
}

/// on-edit (world 0.2.0): `chat.update` of the message `ts` in the original message's channel with the new text,
/// cut to [`MAX_TEXT_CHARS`] (an update cannot be split into several messages). Slack accepts an unchanged text.
pub fn edit(ts: &str, text: &str, metadata: &Value) -> Result<(), String> {
    if !is_ts(ts) {
        return Err("not a slack message ts".into());
    }
    let channel = metadata
        .get("channel")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| "the original message's metadata has no slack channel".to_string())?;
    let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
    let body = json!({"channel": channel, "ts": ts, "text": text}).to_string();
    api_call("chat.update", "application/json; charset=utf-8", body.as_bytes(), REPLY_HTTP_TIMEOUT_MS).map(|_| ())
}
