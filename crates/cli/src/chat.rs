//! `zoo chat`: an interactive conversation. Each turn re-renders the whole conversation with
//! the model's chat template, and the session reuses the KV cache for the part it has seen.

use std::io::{BufRead, Write};

use anyhow::Result;
use zoo_checkpoint::Message;
use zoo_core::{GenerateOptions, Session};

use crate::args::ChatArgs;
use crate::generation_config;
use crate::run::{load_options, write_stats};

/// Runs the chat loop over `input` until an empty line or end of input.
pub fn run(args: &ChatArgs, input: &mut dyn BufRead, out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    let pipe = crate::progress::load(&load_options(&args.model)?)?;
    let mut sampler = generation_config::sampling_params(&args.sampling, pipe.generation_config.as_ref())?.build()?;
    let options =
        GenerateOptions { max_tokens: args.max_tokens, eos_token_ids: pipe.eos_token_ids(), stop_strings: Vec::new() };
    let system: Vec<Message> = args.system.iter().map(|s| Message::new("system", s.as_str())).collect();
    let mut messages = system.clone();
    let mut session = Session::new(pipe.model.as_ref(), None)?;
    writeln!(err, "[chatting with {}; /reset starts over, an empty line quits]", pipe.weights.display())?;
    loop {
        write!(err, "> ")?;
        err.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if line.trim() == "/reset" {
            messages = system.clone();
            continue;
        }
        messages.push(Message::new("user", line.trim_end_matches(['\r', '\n'])));
        session.reset_to(&pipe.chat_prompt(&messages)?)?;
        let mut stream = session.stream(&[], &options, &mut sampler, Some(pipe.tokenizer.as_ref()))?;
        for token in stream.by_ref() {
            write!(out, "{}", token?.text)?;
            out.flush()?;
        }
        writeln!(out, "{}", stream.remaining_text()?)?;
        let reply = stream.finish()?;
        write_stats(err, &reply, &pipe)?;
        messages.push(Message::new("assistant", reply.text.trim()));
    }
    Ok(())
}
