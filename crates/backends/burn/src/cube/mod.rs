//! zoo's own CubeCL kernels, launched on Burn's client and buffers (any CubeCL runtime; zoo
//! registers them for `cuda`). Each kernel has a test against the Burn-op composition it
//! replaces (`tests/kernels.rs`, run on the GPU by `scripts/gpu-check.sh`).

/// Launches the `#[cube(launch_unchecked)]` kernel `$kernel` on runtime `R` with the client, the
/// grid (a `(CubeCount, CubeDim)` pair, as [`elementwise_count`] and [`row_grid`] give) and
/// the arguments that follow, counted by [`count_launch`]: every launch of zoo's kernels
/// goes through here, so none goes uncounted. It expands to the unsafe launch: the caller's
/// `unsafe` block and its `SAFETY` comment vouch for the kernel's indexing.
macro_rules! launch {
    ($($kernel:ident)::+, $client:expr, $grid:expr, $($arg:expr),+ $(,)?) => {{
        $crate::cube::count_launch();
        let (count, dim): (::burn_cubecl::cubecl::prelude::CubeCount, ::burn_cubecl::cubecl::prelude::CubeDim) = $grid;
        // A step being recorded for replay (`record`) sends the launch to the recorder too.
        #[cfg(feature = "cuda")]
        if $crate::cube::record::recording() {
            $($kernel)::+::launch_unchecked::<$crate::cube::record::RecRuntime>(
                &$crate::cube::record::client(),
                count.clone(),
                dim,
                $($arg),+
            );
            $crate::cube::record::end_launch();
        }
        $($kernel)::+::launch_unchecked::<R>($client, count, dim, $($arg),+)
    }};
}

mod argmax;
mod attention;
mod attention_launch;
mod elementwise;
pub(crate) mod fence;
pub(crate) mod first_round;
mod gemv;
mod gemv_launch;
mod gemv_mma;
mod gemv_mma_launch;
mod gemv_mma_split;
mod gemv_rows;
#[cfg(feature = "cuda")]
pub(crate) mod record;

use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::{Int, Tensor, TensorPrimitive};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::server::{MemoryLayout, MemoryLayoutDescriptor};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use zoo_core::{AttentionSpec, Qkv, SeqSpan};

use crate::kernels::{Kernels, KvView, RowNorm, RowTable};
use attention_launch::{decode_launch, NewRows};
use gemv_launch::{gated_gemv_rows_launch, gemv_launch, gemv_many_rows_launch, gemv_rows_launch, normed_rows, Folded};
pub use gemv_mma_launch::tensor_core_launches;

/// Kernels zoo has launched on a GPU in this process (its own and cuBLAS calls).
static LAUNCHES: AtomicU64 = AtomicU64::new(0);

/// Counts one kernel launch (see [`Kernels::launches`]).
pub(crate) fn count_launch() {
    count_launches(1);
}

/// Counts `n` kernel launches (a replayed step's kernels, launched as one CUDA graph).
pub(crate) fn count_launches(n: u64) {
    LAUNCHES.fetch_add(n, Ordering::Relaxed);
}

/// Decode steps up to this many rows use the GEMV kernel; longer ones Burn's matmul.
pub const GEMV_MAX_ROWS: usize = 8;

type Cube<R, F, I, BT> = CubeBackend<R, F, I, BT>;

fn float<R: CubeRuntime, B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>>(
    t: &Tensor<B, 2>,
) -> CubeTensor<R> {
    dense(t.clone().into_primitive().tensor())
}

fn int<R: CubeRuntime, B: burn::tensor::backend::Backend<IntTensorPrimitive = CubeTensor<R>>>(
    t: &Tensor<B, 1, Int>,
) -> CubeTensor<R> {
    dense(t.clone().into_primitive())
}

/// `t` with unit stride along its last dimension (rows may be pitched: kernels index rows
/// through `stride(0)`); copies only when the last dimension is strided.
fn dense<R: CubeRuntime>(t: CubeTensor<R>) -> CubeTensor<R> {
    if t.meta.strides().last().is_none_or(|&s| s == 1) {
        t
    } else {
        into_contiguous(t)
    }
}

