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
    }
}

/// `x · wᵀ` on the tape: computed by cuBLAS, differentiated by [`LinearProduct`].
fn matmul_nt(x: &Tensor<Train, 2>, w: &Tensor<Train, 2>) -> Option<Tensor<Train, 2>> {
    let y = cublas_nt(&x.clone().inner(), &w.clone().inner())?;
    let (x, w) = (x.clone().into_primitive().tensor(), w.clone().into_primitive().tensor());
    let y = y.into_primitive().tensor();
    let out =
        match LinearProduct.prepare::<NoCheckpointing>([x.node.clone(), w.node.clone()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                // Each operand's gradient needs the other operand.
                let x_state = w.is_tracked().then(|| prep.checkpoint(&x));
                let w_state = x.is_tracked().then(|| prep.checkpoint(&w));
                prep.finish((x_state, w_state), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
    Some(Tensor::from_primitive(TensorPrimitive::Float(out)))
}

/// The backward pass of `y = x · wᵀ`.
#[derive(Debug)]
struct LinearProduct;

impl Backward<Gpu, 2> for LinearProduct {
    /// The checkpointed `x` and `w`, where the other operand needs a gradient.
    type State = (Option<NodeId>, Option<NodeId>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let (x, w) = ops.state;
        let x: Option<FloatTensor<Gpu>> = x.map(|id| checkpointer.retrieve_node_output(id));
        let w: Option<FloatTensor<Gpu>> = w.map(|id| checkpointer.retrieve_node_output(id));
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
    let (a, b) = (a.clone().into_primitive().tensor(), b.clone().into_primitive().tensor());
    let c = c.into_primitive().tensor();
    let product = BatchedProduct { transpose_b, alpha };
    let out = match product.prepare::<NoCheckpointing>([a.node.clone(), b.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let a_state = b.is_tracked().then(|| prep.checkpoint(&a));
            let b_state = a.is_tracked().then(|| prep.checkpoint(&b));
            prep.finish((a_state, b_state), c)
        }
        OpsKind::UnTracked(prep) => prep.finish(c),
    };
    Some(Tensor::from_primitive(TensorPrimitive::Float(out)))
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
        let (a, b) = ops.state;
        let a: Option<FloatTensor<Gpu>> = a.map(|id| checkpointer.retrieve_node_output(id));
        let b: Option<FloatTensor<Gpu>> = b.map(|id| checkpointer.retrieve_node_output(id));
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
