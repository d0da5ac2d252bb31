//! burn-cuda's [`DeviceHooks`](crate::DeviceHooks): weight uploads at the host's copy speed,
//! exact-size zeroed allocations (the KV cache at its capacity), the device's free memory, and
//! prefill's `x · wᵀ` through cuBLAS on Burn's buffers.
//!
//! Burn's `from_data` (CubeCL 0.10) copies a weight twice into fresh host allocations before a
//! pageable host-to-device transfer; on the GPU machine that ran at 0.3–0.4 GB/s, most of it
//! spent faulting in new pages. Here each weight goes from the memory-mapped checkpoint through
//! one pinned staging buffer, allocated once and reused, straight into a contiguous device
//! allocation of its own: one host copy, one DMA. (Quantised weights arrive here dequantised
//! to f32 on the host; the device casts them.)

use std::sync::Mutex;

use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_cubecl::cubecl::cuda::{CudaDevice, CudaRuntime};
use burn_cubecl::cubecl::Runtime;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeBackend;
use cudarc::cublas::{result as blas, sys as blas_sys};
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
    if bytes.len() != shape[0] * shape[1] * dtype.size() {
        return None;
    }
    resident(shape, dtype, device, |dst, _| copy_through_staging(bytes, dst).is_ok())
}

/// A `[rows, cols]` tensor of `dtype` in a device allocation of its own, exactly its size (it
/// lives as long as the model or the cache: no pool page rounded up for activations), whose
/// bytes `fill(address, length)` writes on CubeCL's runner thread, where its CUDA context is
/// current; `None` when the tensor is empty or any step fails.
fn resident(
    shape: [usize; 2],
    dtype: DType,
    device: &CudaDevice,
    fill: impl FnOnce(sys::CUdeviceptr, usize) -> bool + Send,
) -> Option<Tensor<Gpu, 2>> {
    let len = shape[0] * shape[1] * dtype.size();
    if len == 0 {
        return None;
    }
    let client = CudaRuntime::client(device);
    let handle = client.memory_persistent_allocation(len, |len| client.empty(len)).ok()?;
    let dst = client.get_resource(handle.clone()).ok()?.resource().ptr;
    if !client.exclusive(move || fill(dst, len)).ok()? {
        return None;
    }
    let t = CubeTensor::new_contiguous(client, device.clone(), shape.into(), handle, dtype);
    Some(Tensor::from_primitive(TensorPrimitive::Float(t)))
}

/// The hooks for burn-cuda.
pub fn hooks() -> crate::DeviceHooks<Gpu> {
    crate::DeviceHooks {
        upload,
        zeros,
        free_bytes,
        matmul_nt,
        batched_matmul,
        take_notes: crate::cuda_graph::take_notes,
        run_step: crate::cuda_graph::run_step,
    }
}

/// Whether cuBLAS can be called: cudarc loads it at run time (and says whether it loads),
/// unless a build that also has candle's CUDA backend links it at start-up.
#[cfg(not(feature = "cudarc-linked"))]
fn cublas_present() -> bool {
    // SAFETY: only reads whether the library loads.
    unsafe { blas_sys::is_culib_present() }
}

/// Linked at start-up: present, or the process would not have started.
#[cfg(feature = "cudarc-linked")]
fn cublas_present() -> bool {
    true
}

/// The cuBLAS handle, created on CubeCL's runner thread at the first matmul (its context).
static BLAS: Mutex<Option<usize>> = Mutex::new(None);

/// `x · wᵀ` (`x: [n, k]`, `w: [out, k]`) through cuBLAS: see [`batched_matmul`].
pub(crate) fn matmul_nt(x: &Tensor<Gpu, 2>, w: &Tensor<Gpu, 2>) -> Option<Tensor<Gpu, 2>> {
    let ([n, _], [out, _]) = (x.dims(), w.dims());
    let y = batched_matmul(&x.clone().unsqueeze(), &w.clone().unsqueeze(), true, 1.0)?;
    Some(y.reshape([n, out]))
}

/// `alpha · a · bᵀ` (`transpose_b`, `b: [batch, n, k]`) or `alpha · a · b` (`b: [batch, k, n]`)
/// for `a: [batch, m, k]`, through cuBLAS's strided-batched GEMM with f32 accumulation, as a new
/// contiguous `[batch, m, n]` tensor. The operands may be strided views (a slice of the KV
/// cache) as long as their last dimension is contiguous. `None` when the shapes or types don't
/// fit, cuBLAS is not installed, or a call fails: the caller then uses Burn's matmul. cuBLAS
/// runs on a stream of its own, ordered with CubeCL's on the device (see `blas_lane`).
pub(crate) fn batched_matmul(
    a: &Tensor<Gpu, 3>,
    b: &Tensor<Gpu, 3>,
    transpose_b: bool,
    alpha: f32,
) -> Option<Tensor<Gpu, 3>> {
    let ([batch, m, k], [batch_b, b1, b2]) = (a.dims(), b.dims());
    let (n, k_b) = if transpose_b { (b1, b2) } else { (b2, b1) };
    if batch != batch_b || k != k_b {
        return None;
    }
    // Row-major `c = a · op(b)` is column-major `cᵀ = op(b)ᵀ · aᵀ`: cuBLAS's first operand is `b`.
    Operands::new(a, b, [batch, m, n, k])?.multiply((transpose_b, false), (n, m, k), alpha, [batch, m, n])
}

