//! burn-wgpu's [`DeviceHooks`](crate::DeviceHooks): weights uploaded in small pieces of one size.
//!
//! Burn's `from_data` hands CubeCL each weight whole: CubeCL copies it into a fresh host
//! allocation of its size, and wgpu's `write_buffer` stages it through a mapped buffer of the
//! same size, allocated for that one write. On NVIDIA's Vulkan driver that loaded Mistral-7B's
//! f16 weights at 0.36 GB/s (40 s), where the CUDA backends load at 4–7 GB/s. Here a weight
//! larger than a piece ([`PIECE_BYTES`]) goes up in pieces of that size: each piece is written
//! into a piece-sized buffer of CubeCL's pool (so the host copies and wgpu's staging buffers
//! are small, one size, and reused) and copied on the device into the weight's own exact-size
//! allocation: 2.2 GB/s on the same machine (docs/wgpu.md). bf16 weights, which WGSL cannot
//! store, are widened to f32 by the same copy (exactly; the backend then casts to its own
//! type, as for any weight of another type). Smaller weights, and every other hook, take Burn's
//! path.

use burn::backend::wgpu::{CubeBackend, WgpuDevice, WgpuRuntime};
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::future::block_on;
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::cubecl::server::Handle;
use burn_cubecl::tensor::CubeTensor;

type Gpu = CubeBackend<WgpuRuntime, f32, i32, u32>;

/// Bytes written per piece (`ZOO_WGPU_PIECE_KB` overrides it, 64 KiB to 32 MiB). Smaller
/// pieces loaded faster on NVIDIA's driver down to the 1 MiB measured: 16 MiB 0.6 GB/s, 4 MiB
/// 1.3, 1 MiB 2.2.
const PIECE_BYTES: usize = 1 << 20;

/// The piece size in use: [`PIECE_BYTES`], or `ZOO_WGPU_PIECE_KB` KiB (read once).
fn piece_bytes() -> usize {
    static PIECE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PIECE.get_or_init(|| {
        let kb = std::env::var("ZOO_WGPU_PIECE_KB").ok().and_then(|v| v.parse::<usize>().ok());
        kb.filter(|kb| (64..=32 << 10).contains(kb)).map_or(PIECE_BYTES, |kb| kb << 10)
    })
}

/// Bytes of pieces in flight between syncs: CubeCL's wgpu stream waits for its queue every 64
/// writes anyway, so syncing after 64 MiB of 1 MiB pieces adds little, and bounds how much of
/// CubeCL's pool the pieces take.
const WINDOW_BYTES: usize = 64 << 20;

/// Threads per cube of the copy kernels.
const COPY_THREADS: u32 = 256;

/// `dst[offset + i] = src[i]` for `i < len`.
#[cube(launch_unchecked)]
fn copy_words(src: &Array<u32>, dst: &mut Array<u32>, offset: u32, len: u32) {
    let i = ABSOLUTE_POS;
    if i < len as usize {
        dst[offset as usize + i] = src[i];
    }
}

/// The two bf16 values in each word `src[i]` (the first in the low half: little-endian
/// storage), widened exactly to `dst[2 (offset + i)]` and the element after it.
#[cube(launch_unchecked)]
fn widen_bf16_pairs(src: &Array<u32>, dst: &mut Array<f32>, offset: u32, len: u32) {
    let i = ABSOLUTE_POS;
    if i < len as usize {
        let word = src[i];
        let at = 2 * (offset as usize + i);
        dst[at] = f32::reinterpret(word << 16);
        dst[at + 1] = f32::reinterpret(word & 0xffff_0000u32);
    }
}

/// The hooks for burn-wgpu: the piecewise upload; Burn's own ops for everything else.
pub fn hooks() -> crate::DeviceHooks<Gpu> {
    crate::DeviceHooks {
        upload,
        zeros: |_, _, _| None,
        free_bytes: |_| None,
        matmul_nt: |_, _| None,
        batched_matmul: |_, _, _, _| None,
        take_notes: Vec::new,
        run_step: crate::run_directly,
    }
}

/// How a weight's bytes land on the device.
#[derive(Clone, Copy)]
enum Landing {
    /// As they are, in the weight's own type.
    Copied,
    /// bf16 widened to f32.
    Widened,
}

/// Copies (or widens) the `words` words of `piece` into `handle` (`out_words` long) from word
/// (or element pair) `offset` on.
fn copy_piece(
    client: &ComputeClient<WgpuRuntime>,
    landing: Landing,
    piece: &Handle,
    handle: &Handle,
    offset: u32,
    words: u32,
    out_words: usize,
) {
    let (count, dim) = (CubeCount::Static(words.div_ceil(COPY_THREADS), 1, 1), CubeDim::new_1d(COPY_THREADS));
    // SAFETY: `piece` holds `words` words, and the caller's pieces tile the weight: word
    // `offset + words` (copied) or element `2 (offset + words)` (widened) is at most the end
    // of `handle`; threads past `words` return.
    unsafe {
        let src = ArrayArg::from_raw_parts_binding(piece.clone().binding(), words as usize);
        let dst = ArrayArg::from_raw_parts_binding(handle.clone().binding(), out_words);
        match landing {
            Landing::Copied => copy_words::launch_unchecked::<WgpuRuntime>(client, count, dim, src, dst, offset, words),
            Landing::Widened => {
                widen_bf16_pairs::launch_unchecked::<WgpuRuntime>(client, count, dim, src, dst, offset, words)
            }
        }
    }
}

/// `bytes` (row-major `shape` of `dtype`) as a resident tensor on `device`, written piece by
/// piece: of `dtype`, or f32 for bf16. `None` (Burn's upload instead) for weights of one piece
/// or less, a type the adapter cannot store, or a length that is not whole 32-bit words.
fn upload(bytes: &[u8], shape: [usize; 2], dtype: DType, device: &WgpuDevice) -> Option<Tensor<Gpu, 2>> {
    let len = bytes.len();
    let piece_len = piece_bytes();
    if len != shape[0] * shape[1] * dtype.size() || len <= piece_len || len % 4 != 0 {
        return None;
    }
    let client = WgpuRuntime::client(device);
    let (landing, stored) =
        if dtype == DType::BF16 { (Landing::Widened, DType::F32) } else { (Landing::Copied, dtype) };
    let storage: StorageType = stored.into();
    if !client.properties().supports_type(storage) {
        return None;
    }
    let stored_len = len / dtype.size() * stored.size();
    let handle = client.memory_persistent_allocation(stored_len, |len| client.empty(len)).ok()?;
    let out_words = stored_len / 4;
    // Pieces stay alive until the device has copied them (a sync every window), so no piece's
    // buffer is written again while a copy may still read it, and the pool never holds more
    // than a window of them.
    let window = (WINDOW_BYTES / piece_len).max(1);
    let mut pieces = Vec::with_capacity(window);
    for (i, piece) in bytes.chunks(piece_len).enumerate() {
        let staged = client.create_from_slice(piece);
        let words = (piece.len() / 4) as u32;
        let offset = (i * piece_len / 4) as u32;
        copy_piece(&client, landing, &staged, &handle, offset, words, out_words);
        pieces.push(staged);
        if pieces.len() == window {
            block_on(client.sync()).ok()?;
            pieces.clear();
        }
    }
    block_on(client.sync()).ok()?;
    drop(pieces);
    let t = CubeTensor::new_contiguous(client, device.clone(), shape.into(), handle, stored);
    Some(Tensor::from_primitive(TensorPrimitive::Float(t)))
}
