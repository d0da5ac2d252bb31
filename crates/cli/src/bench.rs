//! `zoo bench`: prefill and decode speed of one model on one backend, over several runs of a
//! fixed workload — a prompt of exactly N tokens, then M greedy tokens with EOS ignored — so
//! runs, backends and builds compare like for like. A warm-up run (not counted) first pays for
//! page faults of memory-mapped weights and GPU kernel compilation.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;
use zoo_core::sampler::Greedy;
use zoo_core::{GenerateOptions, OpProfile, OpTime, Session, Stats};

use crate::args::BenchArgs;
use crate::run::{load_options, write_notes};
use zoo::Pipeline;

/// Text repeated to make the synthetic prompt (any text works; this one tokenizes normally).
const PROMPT_TEXT: &str = "The history of the printing press begins in the fifteenth century, when movable \
    type, oil-based inks and the screw press came together in the workshops of the Rhine valley. ";

/// One measured run.
#[derive(Debug, Serialize)]
struct RunFigures {
    prefill_tok_s: f64,
    decode_tok_s: f64,
}

/// What `zoo bench --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    weights: String,
    family: String,
    backend: String,
    load_s: f64,
    weight_bytes: u64,
    weights_load_s: f64,
    prompt_tokens: usize,
    generated_tokens: usize,
    warmup_runs: usize,
    runs: Vec<RunFigures>,
    prefill_tok_s_median: f64,
    decode_tok_s_median: f64,
    /// Kernels launched by one decode step (where the backend counts them).
    launches_per_step: Option<u64>,
    layers: usize,
    /// With `--profile`: host time per backend op over the measured runs' decode steps.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    op_profile: Vec<OpFigures>,
}

/// One op's share of a decode step (`--profile`).
#[derive(Debug, Serialize)]
struct OpFigures {
    op: &'static str,
    calls_per_step: f64,
    us_per_call: f64,
    us_per_step: f64,
}

pub fn run(args: &BenchArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    if args.runs == 0 || args.prompt_tokens == 0 || args.gen_tokens == 0 {
        bail!("--runs, --prompt-tokens and --gen-tokens must be at least 1");
    }
    let started = Instant::now();
    let profile = args.profile.then(|| Arc::new(OpProfile::default()));
    let pipe = crate::progress::load(&zoo::LoadOptions { profile: profile.clone(), ..load_options(&args.model)? })?;
    // Only the measured runs' decode steps are recorded (`one_run` resumes it for those).
    if let Some(profile) = &profile {
        profile.pause();
        profile.reset();
    }
    let load_s = started.elapsed().as_secs_f64();
    let needed = args.prompt_tokens + args.gen_tokens;
    let limit = pipe.model.info().max_context;
    if needed > limit {
        bail!("--prompt-tokens + --gen-tokens = {needed} is more than the model's context of {limit} tokens");
    }
    let prompt = synthetic_prompt(&pipe, args.prompt_tokens)?;
    let options = GenerateOptions { max_tokens: args.gen_tokens, ..Default::default() };
    let mut runs = Vec::with_capacity(args.runs);
    for i in 0..args.warmup + args.runs {
        let measured = profile.as_deref().filter(|_| i >= args.warmup);
        let stats = one_run(&pipe, &prompt, &options, needed, measured)?;
        let label = if i < args.warmup { "warm-up".to_string() } else { format!("run {}", i - args.warmup + 1) };
        writeln!(err, "{label}: prefill {:.1} tok/s, decode {:.1} tok/s", stats.prefill_tok_s(), stats.decode_tok_s())?;
        write_notes(err, &pipe)?;
        if i >= args.warmup {
            runs.push(RunFigures { prefill_tok_s: stats.prefill_tok_s(), decode_tok_s: stats.decode_tok_s() });
        }
    }
    let launches_per_step = launches_per_step(&pipe, &prompt)?;
    let report = Report {
        weights: zoo::hub::repo_of(&pipe.weights).unwrap_or_else(|| {
            pipe.weights.file_name().map_or_else(|| pipe.weights.display().to_string(), |n| n.to_string_lossy().into())
        }),
        family: pipe.model.info().family.clone(),
        backend: zoo_core::Backend::name(&pipe.backend).to_string(),
        load_s,
        weight_bytes: pipe.load_stats.weight_bytes,
        weights_load_s: pipe.load_stats.seconds,
        prompt_tokens: args.prompt_tokens,
        generated_tokens: args.gen_tokens,
        warmup_runs: args.warmup,
        prefill_tok_s_median: median(runs.iter().map(|r| r.prefill_tok_s).collect()),
        decode_tok_s_median: median(runs.iter().map(|r| r.decode_tok_s).collect()),
        runs,
        launches_per_step,
        layers: pipe.model.info().kv.n_layers,
        op_profile: op_figures(
            &profile.map(|p| p.snapshot()).unwrap_or_default(),
            (args.runs * args.gen_tokens.saturating_sub(1)).max(1),
        ),
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_table(&report, out)?;
    }
    Ok(())
}

/// Exactly `n` prompt tokens: the tokenizer's ids of [`PROMPT_TEXT`], repeated as needed.
fn synthetic_prompt(pipe: &Pipeline, n: usize) -> Result<Vec<u32>> {
    let ids = pipe.tokenizer.encode(PROMPT_TEXT, false)?;
    if ids.is_empty() {
        bail!("the tokenizer turned the benchmark text into no tokens");
    }
    Ok(ids.iter().copied().cycle().take(n).collect())
}