/// The flat buffer behind the rank-2 `t`, as a kernel argument: kernels take arrays plus row
/// strides as scalars, which travel in the launch's parameters (a tensor argument's shape and
/// strides are uploaded to the GPU on every launch).
fn array<R: CubeRuntime, L: Runtime>(t: &CubeTensor<R>) -> ArrayArg<L> {
    #[cfg(feature = "cuda")]
    if std::any::TypeId::of::<L>() == std::any::TypeId::of::<record::RecRuntime>() {
        record::push_handle(&t.handle);
    }
    let shape = t.meta.shape();
    let span = match shape.len() {
        0 => 1,
        1 => shape[0],
        _ => (shape[0].max(1) - 1) * t.meta.strides()[0] + shape[1..].iter().product::<usize>(),
    };
    // SAFETY: `span` elements from the handle's offset are the tensor's own.
    unsafe { ArrayArg::from_raw_parts_binding(t.handle.clone().binding(), span) }
}

/// Elements between the starts of two rows of the rank-2 `t`.
fn row_stride<R: CubeRuntime>(t: &CubeTensor<R>) -> u32 {
    t.meta.strides().first().map_or(0, |&s| s as u32)
}

/// Whether every row of `t` starts on a multiple of `width` elements.
fn rows_aligned<R: CubeRuntime>(t: &CubeTensor<R>, width: usize) -> bool {
    t.meta.strides().iter().rev().skip(1).all(|s| s % width == 0)
}

fn wrap<R: CubeRuntime, B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>>(
    t: CubeTensor<R>,
) -> Tensor<B, 2> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

fn empty_like<R: CubeRuntime>(like: &CubeTensor<R>, rows: usize, cols: usize) -> CubeTensor<R> {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), [rows, cols].into(), like.dtype)
}

/// Contiguous `[rows, cols]` tensors of `like`'s type, one per `cols`, reserved together: one
/// request to CubeCL's device thread instead of one per output (a decode step is bound by that
/// thread's work on small models).
fn empty_many<R: CubeRuntime>(like: &CubeTensor<R>, rows: usize, cols: &[usize]) -> Vec<CubeTensor<R>> {
    let descriptors = cols.iter().map(|&c| MemoryLayoutDescriptor::contiguous([rows, c].into(), like.dtype.size()));
    let layouts = like.client.empty_tensors(descriptors.collect());
    let shapes = cols.iter().map(|&c| [rows, c]);
    let tensor = |(layout, shape): (MemoryLayout, [usize; 2])| {
        CubeTensor::new_contiguous(like.client.clone(), like.device.clone(), shape.into(), layout.memory, like.dtype)
    };
    layouts.into_iter().zip(shapes).map(tensor).collect()
}

/// Whether the switch `var` is on: it is unless set to `0` (the `ZOO_…=0` switches that turn a
/// GPU path off, for measuring). Each caller keeps the answer in a `OnceLock`, so the
/// environment is read once per process, not per launch.
pub(crate) fn switched_on(var: &str) -> bool {
    std::env::var(var).map_or(true, |v| v != "0")
}

/// Whether `client`'s device runs zoo's plane kernels (GEMVs, norms, argmax, decode attention):
/// plane operations, and planes of exactly 32 lanes (the GEMVs give a plane of 32 units to each
/// output feature, the block reductions keep 32 per-plane partials). CUDA has both; wgpu has
/// them on NVIDIA through Vulkan, not on CPU adapters (CubeCL turns subgroups off there:
/// lavapipe) nor where subgroups are narrower or vary (Intel, some AMD); those fall back to Burn.
pub fn runs_plane_kernels<R: CubeRuntime>(client: &ComputeClient<R>) -> bool {
    let props = client.properties();
    props.features.plane.contains(burn_cubecl::cubecl::features::Plane::Ops)
        && props.hardware.plane_size_min == 32
        && props.hardware.plane_size_max == 32
}

