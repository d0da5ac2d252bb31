//! Decode steps replayed as CUDA graphs (burn-cuda's [`DeviceHooks::run_step`](crate::DeviceHooks)).
//!
//! A decode step of a small model is bound by the host: each of its ~130 launches costs CubeCL
//! several microseconds of work on two threads, against a few microseconds of GPU time. So the
//! first decode step of a shape is recorded ([`crate::cube::record`]) while it runs as usual;
//! its kernels are compiled here with CubeCL's CUDA compiler and NVRTC, and launched once, in
//! order, on a stream of zoo's own under stream capture, which makes a CUDA graph. Its buffers
//! (weights, KV cache, the step's inputs and every intermediate) stay allocated while the graph
//! lives, so their addresses hold. A later step of the same shape (rows, and attention keys
//! within the same bucket, [`key_bound`]) then writes its token ids, slots and positions into
//! the recorded input buffers and launches the graph: one call instead of a launch per kernel.
//!
//! The second step of a shape runs both ways and compares the logits bit for bit before any
//! step relies on the graph; a difference (some launch the recording could not see) turns
//! graphs off for that KV cache, with a note on stderr. A later recording of the same launches
//! (the same model and shape, another KV cache: the next generation) is trusted without a
//! second check. `ZOO_CUDA_GRAPHS=0` turns graphs off.
//! Graphs are kept with the KV cache ([`StepMemory`]) and dropped with it.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{c_void, CString};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};

use burn::tensor::{DType, Tensor};
use burn_cubecl::cubecl::cuda::{CudaCompiler, CudaDevice, CudaRuntime};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::server::Handle;
use burn_cubecl::cubecl::{CubeTask, Runtime};
use burn_cubecl::CubeBackend;
use cubecl_cpp::shared::{CompilationOptions, CppSupportedFeatures};
use cubecl_runtime::id::KernelId;
use cudarc::driver::{result, sys};
use zoo_core::recordings::{self, Recordings};
use zoo_core::{Error, Result, Step, StepMemory, TensorShape};

use crate::cube::record::{self, Input, Recorded, Recording};
use crate::grid_dependency::with_grid_dependency;
use crate::kernels::{key_bound, Kernels};
use crate::BurnTensor;

type Gpu = CubeBackend<CudaRuntime, f32, i32, u8>;

/// What identifies a recorded step: its rows and its attention bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    rows: usize,
    bound: usize,
}

/// One KV cache's graphs (zoo's one policy for recordings: `zoo_core::recordings`).
type Graphs = Recordings<Shape, Graph>;

/// The shape of `step` when it is a decode step a graph can replay: every row one new token
/// of its own sequence, logits for every row, at most the GEMV's rows.
fn replayable(step: &Step<'_>) -> Option<Shape> {
    let rows = step.tokens.len();
    let decode = step.spans.iter().all(|s| s.len == 1) && step.spans.len() == rows;
    if rows == 0 || rows > crate::cube::GEMV_MAX_ROWS || !decode || step.logit_rows.is_some() {
        return None;
    }
    Some(Shape { rows, bound: key_bound(crate::step::extent(step)) })
}

/// [`crate::DeviceHooks::run_step`] for burn-cuda.
pub(crate) fn run_step(
    device: &CudaDevice,
    memory: &mut StepMemory,
    step: &Step<'_>,
    run: &mut dyn FnMut() -> Result<BurnTensor<Gpu>>,
) -> Result<BurnTensor<Gpu>> {
    let Some(shape) = replayable(step).filter(|_| recordings::switched_on()) else {
        return run();
    };
    let Some(graphs) = Graphs::of(memory).filter(|g| !g.is_off()) else {
        return run();
    };
    let client = CudaRuntime::client(device);
    let Some(kept) = graphs.find(&shape) else {
        return record_step(graphs, shape, &client, run);
    };
    if kept.checked {
        // A replay that fails leaves the step to the ops (which write the same cache row the
        // graph would have), and this cache to them from now on.
        match kept.graph.replay(&client, step) {
            Ok(out) => return Ok(out),
            Err(e) => {
                turn_off(graphs, &format!("a replay failed: {e}"));
                return run();
            }
        }
    }
    // First replay of this shape: run the step as usual too, and compare.
    let expected = run()?;
    match kept.graph.replay(&client, step) {
        Ok(got) if same(&expected, &got) => {
            kept.checked = true;
            VALIDATED.lock().unwrap_or_else(PoisonError::into_inner).insert(kept.graph.signature);
        }
        Ok(_) => turn_off(graphs, "a replayed step's logits differ from the step run op by op"),
        Err(e) => turn_off(graphs, &e),
    }
    Ok(expected)
}

