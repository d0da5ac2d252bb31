//! Backend conformance: every op, on small deterministic inputs, on every backend registered and
//! usable here (a CPU build: `burn-ndarray`, `candle`), against zoo's reference backend
//! (`ndarray`, the implementation of the op semantics in `zoo_core::backend`); weights of every
//! stored dtype against f32 math on their dequantised values.
//!
//! Errors are `|got − want| / max(1, |want|)` (absolute for values up to 1, relative above), in
//! tiers:
//! - [`EXACT`]: layout ops, add/mul, embedding, float weight conversion;
//! - [`ELEMENTWISE`] 1e-6: elementwise functions and softmax (libm ulps);
//! - [`REDUCTION`] 1e-5: matrix products, norms, RoPE, attention (f32 summation order; ndarray
//!   keeps norm statistics in f64);
//! - [`QUANTISED`] 1e-4: products with int8 or ggml-block weights (`I8`, `Q8_0`, `Q4_0`,
//!   `Q4_1`, `Q5_0`, `Q5_1`, `Q4_K`, `Q5_K`, `Q6_K`) against f32 math on the dequantised weights. ndarray
//!   multiplies 4-bit blocks and K-quants with activations rounded to 16 bits: measured on one
//!   row 1.4e-5 (Q4_0), 2.8e-5 (Q4_1), 2.0e-5 (Q4_K), 4.3e-5 (Q5_K), ~5e-5 (Q6_K); every other
//!   backend and dtype stays below 4e-6 (`ZOO_REPORT_ERRORS=1` prints each figure);
//! - [`QUANTISED_8BIT`] 4e-4: `Q8_0`, which ndarray also multiplies with activations rounded to
//!   16 bits. Its quants span ±127 against the 4-bit types' ±8 per unit of scale, so the same
//!   rounding moves its products 16× as far in these absolute terms: measured 2.0e-4 on one
//!   row, where the products' terms add up to ~70 (so ~3e-6 of them). On real models the
//!   logits stay within 1.1e-4 of the largest (the 415M benchmark model's `Q8_0` file) and 5e-5
//!   (SmolLM2, whose LM head is `Q8_0`), against the 1e-3 `smollm2.rs` holds that path to.
//!
//! The block decoders themselves are checked bit for bit against gguf-py in
//! `crates/checkpoint/tests/gguf.rs`.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use zoo::{create_backend, LoadOptions};
use zoo_core::registry::{self, Availability};
use zoo_core::{
    AttentionSpec, Backend, Bytes, DType, DynBackend, DynTensor, Error, GroupScales, KvSpec, Qkv, Result,
    RopeConvention, RopeSpec, RopeType, SeqSpan, Support, TensorShape, UnaryOp, WeightView, Yarn,
};

const EXACT: f32 = 0.0;
const ELEMENTWISE: f32 = 1e-6;
const REDUCTION: f32 = 1e-5;
const QUANTISED: f32 = 1e-4;
const QUANTISED_8BIT: f32 = 4e-4;

/// The backend every other is compared with.
const REFERENCE: &str = "ndarray";

/// An op's result: shape and values.
type Out = (Vec<usize>, Vec<f32>);

fn backend(name: &str) -> DynBackend {
    create_backend(&LoadOptions { backend: Some(name.into()), ..Default::default() }).unwrap()
}

/// Every backend registered and usable here, the reference first.
fn backends() -> Vec<&'static str> {
    zoo::link_plugins();
    let usable = registry::backends().unwrap().iter().filter(|b| (b.availability)() == Availability::Usable);
    let mut names: Vec<&str> = usable.map(|b| b.name).filter(|&n| n != REFERENCE).collect();
    names.insert(0, REFERENCE);
    names
}

/// Worst error of `got` against `want` (see the module docs), or why they cannot be compared.
fn worst_error(got: &Out, want: &Out) -> std::result::Result<f32, String> {
    if got.0 != want.0 || got.1.len() != want.1.len() {
        return Err(format!("shape {:?} ({} values), expected {:?} ({})", got.0, got.1.len(), want.0, want.1.len()));
    }
    Ok(got.1.iter().zip(&want.1).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0f32, f32::max))
}

