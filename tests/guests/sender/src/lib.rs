//! A test channel of world 0.2.0 (`delivery`, `edits`, `reactions`) that sends replies, edits and reactions to
//! `https://localhost.test/` (a fake platform on 127.0.0.1 in tests) and reports failures as typed send errors.
//!
//! Replies go to `POST /send` with `{"chat", "text"}`; the answer's `id` is the platform message id. Edits go to
//! `POST /edit` with `{"id", "text"}`, reactions to `POST /react` with `{"id", "emoji", "remove"}`. When the platform
//! answers anything but 2xx, the text decides the error (so a test can make the guest contradict the platform's
//! HTTP answer): `typed:temporary ...` -> temporary, `typed:permanent ...` -> permanent, `typed:rate:N ...` ->
//! rate-limited for N seconds, anything else -> an unclassified error (the host reads the HTTP answers).

use airlock_channel::{
    export_channel, http, AgentResponse, Channel, ChannelConfig, Config, Error, MessageEdit, Reaction, Result,
};
use serde_json::{json, Value};

const BASE: &str = "https://localhost.test";

fn failure(text: &str, status: u16) -> Error {
    let message = format!("platform answered {status}");
    let word = text.split(' ').next().unwrap_or_default();
    match word {
        "typed:temporary" => Error::temporary(message),
        "typed:permanent" => Error::permanent(message),
        _ => match word.strip_prefix("typed:rate:").and_then(|n| n.parse().ok()) {
            Some(seconds) => Error::rate_limited(seconds, message),
            None => Error::new(message),
        },
    }
}

fn post(path: &str, doc: &Value, text: &str) -> Result<Value> {
    let resp = http::post(&format!("{BASE}{path}")).json(doc).send()?;
    if !(200..300).contains(&resp.status) {
        return Err(failure(text, resp.status));
    }
    Ok(resp.json::<Value>().unwrap_or(Value::Null))
}

fn sent_id(answer: &Value) -> Option<String> {
    answer.get("id").and_then(Value::as_str).map(str::to_string)
}

pub struct Sender;

impl Channel for Sender {
    fn on_start(_config: Config) -> Result<ChannelConfig> {
        Ok(ChannelConfig::new("sender"))
    }

    fn on_respond(response: &AgentResponse) -> Result<()> {
        Self::on_send(response).map(drop)
    }

    fn on_send(response: &AgentResponse) -> Result<Option<String>> {
        let doc = json!({"chat": response.metadata_str("chat"), "text": response.content});
        post("/send", &doc, &response.content).map(|answer| sent_id(&answer))
    }

    fn on_send_broadcast(user_id: &str, response: &AgentResponse) -> Result<Option<String>> {
        post("/send", &json!({"chat": user_id, "text": response.content}), &response.content).map(|a| sent_id(&a))
    }

    fn on_edit(edit: &MessageEdit) -> Result<()> {
        post("/edit", &json!({"id": edit.platform_message_id, "text": edit.content}), &edit.content).map(drop)
    }

    fn on_react(reaction: &Reaction) -> Result<()> {
        let doc = json!({"id": reaction.platform_message_id, "emoji": reaction.emoji, "remove": reaction.remove});
        post("/react", &doc, &reaction.emoji).map(drop)
    }
}

export_channel!(Sender);

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_channel::testing::MockHost;
    use airlock_channel::SendClass;

    #[test]
    fn the_text_decides_the_class_of_a_refused_send() {
        let host = MockHost::install();
        let reply = |text: &str| AgentResponse::new("r", text).with_metadata(json!({"chat": "c1"}));
        host.queue_http(200, r#"{"id": "m1"}"#);
        assert_eq!(Sender::on_send(&reply("hi")).unwrap().as_deref(), Some("m1"));
        for (text, class) in [
            ("typed:temporary x", Some(SendClass::Temporary)),
            ("typed:permanent x", Some(SendClass::Permanent)),
            ("typed:rate:3 x", Some(SendClass::RateLimited(3))),
            ("plain", None),
        ] {
            host.queue_http(400, "{}");
            assert_eq!(Sender::on_send(&reply(text)).unwrap_err().class(), class, "{text}");
        }
        assert_eq!(host.http_calls()[0].json(), json!({"chat": "c1", "text": "hi"}));
    }
}