/// Runs the step while recording it, and keeps its graph.
fn record_step(
    graphs: &mut Graphs,
    shape: Shape,
    client: &ComputeClient<CudaRuntime>,
    run: &mut dyn FnMut() -> Result<BurnTensor<Gpu>>,
) -> Result<BurnTensor<Gpu>> {
    // The greedy pick goes into the graph too, so a replay hands back the logits with each
    // row's argmax already read (`BurnTensor::picks`).
    let (out, recording) = record::record(client.properties(), || {
        let out = run()?;
        let picks = <Gpu as Kernels>::argmax_launch(&out.t);
        Ok::<_, Error>((out, picks))
    });
    let (out, picks) = out?;
    let Some(recording) = recording else {
        return Ok(out);
    };
    match Graph::build(client, recording, out.clone(), picks) {
        Ok(graph) => {
            // A step of the same launches (model, shape and arguments) already matched its
            // replay in this process: the recording sees everything that step runs.
            let checked = VALIDATED.lock().unwrap_or_else(PoisonError::into_inner).contains(&graph.signature);
            graphs.keep(shape, graph, checked);
        }
        Err(e) => turn_off(graphs, &e),
    }
    Ok(out)
}

fn turn_off(graphs: &mut Graphs, why: &str) {
    graphs.turn_off();
    note(format!("decode continues without CUDA graphs: {why}"));
}

/// Messages for the user ([`zoo_core::Backend::take_notes`]), each once.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(message: String) {
    let mut notes = NOTES.lock().unwrap_or_else(PoisonError::into_inner);
    if !notes.contains(&message) {
        notes.push(message);
    }
}

