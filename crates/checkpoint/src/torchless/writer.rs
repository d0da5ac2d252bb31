//! Writing Torchless files the way the newest JSON-header exporter does: tensors in name order,
//! each tensor and scale block on a 64-byte boundary, header padded so that the payload is too,
//! int8 (with `--quant int8`) for the `_proj` matrices only, scales `127 / max|x|` with the
//! values clamped to ±127 and a zero group stored with scale 1.
//!
//! NOTE: scales are stored as reciprocals but zoo holds multipliers. A stored scale `s` is
//! chosen so that `1 / (1 / s)` gives `s` back in f32 ([`stable_scale`]); then reading a file zoo
//! wrote and writing it again reproduces every byte.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde_json::{json, Value};
use zoo_core::{DType, WeightSource, WeightView};

use super::header::{config_to_metadata, python_object, to_python_json, GROUP_SIZE};
use crate::error::{CheckpointError, Result};
use crate::spm_bpe::BpeVocab;

/// Element type of the written tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quant {
    /// Every tensor f32.
    F32,
    /// `_proj` matrices int8 in groups of 64 (embeddings, norms and `lm_head` stay f32).
    Int8,
}

impl Quant {
    fn name(self) -> &'static str {
        match self {
            Quant::F32 => "f32",
            Quant::Int8 => "int8",
        }
    }
}

/// What to write.
pub struct WriteRequest<'a> {
    /// The HF `config.json` of a Mistral-layout model.
    pub config: &'a Value,
    /// The tensors, by their HF names.
    pub weights: &'a dyn WeightSource,
    /// The tokenizer to embed; without one the file carries an empty vocabulary.
    pub vocab: Option<&'a BpeVocab>,
    /// Element type.
    pub quant: Quant,
    /// Called with the number of tensor bytes read so far (for progress bars).
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// One tensor's place in the file being written.
struct Planned {
    view: WeightView,
    int8: bool,
    offset: u64,
    scale_offset: u64,
}

/// `(64 - x % 64) % 64`.
fn pad64(x: u64) -> u64 {
    (64 - x % 64) % 64
}

/// Writes `request` to `path` (through `path.partial`, renamed when complete).
pub fn write(path: &Path, request: &WriteRequest) -> Result<()> {
    let source = request.weights.source_name();
    let metadata = config_to_metadata(Path::new(&source), request.config, request.quant.name())?;
    let mut plan = Vec::new();
    let mut start = 0u64;
    for name in request.weights.names() {
        let view = request.weights.get(&name).map_err(|e| CheckpointError::tensor(&source, &name, e.to_string()))?;
        let numel = view.numel() as u64;
        let int8 = request.quant == Quant::Int8 && name.contains("_proj") && view.numel() % GROUP_SIZE == 0;
        let offset = start;
        start += numel * if int8 { 1 } else { 4 };
        start += pad64(start);
        let scale_offset = start;
        if int8 {
            start += numel / GROUP_SIZE as u64 * 4;
            start += pad64(start);
        }
        plan.push(Planned { view, int8, offset, scale_offset });
    }
    let json = header_json(&metadata, &plan, request.vocab);
    let padding = pad64(8 + json.len() as u64);
    let partial = path.with_extension("bin.partial");
    let io = |e: std::io::Error| CheckpointError::io(path, e);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial).map_err(io)?);
    out.write_all(&(json.len() as u64 + padding).to_le_bytes()).map_err(io)?;
    out.write_all(&json).map_err(io)?;
    out.write_all(&vec![0u8; padding as usize]).map_err(io)?;
    let mut at = 0u64;
    let mut done = 0u64;
    for p in &plan {
        zeros(&mut out, p.offset - at).map_err(io)?;
        at = p.offset;
        if p.int8 {
            let (q, scales) = quantized(&p.view);
            out.write_all(&q).map_err(io)?;
            zeros(&mut out, p.scale_offset - (at + q.len() as u64)).map_err(io)?;
            for s in &scales {
                out.write_all(&s.to_le_bytes()).map_err(io)?;
            }
            at = p.scale_offset + 4 * scales.len() as u64;
        } else {
            at += write_f32(&mut out, &p.view).map_err(io)?;
        }
        done += p.view.data.len() as u64;
        if let Some(progress) = request.progress {
            progress(done);
        }
    }
    out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}

