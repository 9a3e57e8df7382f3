//! Splitting long replies into messages a platform accepts.
//!
//! Every platform caps one message, some in characters (Slack `chat.postMessage`: 40,000; WhatsApp text:
//! 4,096; Discord `content`: 2,000) and some in bytes (Feishu: a 150 KB request body). [`split`] cuts a
//! reply at the most natural boundary inside the limit and never inside a character;
//! [`Splitter::max_pieces`] bounds how many messages one runaway reply becomes.
//!
//! ```
//! use airlock_channel::text::{split, Splitter, Unit};
//!
//! assert_eq!(split("one two three", 8, Unit::Chars), vec!["one two", "three"]);
//! let capped = Splitter::new(16, Unit::Bytes).max_pieces(2).split(&"word ".repeat(20));
//! assert_eq!(capped, vec!["word word word", "word\n[truncated]"]);
//! ```

/// Appended to the last piece when [`Splitter::max_pieces`] drops the rest of a reply.
pub const TRUNCATED_MARKER: &str = "\n[truncated]";

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Unicode scalar values (Rust `char`s), as Slack, WhatsApp and Discord count.
    Chars,
    /// UTF-8 bytes.
    Bytes,
}

impl Unit {
    fn measure(self, text: &str) -> usize {
        match self {
            Unit::Chars => text.chars().count(),
            Unit::Bytes => text.len(),
        }
    }

    /// The largest byte index of `text` that keeps at most `n` units before it and is a character boundary.
    fn floor(self, text: &str, n: usize) -> usize {
        match self {
            Unit::Chars => text.char_indices().nth(n).map_or(text.len(), |(i, _)| i),
            Unit::Bytes => {
                let mut i = n.min(text.len());
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                i
            }
        }
    }
}

/// A splitting rule: a limit per piece and, optionally, a most number of pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Splitter {
    limit: usize,
    unit: Unit,
    max_pieces: Option<usize>,
}

impl Splitter {
    /// Pieces of at most `limit` `unit`s, as many as needed.
    ///
    /// Panics when `limit` is 0. With [`Unit::Bytes`] a limit under 4 can be exceeded by one character
    /// that does not fit whole (a piece never splits a character).
    pub fn new(limit: usize, unit: Unit) -> Self {
        assert!(limit > 0, "text::Splitter limit must be positive");
        Splitter { limit, unit, max_pieces: None }
    }

    /// At most `n` pieces: when the reply needs more, the last piece is cut shorter and ends with
    /// [`TRUNCATED_MARKER`] (still within the limit). Panics when `n` is 0 or the limit cannot hold the
    /// marker plus one character.
    pub fn max_pieces(mut self, n: usize) -> Self {
        assert!(n > 0, "text::Splitter max_pieces must be positive");
        assert!(self.limit > self.unit.measure(TRUNCATED_MARKER) + 3, "text::Splitter limit too small for the marker");
        self.max_pieces = Some(n);
        self
    }

    /// Split `text`. Each cut is at the last paragraph break (`\n\n`), else line break, else space, in the
    /// last three quarters of the window; a hard cut (on a character boundary) only when the window has none.
    /// Pieces are trimmed at the end, line breaks at a cut are dropped, blank pieces are skipped, so a
    /// blank `text` gives no pieces. Every non-whitespace character is kept, in order, unless truncated.
    pub fn split(&self, text: &str) -> Vec<String> {
        let mut pieces = Vec::new();
        let mut rest = text.trim_end();
        while !rest.is_empty() {
            let fits = self.unit.measure(rest) <= self.limit;
            if !fits && self.max_pieces == Some(pieces.len() + 1) {
                let keep = self.unit.floor(rest, self.limit - self.unit.measure(TRUNCATED_MARKER));
                pieces.push(format!("{}{TRUNCATED_MARKER}", rest[..keep].trim_end()));
                break;
            }
            if fits {
                pieces.push(rest.to_string());
                break;
            }
            let mut hard = self.unit.floor(rest, self.limit);
            if hard == 0 {
                // A byte limit smaller than the first character: take that character whole.
                hard = rest.chars().next().map_or(rest.len(), char::len_utf8);
            }
            let window = &rest[..hard];
            let cut = ["\n\n", "\n", " "]
                .iter()
                .find_map(|sep| window.rfind(sep).filter(|&pos| pos > hard / 4).map(|pos| (pos, pos + sep.len())));
            let (end, start) = cut.unwrap_or((hard, hard));
            let piece = rest[..end].trim_end();
            if !piece.is_empty() {
                pieces.push(piece.to_string());
            }
            rest = rest[start..].trim_start_matches('\n');
        }
        pieces
    }
}

