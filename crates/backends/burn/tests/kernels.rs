//! zoo's CubeCL kernels against the Burn-op compositions they replace, on random inputs of real
//! decode shapes (odd sizes included), in bf16 and f32 on CUDA, f32 (and f16 where the adapter
//! has shader-f16) on wgpu. With `--features cuda` they need an NVIDIA GPU
//! (`scripts/gpu-check.sh`); with `--features wgpu` (and not `cuda`) any Vulkan adapter, which CI
//! has through Mesa's lavapipe (`scripts/install-vulkan.sh`). On a device without zoo's plane
//! kernels (lavapipe: CubeCL offers no subgroups on CPU adapters) the tests of those kernels check
//! that they decline (`None`, so Burn's ops run) and say so; the others run everywhere.
#![cfg(any(feature = "cuda", feature = "wgpu"))]

use burn::tensor::{DType, Distribution, Int, Tensor, TensorData};
use zoo_backend_burn::kernels::{key_bound, Kernels, KvView, RowNorm, RowTable};
use zoo_backend_burn::Burn;
use zoo_core::{
    AttentionSpec, Backend, Batch, KvCache, KvLayout, LogitsRows, Qkv, RopeConvention, RopeSpec, StepInput, TensorShape,
};

#[cfg(feature = "cuda")]
mod gpu {
    pub use burn::backend::cuda::CudaDevice as Device;
    use burn::tensor::DType;

    pub type Gpu = burn::backend::cuda::Cuda<f32, i32>;
    pub const NAME: &str = "cuda-test";

    pub fn device() -> Device {
        Device::new(0)
    }

    /// The backend's device hooks (weight uploads through pinned staging).
    pub fn hooks() -> zoo_backend_burn::DeviceHooks<Gpu> {
        zoo_backend_burn::cuda_device::hooks()
    }