/// cuBLAS's name for a float type zoo multiplies in.
fn blas_type(dtype: DType) -> Option<blas_sys::cudaDataType> {
    match dtype {
        DType::BF16 => Some(blas_sys::cudaDataType::CUDA_R_16BF),
        DType::F16 => Some(blas_sys::cudaDataType::CUDA_R_16F),
        DType::F32 => Some(blas_sys::cudaDataType::CUDA_R_32F),
        _ => None,
    }
}

/// `aᵀ · b` (`a: [n, m]`, `b: [n, k]`) through cuBLAS as a new contiguous `[m, k]` tensor: the
/// weight gradient of `x · wᵀ` (`a` the output's gradient, `b` the input), without
/// materialising a transpose. See [`batched_matmul_tn`].
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
pub(crate) fn matmul_tn(a: &Tensor<Gpu, 2>, b: &Tensor<Gpu, 2>) -> Option<Tensor<Gpu, 2>> {
    let ([_, m], [_, k]) = (a.dims(), b.dims());
    let c = batched_matmul_tn(&a.clone().unsqueeze(), &b.clone().unsqueeze(), 1.0)?;
    Some(c.reshape([m, k]))
}

/// `alpha · aᵀ · b` for each matrix of `a: [batch, n, m]` and `b: [batch, n, k]` (one type, last
/// dimensions contiguous) through cuBLAS, as a new contiguous `[batch, m, k]` tensor, without
/// materialising a transpose (the gradients of products). `None` when the operands don't fit
/// or a call fails: the caller then uses Burn's ops.
#[cfg_attr(not(feature = "autodiff"), allow(dead_code))]
pub(crate) fn batched_matmul_tn(a: &Tensor<Gpu, 3>, b: &Tensor<Gpu, 3>, alpha: f32) -> Option<Tensor<Gpu, 3>> {
    let ([batch, n, m], [batch_b, n_b, k]) = (a.dims(), b.dims());
    if batch != batch_b || n != n_b {
        return None;
    }
    // Row-major `c = aᵀ · b` is column-major `cᵀ (k × m) = b_c · a_cᵀ`, where `b_c` (k × n) and
    // `a_c` (m × n) are the row-major operands read column-major.
    Operands::new(a, b, [batch, n, m, k])?.multiply((false, true), (k, m, n), alpha, [batch, m, k])
}

/// The operands of a batched product as cuBLAS reads them, with their (batch stride, leading
/// dimension) and cuBLAS's name for their type.
struct Operands {
    a: CubeTensor<CudaRuntime>,
    b: CubeTensor<CudaRuntime>,
    a_strides: (usize, usize),
    b_strides: (usize, usize),
    dtype: DType,
    data_type: blas_sys::cudaDataType,
}

impl Operands {
    /// `a` and `b` when they are of one type cuBLAS multiplies, every size of `sizes` is in
    /// cuBLAS's range and both last dimensions are contiguous.
    fn new(a: &Tensor<Gpu, 3>, b: &Tensor<Gpu, 3>, sizes: [usize; 4]) -> Option<Self> {
        let dtype = a.dtype();
        let data_type = blas_type(dtype)?;
        let fits = |d: usize| d > 0 && d <= i32::MAX as usize;
        if b.dtype() != dtype || !sizes.into_iter().all(fits) {
            return None;
        }
        let (a, b) = (a.clone().into_primitive().tensor(), b.clone().into_primitive().tensor());
        let (a_strides, b_strides) = (blas_strides(&a)?, blas_strides(&b)?);
        Some(Self { a, b, a_strides, b_strides, dtype, data_type })
    }

    /// cuBLAS's column-major `alpha · op(b) · op(a)` (`transpose` says which `op` transposes),
    /// `(m, n, k)` in cuBLAS's terms, as a new contiguous row-major tensor of `shape`.
    fn multiply(
        self,
        (transpose_first, transpose_second): (bool, bool),
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        shape: [usize; 3],
    ) -> Option<Tensor<Gpu, 3>> {
        let (b_batch, ldb) = self.b_strides;
        let (a_batch, lda) = self.a_strides;
        let gemm = Gemm {
            transpose_first,
            transpose_second,
            m,
            n,
            k,
            first: (ldb, b_batch),
            second: (lda, a_batch),
            batch: shape[0],
            alpha,
            data_type: self.data_type,
        };
        gemm.launch(&self.b, &self.a, shape, self.dtype)
    }
}

/// A batch of matrices' (batch stride, leading dimension) in elements, as cuBLAS reads them:
/// `None` unless the last dimension is contiguous.
fn blas_strides(t: &CubeTensor<CudaRuntime>) -> Option<(usize, usize)> {
    let s = t.meta.strides();
    (s[2] == 1 && s[1] <= i32::MAX as usize).then(|| (s[0], s[1].max(1)))
}

