//! Log probabilities of a row of logits: the picked token's and the most likely alternatives.

use zoo_core::Tokenizer;

use crate::job::{Candidate, TokenLogprob};

/// `picked`'s log-softmax value in `logits` and the `top` most likely tokens (ties: lower id first).
pub fn token_logprob(logits: &[f32], picked: u32, top: usize, tokenizer: &dyn Tokenizer) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = logits.iter().map(|&v| ((v - max) as f64).exp()).sum::<f64>().ln() as f32 + max;
    let logprob = |id: u32| logits.get(id as usize).map_or(f32::NEG_INFINITY, |&v| v - log_sum);
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let top = top.min(order.len());
    if top > 0 {
        order.select_nth_unstable_by(top - 1, |&a, &b| {
            logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b))
        });
        order.truncate(top);
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
    }
    let candidate = |id: u32| {
        let text = tokenizer.decode(&[id], false).unwrap_or_default();
        Candidate { bytes: text.as_bytes().to_vec(), text, logprob: logprob(id) }
    };
    TokenLogprob { token: candidate(picked), top: order[..top].iter().map(|&id| candidate(id)).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Letters;

    impl Tokenizer for Letters {
        fn encode(&self, _: &str, _: bool) -> zoo_core::Result<Vec<u32>> {
            Ok(Vec::new())
        }
        fn decode(&self, ids: &[u32], _: bool) -> zoo_core::Result<String> {
            Ok(ids.iter().map(|&i| char::from(b'a' + i as u8)).collect())
        }
        fn vocab_size(&self) -> usize {
            26
        }
        fn token_to_id(&self, _: &str) -> Option<u32> {
            None
        }
    }

    #[test]
    fn logprobs_are_a_log_softmax_and_the_top_tokens_come_most_likely_first() {
        let logits = [0.0, 2.0, 1.0, 2.0];
        let lp = token_logprob(&logits, 2, 3, &Letters);
        let sum: f64 = logits.iter().map(|&v| (v as f64).exp()).sum();
        assert!((lp.token.logprob as f64 - (1.0 - sum.ln())).abs() < 1e-5);
        assert_eq!(lp.token.text, "c");
        let texts: Vec<&str> = lp.top.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["b", "d", "c"]);
        let total: f64 = logits
            .iter()
            .enumerate()
            .map(|(i, _)| (token_logprob(&logits, i as u32, 0, &Letters).token.logprob as f64).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-5);
        assert!(token_logprob(&logits, 0, 0, &Letters).top.is_empty());
    }
}
