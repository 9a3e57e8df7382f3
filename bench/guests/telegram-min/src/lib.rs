//! Benchmark guest: one Telegram webhook update in, at most one message out.
//!
//! The work is defined once for all benchmark variants (bench/work.py says it in Python): accept a
//! `message` with a text, a non-bot sender and a private chat; emit the stripped text with the sender's
//! id and display name (username, else first name), the thread id, and metadata `{chat_id, message_id,
//! chat_type[, thread_id][, username]}`; answer 200 `{"ok":true}` (also when the update is ignored, as
//! Telegram retries anything else). A malformed body is 400.

use airlock_channel::{
    emit, export_channel, AgentResponse, Channel, ChannelConfig, Config, Endpoint, Request, Response, Result,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
struct Update {
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    message_id: Option<i64>,
    text: Option<String>,
    from: Option<User>,
    chat: Option<Chat>,
    message_thread_id: Option<i64>,
}

#[derive(Deserialize)]
struct User {
    id: Option<i64>,
    #[serde(default)]
    is_bot: bool,
    username: Option<String>,
    first_name: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

struct TelegramMin;

fn ok() -> Response {
    Response::json(200, &json!({"ok": true}))
}

/// The message to emit for `update`, or None when the update is not a user's private text message.
fn to_message(update: Update) -> Option<emit::Message> {
    let msg = update.message?;
    let from = msg.from?;
    let chat = msg.chat?;
    let (user_id, chat_id) = (from.id?, chat.id?);
    if from.is_bot || chat.kind.as_deref() != Some("private") {
        return None;
    }
    let text = msg.text?;
    let content = text.trim();
    if content.is_empty() {
        return None;
    }
    let mut metadata = Map::new();
    metadata.insert("chat_id".into(), json!(chat_id));
    metadata.insert("message_id".into(), json!(msg.message_id));
    metadata.insert("chat_type".into(), json!("private"));
    if let Some(thread) = msg.message_thread_id {
        metadata.insert("thread_id".into(), json!(thread));
    }
    if let Some(username) = from.username.as_deref().filter(|u| !u.is_empty()) {
        metadata.insert("username".into(), json!(username));
    }
    let mut out = emit::Message::new(user_id.to_string(), content).metadata(Value::Object(metadata));
    if let Some(name) = from.username.filter(|u| !u.is_empty()).or(from.first_name.filter(|n| !n.is_empty())) {
        out = out.user_name(name);
    }
    if let Some(thread) = msg.message_thread_id {
        out = out.thread_id(thread.to_string());
    }
    Some(out)
}

impl Channel for TelegramMin {
    /// The webhook path is `config.path` (default `/webhook/telegram-min`), so that the start-up benchmark
    /// can install many copies side by side.
    fn on_start(config: Config) -> Result<ChannelConfig> {
        let path = config.str("path").unwrap_or("/webhook/telegram-min");
        Ok(ChannelConfig::new("telegram-min").endpoint(Endpoint::post(path)))
    }

    fn on_http_request(req: &Request) -> Response {
        match req.json::<Update>() {
            Ok(update) => {
                if let Some(message) = to_message(update) {
                    message.emit();
                }
                ok()
            }
            Err(_) => Response::bad_request("not a Telegram update"),
        }
    }

    fn on_respond(_response: &AgentResponse) -> Result<()> {
        Ok(())
    }
}

export_channel!(TelegramMin);
