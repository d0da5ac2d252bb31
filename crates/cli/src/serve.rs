//! `zoo serve`: load the model, then serve it over HTTP until Ctrl-C or SIGTERM (the server is
//! the `zoo-serve` crate's).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use zoo_serve::ServeConfig;

use crate::args::{SamplingArgs, ServeArgs};

/// Runs `zoo serve`; says where it listens, and when it stopped, on `err`.
pub fn run(args: &ServeArgs, err: &mut dyn Write) -> Result<()> {
    let pipe = crate::progress::load(&crate::run::load_options(&args.model)?)?;
    // Checks the generation config's end-of-sequence ids, as `zoo run` does.
    crate::generation_config::sampling_params(&SamplingArgs::default(), pipe.generation_config.as_ref())?;
    let config = ServeConfig {
        host: args.host.clone(),
        port: args.port,
        api_key: args.api_key.clone(),
        max_batch: args.max_batch,
        max_queue: args.max_queue,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        model_name: model_name(&pipe.weights),
        ..ServeConfig::default()
    };
    let backend = zoo_core::Backend::name(&pipe.backend).to_string();
    let context = pipe.model.info().max_context;
    let (name, batch) = (config.model_name.clone(), config.max_batch);
    zoo_serve::serve(pipe, &config, |addr| {
        let _ = writeln!(
            err,
            "zoo serve: {name} on {backend} ({batch} slots of {context} tokens), listening on http://{addr}"
        );
        let _ = err.flush();
    })?;
    writeln!(err, "zoo serve: stopped")?;
    Ok(())
}

/// The name clients see: the Hugging Face id of a model in the hub cache, else the checkpoint's
/// file or directory name, without `.gguf`.
fn model_name(weights: &Path) -> String {
    if let Some(repo) = zoo::hub::repo_of(weights) {
        return repo;
    }
    let name = weights.file_name().map_or_else(|| weights.display().to_string(), |n| n.to_string_lossy().into_owned());
    name.strip_suffix(".gguf").map(str::to_string).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_name_is_the_checkpoint_name() {
        assert_eq!(model_name(Path::new("/c/models/SmolLM2-135M-Instruct.Q4_1.gguf")), "SmolLM2-135M-Instruct.Q4_1");
        assert_eq!(model_name(Path::new("tests/fixtures/gpt2-tiny")), "gpt2-tiny");
        let snapshot = "/h/hub/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/0123456789abcdef0123456789abcdef01234567";
        assert_eq!(model_name(Path::new(snapshot)), "Qwen/Qwen2.5-0.5B-Instruct");
    }
}
