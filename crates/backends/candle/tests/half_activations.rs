//! The 16-bit activation path on candle's CPU device (`Activations::Weights`, what `candle-cuda`
//! runs): with bf16 weights every op keeps bf16 activations (nothing widens them to f32 behind
//! the model's back), and each op agrees with the f32 path on the same weights within bf16
//! rounding. Attention runs a prefill and two decode steps through the KV cache, inside a
//! prepared step (RoPE rows and masks made once) and without one.

use candle_core::DType as CandleDType;
use zoo_backend_candle::{Activations, Candle, CandleTensor};
use zoo_core::{
    AttentionSpec, Backend, Bytes, DType, KvSpec, Qkv, RopeConvention, RopeSpec, SeqSpan, Step, UnaryOp, WeightView,
};

/// Largest error allowed against the f32 path: a few bf16 roundings (2⁻⁸ relative each) of
/// values of order one.
const BF16_TOLERANCE: f32 = 0.05;

/// Deterministic values in [-scale, scale).
fn values(seed: u32, len: usize, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A bf16 weight of `shape` from `values(seed)`.
fn bf16_weight(name: &str, seed: u32, shape: &[usize], scale: f32) -> WeightView {
    let v = values(seed, shape.iter().product(), scale);
    let bytes: Vec<u8> = v.iter().flat_map(|x| half::bf16::from_f32(*x).to_le_bytes()).collect();
    WeightView::new(name, DType::BF16, shape.to_vec(), Bytes::from_vec(bytes)).unwrap()
}

/// The two backends compared: f32 activations (the reference here) and 16-bit ones.
fn backends() -> (Candle, Candle) {
    (Candle::cpu(None), Candle::cpu_with(None, Activations::Weights))
}

/// Fails unless `half` is bf16 and within [`BF16_TOLERANCE`] of `full` (read back as f32).
fn check(op: &str, b: (&Candle, &Candle), full: &CandleTensor, half: &CandleTensor) {
    assert_eq!(half.inner().dtype(), CandleDType::BF16, "{op}: 16-bit activations widened");
    assert_eq!(full.inner().dtype(), CandleDType::F32, "{op}: f32 activations narrowed");
    assert_eq!(full.dims(), half.dims(), "{op}: shapes");
    let (want, got) = (b.0.to_host(full).unwrap(), b.1.to_host(half).unwrap());
    let worst = want.iter().zip(&got).map(|(w, g)| (w - g).abs() / w.abs().max(1.0)).fold(0f32, f32::max);
    assert!(worst <= BF16_TOLERANCE, "{op}: max error {worst:e} against f32");
}

#[test]
fn weights_stay_bf16_with_16_bit_activations_only() {
    let (f, h) = backends();
    let norm = bf16_weight("norm", 1, &[32], 1.0);
    assert_eq!(f.weight(&norm).unwrap().inner().dtype(), CandleDType::F32);
    assert_eq!(h.weight(&norm).unwrap().inner().dtype(), CandleDType::BF16);
    assert_eq!(h.activations(), Activations::Weights);
}

#[test]
fn dense_ops_keep_bf16_and_match_f32() {
    let (f, h) = backends();
    let views = [
        bf16_weight("embed", 2, &[16, 32], 1.0),
        bf16_weight("w", 3, &[24, 32], 0.2),
        bf16_weight("b", 4, &[24], 0.5),
        bf16_weight("norm", 5, &[32], 1.0),
        bf16_weight("ln_b", 6, &[32], 0.5),
    ];
    let run = |b: &Candle| -> Vec<CandleTensor> {
        let [embed, w, bias, norm, ln_b] = views.each_ref().map(|v| b.weight(v).unwrap());
        let x = b.embedding(&embed, &[3, 0, 15, 3, 7]).unwrap(); // [5, 32]
        let normed = b.rms_norm(&x, Some(&norm), 1e-6).unwrap();
        let layer_normed = b.layer_norm(&x, &norm, &ln_b, 1e-5).unwrap();
        let y = b.linear(&normed, &w, Some(&bias)).unwrap(); // [5, 24]
        let gated = b.gated(&y, &y, UnaryOp::Silu).unwrap();
        let soft = b.softmax(&y).unwrap();
        let sum = b.add(&x, &layer_normed).unwrap();
        let rows = b.gather_rows(&y, &[4, 1]).unwrap();
        vec![x, normed, layer_normed, y, gated, soft, sum, rows]
    };
    let names = ["embedding", "rms_norm", "layer_norm", "linear", "gated", "softmax", "add", "gather_rows"];
    for ((name, full), half) in names.iter().zip(run(&f)).zip(run(&h)) {
        check(name, (&f, &h), &full, &half);
    }
}

#[test]
fn attention_with_rope_through_the_kv_cache_keeps_bf16_and_matches_f32() {
    let (f, h) = backends();
    let spec = AttentionSpec { n_heads: 4, n_kv_heads: 2, head_dim: 8, scale: 8f32.sqrt().recip(), window: Some(5) };
    let rope = RopeSpec::new(8, 10_000.0, RopeConvention::HalfSplit);
    let kv_spec = KvSpec { slots: 1, n_kv_heads: 2, head_dim: 8, capacity: 16 };
    let (q_all, k_all, v_all) = (values(7, 8 * 32, 1.0), values(8, 8 * 16, 1.0), values(9, 8 * 16, 1.0));
    let run = |b: &Candle, prepared: bool| -> Vec<CandleTensor> {
        let mut kv = b.new_kv(&kv_spec).unwrap();
        let mut outputs = Vec::new();
        // A 6-token prefill, then two decode steps.
        for (start, len) in [(0, 6), (6, 1), (7, 1)] {
            let half = |t: CandleTensor| match b.activations() {
                Activations::Weights => CandleTensor::new(t.inner().to_dtype(CandleDType::BF16).unwrap()),
                Activations::F32 => t,
            };
            let up =
                |v: &[f32], cols: usize| half(b.upload(&v[start * cols..(start + len) * cols], &[len, cols]).unwrap());
            let (q, k, v) = (up(&q_all, 32), up(&k_all, 16), up(&v_all, 16));
            let tokens = vec![0; len];
            let step = Step {
                tokens: &tokens,
                spans: vec![SeqSpan { slot: 0, start: 0, len, past: start }],
                positions: (start..start + len).collect(),
                logit_rows: None,
            };
            let y = if prepared {
                let input = b.prepare_step(&step).unwrap();
                b.rope_attention_step(Qkv::new(&q, &k, &v), &mut kv, &input, &rope, &spec).unwrap()
            } else {
                let (q, k) = (b.rope(&q, &step.positions, &rope).unwrap(), b.rope(&k, &step.positions, &rope).unwrap());
                b.attention(Qkv::new(&q, &k, &v), &mut kv, &step.spans, &spec).unwrap()
            };
            outputs.push(y);
        }
        outputs
    };
    for prepared in [true, false] {
        for (i, (full, half)) in run(&f, prepared).iter().zip(run(&h, prepared)).enumerate() {
            check(&format!("attention step {i}, prepared {prepared}"), (&f, &h), full, &half);
        }
    }
    // A prepared step (RoPE rows selected once, attention's scale folded into the queries'
    // rows) computes what the plain ops do, up to f32 rounding.
    let host = |ts: Vec<CandleTensor>| ts.iter().flat_map(|t| f.to_host(t).unwrap()).collect::<Vec<_>>();
    let (prepared, plain) = (host(run(&f, true)), host(run(&f, false)));
    let worst = prepared.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-6, "prepared against plain ops: {worst:e}");
}
