//! Elementwise ops and softmax.

use rayon::prelude::*;
use zoo_core::{Error, Result, UnaryOp};

use crate::tensor::NdTensor;

/// Tensors at least this large are processed in parallel.
const PARALLEL_MIN: usize = 1 << 15;

pub fn add(a: &NdTensor, b: &NdTensor) -> Result<NdTensor> {
    zip_with(a, b, "add", |x, y| x + y)
}

pub fn mul(a: &NdTensor, b: &NdTensor) -> Result<NdTensor> {
    zip_with(a, b, "mul", |x, y| x * y)
}

pub fn unary(x: &NdTensor, op: UnaryOp) -> Result<NdTensor> {
    let f = unary_fn(op);
    NdTensor::new(map(x.values(), f), x.shape_vec())
}

pub fn gated(gate: &NdTensor, up: &NdTensor, op: UnaryOp) -> Result<NdTensor> {
    if op == UnaryOp::Silu {
        return silu_gated(gate, up);
    }
    let f = unary_fn(op);
    zip_with(gate, up, "gated", move |g, u| f(g) * u)
}

/// `silu(gate) · up` through [`crate::vexp::silu_gate`], in parallel chunks for large tensors.
fn silu_gated(gate: &NdTensor, up: &NdTensor) -> Result<NdTensor> {
    if gate.shape_vec() != up.shape_vec() {
        return Err(Error::Shape {
            op: "gated",
            expected: format!("shape {:?}", gate.shape_vec()),
            got: up.shape_vec(),
        });
    }
    let (g, u) = (gate.values(), up.values());
    let mut out = vec![0f32; g.len()];
    if g.len() >= PARALLEL_MIN {
        let chunks = out
            .par_chunks_mut(PARALLEL_MIN / 4)
            .zip(g.par_chunks(PARALLEL_MIN / 4))
            .zip(u.par_chunks(PARALLEL_MIN / 4));
        chunks.for_each(|((o, g), u)| crate::vexp::silu_gate(g, u, o));
    } else {
        crate::vexp::silu_gate(g, u, &mut out);
    }
    NdTensor::new(out, gate.shape_vec())
}

/// Softmax over the last dimension, computed with the row maximum subtracted.
pub fn softmax(x: &NdTensor) -> Result<NdTensor> {
    let mut out = x.values().to_vec();
    out.chunks_exact_mut(x.last_dim()).for_each(crate::vexp::softmax_in_place);
    NdTensor::new(out, x.shape_vec())
}

fn unary_fn(op: UnaryOp) -> impl Fn(f32) -> f32 + Copy + Send + Sync {
    move |x: f32| match op {
        UnaryOp::GeluTanh => {
            const SQRT_2_OVER_PI: f32 = 0.797_884_6;
            0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)).tanh())
        }
        UnaryOp::Silu => x / (1.0 + (-x).exp()),
        UnaryOp::ReluSquared => {
            let r = x.max(0.0);
            r * r
        }
        UnaryOp::Softcap(cap) => cap * (x / cap).tanh(),
    }
}

fn map(values: &[f32], f: impl Fn(f32) -> f32 + Send + Sync) -> Vec<f32> {
    if values.len() >= PARALLEL_MIN {
        values.par_iter().map(|&v| f(v)).collect()
    } else {
        values.iter().map(|&v| f(v)).collect()
    }
}

fn zip_with(
    a: &NdTensor,
    b: &NdTensor,
    op: &'static str,
    f: impl Fn(f32, f32) -> f32 + Send + Sync,
) -> Result<NdTensor> {
    if a.shape_vec() != b.shape_vec() {
        return Err(Error::Shape { op, expected: format!("shape {:?}", a.shape_vec()), got: b.shape_vec() });
    }
    let (x, y) = (a.values(), b.values());
    let out = if x.len() >= PARALLEL_MIN {
        x.par_iter().zip(y).map(|(&p, &q)| f(p, q)).collect()
    } else {
        x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect()
    };
    NdTensor::new(out, a.shape_vec())
}
