//! Conformance of the candle backend: every op on small random inputs, compared with zoo's
//! reference CPU backend (ndarray). Both run through `DynBackend`, so one test body drives both.
//!
//! Tolerances, on |candle − ndarray| / max(1, |ndarray|) (absolute for values up to 1, relative
//! above):
//! - layout ops, add/mul, weight conversion: exact;
//! - elementwise functions and softmax: 1e-6 (libm ulps);
//! - matrix products, norms, rope, attention: 1e-5 (f32 summation order; ndarray keeps norm
//!   statistics in f64).

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use zoo_backend_candle::Candle;
use zoo_backend_ndarray::NdArray;
use zoo_core::{
    AttentionSpec, Backend, Bytes, DType, DynBackend, DynTensor, Error, KvSpec, Result, RopeConvention, RopeSpec,
    SeqSpan, UnaryOp, WeightView,
};

const EXACT: f32 = 0.0;
const ELEMENTWISE: f32 = 1e-6;
const REDUCTION: f32 = 1e-5;

/// Runs `body` on both backends and compares the results within `tol` (see the module docs).
fn conform(op: &str, tol: f32, body: impl Fn(&DynBackend) -> Result<Vec<f32>>) {
    let expected = body(&DynBackend::new(NdArray::new(None))).unwrap_or_else(|e| panic!("{op} on ndarray: {e}"));
    let got = body(&DynBackend::new(Candle::cpu(None))).unwrap_or_else(|e| panic!("{op} on candle: {e}"));
    assert_eq!(got.len(), expected.len(), "{op}: lengths differ");
    let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f32, f32::max);
    assert!(worst <= tol, "{op}: max error {worst:e} > {tol:e}");
}

/// Uniform values in [-scale, scale), the same for a given seed on every run.
fn random(seed: u64, len: usize, scale: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| ((rng.next_u32() as f64 / u32::MAX as f64) as f32 * 2.0 - 1.0) * scale).collect()
}

fn candle() -> DynBackend {
    DynBackend::new(Candle::cpu(None))
}

fn up(b: &DynBackend, values: &[f32], shape: &[usize]) -> Result<DynTensor> {
    b.upload(values, shape)
}

#[test]
fn weights_convert_exactly_from_every_dtype() {
    let values = random(1, 24, 4.0);
    let f16: Vec<u8> = values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
    let bf16: Vec<u8> = values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect();
    let views = [
        WeightView::from_f32("w", vec![4, 6], &values).unwrap(),
        WeightView::new("w", DType::F16, vec![4, 6], Bytes::from_vec(f16)).unwrap(),
        WeightView::new("w", DType::BF16, vec![2, 3, 4], Bytes::from_vec(bf16)).unwrap(),
    ];
    for view in views {
        conform(&format!("weight {}", view.dtype), EXACT, |b| b.to_host(&b.weight(&view)?));
    }
}

#[test]
fn embedding_and_gather_rows() {
    let table = random(2, 10 * 6, 1.0);
    conform("embedding", EXACT, |b| b.to_host(&b.embedding(&up(b, &table, &[10, 6])?, &[3, 0, 9, 3])?));
    conform("gather_rows", EXACT, |b| b.to_host(&b.gather_rows(&up(b, &table, &[10, 6])?, &[9, 1, 1])?));
    let b = candle();
    let t = up(&b, &table, &[10, 6]).unwrap();
    assert!(matches!(b.embedding(&t, &[10]), Err(Error::TokenOutOfRange { id: 10, vocab_size: 10 })));
    assert!(matches!(b.gather_rows(&t, &[10]), Err(Error::Shape { .. })));
}

#[test]
fn linear_with_and_without_bias() {
    let (x, w, bias) = (random(3, 5 * 64, 1.0), random(4, 48 * 64, 0.5), random(5, 48, 1.0));
    conform("linear", REDUCTION, |b| b.to_host(&b.linear(&up(b, &x, &[5, 64])?, &up(b, &w, &[48, 64])?, None)?));
    conform("linear + bias", REDUCTION, |b| {
        let bias = up(b, &bias, &[48])?;
        b.to_host(&b.linear(&up(b, &x, &[5, 64])?, &up(b, &w, &[48, 64])?, Some(&bias))?)
    });
    // A column slice of a wider activation (as after a fused QKV projection) is a strided input.
    conform("linear of a narrowed x", REDUCTION, |b| {
        let x = b.narrow(&up(b, &x, &[10, 32])?, 1, 8, 16)?;
        b.to_host(&b.linear(&x, &up(b, &w[..48 * 16], &[48, 16])?, None)?)
    });
    let b = candle();
    let err = b.linear(&up(&b, &x, &[5, 64]).unwrap(), &up(&b, &w, &[64, 48]).unwrap(), None);
    assert!(matches!(err, Err(Error::Shape { op: "linear", .. })), "{err:?}");
}

