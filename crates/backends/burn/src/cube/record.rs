//! Recording one forward step's launches, for [`crate::cuda_graph`] to replay as a CUDA graph.
//!
//! While a step records, [`launch!`] sends each launch a second time, to a client of
//! [`RecRuntime`]: a CubeCL runtime with CUDA's compiler whose server runs nothing and keeps
//! what it is given, exactly as CubeCL's CUDA server would get it: the kernel (which the graph
//! builder compiles with CubeCL's CUDA compiler), its cube count, and its arguments (the
//! buffers' bindings, which keep those buffers allocated while the recording lives, and the
//! packed scalars and metadata). The step's device inputs (token ids, slots, positions) are
//! noted too, so a replay can write the next step's into the same buffers.
//!
//! Only launches made on behalf of the recording thread are kept: the recording belongs to
//! that thread's CubeCL stream id, which CubeCL also carries onto its runner thread when a
//! step runs there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use burn::tensor::DType;
use burn_cubecl::cubecl::backtrace::BackTrace;
use burn_cubecl::cubecl::bytes::Bytes;
use burn_cubecl::cubecl::cuda::CudaCompiler;
use burn_cubecl::cubecl::device::{Device, DeviceId, DeviceService, ServerUtilitiesHandle};
use burn_cubecl::cubecl::future::DynFut;
use burn_cubecl::cubecl::ir::DeviceProperties;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::profile::ProfileDuration;
use burn_cubecl::cubecl::server::{Binding, Handle, KernelArguments};
use burn_cubecl::cubecl::stream_id::StreamId;
use burn_cubecl::cubecl::CubeTask;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl_runtime::allocator::ContiguousMemoryLayoutPolicy;
use cubecl_runtime::logging::ServerLogger;
use cubecl_runtime::memory_management::{ManagedMemoryHandle, MemoryAllocationMode, MemoryUsage};
use cubecl_runtime::server::{
    ComputeServer, CopyDescriptor, ExecutionMode, IoError, ProfileError, ProfilingToken, ServerCommunication,
    ServerError, ServerUtilities,
};
use cubecl_runtime::storage::{ComputeStorage, ManagedResource, StorageHandle, StorageId};

/// One launch as CubeCL's CUDA server would have received it.
pub(crate) struct Recorded {
    /// The kernel, compiled on demand.
    pub(crate) kernel: Box<dyn CubeTask<CudaCompiler>>,
    /// Cubes to launch.
    pub(crate) count: CubeCount,
    /// Buffers, then scalars and metadata.
    pub(crate) args: KernelArguments,
    /// Bounds checks (CubeCL's setting).
    pub(crate) mode: ExecutionMode,
}

/// A device input of the step: a buffer the replay rewrites, and its integer type.
#[derive(Clone)]
pub(crate) struct Input {
    pub(crate) handle: Handle,
    pub(crate) dtype: DType,
}

/// What one step recorded.
#[derive(Default)]
pub(crate) struct Recording {
    /// Every launch, in order.
    pub(crate) launches: Vec<Recorded>,
    /// The handles of each launch's buffers, in the order of its arguments (the recorded
    /// arguments hold bindings, which CubeCL resolves to addresses only through handles).
    pub(crate) handles: Vec<Vec<Handle>>,
    /// Token ids, slots and positions of the step's rows, once `prepare_step` ran.
    pub(crate) inputs: Option<[Input; 3]>,
}

struct Active {
    owner: StreamId,
    recording: Recording,
}

/// Whether any recording is under way (the cheap test each launch makes first).
static RECORDING: AtomicBool = AtomicBool::new(false);
static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);
/// The CUDA device's properties, which kernels read while they are defined.
static PROPERTIES: OnceLock<DeviceProperties> = OnceLock::new();

fn active() -> std::sync::MutexGuard<'static, Option<Active>> {
    ACTIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether launches on this stream are being recorded.
pub(crate) fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed) && active().as_ref().is_some_and(|a| a.owner == StreamId::current())
}