/// Vectors of a GEMV's input row that each cube stages in shared memory (`gemv::stage_row`),
/// or 0 (each plane reads and normalises `x` itself). Staging trades a serial prologue (the
/// row read and reduced before any weight load is issued) for fewer instructions per weight
/// vector, so it pays when the launch is throughput-bound: when its `cubes` fill every SM at
/// least [`STAGED_MIN_CUBES_PER_SM`] times over (measured on an H200: Mistral-7B's q/k/v and
/// gate/up launches, 768 and 1 792 cubes, decode 3% faster; Qwen2.5-0.5B's, 144 and 608
/// cubes, 6% slower). The row must take at most
/// [`STAGED_MAX_ELEMENTS`](gemv::STAGED_MAX_ELEMENTS) elements and half the shared memory a
/// cube may have.
fn staged_vectors<R: CubeRuntime>(client: &ComputeClient<R>, k: usize, width: usize, cubes: u32) -> usize {
    let hardware = &client.properties().hardware;
    let fills = hardware.num_streaming_multiprocessors.is_none_or(|sms| cubes >= STAGED_MIN_CUBES_PER_SM * sms);
    let fits = k <= gemv::STAGED_MAX_ELEMENTS && k * 4 * 2 <= hardware.max_shared_memory_size;
    if fills && fits {
        k / width
    } else {
        0
    }
}

/// Cubes per SM from which a GEMV launch stages its input row (see [`staged_vectors`]).
const STAGED_MIN_CUBES_PER_SM: u32 = 4;

/// The widest vector (in elements) `client`'s kernels may load: 4 on wgpu (WGSL's `vec4`).
fn max_width<R: CubeRuntime>(client: &ComputeClient<R>) -> usize {
    client.properties().hardware.max_vector_size.max(1)
}

/// Elements per load of at most `max` elements (and 16 bytes) that divide `cols`.
fn vector_width_up_to(cols: usize, elem_bytes: usize, max: usize) -> usize {
    let mut width = (16 / elem_bytes).max(1).min(max.max(1));
    while width > 1 && cols % width != 0 {
        width /= 2;
    }
    width
}

/// One cube of `threads` threads per row, for `rows` rows.
fn row_grid(rows: usize, threads: u32) -> (CubeCount, CubeDim) {
    (CubeCount::new_1d(rows as u32), CubeDim::new_1d(threads))
}

/// One unit per element (or pair) of `units`, in cubes of 256.
fn elementwise_count(units: usize) -> (CubeCount, CubeDim) {
    let threads = 256u32;
    let cubes = units.div_ceil(threads as usize) as u32;
    (CubeCount::new_1d(cubes.max(1)), CubeDim::new_1d(threads))
}

/// The GEMV kernels' launch shape: one plane per (row, output feature), `gemv::PLANES`
/// features per cube, rows the grid's fastest dimension.
fn gemv_grid(rows: usize, features: usize) -> (CubeCount, CubeDim) {
    let cubes = (features as u32).div_ceil(gemv::PLANES);
    (CubeCount::new_2d(rows as u32, cubes), CubeDim::new_2d(32, gemv::PLANES))
}

/// Cubes of a [`gemv_grid`] launch.
fn gemv_cubes(rows: usize, features: usize) -> u32 {
    rows as u32 * (features as u32).div_ceil(gemv::PLANES)
}

/// The widest vector load (up to 16 bytes) that divides `k` and every row offset of `x` and `ws`.
fn gemv_width<R: CubeRuntime>(x: &CubeTensor<R>, ws: &[CubeTensor<R>], k: usize) -> usize {
    let mut width = vector_width_up_to(k, x.dtype.size(), max_width(&x.client));
    while width > 1 && !(rows_aligned(x, width) && ws.iter().all(|w| rows_aligned(w, width))) {
        width /= 2;
    }
    width
}

/// A GEMV's input `x` (`k` columns) as a kernel operand, with its `norm` folded; `None` where
/// the norm's weight does not fit or the plane kernels don't run.
fn gemv_input<R: CubeRuntime, B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>>(
    x: &Tensor<B, 2>,
    norm: Option<&RowNorm<'_, B>>,
    k: usize,
) -> Option<(CubeTensor<R>, Folded<R>)> {
    let norm = Folded::new(norm, k, x.dtype())?;
    let x = float(x);
    runs_plane_kernels(&x.client).then_some((x, norm))
}

