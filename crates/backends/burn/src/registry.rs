//! Registrations of the Burn backends compiled in.

#[cfg(feature = "ndarray")]
mod ndarray {
    use burn::backend::NdArray;
    use burn::tensor::DType;
    use zoo_core::registry::{BackendEntry, BackendOptions};
    use zoo_core::{DynBackend, Result};

    use crate::Burn;

    fn create(_: &BackendOptions) -> Result<DynBackend> {
        Ok(DynBackend::new(Burn::<NdArray<f32>>::new("burn-ndarray", Default::default(), DType::F32)))
    }

    zoo_core::inventory::submit! {
        BackendEntry::usable("burn-ndarray", "Burn 0.21 with burn-ndarray: CPU, f32", create, 1)
    }
}

/// What the GPU registrations share: quiet probes and CubeCL's kernel cache.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod gpu {
    /// Runs `f`, turning a panic into an error without printing it (CubeCL panics where a
    /// library would return an error).
    pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::panic::set_hook(previous);
        result
    }

    /// Points CubeCL's compiled-kernel cache at zoo's cache directory (`kernels/cubecl/<build>`), unless
    /// a `cubecl.toml` already names one, before CubeCL first reads its configuration.
    pub(super) fn cache_kernels() {
        use burn_cubecl::cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            cache_was_empty();
            let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
            if config.compilation.cache.is_none() {
                config.compilation.cache = Some(CacheConfig::File(kernel_cache()));
            }
            // `set` refuses once CubeCL has read its configuration (another Burn user in this
            // process): then its own settings stay.
            let _ = quietly(|| CubeClRuntimeConfig::set(config));
        });
    }

    /// Where zoo keeps CubeCL's compiled kernels, per build of zoo ([`crate::kernel_cache`]).
    fn kernel_cache() -> std::path::PathBuf {
        crate::kernel_cache("cubecl")
    }

    /// Whether zoo's kernel cache held nothing when this process first looked (before the
    /// availability probe compiled its first kernel into it).
    static CACHE_WAS_EMPTY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

    fn cache_was_empty() -> bool {
        *CACHE_WAS_EMPTY
            .get_or_init(|| std::fs::read_dir(kernel_cache()).map_or(true, |mut entries| entries.next().is_none()))
    }

    /// What to tell the user when zoo's kernel cache was empty: this run compiles the kernels.
    #[cfg(feature = "cuda")]
    pub(super) fn first_run_note() -> Option<String> {
        cache_was_empty().then(|| {
            let dir = kernel_cache();
            format!("first run on this machine: compiling GPU kernels (seconds; cached in {})", dir.display())
        })
    }

    /// The message a panic carried, if it was a string.
    #[cfg(feature = "wgpu")]
    pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        let msg =
            payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()));
        msg.unwrap_or_else(|| "no message".into())
    }
}

/// Registers the GPU backend `$name` computing in `$dtype`, created by the enclosing module's
/// `create_with`, usable where `$availability` says.
#[cfg(any(feature = "cuda", feature = "wgpu"))]
macro_rules! register_gpu {
    ($name:literal, $dtype:expr, $availability:expr, $priority:literal, $description:literal) => {
        zoo_core::inventory::submit! {
            BackendEntry {
                name: $name,
                description: $description,
                availability: $availability,
                create: |o| create_with(o, $name, $dtype),
                priority: $priority,
            }
        }
    };
}

#[cfg(feature = "cuda")]
mod cuda {
    use burn::backend::cuda::{Cuda, CudaDevice};
    use burn::tensor::{DType, Tensor};
    use zoo_core::registry::{Availability, BackendEntry, BackendOptions};
    use zoo_core::{DynBackend, Error, Result};

    use super::gpu::{cache_kernels, first_run_note, quietly};
    use crate::Burn;

    type Gpu = Cuda<f32, i32>;

    fn probe(device: usize) -> std::result::Result<(), String> {
        let result = quietly(|| {
            let t = Tensor::<Gpu, 1>::zeros([1], &CudaDevice::new(device));
            t.into_data();
        });
        result.map_err(|e| {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            let detail = msg.map_or_else(String::new, |m| format!("; CubeCL: {m}"));
            format!("no usable CUDA device {device} (no NVIDIA driver, no GPU, or no such ordinal{detail})")
        })
    }