#[test]
fn elementwise_ops() {
    let (a, c) = (random(6, 3 * 40, 4.0), random(7, 3 * 40, 4.0));
    conform("add", EXACT, |b| b.to_host(&b.add(&up(b, &a, &[3, 40])?, &up(b, &c, &[3, 40])?)?));
    conform("mul", EXACT, |b| b.to_host(&b.mul(&up(b, &a, &[3, 40])?, &up(b, &c, &[3, 40])?)?));
    for op in [UnaryOp::GeluTanh, UnaryOp::Silu, UnaryOp::ReluSquared, UnaryOp::Softcap(3.0)] {
        conform(&format!("unary {op:?}"), ELEMENTWISE, |b| b.to_host(&b.unary(&up(b, &a, &[3, 40])?, op)?));
        conform(&format!("gated {op:?}"), ELEMENTWISE, |b| {
            b.to_host(&b.gated(&up(b, &a, &[3, 40])?, &up(b, &c, &[3, 40])?, op)?)
        });
    }
    conform("softmax", ELEMENTWISE, |b| b.to_host(&b.softmax(&up(b, &a, &[3, 40])?)?));
    let b = candle();
    let err = b.add(&up(&b, &a, &[3, 40]).unwrap(), &up(&b, &c, &[40, 3]).unwrap());
    assert!(matches!(err, Err(Error::Shape { op: "add", .. })), "{err:?}");
}

#[test]
fn norms() {
    // A large common offset tests LayerNorm's centring.
    let x: Vec<f32> = random(8, 4 * 96, 2.0).iter().map(|v| v + 30.0).collect();
    let (w, bias) = (random(9, 96, 1.5), random(10, 96, 1.0));
    conform("layer_norm", REDUCTION, |b| {
        b.to_host(&b.layer_norm(&up(b, &x, &[4, 96])?, &up(b, &w, &[96])?, &up(b, &bias, &[96])?, 1e-5)?)
    });
    conform("rms_norm", REDUCTION, |b| {
        b.to_host(&b.rms_norm(&up(b, &x, &[4, 96])?, Some(&up(b, &w, &[96])?), 1e-6)?)
    });
    conform("rms_norm without weight", REDUCTION, |b| b.to_host(&b.rms_norm(&up(b, &x, &[4, 96])?, None, 1e-6)?));
    let b = candle();
    let err = b.rms_norm(&up(&b, &x, &[4, 96]).unwrap(), Some(&up(&b, &w[..95], &[95]).unwrap()), 1e-6);
    assert!(matches!(err, Err(Error::Shape { .. })), "{err:?}");
}

#[test]
fn rope_both_conventions_at_far_positions() {
    let x = random(11, 4 * 3 * 16, 1.0);
    let positions = [0, 7, 4095, 131_071];
    for convention in [RopeConvention::HalfSplit, RopeConvention::HalfSplitNegative] {
        let spec = RopeSpec { head_dim: 16, theta: 10_000.0, convention };
        conform(&format!("rope {convention:?}"), REDUCTION, |b| {
            b.to_host(&b.rope(&up(b, &x, &[4, 48])?, &positions, &spec)?)
        });
    }
    let b = candle();
    let spec = RopeSpec { head_dim: 10, theta: 1e4, convention: RopeConvention::HalfSplit };
    assert!(matches!(b.rope(&up(&b, &x, &[4, 48]).unwrap(), &positions, &spec), Err(Error::Shape { .. })));
}

#[test]
fn layout_ops() {
    let x = random(12, 2 * 6 * 5, 1.0);
    for (dim, start, len) in [(0, 1, 1), (1, 2, 3), (2, 0, 5), (2, 4, 1)] {
        conform(&format!("narrow dim {dim}"), EXACT, |b| {
            b.to_host(&b.narrow(&up(b, &x, &[2, 6, 5])?, dim, start, len)?)
        });
    }
    conform("reshape", EXACT, |b| b.to_host(&b.reshape(&up(b, &x, &[2, 6, 5])?, &[12, 5])?));
    conform("reshape of a narrowed tensor", EXACT, |b| {
        let part = b.narrow(&up(b, &x, &[12, 5])?, 1, 1, 3)?;
        b.to_host(&b.reshape(&part, &[36])?)
    });
    let b = candle();
    let t = up(&b, &x, &[2, 6, 5]).unwrap();
    assert!(matches!(b.narrow(&t, 1, 4, 3), Err(Error::Shape { op: "narrow", .. })));
    assert!(matches!(b.reshape(&t, &[7, 7]), Err(Error::Shape { op: "reshape", .. })));
}

