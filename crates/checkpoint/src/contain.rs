//! Containing panics raised inside libraries zoo calls (the `tokenizers` crate and the Oniguruma
//! regex engine under it panic on some malformed files and on a regex that exceeds its
//! backtracking limit): [`contained`] turns one into an error message, and the panic hook stays
//! silent for it, so the user sees one `error:` line naming the file.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`contained`] (its panics are reported as errors).
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Runs `f`, returning a panic inside it as `Err(message)`.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CONTAINING.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(was));
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        format!("the tokenizer library failed: {}", zoo_core::quoted(&message))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_panic_becomes_an_error() {
        let err = super::contained(|| -> u32 { panic!("boom\nline") }).unwrap_err();
        assert!(err.contains("boom\\nline"), "{err}");
        assert_eq!(super::contained(|| 7).unwrap(), 7);
    }
}
