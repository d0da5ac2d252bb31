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
/// U+FFFD until then, one per byte with byte-fallback vocabularies), and so is any tail that
/// could be the start of a stop string.
///
/// Each token costs two decodes of a few tokens, not a decode of everything so far: the text of
/// the tokens not yet settled is what decoding them after a few settled ones adds to decoding
/// those alone (so a decoder that treats the first token specially, such as SentencePiece's
/// leading-space strip, sees them in context), appended to the settled text.
pub struct TextStream<'t> {
    tokenizer: &'t dyn Tokenizer,
    stops: Vec<String>,
    ids: Vec<u32>,
    /// The text of `ids[..settled_ids]`, which ends with a whole character.
    settled: String,
    settled_ids: usize,
    /// Bytes of the decoded text already handed out.
    emitted: usize,
    /// The final text, once a stop string ended it.
    stopped_at: Option<usize>,
}

/// Settled tokens decoded again before the new ones, as their context.
const CONTEXT_TOKENS: usize = 4;

impl<'t> TextStream<'t> {
    /// A stream with no tokens yet; empty stop strings are ignored.
    pub fn new(tokenizer: &'t dyn Tokenizer, stops: &[String]) -> Self {
        let stops = stops.iter().filter(|s| !s.is_empty()).cloned().collect();
        Self { tokenizer, stops, ids: Vec::new(), settled: String::new(), settled_ids: 0, emitted: 0, stopped_at: None }
    }

    /// Adds a token.
    pub fn push(&mut self, id: u32) -> Result<Piece> {
        if self.stopped_at.is_some() {
            return Ok(Piece { text: String::new(), stopped: true });
        }
        self.ids.push(id);
        let text = self.decoded()?;
        if let Some(at) = self.find_stop(&text) {
            self.stopped_at = Some(at);
            return Ok(Piece { text: self.take(&text, at), stopped: true });
        }
        let mut safe = text.len() - self.held_back(&text);
        // A character whose bytes are still arriving decodes as one U+FFFD per byte so far.
        while text[..safe].ends_with('\u{FFFD}') {
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

    /// The text of every token so far, from the settled text and the new tokens decoded after a
    /// few settled ones; settles them when their text ends with a whole character.
    fn decoded(&mut self) -> Result<String> {
        let from = self.settled_ids.saturating_sub(CONTEXT_TOKENS);
        let context = self.tokenizer.decode(&self.ids[from..self.settled_ids], true)?;
        let window = self.tokenizer.decode(&self.ids[from..], true)?;
        let text = match window.strip_prefix(context.as_str()) {
            Some(tail) => [self.settled.as_str(), tail].concat(),
            // The new tokens changed how their context decodes: decode everything.
            None => self.tokenizer.decode(&self.ids, true)?,
        };
        if text.len() > self.settled.len() && !text.ends_with('\u{FFFD}') {
            self.settled.clone_from(&text);
            self.settled_ids = self.ids.len();
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

    /// [`Bytes`], but an incomplete character decodes as one U+FFFD per byte, as a byte-fallback
    /// vocabulary's does.
    struct ByteFallback;

    impl Tokenizer for ByteFallback {
        fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
            Bytes.encode(text, special)
        }
        fn decode(&self, ids: &[u32], _: bool) -> Result<String> {
            let bytes: Vec<u8> = ids.iter().map(|&i| i as u8).collect();
            let valid = std::str::from_utf8(&bytes).map_or_else(|e| e.valid_up_to(), |_| bytes.len());
            let text = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
            Ok(text.to_string() + &"\u{FFFD}".repeat(bytes.len() - valid))
        }
        fn vocab_size(&self) -> usize {
            256
        }
        fn token_to_id(&self, _: &str) -> Option<u32> {
            None
        }
    }

    #[test]
    fn a_character_shown_as_one_replacement_per_byte_is_held_back_whole() {
        let mut s = TextStream::new(&ByteFallback, &[]);
        let pieces: Vec<String> = "a🦙.c🚀".bytes().map(|b| s.push(u32::from(b)).unwrap().text).collect();
        assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        assert_eq!(pieces.concat() + &s.finish().unwrap(), "a🦙.c🚀");
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
    /// Words of a SentencePiece-like vocabulary: `▁` marks a leading space, and decoding drops
    /// the space the whole text would start with.
    struct Pieces(Vec<&'static str>);

    impl Tokenizer for Pieces {
        fn encode(&self, _: &str, _: bool) -> Result<Vec<u32>> {
            Ok(Vec::new())
        }
        fn decode(&self, ids: &[u32], _: bool) -> Result<String> {
            let text: String = ids.iter().map(|&i| self.0[i as usize].replace('▁', " ")).collect();
            Ok(text.strip_prefix(' ').unwrap_or(&text).to_string())
        }
        fn vocab_size(&self) -> usize {
            self.0.len()
        }
        fn token_to_id(&self, _: &str) -> Option<u32> {
            None
        }
    }

    #[test]
    fn tokens_decoded_in_context_give_the_whole_decode() {
        let vocab = Pieces(vec!["▁The", "▁cap", "ital", "▁of", "▁France", "▁is", "▁Paris", "."]);
        let ids: Vec<u32> = (0..300).map(|i| [0, 1, 2, 3, 4, 5, 6, 7][i % 8]).collect();
        let mut s = TextStream::new(&vocab, &[]);
        let mut pieces: Vec<String> = ids.iter().map(|&id| s.push(id).unwrap().text).collect();
        pieces.push(s.finish().unwrap());
        assert_eq!(pieces.concat(), vocab.decode(&ids, true).unwrap());
    }

    /// [`Bytes`], remembering the longest run of ids one decode was asked for.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Tokenizer for Counting {
        fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
            Bytes.encode(text, special)
        }
        fn decode(&self, ids: &[u32], special: bool) -> Result<String> {
            self.0.fetch_max(ids.len(), std::sync::atomic::Ordering::Relaxed);
            Bytes.decode(ids, special)
        }
        fn vocab_size(&self) -> usize {
            257
        }
        fn token_to_id(&self, _: &str) -> Option<u32> {
            None
        }
    }

    #[test]
    fn a_long_stream_decodes_a_few_tokens_per_token() {
        let counting = Counting(std::sync::atomic::AtomicUsize::new(0));
        let text = "añ東🚀 and some ascii. ".repeat(200);
        let mut s = TextStream::new(&counting, &["STOP".to_string()]);
        let pieces: Vec<String> = text.bytes().map(|b| s.push(u32::from(b)).unwrap().text).collect();
        // The context plus a character's four bytes at most, however long the stream.
        let longest = counting.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(pieces.concat() + &s.finish().unwrap(), text);
        assert!(longest <= CONTEXT_TOKENS + 4, "decoded {longest} ids at once");
    }
}
