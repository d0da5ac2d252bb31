//! Type erasure for backends: [`DynBackend`] is a [`Backend`] that forwards every op to any other
//! backend chosen at run time.
//!
//! Models are generic over `B: Backend`, so a program that knows its backend uses it directly,
//! with no dispatch. The model registry, which must work with backends chosen on the command
//! line, instantiates each model once with `DynBackend`; each op then costs one virtual call and
//! one type check (nanoseconds against kernels of microseconds). This keeps both sets open:
//! adding a model or a backend never touches a list of the other.

use std::any::Any;
use std::sync::Arc;

use crate::backend::{AttentionSpec, Backend, KvSpec, RopeSpec, SeqSpan, StepInput, TensorShape, UnaryOp};
use crate::kv_cache::Step;
use crate::{Error, Result, WeightView};

/// A tensor of some backend, with its concrete type erased.
#[derive(Clone)]
pub struct DynTensor(Arc<dyn ErasedTensor>);

trait ErasedTensor: Send + Sync {
    fn shape(&self) -> &[usize];
    fn as_any(&self) -> &dyn Any;
}

impl<T: TensorShape + Send + Sync + 'static> ErasedTensor for T {
    fn shape(&self) -> &[usize] {
        TensorShape::shape(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl TensorShape for DynTensor {
    fn shape(&self) -> &[usize] {
        self.0.shape()
    }
}

impl std::fmt::Debug for DynTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DynTensor{:?}", TensorShape::shape(self))
    }
}

/// A KV buffer of some backend, with its concrete type erased.
pub struct DynKv(Box<dyn Any + Send + Sync>);

/// The object-safe mirror of [`Backend`], implemented for every backend.
trait ErasedBackend: Send + Sync {
    fn name(&self) -> &str;
    fn weight(&self, view: &WeightView) -> Result<DynTensor>;
    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<DynTensor>;
    fn to_host(&self, x: &DynTensor) -> Result<Vec<f32>>;
    fn argmax_rows(&self, logits: &DynTensor) -> Result<Vec<u32>>;
    fn synchronize(&self) -> Result<()>;
    fn scoped(&self, f: &mut (dyn FnMut() + Send));
    fn prepare_step<'a>(&self, step: &'a Step<'a>) -> Result<StepInput<'a>>;
    fn rope_step(&self, x: &DynTensor, input: &StepInput<'_>, spec: &RopeSpec) -> Result<DynTensor>;
    fn attention_step(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        input: &StepInput<'_>,
        spec: &AttentionSpec,
    ) -> Result<DynTensor>;
    #[allow(clippy::too_many_arguments)]
    fn rope_attention_step(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        input: &StepInput<'_>,
        rope: &RopeSpec,
        spec: &AttentionSpec,
    ) -> Result<DynTensor>;
    fn linears(&self, x: &DynTensor, layers: &[(&DynTensor, Option<&DynTensor>)]) -> Result<Vec<DynTensor>>;
    fn gated_linear(&self, x: &DynTensor, gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor>;
    fn add_rms_norm(
        &self,
        x: &DynTensor,
        y: &DynTensor,
        weight: Option<&DynTensor>,
        eps: f32,
    ) -> Result<(DynTensor, DynTensor)>;
    fn embedding(&self, table: &DynTensor, ids: &[u32]) -> Result<DynTensor>;
    fn linear(&self, x: &DynTensor, w: &DynTensor, bias: Option<&DynTensor>) -> Result<DynTensor>;
    fn add(&self, a: &DynTensor, b: &DynTensor) -> Result<DynTensor>;
    fn mul(&self, a: &DynTensor, b: &DynTensor) -> Result<DynTensor>;
    fn unary(&self, x: &DynTensor, op: UnaryOp) -> Result<DynTensor>;
    fn gated(&self, gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor>;
    fn layer_norm(&self, x: &DynTensor, w: &DynTensor, b: &DynTensor, eps: f32) -> Result<DynTensor>;
    fn rms_norm(&self, x: &DynTensor, w: Option<&DynTensor>, eps: f32) -> Result<DynTensor>;
    fn rope(&self, x: &DynTensor, positions: &[usize], spec: &RopeSpec) -> Result<DynTensor>;
    fn softmax(&self, x: &DynTensor) -> Result<DynTensor>;
    fn narrow(&self, x: &DynTensor, dim: usize, start: usize, len: usize) -> Result<DynTensor>;
    fn reshape(&self, x: &DynTensor, shape: &[usize]) -> Result<DynTensor>;
    fn gather_rows(&self, x: &DynTensor, rows: &[usize]) -> Result<DynTensor>;
    fn new_kv(&self, spec: &KvSpec) -> Result<DynKv>;
    fn attention(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<DynTensor>;
}

fn wrap<B: Backend>(t: B::Tensor) -> DynTensor {
    DynTensor(Arc::new(t))
}

fn down<'a, B: Backend>(backend: &B, t: &'a DynTensor) -> Result<&'a B::Tensor> {
    t.0.as_any().downcast_ref::<B::Tensor>().ok_or_else(|| Error::ForeignTensor { backend: backend.name().to_string() })
}

fn down_kv<'a, B: Backend>(backend: &B, kv: &'a mut DynKv) -> Result<&'a mut B::KvBuffer> {
    kv.0.downcast_mut::<B::KvBuffer>().ok_or_else(|| Error::ForeignTensor { backend: backend.name().to_string() })
}

