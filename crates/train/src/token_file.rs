//! Tokenized data on disk: little-endian `u32` ids, written once and memory-mapped, and the
//! random contiguous windows each step trains on (drawn from `--seed` and the step alone, so a
//! resumed run draws what the uninterrupted run would have).

use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::error::{Result, TrainError};

/// A memory-mapped token file.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    map: Option<Mmap>,
}

impl TokenFile {
    /// Writes `tokens` to `path`.
    pub fn write(path: &Path, tokens: &[u32]) -> Result<()> {
        let file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        for t in tokens {
            out.write_all(&t.to_le_bytes()).map_err(|e| TrainError::io(path, e))?;
        }
        out.flush().map_err(|e| TrainError::io(path, e))
    }

    /// Maps `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
        let len = file.metadata().map_err(|e| TrainError::io(path, e))?.len();
        if len % 4 != 0 {
            return Err(TrainError::Data {
                path: path.into(),
                message: "not a token file (length not a multiple of 4)".into(),
            });
        }
        // SAFETY: the run directory's token files are written once, before mapping, and never
        // modified while mapped. An empty file is not mapped (mapping zero bytes fails on some
        // systems).
        let map = if len == 0 { None } else { Some(unsafe { Mmap::map(&file) }.map_err(|e| TrainError::io(path, e))?) };
        Ok(Self { path: path.to_path_buf(), map })
    }

    /// Tokens in the file.
    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len() / 4)
    }

    /// Whether the file holds no tokens.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokens `start..start + len`.
    pub fn window(&self, start: usize, len: usize) -> Vec<u32> {
        let bytes = self.map.as_deref().unwrap_or(&[]);
        bytes[4 * start..4 * (start + len)]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Checks that windows of `len` tokens fit.
    pub fn check_fits(&self, len: usize) -> Result<()> {
        if self.len() < len {
            return Err(TrainError::Data {
                path: self.path.clone(),
                message: format!("{} tokens, fewer than one training window of {len}", self.len()),
            });
        }
        Ok(())
    }
}

/// `rows` windows of `len` tokens each at random offsets, drawn from `seed` and `draw` (the
/// step and micro-batch) alone.
pub fn random_windows(file: &TokenFile, seed: u64, draw: u64, rows: usize, len: usize) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(draw);
    let starts = file.len() - len + 1;
    (0..rows).map(|_| file.window((rng.next_u64() % starts as u64) as usize, len)).collect()
}

/// Up to `count` windows of `len` tokens, side by side from the start of `file`: the same
/// validation batch at every evaluation.
pub fn leading_windows(file: &TokenFile, count: usize, len: usize) -> Vec<Vec<u32>> {
    (0..count).take_while(|i| (i + 1) * len <= file.len()).map(|i| file.window(i * len, len)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tokens: &[u32]) -> (tempfile::TempDir, TokenFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        TokenFile::write(&path, tokens).unwrap();
        let file = TokenFile::open(&path).unwrap();
        (dir, file)
    }

    #[test]
    fn windows_read_back_what_was_written() {
        let tokens: Vec<u32> = (0..100).map(|i| i * 7 + 70000).collect();
        let (_dir, f) = file(&tokens);
        assert_eq!(f.len(), 100);
        assert_eq!(f.window(10, 3), &tokens[10..13]);
        let w = random_windows(&f, 1, 5, 4, 9);
        assert!(w.iter().all(|w| w.len() == 9 && w.windows(2).all(|p| p[1] == p[0] + 7)));
    }

    #[test]
    fn draws_depend_on_seed_and_draw_only() {
        let tokens: Vec<u32> = (0..1000).collect();
        let (_dir, f) = file(&tokens);
        assert_eq!(random_windows(&f, 3, 8, 4, 5), random_windows(&f, 3, 8, 4, 5));
        assert_ne!(random_windows(&f, 3, 8, 4, 5), random_windows(&f, 3, 9, 4, 5));
        assert_ne!(random_windows(&f, 3, 8, 4, 5), random_windows(&f, 4, 8, 4, 5));
    }

    #[test]
    fn short_and_empty_files_are_refused() {
        let (_dir, f) = file(&[]);
        assert!(f.is_empty());
        assert!(f.check_fits(2).unwrap_err().to_string().contains("fewer than one training window"));
        assert!(leading_windows(&f, 3, 2).is_empty());
    }
}
