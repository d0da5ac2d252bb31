//! Checkpoint files recognised by their content (their first bytes), not their names: a `.bin`
//! may be PyTorch's zip or Torchless, a renamed GGUF is still a GGUF.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{CheckpointError, Result};

/// What a checkpoint file is, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `GGUF`.
    Gguf,
    /// A zip archive (`PK\x03\x04`): PyTorch's `torch.save` format since 1.6.
    TorchZip,
    /// A pickle stream (`\x80` and a protocol number): PyTorch's legacy format before 1.6.
    TorchLegacy,
    /// A little-endian u64 header length and a JSON header with `tensors` and `metadata`.
    Torchless,
    /// A little-endian u64 header length and a JSON header of tensor entries.
    Safetensors,
    /// A gzip stream (`\x1f\x8b`) or a MessagePack map: a Burn `NamedMpk(Gz)FileRecorder` record.
    BurnRecord,
}

/// Largest JSON header read to tell Torchless from safetensors (both start with its length).
const MAX_SNIFFED_HEADER: u64 = 64 << 20;

/// The kind of checkpoint file at `path` by its content; `None` when it is none zoo recognises
/// (the caller may still try the reader its name suggests, for that reader's own message).
pub fn sniff(path: &Path) -> Result<Option<FileKind>> {
    let mut file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let mut head = [0u8; 8];
    let got = read_up_to(&mut file, &mut head).map_err(|e| CheckpointError::io(path, e))?;
    // First a plausible JSON header: its length's low byte may look like any magic below.
    if got == 8 {
        if let Some(kind) = json_header_kind(path, &mut file, u64::from_le_bytes(head))? {
            return Ok(Some(kind));
        }
    }
    let kind = match &head[..got] {
        [b'G', b'G', b'U', b'F', ..] => FileKind::Gguf,
        [b'P', b'K', 3, 4, ..] => FileKind::TorchZip,
        [0x80, 2..=5, ..] => FileKind::TorchLegacy,
        [0x1f, 0x8b, ..] | [0x80..=0x8f, ..] | [0xde | 0xdf, ..] => FileKind::BurnRecord,
        _ => return Ok(None),
    };
    Ok(Some(kind))
}

/// Torchless or safetensors, from the JSON header of `header_len` bytes that follows the length.
fn json_header_kind(path: &Path, file: &mut File, header_len: u64) -> Result<Option<FileKind>> {
    let size = file.metadata().map_err(|e| CheckpointError::io(path, e))?.len();
    if header_len == 0 || header_len > MAX_SNIFFED_HEADER || header_len > size.saturating_sub(8) {
        return Ok(None);
    }
    let mut first = [0u8; 1];
    if read_up_to(file, &mut first).map_err(|e| CheckpointError::io(path, e))? != 1 || first[0] != b'{' {
        return Ok(None);
    }
    let mut header = vec![0u8; header_len as usize];
    header[0] = b'{';
    let got = 1 + read_up_to(file, &mut header[1..]).map_err(|e| CheckpointError::io(path, e))?;
    let text = &header[..got];
    let text = text.iter().rposition(|&b| b != 0 && b != b' ').map_or(&text[..0], |end| &text[..=end]);
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice::<serde_json::Value>(text) else {
        return Ok(None);
    };
    if fields.contains_key("tensors") && fields.contains_key("metadata") {
        Ok(Some(FileKind::Torchless))
    } else {
        Ok(Some(FileKind::Safetensors))
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}
