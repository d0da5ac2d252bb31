//! Type erasure for backends: [`DynBackend`] is a [`Backend`] that forwards every op to any other
//! backend chosen at run time.
//!
//! Models are generic over `B: Backend`, so a program that knows its backend uses it directly,
//! with no dispatch. The model registry, which must work with backends chosen on the command
//! line, instantiates each model once with `DynBackend`; each op then costs one virtual call and
//! one type check (nanoseconds against kernels of microseconds). This keeps both sets open:
//! adding a model or a backend never touches a list of the other.
//!
//! The erased backend is generated from one list of ops (`erased_backend!`, at the end of this
//! file): adding an op to [`Backend`] is one line there. Every op of `Backend` must be in the
//! list, default-bodied ones included: one left out still compiles, but `DynBackend` then runs
//! the default body over erased tensors and never reaches a backend's override of it.

use std::any::Any;
use std::sync::Arc;

use crate::backend::{
    AttentionSpec, Backend, KvSpec, Qkv, RopeSpec, SeqSpan, StepInput, StepMemory, Support, TensorShape, UnaryOp,
};
use crate::kv_cache::Step;
use crate::op_profile::OpProfile;
use crate::{DType, Error, Result, WeightView};

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

/// A backend chosen at run time. Cloning shares the backend (and its profile, if any).
#[derive(Clone)]
pub struct DynBackend {
    inner: Arc<dyn ErasedBackend>,
    profile: Option<Arc<OpProfile>>,
}

impl DynBackend {
    /// Erases a concrete backend.
    pub fn new<B: Backend>(backend: B) -> Self {
        if let Some(already) = (&backend as &dyn Any).downcast_ref::<DynBackend>() {
            return already.clone();
        }
        Self { inner: Arc::new(backend), profile: None }
    }

    /// This backend, recording the host time of every op call into `profile`
    /// (`zoo bench --profile`); a model loaded onto it records its ops there.
    pub fn profiled(self, profile: Arc<OpProfile>) -> Self {
        Self { profile: Some(profile), ..self }
    }

    /// `call`, timed under `op` when this backend carries a profile.
    fn timed<T>(&self, op: &'static str, call: impl FnOnce() -> T) -> T {
        match &self.profile {
            Some(profile) => profile.time(op, call),
            None => call(),
        }
    }
}

impl std::fmt::Debug for DynBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DynBackend({})", self.inner.name())
    }
}

/// An argument of an erased op, turned into what backend `B`'s op takes: tensors and KV buffers
/// are downcast to `B`'s own types ([`Error::ForeignTensor`] if they are another backend's),
/// [`Host`] values pass unchanged.
trait Down<B: Backend> {
    /// What the call to `B`'s op borrows its argument from ([`Lend`]).
    type Held: Lend;
    /// Downcasts (or passes on) the erased argument.
    fn down(self, backend: &B) -> Result<Self::Held>;
}

/// Lends a [`Down::Held`] to the call as the argument itself: a copy of a reference or value,
/// a reborrow of a `&mut`, or a slice of a list that [`Down::down`] built (`linears`' layers).
trait Lend {
    /// The argument.
    type Arg<'h>
    where
        Self: 'h;
    /// The argument, borrowed from `self` where it must be.
    fn lend(&mut self) -> Self::Arg<'_>;
}

/// Host data that ops take or return as it is (specs, ids, positions, host values): it crosses
/// the erasure unchanged. A new op taking a type that no op took before adds it here.
trait Host {}

impl Host for f32 {}
impl Host for usize {}
impl Host for UnaryOp {}
impl Host for Vec<f32> {}
impl Host for Vec<u32> {}
impl Host for &[f32] {}
impl Host for &[u32] {}
impl Host for &[usize] {}
impl Host for &[SeqSpan] {}
impl Host for &RopeSpec {}
impl Host for &AttentionSpec {}
impl Host for &KvSpec {}
impl Host for &WeightView {}
impl Host for &StepInput<'_> {}

impl<B: Backend, T: Host + Lend> Down<B> for T {
    type Held = T;
    fn down(self, _: &B) -> Result<T> {
        Ok(self)
    }
}

fn foreign<B: Backend>(backend: &B) -> Error {
    Error::ForeignTensor { backend: backend.name().to_string() }
}

