//! Host cost of a kernel launch and an allocation through CubeCL, and the bandwidth of zoo's
//! GEMV kernels on the projections of real models, on the CUDA device 0.
//!
//! ```text
//! cargo build --release -p zoo-backend-burn --features cuda --example gpu_microbench
//! target/release/examples/gpu_microbench            # on the GPU machine
//! ```
//!
//! Launch figures (on CUDA first by the number of buffers and scalars a launch binds, handed
//! over to CubeCL's runner thread and in place): the host time of the submitting loop and the
//! wall time until the device finished, per call (CubeCL hands every launch and allocation to one runner thread per device,
//! which calls the driver; where host and wall time agree, that thread sets the pace). GEMV
//! figures: weight bytes read per second, cycling over enough copies of each weight that none
//! is served from L2; compare them with the device's copy bandwidth (`scripts/bench-gpu.sh`
//! measures it).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn main() {
    bench::run();
}

#[cfg(not(any(feature = "cuda", feature = "wgpu")))]
fn main() {
    eprintln!("gpu_microbench: build with --features cuda (or wgpu, for the host side on any adapter)");
    std::process::exit(2);
}

#[cfg(any(feature = "cuda", feature = "wgpu"))]
mod bench {
    use std::time::Instant;

    use burn::tensor::backend::Backend as _;
    use burn::tensor::{DType, Distribution, Int, Tensor, TensorData};
    use zoo_backend_burn::kernels::{Kernels, KvView, RowNorm, RowTable};

    #[cfg(feature = "cuda")]
    type Gpu = burn::backend::cuda::Cuda<f32, i32>;
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    type Gpu = burn::backend::wgpu::CubeBackend<burn::backend::wgpu::WgpuRuntime, f32, i32, u32>;

    /// The weights' type: bf16 on CUDA, f32 on wgpu (WGSL has no bf16).
    #[cfg(feature = "cuda")]
    const DT: DType = DType::BF16;
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    const DT: DType = DType::F32;

