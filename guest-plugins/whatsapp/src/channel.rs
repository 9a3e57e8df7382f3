//! The WhatsApp channel's behaviour over the SDK's host wrappers; unit-tested natively with the SDK's `MockHost`.
//!
//! Inbound: the host has checked the request before [`handle_request`] runs (GET: `hub.mode=subscribe` and
//! `hub.verify_token` equal to the stored `whatsapp_verify_token`; POST: `X-Hub-Signature-256` = `sha256=`
//! HMAC-SHA256 of the raw body with `whatsapp_app_secret`); requests it did not verify are refused again here.
//! The GET handshake is answered with `hub.challenge` as text/plain. A POST is answered 200 even when nothing
//! in it is usable, because Meta retries anything else for days; duplicates (Meta delivers at least once) are
//! dropped by message id, the last [`MAX_RECENT_MESSAGES`] being kept in the workspace (the SDK's `RecentIds`).
//!
//! Non-text messages (images, voice notes, stickers, locations, reactions...) are not passed on: the channel
//! logs `unsupported message type` and skips them (it sends the user nothing, so a sticker never costs a paid
//! message).
//!
//! Outbound: [`respond`] posts to `https://graph.facebook.com/{api_version}/{phone_number_id}/messages` with
//! the access token added by the host (`Authorization: Bearer`, credential `whatsapp_access`); the reply goes
//! to the sender, quoting the original message (`context.message_id`) when `reply_to_message` is on.

use airlock_channel::log::{self, Level};
use airlock_channel::text::{self as split_text, Unit};
use airlock_channel::workspace::{self, RecentIds};
use airlock_channel::{emit, http};
use serde_json::{json, Value};

use crate::config::{is_numeric_id, normalize_id, Config};
use crate::webhook::{self, Item, TextMessage};

/// The pairing namespace (the channel's name).
pub const CHANNEL: &str = "whatsapp";
pub const WEBHOOK_PATH: &str = "/webhook/whatsapp";
pub const GRAPH: &str = "https://graph.facebook.com";
pub const CONFIG_PATH: &str = "state/config";
pub const LAST_NUMBER_PATH: &str = "state/last_phone_number_id";
pub const RECENT_MESSAGES_PATH: &str = "state/recent_messages";
/// Message ids remembered to drop Meta's redeliveries.
pub const MAX_RECENT_MESSAGES: usize = 500;
/// Cloud API text body limit (messages reference, text object: 4096 characters).
pub const MAX_TEXT_CHARS: usize = 4096;
/// Longest `hub.challenge` echoed (Meta sends a short number).
pub const MAX_CHALLENGE_CHARS: usize = 256;
/// The pairing code is sent while Meta waits for the webhook answer: keep it short.
pub const INBOUND_HTTP_TIMEOUT_MS: u32 = 3_000;
pub const REPLY_HTTP_TIMEOUT_MS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    fn json(status: u16, body: &Value) -> Self {
        Self { status, content_type: "application/json", body: body.to_string().into_bytes() }
    }

    fn ok() -> Self {
        Self::json(200, &json!({"ok": true}))
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, &json!({"ok": false, "error": message}))
    }
}

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The query string as a JSON object of strings (the WIT `query-json`).
    pub query: &'a Value,
    pub body: &'a [u8],
    pub secret_validated: bool,
}

pub struct Reply<'a> {
    pub content: &'a str,
    /// The original message's metadata (a JSON object).
    pub metadata: &'a Value,
    pub attachments: usize,
}

// ---- on-start --------------------------------------------------------------------------------------------

pub fn start(raw: &Value) -> Result<(), String> {
    let cfg = Config::from_json(raw)?;
    workspace::write_json(CONFIG_PATH, &cfg).map_err(|e| e.to_string())
}

/// The config written by `on-start`, checked again (parts of it reach URLs); defaults when missing or
/// refused (the default policy, pairing, admits nobody unknown).
fn load_config() -> Config {
    workspace::read_checked(CONFIG_PATH, Config::from_json)
}

