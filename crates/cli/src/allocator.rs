//! How the `zoo` binary asks glibc's allocator to keep memory it frees.
//!
//! A prefill's activations are megabytes per op (128 tokens through a 4 864-wide MLP: 2.5 MB a
//! tensor), allocated and freed a few times per layer. glibc serves such sizes with fresh
//! `mmap`s, or returns them to the system when the heap's top is freed, so each op's output
//! is faulted in and zeroed by the kernel page by page again (13% of a 128-token prefill of
//! a 415M model, in `perf`). With every allocation below 32 MiB taken from the heap and up
//! to 128 MiB of freed heap kept, prefill ran 1.15× as fast on the 415M `Q4_0` model and 1.4×
//! on the f32 one, with the same peak resident memory (docs/cpu-performance.md).
//!
//! `ZOO_MALLOC=default` leaves glibc's settings alone (for measuring); other C libraries
//! are left alone always.

/// Sets the thresholds above, once, before any thread starts.
pub fn keep_freed_memory() {
    if std::env::var("ZOO_MALLOC").is_ok_and(|v| v.trim() == "default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_BELOW: libc::c_int = 32 << 20;
        const TRIM_ABOVE: libc::c_int = 128 << 20;
        // SAFETY: `mallopt` only changes the allocator's thresholds; it is called at the start
        // of `main`, before other threads allocate. A refused value leaves the default.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_BELOW);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_ABOVE);
        }
    }
}