/// Runs `body` on the reference and on every other backend; each result within `tol`.
fn conform(op: &str, tol: f32, body: impl Fn(&DynBackend) -> Result<Vec<Out>>) {
    let want = body(&backend(REFERENCE)).unwrap_or_else(|e| panic!("{op} on {REFERENCE}: {e}"));
    for name in &backends()[1..] {
        let got = body(&backend(name)).unwrap_or_else(|e| panic!("{op} on {name}: {e}"));
        assert_eq!(got.len(), want.len(), "{op} on {name}: number of outputs");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let worst = worst_error(g, w).unwrap_or_else(|e| panic!("{op} on {name}, output {i}: {e}"));
            assert!(worst <= tol, "{op} on {name}, output {i}: max error {worst:e} > {tol:e}");
        }
    }
}

/// Uniform values in [-scale, scale), the same for a given seed on every run.
fn random(seed: u64, len: usize, scale: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| ((rng.next_u32() as f64 / u32::MAX as f64) as f32 * 2.0 - 1.0) * scale).collect()
}

fn up(b: &DynBackend, values: &[f32], shape: &[usize]) -> Result<DynTensor> {
    b.upload(values, shape)
}

fn host(b: &DynBackend, x: &DynTensor) -> Result<Out> {
    Ok((x.shape().to_vec(), b.to_host(x)?))
}

#[test]
fn every_usable_backend_is_compared() {
    let names = backends();
    assert_eq!(names[0], REFERENCE);
    assert!(names.contains(&"burn-ndarray") && names.contains(&"candle"), "compared: {names:?}");
}

#[test]
fn embedding_and_gather_rows() {
    let table = random(2, 10 * 6, 1.0);
    conform("embedding, gather_rows", EXACT, |b| {
        let t = up(b, &table, &[10, 6])?;
        Ok(vec![host(b, &b.embedding(&t, &[3, 0, 9, 3])?)?, host(b, &b.gather_rows(&t, &[9, 1, 1])?)?])
    });
    for name in backends() {
        let b = backend(name);
        let t = up(&b, &table, &[10, 6]).unwrap();
        let err = b.embedding(&t, &[10]);
        assert!(matches!(err, Err(Error::TokenOutOfRange { id: 10, vocab_size: 10 })), "{name}: {err:?}");
        assert!(matches!(b.gather_rows(&t, &[10]), Err(Error::Shape { .. })), "{name}");
    }
}

#[test]
fn linear_with_and_without_bias() {
    let (x, w, bias) = (random(3, 5 * 64, 1.0), random(4, 48 * 64, 0.5), random(5, 48, 1.0));
    conform("linear", REDUCTION, |b| {
        let (x_all, w_all) = (&x, &w);
        let (w, bias) = (up(b, &w, &[48, 64])?, up(b, &bias, &[48])?);
        let (x, x1) = (up(b, &x, &[5, 64])?, up(b, &x[..64], &[1, 64])?);
        // A column slice of a wider activation (as after a fused QKV projection) is a strided input.
        let narrowed = b.narrow(&up(b, x_all, &[10, 32])?, 1, 8, 16)?;
        let w16 = up(b, &w_all[..48 * 16], &[48, 16])?;
        Ok(vec![
            host(b, &b.linear(&x, &w, None)?)?,
            host(b, &b.linear(&x, &w, Some(&bias))?)?,
            host(b, &b.linear(&x1, &w, None)?)?,
            host(b, &b.linear(&narrowed, &w16, None)?)?,
        ])
    });
    for name in backends() {
        let b = backend(name);
        let err = b.linear(&up(&b, &x, &[5, 64]).unwrap(), &up(&b, &w, &[64, 48]).unwrap(), None);
        assert!(matches!(err, Err(Error::Shape { op: "linear", .. })), "{name}: {err:?}");
    }
}