// ---- inbound ---------------------------------------------------------------------------------------------

pub fn handle_request(req: &Request<'_>) -> Response {
    if req.path != WEBHOOK_PATH {
        return Response::error(404, "not found");
    }
    match req.method {
        "GET" => handshake(req),
        "POST" => notification(req),
        _ => Response::error(405, "method not allowed"),
    }
}

/// Meta's subscription check: echo `hub.challenge` once the host has matched the verify token.
fn handshake(req: &Request<'_>) -> Response {
    if !req.secret_validated {
        log::log(Level::Warn, "whatsapp handshake the host did not verify: refused");
        return Response::error(403, "forbidden");
    }
    let mode = req.query.get("hub.mode").and_then(Value::as_str);
    let challenge = req.query.get("hub.challenge").and_then(Value::as_str).unwrap_or("");
    let printable = challenge.bytes().all(|b| b.is_ascii_graphic());
    if mode != Some("subscribe") || challenge.is_empty() || challenge.len() > MAX_CHALLENGE_CHARS || !printable {
        return Response::error(400, "bad handshake");
    }
    log::log(Level::Info, "whatsapp webhook subscription verified");
    Response { status: 200, content_type: "text/plain", body: challenge.as_bytes().to_vec() }
}

fn notification(req: &Request<'_>) -> Response {
    if !req.secret_validated {
        log::log(Level::Warn, "whatsapp notification without a verified signature: refused");
        return Response::error(401, "unauthorized");
    }
    let Ok(body) = serde_json::from_slice::<Value>(req.body) else {
        log::log(Level::Warn, &format!("malformed whatsapp notification ({} bytes): ignored", req.body.len()));
        return Response::ok();
    };
    let parsed = webhook::parse(&body);
    if parsed.statuses > 0 {
        log::log(Level::Debug, &format!("{} delivery status(es) ignored", parsed.statuses));
    }
    if parsed.truncated {
        log::log(
            Level::Warn,
            &format!("notification has more than {} messages: the rest is dropped", webhook::MAX_ITEMS),
        );
    }
    if parsed.items.is_empty() {
        return Response::ok();
    }
    let cfg = load_config();
    let mut recent = RecentIds::load(RECENT_MESSAGES_PATH, MAX_RECENT_MESSAGES);
    for item in parsed.items {
        match item {
            Item::Text(msg) => {
                if recent.first_time(&msg.message_id) {
                    admit_and_emit(&cfg, &msg);
                }
            }
            Item::Unsupported { kind, from, message_id } => {
                if recent.first_time(&message_id) {
                    log::log(Level::Info, &format!("unsupported message type {kind} from {from}: skipped"));
                }
            }
        }
    }
    recent.save_or_warn();
    Response::ok()
}

fn admit_and_emit(cfg: &Config, msg: &TextMessage) {
    let meta = json!({"name": msg.name, "phone_number_id": msg.phone_number_id});
    let send_code = |code: &str| {
        send_text(cfg, &msg.phone_number_id, &msg.from, &pairing_text(code), None, INBOUND_HTTP_TIMEOUT_MS)
    };
    if !cfg.gate().admit_or_send_code(&msg.from, msg.name.as_deref(), &meta, send_code) {
        return;
    }
    if workspace::read(LAST_NUMBER_PATH).as_deref() != Some(msg.phone_number_id.as_str()) {
        // Best effort: only on-broadcast without a configured number needs it.
        let _ = workspace::write(LAST_NUMBER_PATH, &msg.phone_number_id);
    }
    to_outgoing(msg).emit();
}

pub fn pairing_text(code: &str) -> String {
    format!("To chat with this assistant, ask its operator to approve pairing code {code} (airlock pairing approve whatsapp {code})")
}

