//! The `Backend` trait: the tensor operations a decoder-only transformer needs, coarse enough
//! that a GPU backend runs each as one kernel (attention over the KV cache is one op, not ten).
//!
//! Conventions shared by every op:
//! - activations are 2-D, `[rows, cols]`, one row per token; a batch of sequences is their
//!   tokens concatenated, described by [`SeqSpan`]s;
//! - matrices are stored `[out, in]` (PyTorch `nn.Linear`), so `linear(x, w) = x · wᵀ + b`;
//! - normalisations and softmax act on the last dimension.

use std::any::Any;

use crate::kv_cache::Step;
use crate::rope::RopeScaling;
use crate::{DType, Error, Result, WeightView};

/// Read access to a tensor's shape, which every backend tensor provides.
pub trait TensorShape {
    /// The shape, outermost dimension first.
    fn shape(&self) -> &[usize];
}

/// Elementwise functions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// GELU with the tanh approximation (GPT-2's `gelu_new`).
    GeluTanh,
    /// `x · sigmoid(x)`.
    Silu,
    /// `max(x, 0)²` (nanochat's MLP).
    ReluSquared,
    /// `cap · tanh(x / cap)` (logit soft-capping).
    Softcap(f32),
}

/// How rotary embeddings pair and rotate channels. Both split each head in halves
/// (channel `i` pairs with `i + head_dim/2`); they differ in the rotation's sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeConvention {
    /// HF `rotate_half`: `y1 = x1·cos − x2·sin`, `y2 = x2·cos + x1·sin`.
    HalfSplit,
    /// nanochat: rotation by −θ, `y1 = x1·cos + x2·sin`, `y2 = x2·cos − x1·sin`.
    HalfSplitNegative,
}

/// Rotary embedding parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeSpec {
    /// Channels per head (the rotation acts on all of them).
    pub head_dim: usize,
    /// Base of the inverse frequencies, `rope_theta`.
    pub theta: f32,
    /// Rotation convention.
    pub convention: RopeConvention,
    /// Scaled frequencies (RoPE scaling, [`crate::rope`]); `None`: `1 / theta^(2i/d)`.
    pub scaling: Option<RopeScaling>,
}

impl RopeSpec {
    /// Unscaled rotary embeddings of `head_dim` channels with base `theta`.
    pub fn new(head_dim: usize, theta: f32, convention: RopeConvention) -> Self {
        Self { head_dim, theta, convention, scaling: None }
    }

    /// `cos` and signed `sin` of each row's angles, `positions.len() · head_dim/2` of each,
    /// row-major. Computed as transformers does, in f32: `inv_freq = 1 / theta^(2i/d)` (or the
    /// scaled frequencies) and `angle = position · inv_freq`, so long positions round the same
    /// way as the reference; both are multiplied by the scaling's attention factor (YaRN), and
    /// the sine carries the convention's sign (nanochat rotates by −θ).
    pub fn angles(&self, positions: impl IntoIterator<Item = usize>) -> (Vec<f32>, Vec<f32>) {
        let unscaled;
        let (inv_freq, factor) = match &self.scaling {
            Some(s) if s.inv_freq.len() == self.head_dim / 2 => (&s.inv_freq[..], s.attention_factor),
            _ => {
                unscaled = crate::rope::default_inv_freq(self.head_dim, self.theta);
                (&unscaled[..], 1.0)
            }
        };
        let sign = match self.convention {
            RopeConvention::HalfSplit => 1.0,
            RopeConvention::HalfSplitNegative => -1.0,
        };
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for pos in positions {
            for f in inv_freq {
                let angle = (pos as f32 * f) as f64;
                cos.push(angle.cos() as f32 * factor);
                sin.push(sign * (angle.sin() as f32 * factor));
            }
        }
        (cos, sin)
    }
}

/// One sequence of a batch: where its rows are and where it stands in its KV-cache slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqSpan {
    /// The KV-cache slot this sequence owns.
    pub slot: usize,
    /// First row of this sequence in the batch's activations.
    pub start: usize,
    /// Number of new tokens (rows).
    pub len: usize,
    /// Tokens already in the cache before this step (the position of the first new token).
    pub past: usize,
}

/// Shape of one layer's KV buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvSpec {
    /// Sequences held at once.
    pub slots: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Maximum positions per slot (backends may grow towards it lazily).
    pub capacity: usize,
}