/// [`crate::DeviceHooks::take_notes`] for burn-cuda.
pub(crate) fn take_notes() -> Vec<String> {
    std::mem::take(&mut *NOTES.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Whether two logits tensors hold the same bits.
fn same(a: &BurnTensor<Gpu>, b: &BurnTensor<Gpu>) -> bool {
    let bytes = |t: &BurnTensor<Gpu>| t.t.clone().into_data().into_bytes();
    a.shape() == b.shape() && bytes(a)[..] == bytes(b)[..]
}

/// Signatures of recorded steps whose replay matched the step run op by op.
static VALIDATED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// A hash of what a recording launches, in order (kernels, cube counts, scalar arguments),
/// but not of its buffers: equal for every recording of one model's steps of one shape.
fn signature(launches: &[Recorded]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for launch in launches {
        let mut id = launch.kernel.id();
        id.mode(launch.mode);
        id.hash(&mut hasher);
        if let CubeCount::Static(x, y, z) = launch.count {
            (x, y, z).hash(&mut hasher);
        }
        launch.args.info.data.hash(&mut hasher);
        launch.args.buffers.len().hash(&mut hasher);
    }
    hasher.finish()
}

/// A recorded step as an instantiated CUDA graph, with everything it reads and writes held.
struct Graph {
    exec: usize,
    graph: usize,
    stream: usize,
    /// Device addresses and integer types of the token ids, slots and positions.
    inputs: [(u64, DType); 3],
    /// The step's logits (the graph rewrites them on each replay).
    output: BurnTensor<Gpu>,
    /// Each row's argmax, computed last in the graph: the tensor (held) and its address.
    picks: Option<(Tensor<Gpu, 2>, u64)>,
    /// What the recording launches ([`signature`]).
    signature: u64,
    /// The recorded launches and their buffers' handles, which keep every buffer allocated.
    launches: Vec<Recorded>,
    _handles: Vec<Vec<Handle>>,
    _inputs: [Input; 3],
    client: ComputeClient<CudaRuntime>,
    /// With `ZOO_CUDA_GRAPH_TIMES=1`: events around each replay's graph, and the totals,
    /// printed when the graph is dropped.
    timing: Option<Timing>,
}

/// GPU time of replays (two events on zoo's stream) against their wall time.
struct Timing {
    start: usize,
    end: usize,
    totals: Mutex<(u64, f64, f64)>,
}

impl Timing {
    fn new() -> Option<Self> {
        if std::env::var("ZOO_CUDA_GRAPH_TIMES").map_or(true, |v| v != "1") {
            return None;
        }
        let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
        let (start, end) = (result::event::create(flags).ok()?, result::event::create(flags).ok()?);
        Some(Self { start: start as usize, end: end as usize, totals: Mutex::new((0, 0.0, 0.0)) })
    }
}

/// What building a graph on the runner thread yields.
struct Built {
    exec: usize,
    graph: usize,
    stream: usize,
    inputs: [(u64, DType); 3],
    picks: Option<u64>,
    timing: Option<Timing>,
}

/// A launch ready to capture: function, grid, block, shared memory, argument values.
struct Ready {
    function: usize,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    shared: u32,
    pointers: Vec<u64>,
    info: Vec<u64>,
    /// Whether the kernel waits for its predecessors itself (see [`crate::grid_dependency`]).
    dependent: bool,
}

impl Graph {
    fn build(
        client: &ComputeClient<CudaRuntime>,
        recording: Recording,
        output: BurnTensor<Gpu>,
        picks: Option<Tensor<Gpu, 2>>,
    ) -> std::result::Result<Self, String> {
        let inputs = recording.inputs.ok_or("the step noted no token ids, slots or positions")?;
        if recording.launches.is_empty() {
            return Err("the step launched no kernel zoo could record".into());
        }
        if recording.handles.len() != recording.launches.len() {
            return Err("launches and their arguments' handles do not pair up".into());
        }
        for (launch, handles) in recording.launches.iter().zip(&recording.handles) {
            let bound = launch.args.buffers.iter().map(|b| b.size());
            if !bound.eq(handles.iter().map(|h| h.size())) {
                return Err(format!("a launch of {} has buffers its handles do not match", launch.kernel.name()));
            }
        }
        let picks_handle = picks.as_ref().map(|t| t.clone().into_primitive().tensor().handle);
        let (launches, handles, held_inputs) = (&recording.launches, &recording.handles, &inputs);
        let runner = client.clone();
        // On CubeCL's runner thread, where each address lookup runs in place: one hand-over
        // for the several hundred of them.
        let built = client
            .exclusive(move || -> std::result::Result<Built, String> {
                let address = |h: &Handle| -> std::result::Result<u64, String> {
                    let resource = runner.get_resource(h.clone()).map_err(|e| format!("{e:?}"))?;
                    Ok(resource.resource().ptr)
                };
                let mut ready = Vec::with_capacity(launches.len());
                for (launch, handles) in launches.iter().zip(handles) {
                    let pointers = handles.iter().map(address).collect::<std::result::Result<Vec<_>, _>>()?;
                    ready.push(prepare(launch, pointers)?);
                }
                let input_at = |i: &Input| address(&i.handle).map(|a| (a, i.dtype));
                let inputs = [input_at(&held_inputs[0])?, input_at(&held_inputs[1])?, input_at(&held_inputs[2])?];
                let picks = picks_handle.as_ref().map(address).transpose()?;
                let (exec, graph, stream) = capture_overlapped(&ready)?;
                Ok(Built { exec, graph, stream, inputs, picks, timing: Timing::new() })
            })
            .map_err(|e| format!("{e:?}"))??;
        let Built { exec, graph, stream, inputs: addresses, picks: picks_at, timing } = built;
        let picks = picks.zip(picks_at);
        Ok(Self {
            exec,
            graph,
            stream,
            inputs: addresses,
            output,
            picks,
            signature: signature(&recording.launches),
            launches: recording.launches,
            _handles: recording.handles,
            timing,
            _inputs: inputs,
            client: client.clone(),
        })
    }

    /// Writes `step`'s token ids, slots and positions into the recorded inputs, launches the
    /// graph after everything CubeCL queued, and waits for it.
    fn replay(
        &self,
        client: &ComputeClient<CudaRuntime>,
        step: &Step<'_>,
    ) -> std::result::Result<BurnTensor<Gpu>, String> {
        let writes: Vec<(u64, Vec<u8>)> = crate::step::row_columns(step)
            .into_iter()
            .zip(self.inputs)
            .map(|(values, (address, dtype))| Ok((address, int_bytes(&values, dtype)?)))
            .collect::<std::result::Result<_, String>>()?;
        let (exec, stream) = (self.exec, self.stream);
        let events = self.timing.as_ref().map(|t| (t.start, t.end));
        let rows = step.tokens.len();
        let picks_at = self.picks.as_ref().map(|(_, address)| *address);
        let began = std::time::Instant::now();
        let (gpu_ms, picked) = client
            .exclusive(move || -> std::result::Result<(Option<f32>, Option<Vec<u8>>), String> {
                // SAFETY: on CubeCL's runner thread (its context current); the addresses are
                // the recorded inputs, held by this graph, each as long as the step's rows
                // (the shape matched); the graph and stream are live.
                unsafe {
                    result::ctx::synchronize().map_err(|e| format!("cuCtxSynchronize: {e:?}"))?;
                    for (address, bytes) in &writes {
                        result::memcpy_htod_async(*address, bytes, stream as sys::CUstream)
                            .map_err(|e| format!("cuMemcpyHtoDAsync: {e:?}"))?;
                    }
                    if let Some((start, _)) = events {
                        let _ = result::event::record(start as sys::CUevent, stream as sys::CUstream);
                    }
                    result::graph::launch(exec as sys::CUgraphExec, stream as sys::CUstream)
                        .map_err(|e| format!("cuGraphLaunch: {e:?}"))?;
                    if let Some((_, end)) = events {
                        let _ = result::event::record(end as sys::CUevent, stream as sys::CUstream);
                    }
                    let mut picked = picks_at.map(|_| vec![0u8; rows * 8]);
                    if let (Some(address), Some(bytes)) = (picks_at, picked.as_mut()) {
                        result::memcpy_dtoh_async(bytes, address, stream as sys::CUstream)
                            .map_err(|e| format!("cuMemcpyDtoHAsync: {e:?}"))?;
                    }
                    result::stream::synchronize(stream as sys::CUstream)
                        .map_err(|e| format!("cuStreamSynchronize: {e:?}"))?;
                    let gpu = events.and_then(|(start, end)| {
                        result::event::elapsed(start as sys::CUevent, end as sys::CUevent).ok()
                    });
                    Ok((gpu, picked))
                }
            })
            .map_err(|e| format!("{e:?}"))??;
        if let (Some(t), Some(gpu)) = (&self.timing, gpu_ms) {
            let mut totals = t.totals.lock().unwrap_or_else(PoisonError::into_inner);
            *totals = (totals.0 + 1, totals.1 + f64::from(gpu), totals.2 + began.elapsed().as_secs_f64() * 1e3);
        }
        crate::cube::count_launches(self.launches.len() as u64);
        let mut output = self.output.clone();
        output.picks = picked.map(|bytes| std::sync::Arc::new(crate::kernels::picks(&bytes, rows)));
        Ok(output)
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        let (exec, graph, stream) = (self.exec, self.graph, self.stream);
        let events = self.timing.as_ref().map(|t| {
            let (n, gpu, wall) = *t.totals.lock().unwrap_or_else(PoisonError::into_inner);
            if n > 0 {
                let per = |ms: f64| ms * 1e3 / n as f64;
                note(format!(
                    "graph of {} kernels: {n} replays, GPU {:.1} µs and replay call {:.1} µs per step",
                    self.launches.len(),
                    per(gpu),
                    per(wall)
                ));
            }
            (t.start, t.end)
        });
        let _ = self.client.exclusive(move || {
            // SAFETY: handles this graph created and nothing else holds; its work finished
            // (each replay waits for it).
            unsafe {
                let _ = result::graph::exec_destroy(exec as sys::CUgraphExec);
                let _ = result::graph::destroy(graph as sys::CUgraph);
                let _ = result::stream::destroy(stream as sys::CUstream);
                if let Some((start, end)) = events {
                    let _ = result::event::destroy(start as sys::CUevent);
                    let _ = result::event::destroy(end as sys::CUevent);
                }
            }
        });
    }
}

/// `values` as the bytes of a device integer tensor of type `dtype`.
fn int_bytes(values: &[i64], dtype: DType) -> std::result::Result<Vec<u8>, String> {
    match dtype {
        DType::I64 => Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::I32 => Ok(values.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect()),
        other => Err(format!("step inputs of type {other:?}")),
    }
}

/// Compiles (once per kernel) and lays out one recorded launch.
fn prepare(launch: &Recorded, pointers: Vec<u64>) -> std::result::Result<Ready, String> {
    let CubeCount::Static(x, y, z) = launch.count else {
        return Err("a launch with a dynamic cube count".into());
    };
    let info = &launch.args.info;
    if info.dynamic_metadata_offset < info.data.len() || !launch.args.tensor_maps.is_empty() {
        return Err("a launch with dynamic metadata or tensor maps".into());
    }
    let compiled = compiled(launch.kernel.as_ref(), launch.mode)?;
    Ok(Ready {
        function: compiled.function,
        grid: (x, y, z),
        block: compiled.block,
        shared: compiled.shared,
        pointers,
        info: info.data.clone(),
        dependent: compiled.dependent,
    })
}

/// A kernel compiled and loaded.
#[derive(Clone, Copy)]
struct Compiled {
    function: usize,
    block: (u32, u32, u32),
    shared: u32,
    dependent: bool,
}

/// Kernels compiled so far, by CubeCL's kernel id.
static COMPILED: Mutex<Option<HashMap<KernelId, Compiled>>> = Mutex::new(None);

fn compiled(kernel: &dyn CubeTask<CudaCompiler>, mode: ExecutionMode) -> std::result::Result<Compiled, String> {
    let mut id = kernel.id();
    id.mode(mode);
    let mut cache = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(c) = cache.get(&id) {
        return Ok(*c);
    }
    let arch = arch()?;
    if arch < 70 {
        return Err(format!("compute capability {arch} (graphs pass arguments as grid constants, 7.0 and up)"));
    }
    // Kept on disk by CubeCL's stable hash of the kernel id, as CubeCL keeps its own: a later
    // run loads the binary without expanding the kernel again.
    let path = crate::kernel_cache("graphs").join(format!("{:032x}-sm{arch}.bin", id.stable_hash()));
    let image = match std::fs::read(&path).ok().and_then(|bytes| Image::decode(&bytes)) {
        Some(image) => image,
        None => {
            let image = Image::build(kernel, mode, arch)?;
            store(&path, &image.encode());
            image
        }
    };
    let c = image.load()?;
    cache.insert(id, c);
    Ok(c)
}

/// The device's compute capability, as CubeCL's CUDA runtime reads it (`major · 10 + minor`).
fn arch() -> std::result::Result<u32, String> {
    use sys::CUdevice_attribute::{
        CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
    };
    let mut device = 0;
    // SAFETY: on the runner thread, the context current; plain queries.
    unsafe {
        sys::cuCtxGetDevice(&mut device).result().map_err(|e| format!("cuCtxGetDevice: {e:?}"))?;
        let major = result::device::get_attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(|e| format!("{e:?}"))?;
        let minor = result::device::get_attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .map_err(|e| format!("{e:?}"))?;
        Ok((major * 10 + minor) as u32)
    }
}

/// The compiler options CubeCL's CUDA runtime uses on a device of `arch`, so the code (and so
/// the rounding) is the same as the kernels it runs.
fn options(arch: u32) -> CompilationOptions {
    let features = CppSupportedFeatures {
        grid_constants: arch >= 70,
        clusters: arch >= 90,
        fast_math: true,
        fast_tanh: arch >= 75 && cudarc::driver::sys::CUDA_VERSION >= 12080,
        elect_sync: arch >= 90,
    };
    CompilationOptions { warp_size: 32, supports_features: features }
}

/// A compiled kernel: its entry point, launch shape and device binary.
struct Image {
    name: String,
    shared: u32,
    block: (u32, u32, u32),
    /// Whether the source was patched for programmatic dependent launch.
    dependent: bool,
    cubin: Vec<u8>,
}

/// First line of a kept kernel image.
const IMAGE_MAGIC: &str = "zoo-graph-kernel 2";

impl Image {
    /// CubeCL's CUDA source for `kernel`, through NVRTC to a binary for `arch`.
    fn build(kernel: &dyn CubeTask<CudaCompiler>, mode: ExecutionMode, arch: u32) -> std::result::Result<Self, String> {
        let compiled = kernel
            .compile(&mut Default::default(), &options(arch), mode, kernel.address_type())
            .map_err(|e| format!("compiling {}: {e:?}", kernel.name()))?;
        let shared = compiled.repr.as_ref().map_or(0, |r| r.shared_memory_size()) as u32;
        let cube = compiled.cube_dim;
        let patched = (arch >= 90).then(|| with_grid_dependency(&compiled.source)).flatten();
        let dependent = patched.is_some();
        let cubin = nvrtc(patched.as_deref().unwrap_or(&compiled.source), arch)?;
        Ok(Self { name: compiled.entrypoint_name, shared, block: (cube.x, cube.y, cube.z), dependent, cubin })
    }

    fn encode(&self) -> Vec<u8> {
        let (x, y, z) = self.block;
        let dependent = u32::from(self.dependent);
        let header = format!("{IMAGE_MAGIC}\n{}\n{} {x} {y} {z} {dependent}\n", self.name, self.shared);
        [header.as_bytes(), &self.cubin].concat()
    }

    /// `None` for anything but a whole image.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut lines = bytes.splitn(4, |&b| b == b'\n');
        let (magic, name, numbers, cubin) = (lines.next()?, lines.next()?, lines.next()?, lines.next()?);
        if magic != IMAGE_MAGIC.as_bytes() || cubin.is_empty() {
            return None;
        }
        let numbers: Vec<u32> =
            std::str::from_utf8(numbers).ok()?.split(' ').map(|n| n.parse().ok()).collect::<Option<_>>()?;
        let [shared, x, y, z, dependent @ (0 | 1)] = numbers[..] else { return None };
        let name = String::from_utf8(name.to_vec()).ok()?;
        Some(Self { name, shared, block: (x, y, z), dependent: dependent == 1, cubin: cubin.to_vec() })
    }

    /// Loads the binary into the current context.
    fn load(&self) -> std::result::Result<Compiled, String> {
        let name = CString::new(self.name.clone()).map_err(|e| e.to_string())?;
        // SAFETY: a device binary NVRTC made for this device; the entry point is its kernel's.
        let function = unsafe {
            let module = result::module::load_data(self.cubin.as_ptr().cast())
                .map_err(|e| format!("cuModuleLoadData: {e:?}"))?;
            let function =
                result::module::get_function(module, name).map_err(|e| format!("cuModuleGetFunction: {e:?}"))?;
            result::function::set_function_attribute(
                function,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                self.shared as i32,
            )
            .map_err(|e| format!("{e:?}"))?;
            function
        };
        Ok(Compiled { function: function as usize, block: self.block, shared: self.shared, dependent: self.dependent })
    }
}

/// A device binary (CUBIN) of `source` for `arch`, with the CUDA headers CubeCL's kernels
/// include.
fn nvrtc(source: &str, arch: u32) -> std::result::Result<Vec<u8>, String> {
    use cudarc::nvrtc::{result as nv, sys as nvsys};
    let suffix = if arch >= 90 { "a" } else { "" };
    let mut options = vec![format!("--gpu-architecture=sm_{arch}{suffix}")];
    if let Some(root) = burn_cubecl::cubecl::cuda::install::cuda_path() {
        let include = root.join("include");
        options.push(format!("--include-path={}", include.display()));
        let cccl = include.join("cccl");
        if cccl.exists() {
            options.push(format!("--include-path={}", cccl.display()));
        }
    }
    let source = CString::new(source).map_err(|e| e.to_string())?;
    let program = nv::create_program(&source, None).map_err(|e| format!("nvrtcCreateProgram: {e:?}"))?;
    // SAFETY: a live program, destroyed once below; the binary is copied out at its size.
    unsafe {
        let built = match nv::compile_program(program, &options) {
            Ok(()) => {
                let mut size = 0usize;
                let sized = nvsys::nvrtcGetCUBINSize(program, &mut size).result();
                let mut cubin = vec![0u8; size];
                sized
                    .and_then(|()| nvsys::nvrtcGetCUBIN(program, cubin.as_mut_ptr().cast()).result())
                    .map(|()| cubin)
                    .map_err(|e| format!("nvrtcGetCUBIN: {e:?}"))
            }
            Err(e) => {
                let log = nv::get_program_log(program).unwrap_or_default();
                let log: Vec<u8> = log.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
                Err(format!("NVRTC: {e:?}: {}", String::from_utf8_lossy(&log)))
            }
        };
        let _ = nv::destroy_program(program);
        built
    }
}

/// Writes `bytes` to `path` through a temporary file, so a reader never sees half a file; a
/// cache that cannot be written is only slower.
fn store(path: &std::path::Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&temporary, bytes));
    if written.and_then(|()| std::fs::rename(&temporary, path)).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

