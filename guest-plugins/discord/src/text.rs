//! Pure text helpers: Discord ids, bot mentions, and splitting replies into Discord-sized messages.

use airlock_channel::text::{Splitter, Unit};

/// Discord refuses a message `content` longer than 2000 characters (API reference, "Create Message").
pub const MAX_CONTENT_CHARS: usize = 2000;

/// Most chunks one reply is split into; the rest is dropped with a marker (a runaway reply must not turn
/// into hundreds of REST calls against a 60-per-minute budget).
pub const MAX_CHUNKS: usize = 10;

/// A snowflake id as Discord writes it: 1 to 20 ASCII digits (a `u64` in decimal). Ids go into REST paths,
/// so anything else from an untrusted payload or metadata is refused.
pub fn is_snowflake(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// An interaction token as it appears in `/webhooks/{application_id}/{token}`: URL-safe characters only,
/// at most 500 of them (real tokens are about 200).
pub fn is_interaction_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 500
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// True when `content` mentions the user `bot_id` (`<@id>` or the legacy nickname form `<@!id>`).
pub fn mentions(content: &str, bot_id: &str) -> bool {
    content.contains(&format!("<@{bot_id}>")) || content.contains(&format!("<@!{bot_id}>"))
}

/// `content` without mentions of `bot_id`, with runs of spaces collapsed and leading `,`/`:` dropped
/// ("<@1>, do x" -> "do x").
pub fn strip_mention(content: &str, bot_id: &str) -> String {
    let without = content.replace(&format!("<@!{bot_id}>"), " ").replace(&format!("<@{bot_id}>"), " ");
    let lines: Vec<String> =
        without.lines().map(|line| line.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")).collect();
    let joined = lines.join("\n");
    joined.trim().trim_start_matches([',', ':']).trim().to_string()
}

/// Split `text` into chunks of at most `limit` characters, preferring paragraph, line, then word
/// boundaries; at most [`MAX_CHUNKS`] chunks (the last one then ends with a "[truncated]" marker).
pub fn split(text: &str, limit: usize) -> Vec<String> {
    Splitter::new(limit, Unit::Chars).max_pieces(MAX_CHUNKS).split(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens() {
        assert!(is_snowflake("80351110224678912"));
        assert!(!is_snowflake("") && !is_snowflake("12a") && !is_snowflake("../x") && !is_snowflake(&"1".repeat(21)));
        assert!(is_interaction_token("aW50ZXJhY3Rpb246MTIz.abc-_"));
        assert!(!is_interaction_token("a/b") && !is_interaction_token("a?b") && !is_interaction_token(""));
    }

    #[test]
    fn mention_handling() {
        assert!(mentions("hey <@42> there", "42") && mentions("<@!42>", "42"));
        assert!(!mentions("<@421>", "42") && !mentions("@42", "42"));
        assert_eq!(strip_mention("<@42>, what   time is it?", "42"), "what time is it?");
        assert_eq!(strip_mention("ask <@!42> about\n<@42> this", "42"), "ask about\nthis");
        assert_eq!(strip_mention("<@42>", "42"), "");
    }

    #[test]
    fn splitting() {
        assert_eq!(split("short", 2000), vec!["short"]);
        assert!(split("", 2000).is_empty());
        let para = format!("{}\n\n{}", "a".repeat(1500), "b".repeat(1500));
        assert_eq!(split(&para, 2000), vec!["a".repeat(1500), "b".repeat(1500)]);
        let words = "word ".repeat(1000);
        let chunks = split(&words, 2000);
        assert!(chunks.iter().all(|c| c.chars().count() <= 2000));
        assert_eq!(chunks.join(" ").split_whitespace().count(), 1000);
        let wide = "é".repeat(4500); // multi-byte, no boundary: hard cuts on characters
        let chunks = split(&wide, 2000);
        assert_eq!(chunks.iter().map(|c| c.chars().count()).collect::<Vec<_>>(), vec![2000, 2000, 500]);
    }

    #[test]
    fn chunk_count_is_capped() {
        let huge = "x".repeat(MAX_CONTENT_CHARS * (MAX_CHUNKS + 5));
        let chunks = split(&huge, MAX_CONTENT_CHARS);
        assert_eq!(chunks.len(), MAX_CHUNKS);
        assert!(chunks.last().unwrap().ends_with("[truncated]"));
        assert!(chunks.iter().all(|c| c.chars().count() <= MAX_CONTENT_CHARS));
    }
}
