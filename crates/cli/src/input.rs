//! Reading lines from the user (a prompts file, `zoo chat`'s standard input) in bounded memory:
//! a line longer than [`MAX_LINE`] or not UTF-8 is reported, never read whole, and input that
//! runs on for [`MAX_SKIP`] bytes without a line break (`/dev/zero`) ends with an error.

use std::io::BufRead;

use anyhow::{bail, Result};

/// Longest line accepted as a prompt or chat message.
pub const MAX_LINE: usize = 1 << 20;

/// Most bytes skipped looking for the end of an over-long line before giving up on the input.
pub const MAX_SKIP: usize = 64 << 20;

/// Prompts of a `--prompts-file` generated together; longer files are processed in chunks.
pub const PROMPTS_PER_BATCH: usize = 64;

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line, without its line break.
    Text(String),
    /// A line longer than [`MAX_LINE`] bytes (skipped).
    TooLong,
    /// A line that is not UTF-8 (skipped).
    NotUtf8,
    /// The end of the input.
    End,
}

/// Reads the next line of `input`; `what` names the input in errors.
pub fn next_line(input: &mut dyn BufRead, what: &str) -> Result<Line> {
    let mut bytes = Vec::new();
    let read = std::io::Read::take(&mut *input, MAX_LINE as u64 + 1).read_until(b'\n', &mut bytes)?;
    if read == 0 {
        return Ok(Line::End);
    }
    if bytes.len() > MAX_LINE && !bytes.ends_with(b"\n") {
        skip_rest_of_line(input, what)?;
        return Ok(Line::TooLong);
    }
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    Ok(String::from_utf8(bytes).map_or(Line::NotUtf8, Line::Text))
}

/// Skips to the next line break, failing after [`MAX_SKIP`] bytes without one.
fn skip_rest_of_line(input: &mut dyn BufRead, what: &str) -> Result<()> {
    let mut skipped = 0;
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        if let Some(i) = buffer.iter().position(|b| *b == b'\n') {
            input.consume(i + 1);
            return Ok(());
        }
        let n = buffer.len();
        input.consume(n);
        skipped += n;
        if skipped > MAX_SKIP {
            bail!("{what}: no line break in {} MiB of input; not lines of text", MAX_SKIP >> 20);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_and_skipped() {
        let mut text = b"one\r\n".to_vec();
        text.extend(vec![b'x'; MAX_LINE + 10]);
        text.extend(b"\n\xff\xfe\nlast");
        let mut input = std::io::Cursor::new(text);
        let lines: Vec<Line> = std::iter::from_fn(|| match next_line(&mut input, "t").unwrap() {
            Line::End => None,
            line => Some(line),
        })
        .collect();
        assert_eq!(lines, [Line::Text("one".into()), Line::TooLong, Line::NotUtf8, Line::Text("last".into())]);
    }

    #[test]
    fn endless_input_is_an_error() {
        let mut zero = std::io::BufReader::new(std::fs::File::open("/dev/zero").unwrap());
        assert!(next_line(&mut zero, "stdin").unwrap_err().to_string().contains("no line break"));
    }
}
