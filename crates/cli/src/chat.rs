//! `zoo chat`: an interactive conversation. Each turn re-renders the whole conversation with
//! the model's chat template, and the session reuses the KV cache for the part it has seen.

use std::io::{BufRead, Write};

use anyhow::Result;
use zoo_checkpoint::Message;
use zoo_core::{GenerateOptions, Session};

use crate::args::ChatArgs;
use crate::generation_config;
use crate::input::Line;
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
        let line = match crate::input::next_line(input, "standard input")? {
            Line::Text(line) => line,
            Line::End => break,
            Line::TooLong => {
                writeln!(
                    err,
                    "[that line is longer than {} bytes and was skipped; try again]",
                    crate::input::MAX_LINE
                )?;
                continue;
            }
            Line::NotUtf8 => {
                writeln!(err, "[that line is not UTF-8 text and was skipped; try again]")?;
                continue;
            }
        };
        if line.trim().is_empty() {
            break;
        }
        if line.trim() == "/reset" {
            messages = system.clone();
            continue;
        }
        messages.push(Message::new("user", line.as_str()));
        match turn(&pipe, &messages, &mut session, &options, &mut sampler, out) {
            Ok(reply) => {
                write_stats(err, &reply, &pipe)?;
                messages.push(Message::new("assistant", reply.text.trim()));
            }
            Err(e) => {
                // The conversation goes on without the message that failed.
                messages.pop();
                writeln!(err, "[error: {e:#}; that message was dropped]")?;
            }
        }
    }
    Ok(())
}

/// One reply to the conversation so far, streamed to `out`.
fn turn(
    pipe: &zoo::Pipeline,
    messages: &[Message],
    session: &mut Session<'_, zoo_core::DynBackend>,
    options: &GenerateOptions,
    sampler: &mut dyn zoo_core::Sampler,
    out: &mut dyn Write,
) -> Result<zoo_core::Generation> {
    session.reset_to(&pipe.chat_prompt(messages)?)?;
    let mut stream = session.stream(&[], options, sampler, Some(pipe.tokenizer.as_ref()))?;
    for token in stream.by_ref() {
        write!(out, "{}", token?.text)?;
        out.flush()?;
    }
    writeln!(out, "{}", stream.remaining_text()?)?;
    Ok(stream.finish()?)
}
