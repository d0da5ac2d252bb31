//! Range checks for the `config.json` fields that shape a model, and the check that a config's
//! layer count matches the layers its weights hold.
//!
//! Every family parses its config with serde, then runs these checks before it allocates
//! anything per layer, so a hostile or corrupt config (`num_key_value_heads: 0`, a billion
//! layers, a NaN `rope_theta`) ends in an error naming the key and its value instead of a
//! division by zero, an allocation failure or silently wrong output.

use std::collections::BTreeSet;

use zoo_core::{Result, WeightSource};

use crate::nn::config_error;

/// Most layers a config may declare (the largest public models have a few hundred).
pub const MAX_LAYERS: usize = 4096;
/// Most heads (query or key/value) a config may declare.
pub const MAX_HEADS: usize = 4096;
/// Largest width, MLP width or head size a config may declare.
pub const MAX_WIDTH: usize = 1 << 20;
/// Largest vocabulary a config may declare.
pub const MAX_VOCAB: usize = 1 << 24;
/// Longest context a config may declare.
pub const MAX_CONTEXT: usize = 1 << 24;

/// A JSON value from a config, for an error message: compact, truncated and escaped.
pub fn quoted(value: &serde_json::Value) -> String {
    zoo_core::quoted(&value.to_string())
}

/// Token ids from a config value (an integer or a list of them): each must fit in `u32` and
/// lie below `vocab_size`.
pub fn token_ids(family: &str, key: &str, value: Option<&serde_json::Value>, vocab_size: usize) -> Result<Vec<u32>> {
    let items = match value {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    items
        .into_iter()
        .map(|item| {
            item.as_u64().and_then(|id| u32::try_from(id).ok()).filter(|&id| (id as usize) < vocab_size).ok_or_else(
                || {
                    config_error(
                        family,
                        format!("{key}: {} is not a token id below vocab_size {vocab_size}", quoted(item)),
                    )
                },
            )
        })
        .collect()
}

/// `key`'s value `value` must lie in `1..=max`.
pub fn count(family: &str, key: &str, value: usize, max: usize) -> Result<usize> {
    if value == 0 || value > max {
        return Err(config_error(family, format!("{key}: {value} is out of range (1..={max})")));
    }
    Ok(value)
}

/// `key`'s value must be a finite number above zero (and, for epsilons, at most `max`).
pub fn positive_f32(family: &str, key: &str, value: f32, max: f32) -> Result<f32> {
    if !value.is_finite() || value <= 0.0 || value > max {
        return Err(config_error(family, format!("{key}: {value} is out of range (a finite number in (0, {max}])")));
    }
    Ok(value)
}

/// `whole` must split into `parts` equal parts: `whole_key` must be a multiple of `parts_key`.
pub fn divides(family: &str, (whole_key, whole): (&str, usize), (parts_key, parts): (&str, usize)) -> Result<()> {
    if parts == 0 || whole % parts != 0 {
        return Err(config_error(family, format!("{whole_key}: {whole} is not a multiple of {parts_key}: {parts}")));
    }
    Ok(())
}

/// A sliding window, when present, must be at least one token.
pub fn window(family: &str, key: &str, value: Option<usize>) -> Result<Option<usize>> {
    match value {
        Some(0) => Err(config_error(family, format!("{key}: 0 is out of range (at least 1, or null for none)"))),
        other => Ok(other),
    }
}

/// The layer count a config declares (`key`: `declared`) must equal the number of layers the
/// weights hold under `prefix` (`prefix.{i}.…` for `i` in `0..n`): a config with fewer would
/// silently drop layers, one with more fails on a missing tensor only after allocating.
pub fn layer_count(family: &str, key: &str, declared: usize, weights: &dyn WeightSource, prefix: &str) -> Result<()> {
    let present = layers_present(weights, prefix);
    let contiguous = present.iter().copied().eq(0..present.len());
    if present.is_empty() || (contiguous && present.len() == declared) {
        // No layers found under the prefix: leave the error to the tensor lookup, which names it.
        return Ok(());
    }
    Err(config_error(
        family,
        format!("{key}: {declared} does not match the weights, which hold {} layers under `{prefix}`", present.len()),
    ))
}

/// Layer indices `i` for which some tensor is named `prefix.{i}.…`.
fn layers_present(weights: &dyn WeightSource, prefix: &str) -> BTreeSet<usize> {
    let prefix = format!("{prefix}.");
    weights
        .names()
        .iter()
        .filter_map(|name| name.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('.').next())
        .filter_map(|index| index.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_name_the_key_and_value() {
        assert!(count("t", "num_key_value_heads", 0, 8).unwrap_err().to_string().contains("num_key_value_heads: 0"));
        assert!(count("t", "n_layer", 1 << 40, MAX_LAYERS).unwrap_err().to_string().contains("1099511627776"));
        assert!(positive_f32("t", "rope_theta", f32::NAN, f32::MAX)
            .unwrap_err()
            .to_string()
            .contains("rope_theta: NaN"));
        assert!(positive_f32("t", "rms_norm_eps", -1.0, 1.0).is_err());
        assert!(window("t", "sliding_window", Some(0)).unwrap_err().to_string().contains("sliding_window: 0"));
        assert!(divides("t", ("a", 6), ("b", 4)).unwrap_err().to_string().contains("a: 6 is not a multiple of b: 4"));
        assert!(divides("t", ("a", 8), ("b", 4)).is_ok());
    }
}