impl KvSpec {
    /// Values in one of the keys or values buffers with `room` positions per slot.
    pub fn values(&self, room: usize) -> usize {
        self.slots * self.n_kv_heads * room * self.head_dim
    }
}

/// How a backend sizes its KV buffers: every backend follows [`KvGrowth::room`], so the cache
/// behaves the same everywhere and only the choice of policy is the backend's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvGrowth {
    /// Start at `min` positions per slot and double when full, up to the capacity: memory
    /// follows use (host backends, or a device without room for the full cache).
    Double {
        /// Positions allocated at the first write.
        min: usize,
    },
    /// The full capacity from the start: buffers never move, so a decode step's addresses stay
    /// fixed (GPU backends).
    Full,
}

impl KvGrowth {
    /// Positions per slot to allocate so that `needed` fit when `room` are allocated now, never
    /// more than `capacity` (unless `needed` is); `room` itself when it suffices.
    pub fn room(self, needed: usize, room: usize, capacity: usize) -> usize {
        if needed <= room {
            return room;
        }
        let grown = match self {
            KvGrowth::Full => capacity,
            KvGrowth::Double { min } => needed.max(2 * room).max(min).min(capacity),
        };
        grown.max(needed)
    }
}

/// Causal attention parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads; query head `h` reads kv head `h / (n_heads / n_kv_heads)`.
    pub n_kv_heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Multiplier of `q·k`, usually `1/sqrt(head_dim)`.
    pub scale: f32,
    /// Sliding window: a query at position `i` sees keys `j` with `i − j < window`.
    pub window: Option<usize>,
}

/// The queries, keys and values an attention op takes: `q: [n, n_heads·head_dim]` and
/// `k, v: [n, n_kv_heads·head_dim]` for the batch's new tokens.
#[derive(Debug)]
pub struct Qkv<'a, T> {
    /// Queries.
    pub q: &'a T,
    /// Keys.
    pub k: &'a T,
    /// Values.
    pub v: &'a T,
}

impl<'a, T> Qkv<'a, T> {
    /// `q`, `k` and `v` together.
    pub fn new(q: &'a T, k: &'a T, v: &'a T) -> Self {
        Self { q, k, v }
    }

    /// `f` of each of the three (a backend's tensor type to what its kernels take).
    pub fn map<U>(self, f: impl Fn(&'a T) -> &'a U) -> Qkv<'a, U> {
        Qkv { q: f(self.q), k: f(self.k), v: f(self.v) }
    }
}

impl<T> Clone for Qkv<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Qkv<'_, T> {}

/// A forward step as each layer's ops see it: the host plan, plus what the backend made of it
/// once in [`Backend::prepare_step`] (device copies of positions and spans, the step's RoPE
/// rows, masks), so that no layer uploads them again.
pub struct StepInput<'a> {
    /// The step's host description: tokens, spans, positions, logit rows.
    pub step: &'a Step<'a>,
    /// The backend's own prepared data; `None` for backends that read the host plan directly.
    pub prepared: Option<Box<dyn Any + Send + Sync>>,
}

impl<'a> StepInput<'a> {
    /// A step with nothing prepared: ops read `step`'s host slices.
    pub fn host(step: &'a Step<'a>) -> Self {
        Self { step, prepared: None }
    }

    /// The prepared data, if the backend that made it stored a `T`.
    pub fn prepared<T: 'static>(&self) -> Option<&T> {
        self.prepared.as_ref().and_then(|p| p.downcast_ref::<T>())
    }
}

/// What a backend keeps between the forward steps of one KV cache (burn-cuda: the decode steps
/// it recorded as CUDA graphs, which hold that cache's buffers). Kept with the cache, dropped
/// with it; empty for backends that keep nothing.
#[derive(Default)]
pub struct StepMemory(pub Option<Box<dyn Any + Send + Sync>>);

impl std::fmt::Debug for StepMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "StepMemory(kept)" } else { "StepMemory(empty)" })
    }
}

/// How a backend holds weights stored in one [`DType`]: the answer of [`Backend::supports`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Support {
    /// Kept as stored and computed on in that type (quantised types are dequantised block by
    /// block or group by group inside the ops that read them, never as a whole).
    Native,
    /// Converted once at load, cast to the type the backend computes in or dequantised.
    Converted,
    /// Refused at load with [`Error::UnsupportedDType`].
    Unsupported,
}

