//! Bounds on what reading a file may cost, checked before the memory is spent: text files read
//! whole (configs, templates), decompressed records, template rendering, and the rule that no
//! two tensors of a file share bytes.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use crate::error::{CheckpointError, Result};

/// Largest JSON or text file (config, tokenizer config, chat template) read whole.
pub const MAX_TEXT_FILE: u64 = 256 << 20;

/// Most a `.mpk.gz` record may expand, as a multiple of its compressed size (weights compress
/// little, about 1.1×; a gzip bomb expands ~1000×), plus [`GZIP_SLACK`].
pub const GZIP_MAX_RATIO: u64 = 32;

/// Allowance added to [`GZIP_MAX_RATIO`]'s bound for tiny records.
pub const GZIP_SLACK: u64 = 16 << 20;

/// Instructions a chat template may execute for one rendering (minijinja fuel).
pub const TEMPLATE_FUEL: u64 = 5_000_000;

/// Longest text a chat template may render.
pub const TEMPLATE_OUTPUT: usize = 64 << 20;

/// Reads the text file at `path`, refusing one larger than [`MAX_TEXT_FILE`] (or endless, as a
/// device) instead of reading it all.
pub fn read_text(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_TEXT_FILE + 1).read_to_end(&mut bytes).map_err(|e| CheckpointError::io(path, e))?;
    if bytes.len() as u64 > MAX_TEXT_FILE {
        return Err(CheckpointError::invalid(
            path,
            format!("larger than {} MiB; not a config file", MAX_TEXT_FILE >> 20),
        ));
    }
    String::from_utf8(bytes).map_err(|e| CheckpointError::invalid(path, format!("not UTF-8 text: {e}")))
}

/// Decompresses the gzip file at `path`, refusing output beyond what its size allows (see
/// [`GZIP_MAX_RATIO`]) and output whose length disagrees with the gzip trailer's.
pub fn gunzip(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let compressed = file.metadata().map_err(|e| CheckpointError::io(path, e))?.len();
    let cap = compressed.saturating_mul(GZIP_MAX_RATIO).saturating_add(GZIP_SLACK);
    let trailer_size = trailer_size(path, compressed)?;
    if compressed < 1 << 32 && u64::from(trailer_size) > cap {
        return Err(bomb(path, cap));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(u64::from(trailer_size).min(cap)).unwrap_or(0));
    flate2::read::GzDecoder::new(file)
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CheckpointError::invalid(path, format!("not a valid gzip stream: {e}")))?;
    if bytes.len() as u64 > cap {
        return Err(bomb(path, cap));
    }
    if bytes.len() as u32 != trailer_size {
        return Err(CheckpointError::invalid(path, "gzip stream's length disagrees with its trailer (truncated?)"));
    }
    Ok(bytes)
}

fn bomb(path: &Path, cap: u64) -> CheckpointError {
    CheckpointError::invalid(
        path,
        format!("decompresses to more than {cap} bytes ({GZIP_MAX_RATIO}× its size): not a Burn record (gzip bomb?)"),
    )
}

/// The uncompressed length modulo 2³² that a gzip file's last four bytes record.
fn trailer_size(path: &Path, len: u64) -> Result<u32> {
    use std::io::{Seek, SeekFrom};
    if len < 18 {
        return Err(CheckpointError::invalid(path, format!("{len} bytes is too short for a gzip file")));
    }
    let mut file = std::fs::File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let mut tail = [0u8; 4];
    file.seek(SeekFrom::End(-4)).and_then(|_| file.read_exact(&mut tail)).map_err(|e| CheckpointError::io(path, e))?;
    Ok(u32::from_le_bytes(tail))
}

/// Refuses byte ranges (named, empty ones ignored) that overlap: two tensors sharing bytes are
/// a corrupt or hostile file, whatever the format.
pub fn check_disjoint(path: &Path, mut ranges: Vec<(Range<usize>, &str)>) -> Result<()> {
    ranges.retain(|(r, _)| !r.is_empty());
    ranges.sort_by_key(|(r, _)| (r.start, r.end));
    for pair in ranges.windows(2) {
        let ((a, a_name), (b, b_name)) = (&pair[0], &pair[1]);
        if b.start < a.end {
            return Err(CheckpointError::tensor(
                path,
                *b_name,
                format!("bytes {b:?} overlap tensor `{a_name}` at {a:?}"),
            ));
        }
    }
    Ok(())
}

/// A writer that fails once more than `limit` bytes were written (a template's output).
pub struct BoundedWriter {
    /// What was written.
    pub text: Vec<u8>,
    limit: usize,
}

impl BoundedWriter {
    /// An empty writer refusing more than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { text: Vec::new(), limit }
    }
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > self.limit {
            return Err(std::io::Error::other(format!("output longer than {} bytes", self.limit)));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
