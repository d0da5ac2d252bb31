//! Decode steps recorded as CUDA graphs and replayed (`candle-cuda`'s [`Backend::run_step`]).
//!
//! A decode step of a small model is bound by the host: candle launches each of its ~550
//! kernels (Qwen2.5-0.5B) through its own op path, several microseconds each, against a few
//! microseconds of GPU work. candle 0.11 can run its kernels under CUDA stream capture: kernel
//! parameters it would upload per launch (shapes and strides of strided tensors) come from a
//! cache it fills while that cache is switched on, and a capture that would need anything else
//! from the host fails instead of freezing it. So a step that reads its inputs only from
//! [`FixedInputs`] (token ids and positions written into buffers that stay put; `fixed.rs`)
//! is recorded by running the model's own op-by-op step under capture, and a later step of the
//! same shape (the same slots, keys within the same bucket) writes its ids and positions and
//! launches the graph: one call instead of a launch per kernel.
//!
//! Checks: the step that records runs first as usual (filling candle's parameter cache), then
//! under capture; the graph is launched and must give the same logits bit for bit. The next step
//! of that shape replays the graph and also runs as usual, and the two must again agree bit for
//! bit (a value the recording froze, such as a position uploaded from the host, would differ
//! there), before any step relies on the graph alone. A difference or a failed capture turns
//! graphs off for that KV cache, with a note; a model whose step reads host inputs (GPT-2's
//! learned positions) runs op by op without one. `ZOO_CUDA_GRAPHS=0` turns them off. Graphs are kept with the KV cache
//! ([`StepMemory`]) and dropped with it; each holds the RoPE tables it reads.

use std::sync::Arc;

use candle_core::cuda_backend::cudarc::driver::{sys, CudaGraph};
use candle_core::{CudaDevice, Device, Tensor};
use zoo_core::recordings::{self, Recordings};
use zoo_core::{Backend, Error, Result, Step, StepMemory};

use crate::error::CandleResult;
use crate::fixed::FixedInputs;
use crate::{first_line, Candle, CandleTensor};

/// The most rows a recorded step may have.
const MAX_ROWS: usize = 16;

/// Opens CUDA device `ordinal` for graph capture: on a stream of its own (the legacy default
/// stream cannot be captured), with cudarc's per-allocation event tracking off (a tensor's
/// events recorded during a capture could not be waited on after it; every op of this backend
/// runs on the one stream, which orders them).
pub(crate) fn open(ordinal: usize) -> candle_core::Result<Device> {
    let device = CudaDevice::new_with_stream(ordinal)?;
    // SAFETY: the backend uses this device's single stream for every op, so no tensor is used
    // on another stream, which is what event tracking guards against.
    unsafe { device.disable_event_tracking() };
    Ok(Device::Cuda(device))
}

/// What identifies a recorded step: its rows' slots, in order, and the keys attention reads.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Shape {
    slots: Vec<usize>,
    keys: usize,
}

/// One KV cache's graphs (zoo's one policy for recordings: `zoo_core::recordings`).
type Graphs = Recordings<Shape, Replay>;

/// A recorded step and what its replays read and write.
struct Replay {
    fixed: Arc<FixedInputs>,
    /// The recording's logits: every replay writes them again, in the same buffer (dropped
    /// before the graph).
    out: CandleTensor,
    graph: Graph,
    /// The RoPE tables the graph reads, held so that a table rebuilt for a longer context
    /// does not free them.
    _tables: Vec<Tensor>,
}

/// A recorded step.
struct Graph(CudaGraph);

// SAFETY: a graph is launched only through `&mut StepMemory`, so never from two threads at
// once, which is all CUDA asks of graph objects.
unsafe impl Send for Graph {}
// SAFETY: as above; no method is called through a shared reference.
unsafe impl Sync for Graph {}

/// Runs `step` by replaying a graph of its shape, recording one, or op by op (see the module
/// docs).
pub(crate) fn run_step(
    backend: &Candle,
    memory: &mut StepMemory,
    step: &Step<'_>,
    run: &mut dyn FnMut() -> Result<CandleTensor>,
) -> Result<CandleTensor> {
    let Some(shape) = replayable(step) else {
        return run();
    };
    let Some(graphs) = Graphs::of(memory).filter(|g| !g.is_off()) else {
        return run();
    };
    let replayed = match graphs.find(&shape) {
        Some(kept) if kept.checked => replay(&kept.graph, step),
        Some(_) => return check(backend, graphs, &shape, step, run),
        None => return record(backend, graphs, shape, step, run),
    };
    // A replay that fails leaves the step to the ops (which write the same cache row the graph
    // would have), and this cache to them from now on.
    replayed.or_else(|e| {
        turn_off(backend, graphs, &format!("a replay failed: {}", first_line(&e)));
        run()
    })
}

