//! The inbound webhook payload and the redelivery filter. Pure logic: no host calls.
//!
//! Payload (JSON object): `{"user": "u1", "text": "hello", "name": "Ada", "thread": "t1", "id": "m-1"}`.
//! `user` (string or integer) and `text` are required; the rest is optional. `id`, when present, makes
//! retried deliveries of the same message harmless (the channel keeps recent ids with the SDK's
//! `workspace::RecentIds`, whose id limit is this file's [`MAX_FIELD_BYTES`]).

use airlock_channel::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// Longest `user`, `name`, `thread` and `id`, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// Longest `text`, in bytes (the host's default `max_message_size`).
pub const MAX_TEXT_BYTES: usize = 65_536;

/// A validated inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// Sender id.
    pub user: String,
    /// Sender display name.
    pub name: Option<String>,
    /// Message text (trimmed, non-empty).
    pub text: String,
    /// Conversation thread.
    pub thread: Option<String>,
    /// Sender-side message id.
    pub id: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    user: Option<Value>,
    text: Option<Value>,
    name: Option<Value>,
    thread: Option<Value>,
    id: Option<Value>,
}

/// Parse and validate a request body. The error text is safe to return to the caller.
pub fn parse(body: &[u8]) -> Result<Inbound> {
    let raw: Raw = serde_json::from_slice(body).map_err(|_| Error::new("body must be a JSON object"))?;
    let user = field("user", raw.user.as_ref(), MAX_FIELD_BYTES)?.ok_or_else(|| Error::new("user is required"))?;
    let text = match raw.text {
        Some(Value::String(t)) => t.trim().to_string(),
        _ => return Err(Error::new("text must be a string")),
    };
    if text.is_empty() {
        return Err(Error::new("text is empty"));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::new(format!("text is longer than {MAX_TEXT_BYTES} bytes")));
    }
    Ok(Inbound {
        user,
        name: field("name", raw.name.as_ref(), MAX_FIELD_BYTES)?,
        text,
        thread: field("thread", raw.thread.as_ref(), MAX_FIELD_BYTES)?,
        id: field("id", raw.id.as_ref(), MAX_FIELD_BYTES)?,
    })
}

/// An optional short field: string or integer, trimmed; empty or `null` is none.
fn field(name: &str, value: Option<&Value>, max: usize) -> Result<Option<String>> {
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(_) => return Err(Error::new(format!("{name} must be a string"))),
    };
    if text.len() > max {
        return Err(Error::new(format!("{name} is longer than {max} bytes")));
    }
    Ok(Some(text).filter(|t| !t.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_full_payloads() {
        let m = parse(br#"{"user": 42, "text": "  hi  "}"#).unwrap();
        assert_eq!((m.user.as_str(), m.text.as_str(), m.name, m.id), ("42", "hi", None, None));
        let m = parse(br#"{"user": "u", "text": "x", "name": "Ada", "thread": "t", "id": "m1"}"#).unwrap();
        assert_eq!((m.name.as_deref(), m.thread.as_deref(), m.id.as_deref()), (Some("Ada"), Some("t"), Some("m1")));
    }

    #[test]
    fn rejects_bad_payloads() {
        for (body, why) in [
            (&b"[1]"[..], "JSON object"),
            (b"{", "JSON object"),
            (br#"{"text": "x"}"#, "user is required"),
            (br#"{"user": "", "text": "x"}"#, "user is required"),
            (br#"{"user": {}, "text": "x"}"#, "user must be"),
            (br#"{"user": "u"}"#, "text must be"),
            (br#"{"user": "u", "text": "   "}"#, "text is empty"),
        ] {
            assert!(parse(body).unwrap_err().to_string().contains(why), "{}", String::from_utf8_lossy(body));
        }
        let long_user = format!(r#"{{"user": "{}", "text": "x"}}"#, "u".repeat(MAX_FIELD_BYTES + 1));
        assert!(parse(long_user.as_bytes()).is_err());
        let long_text = format!(r#"{{"user": "u", "text": "{}"}}"#, "t".repeat(MAX_TEXT_BYTES + 1));
        assert!(parse(long_text.as_bytes()).unwrap_err().to_string().contains("longer than"));
        let max_text = format!(r#"{{"user": "u", "text": "{}"}}"#, "t".repeat(MAX_TEXT_BYTES));
        assert!(parse(max_text.as_bytes()).is_ok());
    }
}
