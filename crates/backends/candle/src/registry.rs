//! Registrations: `candle` on the CPU, and `candle-cuda` when built with the `cuda` feature.
//! The CPU entry ranks below zoo's own ndarray backend; the CUDA entry, when a GPU is usable,
//! ranks above every CPU backend and below Burn's `cuda`, the GPU default.

use zoo_core::registry::{BackendEntry, BackendOptions};
use zoo_core::{DynBackend, Result};

use crate::Candle;

fn create_cpu(options: &BackendOptions) -> Result<DynBackend> {
    Ok(DynBackend::new(Candle::cpu(options.threads)))
}

zoo_core::inventory::submit! {
    BackendEntry::usable("candle", "candle on the CPU: f32, weights converted at load", create_cpu, 5)
}

#[cfg(feature = "cuda")]
mod cuda {
    use zoo_core::registry::Availability;

    use super::*;

    fn create(options: &BackendOptions) -> Result<DynBackend> {
        Ok(DynBackend::new(Candle::cuda(options.device)?))
    }

    /// Usable when CUDA device 0 opens (a driver is loaded and a GPU is visible).
    fn availability() -> Availability {
        match candle_core::Device::new_cuda(0) {
            Ok(_) => Availability::Usable,
            Err(e) => Availability::Unusable(format!("no usable CUDA device: {}", crate::first_line(&e))),
        }
    }

    zoo_core::inventory::submit! {
        BackendEntry {
            name: "candle-cuda",
            description: "candle on an NVIDIA GPU: bf16/f16 weights as stored, activations in their dtype (--device N picks the GPU)",
            availability,
            create,
            priority: 50,
        }
    }
}
