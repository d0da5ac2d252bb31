//! Every fixture on the `wgpu` backend (burn-wgpu, f32), against the same references as the CPU
//! backends (parity.rs): logits within [`F32_LOGIT_TOLERANCE`] at prefill and decode positions,
//! identical greedy tokens and text. The smollm2 fixture is the default model asked "What is the
//! capital of France?" (answer: "The capital of France is Paris."). Built with `--features wgpu`;
//! CI runs it on Mesa's lavapipe (scripts/install-vulkan.sh). Without a usable adapter the tests
//! fail with the reason, unless `ZOO_SKIP_WGPU=1`, which makes them print that they skipped.
#![cfg(feature = "wgpu")]

use zoo_core::registry::{self, Availability};
use zoo_tests::{fixture_names, greedy, max_logit_error, Fixture, F32_LOGIT_TOLERANCE};

/// Whether `wgpu` can run here; a skip is printed, never silent.
fn wgpu_usable() -> bool {
    zoo::link_plugins();
    let entry = registry::find_backend("wgpu").expect("wgpu is compiled in");
    match (entry.availability)() {
        Availability::Usable => true,
        Availability::Unusable(why) if std::env::var_os("ZOO_SKIP_WGPU").is_some() => {
            eprintln!("SKIPPED: wgpu unusable here ({why}) and ZOO_SKIP_WGPU is set");
            false
        }
        Availability::Unusable(why) => {
            panic!("wgpu unusable here: {why} (scripts/install-vulkan.sh; ZOO_SKIP_WGPU=1 skips)")
        }
    }
}

#[test]
fn fixtures_on_wgpu_match_reference() {
    if !wgpu_usable() {
        return;
    }
    for name in fixture_names() {
        let fixture = Fixture::load(&name).unwrap();
        let pipe = fixture.pipeline("wgpu").unwrap();
        for prompt in &fixture.reference.prompts {
            let err = max_logit_error(&pipe, &fixture.reference, prompt).unwrap();
            eprintln!("{name} on wgpu, prompt {:?}: max |Δlogit| = {err:e}", prompt.text);
            assert!(
                err <= F32_LOGIT_TOLERANCE,
                "{name} on wgpu, prompt {:?}: max |Δlogit| = {err:e} > {F32_LOGIT_TOLERANCE:e}",
                prompt.text
            );
            let (tokens, text) = greedy(&pipe, prompt).unwrap();
            assert_eq!(tokens, prompt.tokens, "{name} on wgpu, prompt {:?}", prompt.text);
            assert_eq!(text, prompt.generated_text, "{name} on wgpu, prompt {:?}", prompt.text);
        }
    }
}
