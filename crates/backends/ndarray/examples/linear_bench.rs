//! Times one decode-sized `linear` (one activation row, or `TOKENS` of them for the prefill
//! GEMM) per weight type on the `ndarray` backend, to compare kernels on this machine:
//! nanoseconds per weight row, GB/s of weight bytes read and GFLOP/s. The weights are
//! synthetic (varied bytes, small finite scales), the size that of a 0.5B model's MLP
//! projection unless given.
//!
//! ```sh
//! cargo run --release -p zoo-backend-ndarray --example linear_bench -- [ROWS COLS] [THREADS] [TOKENS]
//! ZOO_CPU_KERNELS=avx512 cargo run --release ...   # another kernel family (here: no VNNI)
//! ```

use std::time::Instant;

use half::f16;
use zoo_backend_ndarray::{NdArray, NdTensor};
use zoo_core::{Backend, Bytes, DType};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (rows, cols) = match args[..] {
        [r, c, ..] => (r, c),
        _ => (4864, 896),
    };
    let threads = args.get(2).copied().unwrap_or(1);
    let tokens = args.get(3).copied().unwrap_or(1).max(1);
    let backend = NdArray::new(Some(threads));
    let x = (0..tokens * cols).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
    let x = NdTensor::new(x, vec![tokens, cols]).unwrap();
    println!(
        "linear [{tokens}, {cols}] x [{rows}, {cols}]ᵀ, {threads} thread(s), kernels {:?}",
        zoo_backend_ndarray::isa::isa()
    );
    // Every compressed weight type, and f32 for the GEMM (i8 is not a weight format this times).
    for dtype in DType::ALL.into_iter().filter(|d| *d != DType::I8 && (tokens > 1 || *d != DType::F32)) {
        if cols % dtype.block_size() != 0 {
            continue;
        }
        let bytes = weight_bytes(dtype, rows * cols);
        let len = bytes.len();
        let w = if dtype == DType::F32 {
            let values = (0..rows * cols).map(|i| 0.01 * ((i % 11) as f32 - 5.0)).collect();
            NdTensor::new(values, vec![rows, cols])
        } else if dtype.is_block_quantized() {
            NdTensor::blocks(dtype, Bytes::from_vec(bytes), vec![rows, cols])
        } else {
            NdTensor::float16(dtype, Bytes::from_vec(bytes), vec![rows, cols])
        }
        .unwrap();
        let calls = (40_000_000 / len / tokens).clamp(2, 2_000);
        let mut best = f64::MAX;
        // On a pool thread, as a decode step runs its ops (`Backend::scoped`).
        backend.scoped(tokens, &mut || {
            for _ in 0..(40 / tokens.min(8)) {
                let start = Instant::now();
                for _ in 0..calls {
                    std::hint::black_box(backend.linear(&x, &w, None).unwrap());
                }
                best = best.min(start.elapsed().as_secs_f64() / calls as f64);
            }
        });
        println!(
            "{dtype:>5}: {:8.1} µs per call, {:6.2} ns per row, {:6.1} GB/s, {:6.1} GFLOP/s",
            best * 1e6,
            best * 1e9 / rows as f64,
            len as f64 / best / 1e9,
            2.0 * (tokens * rows * cols) as f64 / best / 1e9
        );
    }
}

/// `numel` elements of `dtype` as bytes: varied quants, every f16 scale small and finite.
fn weight_bytes(dtype: DType, numel: usize) -> Vec<u8> {
    if dtype == DType::F32 {
        return vec![0; 4 * numel]; // only its length is used
    }
    let len = dtype.bytes_for(numel).expect("whole blocks");
    let mut data: Vec<u8> = (0..len).map(|i| ((i * 37 + i / 7) % 256) as u8).collect();
    let scale = |i: usize| f16::from_f32(0.001 + 0.0007 * (i % 5) as f32).to_le_bytes();
    match dtype {
        DType::F16 | DType::BF16 => {
            for (i, v) in data.chunks_exact_mut(2).enumerate() {
                let value = 0.01 * ((i % 11) as f32 - 5.0);
                let bits = if dtype == DType::F16 {
                    f16::from_f32(value).to_bits()
                } else {
                    half::bf16::from_f32(value).to_bits()
                };
                v.copy_from_slice(&bits.to_le_bytes());
            }
        }
        _ => {
            let at: &[usize] = match dtype {
                DType::Q6_K => &[208],
                DType::Q4_1 | DType::Q5_1 | DType::Q4_K | DType::Q5_K => &[0, 2],
                _ => &[0],
            };
            for (b, block) in data.chunks_exact_mut(dtype.block_bytes()).enumerate() {
                for &a in at {
                    block[a..a + 2].copy_from_slice(&scale(b + a));
                }
            }
        }
    }
    data
}
