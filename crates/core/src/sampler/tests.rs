//! Statistical and property tests of the samplers.

use proptest::prelude::*;

use super::processors::{softmax, LogitProcessor, RepetitionPenalty};
use super::*;

/// Fixed logits with a spread of probabilities.
fn logits() -> Vec<f32> {
    vec![2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0, 3.0, 0.25]
}

fn chain(params: SamplingParams) -> SamplerChain {
    params.build().unwrap()
}

fn draws(params: SamplingParams, n: usize) -> Vec<u32> {
    let mut s = chain(params);
    (0..n).map(|_| s.sample(&logits(), &[]).unwrap()).collect()
}

fn sampled(temperature: f32) -> SamplingParams {
    SamplingParams { temperature, seed: 11, ..Default::default() }
}

#[test]
fn greedy_takes_the_first_maximum() {
    assert_eq!(Greedy.sample(&[0.0, 3.0, 3.0, -1.0], &[]).unwrap(), 1);
    assert_eq!(chain(SamplingParams::default()).sample(&[0.0, 3.0, 3.0], &[]).unwrap(), 1);
}

#[test]
fn unusable_logits_are_clear_errors() {
    for (bad, what) in
        [(vec![0.0, f32::NAN], "NaN"), (vec![f32::INFINITY, 0.0], "+inf"), (vec![f32::NEG_INFINITY; 3], "-inf")]
    {
        for mut s in [Box::new(Greedy) as Box<dyn Sampler>, Box::new(chain(sampled(1.0)))] {
            let err = s.sample(&bad, &[]).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        }
    }
    assert!(Greedy.sample(&[], &[]).is_err());
}

#[test]
fn invalid_settings_are_rejected() {
    for params in [
        SamplingParams { temperature: -0.5, ..Default::default() },
        SamplingParams { top_p: 0.0, ..Default::default() },
        SamplingParams { top_p: 1.5, ..Default::default() },
        SamplingParams { min_p: 2.0, ..Default::default() },
        SamplingParams { repeat_penalty: 0.0, ..Default::default() },
        SamplingParams { presence_penalty: f32::NAN, ..Default::default() },
    ] {
        assert!(params.build().is_err(), "{params:?} accepted");
    }
}

#[test]
fn low_temperature_equals_greedy() {
    let best = argmax(&logits()).unwrap();
    assert!(draws(sampled(1e-3), 500).iter().all(|&t| t == best));
}

#[test]
fn samples_follow_the_softmax_distribution() {
    let n = 20_000;
    let counts = histogram(&draws(sampled(1.0), n));
    for (i, p) in softmax(&logits()).iter().enumerate() {
        let freq = counts[i] as f64 / n as f64;
        // Four standard deviations of a binomial proportion.
        let tolerance = 4.0 * (p * (1.0 - p) / n as f64).sqrt() + 1e-3;
        assert!((freq - p).abs() < tolerance, "token {i}: frequency {freq}, probability {p}");
    }
}

#[test]
fn seeds_reproduce_and_differ() {
    assert_eq!(draws(sampled(1.0), 200), draws(sampled(1.0), 200));
    let other = SamplingParams { seed: 12, ..sampled(1.0) };
    assert_ne!(draws(sampled(1.0), 200), draws(other, 200));
}

#[test]
fn top_k_never_emits_outside_the_k_best() {
    let mut order: Vec<usize> = (0..logits().len()).collect();
    order.sort_by(|&a, &b| logits()[b].total_cmp(&logits()[a]));
    let best3 = &order[..3];
    let got = draws(SamplingParams { top_k: 3, ..sampled(2.0) }, 5000);
    assert!(got.iter().all(|t| best3.contains(&(*t as usize))), "{got:?}");
    assert_eq!(histogram(&got).iter().filter(|&&c| c > 0).count(), 3, "all three should appear");
}

#[test]
fn top_p_keeps_the_smallest_nucleus_and_renormalises() {
    let probs = softmax(&logits());
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let p = 0.7;
    let mut nucleus = Vec::new();
    let mut mass = 0.0;
    for &i in &order {
        nucleus.push(i);
        mass += probs[i];
        if mass >= p {
            break;
        }
    }
    let n = 20_000;
    let got = draws(SamplingParams { top_p: p as f32, ..sampled(1.0) }, n);
    let counts = histogram(&got);
    for (i, &c) in counts.iter().enumerate() {
        if !nucleus.contains(&i) {
            assert_eq!(c, 0, "token {i} is outside the nucleus {nucleus:?}");
        } else {
            let expected = probs[i] / mass;
            let freq = c as f64 / n as f64;
            assert!((freq - expected).abs() < 0.02, "token {i}: {freq} vs {expected}");
        }
    }
}

#[test]
fn min_p_drops_unlikely_tokens() {
    let probs = softmax(&logits());
    let pmax = probs.iter().copied().fold(0.0, f64::max);
    let got = draws(SamplingParams { min_p: 0.2, ..sampled(1.0) }, 5000);
    for t in got {
        assert!(probs[t as usize] >= 0.2 * pmax, "token {t} has p {} < 0.2 · {pmax}", probs[t as usize]);
    }
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
    let mut l = vec![2.0, -2.0, 1.0];
    RepetitionPenalty(2.0).process(&mut l, &[0, 1, 1, 7]);
    assert_eq!(l, [1.0, -4.0, 1.0]);
}

