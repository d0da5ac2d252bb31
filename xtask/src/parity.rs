//! `cargo xtask parity`: a live comparison against the reference implementations.
//!
//! Unlike the committed-fixture tests, the reference is recomputed now, from the same weights,
//! by the Python environment's transformers (or the repo's nanochat reference); for a GGUF
//! fixture, by transformers' GGUF loader from the cached model file.

use anyhow::{bail, Result};
use zoo_tests::{fixture_names, fixtures_dir, greedy, max_logit_error, Fixture, F32_LOGIT_TOLERANCE};

use crate::python;

/// Checks every fixture (or one) on `backend`; fails if any differs.
pub fn run(backend: &str, only: Option<&str>) -> Result<()> {
    let names: Vec<String> = fixture_names().into_iter().filter(|n| only.is_none_or(|o| o == n)).collect();
    if names.is_empty() {
        bail!("no fixture matches {only:?}; run `cargo xtask gen-fixtures` first");
    }
    let scratch = std::env::temp_dir().join("zoo-parity");
    std::fs::create_dir_all(&scratch)?;
    println!("{:<24} {:<10} {:>14} {:>8}", "fixture", "backend", "max |Δlogit|", "greedy");
    let mut failures = 0;
    for name in names {
        let dir = fixtures_dir().join(&name);
        let live = scratch.join(format!("{name}.json"));
        let committed = Fixture::load(&name)?;
        if committed.reference.gguf.is_some() {
            python::gguf_reference(&committed.weights, &live)?;
        } else {
            python::reference(&dir, &live)?;
        }
        let fixture = Fixture::from_dir(&dir, &live)?;
        let pipe = fixture.pipeline(backend)?;
        let mut worst = 0f32;
        let mut same_tokens = true;
        for prompt in &fixture.reference.prompts {
            worst = worst.max(max_logit_error(&pipe, &fixture.reference, prompt)?);
            same_tokens &= greedy(&pipe, prompt)?.0 == prompt.tokens;
        }
        let ok = worst <= F32_LOGIT_TOLERANCE && same_tokens;
        failures += usize::from(!ok);
        println!("{name:<24} {backend:<10} {worst:>14.3e} {:>8}", if same_tokens { "same" } else { "DIFFER" });
    }
    if failures > 0 {
        bail!("{failures} fixture(s) differ from the live reference (tolerance {F32_LOGIT_TOLERANCE:e})");
    }
    println!("all fixtures match (logits within {F32_LOGIT_TOLERANCE:e}, identical greedy tokens)");
    Ok(())
}
