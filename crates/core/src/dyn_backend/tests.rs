//! Tests of the erased backend over a probe backend that records which of its ops run: overrides
//! of default-bodied ops, `scoped`, `run_step` and `supports` must be reached through
//! [`DynBackend`].

use std::sync::{Arc, Mutex};

use super::{DynBackend, DynKv, DynTensor};
use crate::backend::{
    scoped, AttentionSpec, Backend, KvSpec, Qkv, RopeSpec, SeqSpan, StepMemory, Support, TensorShape, UnaryOp,
};
use crate::kv_cache::Step;
use crate::op_profile::OpProfile;
use crate::{DType, Error, Result, WeightView};

/// The probe's tensor: values under a shape.
#[derive(Clone, Debug)]
struct Values {
    values: Vec<f32>,
    shape: Vec<usize>,
}

impl TensorShape for Values {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
}

/// A backend that records the ops it runs. It overrides the default-bodied `add_rms_norm`,
/// `scoped` and `supports`, and keeps the default of every other one.
#[derive(Clone, Default)]
struct Probe {
    calls: Arc<Mutex<Vec<&'static str>>>,
    /// `scoped` returns without running its closure (a broken execution context).
    drops_scoped_work: bool,
}

impl Probe {
    fn record(&self, op: &'static str) {
        self.calls.lock().unwrap().push(op);
    }

    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

fn unused<T>(op: &str) -> Result<T> {
    Err(Error::Backend { backend: "probe".into(), message: format!("{op} is not used by these tests") })
}

impl Backend for Probe {
    type Tensor = Values;
    type KvBuffer = ();

