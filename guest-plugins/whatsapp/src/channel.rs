//! The WhatsApp channel's behaviour, over the [`Env`] trait (no SDK types here).
//!
//! Inbound: the host has checked the request before [`handle_request`] runs (GET: `hub.mode=subscribe` and
//! `hub.verify_token` equal to the stored `whatsapp_verify_token`; POST: `X-Hub-Signature-256` = `sha256=`
//! HMAC-SHA256 of the raw body with `whatsapp_app_secret`); requests it did not verify are refused again here.
//! The GET handshake is answered with `hub.challenge` as text/plain. A POST is answered 200 even when nothing
//! in it is usable, because Meta retries anything else for days; duplicates (Meta delivers at least once) are
//! dropped by message id, the last [`MAX_RECENT_MESSAGES`] being kept in the workspace.
//!
//! Non-text messages (images, voice notes, stickers, locations, reactions...) are not passed on: the channel
//! logs `unsupported message type` and skips them (it sends the user nothing, so a sticker never costs a paid
//! message).
//!
//! Outbound: [`respond`] posts to `https://graph.facebook.com/{api_version}/{phone_number_id}/messages` with
//! the access token added by the host (`Authorization: Bearer`, credential `whatsapp_access`); the reply goes
//! to the sender, quoting the original message (`context.message_id`) when `reply_to_message` is on.

use serde_json::{json, Value};

use crate::config::{is_numeric_id, normalize_id, Admission, Config};
use crate::env::{Env, HttpReply, Level, Outgoing};
use crate::text;
use crate::webhook::{self, Item, TextMessage};

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

pub fn start(env: &mut dyn Env, raw: &Value) -> Result<(), String> {
    let cfg = Config::from_json(raw)?;
    env.write(CONFIG_PATH, &cfg.to_state().to_string())
}

fn load_config(env: &mut dyn Env) -> Config {
    let text = env.read(CONFIG_PATH);
    Config::from_state(text.as_deref())
}

// ---- inbound ---------------------------------------------------------------------------------------------

pub fn handle_request(env: &mut dyn Env, req: &Request<'_>) -> Response {
    if req.path != WEBHOOK_PATH {
        return Response::error(404, "not found");
    }
    match req.method {
        "GET" => handshake(env, req),
        "POST" => notification(env, req),
        _ => Response::error(405, "method not allowed"),
    }
}

/// Meta's subscription check: echo `hub.challenge` once the host has matched the verify token.
fn handshake(env: &mut dyn Env, req: &Request<'_>) -> Response {
    if !req.secret_validated {
        env.log(Level::Warn, "whatsapp handshake the host did not verify: refused");
        return Response::error(403, "forbidden");
    }
    let mode = req.query.get("hub.mode").and_then(Value::as_str);
    let challenge = req.query.get("hub.challenge").and_then(Value::as_str).unwrap_or("");
    let printable = challenge.bytes().all(|b| b.is_ascii_graphic());
    if mode != Some("subscribe") || challenge.is_empty() || challenge.len() > MAX_CHALLENGE_CHARS || !printable {
        return Response::error(400, "bad handshake");
    }
    env.log(Level::Info, "whatsapp webhook subscription verified");
    Response { status: 200, content_type: "text/plain", body: challenge.as_bytes().to_vec() }
}

fn notification(env: &mut dyn Env, req: &Request<'_>) -> Response {
    if !req.secret_validated {
        env.log(Level::Warn, "whatsapp notification without a verified signature: refused");
        return Response::error(401, "unauthorized");
    }
    let Ok(body) = serde_json::from_slice::<Value>(req.body) else {
        env.log(Level::Warn, &format!("malformed whatsapp notification ({} bytes): ignored", req.body.len()));
        return Response::ok();
    };
    let parsed = webhook::parse(&body);
    if parsed.statuses > 0 {
        env.log(Level::Debug, &format!("{} delivery status(es) ignored", parsed.statuses));
    }
    if parsed.truncated {
        env.log(
            Level::Warn,
            &format!("notification has more than {} messages: the rest is dropped", webhook::MAX_ITEMS),
        );
    }
    if parsed.items.is_empty() {
        return Response::ok();
    }
    let cfg = load_config(env);
    let mut recent = RecentIds::load(env);
    for item in parsed.items {
        match item {
            Item::Text(msg) => {
                if recent.first_time(&msg.message_id) {
                    admit_and_emit(env, &cfg, &msg);
                }
            }
            Item::Unsupported { kind, from, message_id } => {
                if recent.first_time(&message_id) {
                    env.log(Level::Info, &format!("unsupported message type {kind} from {from}: skipped"));
                }
            }
        }
    }
    recent.save(env);
    Response::ok()
}

/// The last message ids seen, to drop redeliveries.
struct RecentIds {
    ids: Vec<String>,
    changed: bool,
}

impl RecentIds {
    fn load(env: &mut dyn Env) -> Self {
        let ids = env.read(RECENT_MESSAGES_PATH).and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        Self { ids, changed: false }
    }

    fn first_time(&mut self, id: &str) -> bool {
        if self.ids.iter().any(|i| i == id) {
            return false;
        }
        self.ids.push(id.to_string());
        self.changed = true;
        true
    }

