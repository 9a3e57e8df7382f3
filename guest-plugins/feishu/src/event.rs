//! Event subscription callbacks (`POST /webhook/feishu`). The host has already checked the verification
//! token, the `X-Lark-Signature` and decrypted an encrypted body: the body here is plaintext JSON.
//!
//! Source: Feishu docs, "Event subscription overview" (schema 2.0 envelope: `header.event_id`,
//! `header.event_type`), "Configure the request URL" (`{"type": "url_verification", "challenge"}` is
//! answered with `{"challenge"}` within 1 second) and "Receive message" (`im.message.receive_v1`: `sender`
//! with `sender_id.open_id` and `sender_type`, `message` with `message_id`, `chat_id`, `chat_type`
//! p2p/group, `message_type`, `content`, `mentions`, `root_id`, `thread_id`).

use airlock_channel::workspace::RecentIds;
use airlock_channel::{debug, emit, warn, Response, Result};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api;
use crate::settings::{Settings, CHANNEL};
use crate::text::{is_feishu_id, resolve_mentions, text_of, Mention};

/// Recently handled `event_id`s: Feishu redelivers an event it thinks failed, so each is handled once.
const SEEN_PATH: &str = "state/recent_events";
/// How many event ids are remembered.
pub const SEEN_CAPACITY: usize = 64;

#[derive(Deserialize)]
struct Envelope {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    header: Option<Header>,
    #[serde(default)]
    event: Value,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    event_id: String,
    #[serde(default)]
    event_type: String,
}

#[derive(Deserialize)]
pub struct MessageEvent {
    pub sender: Sender,
    pub message: Message,
}

#[derive(Deserialize)]
pub struct Sender {
    #[serde(default)]
    pub sender_id: SenderId,
    #[serde(default)]
    pub sender_type: String,
}

#[derive(Default, Deserialize)]
pub struct SenderId {
    #[serde(default)]
    pub open_id: String,
}

#[derive(Deserialize)]
pub struct Message {
    pub message_id: String,
    #[serde(default)]
    pub chat_id: String,
    #[serde(default)]
    pub chat_type: String,
    #[serde(default)]
    pub message_type: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub mentions: Vec<MentionEntry>,
    #[serde(default)]
    pub root_id: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
}

#[derive(Deserialize)]
pub struct MentionEntry {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub id: MentionId,
    #[serde(default)]
    pub name: String,
}

#[derive(Default, Deserialize)]
pub struct MentionId {
    #[serde(default)]
    pub open_id: String,
}

fn ok() -> Response {
    Response::json(200, &json!({}))
}

pub fn pairing_text(code: &str) -> String {
    airlock_channel::pairing::code_text(CHANNEL, code)
}

/// Answer one verified callback. Events are acknowledged with 200 even when they are ignored or fail
/// (Feishu would otherwise redeliver them); failures are logged.
pub fn handle(body: &[u8]) -> Response {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(e) => {
            warn!("malformed event ({} bytes): {e}", body.len());
            return Response::bad_request("malformed event");
        }
    };
    if envelope.kind.as_deref() == Some("url_verification") {
        return match envelope.challenge {
            Some(challenge) => Response::json(200, &json!({"challenge": challenge})),
            None => Response::bad_request("url_verification without a challenge"),
        };
    }
    let Some(header) = envelope.header.filter(|_| envelope.schema.as_deref() == Some("2.0")) else {
        debug!("event without a schema 2.0 header ignored");
        return ok();
    };
    if header.event_type != "im.message.receive_v1" {
        debug!("event {} ignored", header.event_type);
        return ok();
    }
    if !first_delivery(&header.event_id) {
        debug!("event {} already handled", header.event_id);
        return ok();
    }
    let result = serde_json::from_value::<MessageEvent>(envelope.event)
        .map_err(airlock_channel::Error::from)
        .and_then(|event| message_received(&event));
    if let Err(e) = result {
        warn!("event {} not handled: {e}", header.event_id);
    }
    ok()
}

/// Remember `event_id`; false if it was already seen (an empty id is never deduplicated).
fn first_delivery(event_id: &str) -> bool {
    let mut seen = RecentIds::load(SEEN_PATH, SEEN_CAPACITY);
    let first = seen.first_time(event_id);
    seen.save_or_warn();
    first
}

