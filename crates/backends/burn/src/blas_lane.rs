//! cuBLAS calls ordered with CubeCL's work on the device, so the host never waits for them.
//!
//! CubeCL 0.10 gives no handle to the CUDA stream it launches on, so cuBLAS cannot simply join
//! that stream. Each CubeCL stream (one per thread that launches work) gets a *lane* here: a
//! cuBLAS stream of its own and two flags in device memory (a CubeCL buffer). A product then
//! queues, in order: on CubeCL's stream a kernel writing the next sequence number to the first
//! flag; on the lane's stream a one-thread kernel spinning until the first flag holds it, the
//! GEMM, and a one-thread kernel writing the number to the second flag; on CubeCL's stream a
//! kernel that spins until the second flag holds it. (The driver's own stream memory operations,
//! `cuStreamWaitValue32`, refuse CubeCL's pooled memory with "invalid argument" on an H200,
//! driver 580; the lane's two kernels are a few lines of PTX, below.) The GEMM reads its operands after everything before it and CubeCL reads
//! the result after the GEMM, and the host goes on queueing work meanwhile; before, the whole
//! device was synchronised before and after each call (`ZOO_BLAS_SYNC=1` still does that, and
//! so does a process whose lane could not be set up, with the same results).
//!
//! Buffers stay valid: CubeCL reuses a freed buffer only for work queued after the spinning
//! kernel, on the same stream. Equality waits make the numbers safe to wrap: a lane's stream
//! cannot write the next number before CubeCL's stream has passed the previous wait.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use burn_cubecl::cubecl::cuda::CudaRuntime;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::server::Handle;
use burn_cubecl::cubecl::stream_id::StreamId;
use cudarc::cublas::{result as blas, sys as blas_sys};
use cudarc::driver::{result, sys};

use crate::cube::fence::{signal_kernel, wait_kernel};

/// The lane's kernels: `zoo_lane_wait(address, value)` spins until the `u32` at `address` equals
/// `value`; `zoo_lane_write(address, value)` stores `value` there after a device-wide fence.
const LANE_PTX: &str = "
.version 7.0
.target sm_70
.address_size 64
.visible .entry zoo_lane_wait(.param .u64 address, .param .u32 value)
{
    .reg .pred %p;
    .reg .b32 %r<3>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [address];
    ld.param.u32 %r1, [value];
    cvta.to.global.u64 %rd2, %rd1;
SPIN:
    ld.volatile.global.u32 %r2, [%rd2];
    setp.ne.u32 %p, %r2, %r1;
    @%p bra SPIN;
    ret;
}
.visible .entry zoo_lane_write(.param .u64 address, .param .u32 value)
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [address];
    ld.param.u32 %r1, [value];
    cvta.to.global.u64 %rd2, %rd1;
    membar.gl;
    st.volatile.global.u32 [%rd2], %r1;
    ret;
}
\0";

/// One CubeCL stream's cuBLAS stream, handle and flags.
struct Lane {
    /// The cuBLAS stream (a `CUstream`), created non-blocking.
    stream: usize,
    /// A cuBLAS handle of the lane's own (a handle's workspace must not serve two streams at
    /// once), bound to `stream`.
    handle: usize,
    /// Two `u32` flags: CubeCL's signal, then the lane's answer. Never freed.
    flags: Handle,
    /// The flags' device address.
    address: u64,
    /// `zoo_lane_wait` and `zoo_lane_write` (`CUfunction`s).
    kernels: (usize, usize),
    /// The last sequence number used.
    seq: u32,
}

// SAFETY: the stream and the cuBLAS handle are opaque library handles and the flags a CubeCL
// handle; all are used only under `LANES`'s lock.
unsafe impl Send for Lane {}

/// Lanes by (device, CubeCL stream).
static LANES: Mutex<Option<HashMap<(u32, StreamId), Lane>>> = Mutex::new(None);