/// One generation from an empty cache, greedy, until `options.max_tokens` (EOS ignored); its
/// decode steps' ops (not the prompt's) are recorded into `decode_profile` when given.
fn one_run(
    pipe: &Pipeline,
    prompt: &[u32],
    options: &GenerateOptions,
    capacity: usize,
    decode_profile: Option<&OpProfile>,
) -> Result<Stats> {
    let mut session = Session::new(pipe.model.as_ref(), Some(capacity))?;
    let mut greedy = Greedy;
    let mut stream = session.stream(prompt, options, &mut greedy, None)?;
    if let Some(profile) = decode_profile {
        profile.resume();
    }
    let decoded = stream.by_ref().try_for_each(|token| token.map(drop));
    if let Some(profile) = decode_profile {
        profile.pause();
    }
    decoded?;
    Ok(stream.finish()?.stats)
}

/// Per-step figures of `ops` over `steps` decode steps, costliest first. The first generated
/// token comes from the prompt's logits, so a run of M tokens has M - 1 decode steps.
fn op_figures(ops: &[(&'static str, OpTime)], steps: usize) -> Vec<OpFigures> {
    let mut figures: Vec<OpFigures> = ops
        .iter()
        .map(|(op, t)| {
            let us = t.time.as_secs_f64() * 1e6;
            OpFigures {
                op,
                calls_per_step: t.calls as f64 / steps as f64,
                us_per_call: us / t.calls.max(1) as f64,
                us_per_step: us / steps as f64,
            }
        })
        .collect();
    figures.sort_by(|a, b| b.us_per_step.total_cmp(&a.us_per_step));
    figures
}

/// Kernel launches of one decode step (one token through the model and its greedy pick): the
/// launches of generating two tokens less those of generating one; `None` when the backend
/// does not count them.
fn launches_per_step(pipe: &Pipeline, prompt: &[u32]) -> Result<Option<u64>> {
    let count = |max_tokens| -> Result<Option<u64>> {
        let before = zoo_core::Backend::launches(&pipe.backend);
        let options = GenerateOptions { max_tokens, ..Default::default() };
        one_run(pipe, prompt, &options, prompt.len() + max_tokens, None)?;
        Ok(before.zip(zoo_core::Backend::launches(&pipe.backend)).map(|(a, b)| b.saturating_sub(a)))
    };
    Ok(match (count(1)?, count(2)?) {
        (Some(one), Some(two)) => two.checked_sub(one),
        _ => None,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn print_table(r: &Report, out: &mut dyn Write) -> Result<()> {
    let range = |f: fn(&RunFigures) -> f64| {
        let v: Vec<f64> = r.runs.iter().map(f).collect();
        (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(0.0, f64::max))
    };
    let ((pmin, pmax), (dmin, dmax)) = (range(|x| x.prefill_tok_s), range(|x| x.decode_tok_s));
    let runs = format!("{} runs after {} warm-up", r.runs.len(), r.warmup_runs);
    let rate = if r.weights_load_s > 0.0 { r.weight_bytes as f64 / r.weights_load_s / 1e9 } else { 0.0 };
    let weights = format!("{:.2} GB of weights at {rate:.2} GB/s", r.weight_bytes as f64 / 1e9);
    writeln!(out, "{} ({}) on {} (loaded in {:.2} s; {weights}), {runs}", r.weights, r.family, r.backend, r.load_s)?;
    writeln!(out, "{:<28} {:>10} {:>10} {:>10}", "tok/s", "median", "min", "max")?;
    let prefill = format!("prefill ({} tokens)", r.prompt_tokens);
    writeln!(out, "{prefill:<28} {:>10.1} {pmin:>10.1} {pmax:>10.1}", r.prefill_tok_s_median)?;
    let decode = format!("decode ({} tokens)", r.generated_tokens);
    writeln!(out, "{decode:<28} {:>10.1} {dmin:>10.1} {dmax:>10.1}", r.decode_tok_s_median)?;
    if let Some(launches) = r.launches_per_step {
        let per_layer = launches as f64 / r.layers.max(1) as f64;
        writeln!(
            out,
            "kernel launches per decode step: {launches} ({per_layer:.1} per layer; zoo's kernels and cuBLAS calls)"
        )?;
    }
    print_profile(r, out)
}

/// The `--profile` table: host time per op and decode step. `scoped` wraps a whole forward
/// step (the ops inside it are counted in their own rows too); a read-back such as
/// `argmax_rows` includes the wait for the device.
fn print_profile(r: &Report, out: &mut dyn Write) -> Result<()> {
    if r.op_profile.is_empty() {
        return Ok(());
    }
    let step_us = 1e6 / r.decode_tok_s_median.max(f64::MIN_POSITIVE);
    writeln!(out, "host time per decode step, by backend op (step: {step_us:.1} µs at the median decode rate):")?;
    writeln!(out, "{:<28} {:>10} {:>10} {:>10} {:>7}", "op", "calls", "µs/call", "µs/step", "share")?;
    for f in &r.op_profile {
        let share = 100.0 * f.us_per_step / step_us;
        writeln!(
            out,
            "{:<28} {:>10.2} {:>10.2} {:>10.1} {share:>6.1}%",
            f.op, f.calls_per_step, f.us_per_call, f.us_per_step
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
