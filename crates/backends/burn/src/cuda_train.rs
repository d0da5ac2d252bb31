//! [`DeviceHooks`](crate::DeviceHooks) for training on burn-cuda under Burn's autodiff: a
//! linear layer's `x · wᵀ` and attention's batched products (`q · kᵀ`, `p · v`), forward and
//! backward, through cuBLAS on Burn's buffers.
//!
//! Burn 0.21 without its autotuning multiplies training-sized products (tens of thousands of
//! rows) with a generic kernel far from tensor-core speed: over half of a training step's
//! device time on an H200. With autotuning it tunes every new shape for minutes. So the
//! product is an autodiff operation of its own here: the forward pass is
//! [`crate::cuda_device::matmul_nt`], and the backward pass computes `∂x = ∂y · w` and
//! `∂w = ∂yᵀ · x` through the same cuBLAS GEMM, each falling back to Burn's matmul when cuBLAS
//! refuses the operands. Attention's products are [`BatchedProduct`]: `c = α · a · op(b)`
//! with `∂a = α · ∂c · op(b)ᵀ` and `∂b` from `α · ∂cᵀ · a` (or `α · aᵀ · ∂c`), the transposed
//! operand read in place by cuBLAS.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{binary, Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_cubecl::cubecl::cuda::CudaRuntime;
use burn_cubecl::CubeBackend;

use crate::cuda_device::{batched_matmul, batched_matmul_tn, matmul_nt as cublas_nt, matmul_tn};

type Gpu = CubeBackend<CudaRuntime, f32, i32, u8>;
type Train = Autodiff<Gpu>;

/// The hooks for `Autodiff<burn-cuda>`: products only (weights come from the trainer's
/// parameter store, the KV cache is scratch).
pub fn hooks() -> crate::DeviceHooks<Train> {
    crate::DeviceHooks {
        upload: |_, _, _, _| None,
        zeros: |_, _, _| None,
        free_bytes: |_| None,
        matmul_nt,
        batched_matmul: batched_product,
        take_notes: Vec::new,
        run_step: crate::run_directly,
    }
}

/// `x · wᵀ` on the tape: computed by cuBLAS, differentiated by [`LinearProduct`].
fn matmul_nt(x: &Tensor<Train, 2>, w: &Tensor<Train, 2>) -> Option<Tensor<Train, 2>> {
    let y = cublas_nt(&x.clone().inner(), &w.clone().inner())?;
    Some(on_tape(LinearProduct, (x, w), y))
}

