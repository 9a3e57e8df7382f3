//! Pure text helpers: Feishu ids, message content, mentions, and splitting long replies.

use airlock_channel::text::{Splitter, Unit};
use serde_json::Value;

/// Most UTF-8 bytes of text in one reply. Feishu refuses a message whose request body is over 150 KB;
/// the text travels JSON-encoded twice (`content` is a JSON string holding `{"text": ...}`), so the worst
/// case (control characters, 7 bytes each after both escapes) of 20,000 bytes stays under that.
pub const MAX_CHUNK_BYTES: usize = 20_000;

/// Most chunks one reply is split into; the last one then ends with a "[truncated]" marker.
pub const MAX_CHUNKS: usize = 10;

/// A Feishu id used in a REST path or query (`om_...` message ids, `ou_...` open ids, `oc_...` chat ids):
/// 1 to 128 ASCII letters, digits, `_` or `-`. Anything else from a payload or metadata is refused.
pub fn is_feishu_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The text of a `text` message: `content` is a JSON string `{"text": "..."}` (Feishu docs, "Message
/// content": text). `None` for anything else.
pub fn text_of(content: &str) -> Option<String> {
    let parsed: Value = serde_json::from_str(content).ok()?;
    parsed.get("text")?.as_str().map(str::to_string)
}

/// A mention as Feishu writes it into the text: the placeholder `key` (e.g. `@_user_1`) and who it is.
pub struct Mention<'a> {
    pub key: &'a str,
    pub open_id: &'a str,
    pub name: &'a str,
}

/// `text` with the bot's mention placeholders removed and other placeholders replaced by `@name`,
/// spaces collapsed.
pub fn resolve_mentions(text: &str, mentions: &[Mention<'_>], bot_open_id: Option<&str>) -> String {
    let mut out = text.to_string();
    // Longest keys first, so "@_user_1" does not eat the start of "@_user_10".
    let mut ordered: Vec<&Mention<'_>> = mentions.iter().filter(|m| !m.key.is_empty()).collect();
    ordered.sort_by_key(|m| std::cmp::Reverse(m.key.len()));
    for m in ordered {
        let replacement = if Some(m.open_id) == bot_open_id { String::new() } else { format!("@{}", m.name) };
        out = out.replace(m.key, &replacement);
    }
    let lines: Vec<String> =
        out.lines().map(|line| line.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")).collect();
    lines.join("\n").trim().to_string()
}

/// Split `text` into chunks of at most `limit` UTF-8 bytes, preferring paragraph, line, then word
/// boundaries, never inside a character; at most [`MAX_CHUNKS`] chunks (the last one then ends with a
/// "[truncated]" marker).
pub fn split(text: &str, limit: usize) -> Vec<String> {
    Splitter::new(limit, Unit::Bytes).max_pieces(MAX_CHUNKS).split(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(
            is_feishu_id("om_dc13264520392913993dd051dba21dcf")
                && is_feishu_id("ou_7d8a6e6df7621556ce0d21922b676706ccs")
        );
        assert!(
            !is_feishu_id("") && !is_feishu_id("om_1/../x") && !is_feishu_id("om 1") && !is_feishu_id(&"a".repeat(129))
        );
    }

    #[test]
    fn content_text() {
        assert_eq!(text_of(r#"{"text":"hi there"}"#).as_deref(), Some("hi there"));
        assert_eq!(text_of(r#"{"image_key":"x"}"#), None);
        assert_eq!(text_of("not json"), None);
    }

    #[test]
    fn mentions() {
        let m = [
            Mention { key: "@_user_1", open_id: "ou_bot", name: "Bot" },
            Mention { key: "@_user_10", open_id: "ou_tom", name: "Tom" },
        ];
        assert_eq!(resolve_mentions("@_user_1  ask @_user_10 about it", &m, Some("ou_bot")), "ask @Tom about it");
        assert_eq!(resolve_mentions("@_user_1", &m, Some("ou_bot")), "");
        assert_eq!(resolve_mentions("@_user_1 hi", &m, None), "@Bot hi");
    }

    #[test]
    fn splitting_by_bytes() {
        assert_eq!(split("short", 100), vec!["short"]);
        let wide = "字".repeat(10_000); // 3 bytes each, no boundaries
        let chunks = split(&wide, MAX_CHUNK_BYTES);
        assert!(chunks.iter().all(|c| c.len() <= MAX_CHUNK_BYTES));
        assert_eq!(chunks.concat(), wide);
        let huge = "word ".repeat(MAX_CHUNK_BYTES * 3);
        let chunks = split(&huge, MAX_CHUNK_BYTES);
        assert_eq!(chunks.len(), MAX_CHUNKS);
        assert!(chunks.last().unwrap().ends_with("[truncated]") && chunks.iter().all(|c| c.len() <= MAX_CHUNK_BYTES));
    }
}
