//! Parsing of WhatsApp Cloud API webhook notifications
//! (https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components).
//!
//! A notification is `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
//! "value": {...}}]}]}`; each `value` names the business number (`metadata.phone_number_id`) and carries
//! `messages[]` (from users), `contacts[]` (their profile names) and/or `statuses[]` (sent/delivered/read
//! receipts of our own messages).
//!
//! Kept: `type: "text"` messages with a non-empty `text.body`. Reported as unsupported (the caller logs and
//! skips them): every other message type (image, audio, sticker, location, reaction, interactive...). Skipped
//! silently: statuses, other `field`s, other `object`s, malformed parts. At most [`MAX_ITEMS`] items are read
//! from one notification.

use serde_json::Value;

use crate::config::is_numeric_id;

/// Upper bound on messages taken from one request (the host lets a callback emit 100 messages).
pub const MAX_ITEMS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMessage {
    pub phone_number_id: String,
    pub from: String,
    pub name: Option<String>,
    pub message_id: String,
    pub text: String,
    /// The wamid this message replies to (the user quoted an earlier message).
    pub context_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Text(TextMessage),
    Unsupported { kind: String, from: String, message_id: String },
}

/// Everything a notification holds, plus how many statuses it had (for the log).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Notification {
    pub items: Vec<Item>,
    pub statuses: usize,
    pub truncated: bool,
}

fn text_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

pub fn parse(body: &Value) -> Notification {
    let mut out = Notification::default();
    if text_of(body, "object") != Some("whatsapp_business_account") {
        return out;
    }
    for change in array(body, "entry").iter().flat_map(|e| array(e, "changes")) {
        if text_of(change, "field") != Some("messages") {
            continue;
        }
        let value = &change["value"];
        out.statuses += array(value, "statuses").len();
        let Some(number) = value["metadata"]["phone_number_id"].as_str().filter(|p| is_numeric_id(p)) else {
            continue;
        };
        for message in array(value, "messages") {
            if out.items.len() == MAX_ITEMS {
                out.truncated = true;
                return out;
            }
            if let Some(item) = parse_message(number, array(value, "contacts"), message) {
                out.items.push(item);
            }
        }
    }
    out
}

fn contact_name(contacts: &[Value], wa_id: &str) -> Option<String> {
    contacts
        .iter()
        .find(|c| text_of(c, "wa_id") == Some(wa_id))
        .or_else(|| if contacts.len() == 1 { contacts.first() } else { None })
        .and_then(|c| text_of(&c["profile"], "name"))
        .map(str::to_string)
}

fn parse_message(number: &str, contacts: &[Value], message: &Value) -> Option<Item> {
    let from = text_of(message, "from").filter(|f| is_numeric_id(f))?.to_string();
    let message_id = text_of(message, "id").filter(|i| i.len() <= 256)?.to_string();
    let kind = text_of(message, "type").unwrap_or("unknown");
    if kind != "text" {
        return Some(Item::Unsupported { kind: kind.chars().take(32).collect(), from, message_id });
    }
    let text = message["text"]["body"].as_str().map(str::trim).filter(|t| !t.is_empty())?.to_string();
    Some(Item::Text(TextMessage {
        phone_number_id: number.to_string(),
        name: contact_name(contacts, &from),
        from,
        message_id,
        text,
        context_id: text_of(&message["context"], "id").map(str::to_string),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn note(value: Value) -> Value {
        json!({"object": "whatsapp_business_account",
               "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]})
    }

    fn text_value(from: &str, body: &str) -> Value {
        json!({"messaging_product": "whatsapp", "metadata": {"phone_number_id": "106", "display_phone_number": "1555"},
               "contacts": [{"profile": {"name": "Alice"}, "wa_id": from}],
               "messages": [{"from": from, "id": "wamid.A", "timestamp": "1", "type": "text", "text": {"body": body},
                             "context": {"from": "1555", "id": "wamid.PREV"}}]})
    }

    #[test]
    fn text_message() {
        let n = parse(&note(text_value("4917", " hi ")));
        let [Item::Text(m)] = n.items.as_slice() else { panic!("{n:?}") };
        assert_eq!((m.phone_number_id.as_str(), m.from.as_str(), m.text.as_str()), ("106", "4917", "hi"));
        assert_eq!((m.name.as_deref(), m.context_id.as_deref()), (Some("Alice"), Some("wamid.PREV")));
    }

    #[test]
    fn statuses_media_and_junk() {
        let status = note(json!({"metadata": {"phone_number_id": "106"},
                                 "statuses": [{"id": "wamid.X", "status": "read"}]}));
        assert_eq!(parse(&status), Notification { items: vec![], statuses: 1, truncated: false });
        let mut media = text_value("4917", "x");
        media["messages"][0] = json!({"from": "4917", "id": "wamid.I", "type": "image", "image": {"id": "9"}});
        assert!(matches!(parse(&note(media)).items.as_slice(), [Item::Unsupported { kind, .. }] if kind == "image"));
        for junk in [
            json!([]),
            json!({"object": "page"}),
            note(text_value("49/17", "x")),
            note(text_value("4917", "  ")),
            note(json!({"metadata": {"phone_number_id": "../x"}, "messages": [{"from": "1", "id": "a",
                                 "type": "text", "text": {"body": "x"}}]})),
        ] {
            assert!(parse(&junk).items.is_empty(), "{junk}");
        }
    }

    #[test]
    fn bounded() {
        let mut value = text_value("4917", "x");
        let one = value["messages"][0].clone();
        value["messages"] = Value::Array(vec![one; MAX_ITEMS + 5]);
        let n = parse(&note(value));
        assert_eq!((n.items.len(), n.truncated), (MAX_ITEMS, true));
    }
}