    fn availability() -> Availability {
        cache_kernels();
        match probe(0) {
            Ok(()) => Availability::Usable,
            Err(why) => Availability::Unusable(why),
        }
    }

    fn create_with(options: &BackendOptions, name: &'static str, dtype: DType) -> Result<DynBackend> {
        cache_kernels();
        let note = first_run_note();
        probe(options.device).map_err(|message| Error::Backend { backend: name.into(), message })?;
        let backend = Burn::<Gpu>::new(name, CudaDevice::new(options.device), dtype)
            .with_hooks(crate::cuda_device::hooks())
            .with_startup_note(note);
        Ok(DynBackend::new(backend))
    }

    register_gpu!(
        "cuda",
        DType::BF16,
        availability,
        100,
        "Burn 0.21 burn-cuda on an NVIDIA GPU, bf16 (--device N picks the GPU)"
    );
    register_gpu!("cuda-f16", DType::F16, availability, 99, "Burn 0.21 burn-cuda on an NVIDIA GPU, f16");
    register_gpu!(
        "cuda-f32",
        DType::F32,
        availability,
        98,
        "Burn 0.21 burn-cuda on an NVIDIA GPU, f32 storage (matmuls in TF32 on tensor cores)"
    );
}

#[cfg(feature = "wgpu")]
mod wgpu {
    use burn::backend::wgpu::{CubeBackend, WgpuRuntime};
    use burn::tensor::{DType, Tensor};
    use zoo_core::registry::{Availability, BackendEntry, BackendOptions};
    use zoo_core::{DynBackend, Error, Result};

    use super::gpu::{cache_kernels, panic_message, quietly};
    use crate::wgpu_device::{self, AdapterSummary};
    use crate::Burn;

    /// burn-wgpu without Burn's fusion layer: zoo's kernels launch on CubeCL tensors directly.
    type Gpu = CubeBackend<WgpuRuntime, f32, i32, u32>;

    /// Opens adapter `index` and runs a one-element computation on it; `f16` also asks for
    /// `shader-f16`. Panics (CubeCL's way of failing) become the reason.
    fn probe(
        index: usize,
        f16: bool,
    ) -> std::result::Result<(AdapterSummary, burn::backend::wgpu::WgpuDevice), String> {
        let opened =
            quietly(|| wgpu_device::device(index)).map_err(|e| format!("wgpu panicked: {}", panic_message(&e)))?;
        let (summary, device) = opened?;
        if f16 && !summary.f16 {
            return Err(format!("{} has no shader-f16 (use `wgpu`, f32)", summary.line()));
        }
        quietly(|| Tensor::<Gpu, 1>::zeros([1], &device).into_data())
            .map_err(|e| format!("{}: a first computation failed: {}", summary.line(), panic_message(&e)))?;
        Ok((summary, device))
    }

    fn availability(f16: bool) -> Availability {
        cache_kernels();
        match probe(0, f16) {
            Ok(_) => Availability::Usable,
            Err(why) => Availability::Unusable(why),
        }
    }

    fn create_with(options: &BackendOptions, name: &'static str, dtype: DType) -> Result<DynBackend> {
        cache_kernels();
        let (summary, device) = probe(options.device, dtype == DType::F16)
            .map_err(|message| Error::Backend { backend: name.into(), message })?;
        // No first-run note: CubeCL's WGSL path keeps no compiled-kernel cache (shaders are
        // translated in-process at each run), so the note would repeat on every run.
        let backend = Burn::<Gpu>::new(name, device, dtype)
            .with_hooks(crate::wgpu_upload::hooks())
            .with_device_description(Some(summary.line()));
        Ok(DynBackend::new(backend))
    }

    // Priority 0, never the default: adapter 0 may be a CPU emulation (lavapipe), slower than
    // the CPU backends; `--backend wgpu` asks for it.
    register_gpu!(
        "wgpu",
        DType::F32,
        || availability(false),
        0,
        "Burn 0.21 burn-wgpu (Vulkan/Metal/DX12: any GPU), f32 (--device N picks the adapter)"
    );
    register_gpu!(
        "wgpu-f16",
        DType::F16,
        || availability(true),
        0,
        "Burn 0.21 burn-wgpu, f16 (adapters with shader-f16)"
    );
}