/// Whether cuBLAS calls are ordered on the device (the default) rather than by synchronising
/// the whole device around each (`ZOO_BLAS_SYNC=1`).
pub(crate) fn enabled() -> bool {
    // Read once: the environment is not looked up on every product.
    static ASKED_TO_SYNC: OnceLock<bool> = OnceLock::new();
    let asked =
        *ASKED_TO_SYNC.get_or_init(|| std::env::var_os("ZOO_BLAS_SYNC").is_some_and(|v| !v.is_empty() && v != "0"));
    !asked && !DISABLED.load(Ordering::Relaxed)
}

/// Runs `enqueue` (which queues cuBLAS work through the handle it is given, bound to the lane's
/// stream, on CubeCL's runner thread) after the work `client` queued on this thread's stream
/// and before any it queues next: `enqueue`'s result, or `Err` (the outer one) when the lane
/// cannot be set up or ordered, and `enqueue` did not run; then [`enabled`] turns false.
pub(crate) fn ordered(
    client: &ComputeClient<CudaRuntime>,
    device: u32,
    enqueue: impl FnOnce(blas_sys::cublasHandle_t) -> Result<(), String> + Send,
) -> Result<Result<(), String>, String> {
    let outcome = try_ordered(client, device, enqueue);
    if outcome.is_err() {
        unavailable();
    }
    outcome
}

/// Turns ordering off for the process: the products stay right, synchronised around each
/// call as without lanes.
fn unavailable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Set once ordering has failed.
static DISABLED: AtomicBool = AtomicBool::new(false);

fn try_ordered(
    client: &ComputeClient<CudaRuntime>,
    device: u32,
    enqueue: impl FnOnce(blas_sys::cublasHandle_t) -> Result<(), String> + Send,
) -> Result<Result<(), String>, String> {
    let mut lanes = LANES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let lanes = lanes.get_or_insert_with(HashMap::new);
    let key = (device, StreamId::current());
    let lane = match lanes.entry(key) {
        Entry::Occupied(lane) => lane.into_mut(),
        Entry::Vacant(slot) => slot.insert(Lane::new(client)?),
    };
    lane.seq = lane.seq.wrapping_add(1).max(1);
    let (seq, address) = (lane.seq, lane.address);
    let on_lane = OnLane { stream: lane.stream, handle: lane.handle, kernels: lane.kernels };
    let flags = lane.flags.clone();
    // SAFETY: one unit writes the first of the two flags (the buffer holds two `u32`s).
    unsafe { fence(signal_kernel::launch_unchecked::<CudaRuntime>, client, &flags, seq) };
    let (answered, work) =
        client.exclusive(move || on_lane.queue(address, seq, enqueue)).map_err(|e| format!("{e:?}"))??;
    if answered {
        // SAFETY: one unit reads the second flag until the lane's stream has written `seq`.
        unsafe { fence(wait_kernel::launch_unchecked::<CudaRuntime>, client, &flags, seq) };
    }
    Ok(work)
}

/// A fence kernel's generated launcher: `(client, count, dim, flags, value)`.
type FenceLaunch = unsafe fn(&ComputeClient<CudaRuntime>, CubeCount, CubeDim, ArrayArg<CudaRuntime>, u32);

/// Launches one of CubeCL's fence kernels on one unit over the two flags.
///
/// # Safety
/// `flags` holds two `u32`s.
unsafe fn fence(kernel: FenceLaunch, client: &ComputeClient<CudaRuntime>, flags: &Handle, value: u32) {
    // SAFETY: the caller's: two elements.
    let flags = unsafe { ArrayArg::from_raw_parts_binding(flags.clone().binding(), 2) };
    // SAFETY: the kernel reads or writes only those two elements.
    unsafe { kernel(client, CubeCount::new_single(), CubeDim::new_1d(1), flags, value) }
}

/// What the runner thread needs of a lane, as addresses (sendable).
#[derive(Clone, Copy)]
struct OnLane {
    stream: usize,
    handle: usize,
    kernels: (usize, usize),
}

