//! `zoo train`: flags to [`zoo_train::TrainOptions`], a progress bar (step, loss, tokens/s,
//! learning rate, ETA) on stderr, evaluations and checkpoints as lines above it, and a summary
//! on stdout.

pub mod args;

use std::io::Write;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zoo_train::{Event, Family, Summary, TrainOptions};

use args::TrainArgs;

/// Runs `zoo train`.
pub fn run(args: &TrainArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let options = options(args)?;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("step {pos}/{len} [{bar:30}] {msg} ETA {eta}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let mut lines = Vec::new();
    let mut report = |event: Event<'_>| report(&bar, &mut lines, event);
    let summary = match args.backend.as_str() {
        "burn-ndarray" => zoo_train::train_cpu(&options, &mut report),
        #[cfg(feature = "train-cuda")]
        "cuda" => zoo_train::train_cuda(&options, &mut report),
        other => anyhow::bail!("--backend: `{other}` cannot train (burn-ndarray{})", cuda_hint()),
    };
    bar.finish_and_clear();
    for line in &lines {
        writeln!(err, "{line}")?;
    }
    let summary = summary?;
    print_summary(out, &summary, args)
}

fn cuda_hint() -> &'static str {
    if cfg!(feature = "train-cuda") {
        ", cuda"
    } else {
        "; cuda needs a build with --features train-cuda"
    }
}

fn options(args: &TrainArgs) -> Result<TrainOptions> {
    let family = Family::parse(&args.model)?;
    let mut o = TrainOptions::new(family, args.data.as_deref().unwrap_or(std::path::Path::new("")), &args.out);
    o.tokenizer = args.tokenizer.clone();
    o.vocab_size = args.vocab_size;
    o.config = args.config.clone();
    o.steps = args.steps;
    o.time = args.time;
    o.stop_after = args.stop_after;
    o.batch_tokens = args.batch_tokens;
    o.micro_batch = args.micro_batch;
    o.lr = args.lr;
    o.seed = args.seed;
    o.resume = args.resume;
    o.save_every = args.save_every;
    o.eval_every = args.eval_every;
    o.precision = args.precision.as_deref().and_then(zoo_train::Precision::parse);
    Ok(o)
}

/// Moves the bar; evaluations and checkpoints print above it (and are kept for the end when
/// stderr is not a terminal, where the bar does not draw).
fn report(bar: &ProgressBar, lines: &mut Vec<String>, event: Event<'_>) {
    let line = match event {
        Event::Ready { parameters, vocab_size, train_tokens, validation_tokens, first_step, total_steps } => {
            bar.set_length(total_steps);
            bar.set_position(first_step);
            bar.reset_eta();
            format!(
                "zoo: {parameters} parameters, vocabulary {vocab_size}, {train_tokens} training and \
                 {validation_tokens} validation tokens{}",
                if first_step > 0 { format!(", resuming at step {first_step}") } else { String::new() }
            )
        }
        Event::Step(s) => {
            bar.set_length(s.total_steps);
            bar.set_position(s.step);
            bar.set_message(format!(
                "loss {:.3} | {:.0} tok/s | lr {:.2e} | grad norm {:.2}",
                s.loss, s.tokens_per_second, s.lr, s.grad_norm
            ));
            return;
        }
        Event::Evaluated { step, validation_loss, sample } => {
            format!("step {step}: validation loss {validation_loss:.3} | sample: {}", sample.replace('\n', " "))
        }
        Event::Saved { step, dir } => format!("step {step}: checkpoint in {}", dir.display()),
        Event::Warning(message) => format!("warning: {message}"),
    };
    if bar.is_hidden() {
        lines.push(line);
    } else {
        bar.println(line);
    }
}

fn print_summary(out: &mut dyn Write, s: &Summary, args: &TrainArgs) -> Result<()> {
    writeln!(
        out,
        "trained {} steps: training loss {:.3}, validation loss {:.3} (uniform guess {:.3})",
        s.steps, s.train_loss, s.validation_loss, s.uniform_loss
    )?;
    writeln!(
        out,
        "throughput: {:.0} tokens/s in {}, {:.2} TFLOP/s of model FLOPs ({:.0} per token)",
        s.tokens_per_second(),
        s.precision.name(),
        s.flops_per_second() / 1e12,
        s.flops_per_token
    )?;
    writeln!(out, "run it: zoo run --weights {} --prompt \"...\"", args.out.display())?;
    Ok(())
}
