//! Building blocks shared by the model files: a prefix-scoped weight loader ([`Vb`]) and the
//! layers every family uses (linear, LayerNorm, RMSNorm). Weight names come from the struct
//! path, `vb.pp("attn").pp("c_attn")`, so there are no rename tables.

use serde::de::DeserializeOwned;
use zoo_core::{Backend, Error, Result, UnaryOp, WeightSource};

/// Weights under a name prefix, loaded onto a backend.
pub struct Vb<'a, B: Backend> {
    backend: &'a B,
    source: &'a dyn WeightSource,
    prefix: String,
}

impl<'a, B: Backend> Vb<'a, B> {
    /// The root of `source`.
    pub fn new(backend: &'a B, source: &'a dyn WeightSource) -> Self {
        Self { backend, source, prefix: String::new() }
    }

    /// The same weights under `prefix.name`.
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        Self { backend: self.backend, source: self.source, prefix }
    }

    /// The full name of `name` under this prefix.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether `name` exists under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(&self.path(name))
    }

    /// Loads `name`, checking its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<B::Tensor> {
        self.backend.weight(&self.source.get_shaped(&self.path(name), shape)?)
    }

    /// Reads `name` to the host as f32 values (small tables the model computes with at load,
    /// such as RoPE frequency factors), checking its shape.
    pub fn get_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.source.get_shaped(&self.path(name), shape)?.to_f32_vec())
    }

    /// Loads a matrix stored `[in, out]` (GPT-2's Conv1D) as `[out, in]`.
    pub fn get_transposed(&self, name: &str, stored_shape: [usize; 2]) -> Result<B::Tensor> {
        let view = self.source.get_shaped(&self.path(name), &stored_shape)?;
        self.backend.weight(&view.transposed()?)
    }
}

/// `y = x · wᵀ + b`.
pub struct Linear<B: Backend> {
    weight: B::Tensor,
    bias: Option<B::Tensor>,
}

/// How a checkpoint stores a linear layer's matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// `[out, in]`, PyTorch `nn.Linear`.
    OutIn,
    /// `[in, out]`, GPT-2's `Conv1D`.
    InOut,
}

impl<B: Backend> Linear<B> {
    /// Loads `weight` (and `bias` when `bias` is true) of an `in_features → out_features` layer.
    pub fn load(vb: &Vb<'_, B>, in_features: usize, out_features: usize, bias: bool, stored: Stored) -> Result<Self> {
        let weight = match stored {
            Stored::OutIn => vb.get("weight", &[out_features, in_features])?,
            Stored::InOut => vb.get_transposed("weight", [in_features, out_features])?,
        };
        let bias = if bias { Some(vb.get("bias", &[out_features])?) } else { None };
        Ok(Self { weight, bias })
    }

    /// Wraps an already loaded matrix (a tied head).
    pub fn from_weight(weight: B::Tensor) -> Self {
        Self { weight, bias: None }
    }

    /// Applies the layer to `x: [n, in]`.
    pub fn forward(&self, backend: &B, x: &B::Tensor) -> Result<B::Tensor> {
        backend.linear(x, &self.weight, self.bias.as_ref())
    }

    /// `residual + self(x)`: a projection back into the residual stream (one op on GPU backends).
    pub fn forward_add(&self, backend: &B, x: &B::Tensor, residual: &B::Tensor) -> Result<B::Tensor> {
        backend.linear_add(x, &self.weight, self.bias.as_ref(), residual)
    }
}

/// `N` outputs of a backend op that returns one per layer, as an array.
fn outputs<T, const N: usize>(op: &'static str, outputs: Vec<T>) -> Result<[T; N]> {
    let got = outputs.len();
    outputs.try_into().map_err(|_| Error::Shape { op, expected: format!("{N} outputs"), got: vec![got] })
}

/// LayerNorm with weight and bias.
pub struct LayerNorm<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
    eps: f32,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `weight` and `bias` of size `dim`.
    pub fn load(vb: &Vb<'_, B>, dim: usize, eps: f32) -> Result<Self> {
        Ok(Self { weight: vb.get("weight", &[dim])?, bias: vb.get("bias", &[dim])?, eps })
    }

    /// Normalises each row of `x`.
    pub fn forward(&self, backend: &B, x: &B::Tensor) -> Result<B::Tensor> {
        backend.layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// RMSNorm with a learned scale (`None`: parameter-free, as nanochat's).
pub struct RmsNorm<B: Backend> {
    weight: Option<B::Tensor>,
    eps: f32,
}

impl<B: Backend> RmsNorm<B> {
    /// Loads `weight` of size `dim`.
    pub fn load(vb: &Vb<'_, B>, dim: usize, eps: f32) -> Result<Self> {
        Ok(Self { weight: Some(vb.get("weight", &[dim])?), eps })
    }

    /// A norm without a learned scale.
    pub fn parameter_free(eps: f32) -> Self {
        Self { weight: None, eps }
    }

    /// Normalises each row of `x`.
    pub fn forward(&self, backend: &B, x: &B::Tensor) -> Result<B::Tensor> {
        backend.rms_norm(x, self.weight.as_ref(), self.eps)
    }

    /// Each of `layers` applied to the normalised `x` (attention's q, k and v; the LM head): one
    /// op, which GPU backends run as one kernel during decode.
    pub fn linears<const N: usize>(
        &self,
        backend: &B,
        x: &B::Tensor,
        layers: [&Linear<B>; N],
    ) -> Result<[B::Tensor; N]> {
        let parts = layers.map(|l| (&l.weight, l.bias.as_ref()));
        outputs("rms_norm_linears", backend.rms_norm_linears(x, self.weight.as_ref(), self.eps, &parts)?)
    }

    /// `op(gate(h)) · up(h)` of `h`, the normalised `x` (a gated MLP's first half).
    pub fn gated(
        &self,
        backend: &B,
        x: &B::Tensor,
        gate: &Linear<B>,
        up: &Linear<B>,
        op: UnaryOp,
    ) -> Result<B::Tensor> {
        match (&gate.bias, &up.bias) {
            (None, None) => {
                backend.rms_norm_gated_linear(x, self.weight.as_ref(), self.eps, &gate.weight, &up.weight, op)
            }
            _ => {
                let h = self.forward(backend, x)?;
                backend.gated(&gate.forward(backend, &h)?, &up.forward(backend, &h)?, op)
            }
        }
    }
}

/// Deserialises a family's config, turning serde's message into a config error.
pub fn parse_config<T: DeserializeOwned>(family: &str, config: &serde_json::Value) -> Result<T> {
    T::deserialize(config).map_err(|e| Error::Config { family: family.to_string(), message: e.to_string() })
}

/// A config error for `family`.
pub fn config_error(family: &str, message: impl Into<String>) -> Error {
    Error::Config { family: family.to_string(), message: message.into() }
}

/// Whether `config` names `model_type` or lists `architecture`.
pub fn config_is(config: &serde_json::Value, model_type: &str, architecture: &str) -> bool {
    let by_type = config.get("model_type").and_then(|t| t.as_str()) == Some(model_type);
    let by_arch = config
        .get("architectures")
        .and_then(|a| a.as_array())
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(architecture)));
    by_type || by_arch
}
