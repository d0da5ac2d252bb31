//! Backend conformance: every op, on small deterministic inputs, on every CPU backend compiled
//! in, against the ndarray backend (the reference implementation of the op semantics in
//! `zoo_core::backend`). One body per op; tolerance 1e-5 relative to the values' scale.

use zoo::{create_backend, LoadOptions};
use zoo_core::{
    AttentionSpec, Backend, DType, DynBackend, KvSpec, RopeConvention, RopeSpec, SeqSpan, Support, TensorShape,
    UnaryOp, WeightView,
};

const OTHERS: &[&str] = &["burn-ndarray", "candle"];
const TOLERANCE: f32 = 1e-5;

fn backend(name: &str) -> DynBackend {
    create_backend(&LoadOptions { backend: Some(name.into()), ..Default::default() }).unwrap()
}

/// Deterministic values in [-2, 2).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed * 97) % 4000) as f32) / 1000.0 - 2.0)
        .collect()
}

/// Runs `op` on the reference and on every other backend, comparing outputs.
fn check(op: &str, run: impl Fn(&DynBackend) -> Vec<(Vec<usize>, Vec<f32>)>) {
    let want = run(&backend("ndarray"));
    for name in OTHERS {
        let got = run(&backend(name));
        for ((ws, wv), (gs, gv)) in want.iter().zip(&got) {
            assert_eq!(ws, gs, "{op} on {name}: shape");
            let scale = wv.iter().fold(1f32, |m, v| m.max(v.abs()));
            let worst = wv.iter().zip(gv).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= TOLERANCE * scale, "{op} on {name}: max |Δ| {worst} (scale {scale})");
        }
    }
}

fn t(b: &DynBackend, shape: &[usize], seed: u32) -> zoo_core::DynTensor {
    b.upload(&values(shape.iter().product(), seed), shape).unwrap()
}

fn out(b: &DynBackend, x: &zoo_core::DynTensor) -> (Vec<usize>, Vec<f32>) {
    (x.shape().to_vec(), b.to_host(x).unwrap())
}

#[test]
fn weights_in_every_dtype() {
    check("weight", |b| {
        let f32s = values(12, 1);
        let bf16: Vec<u8> = f32s.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect();
        let f16: Vec<u8> = f32s.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
        let views = [
            WeightView::from_f32("a", vec![3, 4], &f32s).unwrap(),
            WeightView::new("b", zoo_core::DType::BF16, vec![3, 4], zoo_core::Bytes::from_vec(bf16)).unwrap(),
            WeightView::new("c", zoo_core::DType::F16, vec![12], zoo_core::Bytes::from_vec(f16)).unwrap(),
        ];
        views.iter().map(|v| out(b, &b.weight(v).unwrap())).collect()
    });
}

#[test]
fn a_dtype_is_refused_exactly_where_supports_says_so() {
    for name in std::iter::once(&"ndarray").chain(OTHERS) {
        let b = backend(name);
        for dtype in DType::ALL {
            let loaded = b.weight(&WeightView::zeros("w", dtype, vec![2, 32]).unwrap());
            let refused = b.supports(dtype) == Support::Unsupported;
            assert_eq!(loaded.is_err(), refused, "{dtype} on {name}");
        }
    }
}

#[test]
fn linear_embedding_and_rows() {
    check("linear", |b| {
        let (x, w, bias) = (t(b, &[5, 8], 1), t(b, &[6, 8], 2), t(b, &[6], 3));
        let x1 = t(b, &[1, 8], 4);
        vec![
            out(b, &b.linear(&x, &w, Some(&bias)).unwrap()),
            out(b, &b.linear(&x1, &w, None).unwrap()),
            out(b, &b.embedding(&w, &[5, 0, 3]).unwrap()),
            out(b, &b.gather_rows(&x, &[4, 1]).unwrap()),
            out(b, &b.narrow(&x, 1, 2, 3).unwrap()),
            out(b, &b.reshape(&x, &[10, 4]).unwrap()),
        ]
    });
}

#[test]
fn elementwise_and_norms() {
    check("elementwise", |b| {
        let (x, y, w, bias) = (t(b, &[3, 8], 5), t(b, &[3, 8], 6), t(b, &[8], 7), t(b, &[8], 8));
        let mut outs = vec![
            out(b, &b.add(&x, &y).unwrap()),
            out(b, &b.mul(&x, &y).unwrap()),
            out(b, &b.softmax(&x).unwrap()),
            out(b, &b.layer_norm(&x, &w, &bias, 1e-5).unwrap()),
            out(b, &b.rms_norm(&x, Some(&w), 1e-6).unwrap()),
            out(b, &b.rms_norm(&x, None, f32::EPSILON).unwrap()),
        ];
        for op in [UnaryOp::GeluTanh, UnaryOp::Silu, UnaryOp::ReluSquared, UnaryOp::Softcap(1.5)] {
            outs.push(out(b, &b.unary(&x, op).unwrap()));
            outs.push(out(b, &b.gated(&x, &y, op).unwrap()));
        }
        outs
    });
}

#[test]
fn rope_both_conventions() {
    check("rope", |b| {
        let x = t(b, &[3, 12], 9);
        [RopeConvention::HalfSplit, RopeConvention::HalfSplitNegative]
            .into_iter()
            .map(|convention| {
                let spec = RopeSpec { head_dim: 6, theta: 10_000.0, convention };
                out(b, &b.rope(&x, &[0, 7, 300], &spec).unwrap())
            })
            .collect()
    });
}

#[test]
fn attention_with_gqa_batches_decode_and_windows() {
    for window in [None, Some(3)] {
        check("attention", |b| {
            let spec = AttentionSpec { n_heads: 4, n_kv_heads: 2, head_dim: 4, scale: 0.5, window };
            let mut kv = b.new_kv(&KvSpec { slots: 2, n_kv_heads: 2, head_dim: 4, capacity: 16 }).unwrap();
            // Prefill two sequences of different lengths, then decode one token for each.
            let prefill =
                [SeqSpan { slot: 0, start: 0, len: 5, past: 0 }, SeqSpan { slot: 1, start: 5, len: 2, past: 0 }];
            let decode =
                [SeqSpan { slot: 0, start: 0, len: 1, past: 5 }, SeqSpan { slot: 1, start: 1, len: 1, past: 2 }];
            let mut outs = Vec::new();
            for (i, spans) in [&prefill[..], &decode[..]].into_iter().enumerate() {
                let n: usize = spans.iter().map(|s| s.len).sum();
                let seed = 10 + 3 * i as u32;
                let (q, k, v) = (t(b, &[n, 16], seed), t(b, &[n, 8], seed + 1), t(b, &[n, 8], seed + 2));
                outs.push(out(b, &b.attention(&q, &k, &v, &mut kv, spans, &spec).unwrap()));
            }
            outs
        });
    }
}

#[test]
fn shape_errors_are_errors_on_every_backend() {
    for name in std::iter::once(&"ndarray").chain(OTHERS) {
        let b = backend(name);
        let (x, w) = (t(&b, &[2, 3], 1), t(&b, &[4, 5], 2));
        assert!(b.linear(&x, &w, None).is_err(), "{name}");
        assert!(b.add(&x, &w).is_err(), "{name}");
        assert!(b.embedding(&w, &[9]).is_err(), "{name}");
        assert!(b.narrow(&x, 1, 2, 5).is_err(), "{name}");
    }
}
