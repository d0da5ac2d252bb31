//! One optimizer step: the step's windows in micro-batches, each one's loss backpropagated
//! and its gradients summed (gradient accumulation), the sum clipped to a global norm, and
//! AdamW applied to every parameter in the store.

use std::collections::BTreeMap;

use burn::tensor::backend::{AutodiffBackend, Backend as BurnBackend};
use burn::tensor::Tensor;
use zoo_backend_burn::{Burn, Kernels, Params};
use zoo_core::Model;

use crate::error::{Result, TrainError};
use crate::family::ParamSpec;
use crate::optimizer::Optimizer;
use crate::token_file::{random_windows, TokenFile};

/// Gradients by parameter name, on the backend autodiff wraps.
pub type Grads<BB> = BTreeMap<String, Tensor<<BB as AutodiffBackend>::InnerBackend, 2>>;

/// How a step's windows are drawn and split.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Windows per optimizer step.
    pub rows: usize,
    /// Windows per forward pass.
    pub micro: usize,
    /// Tokens per window: the context plus the last target.
    pub window: usize,
    /// The run's seed.
    pub seed: u64,
}

impl Plan {
    /// Forward passes per step.
    pub fn passes(&self) -> usize {
        self.rows.div_ceil(self.micro)
    }

    /// Tokens trained on per step.
    pub fn tokens(&self) -> u64 {
        (self.rows * (self.window - 1)) as u64
    }
}

/// The mean loss of step `step`'s windows and the gradient of that mean.
pub fn gradients<BB: AutodiffBackend + Kernels>(
    model: &dyn Model<Burn<BB>>,
    params: &Params<BB>,
    data: &TokenFile,
    plan: &Plan,
    step: u64,
) -> Result<(f32, Grads<BB>)> {
    let passes = plan.passes();
    let (mut loss, mut sums) = (None, Grads::<BB>::new());
    for pass in 0..passes {
        let rows = plan.micro.min(plan.rows - pass * plan.micro);
        let draw = step * passes as u64 + pass as u64;
        let windows = random_windows(data, plan.seed, draw, rows, plan.window);
        let weighted = crate::loss::cross_entropy(model, &windows)?.mul_scalar(rows as f32 / plan.rows as f32);
        // Summed on the device and read after the last backward pass: reading it here would
        // make the host wait for the forward pass before queueing the backward one.
        let value = weighted.clone().inner();
        loss = Some(match loss {
            Some(sum) => sum + value,
            None => value,
        });
        let grads = weighted.backward();
        for (name, param) in params.all() {
            if let Some(g) = param.grad(&grads) {
                let sum = match sums.remove(&name) {
                    Some(sum) => sum + g,
                    None => g,
                };
                sums.insert(name, sum);
            }
        }
    }
    let loss = match loss {
        Some(sum) => scalar(sum)?,
        None => f32::NAN,
    };
    Ok((loss, sums))
}

/// Clips `grads` to a global norm of `clip` and steps every parameter of `specs` (a parameter
/// without a gradient steps on zeros, so every moment counts the same steps). Returns the
/// norm before clipping.
pub fn update<BB: AutodiffBackend>(
    optimizer: &mut Optimizer<BB::InnerBackend>,
    params: &Params<BB>,
    specs: &[ParamSpec],
    mut grads: Grads<BB>,
    lr: f64,
    clip: f32,
) -> Result<f32> {
    // Summed on the device and read once: one host round trip per step, not one per parameter.
    let square = grads.values().map(|g| g.clone().powi_scalar(2).sum()).reduce(|a, b| a + b);
    let norm = match square {
        Some(square) => scalar(square)?.sqrt(),
        None => 0.0,
    };
    let scale = if norm > clip { clip / norm } else { 1.0 };
    for spec in specs {
        let param = params.get(&spec.name).ok_or_else(|| {
            TrainError::config(spec.name.clone(), "the model did not load this parameter (config and family disagree)")
        })?;
        let value = param.inner();
        let grad = match grads.remove(&spec.name) {
            Some(g) if scale < 1.0 => g.mul_scalar(scale),
            Some(g) => g,
            None => value.zeros_like(),
        };
        let value = optimizer.step(&spec.name, spec.decay, lr, value, grad);
        params.insert(spec.name.clone(), Tensor::from_inner(value).require_grad());
    }
    Ok(norm)
}

/// The value of a one-element tensor.
pub fn scalar<B: BurnBackend>(t: Tensor<B, 1>) -> Result<f32> {
    let values = t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| {
        TrainError::Model(zoo_core::Error::Backend { backend: "burn".into(), message: format!("{e:?}") })
    })?;
    Ok(values.first().copied().unwrap_or(f32::NAN))
}

/// A matrix's values on the host, and its `[rows, cols]`.
pub fn host<B: BurnBackend>(t: Tensor<B, 2>) -> Result<(Vec<f32>, [usize; 2])> {
    let dims = t.dims();
    let values = t.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| {
        TrainError::Model(zoo_core::Error::Backend { backend: "burn".into(), message: format!("{e:?}") })
    })?;
    Ok((values, dims))
}