/// One column-major strided-batched `c = alpha · op(first) · op(second)` (`op` transposes
/// where asked), `c: m × n` contiguous per batch; operands as (leading dimension, batch
/// stride) in elements.
#[derive(Clone, Copy)]
struct Gemm {
    transpose_first: bool,
    transpose_second: bool,
    m: usize,
    n: usize,
    k: usize,
    first: (usize, usize),
    second: (usize, usize),
    batch: usize,
    alpha: f32,
    data_type: blas_sys::cudaDataType,
}

impl Gemm {
    /// Runs on `first` and `second`'s buffers into a new contiguous tensor of `shape` (row-major,
    /// `m · n` elements per batch), or `None` when a buffer cannot be resolved or cuBLAS fails.
    fn launch<const D: usize>(
        self,
        first: &CubeTensor<CudaRuntime>,
        second: &CubeTensor<CudaRuntime>,
        shape: [usize; D],
        dtype: DType,
    ) -> Option<Tensor<Gpu, D>> {
        if !cublas_present() {
            return None;
        }
        let client = first.client.clone();
        let c = client.empty(shape.iter().product::<usize>() * dtype.size());
        let ptr = |h: burn_cubecl::cubecl::server::Handle| client.get_resource(h).ok().map(|r| r.resource().ptr);
        let (p1, p2, pc) = (ptr(first.handle.clone())?, ptr(second.handle.clone())?, ptr(c.clone())?);
        crate::cube::count_launch();
        let device = first.device.index as u32;
        let ordered = crate::blas_lane::enabled()
            .then(|| crate::blas_lane::ordered(&client, device, move |handle| self.queue(handle, p1, p2, pc)).ok())
            .flatten();
        let done = match ordered {
            Some(work) => work.is_ok(),
            None => client.exclusive(move || self.run_synchronised(p1, p2, pc).is_ok()).ok()?,
        };
        if !done {
            return None;
        }
        let t = CubeTensor::new_contiguous(client, first.device.clone(), shape.into(), c, dtype);
        Some(Tensor::from_primitive(TensorPrimitive::Float(t)))
    }

    /// Runs on CubeCL's runner thread (its CUDA context current): waits for all queued work,
    /// multiplies on the process handle's (default) stream, and waits for that.
    fn run_synchronised(self, first: u64, second: u64, c: u64) -> Result<(), String> {
        result::ctx::synchronize().map_err(|e| e.to_string())?;
        self.queue(blas_handle()?, first, second, c)?;
        result::ctx::synchronize().map_err(|e| e.to_string())
    }

    /// Queues the product through `handle`, on the stream it is bound to (on CubeCL's runner
    /// thread, its CUDA context current).
    fn queue(self, handle: blas_sys::cublasHandle_t, first: u64, second: u64, c: u64) -> Result<(), String> {
        let beta = 0.0f32;
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        // SAFETY: the pointers are live device buffers of the shapes and strides checked by
        // `batched_matmul`; alpha and beta are f32 as CUBLAS_COMPUTE_32F requires.
        unsafe {
            blas::gemm_strided_batched_ex(
                handle,
                op(self.transpose_first),
                op(self.transpose_second),
                self.m as i32,
                self.n as i32,
                self.k as i32,
                (&self.alpha as *const f32).cast(),
                first as *const std::ffi::c_void,
                self.data_type,
                self.first.0 as i32,
                self.first.1 as i64,
                second as *const std::ffi::c_void,
                self.data_type,
                self.second.0 as i32,
                self.second.1 as i64,
                (&beta as *const f32).cast(),
                c as *mut std::ffi::c_void,
                self.data_type,
                self.m as i32,
                (self.m * self.n) as i64,
                self.batch as i32,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
            .map_err(|e| format!("{e:?}"))
        }
    }
}

/// The process's cuBLAS handle (created once, kept for the process's life).
fn blas_handle() -> Result<blas_sys::cublasHandle_t, String> {
    let mut slot = BLAS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = *slot {
        return Ok(handle as blas_sys::cublasHandle_t);
    }
    let handle = blas::create_handle().map_err(|e| format!("{e:?}"))?;
    *slot = Some(handle as usize);
    Ok(handle)
}

/// A zeroed `[rows, cols]` tensor of `dtype` in a device allocation of its own.
fn zeros(shape: [usize; 2], dtype: DType, device: &CudaDevice) -> Option<Tensor<Gpu, 2>> {
    resident(shape, dtype, device, |dst, len| {
        // Stream-ordered allocation (see `copy_through_staging`): wait, then clear it.
        // SAFETY: `dst` is a live device allocation of `len` bytes.
        result::ctx::synchronize().and_then(|()| unsafe { result::memset_d8_sync(dst, 0, len) }).is_ok()
    })
}

/// Bytes of memory free on `device` now (memory CubeCL's pools hold counts as used).
fn free_bytes(device: &CudaDevice) -> Option<u64> {
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