/// [`Splitter::new`]`(limit, unit).split(text)`: every piece within `limit`, no cap on their number.
pub fn split(text: &str, limit: usize, unit: Unit) -> Vec<String> {
    Splitter::new(limit, unit).split(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn short_and_blank_text() {
        assert_eq!(split("hello", 10, Unit::Chars), vec!["hello"]);
        assert_eq!(split("abcdefghij", 10, Unit::Chars), vec!["abcdefghij"]);
        assert!(split("", 10, Unit::Chars).is_empty());
        assert!(split(" \n\n ", 1, Unit::Bytes).is_empty());
    }

    #[test]
    fn prefers_paragraph_then_line_then_space() {
        let para = format!("{}\n\n{}", "a".repeat(15), "b".repeat(15));
        assert_eq!(split(&para, 20, Unit::Chars), vec!["a".repeat(15), "b".repeat(15)]);
        let lines = format!("{} x\n{}", "a".repeat(12), "b".repeat(10));
        assert_eq!(split(&lines, 20, Unit::Chars), vec![format!("{} x", "a".repeat(12)), "b".repeat(10)]);
        let text = format!("{}\n\n{}\n{}", "a".repeat(30), "b ".repeat(20), "c".repeat(50));
        let pieces = split(&text, 40, Unit::Chars);
        assert!(pieces.iter().all(|p| p.chars().count() <= 40), "{pieces:?}");
        assert_eq!(pieces[0], "a".repeat(30));
        assert_eq!(letters(&pieces.concat()), letters(&text));
    }

    #[test]
    fn a_boundary_too_early_is_not_used() {
        // The only space is in the first quarter: cutting there would waste the piece, so cut hard.
        let text = format!("a {}", "b".repeat(30));
        assert_eq!(split(&text, 20, Unit::Chars)[0].chars().count(), 20);
    }

    #[test]
    fn hard_cuts_respect_characters() {
        let wide = "é".repeat(45);
        let counts: Vec<usize> = split(&wide, 20, Unit::Chars).iter().map(|p| p.chars().count()).collect();
        assert_eq!(counts, vec![20, 20, 5]);
        let han = "字".repeat(10); // 3 bytes each
        let pieces = split(&han, 10, Unit::Bytes);
        assert!(pieces.iter().all(|p| p.len() <= 10 && p.len() % 3 == 0), "{pieces:?}");
        assert_eq!(pieces.concat(), han);
        // A byte limit smaller than one character still makes progress, one whole character per piece.
        assert_eq!(split("字字", 2, Unit::Bytes), vec!["字", "字"]);
    }

    #[test]
    fn piece_count_is_capped_with_a_marker() {
        let huge = "x".repeat(200);
        let pieces = Splitter::new(20, Unit::Chars).max_pieces(3).split(&huge);
        assert_eq!(pieces.len(), 3);
        assert!(pieces[2].ends_with(TRUNCATED_MARKER));
        assert!(pieces.iter().all(|p| p.chars().count() <= 20), "{pieces:?}");
        // Exactly enough room: no marker.
        let fits = Splitter::new(20, Unit::Chars).max_pieces(3).split(&"y".repeat(60));
        assert_eq!(fits, vec!["y".repeat(20); 3]);
    }

    #[test]
    #[should_panic(expected = "positive")]
    fn zero_limit_is_refused() {
        let _ = Splitter::new(0, Unit::Chars);
    }
}
