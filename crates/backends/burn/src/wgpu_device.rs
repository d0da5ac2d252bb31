//! burn-wgpu's adapters (feature `wgpu`): which ones this machine has, and one CubeCL device
//! per adapter zoo uses.
//!
//! zoo enumerates the adapters of the platform's graphics API (Vulkan on Linux and Windows,
//! Metal on macOS) itself, so `--device N` means the `N`-th adapter of that list (every type:
//! discrete, integrated, virtual, CPU) and a machine without a driver gets a reason instead of
//! CubeCL's panic. wgpu loads the Vulkan loader at run time: a build with this feature starts
//! anywhere.

use std::sync::Mutex;

use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
use burn::backend::wgpu::{init_device, RuntimeOptions, WgpuDevice, WgpuSetup};
use burn_cubecl::cubecl::future::block_on;

/// What zoo knows of one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Position in the platform API's adapter list (`--device`).
    pub index: usize,
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Graphics API, e.g. `Vulkan`.
    pub api: String,
    /// Driver and its version, as the driver reports them.
    pub driver: String,
    /// Discrete, integrated, virtual GPU or CPU.
    pub kind: String,
    /// Whether shaders may compute in f16 (`shader-f16`): `wgpu-f16` needs it.
    pub f16: bool,
    /// Whether the adapter offers subgroup (plane) operations.
    pub subgroups: bool,
}

impl AdapterSummary {
    fn of(index: usize, adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let features = adapter.features();
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            index,
            name: info.name.clone(),
            api: format!("{:?}", info.backend),
            driver: if driver.is_empty() { "unknown driver".into() } else { driver },
            kind: format!("{:?}", info.device_type),
            f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
        }
    }

    /// One line for `zoo list` and error messages.
    pub fn line(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "adapter {}: {} ({}, {}, driver {}; shader-f16: {}, subgroups: {})",
            self.index,
            self.name,
            self.api,
            self.kind,
            self.driver,
            yes(self.f16),
            yes(self.subgroups)
        )
    }
}

fn backend() -> wgpu::Backend {
    AutoGraphicsApi::backend()
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend().into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    })
}

fn raw_adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    block_on(instance.enumerate_adapters(backend().into()))
}

/// The adapters of the platform's graphics API, in `--device` order (empty without a driver).
pub fn adapters() -> Vec<AdapterSummary> {
    raw_adapters(&instance()).iter().enumerate().map(|(i, a)| AdapterSummary::of(i, a)).collect()
}

/// Why no adapter is there, for a machine without one.
pub fn no_adapter_reason() -> String {
    format!(
        "no {:?} adapter found (no GPU driver, or the Vulkan loader libvulkan.so.1 is missing: \
         scripts/install-vulkan.sh installs Mesa's software driver lavapipe; an NVIDIA GPU \
         without a display server: scripts/nvidia-vulkan.sh)",
        backend()
    )
}

/// The adapter at `index` and the CubeCL device zoo made on it (made once per process).
pub fn device(index: usize) -> Result<(AdapterSummary, WgpuDevice), String> {
    static DEVICES: Mutex<Vec<(usize, AdapterSummary, WgpuDevice)>> = Mutex::new(Vec::new());
    let mut devices = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, summary, device)) = devices.iter().find(|(i, ..)| *i == index) {
        return Ok((summary.clone(), device.clone()));
    }
    let instance = instance();
    let mut adapters = raw_adapters(&instance);
    if adapters.is_empty() {
        return Err(no_adapter_reason());
    }
    let count = adapters.len();
    if index >= count {
        return Err(format!("no adapter {index}: this machine has {count} (--device 0 to {})", count - 1));
    }
    let adapter = adapters.swap_remove(index);
    let summary = AdapterSummary::of(index, &adapter);
    let descriptor = wgpu::DeviceDescriptor {
        label: Some("zoo"),
        // Everything the adapter offers (CubeCL enables what it finds, shader-f16 and subgroups
        // included), less what only integrated GPUs' shared memory makes sense of and wgpu's
        // experimental features (NVIDIA's driver offers mesh shaders and cooperative matrices,
        // which wgpu refuses to enable unless experimental features are opted into as a whole).
        required_features: adapter
            .features()
            .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS | wgpu::Features::all_experimental_mask()),
        required_limits: adapter.limits(),
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    };
    let (gpu, queue) = block_on(adapter.request_device(&descriptor))
        .map_err(|e| format!("{}: cannot open the device: {e}", summary.line()))?;
    let setup = WgpuSetup { instance, adapter, device: gpu, queue, backend: backend() };
    let device = init_device(setup, runtime_options());
    devices.push((index, summary.clone(), device.clone()));
    Ok((summary, device))
}

/// Compute tasks CubeCL records before it submits them, unless `CUBECL_WGPU_MAX_TASKS` says
/// otherwise. CubeCL's default is 32; on an H200 through NVIDIA's Vulkan driver, Qwen2.5-0.5B's
/// decode (122 launches a step) ran at 306–360 tok/s with 16 against 274–289 with 32 and
/// 224 with 512 (docs/wgpu.md).
const TASKS_PER_SUBMIT: usize = 16;

fn runtime_options() -> RuntimeOptions {
    let mut options = RuntimeOptions::default();
    if std::env::var_os("CUBECL_WGPU_MAX_TASKS").is_none() {
        options.tasks_max = TASKS_PER_SUBMIT;
    }
    options
}