    fn save(mut self, env: &mut dyn Env) {
        if !self.changed {
            return;
        }
        let excess = self.ids.len().saturating_sub(MAX_RECENT_MESSAGES);
        self.ids.drain(..excess);
        if let Err(e) = env.write(RECENT_MESSAGES_PATH, &json!(self.ids).to_string()) {
            env.log(Level::Warn, &format!("could not record message ids: {e}"));
        }
    }
}

fn admit_and_emit(env: &mut dyn Env, cfg: &Config, msg: &TextMessage) {
    let decision = match cfg.admission(&msg.from) {
        Admission::Pairing if env.pairing_allowed(&msg.from) => Admission::Allow,
        other => other,
    };
    match decision {
        Admission::Allow => {
            if env.read(LAST_NUMBER_PATH).as_deref() != Some(msg.phone_number_id.as_str()) {
                // Best effort: only on-broadcast without a configured number needs it.
                let _ = env.write(LAST_NUMBER_PATH, &msg.phone_number_id);
            }
            env.emit(to_outgoing(msg));
        }
        Admission::Deny => {
            env.log(Level::Info, &format!("message from {} dropped: not allowed ({})", msg.from, cfg.policy_name()));
        }
        Admission::Pairing => request_pairing(env, cfg, msg),
    }
}

fn request_pairing(env: &mut dyn Env, cfg: &Config, msg: &TextMessage) {
    let meta = json!({"name": msg.name, "phone_number_id": msg.phone_number_id});
    match env.pairing_upsert(&msg.from, &meta) {
        Ok((code, true)) => {
            env.log(Level::Info, &format!("pairing requested by whatsapp user {}: code {code}", msg.from));
            let body = pairing_text(&code);
            let sent = send_text(env, cfg, &msg.phone_number_id, &msg.from, &body, None, INBOUND_HTTP_TIMEOUT_MS);
            if let Err(e) = sent {
                env.log(Level::Warn, &format!("could not send the pairing code to {}: {e}", msg.from));
            }
        }
        Ok((_, false)) => env.log(Level::Debug, &format!("whatsapp user {} is still waiting for approval", msg.from)),
        Err(e) => env.log(Level::Warn, &format!("pairing request for {} failed: {e}", msg.from)),
    }
}

pub fn pairing_text(code: &str) -> String {
    format!("To chat with this assistant, ask its operator to approve pairing code {code} (airlock pairing approve whatsapp {code})")
}

pub fn to_outgoing(msg: &TextMessage) -> Outgoing {
    let metadata = json!({
        "phone_number_id": msg.phone_number_id,
        "from": msg.from,
        "message_id": msg.message_id,
        "name": msg.name,
        "context_id": msg.context_id,
    });
    Outgoing {
        user_id: msg.from.clone(),
        user_name: msg.name.clone(),
        content: msg.text.clone(),
        thread_id: None,
        metadata,
    }
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
    env: &mut dyn Env,
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
    for (i, piece) in text::split(body, MAX_TEXT_CHARS).into_iter().enumerate() {
        let mut payload = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
                                 "type": "text", "text": {"body": piece, "preview_url": false}});
        if let (0, Some(id)) = (i, context) {
            payload["context"] = json!({ "message_id": id });
        }
        let HttpReply { status, body } = env
            .post(&url, "application/json", payload.to_string().as_bytes(), timeout_ms)
            .map_err(|e| format!("whatsapp send: {e}"))?;
        if !(200..300).contains(&status) {
            return Err(format!("whatsapp send failed: {}", graph_error(status, &body)));
        }
        let data: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        ids.push(data["messages"][0]["id"].as_str().unwrap_or("").to_string());
    }
    Ok(ids)
}

pub fn respond(env: &mut dyn Env, reply: &Reply<'_>) -> Result<(), String> {
    let meta = reply.metadata;
    let number = meta["phone_number_id"].as_str().ok_or("the original message's metadata has no phone_number_id")?;
    let to = meta["from"].as_str().ok_or("the original message's metadata has no sender")?;
    let cfg = load_config(env);
    let context = if cfg.reply_to_message { meta["message_id"].as_str() } else { None };
    deliver(env, &cfg, number, to, reply, context)
}

/// on-broadcast: a message to `user_id` from `phone_number_id` in the config, else from the number that last
/// received a message. (WhatsApp only delivers free-form text inside the 24-hour customer service window.)
pub fn broadcast(env: &mut dyn Env, user_id: &str, reply: &Reply<'_>) -> Result<(), String> {
    let cfg = load_config(env);
    let number = cfg
        .phone_number_id
        .clone()
        .or_else(|| env.read(LAST_NUMBER_PATH))
        .ok_or("no phone_number_id configured and no message received yet")?;
    deliver(env, &cfg, &number, &normalize_id(user_id), reply, None)
}

fn deliver(
    env: &mut dyn Env,
    cfg: &Config,
    number: &str,
    to: &str,
    reply: &Reply<'_>,
    context: Option<&str>,
) -> Result<(), String> {
    if reply.attachments > 0 {
        env.log(
            Level::Warn,
            &format!("{} attachment(s) not sent: the whatsapp channel sends text only", reply.attachments),
        );
    }
    if reply.content.trim().is_empty() {
        env.log(Level::Warn, "empty reply: nothing sent");
        return Ok(());
    }
    send_text(env, cfg, number, to, reply.content, context, REPLY_HTTP_TIMEOUT_MS).map(|_| ())
}