/// Runs `f` with this thread's launches recorded; returns its value and the recording, or
/// `None` for the recording when another thread was recording already.
pub(crate) fn record<T>(properties: &DeviceProperties, f: impl FnOnce() -> T) -> (T, Option<Recording>) {
    {
        let mut slot = active();
        if slot.is_some() {
            drop(slot);
            return (f(), None);
        }
        *slot = Some(Active { owner: StreamId::current(), recording: Recording::default() });
        RECORDING.store(true, Ordering::Relaxed);
    }
    let _ = PROPERTIES.set(properties.clone());
    let value = f();
    // The recording server runs on its own thread: wait until it has taken every launch.
    let synced = burn_cubecl::cubecl::future::block_on(client().sync()).is_ok();
    let taken = active().take();
    RECORDING.store(false, Ordering::Relaxed);
    (value, taken.filter(|_| synced).map(|a| a.recording))
}

/// Notes the step's device inputs, when this thread is recording.
pub(crate) fn note_inputs<R: CubeRuntime>(tokens: &CubeTensor<R>, slots: &CubeTensor<R>, positions: &CubeTensor<R>) {
    if !recording() {
        return;
    }
    let input = |t: &CubeTensor<R>| Input { handle: t.handle.clone(), dtype: t.dtype };
    if let Some(a) = active().as_mut() {
        a.recording.inputs = Some([input(tokens), input(slots), input(positions)]);
    }
}