#[test]
fn frequency_and_presence_penalties_count_occurrences() {
    let params = SamplingParams { frequency_penalty: 0.5, presence_penalty: 1.0, ..Default::default() };
    let mut l = vec![0.0; 3];
    for p in params.build().unwrap().processors() {
        p.process(&mut l, &[0, 0, 2]);
    }
    assert_eq!(l, [-2.0, 0.0, -1.5]);
}

#[test]
fn greedy_with_repetition_penalty_avoids_repeats() {
    let mut s = chain(SamplingParams { repeat_penalty: 10.0, ..Default::default() });
    assert_eq!(s.sample(&[1.0, 0.9], &[0]).unwrap(), 1);
}

#[test]
fn seeded_samples_snapshot() {
    let chains = [
        ("temperature 0.8", SamplingParams { temperature: 0.8, seed: 42, ..Default::default() }),
        ("top-k 4", SamplingParams { temperature: 1.0, top_k: 4, seed: 42, ..Default::default() }),
        ("top-p 0.9", SamplingParams { temperature: 1.0, top_p: 0.9, seed: 42, ..Default::default() }),
        (
            "full chain",
            SamplingParams {
                temperature: 0.8,
                top_k: 40,
                top_p: 0.95,
                min_p: 0.05,
                repeat_penalty: 1.1,
                seed: 42,
                ..Default::default()
            },
        ),
    ];
    let out: Vec<(String, Vec<u32>)> =
        chains.into_iter().map(|(name, params)| (name.to_string(), draws(params, 24))).collect();
    insta::assert_debug_snapshot!(out);
}

fn histogram(tokens: &[u32]) -> Vec<usize> {
    let mut counts = vec![0; logits().len()];
    tokens.iter().for_each(|&t| counts[t as usize] += 1);
    counts
}

fn any_params() -> impl Strategy<Value = SamplingParams> {
    (0.0f32..3.0, 0usize..12, 0.05f32..=1.0, 0.0f32..=1.0, 0.5f32..2.0, -1.0f32..1.0, -1.0f32..1.0, any::<u64>())
        .prop_map(|(temperature, top_k, top_p, min_p, repeat_penalty, frequency_penalty, presence_penalty, seed)| {
            SamplingParams {
                temperature,
                top_k,
                top_p,
                min_p,
                repeat_penalty,
                frequency_penalty,
                presence_penalty,
                seed,
            }
        })
}

fn any_logit() -> impl Strategy<Value = f32> {
    prop_oneof![8 => -1e4f32..1e4, 1 => Just(f32::NEG_INFINITY), 1 => -1e-3f32..1e-3]
}

proptest! {
    #[test]
    fn any_chain_returns_a_valid_token(
        params in any_params(),
        mut logits in prop::collection::vec(any_logit(), 1..64),
        history in prop::collection::vec(0u32..80, 0..20),
    ) {
        if logits.iter().all(|l| *l == f32::NEG_INFINITY) {
            logits[0] = 0.0;
        }
        let token = params.build().unwrap().sample(&logits, &history).unwrap();
        prop_assert!((token as usize) < logits.len());
        prop_assert!(logits[token as usize] > f32::NEG_INFINITY);
    }

    #[test]
    fn any_chain_rejects_nan(params in any_params(), logits in prop::collection::vec(-10f32..10.0, 1..32), at in 0usize..32) {
        let mut logits = logits;
        let at = at % logits.len();
        logits[at] = f32::NAN;
        prop_assert!(params.build().unwrap().sample(&logits, &[]).is_err());
    }
}

#[test]
fn only_plain_greedy_chains_let_the_backend_pick() {
    assert!(Greedy.is_greedy());
    assert!(chain(SamplingParams::default()).is_greedy());
    // Penalties read the history, and temperature draws: both need the logits on the host.
    assert!(!chain(SamplingParams { repeat_penalty: 1.3, ..Default::default() }).is_greedy());
    assert!(!chain(SamplingParams { presence_penalty: 0.5, ..Default::default() }).is_greedy());
    assert!(!chain(sampled(0.7)).is_greedy());
}

#[test]
fn an_underflowing_temperature_picks_greedily() {
    let logits = [1.0, 3.0, -2.0, 2.5];
    for temperature in [1e-45, 1e-30, f32::MIN_POSITIVE] {
        let mut sampler = SamplingParams { temperature, seed: 7, ..Default::default() }.build().unwrap();
        for _ in 0..20 {
            assert_eq!(sampler.sample(&logits, &[]).unwrap(), 1, "temperature {temperature}");
        }
    }
}

#[test]
fn logits_a_penalty_makes_unusable_are_an_error_naming_the_option() {
    let params = SamplingParams { temperature: 1.0, presence_penalty: -3e38, ..Default::default() };
    let err = params.build().unwrap().sample(&[1.0, 3e38, 0.0], &[1]).unwrap_err().to_string();
    assert!(err.contains("--presence-penalty -3"), "{err}");
    let params = SamplingParams { temperature: 1.0, frequency_penalty: f32::MAX, ..Default::default() };
    let err = params.build().unwrap().sample(&[1.0, 2.0], &[0, 0, 1, 1]).unwrap_err().to_string();
    assert!(err.contains("--frequency-penalty") && err.contains("-inf"), "{err}");
}