/// Captures `launches` on a new stream of zoo's own, as programmatic dependent launches with
/// `programmatic` (each kernel may start while the one before finishes, up to its own wait);
/// returns the graph's executable, the graph and the stream.
fn capture(launches: &[Ready], programmatic: bool) -> std::result::Result<(usize, usize, usize), String> {
    let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
        .map_err(|e| format!("cuStreamCreate: {e:?}"))?;
    // SAFETY: a live stream of the current context; each function was loaded in it, and its
    // arguments are the recorded buffers' addresses (held) and the recorded argument block.
    unsafe {
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        result::stream::begin_capture(stream, mode).map_err(|e| format!("cuStreamBeginCapture: {e:?}"))?;
        let mut failed = None;
        for l in launches {
            if let Err(e) = launch(l, stream, programmatic) {
                failed = Some(format!("cuLaunchKernel: {e:?}"));
                break;
            }
        }
        let graph = result::stream::end_capture(stream);
        let graph = match (graph, failed) {
            (Ok(g), None) => g,
            (Ok(g), Some(e)) => {
                let _ = result::graph::destroy(g);
                let _ = result::stream::destroy(stream);
                return Err(e);
            }
            (Err(e), _) => {
                let _ = result::stream::destroy(stream);
                return Err(format!("cuStreamEndCapture: {e:?}"));
            }
        };
        let exec = match result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) {
            Ok(exec) => exec,
            Err(e) => {
                let _ = result::graph::destroy(graph);
                let _ = result::stream::destroy(stream);
                return Err(format!("cuGraphInstantiate: {e:?}"));
            }
        };
        Ok((exec as usize, graph as usize, stream as usize))
    }
}