    fn name(&self) -> &str {
        "probe"
    }
    fn supports(&self, dtype: DType) -> Support {
        match dtype {
            DType::F32 | DType::Q8_0 => Support::Native,
            DType::I8 => Support::Unsupported,
            _ => Support::Converted,
        }
    }
    fn scoped(&self, _rows: usize, f: &mut (dyn FnMut() + Send)) {
        self.record("scoped");
        if !self.drops_scoped_work {
            f()
        }
    }
    /// Runs the first step of a memory, then "replays": returns the count of steps so far.
    fn run_step(
        &self,
        memory: &mut StepMemory,
        _: &Step<'_>,
        run: &mut dyn FnMut() -> Result<Values>,
    ) -> Result<Values> {
        self.record("run_step");
        let steps = memory.0.get_or_insert_with(|| Box::new(0u32)).downcast_mut::<u32>().expect("the probe's memory");
        *steps += 1;
        if *steps > 1 {
            return Ok(Values { values: vec![*steps as f32], shape: vec![1, 1] });
        }
        run()
    }
    fn weight(&self, view: &WeightView) -> Result<Values> {
        Ok(Values { values: view.to_f32_vec(), shape: view.shape.clone() })
    }
    fn upload(&self, values: &[f32], shape: &[usize]) -> Result<Values> {
        Ok(Values { values: values.to_vec(), shape: shape.to_vec() })
    }
    fn to_host(&self, x: &Values) -> Result<Vec<f32>> {
        Ok(x.values.clone())
    }
    fn add_rms_norm(&self, x: &Values, y: &Values, _: Option<&Values>, _: f32) -> Result<(Values, Values)> {
        self.record("add_rms_norm");
        Ok((self.add(x, y)?, x.clone()))
    }
    fn add(&self, a: &Values, b: &Values) -> Result<Values> {
        let values = a.values.iter().zip(&b.values).map(|(a, b)| a + b).collect();
        Ok(Values { values, shape: a.shape.clone() })
    }
    fn linear(&self, x: &Values, _: &Values, _: Option<&Values>) -> Result<Values> {
        self.record("linear");
        Ok(x.clone())
    }
    fn embedding(&self, _: &Values, _: &[u32]) -> Result<Values> {
        unused("embedding")
    }
    fn mul(&self, _: &Values, _: &Values) -> Result<Values> {
        unused("mul")
    }
    fn unary(&self, _: &Values, _: UnaryOp) -> Result<Values> {
        unused("unary")
    }
    fn gated(&self, _: &Values, _: &Values, _: UnaryOp) -> Result<Values> {
        unused("gated")
    }
    fn layer_norm(&self, _: &Values, _: &Values, _: &Values, _: f32) -> Result<Values> {
        unused("layer_norm")
    }
    fn rms_norm(&self, _: &Values, _: Option<&Values>, _: f32) -> Result<Values> {
        unused("rms_norm")
    }
    fn rope(&self, _: &Values, _: &[usize], _: &RopeSpec) -> Result<Values> {
        unused("rope")
    }
    fn softmax(&self, _: &Values) -> Result<Values> {
        unused("softmax")
    }
    fn narrow(&self, _: &Values, _: usize, _: usize, _: usize) -> Result<Values> {
        unused("narrow")
    }
    fn reshape(&self, _: &Values, _: &[usize]) -> Result<Values> {
        unused("reshape")
    }
    fn gather_rows(&self, _: &Values, _: &[usize]) -> Result<Values> {
        unused("gather_rows")
    }
    fn new_kv(&self, _: &KvSpec) -> Result<()> {
        Ok(())
    }
    fn attention(&self, qkv: Qkv<'_, Values>, _: &mut (), _: &[SeqSpan], _: &AttentionSpec) -> Result<Values> {
        self.record("attention");
        Ok(qkv.q.clone())
    }
}

/// A tensor of a backend other than the probe.
struct Alien;

impl TensorShape for Alien {
    fn shape(&self) -> &[usize] {
        &[1, 2]
    }
}

fn row(backend: &DynBackend) -> DynTensor {
    backend.upload(&[1.0, 2.0], &[1, 2]).unwrap()
}

const SPEC: AttentionSpec = AttentionSpec { n_heads: 1, n_kv_heads: 1, head_dim: 2, scale: 1.0, window: None };

#[test]
fn an_override_of_a_default_bodied_op_is_reached_through_dyn_backend() {
    let probe = Probe::default();
    let backend = DynBackend::new(probe.clone());
    let x = row(&backend);
    let (sum, normed) = backend.add_rms_norm(&x, &x, None, 1e-5).unwrap();
    assert_eq!(probe.calls(), ["add_rms_norm"], "the override ran, not the default's add and rms_norm");
    assert_eq!(backend.to_host(&sum).unwrap(), [2.0, 4.0]);
    assert_eq!(backend.to_host(&normed).unwrap(), [1.0, 2.0]);
}

#[test]
fn a_default_bodied_op_without_override_runs_its_default_on_the_backend() {
    let probe = Probe::default();
    let backend = DynBackend::new(probe.clone());
    let x = row(&backend);
    let out = backend.linears(&x, &[(&x, None), (&x, Some(&x))]).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(probe.calls(), ["linear", "linear"]);
}

#[test]
fn kv_buffers_cross_the_erasure() {
    let probe = Probe::default();
    let backend = DynBackend::new(probe.clone());
    let x = row(&backend);
    let mut kv = backend.new_kv(&KvSpec { slots: 1, n_kv_heads: 1, head_dim: 2, capacity: 4 }).unwrap();
    let spans = [SeqSpan { slot: 0, start: 0, len: 1, past: 0 }];
    let out = backend.attention(Qkv::new(&x, &x, &x), &mut kv, &spans, &SPEC).unwrap();
    assert_eq!(TensorShape::shape(&out), [1, 2]);
    assert_eq!(probe.calls(), ["attention"]);
}

#[test]
fn another_backends_tensor_or_kv_buffer_is_an_error() {
    let backend = DynBackend::new(Probe::default());
    let x = row(&backend);
    let alien = DynTensor(Arc::new(Alien));
    let message = "tensor belongs to a different backend than `probe`";
    assert_eq!(backend.add(&x, &alien).unwrap_err().to_string(), message);
    assert_eq!(backend.linear(&x, &x, Some(&alien)).unwrap_err().to_string(), message);
    assert_eq!(backend.linears(&x, &[(&x, None), (&alien, None)]).unwrap_err().to_string(), message);
    let mut kv = DynKv(Box::new(0u8));
    let spans = [SeqSpan { slot: 0, start: 0, len: 1, past: 0 }];
    assert_eq!(backend.attention(Qkv::new(&x, &x, &x), &mut kv, &spans, &SPEC).unwrap_err().to_string(), message);
}

#[test]
fn scoped_returns_the_closures_value_from_the_backends_context() {
    let probe = Probe::default();
    let backend = DynBackend::new(probe.clone());
    let mut steps = 0;
    let value = scoped(&backend, 1, || {
        steps += 1;
        Ok(steps * 10)
    });
    assert_eq!(value.unwrap(), 10);
    assert_eq!(probe.calls(), ["scoped"], "the probe's own `scoped` ran the closure");
    let failed: Result<()> = scoped(&backend, 1, || unused("step"));
    assert!(failed.unwrap_err().to_string().contains("step is not used"), "the closure's error is returned");
}

#[test]
fn scoped_reports_work_the_backend_never_ran() {
    let backend = DynBackend::new(Probe { drops_scoped_work: true, ..Probe::default() });
    let err = scoped(&backend, 1, || Ok(1)).unwrap_err();
    assert!(matches!(err, Error::Backend { ref backend, .. } if backend == "probe"), "{err}");
}

#[test]
fn supports_is_the_wrapped_backends_answer() {
    let probe = Probe::default();
    let backend = DynBackend::new(probe.clone());
    for dtype in DType::ALL {
        assert_eq!(backend.supports(dtype), probe.supports(dtype), "{dtype}");
    }
    assert_eq!(backend.supports(DType::Q8_0), Support::Native, "not the default's answer");
    assert_eq!(backend.supports(DType::I8), Support::Unsupported);
}

#[test]
fn wrapping_a_dyn_backend_again_shares_it() {
    let probe = Probe::default();
    let backend = DynBackend::new(DynBackend::new(probe.clone()));
    assert_eq!(format!("{backend:?}"), "DynBackend(probe)");
    backend.add_rms_norm(&row(&backend), &row(&backend), None, 1e-5).unwrap();
    assert_eq!(probe.calls(), ["add_rms_norm"]);
}

#[test]
fn run_step_reaches_the_backend_with_its_memory_unless_profiled() {
    let probe = Probe::default();
    let backend = DynBackend::new(probe.clone());
    let tokens = [1u32];
    let step = Step { tokens: &tokens, spans: vec![], positions: vec![0], logit_rows: None };
    let mut memory = StepMemory::default();
    let mut runs = 0;
    let mut run = || {
        runs += 1;
        backend.upload(&[1.0, 2.0], &[1, 2])
    };
    let first = backend.run_step(&mut memory, &step, &mut run).unwrap();
    assert_eq!(backend.to_host(&first).unwrap(), [1.0, 2.0], "the closure's tensor crosses the erasure");
    let second = backend.run_step(&mut memory, &step, &mut run).unwrap();
    assert_eq!(backend.to_host(&second).unwrap(), [2.0], "the probe answered from its memory");
    assert_eq!(probe.calls(), ["run_step", "run_step"]);
    let profiled = backend.clone().profiled(Arc::new(OpProfile::default()));
    profiled.run_step(&mut memory, &step, &mut run).unwrap();
    assert_eq!(probe.calls().len(), 2, "a profiled step runs op by op, not through the backend");
    assert_eq!(runs, 2);
}
