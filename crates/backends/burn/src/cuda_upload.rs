//! burn-cuda's [`DeviceHooks`](crate::DeviceHooks): weight uploads at the host's copy speed,
//! exact-size zeroed allocations (the KV cache at its capacity) and the device's free memory.
//!
//! Burn's `from_data` (CubeCL 0.10) copies a weight twice into fresh host allocations before a
//! pageable host-to-device transfer; on the GPU machine that ran at 0.3–0.4 GB/s, most of it
//! spent faulting in new pages. Here each weight goes from the memory-mapped checkpoint through
//! one pinned staging buffer, allocated once and reused, straight into a contiguous device
//! allocation of its own: one host copy, one DMA.

use std::sync::Mutex;

use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_cubecl::cubecl::cuda::{CudaDevice, CudaRuntime};
use burn_cubecl::cubecl::Runtime;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;
use cudarc::driver::{result, sys};

/// Bytes staged per transfer.
const STAGE_BYTES: usize = 32 << 20;

type Gpu = CubeBackend<CudaRuntime, f32, i32, u8>;

/// Page-locked host memory from `cuMemHostAlloc`.
struct Pinned {
    ptr: *mut u8,
}

// SAFETY: the buffer is plain memory owned by this value; access goes through `STAGING`'s lock.
unsafe impl Send for Pinned {}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `malloc_host` and is freed once.
        unsafe {
            let _ = result::free_host(self.ptr.cast());
        }
    }
}

/// The staging buffer, allocated on first use (on the device's runner thread).
static STAGING: Mutex<Option<Pinned>> = Mutex::new(None);

/// `bytes` (row-major `shape`, element type `dtype`) as a resident tensor on `device`; `None`
/// when any CUDA call fails, so the caller can fall back to Burn's own upload.
fn upload(bytes: &[u8], shape: [usize; 2], dtype: DType, device: &CudaDevice) -> Option<Tensor<Gpu, 2>> {
    if bytes.is_empty() || bytes.len() != shape[0] * shape[1] * dtype.size() {
        return None;
    }
    let client = CudaRuntime::client(device);
    // Weights live as long as the model: an exact-size allocation of their own, not a slice of
    // a pool page rounded up for activations.
    let handle = client.memory_persistent_allocation(bytes.len(), |len| client.empty(len)).ok()?;
    let dst = client.get_resource(handle.clone()).ok()?.resource().ptr;
    // On CubeCL's runner thread, where its CUDA context is current.
    let copied = client.exclusive(move || copy_through_staging(bytes, dst).is_ok()).ok()?;
    if !copied {
        return None;
    }
    let t = CubeTensor::new_contiguous(client, device.clone(), shape.into(), handle, dtype);
    Some(Tensor::from_primitive(TensorPrimitive::Float(t)))
}

/// The hooks for burn-cuda.
pub(crate) fn hooks() -> crate::DeviceHooks<Gpu> {
    crate::DeviceHooks { upload, zeros, free_bytes }
}

/// A zeroed `[rows, cols]` tensor of `dtype` in a device allocation of its own.
pub(crate) fn zeros(shape: [usize; 2], dtype: DType, device: &CudaDevice) -> Option<Tensor<Gpu, 2>> {
    let len = shape[0] * shape[1] * dtype.size();
    if len == 0 {
        return None;
    }
    let client = CudaRuntime::client(device);
    let handle = client.memory_persistent_allocation(len, |len| client.empty(len)).ok()?;
    let dst = client.get_resource(handle.clone()).ok()?.resource().ptr;
    let zeroed = client
        .exclusive(move || {
            // Stream-ordered allocation (see `copy_through_staging`): wait, then clear it.
            // SAFETY: `dst` is a live device allocation of `len` bytes.
            result::ctx::synchronize().and_then(|()| unsafe { result::memset_d8_sync(dst, 0, len) }).is_ok()
        })
        .ok()?;
    if !zeroed {
        return None;
    }
    let t = CubeTensor::new_contiguous(client, device.clone(), shape.into(), handle, dtype);
    Some(Tensor::from_primitive(TensorPrimitive::Float(t)))
}

/// Bytes of memory free on `device` now (memory CubeCL's pools hold counts as used).
pub(crate) fn free_bytes(device: &CudaDevice) -> Option<u64> {
    let client = CudaRuntime::client(device);
    let info = client.exclusive(|| result::mem_get_info().ok()).ok()??;
    Some(info.0 as u64)
}

/// Copies `bytes` to device address `dst` through the pinned staging buffer.
fn copy_through_staging(bytes: &[u8], dst: sys::CUdeviceptr) -> Result<(), result::DriverError> {
    let mut staging = STAGING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if staging.is_none() {
        // SAFETY: a plain page-locked allocation; freed by `Pinned`'s drop.
        let ptr = unsafe { result::malloc_host(STAGE_BYTES, 0)? };
        *staging = Some(Pinned { ptr: ptr.cast() });
    }
    let Some(buffer) = staging.as_ref() else { return Ok(()) };
    // CubeCL allocates stream-ordered: wait until the destination exists before copying to it
    // outside that stream.
    result::ctx::synchronize()?;
    for (i, chunk) in bytes.chunks(STAGE_BYTES).enumerate() {
        // SAFETY: `chunk` fits the staging buffer (`STAGE_BYTES` long); the synchronous copy
        // from page-locked memory has finished when it returns, so the buffer is free again.
        unsafe {
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), buffer.ptr, chunk.len());
            let staged = std::slice::from_raw_parts(buffer.ptr, chunk.len());
            result::memcpy_htod_sync(dst + (i * STAGE_BYTES) as u64, staged)?;
        }
    }
    Ok(())
}