impl<'a, B: Backend> Down<B> for &'a DynTensor {
    type Held = &'a B::Tensor;
    fn down(self, backend: &B) -> Result<&'a B::Tensor> {
        self.0.as_any().downcast_ref().ok_or_else(|| foreign(backend))
    }
}

impl<'a, B: Backend> Down<B> for Qkv<'a, DynTensor> {
    type Held = Qkv<'a, B::Tensor>;
    fn down(self, backend: &B) -> Result<Qkv<'a, B::Tensor>> {
        Ok(Qkv::new(self.q.down(backend)?, self.k.down(backend)?, self.v.down(backend)?))
    }
}

impl<'a, B: Backend> Down<B> for Option<&'a DynTensor> {
    type Held = Option<&'a B::Tensor>;
    fn down(self, backend: &B) -> Result<Option<&'a B::Tensor>> {
        self.map(|t| t.down(backend)).transpose()
    }
}

impl<'a, B: Backend> Down<B> for &'a mut DynKv {
    type Held = &'a mut B::KvBuffer;
    fn down(self, backend: &B) -> Result<&'a mut B::KvBuffer> {
        self.0.downcast_mut().ok_or_else(|| foreign(backend))
    }
}

impl<'a, 'b, B: Backend> Down<B> for &[(&'a DynTensor, Option<&'b DynTensor>)] {
    type Held = Vec<(&'a B::Tensor, Option<&'b B::Tensor>)>;
    fn down(self, backend: &B) -> Result<Self::Held> {
        self.iter().map(|&(w, b)| Ok((w.down(backend)?, b.down(backend)?))).collect()
    }
}

/// Values lent by copy.
macro_rules! lend_copies {
    ($($t:ty),*) => {$(
        impl Lend for $t {
            type Arg<'h> = $t;
            fn lend(&mut self) -> $t {
                *self
            }
        }
    )*};
}

lend_copies!(f32, usize, UnaryOp);

impl<'a, T: ?Sized> Lend for &'a T {
    type Arg<'h>
        = &'a T
    where
        Self: 'h;
    fn lend(&mut self) -> &'a T {
        self
    }
}

impl<'a, T> Lend for Qkv<'a, T> {
    type Arg<'h>
        = Qkv<'a, T>
    where
        Self: 'h;
    fn lend(&mut self) -> Qkv<'a, T> {
        *self
    }
}

impl<'a, T> Lend for Option<&'a T> {
    type Arg<'h>
        = Option<&'a T>
    where
        Self: 'h;
    fn lend(&mut self) -> Option<&'a T> {
        *self
    }
}

impl<T: ?Sized> Lend for &mut T {
    type Arg<'h>
        = &'h mut T
    where
        Self: 'h;
    fn lend(&mut self) -> &mut T {
        self
    }
}

impl<T> Lend for Vec<T> {
    type Arg<'h>
        = &'h [T]
    where
        Self: 'h;
    fn lend(&mut self) -> &[T] {
        self
    }
}

/// A result of an erased op, made from what backend `B`'s op returned: tensors and KV buffers
/// are wrapped, [`Host`] values pass unchanged.
trait Erase<B: Backend> {
    /// What `B`'s op returns.
    type Concrete;
    /// Wraps the result.
    fn erase(concrete: Self::Concrete) -> Self;
}

impl<B: Backend, T: Host> Erase<B> for T {
    type Concrete = T;
    fn erase(concrete: T) -> T {
        concrete
    }
}

impl<B: Backend> Erase<B> for DynTensor {
    type Concrete = B::Tensor;
    fn erase(t: B::Tensor) -> Self {
        DynTensor(Arc::new(t))
    }
}

impl<B: Backend> Erase<B> for DynKv {
    type Concrete = B::KvBuffer;
    fn erase(kv: B::KvBuffer) -> Self {
        DynKv(Box::new(kv))
    }
}

impl<B: Backend> Erase<B> for Vec<DynTensor> {
    type Concrete = Vec<B::Tensor>;
    fn erase(ts: Vec<B::Tensor>) -> Self {
        ts.into_iter().map(<DynTensor as Erase<B>>::erase).collect()
    }
}