    #[cfg(feature = "cuda")]
    fn device() -> burn::backend::cuda::CudaDevice {
        burn::backend::cuda::CudaDevice::new(0)
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    fn device() -> burn::backend::wgpu::WgpuDevice {
        burn::backend::wgpu::WgpuDevice::default()
    }

    fn random(shape: [usize; 2]) -> Tensor<Gpu, 2> {
        Tensor::<Gpu, 2>::random(shape, Distribution::Uniform(-1.0, 1.0), &device()).cast(DT)
    }

    fn sync() {
        Gpu::sync(&device()).expect("device sync");
    }

    /// Runs `f` `n` times; prints host µs per call and wall µs per call (to the device's end).
    fn per_call(what: &str, n: usize, mut f: impl FnMut()) {
        f();
        sync();
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        let host = start.elapsed();
        sync();
        let wall = start.elapsed();
        println!(
            "{what:<44} host {:>7.2} µs/call   wall {:>7.2} µs/call",
            host.as_secs_f64() * 1e6 / n as f64,
            wall.as_secs_f64() * 1e6 / n as f64
        );
    }

    fn launches() {
        let (heads, room, hd) = (2, 64, 64);
        let kc = Tensor::<Gpu, 2>::zeros([heads * room, hd], (&device(), DT));
        let vc = Tensor::<Gpu, 2>::zeros([heads * room, hd], (&device(), DT));
        let view = KvView { k: &kc, v: &vc, room, n_kv_heads: heads };
        let (k, v) = (random([1, heads * hd]), random([1, heads * hd]));
        let int = |v: Vec<i64>| Tensor::<Gpu, 1, Int>::from_data(TensorData::new(v, [1]), &device());
        let rows = RowTable { tokens: int(vec![0]), slots: int(vec![0]), positions: int(vec![3]), bound: 512 };
        per_call("kv_write (launch, no allocation)", 20_000, || {
            assert!(Gpu::kv_write(&view, &k, &v, &rows));
        });
        let (a, b) = (random([1, 64]), random([1, 64]));
        per_call("silu_mul (allocation + launch)", 20_000, || {
            let _ = Gpu::silu_mul(&a, &b).expect("silu_mul");
        });
        per_call("Tensor::empty (allocation only)", 20_000, || {
            let _ = Tensor::<Gpu, 2>::empty([1, 64], (&device(), DT));
        });
        let x = random([1, 896]);
        let w = random([896, 896]);
        let norm_w = random([1, 896]);
        let norm = RowNorm { weight: Some(&norm_w), eps: 1e-6 };
        if Gpu::gemv(&x, &w, None, Some(&norm), Some(&x)).is_none() {
            println!("this device has no plane kernels: GEMVs not measured");
            std::process::exit(0);
        }
        per_call("gemv 896x896 normed (allocation + launch)", 20_000, || {
            let _ = Gpu::gemv(&x, &w, None, Some(&norm), Some(&x)).expect("gemv");
        });
    }

    /// Weight copies cycled through so that their bytes exceed L2 (50 MB on an H100) twice over.
    fn copies(bytes: usize) -> usize {
        (100usize << 20).div_ceil(bytes).max(2)
    }

    /// Times `n` calls of `f` after two uncounted ones (the first call of a kernel variant
    /// compiles it, or loads it from the kernel cache).
    fn report(what: &str, bytes: usize, n: usize, f: impl FnMut()) {
        let mut f = f;
        f();
        f();
        sync();
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        sync();
        let s = start.elapsed().as_secs_f64() / n as f64;
        println!("{what:<44} {:>8.1} µs   {:>6.2} TB/s", s * 1e6, bytes as f64 / s / 1e12);
    }

    fn gemvs(name: &str, hidden: usize, q: usize, kv: usize, mlp: usize) {
        println!("-- {name}: hidden {hidden}, q {q}, kv {kv}, mlp {mlp}");
        let x = random([1, hidden]);
        let xm = random([1, mlp]);
        let norm_w = random([1, hidden]);
        let norm = RowNorm { weight: Some(&norm_w), eps: 1e-6 };
        let reps = 200;

        let qkv_bytes = (q + 2 * kv) * hidden * 2;
        let ws: Vec<_> =
            (0..copies(qkv_bytes)).map(|_| (random([q, hidden]), random([kv, hidden]), random([kv, hidden]))).collect();
        let mut i = 0;
        report("q,k,v (gemv_many, normed)", qkv_bytes, reps, || {
            let (wq, wk, wv) = &ws[i % ws.len()];
            i += 1;
            let _ = Gpu::gemv_many(&x, Some(&norm), &[(wq, None), (wk, None), (wv, None)]).expect("gemv_many");
        });
        drop(ws);

        let o_bytes = q * hidden * 2;
        let ws: Vec<_> = (0..copies(o_bytes)).map(|_| random([hidden, q])).collect();
        let xq = random([1, q]);
        report("o (gemv + residual)", o_bytes, reps, || {
            let w = &ws[i % ws.len()];
            i += 1;
            let _ = Gpu::gemv(&xq, w, None, None, Some(&x)).expect("gemv");
        });
        drop(ws);

        let gu_bytes = 2 * mlp * hidden * 2;
        let ws: Vec<_> = (0..copies(gu_bytes)).map(|_| (random([mlp, hidden]), random([mlp, hidden]))).collect();
        report("gate,up (gated_gemv, normed)", gu_bytes, reps, || {
            let (g, u) = &ws[i % ws.len()];
            i += 1;
            let _ = Gpu::gated_gemv(&x, Some(&norm), g, u).expect("gated_gemv");
        });
        drop(ws);

        let d_bytes = mlp * hidden * 2;
        let ws: Vec<_> = (0..copies(d_bytes)).map(|_| random([hidden, mlp])).collect();
        report("down (gemv + residual)", d_bytes, reps, || {
            let w = &ws[i % ws.len()];
            i += 1;
            let _ = Gpu::gemv(&xm, w, None, None, Some(&x)).expect("gemv");
        });
    }

    /// Kernels that touch one element of each of their arrays: the host cost of a launch by
    /// the number of buffers bound (and of scalars passed) to it.
    mod touch {
        use burn_cubecl::cubecl;
        use burn_cubecl::cubecl::prelude::*;

        #[cube(launch_unchecked)]
        pub fn one(a: &mut Array<f32>) {
            if ABSOLUTE_POS == 0 {
                a[0] += 1.0;
            }
        }

        #[cube(launch_unchecked)]
        pub fn four(a: &mut Array<f32>, b: &Array<f32>, c: &Array<f32>, d: &Array<f32>) {
            if ABSOLUTE_POS == 0 {
                a[0] += b[0] + c[0] + d[0];
            }
        }

        #[cube(launch_unchecked)]
        #[allow(clippy::too_many_arguments)]
        pub fn twelve(
            a: &mut Array<f32>,
            b: &Array<f32>,
            c: &Array<f32>,
            d: &Array<f32>,
            e: &Array<f32>,
            f: &Array<f32>,
            g: &Array<f32>,
            h: &Array<f32>,
            i: &Array<f32>,
            j: &Array<f32>,
            k: &Array<f32>,
            l: &Array<f32>,
        ) {
            if ABSOLUTE_POS == 0 {
                a[0] += b[0] + c[0] + d[0] + e[0] + f[0] + g[0] + h[0] + i[0] + j[0] + k[0] + l[0];
            }
        }

        #[cube(launch_unchecked)]
        #[allow(clippy::too_many_arguments)]
        pub fn one_scalars(
            a: &mut Array<f32>,
            s0: u32,
            s1: u32,
            s2: u32,
            s3: u32,
            s4: u32,
            s5: u32,
            s6: u32,
            s7: u32,
            s8: u32,
            s9: u32,
            s10: u32,
            s11: u32,
        ) {
            if ABSOLUTE_POS == 0 {
                a[0] += f32::cast_from(s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9 + s10 + s11);
            }
        }
    }

    #[cfg(feature = "cuda")]
    fn bindings() {
        use burn_cubecl::cubecl::prelude::{ArrayArg, CubeCount, CubeDim};
        type R = burn_cubecl::cubecl::cuda::CudaRuntime;
        let buffer = || Tensor::<Gpu, 2>::zeros([1, 64], &device()).into_primitive().tensor();
        let t: Vec<_> = (0..12).map(|_| buffer()).collect();
        let client = t[0].client.clone();
        // SAFETY: each kernel touches element 0 of arrays of 64.
        let a = |i: usize| unsafe { ArrayArg::<R>::from_raw_parts_binding(t[i].handle.clone().binding(), 64) };
        let grid = (CubeCount::Static(1, 1, 1), CubeDim::new_1d(32));
        // SAFETY (every launch below): each kernel touches element 0 of arrays of 64.
        let twelve = || unsafe {
            let b: [ArrayArg<R>; 12] = std::array::from_fn(a);
            let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11] = b;
            touch::twelve::launch_unchecked::<R>(
                &client,
                grid.0.clone(),
                grid.1,
                b0,
                b1,
                b2,
                b3,
                b4,
                b5,
                b6,
                b7,
                b8,
                b9,
                b10,
                b11,
            )
        };
        for exclusive in [false, true] {
            let mode = if exclusive { "in place" } else { "handed over" };
            let run = |f: &mut (dyn FnMut() + Send)| {
                if exclusive {
                    let _ = client.exclusive(f);
                } else {
                    f();
                }
            };
            per_call(&format!("1 buffer ({mode})"), 20_000, || {
                run(&mut || unsafe { touch::one::launch_unchecked::<R>(&client, grid.0.clone(), grid.1, a(0)) })
            });
            per_call(&format!("4 buffers ({mode})"), 20_000, || {
                run(&mut || unsafe {
                    touch::four::launch_unchecked::<R>(&client, grid.0.clone(), grid.1, a(0), a(1), a(2), a(3))
                })
            });
            per_call(&format!("12 buffers ({mode})"), 20_000, || run(&mut || twelve()));
            // The same launches, 100 per call: a burst fills CubeCL's channel.
            per_call(&format!("12 buffers, 100 per call ({mode})"), 200, || {
                run(&mut || (0..100).for_each(|_| twelve()))
            });
        }
    }

    pub fn run() {
        #[cfg(feature = "cuda")]
        bindings();
        launches();
        gemvs("Qwen2.5-0.5B", 896, 896, 128, 4864);
        gemvs("Mistral-7B", 4096, 4096, 1024, 14336);
        gemvs("Qwen2.5-14B", 5120, 5120, 1024, 13824);
    }
}