impl OnLane {
    /// On the runner thread: the lane's wait for CubeCL's signal, the work, and the answer.
    /// `Err` when the wait cannot be queued (the work then does not run); otherwise whether
    /// the answer is queued (CubeCL may then wait for it) and the work's result. An answer that
    /// cannot be queued turns ordering off, after waiting for the lane's stream, so no work is
    /// left pending.
    fn queue(
        self,
        address: u64,
        seq: u32,
        enqueue: impl FnOnce(blas_sys::cublasHandle_t) -> Result<(), String>,
    ) -> Result<(bool, Result<(), String>), String> {
        let stream = self.stream as sys::CUstream;
        self.launch(self.kernels.0, address, seq).map_err(|e| format!("the lane's wait: {e:?}"))?;
        let work = enqueue(self.handle as blas_sys::cublasHandle_t);
        if self.launch(self.kernels.1, address + 4, seq).is_err() {
            // CubeCL's signal is queued, so the lane's stream drains.
            // SAFETY: the lane's live stream.
            let _ = unsafe { result::stream::synchronize(stream) };
            unavailable();
            return Ok((false, work));
        }
        Ok((true, work))
    }

    /// Launches one of the lane's kernels, one thread, on the lane's stream.
    fn launch(self, kernel: usize, address: u64, value: u32) -> Result<(), result::DriverError> {
        let (mut address, mut value) = (address, value);
        let mut params = [(&mut address as *mut u64).cast(), (&mut value as *mut u32).cast()];
        // SAFETY: a kernel of the loaded module taking (u64, u32), on the lane's live stream;
        // `address` is inside the lane's flags buffer, live for the process.
        unsafe {
            result::launch_kernel(
                kernel as sys::CUfunction,
                (1, 1, 1),
                (1, 1, 1),
                0,
                self.stream as sys::CUstream,
                &mut params,
            )
        }
    }
}

impl Lane {
    /// A lane for the current CubeCL stream: its cuBLAS stream and handle, and zeroed flags.
    fn new(client: &ComputeClient<CudaRuntime>) -> Result<Self, String> {
        let (stream, handle, kernels) = client.exclusive(create_lane).map_err(|e| format!("{e:?}"))??;
        // An allocation of its own, outside CubeCL's pools, zeroed before first use.
        let flags = client.memory_persistent_allocation(8, |len| client.empty(len)).map_err(|e| format!("{e:?}"))?;
        let address = client.get_resource(flags.clone()).map_err(|e| format!("{e:?}"))?.resource().ptr;
        let zeroed = client.exclusive(move || {
            // SAFETY: the live 8-byte allocation above; CubeCL allocates stream-ordered, so wait
            // for its queue before writing from outside it.
            result::ctx::synchronize().and_then(|()| unsafe { result::memset_d8_sync(address, 0, 8) })
        });
        zeroed.map_err(|e| format!("{e:?}"))?.map_err(|e| format!("clearing the flags: {e:?}"))?;
        Ok(Self { stream, handle, flags, address, kernels, seq: 0 })
    }
}

/// On the runner thread (the context current): a non-blocking stream, a cuBLAS handle bound to
/// it and the lane's kernels, as addresses.
fn create_lane() -> Result<(usize, usize, (usize, usize)), String> {
    // SAFETY: a NUL-terminated PTX image.
    let module = unsafe { result::module::load_data(LANE_PTX.as_ptr().cast()) }
        .map_err(|e| format!("loading the lane's PTX: {e:?}"))?;
    let function = |name: &str| {
        let name = std::ffi::CString::new(name).expect("no NUL in the name");
        // SAFETY: the module just loaded.
        unsafe { result::module::get_function(module, name) }.map(|f| f as usize).map_err(|e| format!("{e:?}"))
    };
    let kernels = (function("zoo_lane_wait")?, function("zoo_lane_write")?);
    let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
        .map_err(|e| format!("cuStreamCreate: {e:?}"))?;
    let handle = blas::create_handle().map_err(|e| format!("cublasCreate: {e:?}"))?;
    // SAFETY: a live handle and a live stream of the current context.
    unsafe { blas::set_stream(handle, stream.cast()) }.map_err(|e| format!("cublasSetStream: {e:?}"))?;
    Ok((stream as usize, handle as usize, kernels))
}