fn down_opt<'a, B: Backend>(backend: &B, t: Option<&'a DynTensor>) -> Result<Option<&'a B::Tensor>> {
    t.map(|t| down(backend, t)).transpose()
}

impl<B: Backend> ErasedBackend for B {
    fn name(&self) -> &str {
        Backend::name(self)
    }
    fn weight(&self, view: &WeightView) -> Result<DynTensor> {
        Backend::weight(self, view).map(wrap::<B>)
    }
    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<DynTensor> {
        Backend::upload(self, values, shape).map(wrap::<B>)
    }
    fn to_host(&self, x: &DynTensor) -> Result<Vec<f32>> {
        Backend::to_host(self, down(self, x)?)
    }
    fn argmax_rows(&self, logits: &DynTensor) -> Result<Vec<u32>> {
        Backend::argmax_rows(self, down(self, logits)?)
    }
    fn synchronize(&self) -> Result<()> {
        Backend::synchronize(self)
    }
    fn scoped(&self, f: &mut (dyn FnMut() + Send)) {
        Backend::scoped(self, f)
    }
    fn prepare_step<'a>(&self, step: &'a Step<'a>) -> Result<StepInput<'a>> {
        Backend::prepare_step(self, step)
    }
    fn rope_step(&self, x: &DynTensor, input: &StepInput<'_>, spec: &RopeSpec) -> Result<DynTensor> {
        Backend::rope_step(self, down(self, x)?, input, spec).map(wrap::<B>)
    }
    fn attention_step(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        input: &StepInput<'_>,
        spec: &AttentionSpec,
    ) -> Result<DynTensor> {
        let kv = down_kv::<B>(self, kv)?;
        Backend::attention_step(self, down(self, q)?, down(self, k)?, down(self, v)?, kv, input, spec).map(wrap::<B>)
    }
    fn rope_attention_step(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        input: &StepInput<'_>,
        rope: &RopeSpec,
        spec: &AttentionSpec,
    ) -> Result<DynTensor> {
        let kv = down_kv::<B>(self, kv)?;
        let (q, k, v) = (down(self, q)?, down(self, k)?, down(self, v)?);
        Backend::rope_attention_step(self, q, k, v, kv, input, rope, spec).map(wrap::<B>)
    }
    fn linears(&self, x: &DynTensor, layers: &[(&DynTensor, Option<&DynTensor>)]) -> Result<Vec<DynTensor>> {
        let layers =
            layers.iter().map(|(w, b)| Ok((down(self, w)?, down_opt(self, *b)?))).collect::<Result<Vec<_>>>()?;
        Ok(Backend::linears(self, down(self, x)?, &layers)?.into_iter().map(wrap::<B>).collect())
    }
    fn gated_linear(&self, x: &DynTensor, gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor> {
        Backend::gated_linear(self, down(self, x)?, down(self, gate)?, down(self, up)?, op).map(wrap::<B>)
    }
    fn add_rms_norm(
        &self,
        x: &DynTensor,
        y: &DynTensor,
        weight: Option<&DynTensor>,
        eps: f32,
    ) -> Result<(DynTensor, DynTensor)> {
        let (sum, normed) = Backend::add_rms_norm(self, down(self, x)?, down(self, y)?, down_opt(self, weight)?, eps)?;
        Ok((wrap::<B>(sum), wrap::<B>(normed)))
    }
    fn embedding(&self, table: &DynTensor, ids: &[u32]) -> Result<DynTensor> {
        Backend::embedding(self, down(self, table)?, ids).map(wrap::<B>)
    }
    fn linear(&self, x: &DynTensor, w: &DynTensor, bias: Option<&DynTensor>) -> Result<DynTensor> {
        Backend::linear(self, down(self, x)?, down(self, w)?, down_opt(self, bias)?).map(wrap::<B>)
    }
    fn add(&self, a: &DynTensor, b: &DynTensor) -> Result<DynTensor> {
        Backend::add(self, down(self, a)?, down(self, b)?).map(wrap::<B>)
    }
    fn mul(&self, a: &DynTensor, b: &DynTensor) -> Result<DynTensor> {
        Backend::mul(self, down(self, a)?, down(self, b)?).map(wrap::<B>)
    }
    fn unary(&self, x: &DynTensor, op: UnaryOp) -> Result<DynTensor> {
        Backend::unary(self, down(self, x)?, op).map(wrap::<B>)
    }
    fn gated(&self, gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor> {
        Backend::gated(self, down(self, gate)?, down(self, up)?, op).map(wrap::<B>)
    }
    fn layer_norm(&self, x: &DynTensor, w: &DynTensor, b: &DynTensor, eps: f32) -> Result<DynTensor> {
        Backend::layer_norm(self, down(self, x)?, down(self, w)?, down(self, b)?, eps).map(wrap::<B>)
    }
    fn rms_norm(&self, x: &DynTensor, w: Option<&DynTensor>, eps: f32) -> Result<DynTensor> {
        Backend::rms_norm(self, down(self, x)?, down_opt(self, w)?, eps).map(wrap::<B>)
    }
    fn rope(&self, x: &DynTensor, positions: &[usize], spec: &RopeSpec) -> Result<DynTensor> {
        Backend::rope(self, down(self, x)?, positions, spec).map(wrap::<B>)
    }
    fn softmax(&self, x: &DynTensor) -> Result<DynTensor> {
        Backend::softmax(self, down(self, x)?).map(wrap::<B>)
    }
    fn narrow(&self, x: &DynTensor, dim: usize, start: usize, len: usize) -> Result<DynTensor> {
        Backend::narrow(self, down(self, x)?, dim, start, len).map(wrap::<B>)
    }
    fn reshape(&self, x: &DynTensor, shape: &[usize]) -> Result<DynTensor> {
        Backend::reshape(self, down(self, x)?, shape).map(wrap::<B>)
    }
    fn gather_rows(&self, x: &DynTensor, rows: &[usize]) -> Result<DynTensor> {
        Backend::gather_rows(self, down(self, x)?, rows).map(wrap::<B>)
    }
    fn new_kv(&self, spec: &KvSpec) -> Result<DynKv> {
        Ok(DynKv(Box::new(Backend::new_kv(self, spec)?)))
    }
    fn attention(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<DynTensor> {
        let kv = down_kv::<B>(self, kv)?;
        Backend::attention(self, down(self, q)?, down(self, k)?, down(self, v)?, kv, spans, spec).map(wrap::<B>)
    }
}

/// A backend chosen at run time. Cloning shares the backend.
#[derive(Clone)]
pub struct DynBackend(Arc<dyn ErasedBackend>);

impl DynBackend {
    /// Erases a concrete backend.
    pub fn new<B: Backend>(backend: B) -> Self {
        if let Some(already) = (&backend as &dyn Any).downcast_ref::<DynBackend>() {
            return already.clone();
        }
        Self(Arc::new(backend))
    }
}

impl std::fmt::Debug for DynBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DynBackend({})", self.0.name())
    }
}

impl Backend for DynBackend {
    type Tensor = DynTensor;
    type KvBuffer = DynKv;

