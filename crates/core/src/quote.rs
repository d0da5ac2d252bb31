//! Quoting text taken from files in error messages: at most [`QUOTE_CHARS`] characters,
//! control and non-printing characters escaped, so that a hostile file cannot flood or rewrite
//! the terminal through an error line.

/// Characters of file content an error quotes before cutting it short.
pub const QUOTE_CHARS: usize = 64;

/// `text` escaped (as Rust's `escape_debug` does: `\n`, `\u{1b}`, ...) and cut to
/// [`QUOTE_CHARS`] characters, with `…` marking a cut; wrapped in double quotes.
pub fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == QUOTE_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_truncates() {
        assert_eq!(quoted("a\nb\u{1b}[2J"), "\"a\\nb\\u{1b}[2J\"");
        let long = quoted(&"x".repeat(1000));
        assert!(long.chars().count() < QUOTE_CHARS + 4 && long.ends_with("…\""));
    }
}