#[test]
fn elementwise_ops() {
    let (a, c) = (random(6, 3 * 40, 4.0), random(7, 3 * 40, 4.0));
    conform("add, mul", EXACT, |b| {
        let (x, y) = (up(b, &a, &[3, 40])?, up(b, &c, &[3, 40])?);
        Ok(vec![host(b, &b.add(&x, &y)?)?, host(b, &b.mul(&x, &y)?)?])
    });
    conform("unary, gated, softmax", ELEMENTWISE, |b| {
        let (x, y) = (up(b, &a, &[3, 40])?, up(b, &c, &[3, 40])?);
        let mut outs = vec![host(b, &b.softmax(&x)?)?];
        for op in [UnaryOp::GeluTanh, UnaryOp::Silu, UnaryOp::ReluSquared, UnaryOp::Softcap(3.0)] {
            outs.push(host(b, &b.unary(&x, op)?)?);
            outs.push(host(b, &b.gated(&x, &y, op)?)?);
        }
        Ok(outs)
    });
    for name in backends() {
        let b = backend(name);
        let err = b.add(&up(&b, &a, &[3, 40]).unwrap(), &up(&b, &c, &[40, 3]).unwrap());
        assert!(matches!(err, Err(Error::Shape { op: "add", .. })), "{name}: {err:?}");
    }
}

#[test]
fn norms() {
    // A large common offset tests LayerNorm's centring.
    let x: Vec<f32> = random(8, 4 * 96, 2.0).iter().map(|v| v + 30.0).collect();
    let (w, bias) = (random(9, 96, 1.5), random(10, 96, 1.0));
    conform("layer_norm, rms_norm", REDUCTION, |b| {
        let (x, w, bias) = (up(b, &x, &[4, 96])?, up(b, &w, &[96])?, up(b, &bias, &[96])?);
        let (sum, normed) = b.add_rms_norm(&x, &x, Some(&w), 1e-6)?;
        Ok(vec![
            host(b, &b.layer_norm(&x, &w, &bias, 1e-5)?)?,
            host(b, &b.rms_norm(&x, Some(&w), 1e-6)?)?,
            host(b, &b.rms_norm(&x, None, f32::EPSILON)?)?,
            host(b, &sum)?,
            host(b, &normed)?,
        ])
    });
    for name in backends() {
        let b = backend(name);
        let err = b.rms_norm(&up(&b, &x, &[4, 96]).unwrap(), Some(&up(&b, &w[..95], &[95]).unwrap()), 1e-6);
        assert!(matches!(err, Err(Error::Shape { .. })), "{name}: {err:?}");
    }
}

#[test]
fn rope_both_conventions_at_far_positions() {
    let x = random(11, 4 * 3 * 16, 1.0);
    let positions = [0, 7, 4095, 131_071];
    conform("rope", REDUCTION, |b| {
        let x = up(b, &x, &[4, 48])?;
        // Both conventions, and a scaled RoPE (YaRN: its own frequencies and a factor on cos/sin).
        let yarn = RopeType::Yarn(Yarn::new(4.0, 64.0));
        let scaled =
            RopeSpec { scaling: yarn.scaling(16, 1e4, None), ..RopeSpec::new(16, 1e4, RopeConvention::HalfSplit) };
        [RopeConvention::HalfSplit, RopeConvention::HalfSplitNegative]
            .into_iter()
            .map(|convention| RopeSpec::new(16, 10_000.0, convention))
            .chain([scaled])
            .map(|spec| host(b, &b.rope(&x, &positions, &spec)?))
            .collect()
    });
    let spec = RopeSpec::new(10, 1e4, RopeConvention::HalfSplit);
    for name in backends() {
        let b = backend(name);
        let x = up(&b, &x, &[4, 48]).unwrap();
        assert!(matches!(b.rope(&x, &positions, &spec), Err(Error::Shape { op: "rope", .. })), "{name}");
        let short = RopeSpec { head_dim: 16, ..spec.clone() };
        assert!(matches!(b.rope(&x, &positions[..3], &short), Err(Error::Shape { op: "rope", .. })), "{name}");
    }
}