/// RMSNorm of `x` (of `x + residual` when given, whose sum is returned too), one cube per row.
#[allow(clippy::type_complexity)]
fn norm<R: CubeRuntime, B: burn::tensor::backend::Backend<FloatTensorPrimitive = CubeTensor<R>>>(
    x: &Tensor<B, 2>,
    residual: Option<&Tensor<B, 2>>,
    weight: Option<&Tensor<B, 2>>,
    eps: f32,
) -> Option<(Option<Tensor<B, 2>>, Tensor<B, 2>)> {
    let [rows, cols] = x.dims();
    if rows == 0 || cols == 0 || weight.is_some_and(|w| w.dims() != [1, cols]) {
        return None;
    }
    let (sum, y) = norm_launch(float(x), residual.map(float), weight.map(float), eps)?;
    Some((sum.map(wrap), wrap(y)))
}

/// [`norm`] on Burn's buffers (shapes checked by the caller); `None` where the plane kernels
/// don't run or a row is too wide for one cube.
#[allow(clippy::type_complexity)]
fn norm_launch<R: CubeRuntime>(
    x: CubeTensor<R>,
    residual: Option<CubeTensor<R>>,
    weight: Option<CubeTensor<R>>,
    eps: f32,
) -> Option<(Option<CubeTensor<R>>, CubeTensor<R>)> {
    let (rows, cols) = (x.meta.shape()[0], x.meta.shape()[1]);
    if !runs_plane_kernels(&x.client) {
        return None;
    }
    let operands: Vec<CubeTensor<R>> = residual.iter().chain(&weight).cloned().collect();
    let width = gemv_width(&x, &operands, cols);
    let vectors = cols / width;
    let threads = vectors.next_multiple_of(32).min(elementwise::ROW_THREADS as usize);
    let per_thread = vectors.div_ceil(threads);
    if per_thread > elementwise::ROW_VECTORS {
        return None;
    }
    let y = empty_like(&x, rows, cols);
    let (has_residual, has_weight) = (residual.is_some(), weight.is_some());
    let sum = if has_residual { empty_like(&x, rows, cols) } else { empty_like(&x, 1, width) };
    let residual = residual.unwrap_or_else(|| x.clone());
    let weight = weight.unwrap_or_else(|| x.clone());
    // SAFETY: one cube per row; each thread reads and writes only its own vectors below
    // `vectors` (`per_thread` of them at most, `threads` apart).
    unsafe {
        launch!(
            elementwise::rms_norm_kernel,
            &x.client,
            row_grid(rows, threads as u32),
            width,
            array(&x),
            array(&residual),
            array(&weight),
            array(&sum),
            array(&y),
            eps,
            cols as u32,
            vectors as u32,
            row_stride(&x) / width as u32,
            row_stride(&residual) / width as u32,
            per_thread,
            has_residual,
            has_weight,
            x.dtype.into(),
        );
    }
    Some((has_residual.then_some(sum), y))
}