impl<B: Backend, X: Erase<B>, Y: Erase<B>> Erase<B> for (X, Y) {
    type Concrete = (X::Concrete, Y::Concrete);
    fn erase((x, y): Self::Concrete) -> Self {
        (X::erase(x), Y::erase(y))
    }
}

/// Generates the erased backend from one list of [`Backend`]'s ops, written as in `Backend`
/// with [`DynTensor`] for `Self::Tensor` and [`DynKv`] for `Self::KvBuffer`. It emits:
///
/// 1. `ErasedBackend`, the object-safe mirror of `Backend` that a [`DynBackend`] holds (no
///    associated types: every op takes and returns the erased types);
/// 2. `impl<B: Backend> ErasedBackend for B`, which calls `B`'s own op, so a backend's override
///    of a default-bodied op is what runs;
/// 3. `impl Backend for DynBackend`, forwarding every op to the wrapped backend's
///    `ErasedBackend` methods.
///
/// `host` ops take and return no tensors: (2) passes their arguments and results unchanged.
/// `tensor` ops return a `Result`: (2) turns each argument into `B`'s with [`Down`] (a tensor of
/// another backend is [`Error::ForeignTensor`]) and wraps the result with [`Erase`].
macro_rules! erased_backend {
    (
        host { $( fn $h:ident $(<$hl:lifetime>)? ($($ha:ident: $hty:ty),* $(,)?) $(-> $hret:ty)?; )* }
        tensor { $( fn $t:ident ($($ta:ident: $tty:ty),* $(,)?) -> Result<$tret:ty>; )* }
    ) => {
        /// The object-safe mirror of [`Backend`], implemented for every backend.
        #[allow(clippy::too_many_arguments)]
        trait ErasedBackend: Send + Sync + ErasedRunStep {
            $( fn $h $(<$hl>)? (&self, $($ha: $hty),*) $(-> $hret)?; )*
            $( fn $t(&self, $($ta: $tty),*) -> Result<$tret>; )*
        }

        impl<B: Backend> ErasedBackend for B {
            $(
                fn $h $(<$hl>)? (&self, $($ha: $hty),*) $(-> $hret)? {
                    Backend::$h(self, $($ha),*)
                }
            )*
            $(
                fn $t(&self, $($ta: $tty),*) -> Result<$tret> {
                    $( let mut $ta = <$tty as Down<B>>::down($ta, self)?; )*
                    let out = Backend::$t(self, $($ta.lend()),*)?;
                    Ok(<$tret as Erase<B>>::erase(out))
                }
            )*
        }

        impl Backend for DynBackend {
            type Tensor = DynTensor;
            type KvBuffer = DynKv;

            fn run_step(
                &self,
                memory: &mut StepMemory,
                step: &Step<'_>,
                run: &mut dyn FnMut() -> Result<DynTensor>,
            ) -> Result<DynTensor> {
                // A profile times each op of the step, so the step runs op by op (no replay).
                match self.profile {
                    Some(_) => run(),
                    None => self.inner.run_step_erased(memory, step, run),
                }
            }

            $(
                fn $h $(<$hl>)? (&self, $($ha: $hty),*) $(-> $hret)? {
                    self.timed(stringify!($h), || self.inner.$h($($ha),*))
                }
            )*
            $(
                fn $t(&self, $($ta: $tty),*) -> Result<$tret> {
                    self.timed(stringify!($t), || self.inner.$t($($ta),*))
                }
            )*
        }
    };
}

/// [`Backend::run_step`] made object-safe: the step's closure computes erased tensors, which
/// the inner backend gets back as its own.
trait ErasedRunStep {
    fn run_step_erased(
        &self,
        memory: &mut StepMemory,
        step: &Step<'_>,
        run: &mut dyn FnMut() -> Result<DynTensor>,
    ) -> Result<DynTensor>;
}

impl<B: Backend> ErasedRunStep for B {
    fn run_step_erased(
        &self,
        memory: &mut StepMemory,
        step: &Step<'_>,
        run: &mut dyn FnMut() -> Result<DynTensor>,
    ) -> Result<DynTensor> {
        let out = Backend::run_step(self, memory, step, &mut || {
            let t = run()?;
            <&DynTensor as Down<B>>::down(&t, self).cloned()
        })?;
        Ok(<DynTensor as Erase<B>>::erase(out))
    }
}