thread_local! {
    /// Handles of the launch being recorded on this thread, as `array` makes its arguments.
    static PENDING: std::cell::RefCell<Vec<Handle>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Notes the handle of the next buffer argument of the launch being recorded (`array` calls
/// this when it makes an argument for [`RecRuntime`]).
pub(crate) fn push_handle(handle: &Handle) {
    PENDING.with(|p| p.borrow_mut().push(handle.clone()));
}

/// Ends the launch being recorded: its handles join the recording.
pub(crate) fn end_launch() {
    let handles = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if let Some(a) = active().as_mut() {
        a.recording.handles.push(handles);
    }
}

/// The recording runtime's client.
pub(crate) fn client() -> ComputeClient<RecRuntime> {
    ComputeClient::load(&RecDevice)
}

/// The recording runtime: CUDA's compiler, a server that keeps launches.
#[derive(Debug, Clone)]
pub(crate) struct RecRuntime;

/// Its one device (an id no CubeCL runtime uses).
#[derive(Debug, Clone, Default)]
pub(crate) struct RecDevice;

impl Device for RecDevice {
    fn from_id(_: DeviceId) -> Self {
        Self
    }

    fn to_id(&self) -> DeviceId {
        DeviceId { type_id: 0x7a6f, index_id: 0 }
    }
}

impl Runtime for RecRuntime {
    type Compiler = CudaCompiler;
    type Server = RecServer;
    type Device = RecDevice;

    fn client(device: &Self::Device) -> ComputeClient<Self> {
        ComputeClient::load(device)
    }

    fn name(_: &ComputeClient<Self>) -> &'static str {
        "zoo-record"
    }

    fn require_array_lengths() -> bool {
        <burn_cubecl::cubecl::cuda::CudaRuntime as Runtime>::require_array_lengths()
    }

    fn max_cube_count() -> (u32, u32, u32) {
        <burn_cubecl::cubecl::cuda::CudaRuntime as Runtime>::max_cube_count()
    }

    fn can_read_tensor(_: &burn_cubecl::cubecl::zspace::Shape, _: &burn_cubecl::cubecl::zspace::Strides) -> bool {
        false
    }

    fn target_properties() -> burn_cubecl::cubecl::ir::TargetProperties {
        <burn_cubecl::cubecl::cuda::CudaRuntime as Runtime>::target_properties()
    }

    fn enumerate_devices(_: u16, _: &()) -> Vec<DeviceId> {
        vec![RecDevice.to_id()]
    }
}

/// The recording server.
#[derive(Debug)]
pub(crate) struct RecServer {
    utilities: Arc<ServerUtilities<Self>>,
}

impl DeviceService for RecServer {
    fn init(_: DeviceId) -> Self {
        // `record` sets the properties before the first launch reaches this client.
        let properties = PROPERTIES.get().cloned().unwrap_or_else(placeholder_properties);
        let utilities = ServerUtilities::new(
            properties,
            Arc::new(ServerLogger::default()),
            (),
            ContiguousMemoryLayoutPolicy::new(4),
        );
        Self { utilities: Arc::new(utilities) }
    }

    fn utilities(&self) -> ServerUtilitiesHandle {
        self.utilities.clone() as ServerUtilitiesHandle
    }
}

/// Properties of no device, for a client loaded before any recording (never launched on).
fn placeholder_properties() -> DeviceProperties {
    use burn_cubecl::cubecl::ir::{HardwareProperties, MemoryDeviceProperties, VectorSize};
    let hardware = HardwareProperties {
        load_width: 128,
        plane_size_min: 32,
        plane_size_max: 32,
        max_bindings: 32,
        max_shared_memory_size: 48 << 10,
        max_cube_count: (u16::MAX as u32, u16::MAX as u32, u16::MAX as u32),
        max_units_per_cube: 1024,
        max_cube_dim: (1024, 1024, 64),
        num_streaming_multiprocessors: None,
        num_tensor_cores: None,
        min_tensor_cores_dim: None,
        num_cpu_cores: None,
        max_vector_size: VectorSize::MAX,
    };
    let memory = MemoryDeviceProperties { max_page_size: 1 << 30, alignment: 32 };
    DeviceProperties::new(Default::default(), memory, hardware, burn_cubecl::cubecl::profile::TimingMethod::System)
}

impl ServerCommunication for RecServer {
    const SERVER_COMM_ENABLED: bool = false;
}

fn unsupported() -> ServerError {
    ServerError::Generic {
        reason: "the recording runtime only records launches".into(),
        backtrace: BackTrace::capture(),
    }
}

impl ComputeServer for RecServer {
    type Kernel = Box<dyn CubeTask<CudaCompiler>>;
    type Info = ();
    type MemoryLayoutPolicy = ContiguousMemoryLayoutPolicy;
    type Storage = NoStorage;

    fn initialize_memory(&mut self, _: ManagedMemoryHandle, _: u64, _: StreamId) {}

    fn logger(&self) -> Arc<ServerLogger> {
        self.utilities.logger.clone()
    }

    fn utilities(&self) -> Arc<ServerUtilities<Self>> {
        self.utilities.clone()
    }

    fn read(&mut self, _: Vec<CopyDescriptor>, _: StreamId) -> DynFut<Result<Vec<Bytes>, ServerError>> {
        Box::pin(async { Err(unsupported()) })
    }

    fn write(&mut self, _: Vec<(CopyDescriptor, Bytes)>, _: StreamId) {}

    fn sync(&mut self, _: StreamId) -> DynFut<Result<(), ServerError>> {
        Box::pin(async { Ok(()) })
    }

    fn get_resource(&mut self, _: Binding, _: StreamId) -> Result<ManagedResource<()>, ServerError> {
        Err(unsupported())
    }

    unsafe fn launch(
        &mut self,
        kernel: Self::Kernel,
        count: CubeCount,
        args: KernelArguments,
        mode: ExecutionMode,
        _: StreamId,
    ) {
        if let Some(a) = active().as_mut() {
            a.recording.launches.push(Recorded { kernel, count, args, mode });
        }
    }

    fn flush(&mut self, _: StreamId) -> Result<(), ServerError> {
        Ok(())
    }

    fn memory_usage(&mut self, _: StreamId) -> Result<MemoryUsage, ServerError> {
        Err(unsupported())
    }

    fn memory_cleanup(&mut self, _: StreamId) {}

    fn start_profile(&mut self, _: StreamId) -> Result<ProfilingToken, ServerError> {
        Err(unsupported())
    }

    fn end_profile(&mut self, _: StreamId, _: ProfilingToken) -> Result<ProfileDuration, ProfileError> {
        Err(ProfileError::Unknown { reason: "nothing runs here".into(), backtrace: BackTrace::capture() })
    }

    fn allocation_mode(&mut self, _: MemoryAllocationMode, _: StreamId) {}
}

/// Storage that holds nothing: the recording server allocates no memory.
#[derive(Debug, Default)]
pub(crate) struct NoStorage;

impl ComputeStorage for NoStorage {
    type Resource = ();

    fn alignment(&self) -> usize {
        1
    }

    fn get(&mut self, _: &StorageHandle) {}

    fn alloc(&mut self, _: u64) -> Result<StorageHandle, IoError> {
        Err(IoError::UnsupportedIoOperation { backtrace: BackTrace::capture() })
    }

    fn dealloc(&mut self, _: StorageId) {}

    fn flush(&mut self) {}
}
