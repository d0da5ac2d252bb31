//! Checking a written checkpoint against the one it was converted from: the same tensors (names,
//! shapes, values up to the rounding of the written element type) and a tokenizer that encodes
//! and decodes sample text exactly as the source's does. `zoo convert` runs it on every output
//! before moving it into place, so a conversion that would answer differently is an error.

use std::path::Path;

use zoo_core::{quoted, DType, Tokenizer, WeightSource, WeightView};

use crate::error::{CheckpointError, Result};
use crate::Checkpoint;

/// Text every converted tokenizer must encode and decode as the source does: ASCII, spacing,
/// accents, scripts without spaces, emoji (bytes outside any SentencePiece vocabulary), code.
pub const SAMPLE_TEXTS: [&str; 6] = [
    "Hello, world! The capital of France is Paris.",
    "  two leading spaces,\ttabs\tand\nnew lines\r\n",
    "Ünïcödé café naïve — “quotes” ½",
    "日本語のテキストと中文字符",
    "emoji 🦀🚀 and digits 1234567890",
    "fn main() { let total = x.iter().sum::<u32>(); } // code",
];

/// Checks the checkpoint at `written` against `source` (see the module doc).
pub fn verify(source: &Checkpoint, written: &Path) -> Result<()> {
    let target = crate::open(written)?;
    same_tensors(source.weights.as_ref(), target.weights.as_ref(), written)?;
    match (&source.tokenizer, &target.tokenizer) {
        (Some(a), Some(b)) => same_tokenizer(a.as_ref(), b.as_ref(), written),
        (Some(_), None) => Err(CheckpointError::Tokenizer {
            path: written.to_path_buf(),
            message: "the written checkpoint has no tokenizer, but the source has one".into(),
        }),
        (None, _) => Ok(()),
    }
}

/// Both sources hold the same tensor names, shapes and values.
fn same_tensors(source: &dyn WeightSource, written: &dyn WeightSource, path: &Path) -> Result<()> {
    let (mut a, mut b) = (source.names(), written.names());
    a.sort();
    b.sort();
    if let Some(name) = a.iter().find(|n| !b.contains(n)) {
        return Err(CheckpointError::tensor(path, name, "is in the source but was not written"));
    }
    if let Some(name) = b.iter().find(|n| !a.contains(n)) {
        return Err(CheckpointError::tensor(path, name, "was written but is not in the source"));
    }
    for name in &a {
        let get = |w: &dyn WeightSource| w.get(name).map_err(|e| CheckpointError::tensor(path, name, e.to_string()));
        same_values(&get(source)?, &get(written)?).map_err(|m| CheckpointError::tensor(path, name, m))?;
    }
    Ok(())
}

/// The written view holds the source's values, rounded as its element type rounds them.
fn same_values(source: &WeightView, written: &WeightView) -> std::result::Result<(), String> {
    if source.shape != written.shape {
        return Err(format!("written with shape {:?}, the source's is {:?}", written.shape, source.shape));
    }
    let (expected, actual) = (source.to_f32_vec(), written.to_f32_vec());
    let close = closeness(written.dtype, &expected);
    let mismatch =
        expected.iter().zip(&actual).position(|(&e, &a)| !(e == a || (e.is_nan() && a.is_nan()) || close(e, a)));
    match mismatch {
        None => Ok(()),
        Some(i) => Err(format!("element {i} was written as {}, the source holds {}", actual[i], expected[i])),
    }
}

/// Whether a source value `e` may read back as `a` once stored as `dtype`: rounded to the type
/// for floats, within one quantisation step of the tensor's largest magnitude for int8 (group
/// scales are at most that).
fn closeness(dtype: DType, values: &[f32]) -> Box<dyn Fn(f32, f32) -> bool> {
    match dtype {
        DType::F16 => Box::new(|e, a| half::f16::from_f32(e).to_f32() == a),
        DType::BF16 => Box::new(|e, a| half::bf16::from_f32(e).to_f32() == a),
        DType::I8 => {
            let step = values.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            Box::new(move |e, a| (e - a).abs() <= step * 1.001)
        }
        _ => Box::new(|_, _| false),
    }
}

/// Both tokenizers encode and decode [`SAMPLE_TEXTS`] identically.
fn same_tokenizer(source: &dyn Tokenizer, written: &dyn Tokenizer, path: &Path) -> Result<()> {
    let fail = |message: String| CheckpointError::Tokenizer { path: path.to_path_buf(), message };
    for text in SAMPLE_TEXTS {
        let expected = source.encode(text, false).map_err(|e| fail(e.to_string()))?;
        let actual = written.encode(text, false).map_err(|e| fail(e.to_string()))?;
        let decoded = written.decode(&actual, false).map_err(|e| fail(e.to_string()))?;
        let source_decoded = source.decode(&expected, false).map_err(|e| fail(e.to_string()))?;
        if expected != actual || decoded != source_decoded {
            let hint = if path.extension().is_some_and(|e| e == "bin") {
                " (a Torchless .bin embeds a SentencePiece-style BPE vocabulary, which cannot represent this \
                 source's tokenizer, e.g. byte-level BPE; convert to an HF directory or a Burn record instead)"
            } else {
                ""
            };
            return Err(fail(format!(
                "does not round-trip the source's tokenizer: {} encodes as {} here, {} in the source{hint}",
                quoted(text),
                ids(&actual),
                ids(&expected)
            )));
        }
    }
    Ok(())
}

/// The first token ids of an encoding, for an error message.
fn ids(ids: &[u32]) -> String {
    let shown: Vec<String> = ids.iter().take(8).map(u32::to_string).collect();
    let more = if ids.len() > 8 { ", …" } else { "" };
    format!("[{}{more}]", shown.join(", "))
}