// Every op of `Backend`, one entry each: an op left out would never reach a backend's override.
erased_backend! {
    host {
        fn name() -> &str;
        fn supports(dtype: DType) -> Support;
        fn startup_note() -> Option<String>;
        fn device_description() -> Option<String>;
        fn launches() -> Option<u64>;
        fn take_notes() -> Vec<String>;
        fn synchronize() -> Result<()>;
        fn scoped(rows: usize, f: &mut (dyn FnMut() + Send));
        fn prepare_step<'a>(step: &'a Step<'a>) -> Result<StepInput<'a>>;
    }
    tensor {
        fn weight(view: &WeightView) -> Result<DynTensor>;
        fn upload(values: &[f32], shape: &[usize]) -> Result<DynTensor>;
        fn to_host(x: &DynTensor) -> Result<Vec<f32>>;
        fn argmax_rows(logits: &DynTensor) -> Result<Vec<u32>>;
        fn rope_step(x: &DynTensor, input: &StepInput<'_>, spec: &RopeSpec) -> Result<DynTensor>;
        fn attention_step(qkv: Qkv<'_, DynTensor>, kv: &mut DynKv, input: &StepInput<'_>, spec: &AttentionSpec)
            -> Result<DynTensor>;
        fn rope_attention_step(qkv: Qkv<'_, DynTensor>, kv: &mut DynKv, input: &StepInput<'_>, rope: &RopeSpec,
            spec: &AttentionSpec) -> Result<DynTensor>;
        fn linears(x: &DynTensor, layers: &[(&DynTensor, Option<&DynTensor>)]) -> Result<Vec<DynTensor>>;
        fn gated_linear(x: &DynTensor, gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor>;
        fn rms_norm_linears(x: &DynTensor, weight: Option<&DynTensor>, eps: f32,
            layers: &[(&DynTensor, Option<&DynTensor>)]) -> Result<Vec<DynTensor>>;
        fn rms_norm_gated_linear(x: &DynTensor, weight: Option<&DynTensor>, eps: f32, gate: &DynTensor,
            up: &DynTensor, op: UnaryOp) -> Result<DynTensor>;
        fn linear_add(x: &DynTensor, w: &DynTensor, bias: Option<&DynTensor>, residual: &DynTensor)
            -> Result<DynTensor>;
        fn add_rms_norm(x: &DynTensor, y: &DynTensor, weight: Option<&DynTensor>, eps: f32)
            -> Result<(DynTensor, DynTensor)>;
        fn embedding(table: &DynTensor, ids: &[u32]) -> Result<DynTensor>;
        fn embedding_step(table: &DynTensor, input: &StepInput<'_>) -> Result<DynTensor>;
        fn linear(x: &DynTensor, w: &DynTensor, bias: Option<&DynTensor>) -> Result<DynTensor>;
        fn add(a: &DynTensor, b: &DynTensor) -> Result<DynTensor>;
        fn mul(a: &DynTensor, b: &DynTensor) -> Result<DynTensor>;
        fn unary(x: &DynTensor, op: UnaryOp) -> Result<DynTensor>;
        fn gated(gate: &DynTensor, up: &DynTensor, op: UnaryOp) -> Result<DynTensor>;
        fn layer_norm(x: &DynTensor, w: &DynTensor, b: &DynTensor, eps: f32) -> Result<DynTensor>;
        fn rms_norm(x: &DynTensor, w: Option<&DynTensor>, eps: f32) -> Result<DynTensor>;
        fn rope(x: &DynTensor, positions: &[usize], spec: &RopeSpec) -> Result<DynTensor>;
        fn softmax(x: &DynTensor) -> Result<DynTensor>;
        fn narrow(x: &DynTensor, dim: usize, start: usize, len: usize) -> Result<DynTensor>;
        fn reshape(x: &DynTensor, shape: &[usize]) -> Result<DynTensor>;
        fn gather_rows(x: &DynTensor, rows: &[usize]) -> Result<DynTensor>;
        fn new_kv(spec: &KvSpec) -> Result<DynKv>;
        fn attention(qkv: Qkv<'_, DynTensor>, kv: &mut DynKv, spans: &[SeqSpan], spec: &AttentionSpec)
            -> Result<DynTensor>;
    }
}

#[cfg(test)]
mod tests;