impl<R, F, I, BT> Kernels for Cube<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn launches() -> Option<u64> {
        Some(LAUNCHES.load(Ordering::Relaxed))
    }

    /// Steps past the GEMV's rows (prefill, training) run on CubeCL's runner thread, the
    /// thread that executes every launch, allocation and cuBLAS call: a task sent from there
    /// runs at once, in place, so each op skips the hand-over, and cuBLAS's blocking calls the
    /// round trip (prefill 1.5× on Qwen2.5-0.5B). Decode steps stay on the caller's thread:
    /// there the hand-over pipelines the caller's work with the runner's (0.5B decode 13%
    /// slower in place).
    fn scoped(device: &Self::Device, rows: usize, f: &mut (dyn FnMut() + Send)) {
        if rows <= GEMV_MAX_ROWS {
            return f();
        }
        // A failed hand-over means `f` never ran: `zoo_core::backend::scoped` reports that.
        let _ = R::client(device).exclusive(f);
    }

    fn argmax_rows(logits: &Tensor<Self, 2>) -> Option<Vec<(u32, f32)>> {
        let out = float(&Self::argmax_launch(logits)?);
        let bytes = out.client.read_one(out.handle.clone()).ok()?;
        Some(crate::kernels::picks(&bytes, logits.dims()[0]))
    }

    fn argmax_launch(logits: &Tensor<Self, 2>) -> Option<Tensor<Self, 2>> {
        let [rows, cols] = logits.dims();
        if rows == 0 || cols == 0 || cols >= 1 << 24 {
            return None;
        }
        let x = float(logits);
        if !runs_plane_kernels(&x.client) {
            return None;
        }
        Some(wrap(argmax::launch(&x, rows, cols)))
    }

    fn gemv(
        x: &Tensor<Self, 2>,
        w: &Tensor<Self, 2>,
        bias: Option<&Tensor<Self, 2>>,
        norm: Option<&RowNorm<'_, Self>>,
        residual: Option<&Tensor<Self, 2>>,
    ) -> Option<Tensor<Self, 2>> {
        let [n, k] = x.dims();
        let [out, k_w] = w.dims();
        if n == 0 || n > GEMV_MAX_ROWS || k != k_w || x.dtype() != w.dtype() {
            return None;
        }
        if residual.is_some_and(|r| r.dims() != [n, out] || r.dtype() != x.dtype()) {
            return None;
        }
        let (x, norm) = gemv_input(x, norm, k)?;
        let w = float(w);
        if n > 1 {
            let x = normed_rows(&x, &norm)?;
            return Some(wrap(gemv_rows_launch(&x, &w, bias.map(float), residual.map(float))));
        }
        Some(wrap(gemv_launch(&x, &w, bias.map(float), &norm, residual.map(float))))
    }

    fn rms_norm(x: &Tensor<Self, 2>, weight: Option<&Tensor<Self, 2>>, eps: f32) -> Option<Tensor<Self, 2>> {
        norm::<R, Self>(x, None, weight, eps).map(|(_, y)| y)
    }

    fn add_rms_norm(
        x: &Tensor<Self, 2>,
        residual: &Tensor<Self, 2>,
        weight: Option<&Tensor<Self, 2>>,
        eps: f32,
    ) -> Option<(Tensor<Self, 2>, Tensor<Self, 2>)> {
        if residual.dims() != x.dims() || residual.dtype() != x.dtype() {
            return None;
        }
        let (sum, y) = norm::<R, Self>(x, Some(residual), weight, eps)?;
        Some((sum?, y))
    }

    fn gemv_many(
        x: &Tensor<Self, 2>,
        norm: Option<&RowNorm<'_, Self>>,
        layers: &[(&Tensor<Self, 2>, Option<&Tensor<Self, 2>>)],
    ) -> Option<Vec<Tensor<Self, 2>>> {
        let [n, k] = x.dims();
        let fits = |w: &Tensor<Self, 2>| w.dims()[1] == k && w.dtype() == x.dtype();
        if layers.len() != 3 || n == 0 || n > GEMV_MAX_ROWS || !layers.iter().all(|(w, _)| fits(w)) {
            return None;
        }
        let (x, norm) = gemv_input(x, norm, k)?;
        let ws: Vec<CubeTensor<R>> = layers.iter().map(|(w, _)| float(w)).collect();
        if n > 1 {
            let x = normed_rows(&x, &norm)?;
            let biases = layers.iter().map(|(_, b)| b.map(float)).collect();
            return Some(gemv_many_rows_launch(&x, &ws, biases).into_iter().map(wrap).collect());
        }
        let norm_w = norm.weight_or(&x);
        let width = gemv_width(&x, &[ws.clone(), vec![norm_w.clone()]].concat(), k);
        let ys = empty_many(&x, n, &ws.iter().map(|w| w.meta.shape()[0]).collect::<Vec<_>>());
        let bias_mask = layers.iter().enumerate().map(|(i, (_, b))| u32::from(b.is_some()) << i).sum::<u32>();
        let bs: Vec<CubeTensor<R>> = layers.iter().map(|(_, b)| b.map(float).unwrap_or_else(|| x.clone())).collect();
        let features = ws.iter().map(|w| w.meta.shape()[0]).sum();
        let staged = staged_vectors(&x.client, k, width, gemv_cubes(n, features));
        // SAFETY: each plane checks its feature against the three weights' rows; the rows of
        // `x` and the weights' columns were checked above.
        unsafe {
            launch!(
                gemv::gemv3_kernel,
                &x.client,
                gemv_grid(n, features),
                width,
                array(&x),
                array(&norm_w),
                array(&ws[0]),
                array(&ws[1]),
                array(&ws[2]),
                array(&bs[0]),
                array(&bs[1]),
                array(&bs[2]),
                array(&ys[0]),
                array(&ys[1]),
                array(&ys[2]),
                (k / width) as u32,
                row_stride(&x) / width as u32,
                ws[0].meta.shape()[0] as u32,
                ws[1].meta.shape()[0] as u32,
                ws[2].meta.shape()[0] as u32,
                row_stride(&ws[0]) / width as u32,
                row_stride(&ws[1]) / width as u32,
                row_stride(&ws[2]) / width as u32,
                norm.eps,
                bias_mask,
                staged,
                norm.normed,
                norm.weighted(),
                first_round::early_weights(),
                x.dtype.into(),
            );
        }
        Some(ys.into_iter().map(wrap).collect())
    }

    fn gated_gemv(
        x: &Tensor<Self, 2>,
        norm: Option<&RowNorm<'_, Self>>,
        gate: &Tensor<Self, 2>,
        up: &Tensor<Self, 2>,
    ) -> Option<Tensor<Self, 2>> {
        let [n, k] = x.dims();
        let [out, k_w] = gate.dims();
        if n == 0 || n > GEMV_MAX_ROWS || k != k_w || up.dims() != [out, k] || gate.dtype() != x.dtype() {
            return None;
        }
        let (x, norm) = gemv_input(x, norm, k)?;
        let (gate, up) = (float(gate), float(up));
        if n > 1 {
            let x = normed_rows(&x, &norm)?;
            return Some(wrap(gated_gemv_rows_launch(&x, &gate, &up)));
        }
        let norm_w = norm.weight_or(&x);
        let width = gemv_width(&x, &[gate.clone(), up.clone(), norm_w.clone()], k);
        let y = empty_like(&gate, n, out);
        let strides = (row_stride(&x) / width as u32, row_stride(&gate) / width as u32, row_stride(&up) / width as u32);
        let staged = staged_vectors(&x.client, k, width, gemv_cubes(n, out));
        // SAFETY: planes past `out` return; rows and columns were checked above.
        unsafe {
            launch!(
                gemv::gated_gemv_kernel,
                &x.client,
                gemv_grid(n, out),
                width,
                array(&x),
                array(&norm_w),
                array(&gate),
                array(&up),
                array(&y),
                (k / width) as u32,
                out as u32,
                strides.0,
                strides.1,
                strides.2,
                norm.eps,
                staged,
                norm.normed,
                norm.weighted(),
                first_round::early_weights(),
                x.dtype.into(),
            );
        }
        Some(wrap(y))
    }

    fn rope_kv_write(
        Qkv { q, k, v }: Qkv<'_, Tensor<Self, 2>>,
        (cos, sin): (&Tensor<Self, 2>, &Tensor<Self, 2>),
        kv: &KvView<'_, Self>,
        rows: &RowTable<Self>,
        spec: &AttentionSpec,
    ) -> Option<Tensor<Self, 2>> {
        let [n, q_cols] = q.dims();
        let (hd, half) = (spec.head_dim, spec.head_dim / 2);
        let kv_cols = spec.n_kv_heads * hd;
        let shapes_fit = hd % 2 == 0
            && q_cols == spec.n_heads * hd
            && k.dims() == [n, kv_cols]
            && v.dims() == [n, kv_cols]
            && cos.dims() == [n, half]
            && sin.dims() == [n, half]
            && kv.k.dims()[1] == hd
            && spec.n_kv_heads == kv.n_kv_heads;
        if n == 0 || !shapes_fit {
            return None;
        }
        let (q, k, v, cos, sin) = (float(q), float(k), float(v), float(cos), float(sin));
        let (k_cache, v_cache) = (float(kv.k), float(kv.v));
        let same_rows = row_stride(&k_cache) == row_stride(&v_cache);
        if !same_rows || [&k, &v, &cos, &sin, &k_cache, &v_cache].iter().any(|t| t.dtype != q.dtype) {
            return None;
        }
        let (slots, positions) = (int(&rows.slots), int(&rows.positions));
        let q_out = empty_like(&q, n, q_cols);
        let dtypes = [q.dtype.into(), slots.dtype.into()];
        // SAFETY: units past the last pair return; the cache positions were reserved by the
        // caller (every row's position is below `room`).
        unsafe {
            launch!(
                attention::rope_kv_kernel,
                &q.client,
                elementwise_count(n * (spec.n_heads + spec.n_kv_heads) * half),
                array(&q),
                array(&k),
                array(&v),
                array(&cos),
                array(&sin),
                array(&slots),
                array(&positions),
                array(&q_out),
                array(&k_cache),
                array(&v_cache),
                kv.room as u32,
                n as u32,
                row_stride(&q),
                row_stride(&k),
                row_stride(&v),
                row_stride(&cos),
                row_stride(&sin),
                row_stride(&k_cache),
                spec.n_heads,
                spec.n_kv_heads,
                hd,
                dtypes,
            );
        }
        Some(wrap(q_out))
    }

    fn step_prepared(rows: &RowTable<Self>) {
        #[cfg(feature = "cuda")]
        record::note_inputs(&int(&rows.tokens), &int(&rows.slots), &int(&rows.positions));
        #[cfg(not(feature = "cuda"))]
        let _ = rows;
    }

    fn embed_rows(table: &Tensor<Self, 2>, ids: &Tensor<Self, 1, Int>) -> Option<Tensor<Self, 2>> {
        let [_, cols] = table.dims();
        let (table, ids) = (float(table), int(ids));
        let rows = ids.meta.shape()[0];
        let width = gemv_width(&table, &[], cols);
        if rows == 0 || cols == 0 || !rows_aligned(&table, width) {
            return None;
        }
        let y = empty_like(&table, rows, cols);
        let vectors = cols / width;
        let threads = vectors.next_multiple_of(32).min(256) as u32;
        // SAFETY: one cube per id; the caller checked every id against the table's rows, and
        // threads stride over the row's `vectors` vectors.
        unsafe {
            launch!(
                elementwise::gather_rows_kernel,
                &table.client,
                row_grid(rows, threads),
                width,
                array(&table),
                array(&ids),
                array(&y),
                vectors as u32,
                row_stride(&table) / width as u32,
                [table.dtype.into(), ids.dtype.into()],
            );
        }
        Some(wrap(y))
    }

    fn silu_mul(gate: &Tensor<Self, 2>, up: &Tensor<Self, 2>) -> Option<Tensor<Self, 2>> {
        let [rows, cols] = gate.dims();
        if up.dims() != [rows, cols] {
            return None;
        }
        let (gate, up) = (float(gate), float(up));
        let y = empty_like(&gate, rows, cols);
        // SAFETY: the kernel bounds-checks its own indices against the tensors' shapes,
        // which were checked above.
        unsafe {
            launch!(
                elementwise::silu_mul_kernel,
                &gate.client,
                elementwise_count(rows * cols),
                array(&gate),
                array(&up),
                array(&y),
                rows as u32,
                cols as u32,
                row_stride(&gate),
                row_stride(&up),
                gate.dtype.into(),
            );
        }
        Some(wrap(y))
    }

    fn rope(
        x: &Tensor<Self, 2>,
        cos: &Tensor<Self, 2>,
        sin: &Tensor<Self, 2>,
        head_dim: usize,
    ) -> Option<Tensor<Self, 2>> {
        let [rows, cols] = x.dims();
        if head_dim == 0 || head_dim % 2 != 0 || cols % head_dim != 0 || cos.dims() != [rows, head_dim / 2] {
            return None;
        }
        let (x, cos, sin) = (float(x), float(cos), float(sin));
        if cos.dtype != x.dtype || sin.dtype != x.dtype {
            return None;
        }
        let y = empty_like(&x, rows, cols);
        // SAFETY: the kernel bounds-checks its own indices against the tensors' shapes,
        // which were checked above.
        unsafe {
            launch!(
                elementwise::rope_kernel,
                &x.client,
                elementwise_count(rows * cols / 2),
                array(&x),
                array(&cos),
                array(&sin),
                array(&y),
                rows as u32,
                cols as u32,
                row_stride(&x),
                row_stride(&cos),
                row_stride(&sin),
                head_dim,
                x.dtype.into(),
            );
        }
        Some(wrap(y))
    }

    fn kv_write(kv: &KvView<'_, Self>, k: &Tensor<Self, 2>, v: &Tensor<Self, 2>, rows: &RowTable<Self>) -> bool {
        let [n, cols] = k.dims();
        let head_dim = kv.k.dims()[1];
        if n == 0 || v.dims() != [n, cols] || cols != kv.n_kv_heads * head_dim {
            return false;
        }
        let (k, v) = (float(k), float(v));
        let (k_cache, v_cache) = (kv.k.clone().into_primitive().tensor(), kv.v.clone().into_primitive().tensor());
        let unit = |t: &CubeTensor<R>| t.meta.strides().last() == Some(&1);
        let same_rows = row_stride(&k_cache) == row_stride(&v_cache);
        if !unit(&k_cache) || !unit(&v_cache) || !same_rows || k.dtype != k_cache.dtype {
            return false;
        }
        let (slots, positions) = (int(&rows.slots), int(&rows.positions));
        let dtypes = [k.dtype.into(), slots.dtype.into()];
        // SAFETY: the kernel bounds-checks its own indices against the tensors' shapes,
        // which were checked above.
        unsafe {
            launch!(
                attention::kv_write_kernel,
                &k.client,
                elementwise_count(n * cols),
                array(&k),
                array(&v),
                array(&slots),
                array(&positions),
                array(&k_cache),
                array(&v_cache),
                kv.room as u32,
                n as u32,
                row_stride(&k),
                row_stride(&v),
                row_stride(&k_cache),
                kv.n_kv_heads,
                head_dim,
                dtypes,
            );
        }
        true
    }

    fn causal_softmax(scores: &Tensor<Self, 2>, span: &SeqSpan, window: Option<usize>) -> Option<Tensor<Self, 2>> {
        let [rows, cols] = scores.dims();
        let total = span.past + span.len;
        if rows == 0 || span.len == 0 || rows % span.len != 0 || cols != total || total > u32::MAX as usize {
            return None;
        }
        let scores = float(scores);
        if !runs_plane_kernels(&scores.client) {
            return None;
        }
        let probs = empty_like(&scores, rows, cols);
        let window = window.map_or(0, |w| w.min(u32::MAX as usize) as u32);
        // SAFETY: one cube per row; threads stride over the row's `cols` columns.
        unsafe {
            launch!(
                attention::causal_softmax_kernel,
                &scores.client,
                row_grid(rows, attention::SOFTMAX_THREADS),
                array(&scores),
                array(&probs),
                cols as u32,
                row_stride(&scores),
                span.len as u32,
                span.past as u32,
                window,
                scores.dtype.into(),
            );
        }
        Some(wrap(probs))
    }

    fn decode_attention(
        q: &Tensor<Self, 2>,
        kv: &KvView<'_, Self>,
        rows: &RowTable<Self>,
        spec: &AttentionSpec,
    ) -> Option<Tensor<Self, 2>> {
        decode_launch::<R, Self>(float(q), kv, rows, spec, None).map(wrap)
    }

    fn rope_decode_attention(
        Qkv { q, k, v }: Qkv<'_, Tensor<Self, 2>>,
        (cos, sin): (&Tensor<Self, 2>, &Tensor<Self, 2>),
        kv: &KvView<'_, Self>,
        rows: &RowTable<Self>,
        spec: &AttentionSpec,
    ) -> Option<Tensor<Self, 2>> {
        let [n, _] = q.dims();
        let (hd, kv_cols) = (spec.head_dim, spec.n_kv_heads * spec.head_dim);
        let tables_fit = cos.dims() == sin.dims() && cos.dims()[1] == hd / 2 && cos.dims()[0] >= rows.bound;
        if hd % 2 != 0 || k.dims() != [n, kv_cols] || v.dims() != [n, kv_cols] || !tables_fit {
            return None;
        }
        let new = NewRows { k: float(k), v: float(v), cos: float(cos), sin: float(sin) };
        let q = float(q);
        if [&new.k, &new.v, &new.cos, &new.sin].iter().any(|t| t.dtype != q.dtype) {
            return None;
        }
        decode_launch::<R, Self>(q, kv, rows, spec, Some(new)).map(wrap)
    }
}
