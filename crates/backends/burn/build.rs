//! Stamps each build of this crate's sources (`ZOO_KERNELS_BUILD`): the compiled-kernel caches
//! (`kernel_cache` in `src/lib.rs`) are kept per stamp, because CubeCL names a cached kernel
//! by its type and settings, not its code, and the kernels are this crate's sources.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    // Rerun (a new stamp) whenever a source file changes.
    println!("cargo:rerun-if-changed=src");
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!("cargo:rustc-env=ZOO_KERNELS_BUILD={stamp:x}");
}