/// `value` (computed from `lhs` and `rhs` off the tape) recorded as `op`'s result, each
/// operand checkpointed where the other's gradient needs it.
fn on_tape<Op, const D: usize>(
    op: Op,
    (lhs, rhs): (&Tensor<Train, D>, &Tensor<Train, D>),
    value: Tensor<Gpu, D>,
) -> Tensor<Train, D>
where
    Op: Backward<Gpu, 2, State = (Option<NodeId>, Option<NodeId>)>,
{
    let (lhs, rhs) = (lhs.clone().into_primitive().tensor(), rhs.clone().into_primitive().tensor());
    let value = value.into_primitive().tensor();
    let out = match op.prepare::<NoCheckpointing>([lhs.node.clone(), rhs.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let lhs_state = rhs.is_tracked().then(|| prep.checkpoint(&lhs));
            let rhs_state = lhs.is_tracked().then(|| prep.checkpoint(&rhs));
            prep.finish((lhs_state, rhs_state), value)
        }
        OpsKind::UnTracked(prep) => prep.finish(value),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// A product's operands as [`on_tape`] checkpointed them (each where the other needs a
/// gradient).
type Operands = (Option<FloatTensor<Gpu>>, Option<FloatTensor<Gpu>>);

/// The checkpointed operands back, in a backward pass.
fn operands((lhs, rhs): (Option<NodeId>, Option<NodeId>), checkpointer: &mut Checkpointer) -> Operands {
    let lhs = lhs.map(|id| checkpointer.retrieve_node_output(id));
    let rhs = rhs.map(|id| checkpointer.retrieve_node_output(id));
    (lhs, rhs)
}

/// The backward pass of `y = x · wᵀ`.
#[derive(Debug)]
struct LinearProduct;

impl Backward<Gpu, 2> for LinearProduct {
    /// The checkpointed `x` and `w`, where the other operand needs a gradient.
    type State = (Option<NodeId>, Option<NodeId>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let (x, w) = operands(ops.state, checkpointer);
        binary::<Gpu, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| input_gradient(matrix(grad), matrix(w.expect("checkpointed for x's gradient"))),
            |grad| weight_gradient(matrix(grad), matrix(x.expect("checkpointed for w's gradient"))),
        );
    }
}

fn matrix(t: FloatTensor<Gpu>) -> Tensor<Gpu, 2> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// `∂x = ∂y · w` (`∂y: [n, out]`, `w: [out, in]`).
fn input_gradient(grad: Tensor<Gpu, 2>, w: Tensor<Gpu, 2>) -> FloatTensor<Gpu> {
    let [n, _] = grad.dims();
    let [_, inp] = w.dims();
    let product = batched_matmul(&grad.clone().unsqueeze(), &w.clone().unsqueeze(), false, 1.0);
    let product = product.map(|p| p.reshape([n, inp])).unwrap_or_else(|| grad.matmul(w));
    product.into_primitive().tensor()
}

/// `∂w = ∂yᵀ · x` (`∂y: [n, out]`, `x: [n, in]`).
fn weight_gradient(grad: Tensor<Gpu, 2>, x: Tensor<Gpu, 2>) -> FloatTensor<Gpu> {
    let product = matmul_tn(&grad, &x).unwrap_or_else(|| grad.transpose().matmul(x));
    product.into_primitive().tensor()
}

/// `alpha · a · bᵀ` (`transpose_b`) or `alpha · a · b` over a batch on the tape: computed by
/// cuBLAS, differentiated by [`BatchedProduct`].
fn batched_product(
    a: &Tensor<Train, 3>,
    b: &Tensor<Train, 3>,
    transpose_b: bool,
    alpha: f32,
) -> Option<Tensor<Train, 3>> {
    let c = batched_matmul(&a.clone().inner(), &b.clone().inner(), transpose_b, alpha)?;
    Some(on_tape(BatchedProduct { transpose_b, alpha }, (a, b), c))
}

/// The backward pass of `c = alpha · a · op(b)` over a batch (`op` transposes when
/// `transpose_b`).
#[derive(Debug)]
struct BatchedProduct {
    transpose_b: bool,
    alpha: f32,
}

impl Backward<Gpu, 2> for BatchedProduct {
    /// The checkpointed `a` and `b`, where the other operand needs a gradient.
    type State = (Option<NodeId>, Option<NodeId>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let (a, b) = operands(ops.state, checkpointer);
        let Self { transpose_b, alpha } = self;
        binary::<Gpu, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| {
                let (grad, b) = (batch(grad), batch(b.expect("checkpointed for a's gradient")));
                // ∂a = α · ∂c · op(b)ᵀ: `b` itself when `op` transposed it, else `bᵀ`.
                let product = batched_matmul(&grad, &b, !transpose_b, alpha);
                let fallback = || match transpose_b {
                    true => grad.clone().matmul(b.clone()).mul_scalar(alpha),
                    false => grad.clone().matmul(b.clone().swap_dims(1, 2)).mul_scalar(alpha),
                };
                product.unwrap_or_else(fallback).into_primitive().tensor()
            },
            |grad| {
                let (grad, a) = (batch(grad), batch(a.expect("checkpointed for b's gradient")));
                // ∂b = α · ∂cᵀ · a (`b` transposed), or α · aᵀ · ∂c.
                let (first, second) = if transpose_b { (grad, a) } else { (a, grad) };
                let product = batched_matmul_tn(&first, &second, alpha);
                let fallback = || first.clone().swap_dims(1, 2).matmul(second.clone()).mul_scalar(alpha);
                product.unwrap_or_else(fallback).into_primitive().tensor()
            },
        );
    }
}

fn batch(t: FloatTensor<Gpu>) -> Tensor<Gpu, 3> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}