/// The shape of `step` when it is a decode step a graph can replay: every row one new token of
/// its own sequence, in order, logits for every row, and graphs not switched off.
fn replayable(step: &Step<'_>) -> Option<Shape> {
    let rows = step.tokens.len();
    let decode = step.spans.len() == rows && step.spans.iter().enumerate().all(|(i, s)| s.len == 1 && s.start == i);
    if rows == 0 || rows > MAX_ROWS || !decode || step.logit_rows.is_some() || !recordings::switched_on() {
        return None;
    }
    let slots = step.spans.iter().map(|s| s.slot).collect();
    Some(Shape { slots, keys: FixedInputs::keys_for(&step.spans) })
}

/// Writes `step`'s inputs into `recorded`'s buffers and launches its graph.
fn replay(recorded: &Replay, step: &Step<'_>) -> Result<CandleTensor> {
    recorded.fixed.write(step)?;
    recorded.graph.0.launch().map_err(|e| backend_error(format!("replaying a decode step: {e}")))?;
    Ok(recorded.out.clone())
}

/// The first replay of `shape`'s graph: replayed, then run as usual from the same inputs; the
/// graph is trusted from now on if both give the same logits, else graphs are turned off.
fn check(
    backend: &Candle,
    graphs: &mut Graphs,
    shape: &Shape,
    step: &Step<'_>,
    run: &mut dyn FnMut() -> Result<CandleTensor>,
) -> Result<CandleTensor> {
    let Some(kept) = graphs.find(shape) else {
        return run();
    };
    let replayed = replay(&kept.graph, step);
    let usual = backend.run_from(&kept.graph.fixed, run)?;
    match replayed {
        Ok(replayed) if same_bits(backend, &replayed, &usual)? => kept.checked = true,
        Ok(_) => turn_off(backend, graphs, "a replayed step differed from the same step run op by op"),
        Err(e) => turn_off(backend, graphs, &format!("a replay failed: {}", first_line(&e))),
    }
    Ok(usual)
}

/// Runs `step` as usual from fresh fixed inputs, then records it; keeps the graph if its
/// launch gives the same logits.
fn record(
    backend: &Candle,
    graphs: &mut Graphs,
    shape: Shape,
    step: &Step<'_>,
    run: &mut dyn FnMut() -> Result<CandleTensor>,
) -> Result<CandleTensor> {
    let cuda = backend.device.as_cuda_device().zoo()?;
    let fixed = Arc::new(FixedInputs::new(step.tokens.len(), shape.keys, &backend.device)?);
    fixed.write(step)?;
    let _cache = cuda.enable_cuda_graph_htod_cache();
    let usual = backend.run_from(&fixed, run)?;
    if !fixed.replayable() {
        // The model's step reads host inputs (GPT-2's positions): op by op is how it runs, so
        // there is nothing to tell the user.
        graphs.turn_off();
        return Ok(usual);
    }
    let (graph, out) = match capture(backend, cuda, &fixed, run) {
        Ok(recorded) => recorded,
        Err(reason) => {
            turn_off(backend, graphs, &reason);
            return Ok(usual);
        }
    };
    let graph = Graph(graph);
    if let Err(e) = graph.0.launch() {
        turn_off(backend, graphs, &format!("launching a recorded step failed: {e}"));
        return Ok(usual);
    }
    if !same_bits(backend, &usual, &out)? {
        turn_off(backend, graphs, "a recorded step differed from the same step run op by op");
        return Ok(usual);
    }
    let _tables = backend.rope_tables.held();
    graphs.keep(shape, Replay { fixed, out: out.clone(), graph, _tables }, false);
    Ok(out)
}

/// Runs `run` from `fixed` under stream capture: the graph and the logits tensor its launches
/// write, or why that failed.
fn capture(
    backend: &Candle,
    cuda: &CudaDevice,
    fixed: &Arc<FixedInputs>,
    run: &mut dyn FnMut() -> Result<CandleTensor>,
) -> std::result::Result<(CudaGraph, CandleTensor), String> {
    let stream = cuda.cuda_stream();
    stream
        .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(|e| format!("starting a capture failed: {e}"))?;
    let out = backend.run_from(fixed, run);
    // Ended whatever happened, so the stream leaves capture mode.
    let flags = sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH;
    let graph = stream.end_capture(flags);
    let out = out.map_err(|e| format!("recording a step failed: {}", first_line(&e)))?;
    match graph {
        Ok(Some(graph)) => Ok((graph, out)),
        Ok(None) => Err("recording a step made no graph".into()),
        Err(e) => Err(format!("recording a step failed: {e}")),
    }
}

/// Whether `a` and `b` hold the same values, bit for bit.
fn same_bits(backend: &Candle, a: &CandleTensor, b: &CandleTensor) -> Result<bool> {
    let (a, b) = (backend.to_host(a)?, backend.to_host(b)?);
    Ok(a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()))
}

/// Drops `graphs`' recordings and runs the cache's steps op by op from now on, telling the user
/// why.
fn turn_off(backend: &Candle, graphs: &mut Graphs, reason: &str) {
    graphs.turn_off();
    backend.note(format!("candle-cuda: decode steps run op by op (no CUDA graphs): {reason}"));
}

fn backend_error(message: String) -> Error {
    Error::Backend { backend: "candle-cuda".into(), message }
}
