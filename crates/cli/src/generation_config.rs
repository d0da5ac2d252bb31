//! Sampling settings from the command line and the defaults a model ships in
//! `generation_config.json` (its end-of-sequence ids are [`zoo::eos_token_ids`]'s).

use serde_json::Value;
use zoo_core::SamplingParams;

use crate::args::SamplingArgs;

/// Sampling settings: command-line values, else the model's generation config, else greedy.
/// A generation config whose end-of-sequence ids are not token ids is an error.
pub fn sampling_params(args: &SamplingArgs, generation_config: Option<&Value>) -> anyhow::Result<SamplingParams> {
    check_eos_ids(generation_config)?;
    Ok(defaults_then_flags(args, generation_config))
}

/// `eos_token_id` must be a token id (or a list of them) that fits in `u32`: a larger value
/// would otherwise be truncated into some other token.
fn check_eos_ids(generation_config: Option<&Value>) -> anyhow::Result<()> {
    let ids = match generation_config.and_then(|c| c.get("eos_token_id")) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one) => vec![one],
    };
    for id in ids {
        if id.as_u64().and_then(|v| u32::try_from(v).ok()).is_none() {
            anyhow::bail!(
                "generation_config.json: eos_token_id: {} is not a token id",
                zoo_core::quoted(&id.to_string())
            );
        }
    }
    Ok(())
}

fn defaults_then_flags(args: &SamplingArgs, generation_config: Option<&Value>) -> SamplingParams {
    let model = zoo::sampling_defaults(generation_config);
    SamplingParams {
        temperature: args.temperature.unwrap_or(model.temperature),
        top_k: args.top_k.unwrap_or(model.top_k),
        top_p: args.top_p.unwrap_or(model.top_p),
        min_p: args.min_p.unwrap_or(model.min_p),
        repeat_penalty: args.repeat_penalty.unwrap_or(model.repeat_penalty),
        frequency_penalty: args.frequency_penalty.unwrap_or(model.frequency_penalty),
        presence_penalty: args.presence_penalty.unwrap_or(model.presence_penalty),
        seed: args.seed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_override_the_generation_config_which_overrides_greedy() {
        let cfg = json!({"do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05});
        let from_model = sampling_params(&SamplingArgs::default(), Some(&cfg)).unwrap();
        assert_eq!((from_model.temperature, from_model.top_k, from_model.top_p), (0.7, 20, 0.8));
        assert_eq!(from_model.repeat_penalty, 1.05);
        let flags = SamplingArgs { temperature: Some(0.0), top_k: Some(5), ..Default::default() };
        let overridden = sampling_params(&flags, Some(&cfg)).unwrap();
        assert_eq!((overridden.temperature, overridden.top_k), (0.0, 5));
        assert_eq!(sampling_params(&SamplingArgs::default(), None).unwrap(), SamplingParams::default());
        let greedy_model =
            sampling_params(&SamplingArgs::default(), Some(&json!({"do_sample": false, "temperature": 0.6}))).unwrap();
        assert_eq!(greedy_model.temperature, 0.0);
    }

    #[test]
    fn eos_ids_beyond_u32_are_an_error_not_another_token() {
        let cfg = json!({"eos_token_id": [2, 4294967298u64]});
        let err = sampling_params(&SamplingArgs::default(), Some(&cfg)).unwrap_err().to_string();
        assert!(err.contains("eos_token_id: \"4294967298\""), "{err}");
    }
}
