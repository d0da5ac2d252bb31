//! Incremental detokenization for streaming: text pieces that are always whole UTF-8
//! characters, with stop strings matched across token boundaries and never shown.

use crate::{Result, Tokenizer};

/// What pushing a token produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    /// Text that is now safe to show (possibly empty).
    pub text: String,
    /// Whether a stop string was completed (the text stops just before it).
    pub stopped: bool,
}

/// Turns token ids into printable text.
///
/// A character split across tokens is held back until its last byte arrives (decoding shows it as
/// U+FFFD until then), and so is any tail that could be the start of a stop string.
pub struct TextStream<'t> {
    tokenizer: &'t dyn Tokenizer,
    stops: Vec<String>,
    ids: Vec<u32>,
    /// Bytes of the decoded text already handed out.
    emitted: usize,
    /// The final text, once a stop string ended it.
    stopped_at: Option<usize>,
}

impl<'t> TextStream<'t> {
    /// A stream with no tokens yet; empty stop strings are ignored.
    pub fn new(tokenizer: &'t dyn Tokenizer, stops: &[String]) -> Self {
        let stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self { tokenizer, stops, ids: Vec::new(), emitted: 0, stopped_at: None }
    }

    /// Adds a token.
    pub fn push(&mut self, id: u32) -> Result<Piece> {
        if self.stopped_at.is_some() {
            return Ok(Piece { text: String::new(), stopped: true });
        }
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids, true)?;
        if let Some(at) = self.find_stop(&text) {
            self.stopped_at = Some(at);
            return Ok(Piece { text: self.take(&text, at), stopped: true });
        }
        let mut safe = text.len() - self.held_back(&text);
        if text[..safe].ends_with('\u{FFFD}') {
            safe -= '\u{FFFD}'.len_utf8();
        }
        Ok(Piece { text: self.take(&text, safe), stopped: false })
    }

    /// Whatever is left at the end (an incomplete character shows as U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        let text = self.text()?;
        let end = text.len();
        Ok(self.take(&text, end))
    }

    /// The whole text so far, cut before a stop string if one was found.
    pub fn text(&self) -> Result<String> {
        let mut text = self.tokenizer.decode(&self.ids, true)?;
        if let Some(at) = self.stopped_at {
            text.truncate(at);
        }
        Ok(text)
    }

    /// The earliest complete stop string in the not-yet-emitted part (and just before it).
    fn find_stop(&self, text: &str) -> Option<usize> {
        let longest = self.stops.iter().map(|s| s.len()).max()?;
        let mut from = self.emitted.saturating_sub(longest);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        self.stops.iter().filter_map(|s| text[from..].find(s.as_str()).map(|i| from + i)).min()
    }

    /// Length of the longest suffix of `text` that is a proper prefix of a stop string.
    fn held_back(&self, text: &str) -> usize {
        let mut hold = 0;
        for stop in &self.stops {
            for (len, _) in stop.char_indices().skip(1) {
                if len > hold && text.ends_with(&stop[..len]) {
                    hold = len;
                }
            }
        }
        hold
    }

    /// Hands out `text[emitted..end]`.
    fn take(&mut self, text: &str, end: usize) -> String {
        // Decoding more tokens can rewrite earlier text (space clean-up); only ever extend.
        let piece = text.get(self.emitted..end).unwrap_or_default().to_string();
        self.emitted = self.emitted.max(end);
        piece
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each token id is one byte of the text (ids ≥ 256 are "special" and skipped).
    struct Bytes;

    impl Tokenizer for Bytes {
        fn encode(&self, text: &str, _: bool) -> Result<Vec<u32>> {
            Ok(text.bytes().map(u32::from).collect())
        }
        fn decode(&self, ids: &[u32], _: bool) -> Result<String> {
            let bytes: Vec<u8> = ids.iter().filter(|&&i| i < 256).map(|&i| i as u8).collect();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        fn vocab_size(&self) -> usize {
            257
        }
        fn token_to_id(&self, _: &str) -> Option<u32> {
            None
        }
    }

    fn stream(text: &str, stops: &[&str]) -> (Vec<String>, String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = TextStream::new(&Bytes, &stops);
        let mut pieces = Vec::new();
        let mut stopped = false;
        for id in Bytes.encode(text, false).unwrap() {
            let piece = s.push(id).unwrap();
            pieces.push(piece.text);
            if piece.stopped {
                stopped = true;
                break;
            }
        }
        pieces.push(s.finish().unwrap());
        (pieces, s.text().unwrap(), stopped)
    }

    #[test]
    fn multibyte_characters_are_never_split() {
        let (pieces, text, _) = stream("añ東🚀", &[]);
        assert_eq!(text, "añ東🚀");
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        assert_eq!(pieces.concat(), "añ東🚀");
    }

    #[test]
    fn stop_strings_match_across_tokens_and_are_not_shown() {
        let (pieces, text, stopped) = stream("Hello\nUser: more", &["\nUser:"]);
        assert!(stopped);
        assert_eq!(text, "Hello");
        assert_eq!(pieces.concat(), "Hello");
    }

    #[test]
    fn partial_stop_prefixes_are_released_when_they_do_not_match() {
        let (pieces, text, stopped) = stream("a\nUb", &["\nUser:"]);
        assert!(!stopped);
        assert_eq!(pieces.concat(), "a\nUb");
        assert_eq!(text, "a\nUb");
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        let (_, text, stopped) = stream("one. two! three", &["!", "two"]);
        assert!(stopped);
        assert_eq!(text, "one. ");
    }
}