/// The header: `metadata`, `tensors`, `tokenizer`, in the exporter's order.
fn header_json(metadata: &[(String, String)], plan: &[Planned], vocab: Option<&BpeVocab>) -> Vec<u8> {
    let metadata = python_object(metadata.iter().map(|(k, v)| (k.as_str(), to_python_json(&json!(v)))));
    let tensors = python_object(plan.iter().map(|p| {
        let mut record = vec![
            ("dtype", to_python_json(&json!(if p.int8 { "int8" } else { "f32" }))),
            ("shape", to_python_json(&json!(p.view.shape))),
            ("offset", to_python_json(&json!(p.offset))),
        ];
        if p.int8 {
            record.push(("scale_offset", to_python_json(&json!(p.scale_offset))));
            record.push(("scale_size", to_python_json(&json!(p.view.numel() / GROUP_SIZE))));
        }
        (p.view.name.as_str(), python_object(record))
    }));
    let empty = BpeVocab::default();
    let vocab = vocab.unwrap_or(&empty);
    let tokenizer = python_object([
        ("vocab", python_object(vocab.vocab.iter().map(|(t, id)| (t.as_str(), id.to_string().into_bytes())))),
        ("merges", to_python_json(&json!(vocab.merges))),
    ]);
    python_object([("metadata", metadata), ("tensors", tensors), ("tokenizer", tokenizer)])
}

fn zeros(out: &mut impl Write, n: u64) -> std::io::Result<()> {
    std::io::copy(&mut std::io::repeat(0).take(n), out).map(|_| ())
}

/// Writes a tensor as little-endian f32 (in place when it already is); returns the byte count.
fn write_f32(out: &mut impl Write, view: &WeightView) -> std::io::Result<u64> {
    if view.dtype == DType::F32 {
        out.write_all(view.data.as_slice())?;
    } else {
        for v in view.to_f32_vec() {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    Ok(4 * view.numel() as u64)
}

/// int8 values and stored (reciprocal) scales of a tensor: quantised from floats, or carried over
/// from an int8 view (multiplier `m` ↦ stored `1/m`; multiplier 0 ↦ a zero group with scale 1).
fn quantized(view: &WeightView) -> (Vec<u8>, Vec<f32>) {
    let groups = view.numel() / GROUP_SIZE;
    match (&view.scales, view.dtype) {
        (Some(s), DType::I8) if s.group_size == GROUP_SIZE => {
            let mut q = view.data.as_slice().to_vec();
            let mut stored = Vec::with_capacity(groups);
            for (group, &m) in q.chunks_mut(GROUP_SIZE).zip(s.scales.iter()) {
                if m == 0.0 || !m.is_finite() {
                    group.fill(0);
                    stored.push(1.0);
                } else {
                    stored.push(stable_scale(1.0 / m));
                }
            }
            (q, stored)
        }
        _ => {
            let values = view.to_f32_vec();
            let mut q = vec![0u8; values.len()];
            let stored =
                values.chunks(GROUP_SIZE).zip(q.chunks_mut(GROUP_SIZE)).map(|(x, q)| quantize_group(x, q)).collect();
            (q, stored)
        }
    }
}

/// Quantises one group: `q = round(x · s)` clamped to ±127 (as the exporter after `ebd1deb`),
/// with `s = 127 / max|x|` returned as stored; an all-zero (or non-finite) group gets `s = 1`.
pub fn quantize_group(x: &[f32], q: &mut [u8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.fill(0);
        return 1.0;
    }
    let scale = stable_scale(127.0 / amax);
    for (q, &v) in q.iter_mut().zip(x) {
        // torch.round rounds half to even.
        *q = (v * scale).round_ties_even().clamp(-127.0, 127.0) as i8 as u8;
    }
    scale
}

/// The f32 nearest `s` that survives reciprocal round trips: `1 / (1 / s) == s`.
pub fn stable_scale(s: f32) -> f32 {
    let mut s = s;
    for _ in 0..8 {
        let back = 1.0 / (1.0 / s);
        if back == s || !back.is_finite() {
            return s;
        }
        s = back;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_scales_survive_round_trips() {
        let mut x = 0.0123f32;
        for _ in 0..100_000 {
            x = (x * 1.000_37).rem_euclid(5000.0) + 1e-3;
            let s = stable_scale(127.0 / x);
            assert_eq!(1.0 / (1.0 / s), s, "{x}");
            assert!((s - 127.0 / x).abs() <= 4.0 * f32::EPSILON * s, "{x}");
        }
    }

    #[test]
    fn groups_quantise_symmetrically_and_clamp() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 8.0).collect();
        let mut q = vec![0u8; 64];
        let s = quantize_group(&x, &mut q);
        assert!((s - 127.0 / 4.0).abs() < 1e-4);
        assert_eq!(q[0] as i8, -127);
        assert_eq!(q[32] as i8, 0);
        assert!(q.iter().all(|&v| v as i8 != -128));
        let zero = [0f32; 64];
        assert_eq!(quantize_group(&zero, &mut q), 1.0);
        assert!(q.iter().all(|&v| v == 0));
    }
}
