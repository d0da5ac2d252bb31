//! AdamW with decoupled weight decay, one Burn [`AdamW`] step per parameter (Burn's
//! `SimpleOptimizer`, which keeps no state of its own): matrices decay, norms, biases and
//! embeddings do not. The moments are kept here by parameter name, so they can be saved and
//! restored exactly for `--resume`.

use std::collections::BTreeMap;

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, SimpleOptimizer};
use burn::tensor::backend::Backend as BurnBackend;
use burn::tensor::Tensor;

/// AdamW's hyper-parameters (GPT-2 / nanoGPT's: β = (0.9, 0.95), ε = 1e-8, decay 0.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWSettings {
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// Added to the denominator.
    pub epsilon: f32,
    /// Decoupled weight decay of the decaying parameters.
    pub weight_decay: f32,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self { beta_1: 0.9, beta_2: 0.95, epsilon: 1e-8, weight_decay: 0.1 }
    }
}

/// One parameter's moments, as saved: the steps taken and both moments.
pub struct Moments<B: BurnBackend> {
    /// Steps taken.
    pub time: usize,
    /// First moment.
    pub m: Tensor<B, 2>,
    /// Second moment.
    pub v: Tensor<B, 2>,
}

/// AdamW over named parameters.
pub struct Optimizer<B: BurnBackend> {
    decaying: AdamW,
    plain: AdamW,
    states: BTreeMap<String, AdamWState<B, 2>>,
}

impl<B: BurnBackend> Optimizer<B> {
    /// A fresh optimizer.
    pub fn new(settings: AdamWSettings) -> Self {
        let config = |decay: f32| {
            AdamWConfig::new()
                .with_beta_1(settings.beta_1)
                .with_beta_2(settings.beta_2)
                .with_epsilon(settings.epsilon)
                .with_weight_decay(decay)
                .build()
        };
        Self { decaying: config(settings.weight_decay), plain: config(0.0), states: BTreeMap::new() }
    }

    /// One step of parameter `name`: its new value.
    pub fn step(&mut self, name: &str, decay: bool, lr: f64, param: Tensor<B, 2>, grad: Tensor<B, 2>) -> Tensor<B, 2> {
        let adamw = if decay { &self.decaying } else { &self.plain };
        let (param, state) = adamw.step(lr, param, grad, self.states.remove(name));
        if let Some(state) = state {
            self.states.insert(name.to_string(), state);
        }
        param
    }

    /// Every parameter's moments, by name.
    pub fn moments(&self) -> Vec<(String, Moments<B>)> {
        self.states
            .iter()
            .map(|(name, s)| {
                let m = &s.momentum;
                (name.clone(), Moments { time: m.time, m: m.moment_1.clone(), v: m.moment_2.clone() })
            })
            .collect()
    }

    /// Restores parameter `name`'s moments.
    pub fn restore(&mut self, name: &str, moments: Moments<B>) {
        let momentum =
            AdaptiveMomentumState { time: moments.time, moment_1: moments.m, moment_2: moments.v, max_moment_2: None };
        self.states.insert(name.to_string(), AdamWState { momentum });
    }
}
