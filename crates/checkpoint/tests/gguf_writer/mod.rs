//! A GGUF writer for tests, shared by the GGUF test files, with the helpers they share: writing
//! a file and corrupting bytes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Writes `bytes` to `dir/model.gguf` and returns its path.
pub fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes `bytes` to `model.gguf` in a fresh temporary folder and hands its path to `read` (the
/// file lives until `read` returns).
pub fn with_file<T>(bytes: &[u8], read: impl FnOnce(&Path) -> T) -> T {
    let dir = tempfile::tempdir().unwrap();
    read(&write(dir.path(), bytes))
}

/// Copies of `bytes`, without end, each with `flips` bytes at `from` or later overwritten:
/// positions and values from one xorshift64 sequence started at `seed` (the same corruptions on
/// every run).
pub fn corrupted(bytes: &[u8], from: usize, flips: usize, seed: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut state = seed;
    std::iter::repeat_with(move || {
        let mut b = bytes.to_vec();
        for _ in 0..flips {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = from + (state as usize) % (b.len() - from);
            b[at] = (state >> 32) as u8;
        }
        b
    })
}

/// A GGUF writer for tests: metadata values and tensors are appended as raw little-endian bytes,
/// so a test can write anything, including what a real writer never would.
#[derive(Default)]
pub struct Writer {
    pub version: u32,
    kvs: Vec<Vec<u8>>,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    alignment: usize,
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

impl Writer {
    pub fn new() -> Self {
        Self { version: 3, alignment: 32, ..Default::default() }
    }

    /// A key with value type `ty` and raw value bytes.
    pub fn kv(mut self, key: &str, ty: u32, value: Vec<u8>) -> Self {
        let mut out = gguf_string(key);
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend(value);
        self.kvs.push(out);
        self
    }

    pub fn u32(self, key: &str, v: u32) -> Self {
        self.kv(key, 4, v.to_le_bytes().to_vec())
    }

    pub fn f32(self, key: &str, v: f32) -> Self {
        self.kv(key, 6, v.to_le_bytes().to_vec())
    }

    pub fn str(self, key: &str, v: &str) -> Self {
        self.kv(key, 8, gguf_string(v))
    }

    pub fn strs(self, key: &str, items: &[&str]) -> Self {
        let mut v = 8u32.to_le_bytes().to_vec();
        v.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|s| v.extend(gguf_string(s)));
        self.kv(key, 9, v)
    }

    pub fn i32s(self, key: &str, items: &[i32]) -> Self {
        let mut v = 5u32.to_le_bytes().to_vec();
        v.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|x| v.extend(x.to_le_bytes()));
        self.kv(key, 9, v)
    }

    pub fn bool(self, key: &str, v: bool) -> Self {
        self.kv(key, 7, vec![u8::from(v)])
    }

    pub fn f32s(self, key: &str, items: &[f32]) -> Self {
        let mut v = 6u32.to_le_bytes().to_vec();
        v.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|x| v.extend(x.to_le_bytes()));
        self.kv(key, 9, v)
    }

    /// A tensor with `ne` (fastest first), ggml type id and data.
    pub fn tensor(mut self, name: &str, ne: &[u64], ty: u32, data: Vec<u8>) -> Self {
        self.tensors.push((name.into(), ne.to_vec(), ty, data));
        self
    }

    pub fn f32_tensor(self, name: &str, ne: &[u64], values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, ne, 0, data)
    }

    /// The file, with tensor offsets laid out in order at the alignment (the file ends with the
    /// last tensor's bytes).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kvs.len() as u64).to_le_bytes());
        self.kvs.iter().for_each(|kv| out.extend(kv));
        let mut offset = 0usize;
        let mut data = Vec::new();
        for (name, ne, ty, bytes) in &self.tensors {
            while offset % self.alignment != 0 {
                data.push(0);
                offset += 1;
            }
            out.extend(gguf_string(name));
            out.extend((ne.len() as u32).to_le_bytes());
            ne.iter().for_each(|d| out.extend(d.to_le_bytes()));
            out.extend(ty.to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            data.extend(bytes);
            offset += bytes.len();
        }
        while out.len() % self.alignment != 0 {
            out.push(0);
        }
        out.extend(data);
        out
    }

    /// The file as llama.cpp writes a vocabulary-only GGUF: no tensors, and nothing after the
    /// metadata (no padding to the alignment).
    pub fn metadata_only(&self) -> Vec<u8> {
        assert!(self.tensors.is_empty());
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend((self.kvs.len() as u64).to_le_bytes());
        self.kvs.iter().for_each(|kv| out.extend(kv));
        out
    }
}
