//! Splitting long replies into messages the platform accepts.

/// Split `text` into pieces of at most `max_chars` characters (Unicode scalar values), cutting at a paragraph
/// break, else a line break, else a space, in the last three quarters of a piece; a hard cut only when a piece
/// has no such boundary. Empty input gives no pieces. `max_chars` must be at least 1.
pub fn split(text: &str, max_chars: usize) -> Vec<String> {
    assert!(max_chars > 0, "max_chars must be positive");
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
            pieces.push(rest.to_string());
            break;
        };
        let window = &rest[..limit];
        let floor = window.len() / 4;
        let cut = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&p| p > floor).map(|p| (p, p + sep.len())));
        let (end, next) = cut.unwrap_or((limit, limit));
        pieces.push(rest[..end].to_string());
        rest = &rest[next..];
    }
    pieces.retain(|p| !p.trim().is_empty());
    pieces
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn short_text_is_one_piece() {
        assert_eq!(split("hello", 10), vec!["hello"]);
        assert!(split("", 10).is_empty());
        assert_eq!(split("abcdefghij", 10), vec!["abcdefghij"]);
    }

    #[test]
    fn cuts_at_boundaries_and_keeps_every_character() {
        let text = format!("{}\n\n{}\n{}", "a".repeat(30), "b ".repeat(20), "c".repeat(50));
        let pieces = split(&text, 40);
        assert!(pieces.iter().all(|p| p.chars().count() <= 40), "{pieces:?}");
        assert_eq!(pieces[0], "a".repeat(30));
        let letters: String = text.chars().filter(|c| c.is_alphabetic()).collect();
        let joined: String = pieces.concat().chars().filter(|c| c.is_alphabetic()).collect();
        assert_eq!(joined, letters);
    }

    #[test]
    fn multibyte_hard_cut() {
        let text = "é".repeat(25);
        let pieces = split(&text, 10);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.chars().count() <= 10));
    }
}