/// A compute backend: owns devices, holds weights in its preferred layout and runs the ops.
///
/// Models are generic over `Backend` and written once. Implementations live in their own crates
/// under `crates/backends/`. Every op checks shapes and returns [`crate::Error::Shape`] rather than
/// panicking.
pub trait Backend: Clone + Send + Sync + 'static {
    /// A tensor resident on this backend's device.
    type Tensor: TensorShape + Clone + Send + Sync + 'static;
    /// One layer's key/value cache for all slots, written in place.
    type KvBuffer: Send + Sync + 'static;

    /// The backend's registry name (`ndarray`, `cuda`, ...).
    fn name(&self) -> &str;

    /// Makes a weight resident, converting it once to the backend's layout and element type.
    /// CPU backends may keep memory-mapped bytes in place.
    fn weight(&self, view: &WeightView) -> Result<Self::Tensor>;
    /// Uploads f32 host data.
    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<Self::Tensor>;
    /// Reads a tensor back as f32 (once per decode step, for the logits).
    fn to_host(&self, x: &Self::Tensor) -> Result<Vec<f32>>;

    /// How [`Backend::weight`] holds weights stored as `dtype`: as stored, converted at load,
    /// or not at all. The default describes a backend that computes in f32 and converts every
    /// other type at load; backends that keep other types, or refuse some, override it.
    fn supports(&self, dtype: DType) -> Support {
        if dtype == DType::F32 {
            Support::Native
        } else {
            Support::Converted
        }
    }

    /// A one-line note about one-time work the backend will do before its first results (a
    /// GPU backend compiling its kernels on the first run on a machine), for a caller to show
    /// while it waits; `None` when there is none.
    fn startup_note(&self) -> Option<String> {
        None
    }

    /// One line naming the device this backend runs on (a GPU backend's adapter, its driver
    /// and what it supports), for `zoo list`; `None` when there is nothing to say.
    fn device_description(&self) -> Option<String> {
        None
    }

    /// Device kernels this backend has launched so far in this process, where it counts them
    /// (`zoo bench` reports launches per decode step from it); `None` when it does not count.
    fn launches(&self) -> Option<u64> {
        None
    }

    /// Waits until the device has finished the work queued so far (GPU backends queue ops
    /// asynchronously); the default has nothing to wait for.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// The greedy pick of each row of `logits: [rows, vocab]`: the index of the largest value,
    /// the first on ties, with the errors of [`crate::sampler::Greedy`] (NaN, +∞ or all −∞).
    /// GPU backends pick on the device, so only the ids cross to the host; the default reads
    /// the logits back.
    fn argmax_rows(&self, logits: &Self::Tensor) -> Result<Vec<u32>> {
        crate::sampler::greedy_rows_on_host(self, logits)
    }

    /// Runs `f` (one forward step over `rows` token rows, or a training step) in the backend's
    /// execution context. CPU backends with a thread pool run it on a pool thread, so each op's
    /// parallel work starts without handing the step between threads; GPU backends may run long
    /// steps on the thread that submits their work; the default just calls `f`. Callers that
    /// want `f`'s value use [`scoped`].
    fn scoped(&self, _rows: usize, f: &mut (dyn FnMut() + Send)) {
        f()
    }

    /// What the backend has to tell the user since the last call (a fallback it took while
    /// generating: burn-cuda turning CUDA graphs off, with the reason), taken: the CLI prints
    /// them after a run. Libraries don't print.
    fn take_notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs one forward step, which `run` computes op by op. A backend that can record a step
    /// and replay the recording (burn-cuda: a CUDA graph) may instead replay one it recorded in
    /// `memory` earlier, with `step`'s tokens, slots and positions, and return what `run` would
    /// have returned; the default runs `run`.
    fn run_step(
        &self,
        _memory: &mut StepMemory,
        _step: &Step<'_>,
        run: &mut dyn FnMut() -> Result<Self::Tensor>,
    ) -> Result<Self::Tensor> {
        run()
    }

    /// Prepares what every layer of one forward step reads (positions, spans), once per step.
    /// The default prepares nothing; GPU backends upload the step's tables here.
    fn prepare_step<'a>(&self, step: &'a Step<'a>) -> Result<StepInput<'a>> {
        Ok(StepInput::host(step))
    }

    /// [`Backend::embedding`] of the step's tokens, reading what `prepare_step` made (a GPU
    /// backend's copy of the token ids).
    fn embedding_step(&self, table: &Self::Tensor, input: &StepInput<'_>) -> Result<Self::Tensor> {
        self.embedding(table, input.step.tokens)
    }

    /// [`Backend::rope`] at the step's positions, reading what `prepare_step` made.
    fn rope_step(&self, x: &Self::Tensor, input: &StepInput<'_>, spec: &RopeSpec) -> Result<Self::Tensor> {
        self.rope(x, &input.step.positions, spec)
    }

    /// [`Backend::attention`] over the step's spans, reading what `prepare_step` made.
    fn attention_step(
        &self,
        qkv: Qkv<'_, Self::Tensor>,
        kv: &mut Self::KvBuffer,
        input: &StepInput<'_>,
        spec: &AttentionSpec,
    ) -> Result<Self::Tensor> {
        self.attention(qkv, kv, &input.step.spans, spec)
    }

    /// Rotary embedding of `q` and `k` at the step's positions, then
    /// [`Backend::attention_step`]. GPU backends fuse the rotation with the KV-cache write.
    fn rope_attention_step(
        &self,
        qkv: Qkv<'_, Self::Tensor>,
        kv: &mut Self::KvBuffer,
        input: &StepInput<'_>,
        rope: &RopeSpec,
        spec: &AttentionSpec,
    ) -> Result<Self::Tensor> {
        let q = self.rope_step(qkv.q, input, rope)?;
        let k = self.rope_step(qkv.k, input, rope)?;
        self.attention_step(Qkv::new(&q, &k, qkv.v), kv, input, spec)
    }

    /// Several linear maps of one input, `x · wᵢᵀ + bᵢ` for each `(wᵢ, bᵢ)` (attention's q, k
    /// and v). GPU backends read `x` once and launch one kernel.
    fn linears(
        &self,
        x: &Self::Tensor,
        layers: &[(&Self::Tensor, Option<&Self::Tensor>)],
    ) -> Result<Vec<Self::Tensor>> {
        layers.iter().map(|(w, b)| self.linear(x, w, *b)).collect()
    }

    /// `op(x · gateᵀ) · (x · upᵀ)`, a gated MLP's first half (SwiGLU with [`UnaryOp::Silu`]).
    fn gated_linear(
        &self,
        x: &Self::Tensor,
        gate: &Self::Tensor,
        up: &Self::Tensor,
        op: UnaryOp,
    ) -> Result<Self::Tensor> {
        let gate = self.linear(x, gate, None)?;
        let up = self.linear(x, up, None)?;
        self.gated(&gate, &up, op)
    }

    /// `linears(rms_norm(x))`: the projections after a norm (q, k and v; the LM head). GPU
    /// backends fold the norm into the products' kernel during decode.
    fn rms_norm_linears(
        &self,
        x: &Self::Tensor,
        weight: Option<&Self::Tensor>,
        eps: f32,
        layers: &[(&Self::Tensor, Option<&Self::Tensor>)],
    ) -> Result<Vec<Self::Tensor>> {
        let normed = self.rms_norm(x, weight, eps)?;
        self.linears(&normed, layers)
    }

    /// `gated_linear(rms_norm(x))`: a gated MLP's first half after its norm, one kernel on GPUs.
    #[allow(clippy::too_many_arguments)]
    fn rms_norm_gated_linear(
        &self,
        x: &Self::Tensor,
        weight: Option<&Self::Tensor>,
        eps: f32,
        gate: &Self::Tensor,
        up: &Self::Tensor,
        op: UnaryOp,
    ) -> Result<Self::Tensor> {
        let normed = self.rms_norm(x, weight, eps)?;
        self.gated_linear(&normed, gate, up, op)
    }

    /// `residual + (x · wᵀ + bias)`: a projection back into the residual stream, the add folded
    /// into the product on GPUs.
    fn linear_add(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        residual: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        let y = self.linear(x, w, bias)?;
        self.add(residual, &y)
    }

    /// The residual sum `x + y` and its RMSNorm, `(x + y, rms_norm(x + y))`, in one pass on GPUs.
    fn add_rms_norm(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
        weight: Option<&Self::Tensor>,
        eps: f32,
    ) -> Result<(Self::Tensor, Self::Tensor)> {
        let sum = self.add(x, y)?;
        let normed = self.rms_norm(&sum, weight, eps)?;
        Ok((sum, normed))
    }

    /// Rows of `table` (`[vocab, dim]`) for each id: `[ids.len(), dim]`.
    fn embedding(&self, table: &Self::Tensor, ids: &[u32]) -> Result<Self::Tensor>;
    /// `x · wᵀ + bias` for `x: [n, in]`, `w: [out, in]`, `bias: [out]`.
    fn linear(&self, x: &Self::Tensor, w: &Self::Tensor, bias: Option<&Self::Tensor>) -> Result<Self::Tensor>;
    /// Elementwise sum of two tensors of one shape.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// Elementwise product of two tensors of one shape.
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    /// An elementwise function.
    fn unary(&self, x: &Self::Tensor, op: UnaryOp) -> Result<Self::Tensor>;
    /// `op(gate) · up`, the gated MLP activation (SwiGLU with [`UnaryOp::Silu`]).
    fn gated(&self, gate: &Self::Tensor, up: &Self::Tensor, op: UnaryOp) -> Result<Self::Tensor>;
    /// LayerNorm over the last dimension: `(x − mean) / sqrt(var + eps) · weight + bias`.
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        weight: &Self::Tensor,
        bias: &Self::Tensor,
        eps: f32,
    ) -> Result<Self::Tensor>;
    /// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · weight` (no weight: ×1).
    fn rms_norm(&self, x: &Self::Tensor, weight: Option<&Self::Tensor>, eps: f32) -> Result<Self::Tensor>;
    /// Rotary embedding of `x: [n, heads·head_dim]`; row `r` is at position `positions[r]`.
    fn rope(&self, x: &Self::Tensor, positions: &[usize], spec: &RopeSpec) -> Result<Self::Tensor>;
    /// Softmax over the last dimension.
    fn softmax(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    /// A slice `start..start+len` along dimension `dim`.
    fn narrow(&self, x: &Self::Tensor, dim: usize, start: usize, len: usize) -> Result<Self::Tensor>;
    /// The same elements under another shape (row-major order is kept).
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    /// Selected rows of a 2-D tensor, in the order given.
    fn gather_rows(&self, x: &Self::Tensor, rows: &[usize]) -> Result<Self::Tensor>;

    /// A KV buffer for one layer.
    fn new_kv(&self, spec: &KvSpec) -> Result<Self::KvBuffer>;
    /// Causal attention with a KV cache, one op for the whole batch.
    ///
    /// `qkv` holds the batch's new tokens' queries, keys and values ([`Qkv`]). For each span, writes its keys/values into `kv` at positions `past..past+len` of its slot,
    /// then attends each new token to every cached position up to its own (within the window).
    /// Returns `[n, n_heads·head_dim]`.
    fn attention(
        &self,
        qkv: Qkv<'_, Self::Tensor>,
        kv: &mut Self::KvBuffer,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<Self::Tensor>;
}

/// Runs `f` (over `rows` token rows) through [`Backend::scoped`], so in `backend`'s execution
/// context, and returns its value; [`Error::Backend`] if the backend never ran it.
pub fn scoped<B: Backend, T: Send>(backend: &B, rows: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let mut f = Some(f);
    let mut value = None;
    backend.scoped(rows, &mut || {
        if let Some(f) = f.take() {
            value = Some(f());
        }
    });
    value.unwrap_or_else(|| {
        Err(Error::Backend {
            backend: backend.name().into(),
            message: "the scoped work did not run (the device's execution thread failed)".into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::KvGrowth;

    #[test]
    fn doubling_starts_at_min_doubles_and_stops_at_capacity() {
        let grow = KvGrowth::Double { min: 16 };
        assert_eq!(grow.room(1, 0, 100), 16);
        assert_eq!(grow.room(16, 16, 100), 16, "room that suffices is kept");
        assert_eq!(grow.room(17, 16, 100), 32);
        assert_eq!(grow.room(40, 16, 100), 40, "a jump past double takes what is needed");
        assert_eq!(grow.room(65, 64, 100), 100, "never past the capacity");
        assert_eq!(grow.room(5, 0, 3), 5, "what is needed wins over the capacity");
    }

    #[test]
    fn full_takes_the_capacity_at_once() {
        assert_eq!(KvGrowth::Full.room(1, 0, 4096), 4096);
        assert_eq!(KvGrowth::Full.room(4096, 4096, 4096), 4096);
        assert_eq!(KvGrowth::Full.room(10, 0, 8), 10);
    }

    #[test]
    fn values_counts_every_slot_head_and_position() {
        let spec = super::KvSpec { slots: 2, n_kv_heads: 4, head_dim: 8, capacity: 100 };
        assert_eq!(spec.values(10), 2 * 4 * 10 * 8);
    }
}