pub fn to_outgoing(msg: &TextMessage) -> emit::Message {
    let metadata = json!({
        "phone_number_id": msg.phone_number_id,
        "from": msg.from,
        "message_id": msg.message_id,
        "name": msg.name,
        "context_id": msg.context_id,
    });
    emit::Message { user_name: msg.name.clone(), ..emit::Message::new(&msg.from, &msg.text).metadata(metadata) }
}

// ---- outbound --------------------------------------------------------------------------------------------

/// A Graph error as a safe one-liner: HTTP status, Graph code and type (never Graph's free-text message, which
/// may quote request details).
fn graph_error(status: u16, body: &[u8]) -> String {
    let data: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let err = &data["error"];
    let code = err["code"].as_i64().map(|c| format!(" code {c}")).unwrap_or_default();
    let kind = err["type"]
        .as_str()
        .filter(|t| t.len() <= 40 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    format!("HTTP {status}{code}{kind}")
}

/// Send `body` (split at 4096 characters) to `to` from the business number `phone_number_id`; the first part
/// quotes `context` when given. Returns the wamids.
pub fn send_text(
    cfg: &Config,
    phone_number_id: &str,
    to: &str,
    body: &str,
    context: Option<&str>,
    timeout_ms: u32,
) -> Result<Vec<String>, String> {
    if !is_numeric_id(phone_number_id) || !is_numeric_id(to) {
        return Err("phone number id and recipient must be numeric WhatsApp ids".into());
    }
    let url = format!("{GRAPH}/{}/{phone_number_id}/messages", cfg.api_version);
    let mut ids = Vec::new();
    for (i, piece) in split_text::split(body, MAX_TEXT_CHARS, Unit::Chars).into_iter().enumerate() {
        let mut payload = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                                 "type": "text", "text": {"body": piece, "preview_url": false}});
        if let (0, Some(id)) = (i, context) {
            payload["context"] = json!({ "message_id": id });
        }
        let http::Response { status, body, .. } =
            http::post(&url).json(&payload).timeout_ms(timeout_ms).send().map_err(|e| format!("whatsapp send: {e}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("whatsapp send failed: {}", graph_error(status, &body)));
        }
        let data: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        ids.push(data["messages"][0]["id"].as_str().unwrap_or("").to_string());
    }
    Ok(ids)
}

pub fn respond(reply: &Reply<'_>) -> Result<(), String> {
    let meta = reply.metadata;
    let number = meta["phone_number_id"].as_str().ok_or("the original message's metadata has no phone_number_id")?;
    let to = meta["from"].as_str().ok_or("the original message's metadata has no sender")?;
    let cfg = load_config();
    let context = if cfg.reply_to_message { meta["message_id"].as_str() } else { None };
    deliver(&cfg, number, to, reply, context)
}

/// on-broadcast: a message to `user_id` from `phone_number_id` in the config, else from the number that last
/// received a message. (WhatsApp only delivers free-form text inside the 24-hour customer service window.)
pub fn broadcast(user_id: &str, reply: &Reply<'_>) -> Result<(), String> {
    let cfg = load_config();
    let number = cfg
        .phone_number_id
        .clone()
        .or_else(|| workspace::read(LAST_NUMBER_PATH))
        .ok_or("no phone_number_id configured and no message received yet")?;
    deliver(&cfg, &number, &normalize_id(user_id), reply, None)
}

fn deliver(cfg: &Config, number: &str, to: &str, reply: &Reply<'_>, context: Option<&str>) -> Result<(), String> {
    if reply.attachments > 0 {
        log::log(
            Level::Warn,
            &format!("{} attachment(s) not sent: the whatsapp channel sends text only", reply.attachments),
        );
    }
    if reply.content.trim().is_empty() {
        log::log(Level::Warn, "empty reply: nothing sent");
        return Ok(());
    }
    send_text(cfg, number, to, reply.content, context, REPLY_HTTP_TIMEOUT_MS).map(|_| ())
}
