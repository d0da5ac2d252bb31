//! Device-side ordering between CubeCL's stream and another stream (cuBLAS's), through a pair
//! of 32-bit flags in device memory: CubeCL writes `flags[0]` when the work before it is done
//! (the other stream waits for that value with `cuStreamWaitValue32`), and spins on `flags[1]`
//! until the other stream writes it, so CubeCL's later work starts after the other stream's.
//! Neither direction makes the host wait.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::prelude::*;

/// `flags[0] = value`: everything CubeCL queued before has finished.
#[cube(launch_unchecked)]
pub(crate) fn signal_kernel(flags: &mut Array<u32>, value: u32) {
    if UNIT_POS == 0 {
        flags[0] = value;
    }
}

/// Returns once `flags[1] == value` (atomic loads: the other stream's write reaches L2, which
/// they read, not a cached copy).
#[cube(launch_unchecked)]
pub(crate) fn wait_kernel(flags: &Array<Atomic<u32>>, value: u32) {
    if UNIT_POS == 0 {
        loop {
            if flags[1].load() == value {
                break;
            }
        }
    }
}