    fn name(&self) -> &str {
        self.0.name()
    }
    fn weight(&self, view: &WeightView) -> Result<DynTensor> {
        self.0.weight(view)
    }
    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<DynTensor> {
        self.0.upload(values, shape)
    }
    fn to_host(&self, x: &DynTensor) -> Result<Vec<f32>> {
        self.0.to_host(x)
    }
    fn argmax_rows(&self, logits: &DynTensor) -> Result<Vec<u32>> {
        self.0.argmax_rows(logits)
    }
    fn synchronize(&self) -> Result<()> {
        self.0.synchronize()
    }
    fn scoped(&self, f: &mut (dyn FnMut() + Send)) {
        self.0.scoped(f)
    }
    fn prepare_step<'a>(&self, step: &'a Step<'a>) -> Result<StepInput<'a>> {
        self.0.prepare_step(step)
    }
    fn rope_step(&self, x: &DynTensor, input: &StepInput<'_>, spec: &RopeSpec) -> Result<DynTensor> {
        self.0.rope_step(x, input, spec)
    }
    fn attention_step(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        input: &StepInput<'_>,
        spec: &AttentionSpec,
    ) -> Result<DynTensor> {
        self.0.attention_step(q, k, v, kv, input, spec)
    }
    fn rope_attention_step(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        input: &StepInput<'_>,
        rope: &RopeSpec,
        spec: &AttentionSpec,
    ) -> Result<DynTensor> {
        self.0.rope_attention_step(q, k, v, kv, input, rope, spec)
    }
    fn linears(&self, x: &DynTensor, layers: &[(&DynTensor, Option<&DynTensor>)]) -> Result<Vec<DynTensor>> {
        self.0.linears(x, layers)
    }
    fn gated_linear(&self, x: &DynTensor, gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor> {
        self.0.gated_linear(x, gate, up, op)
    }
    fn add_rms_norm(
        &self,
        x: &DynTensor,
        y: &DynTensor,
        weight: Option<&DynTensor>,
        eps: f32,
    ) -> Result<(DynTensor, DynTensor)> {
        self.0.add_rms_norm(x, y, weight, eps)
    }
    fn embedding(&self, table: &DynTensor, ids: &[u32]) -> Result<DynTensor> {
        self.0.embedding(table, ids)
    }
    fn linear(&self, x: &DynTensor, w: &DynTensor, bias: Option<&DynTensor>) -> Result<DynTensor> {
        self.0.linear(x, w, bias)
    }
    fn add(&self, a: &DynTensor, b: &DynTensor) -> Result<DynTensor> {
        self.0.add(a, b)
    }
    fn mul(&self, a: &DynTensor, b: &DynTensor) -> Result<DynTensor> {
        self.0.mul(a, b)
    }
    fn unary(&self, x: &DynTensor, op: UnaryOp) -> Result<DynTensor> {
        self.0.unary(x, op)
    }
    fn gated(&self, gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor> {
        self.0.gated(gate, up, op)
    }
    fn layer_norm(&self, x: &DynTensor, w: &DynTensor, b: &DynTensor, eps: f32) -> Result<DynTensor> {
        self.0.layer_norm(x, w, b, eps)
    }
    fn rms_norm(&self, x: &DynTensor, w: Option<&DynTensor>, eps: f32) -> Result<DynTensor> {
        self.0.rms_norm(x, w, eps)
    }
    fn rope(&self, x: &DynTensor, positions: &[usize], spec: &RopeSpec) -> Result<DynTensor> {
        self.0.rope(x, positions, spec)
    }
    fn softmax(&self, x: &DynTensor) -> Result<DynTensor> {
        self.0.softmax(x)
    }
    fn narrow(&self, x: &DynTensor, dim: usize, start: usize, len: usize) -> Result<DynTensor> {
        self.0.narrow(x, dim, start, len)
    }
    fn reshape(&self, x: &DynTensor, shape: &[usize]) -> Result<DynTensor> {
        self.0.reshape(x, shape)
    }
    fn gather_rows(&self, x: &DynTensor, rows: &[usize]) -> Result<DynTensor> {
        self.0.gather_rows(x, rows)
    }
    fn new_kv(&self, spec: &KvSpec) -> Result<DynKv> {
        self.0.new_kv(spec)
    }
    fn attention(
        &self,
        q: &DynTensor,
        k: &DynTensor,
        v: &DynTensor,
        kv: &mut DynKv,
        spans: &[SeqSpan],
        spec: &AttentionSpec,
    ) -> Result<DynTensor> {
        self.0.attention(q, k, v, kv, spans, spec)
    }
}