/// Why a message is not for the agent, or `None`.
fn skip_reason(event: &MessageEvent) -> Option<&'static str> {
    if event.sender.sender_type != "user" {
        return Some("not sent by a user (the app itself or another bot)");
    }
    if event.message.message_type != "text" {
        return Some("not a text message");
    }
    let m = &event.message;
    if !is_feishu_id(&m.message_id) || !is_feishu_id(&event.sender.sender_id.open_id) || !is_feishu_id(&m.chat_id) {
        return Some("malformed ids");
    }
    None
}

fn message_received(event: &MessageEvent) -> Result<()> {
    if let Some(reason) = skip_reason(event) {
        debug!("message ignored: {reason}");
        return Ok(());
    }
    let settings = Settings::load()?;
    let msg = &event.message;
    let sender = &event.sender.sender_id.open_id;
    let Some(raw_text) = text_of(&msg.content) else {
        debug!("message {} ignored: no text", msg.message_id);
        return Ok(());
    };
    let mentions: Vec<Mention<'_>> =
        msg.mentions.iter().map(|m| Mention { key: &m.key, open_id: &m.id.open_id, name: &m.name }).collect();
    let group = msg.chat_type != "p2p";
    let text = if group {
        let bot = api::bot_open_id(&settings)?;
        if !mentions.iter().any(|m| m.open_id == bot) {
            return Ok(());
        }
        resolve_mentions(&raw_text, &mentions, Some(&bot))
    } else {
        if !admit_dm(&settings, sender, msg) {
            return Ok(());
        }
        resolve_mentions(&raw_text, &mentions, None)
    };
    if text.is_empty() {
        return Ok(());
    }
    let mut metadata = json!({
        "message_id": msg.message_id,
        "chat_id": msg.chat_id,
        "chat_type": if group { "group" } else { "p2p" },
        "open_id": sender,
    });
    let thread = msg.thread_id.as_deref().filter(|t| !t.is_empty());
    if let Some(root) = msg.root_id.as_deref().filter(|r| !r.is_empty()) {
        metadata["root_id"] = json!(root);
    }
    if let Some(thread) = thread {
        metadata["thread_id"] = json!(thread);
    }
    let mut message = emit::Message::new(sender, text).metadata(metadata);
    if let Some(thread) = thread {
        message = message.thread_id(thread);
    }
    message.emit();
    Ok(())
}

/// `dm_policy` for a p2p chat; a new sender gets the pairing code as a reply (once).
fn admit_dm(settings: &Settings, sender: &str, msg: &Message) -> bool {
    let meta = json!({"chat_id": msg.chat_id});
    let send_code = |code: &str| api::reply(settings, &msg.message_id, &pairing_text(code), false);
    settings.gate.admit_or_send_code(sender, None, &meta, send_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;

    fn event(sender_type: &str, message_type: &str) -> MessageEvent {
        serde_json::from_value(json!({
            "sender": {"sender_id": {"open_id": "ou_a"}, "sender_type": sender_type},
            "message": {"message_id": "om_1", "chat_id": "oc_1", "chat_type": "p2p", "message_type": message_type,
                        "content": "{\"text\":\"hi\"}"}
        }))
        .unwrap()
    }

    #[test]
    fn skips_apps_and_non_text() {
        assert_eq!(skip_reason(&event("user", "text")), None);
        assert!(skip_reason(&event("app", "text")).is_some());
        assert_eq!(skip_reason(&event("user", "image")), Some("not a text message"));
    }

    #[test]
    fn url_verification_and_dedup() {
        let _host = MockHost::install();
        let resp = handle(br#"{"type":"url_verification","challenge":"c-1","token":"t"}"#);
        assert_eq!(resp.status, 200);
        assert_eq!(serde_json::from_slice::<Value>(&resp.body).unwrap(), json!({"challenge": "c-1"}));
        assert!(first_delivery("e1"));
        assert!(!first_delivery("e1"));
        for i in 0..SEEN_CAPACITY {
            first_delivery(&format!("x{i}"));
        }
        assert!(first_delivery("e1"), "the oldest ids are forgotten");
        assert_eq!(handle(b"{not json").status, 400);
    }
}