/// Whether replayed kernels may overlap as programmatic dependent launches (`ZOO_CUDA_PDL=0`
/// turns it off).
fn programmatic_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| crate::cube::switched_on("ZOO_CUDA_PDL"))
}

/// [`capture`] of `ready`, as programmatic dependent launches where every kernel waits for its
/// predecessors itself; a capture the driver refuses that way is made again without.
fn capture_overlapped(ready: &[Ready]) -> std::result::Result<(usize, usize, usize), String> {
    let programmatic = programmatic_enabled() && ready.iter().all(|r| r.dependent);
    match capture(ready, programmatic) {
        Err(e) if programmatic => {
            note(format!("CUDA graphs without programmatic dependent launch ({e})"));
            capture(ready, false)
        }
        captured => captured,
    }
}

/// Launches `l` on `stream`; with `programmatic`, allowed to start before the kernel before it
/// on the stream has finished (its `griddepcontrol.wait` orders what matters).
///
/// # Safety
/// `l.function` is loaded in the current context; its pointers and argument block are the
/// kernel's parameters.
unsafe fn launch(l: &Ready, stream: sys::CUstream, programmatic: bool) -> std::result::Result<(), result::DriverError> {
    let mut pointers = l.pointers.clone();
    let mut params: Vec<*mut c_void> = pointers.iter_mut().map(|p| (p as *mut u64).cast()).collect();
    params.push(l.info.as_ptr() as *mut c_void);
    if !programmatic {
        return result::launch_kernel(l.function as sys::CUfunction, l.grid, l.block, l.shared, stream, &mut params);
    }
    // SAFETY: a plain C struct and union, valid zeroed; the fields set are the attribute's.
    let mut attribute: sys::CUlaunchAttribute = std::mem::zeroed();
    attribute.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attribute.value.programmaticStreamSerializationAllowed = 1;
    let config = sys::CUlaunchConfig {
        gridDimX: l.grid.0,
        gridDimY: l.grid.1,
        gridDimZ: l.grid.2,
        blockDimX: l.block.0,
        blockDimY: l.block.1,
        blockDimZ: l.block.2,
        sharedMemBytes: l.shared,
        hStream: stream,
        attrs: &mut attribute,
        numAttrs: 1,
    };
    sys::cuLaunchKernelEx(&config, l.function as sys::CUfunction, params.as_mut_ptr(), std::ptr::null_mut()).result()
}