    /// The float types under test.
    pub fn dtypes() -> Vec<DType> {
        vec![DType::BF16, DType::F32]
    }
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod gpu {
    pub use burn::backend::wgpu::WgpuDevice as Device;
    use burn::tensor::DType;

    pub type Gpu = burn::backend::wgpu::CubeBackend<burn::backend::wgpu::WgpuRuntime, f32, i32, u32>;
    pub const NAME: &str = "wgpu-test";

    /// The backend's device hooks (weight uploads in pieces).
    pub fn hooks() -> zoo_backend_burn::DeviceHooks<Gpu> {
        zoo_backend_burn::wgpu_upload::hooks()
    }

    /// Adapter 0 (`ZOO_WGPU_TEST_DEVICE` picks another); no adapter fails the test with the
    /// reason (CI installs lavapipe, so a missing adapter is an error, not a skip).
    pub fn device() -> Device {
        let index = std::env::var("ZOO_WGPU_TEST_DEVICE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        match zoo_backend_burn::wgpu_device::device(index) {
            Ok((_, device)) => device,
            Err(why) => panic!("no wgpu adapter: {why}"),
        }
    }

    /// f32, and f16 where the adapter has shader-f16 (bf16 has no WGSL type).
    pub fn dtypes() -> Vec<DType> {
        let index = std::env::var("ZOO_WGPU_TEST_DEVICE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let f16 = zoo_backend_burn::wgpu_device::device(index).is_ok_and(|(adapter, _)| adapter.f16);
        if f16 && std::env::var_os("ZOO_WGPU_TEST_NO_F16").is_none() {
            vec![DType::F16, DType::F32]
        } else {
            vec![DType::F32]
        }
    }
}

use gpu::{device, dtypes, Gpu, NAME};

/// Whether this device runs zoo's plane kernels (GEMVs, norms, argmax, decode attention).
fn plane_kernels() -> bool {
    let t = Tensor::<Gpu, 2>::zeros([1, 1], &device());
    let primitive = t.into_primitive().tensor();
    zoo_backend_burn::cube::runs_plane_kernels(&primitive.client)
}

/// A plane kernel's result; on a device without plane kernels, checks that it declined (Burn's
/// ops then run) and ends the test, saying so.
macro_rules! planed {
    ($e:expr, $what:expr) => {
        match $e {
            Some(v) => v,
            None if !plane_kernels() => {
                eprintln!("{}: declined on this device (no 32-lane planes): Burn ops run instead", $what);
                return;
            }
            None => panic!("{} declined", $what),
        }
    };
}

fn random(shape: [usize; 2], dtype: DType) -> Tensor<Gpu, 2> {
    Tensor::<Gpu, 2>::random(shape, Distribution::Normal(0.0, 1.0), &device()).cast(dtype)
}

fn host(t: &Tensor<Gpu, 2>) -> Vec<f32> {
    t.clone().cast(DType::F32).into_data().into_vec::<f32>().expect("f32 data")
}

/// Deterministic values in [-2, 2) from a linear congruential generator.
fn noise(len: usize, state: &mut u64) -> Vec<f32> {
    (0..len)
        .map(|_| {
            *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// Largest |a − b| over the largest |b|.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    assert!(a.iter().all(|v| v.is_finite()), "kernel output has NaN or inf");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Asserts that `got` is within [`tolerance`] of `want` (by [`relative_error`]); the message is
/// `what` and the error.
fn assert_close(got: &[f32], want: &[f32], dtype: DType, what: &str) {
    let err = relative_error(got, want);
    assert!(err <= tolerance(dtype), "{what}: {err}");
}

fn tolerance(dtype: DType) -> f32 {
    if dtype == DType::F32 {
        1e-4
    } else {
        1.6e-2
    }
}

/// `x · wᵀ + residual` on the host (`x: [n, k]`, `w: [out, k]`, `residual: [n, out]`), rounded
/// to f32.
fn host_linear_residual(x: &[f32], w: &[f32], residual: &[f32], n: usize, k: usize, out: usize) -> Vec<f32> {
    host_linear(x, w, None, n, k, out).iter().zip(residual).map(|(y, r)| (y + *r as f64) as f32).collect()
}

/// `silu(x · gateᵀ) · (x · upᵀ)` on the host, rounded to f32.
fn host_gated(x: &[f32], gate: &[f32], up: &[f32], n: usize, k: usize, out: usize) -> Vec<f32> {
    let (gh, uh) = (host_linear(x, gate, None, n, k, out), host_linear(x, up, None, n, k, out));
    gh.iter().zip(&uh).map(|(g, u)| (g / (1.0 + (-g).exp()) * u) as f32).collect()
}

/// The device's weight upload (32 MiB pinned staging on CUDA, 1 MiB pieces synced every 64 MiB
/// on wgpu, where bf16 is widened to f32) puts every value where it belongs, for a weight of
/// several pieces whose last one is short (in f32, past one sync window), in every type the
/// backend tests and in bf16.
#[test]
fn weight_upload_reproduces_every_value() {
    let shape = [4111, 4100];
    // Multiples of 1/4 up to 12 are exact in every float type; a period of 97 elements shows
    // any piece landing at the wrong offset.
    let values: Vec<f32> = (0..shape[0] * shape[1]).map(|i| ((i % 97) as f32 - 48.0) / 4.0).collect();
    let mut types = dtypes();
    if !types.contains(&DType::BF16) {
        types.push(DType::BF16);
    }
    for dtype in types {
        let data = TensorData::new(values.clone(), shape).convert_dtype(dtype);
        let t = (gpu::hooks().upload)(data.as_bytes(), shape, dtype, &device()).expect("the upload ran");
        assert_eq!(t.dims(), shape, "{dtype:?}");
        let widened = dtype == DType::BF16 && t.dtype() == DType::F32;
        assert!(t.dtype() == dtype || widened, "{dtype:?} uploaded as {:?}", t.dtype());
        let got = host(&t);
        let wrong = got.iter().zip(&values).position(|(g, v)| g != v);
        assert!(wrong.is_none(), "{dtype:?}: first wrong value at {wrong:?}");
    }
}

#[test]
fn gemv_matches_matmul() {
    for dtype in dtypes() {
        for (n, k, out) in [
            (1, 896, 4864),
            (1, 5120, 1024),
            (1, 904, 151),
            (3, 904, 151),
            (8, 4864, 896),
            (2, 27, 5),
            (7, 1000, 77),
            (1, 4864, 896),
            (1, 4100, 77),
        ] {
            for with_bias in [false, true] {
                let (x, w) = (random([n, k], dtype), random([out, k], dtype));
                let bias = with_bias.then(|| random([1, out], dtype));
                let got = planed!(Gpu::gemv(&x, &w, bias.as_ref(), None, None), "gemv takes up to 8 rows");
                // Reference in f64 on the host (Burn's f32 matmul runs in TF32 on this GPU).
                let (xh, wh, bh) = (host(&x), host(&w), bias.as_ref().map(host));
                let want: Vec<f32> = (0..n * out)
                    .map(|i| {
                        let (r, o) = (i / out, i % out);
                        let dot: f64 = (0..k).map(|j| xh[r * k + j] as f64 * wh[o * k + j] as f64).sum();
                        (dot + bh.as_ref().map_or(0.0, |b| b[o] as f64)) as f32
                    })
                    .collect();
                let err = relative_error(&host(&got), &want);
                assert!(err <= tolerance(dtype), "gemv {dtype:?} n={n} k={k} out={out} bias={with_bias}: {err}");
            }
        }
    }
}

/// `x · wᵀ (+ b)` in f64 on the host.
fn host_linear(x: &[f32], w: &[f32], b: Option<&[f32]>, n: usize, k: usize, out: usize) -> Vec<f64> {
    (0..n * out)
        .map(|i| {
            let (r, o) = (i / out, i % out);
            let dot: f64 = (0..k).map(|j| x[r * k + j] as f64 * w[o * k + j] as f64).sum();
            dot + b.map_or(0.0, |b| b[o] as f64)
        })
        .collect()
}

#[test]
fn gemv_many_matches_three_linears() {
    for dtype in dtypes() {
        // One row: two features per plane (an odd last weight included), or one where a pair
        // would straddle two weights.
        let single = [(1, 904, [14, 6, 9]), (1, 904, [15, 7, 9])];
        let multi = [(1, 896, [896, 128, 128]), (4, 5120, [5120, 1024, 1024]), (2, 904, [15, 7, 9])];
        for (n, k, outs) in multi.into_iter().chain(single) {
            let x = random([n, k], dtype);
            let ws: Vec<_> = outs.iter().map(|&o| random([o, k], dtype)).collect();
            let bs: Vec<_> = outs.iter().enumerate().map(|(i, &o)| (i != 1).then(|| random([1, o], dtype))).collect();
            let layers: Vec<_> = ws.iter().zip(&bs).map(|(w, b)| (w, b.as_ref())).collect();
            let got = planed!(Gpu::gemv_many(&x, None, &layers), "three layers of up to 8 rows");
            for (i, y) in got.iter().enumerate() {
                let b = bs[i].as_ref().map(host);
                let want = host_linear(&host(&x), &host(&ws[i]), b.as_deref(), n, k, outs[i]);
                let want: Vec<f32> = want.into_iter().map(|v| v as f32).collect();
                let err = relative_error(&host(y), &want);
                assert!(err <= tolerance(dtype), "gemv_many {dtype:?} layer {i} n={n} k={k}: {err}");
            }
        }
    }
}

#[test]
fn gated_gemv_matches_silu_times_up() {
    for dtype in dtypes() {
        for (n, k, out) in [(1, 896, 4864), (3, 4096, 1000), (8, 27, 5), (6, 904, 33)] {
            let (x, g, u) = (random([n, k], dtype), random([out, k], dtype), random([out, k], dtype));
            let got = planed!(Gpu::gated_gemv(&x, None, &g, &u), "gated gemv");
            let xh = host(&x);
            let (gh, uh) = (host_linear(&xh, &host(&g), None, n, k, out), host_linear(&xh, &host(&u), None, n, k, out));
            let want: Vec<f32> = gh.iter().zip(&uh).map(|(g, u)| (g / (1.0 + (-g).exp()) * u) as f32).collect();
            let err = relative_error(&host(&got), &want);
            assert!(err <= tolerance(dtype), "gated_gemv {dtype:?} n={n} k={k} out={out}: {err}");
        }
    }
}

/// RMSNorm of each row of `x: [n, k]` (times `weight` when given), in f64 on the host.
fn host_rms_norm(x: &[f32], weight: Option<&[f32]>, n: usize, k: usize, eps: f64) -> Vec<f32> {
    (0..n * k)
        .map(|i| {
            let row = &x[i / k * k..][..k];
            let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / k as f64;
            (x[i] as f64 / (ms + eps).sqrt() * weight.map_or(1.0, |w| w[i % k] as f64)) as f32
        })
        .collect()
}

#[test]
fn split_gemv_with_residual_matches_composition() {
    // Few output features, long rows, no norm: the GEMV splits each row over four planes
    // (Qwen2.5-0.5B's down projection, and uneven shares with a half-empty last cube).
    for dtype in dtypes() {
        for (k, out) in [(4864, 896), (4100, 77)] {
            let (x, w, r) = (random([1, k], dtype), random([out, k], dtype), random([1, out], dtype));
            let got = planed!(Gpu::gemv(&x, &w, None, None, Some(&r)), "split gemv with residual");
            let want = host_linear_residual(&host(&x), &host(&w), &host(&r), 1, k, out);
            assert_close(&host(&got), &want, dtype, &format!("split gemv {dtype:?} k={k} out={out}"));
        }
    }
}

#[test]
fn gemv_with_folded_norm_and_residual_matches_composition() {
    let eps = 1e-6;
    for dtype in dtypes() {
        for (n, k, out) in [(1, 896, 896), (1, 1000, 77), (3, 904, 151), (8, 5120, 1024), (2, 27, 5), (6, 1000, 77)] {
            for weighted in [true, false] {
                let (x, w, r) = (random([n, k], dtype), random([out, k], dtype), random([n, out], dtype));
                let g = weighted.then(|| random([1, k], dtype));
                let norm = RowNorm { weight: g.as_ref(), eps };
                let got = planed!(Gpu::gemv(&x, &w, None, Some(&norm), Some(&r)), "gemv with norm and residual");
                let xn = host_rms_norm(&host(&x), g.as_ref().map(host).as_deref(), n, k, eps as f64);
                let want = host_linear_residual(&xn, &host(&w), &host(&r), n, k, out);
                let what = format!("normed gemv {dtype:?} n={n} k={k} out={out} weighted={weighted}");
                assert_close(&host(&got), &want, dtype, &what);
            }
        }
    }
}

/// Batched decode (2 to 8 rows) with bf16 weights on CUDA runs its GEMVs on tensor cores: the
/// normed GEMV with its residual and the gated GEMV against f64 on the host, at real and odd
/// batch sizes, and the check that the tensor-core kernels ran.
#[test]
fn batched_gemvs_with_folded_norm_match_composition() {
    let eps = 1e-6;
    for dtype in dtypes() {
        for (n, k, out) in [(2, 1024, 96), (3, 2048, 1024), (7, 896, 128), (8, 4864, 896), (5, 14336, 64)] {
            let before = zoo_backend_burn::cube::tensor_core_launches();
            let (x, g, r) = (random([n, k], dtype), random([1, k], dtype), random([n, out], dtype));
            let norm = RowNorm { weight: Some(&g), eps };
            let xn = host_rms_norm(&host(&x), Some(&host(&g)), n, k, eps as f64);
            let w = random([out, k], dtype);
            let got = planed!(Gpu::gemv(&x, &w, None, Some(&norm), Some(&r)), "batched normed gemv");
            let want = host_linear_residual(&xn, &host(&w), &host(&r), n, k, out);
            assert_close(&host(&got), &want, dtype, &format!("batched gemv {dtype:?} n={n} k={k} out={out}"));
            let (gate, up) = (random([out, k], dtype), random([out, k], dtype));
            let got = planed!(Gpu::gated_gemv(&x, Some(&norm), &gate, &up), "batched gated gemv");
            let want = host_gated(&xn, &host(&gate), &host(&up), n, k, out);
            let what = format!("batched gated gemv {dtype:?} n={n} k={k} out={out}");
            assert_close(&host(&got), &want, dtype, &what);
            if NAME == "cuda-test" && dtype == DType::BF16 {
                let ran = zoo_backend_burn::cube::tensor_core_launches() - before;
                assert!(ran >= 2, "bf16 n={n}: {ran} tensor-core launches, expected the gemv's and the gated gemv's");
            }
        }
    }
}

/// Batched q/k/v with biases (Qwen2's) and without: on CUDA with bf16 weights, one split-k
/// tensor-core launch for the three weights, its partial sums added by a second kernel, against
/// f64 on the host; shapes of Qwen2.5-0.5B, Mistral-7B, and odd sizes with uneven shares of `k`.
#[test]
fn batched_gemv_many_with_biases_matches_composition() {
    let eps = 1e-6;
    for dtype in dtypes() {
        let shapes = [
            (8, 896, [896, 128, 128], [true, true, true]),
            (2, 4096, [4096, 1024, 1024], [false, false, false]),
            (5, 1344, [96, 32, 64], [true, false, true]),
            (3, 64, [32, 32, 32], [false, true, false]),
        ];
        for (n, k, outs, with_bias) in shapes {
            let before = zoo_backend_burn::cube::tensor_core_launches();
            let (x, g) = (random([n, k], dtype), random([1, k], dtype));
            let norm = RowNorm { weight: Some(&g), eps };
            let xn = host_rms_norm(&host(&x), Some(&host(&g)), n, k, eps as f64);
            let ws: Vec<_> = outs.iter().map(|&o| random([o, k], dtype)).collect();
            let bs: Vec<_> = outs.iter().zip(with_bias).map(|(&o, b)| b.then(|| random([1, o], dtype))).collect();
            let layers: Vec<_> = ws.iter().zip(&bs).map(|(w, b)| (w, b.as_ref())).collect();
            let got = planed!(Gpu::gemv_many(&x, Some(&norm), &layers), "batched gemv_many with biases");
            for (i, y) in got.iter().enumerate() {
                let bias = bs[i].as_ref().map(host);
                let want: Vec<f32> =
                    host_linear(&xn, &host(&ws[i]), bias.as_deref(), n, k, outs[i]).iter().map(|&v| v as f32).collect();
                let what = format!("batched gemv_many {dtype:?} layer {i} n={n} k={k} outs={outs:?}");
                assert_close(&host(y), &want, dtype, &what);
            }
            if NAME == "cuda-test" && dtype == DType::BF16 {
                let ran = zoo_backend_burn::cube::tensor_core_launches() - before;
                assert_eq!(ran, 1, "bf16 n={n} k={k}: q, k and v in one tensor-core launch");
            }
        }
    }
}

#[test]
fn gemv_many_and_gated_gemv_with_folded_norm_match_composition() {
    let eps = 1e-5;
    for dtype in dtypes() {
        // A single-row launch of at least four cubes per SM stages its row in shared memory
        // (rows up to 8 192 elements): 896 cubes of q/k/v and 640 of gate/up on the fourth
        // shape, on GPUs of up to 160 SMs; the others (few cubes, or 9 001 elements) do not.
        let shapes = [
            (1, 896, [896, 128, 128], 128),
            (5, 4096, [4096, 1024, 1024], 1024),
            (2, 904, [15, 7, 9], 7),
            (1, 4096, [5120, 1024, 1024], 5120),
            (1, 8192, [64, 32, 32], 32),
            (1, 9001, [33, 17, 9], 17),
        ];
        for (n, k, outs, out) in shapes {
            let (x, g) = (random([n, k], dtype), random([1, k], dtype));
            let norm = RowNorm { weight: Some(&g), eps };
            let xn = host_rms_norm(&host(&x), Some(&host(&g)), n, k, eps as f64);
            let ws: Vec<_> = outs.iter().map(|&o| random([o, k], dtype)).collect();
            let layers: Vec<_> = ws.iter().map(|w| (w, None)).collect();
            let got = planed!(Gpu::gemv_many(&x, Some(&norm), &layers), "normed gemv_many");
            for (i, y) in got.iter().enumerate() {
                let want: Vec<f32> =
                    host_linear(&xn, &host(&ws[i]), None, n, k, outs[i]).iter().map(|&v| v as f32).collect();
                let err = relative_error(&host(y), &want);
                assert!(err <= tolerance(dtype), "normed gemv_many {dtype:?} layer {i} n={n} k={k}: {err}");
            }
            let (gate, up) = (random([out, k], dtype), random([out, k], dtype));
            let got = planed!(Gpu::gated_gemv(&x, Some(&norm), &gate, &up), "normed gated gemv");
            let want = host_gated(&xn, &host(&gate), &host(&up), n, k, out);
            let what = format!("normed gated_gemv {dtype:?} n={n} k={k} out={out}");
            assert_close(&host(&got), &want, dtype, &what);
        }
    }
}

#[test]
fn add_rms_norm_matches_composition() {
    for dtype in dtypes() {
        for (rows, cols) in [(1, 896), (5, 5120), (3, 1001)] {
            let (x, r, w) = (random([rows, cols], dtype), random([rows, cols], dtype), random([1, cols], dtype));
            let (sum, got) = planed!(Gpu::add_rms_norm(&x, &r, Some(&w), 1e-6), "add_rms_norm kernel");
            let s = (x.clone() + r.clone()).cast(DType::F32);
            let want = s.clone() / s.clone().powi_scalar(2).mean_dim(1).add_scalar(1e-6).sqrt() * w.cast(DType::F32);
            let err = relative_error(&host(&got), &host(&want));
            assert!(err <= tolerance(dtype), "add_rms_norm {dtype:?} {rows}x{cols}: {err}");
            assert!(relative_error(&host(&sum), &host(&s)) <= tolerance(dtype), "the residual sum");
        }
    }
}

#[test]
fn rms_norm_matches_composition() {
    for dtype in dtypes() {
        for (rows, cols) in [(1, 896), (5, 5120), (3, 1001)] {
            let (x, w) = (random([rows, cols], dtype), random([1, cols], dtype));
            let got = planed!(Gpu::rms_norm(&x, Some(&w), 1e-6), "rms_norm kernel");
            let xf = x.clone().cast(DType::F32);
            let want = xf.clone() / xf.powi_scalar(2).mean_dim(1).add_scalar(1e-6).sqrt() * w.clone().cast(DType::F32);
            let err = relative_error(&host(&got), &host(&want));
            assert!(err <= tolerance(dtype), "rms_norm {dtype:?} {rows}x{cols}: {err}");
        }
    }
}

#[test]
fn embed_rows_matches_select() {
    // An odd width, a repeated id, the last row of the table.
    let (vocab, dim) = (1001, 904);
    for dtype in gpu::dtypes() {
        let table = random([vocab, dim], dtype);
        let ids = Tensor::<Gpu, 1, Int>::from_data(TensorData::new(vec![7i64, 1000, 7, 0], [4]), &gpu::device());
        let Some(got) = Gpu::embed_rows(&table, &ids) else {
            assert!(!plane_kernels(), "embed_rows declined on a device with plane kernels");
            continue;
        };
        let want = table.select(0, ids);
        assert_eq!(host(&got), host(&want), "embed_rows {dtype:?}");
    }
}

#[test]
fn silu_mul_matches_composition() {
    for dtype in dtypes() {
        let (g, u) = (random([3, 4864], dtype), random([3, 4864], dtype));
        let got = Gpu::silu_mul(&g, &u).expect("silu_mul kernel");
        let gf = g.cast(DType::F32);
        let want = burn::tensor::activation::silu(gf) * u.cast(DType::F32);
        let err = relative_error(&host(&got), &host(&want));
        assert!(err <= tolerance(dtype), "silu_mul {dtype:?}: {err}");
    }
}

/// Prefill softmax under the causal mask (with and without a sliding window, after a cached
/// past and from position 0) against an f64 softmax over each query's visible keys.
#[test]
fn causal_softmax_matches_masked_softmax() {
    for dtype in dtypes() {
        for (heads, len, past, window) in
            [(6, 37, 0, None), (4, 19, 50, None), (3, 33, 21, Some(16)), (2, 300, 0, None)]
        {
            let (rows, total) = (heads * len, past + len);
            let mut seed = (rows + total) as u64;
            let values = noise(rows * total, &mut seed).iter().map(|v| v * 4.0).collect::<Vec<_>>();
            let scores = Tensor::<Gpu, 2>::from_data(TensorData::new(values, [rows, total]), &device()).cast(dtype);
            let span = zoo_core::SeqSpan { slot: 0, start: 0, len, past };
            let got = planed!(Gpu::causal_softmax(&scores, &span, window), "causal_softmax");
            let input = host(&scores);
            let mut want = vec![0f32; rows * total];
            for r in 0..rows {
                let hi = past + r % len + 1;
                let lo = window.map_or(0, |w| hi.saturating_sub(w));
                let row = &input[r * total..(r + 1) * total];
                let best = row[lo..hi].iter().fold(f64::MIN, |m, &v| m.max(v as f64));
                let sum: f64 = row[lo..hi].iter().map(|&v| (v as f64 - best).exp()).sum();
                for j in lo..hi {
                    want[r * total + j] = ((row[j] as f64 - best).exp() / sum) as f32;
                }
            }
            let what = format!("causal_softmax {dtype:?} {heads}x{len} past {past} window {window:?}");
            assert_close(&host(&got), &want, dtype, &what);
        }
    }
}

#[test]
fn rope_matches_composition() {
    for dtype in dtypes() {
        let (rows, heads, hd) = (5, 14, 64);
        let half = hd / 2;
        let x = random([rows, heads * hd], dtype);
        let (cos, sin) = (random([rows, half], dtype), random([rows, half], dtype));
        let got = Gpu::rope(&x, &cos, &sin, hd).expect("rope kernel");
        let x3: Tensor<Gpu, 3> = x.cast(DType::F32).reshape([rows, heads, hd]);
        let c: Tensor<Gpu, 3> = cos.cast(DType::F32).reshape([rows, 1, half]);
        let s: Tensor<Gpu, 3> = sin.cast(DType::F32).reshape([rows, 1, half]);
        let (x1, x2) = (x3.clone().narrow(2, 0, half), x3.narrow(2, half, half));
        let y1 = x1.clone() * c.clone() - x2.clone() * s.clone();
        let y2 = x2 * c + x1 * s;
        let want: Tensor<Gpu, 2> = Tensor::cat(vec![y1, y2], 2).reshape([rows, heads * hd]);
        let err = relative_error(&host(&got), &host(&want));
        assert!(err <= tolerance(dtype), "rope {dtype:?}: {err}");
    }
}

#[test]
fn kv_write_places_rows_at_slot_and_position() {
    let (slots, heads, room, hd) = (3, 2, 16, 8);
    let zeros = || Tensor::<Gpu, 2>::zeros([slots * heads * room, hd], (&device(), DType::F32));
    let (kc, vc) = (zeros(), zeros());
    let view = KvView { k: &kc, v: &vc, room, n_kv_heads: heads };
    let (k, v) = (random([2, heads * hd], DType::F32), random([2, heads * hd], DType::F32));
    let int = |v: Vec<i64>| Tensor::<Gpu, 1, Int>::from_data(TensorData::new(v, [2]), &device());
    let rows =
        RowTable { tokens: int(vec![0, 0]), slots: int(vec![2, 0]), positions: int(vec![5, 11]), bound: key_bound(12) };
    assert!(Gpu::kv_write(&view, &k, &v, &rows));
    let (kh, vh, kin, vin) = (host(&kc), host(&vc), host(&k), host(&v));
    for (r, (slot, pos)) in [(2usize, 5usize), (0, 11)].into_iter().enumerate() {
        for h in 0..heads {
            for d in 0..hd {
                let at = ((slot * heads + h) * room + pos) * hd + d;
                assert_eq!(kh[at], kin[r * heads * hd + h * hd + d]);
                assert_eq!(vh[at], vin[r * heads * hd + h * hd + d]);
            }
        }
    }
    let written = kh.iter().filter(|v| **v != 0.0).count();
    assert_eq!(written, 2 * heads * hd, "nothing else in the cache changed");
}

/// Decode attention through the kernels (prepared step) against Burn's ops (host step), after
/// the same prefill, for several windows, head sizes and context lengths; with `rotate`, RoPE,
/// the KV write and attention fused into one kernel against Burn's RoPE then attention.
#[test]
fn decode_attention_matches_burn_ops() {
    for (dtype, rotate) in dtypes().into_iter().flat_map(|d| [(d, false), (d, true)]) {
        for (heads, kv_heads, hd, past, window) in [
            (14, 2, 64, 127, None),
            (40, 8, 128, 300, None),
            (8, 8, 128, 2500, Some(1000)),
            (4, 1, 256, 37, Some(16)),
            (8, 2, 64, 1100, None),
        ] {
            let backend = Burn::<Gpu>::new(NAME, device(), dtype);
            let spec = AttentionSpec { n_heads: heads, n_kv_heads: kv_heads, head_dim: hd, scale: 0.125, window };
            let rope = RopeSpec::new(hd, 10000.0, RopeConvention::HalfSplit);
            let layout = KvLayout { n_layers: 1, n_kv_heads: kv_heads, head_dim: hd };
            let mut outputs = Vec::new();
            for prepared in [true, false] {
                let mut cache = KvCache::new(&backend, &layout, 2, 4096).expect("cache");
                let mut last = None;
                // Fill both slots, then decode two tokens in each: the second decode step reads
                // the cache rows the first one wrote (fused with attention when rotating).
                let batches = [
                    (vec![(0usize, past)], LogitsRows::All),
                    (vec![(1usize, past + 3)], LogitsRows::All),
                    (vec![(0, 1), (1, 1)], LogitsRows::Last),
                    (vec![(1, 1), (0, 1)], LogitsRows::Last),
                ];
                for (seqs, rows) in batches {
                    let mut batch = Batch::default();
                    for (slot, len) in seqs {
                        batch.push(slot, &vec![1u32; len]);
                    }
                    let step = cache.plan(&batch, rows).expect("plan");
                    let n = step.positions.len();
                    let mut seed = (n * 7 + heads) as u64;
                    let q = backend.upload(&noise(n * heads * hd, &mut seed), &[n, heads * hd]).unwrap();
                    let k = backend.upload(&noise(n * kv_heads * hd, &mut seed), &[n, kv_heads * hd]).unwrap();
                    let v = backend.upload(&noise(n * kv_heads * hd, &mut seed), &[n, kv_heads * hd]).unwrap();
                    let input = if prepared { backend.prepare_step(&step).unwrap() } else { StepInput::host(&step) };
                    let out = if rotate {
                        backend.rope_attention_step(Qkv::new(&q, &k, &v), cache.layer_mut(0), &input, &rope, &spec)
                    } else {
                        backend.attention_step(Qkv::new(&q, &k, &v), cache.layer_mut(0), &input, &spec)
                    }
                    .expect("attention");
                    assert_eq!(out.shape(), &[n, heads * hd]);
                    last = Some(backend.to_host(&out).unwrap());
                    cache.commit(&step);
                }
                outputs.push(last.expect("decoded"));
            }
            // The reference path multiplies with Burn's matmul, which runs f32 in TF32 here.
            let err = relative_error(&outputs[0], &outputs[1]);
            assert!(
                err <= if dtype == DType::F32 { 2e-3 } else { 2.0 * tolerance(dtype) },
                "decode attention {dtype:?} rotate={rotate} {heads}/{kv_heads}x{hd} past {past}: {err}"
            );
        }
    }
}

#[test]
fn argmax_rows_picks_the_first_largest_logit() {
    let mut state = 7u64;
    for dtype in dtypes() {
        for (rows, vocab) in [(1, 151_936), (3, 32_000), (8, 1000), (2, 5)] {
            let mut values = noise(rows * vocab, &mut state);
            // A tie for the largest value in every row: the first of the two must win. Even rows
            // tie far apart (different threads), odd rows in neighbouring columns (one vector).
            for r in 0..rows {
                let (a, b) = if r % 2 == 0 { (vocab / 3, vocab - 1) } else { (vocab / 2, vocab / 2 + 1) };
                let (a, b) = (r * vocab + a, r * vocab + b);
                values[a] = 8.0;
                values[b] = 8.0;
            }
            let logits =
                Tensor::<Gpu, 2>::from_data(TensorData::new(values.clone(), [rows, vocab]), &device()).cast(dtype);
            let got = planed!(Gpu::argmax_rows(&logits), "argmax kernel");
            let host = host(&logits);
            for (r, (id, value)) in got.iter().enumerate() {
                let want = zoo_core::sampler::argmax(&host[r * vocab..(r + 1) * vocab]).unwrap();
                assert_eq!(*id, want, "{dtype:?} rows={rows} vocab={vocab} row {r}");
                assert_eq!(*value, host[r * vocab + want as usize]);
            }
        }
    }
}

#[test]
fn argmax_rows_reports_nan_and_all_negative_infinity() {
    let vocab = 32_000;
    let mut values = noise(2 * vocab, &mut 11u64);
    values[vocab / 2] = f32::NAN;
    values[vocab..].fill(f32::NEG_INFINITY);
    for dtype in dtypes() {
        let logits = Tensor::<Gpu, 2>::from_data(TensorData::new(values.clone(), [2, vocab]), &device()).cast(dtype);
        let got = planed!(Gpu::argmax_rows(&logits), "argmax kernel");
        assert!(got[0].1.is_nan(), "{dtype:?}: a NaN logit must surface, got {:?}", got[0]);
        assert_eq!(got[1].1, f32::NEG_INFINITY, "{dtype:?}: a row of -inf must report -inf");
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cublas_prefill_linear_matches_f64_and_burn_matmul() {
    for dtype in dtypes() {
        let plain = Burn::<Gpu>::new(NAME, device(), dtype);
        let hooked = plain.clone().with_hooks(zoo_backend_burn::cuda_device::hooks());
        // Rows past the GEMV's; the last case reads `x` through a narrowed (pitched) view.
        for (n, k, out, pitch) in [(9, 896, 4864, 0), (128, 4096, 1000, 0), (33, 27, 5, 0), (17, 904, 151, 40)] {
            let mut seed = (n * 31 + k) as u64;
            let wide = hooked.upload(&noise(n * (k + pitch), &mut seed), &[n, k + pitch]).unwrap();
            let x = hooked.narrow(&wide, 1, 0, k).unwrap();
            let w = hooked.upload(&noise(out * k, &mut seed), &[out, k]).unwrap();
            let b = hooked.upload(&noise(out, &mut seed), &[out]).unwrap();
            let got = hooked.to_host(&hooked.linear(&x, &w, Some(&b)).unwrap()).unwrap();
            let burn = plain.to_host(&plain.linear(&x, &w, Some(&b)).unwrap()).unwrap();
            let (xs, ws, bs) = (hooked.to_host(&x).unwrap(), hooked.to_host(&w).unwrap(), hooked.to_host(&b).unwrap());
            let want: Vec<f32> = host_linear(&xs, &ws, Some(&bs), n, k, out).iter().map(|&v| v as f32).collect();
            let err = relative_error(&got, &want);
            assert!(err <= tolerance(dtype), "cuBLAS linear {dtype:?} {n}x{k}x{out}: {err} against f64");
            let err = relative_error(&got, &burn);
            assert!(err <= 2.0 * tolerance(dtype).max(1e-3), "cuBLAS vs Burn matmul {dtype:?} {n}x{k}x{out}: {err}");
        }
    }
}

#[cfg(feature = "cuda")]
#[test]
fn cublas_batched_matmul_matches_burn_on_cache_views() {
    let hooks = zoo_backend_burn::cuda_device::hooks();
    let random3 = |shape: [usize; 3], dtype| {
        Tensor::<Gpu, 3>::random(shape, Distribution::Normal(0.0, 1.0), &device()).cast(dtype)
    };
    let flat = |t: Tensor<Gpu, 3>| host(&t.reshape([-1, 1]));
    for dtype in dtypes() {
        let limit = 2.0 * tolerance(dtype).max(1e-3);
        for (heads, rows, total, hd) in [(4, 10, 37, 32), (8, 2048 / 8, 300, 128), (2, 1, 5, 64)] {
            // Keys and values as the prefill reads them: the first `total` positions of a
            // cache with room for more (a strided view).
            let cache_k = random3([heads, total + 19, hd], dtype);
            let cache_v = random3([heads, total + 19, hd], dtype);
            let keys = cache_k.slice([0..heads, 0..total, 0..hd]);
            let values = cache_v.slice([0..heads, 0..total, 0..hd]);
            let q = random3([heads, rows, hd], dtype);
            let scores = (hooks.batched_matmul)(&q, &keys, true, 0.125).expect("cuBLAS q·kᵀ");
            let want = q.clone().matmul(keys.clone().swap_dims(1, 2)).mul_scalar(0.125);
            let err = relative_error(&flat(scores.clone()), &flat(want));
            assert!(err <= limit, "q·kᵀ {dtype:?} {heads}x{rows}x{total}x{hd}: {err}");
            let out = (hooks.batched_matmul)(&scores, &values, false, 1.0).expect("cuBLAS p·v");
            let want = scores.matmul(values);
            let err = relative_error(&flat(out), &flat(want));
            assert!(err <= limit, "p·v {dtype:?} {heads}x{rows}x{total}x{hd}: {err}");
        }
    }
}

/// The training hooks' products (`x · wᵀ`, and attention's batched `α · a · op(b)`) against
/// Burn's differentiated matmul in f32: the same values and the same gradients of both
/// operands, on odd shapes, within 2e-3 (the prefill test's bound against Burn: Burn's f32
/// matmul may multiply in TF32 on tensor cores, cuBLAS here in full f32).
#[cfg(all(feature = "cuda", feature = "autodiff"))]
#[test]
fn training_products_match_burn_values_and_gradients() {
    use burn::backend::Autodiff;
    type Train = Autodiff<Gpu>;
    let hooks = zoo_backend_burn::cuda_train::hooks();
    let random3 =
        |shape: [usize; 3]| Tensor::<Train, 3>::random(shape, Distribution::Normal(0.0, 1.0), &device()).require_grad();
    let flat = |t: Tensor<Gpu, 3>| host(&t.reshape([-1, 1]));
    let check = |what: &str, got: Tensor<Gpu, 3>, want: Tensor<Gpu, 3>| {
        let err = relative_error(&flat(got), &flat(want));
        assert!(err <= 2e-3, "{what}: {err}");
    };
    for (batch, m, n, k, transpose_b, alpha) in
        [(3, 5, 6, 7, true, 0.125), (3, 5, 6, 7, false, 1.0), (12, 64, 64, 32, true, 0.2)]
    {
        let a = random3([batch, m, k]);
        let b = random3(if transpose_b { [batch, n, k] } else { [batch, k, n] });
        let weights = Tensor::<Train, 3>::random([batch, m, n], Distribution::Normal(0.0, 1.0), &device());
        let got = (hooks.batched_matmul)(&a, &b, transpose_b, alpha).expect("cuBLAS product");
        let op_b = if transpose_b { b.clone().swap_dims(1, 2) } else { b.clone() };
        let want = a.clone().matmul(op_b).mul_scalar(alpha);
        let case = format!("{batch}x{m}x{n}x{k} transpose_b={transpose_b}");
        check(&format!("product {case}"), got.clone().inner(), want.clone().inner());
        let got_grads = (got * weights.clone()).sum().backward();
        let want_grads = (want * weights).sum().backward();
        let grad = |t: &Tensor<Train, 3>, g| t.grad(g).expect("a gradient");
        check(&format!("∂a {case}"), grad(&a, &got_grads), grad(&a, &want_grads));
        check(&format!("∂b {case}"), grad(&b, &got_grads), grad(&b, &want_grads));
    }
    // A linear layer's `x · wᵀ`.
    let x = Tensor::<Train, 2>::random([37, 29], Distribution::Normal(0.0, 1.0), &device()).require_grad();
    let w = Tensor::<Train, 2>::random([11, 29], Distribution::Normal(0.0, 1.0), &device()).require_grad();
    let weights = Tensor::<Train, 2>::random([37, 11], Distribution::Normal(0.0, 1.0), &device());
    let got = (hooks.matmul_nt)(&x, &w).expect("cuBLAS linear");
    let want = x.clone().matmul(w.clone().transpose());
    let three = |t: Tensor<Gpu, 2>| t.unsqueeze::<3>();
    check("linear", three(got.clone().inner()), three(want.clone().inner()));
    let got_grads = (got * weights.clone()).sum().backward();
    let want_grads = (want * weights).sum().backward();
    check("linear ∂x", three(x.grad(&got_grads).unwrap()), three(x.grad(&want_grads).unwrap()));
    check("linear ∂w", three(w.grad(&got_grads).unwrap()), three(w.grad(&want_grads).unwrap()));
}