/// Steps of a serving scenario: each step lists `(slot, new tokens)`; returns every step's output.
fn attention_steps(b: &DynBackend, spec: &AttentionSpec, steps: &[Vec<(usize, usize)>]) -> Result<Vec<f32>> {
    let kv_spec = KvSpec { slots: 3, n_kv_heads: spec.n_kv_heads, head_dim: spec.head_dim, capacity: 64 };
    let mut kv = b.new_kv(&kv_spec)?;
    let (q_cols, kv_cols) = (spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim);
    let mut past = [0usize; 3];
    let mut outputs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let mut spans = Vec::new();
        let mut rows = 0;
        for &(slot, len) in step {
            spans.push(SeqSpan { slot, start: rows, len, past: past[slot] });
            past[slot] += len;
            rows += len;
        }
        let seed = 100 + 3 * i as u64;
        let q = up(b, &random(seed, rows * q_cols, 2.0), &[rows, q_cols])?;
        let k = up(b, &random(seed + 1, rows * kv_cols, 2.0), &[rows, kv_cols])?;
        let v = up(b, &random(seed + 2, rows * kv_cols, 1.0), &[rows, kv_cols])?;
        outputs.extend(b.to_host(&b.attention(&q, &k, &v, &mut kv, &spans, spec)?)?);
    }
    Ok(outputs)
}

/// Two sequences prefilled together, decoded side by side past the cache's first growth (16
/// positions), then one extended by a multi-token chunk while the other decodes.
fn serving_scenario() -> Vec<Vec<(usize, usize)>> {
    let mut steps = vec![vec![(0, 7), (2, 12)]];
    steps.extend((0..12).map(|_| vec![(0, 1), (2, 1)]));
    steps.push(vec![(2, 5), (0, 1)]);
    steps.push(vec![(1, 3)]);
    steps
}

#[test]
fn attention_gqa_multi_slot_decode_and_window() {
    for (n_heads, n_kv_heads) in [(6, 2), (4, 4), (4, 1)] {
        for window in [None, Some(5), Some(1)] {
            let spec = AttentionSpec { n_heads, n_kv_heads, head_dim: 8, scale: 8f32.sqrt().recip(), window };
            conform(&format!("attention {n_heads}/{n_kv_heads} heads, window {window:?}"), REDUCTION, |b| {
                attention_steps(b, &spec, &serving_scenario())
            });
        }
    }
}

#[test]
fn attention_rejects_bad_inputs() {
    let b = candle();
    let spec = AttentionSpec { n_heads: 4, n_kv_heads: 2, head_dim: 8, scale: 0.35, window: None };
    let mut kv = b.new_kv(&KvSpec { slots: 2, n_kv_heads: 2, head_dim: 8, capacity: 4 }).unwrap();
    let q = up(&b, &random(20, 3 * 32, 1.0), &[3, 32]).unwrap();
    let k = up(&b, &random(21, 3 * 16, 1.0), &[3, 16]).unwrap();
    let span = |slot, past| SeqSpan { slot, start: 0, len: 3, past };
    let full = b.attention(&q, &k, &k, &mut kv, &[span(0, 2)], &spec);
    assert!(matches!(full, Err(Error::ContextFull { needed: 5, limit: 4 })), "{full:?}");
    let bad_slot = b.attention(&q, &k, &k, &mut kv, &[span(2, 0)], &spec);
    assert!(matches!(bad_slot, Err(Error::Shape { op: "attention", .. })), "{bad_slot:?}");
    let short = SeqSpan { slot: 0, start: 0, len: 2, past: 0 };
    let uncovered = b.attention(&q, &k, &k, &mut kv, &[short], &spec);
    assert!(matches!(uncovered, Err(Error::Shape { op: "attention", .. })), "{uncovered:?}");
    let wide_k = b.attention(&q, &q, &k, &mut kv, &[span(0, 0)], &spec);
    assert!(matches!(wide_k, Err(Error::Shape { op: "attention", .. })), "{wide_k:?}");
    let odd_heads = AttentionSpec { n_heads: 3, ..spec };
    assert!(matches!(b.attention(&q, &k, &k, &mut kv, &[span(0, 0)], &odd_heads), Err(Error::Shape { .. })));
}
