//! Strict loading: which of a checkpoint's tensors a model took while loading.
//!
//! A model asks its [`crate::WeightSource`] for tensors by name; [`Tracked`] wraps the checkpoint's
//! source and records every name handed out, so any family and any file format gets the check
//! for free. After the load, [`Tracked::report`] sorts the checkpoint's names into consumed,
//! known unused (the family's list of buffers it ignores on purpose, [`crate::ModelFamily`]'s
//! `unused`) and unused. An unused tensor usually means the file holds a model other than the one
//! loaded (a later version of the family, a scaling table, an extra head), so callers refuse it.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use crate::hooked::{GetHook, Hooked};
use crate::{Result, WeightView};

/// A weight source that records the names of the tensors it hands out:
/// `Tracked::new(checkpoint, TakenNames::default())`.
pub type Tracked<'a> = Hooked<'a, TakenNames>;

/// The names of the tensors a [`Tracked`] source has handed out.
#[derive(Debug, Default)]
pub struct TakenNames(Mutex<BTreeSet<String>>);

impl GetHook for TakenNames {
    fn on_get(&self, name: &str, view: WeightView) -> Result<WeightView> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string());
        Ok(view)
    }
}

impl Tracked<'_> {
    /// Every tensor of the source, sorted into consumed, known unused (matching one of
    /// `known_unused`, see [`name_matches`]) and unused.
    pub fn report(&self, known_unused: &[&str]) -> LoadReport {
        let taken = self.hook().0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut report = LoadReport { source: self.inner().source_name(), ..LoadReport::default() };
        for name in self.inner().names() {
            if taken.contains(&name) {
                report.consumed.push(name);
            } else if known_unused.iter().any(|p| name_matches(p, &name)) {
                report.known_unused.push(name);
            } else {
                report.unused.push(name);
            }
        }
        report
    }
}

/// What a load took from a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The checkpoint (file or directory).
    pub source: String,
    /// Tensors the model took, sorted.
    pub consumed: Vec<String>,
    /// Tensors the family ignores on purpose (buffers, a tied head's copy), sorted.
    pub known_unused: Vec<String>,
    /// Every other tensor, sorted: what strict loading refuses.
    pub unused: Vec<String>,
}

/// Tensor names listed in one-line messages before "and N more".
const LISTED: usize = 4;

impl LoadReport {
    /// The unused tensors for a one-line message: the first few, then "and N more".
    pub fn unused_summary(&self) -> String {
        let mut text: Vec<String> = self.unused.iter().take(LISTED).map(|n| format!("`{n}`")).collect();
        if self.unused.len() > LISTED {
            text.push(format!("and {} more", self.unused.len() - LISTED));
        }
        text.join(", ")
    }
}

/// Whether tensor `name` matches `pattern`, where `*` stands for any run of characters
/// (`*.attn.bias` matches `h.0.attn.bias` and `transformer.h.11.attn.bias`).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryWeights, WeightSource};

    #[test]
    fn patterns_match_any_run_of_characters() {
        assert!(name_matches("*.attn.bias", "h.0.attn.bias"));
        assert!(name_matches("*.attn.bias", "transformer.h.11.attn.bias"));
        assert!(!name_matches("*.attn.bias", "h.0.attn.c_attn.bias"));
        assert!(name_matches("lm_head.weight", "lm_head.weight"));
        assert!(!name_matches("lm_head.weight", "lm_head.weight2"));
        assert!(name_matches("model.*.rotary_emb.*", "model.layers.3.self_attn.rotary_emb.inv_freq"));
        assert!(!name_matches("a*b*c", "abx"));
    }

    #[test]
    fn the_report_sorts_every_tensor() {
        let mut weights = MemoryWeights::new("ckpt");
        for name in ["a", "b.bias", "c", "d", "e", "f", "g"] {
            weights.insert(WeightView::from_f32(name, vec![1], &[0.0]).unwrap());
        }
        let tracked = Tracked::new(&weights, TakenNames::default());
        tracked.get("a").unwrap();
        assert!(tracked.get("missing").is_err());
        let report = tracked.report(&["*.bias"]);
        assert_eq!(report.consumed, ["a"]);
        assert_eq!(report.known_unused, ["b.bias"]);
        assert_eq!(report.unused, ["c", "d", "e", "f", "g"]);
        assert_eq!(report.unused_summary(), "`c`, `d`, `e`, `f`, and 1 more");
    }
}