#[test]
fn layout_ops() {
    let x = random(12, 2 * 6 * 5, 1.0);
    conform("narrow, reshape", EXACT, |b| {
        let mut outs = Vec::new();
        for (dim, start, len) in [(0, 1, 1), (1, 2, 3)] {
            outs.push(host(b, &b.narrow(&up(b, &x, &[12, 5])?, dim, start, len)?)?);
        }
        outs.push(host(b, &b.reshape(&up(b, &x, &[12, 5])?, &[6, 10])?)?);
        let part = b.narrow(&up(b, &x, &[12, 5])?, 1, 1, 3)?;
        outs.push(host(b, &b.reshape(&part, &[36])?)?);
        Ok(outs)
    });
    for name in backends() {
        let b = backend(name);
        let t = up(&b, &x, &[12, 5]).unwrap();
        assert!(matches!(b.narrow(&t, 1, 4, 3), Err(Error::Shape { op: "narrow", .. })), "{name}");
        assert!(matches!(b.reshape(&t, &[7, 7]), Err(Error::Shape { op: "reshape", .. })), "{name}");
    }
}

/// Steps of a serving scenario: each step lists `(slot, new tokens)`; returns every step's output.
fn attention_steps(b: &DynBackend, spec: &AttentionSpec, steps: &[Vec<(usize, usize)>]) -> Result<Vec<Out>> {
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
        outputs.push(host(b, &b.attention(Qkv::new(&q, &k, &v), &mut kv, &spans, spec)?)?);
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

/// Three fresh sequences of one length in one step (a training batch, a batched prefill of
/// equal prompts: one batched attention where a backend has it), then decoded side by side.
fn fresh_batch_scenario() -> Vec<Vec<(usize, usize)>> {
    let mut steps = vec![vec![(0, 9), (2, 9), (1, 9)]];
    steps.extend((0..3).map(|_| vec![(0, 1), (1, 1), (2, 1)]));
    steps
}

#[test]
fn attention_gqa_multi_slot_decode_and_window() {
    for (n_heads, n_kv_heads) in [(6, 2), (4, 4), (4, 1)] {
        for window in [None, Some(5), Some(1)] {
            let spec = AttentionSpec { n_heads, n_kv_heads, head_dim: 8, scale: 8f32.sqrt().recip(), window };
            for (name, scenario) in [("serving", serving_scenario()), ("fresh batch", fresh_batch_scenario())] {
                conform(
                    &format!("attention {n_heads}/{n_kv_heads} heads, window {window:?}, {name}"),
                    REDUCTION,
                    |b| attention_steps(b, &spec, &scenario),
                );
            }
        }
    }
}

#[test]
fn attention_rejects_bad_inputs() {
    let spec = AttentionSpec { n_heads: 4, n_kv_heads: 2, head_dim: 8, scale: 0.35, window: None };
    for name in backends() {
        let b = backend(name);
        let mut kv = b.new_kv(&KvSpec { slots: 2, n_kv_heads: 2, head_dim: 8, capacity: 4 }).unwrap();
        let q = up(&b, &random(20, 3 * 32, 1.0), &[3, 32]).unwrap();
        let k = up(&b, &random(21, 3 * 16, 1.0), &[3, 16]).unwrap();
        let span = |slot, past| SeqSpan { slot, start: 0, len: 3, past };
        let mut attend = |q: &DynTensor, k: &DynTensor, spans: &[SeqSpan], spec: &AttentionSpec| {
            b.attention(Qkv::new(q, k, k), &mut kv, spans, spec)
        };
        let full = attend(&q, &k, &[span(0, 2)], &spec);
        assert!(matches!(full, Err(Error::ContextFull { needed: 5, limit: 4 })), "{name}: {full:?}");
        let shape_errors = [
            ("a slot past the buffer's", attend(&q, &k, &[span(2, 0)], &spec)),
            ("spans short of the rows", attend(&q, &k, &[SeqSpan { slot: 0, start: 0, len: 2, past: 0 }], &spec)),
            ("k as wide as q", attend(&q, &q, &[span(0, 0)], &spec)),
            ("3 heads over 2 KV heads", attend(&q, &k, &[span(0, 0)], &AttentionSpec { n_heads: 3, ..spec })),
        ];
        for (what, result) in shape_errors {
            assert!(matches!(result, Err(Error::Shape { op: "attention", .. })), "{name}, {what}: {result:?}");
        }
    }
}

#[test]
fn shape_errors_are_errors_on_every_backend() {
    for name in backends() {
        let b = backend(name);
        let (x, w) = (up(&b, &random(1, 6, 1.0), &[2, 3]).unwrap(), up(&b, &random(2, 20, 1.0), &[4, 5]).unwrap());
        assert!(b.linear(&x, &w, None).is_err(), "{name}");
        assert!(b.add(&x, &w).is_err(), "{name}");
        assert!(b.embedding(&w, &[9]).is_err(), "{name}");
        assert!(b.narrow(&x, 1, 2, 5).is_err(), "{name}");
    }
}

/// A `[rows, cols]` weight stored as `dtype` (`cols` whole blocks), with values like a trained
/// model's: floats rounded from uniform values, int8 with a scale per 16 elements, ggml blocks
/// of random quants with scales (and minimums) of a few hundredths (K-quants: super-block
/// scales of 1–2e-4 (Q6_K, whose quants and scales span twice as far: half that) over random
/// sub-block scales, so that |w| stays below ~0.4 and spreads like a trained model's weights).
fn stored_weight(dtype: DType, rows: usize, cols: usize, seed: u64) -> WeightView {
    let values = random(seed, rows * cols, 0.5);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bytes = |n: usize| (0..n).map(|_| rng.next_u32() as u8).collect::<Vec<u8>>();
    let half = |x: f32| half::f16::from_f32(x).to_le_bytes();
    let shape = vec![rows, cols];
    let data = match dtype {
        DType::F32 => return WeightView::from_f32("w", shape, &values).unwrap(),
        DType::F16 => values.iter().flat_map(|&v| half(v)).collect(),
        DType::BF16 => values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        DType::I8 => {
            let scales = random(seed + 1, rows * cols / 16, 0.01).iter().map(|s| s.abs() + 0.002).collect();
            let scales = GroupScales { group_size: 16, scales };
            return WeightView::new_quantized("w", shape, Bytes::from_vec(bytes(rows * cols)), scales).unwrap();
        }
        DType::Q8_0 | DType::Q4_0 | DType::Q4_1 | DType::Q5_0 | DType::Q5_1 => {
            let blocks = rows * cols / 32;
            let d = random(seed + 1, blocks, 0.02);
            let m = random(seed + 2, blocks, 0.2);
            let mut data = Vec::with_capacity(blocks * dtype.block_bytes());
            for (d, m) in d.iter().zip(&m) {
                data.extend(half(d.abs() + 0.005));
                if matches!(dtype, DType::Q4_1 | DType::Q5_1) {
                    data.extend(half(*m));
                }
                // Q8_0's 32 bytes; the 5-bit types' mask of fifth bits, then 16 bytes of nibbles.
                data.extend(bytes(
                    dtype.block_bytes() - if matches!(dtype, DType::Q4_1 | DType::Q5_1) { 4 } else { 2 },
                ));
            }
            data
        }
        DType::Q4_K | DType::Q5_K | DType::Q6_K => {
            let blocks = rows * cols / 256;
            let unit = if dtype == DType::Q6_K { 0.00005 } else { 0.0001 };
            let d = random(seed + 1, blocks, unit);
            let mut data = bytes(blocks * dtype.block_bytes());
            for (block, d) in data.chunks_exact_mut(dtype.block_bytes()).zip(&d) {
                let fields: &[usize] = if dtype == DType::Q6_K { &[208] } else { &[0, 2] };
                for &at in fields {
                    block[at..at + 2].copy_from_slice(&half(d.abs() + unit));
                }
            }
            data
        }
        other => panic!("no test weight for {other}"),
    };
    WeightView::new("w", dtype, shape, Bytes::from_vec(data)).unwrap()
}

/// `x · wᵀ` in f64 over f32 inputs, `x: [n, k]`, `w: [m, k]`.
fn matmul_t(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for xr in x.chunks_exact(k) {
        out.extend(
            w.chunks_exact(k).map(|wr| xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() as f32),
        );
    }
    out
}

#[test]
fn weights_of_every_dtype_match_f32_math_on_their_dequantised_values() {
    // More output features than one GEMV chunk (64); three blocks per row (two super-blocks).
    // 72 rows as well: ndarray keeps Q4_0, Q4_1, Q5_0 and Q8_0 weights whose rows are a multiple of
    // eight interleaved (its `block_dot::rows8`), 70 in the file's layout.
    for (dtype, rows) in DType::ALL.into_iter().flat_map(|d| [(d, 70), (d, 72)]) {
        let cols = if dtype.block_size() > 32 { 512 } else { 96 };
        let view = stored_weight(dtype, rows, cols, 30);
        let w = view.to_f32_vec(); // zoo_core's dequantisation, the reference
        let ids = [69u32, 0, 33, 0];
        let embedded: Vec<f32> = ids.iter().flat_map(|&r| w[r as usize * cols..][..cols].to_vec()).collect();
        for name in backends() {
            let b = backend(name);
            let weight = b.weight(&view);
            if b.supports(dtype) == Support::Unsupported {
                assert!(weight.is_err(), "{dtype} on {name}: supports says Unsupported, weight loaded it");
                continue;
            }
            let weight = weight.unwrap_or_else(|e| panic!("{dtype} on {name}: {e}"));
            let tol = match dtype {
                DType::Q8_0 => QUANTISED_8BIT,
                _ if dtype.is_quantized() => QUANTISED,
                _ => REDUCTION,
            };
            let report = std::env::var_os("ZOO_REPORT_ERRORS").is_some();
            let check = |what: &str, got: Out, want: Out, tol: f32| {
                let worst = worst_error(&got, &want).unwrap_or_else(|e| panic!("{what} {dtype} on {name}: {e}"));
                if report {
                    eprintln!("{what} {dtype} on {name}: max error {worst:e}");
                }
                assert!(worst <= tol, "{what} {dtype} on {name}: max error {worst:e} > {tol:e}");
            };
            check("weight", host(&b, &weight).unwrap(), (vec![rows, cols], w.clone()), EXACT);
            check(
                "embedding",
                host(&b, &b.embedding(&weight, &ids).unwrap()).unwrap(),
                (vec![4, cols], embedded.clone()),
                EXACT,
            );
            // One row (the decode path) and twenty (the prefill path).
            for n in [1, 20] {
                let x = random(31 + n as u64, n * cols, 1.0);
                let y = b.linear(&up(&b, &x, &[n, cols]).unwrap(), &weight, None).unwrap();
                check(
                    &format!("linear of {n} rows"),
                    host(&b, &y).unwrap(),
                    (vec![n, rows], matmul_t(&x, &w, cols)),
                    tol,
                );
            }
        }
    }
}

#[test]
fn a_dtype_is_refused_exactly_where_supports_says_so() {
    for name in backends() {
        let b = backend(name);
        for dtype in DType::ALL {
            let loaded = b.weight(&WeightView::zeros("w", dtype, vec![2, 256]).unwrap());
            let refused = b.supports(dtype) == Support::Unsupported;
            assert_eq!(loaded.is_err(), refused, "{dtype} on {name}");
        }
    }
}
