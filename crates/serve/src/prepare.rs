//! From a checked request to a job: the prompt rendered (chat template) and tokenized, its
//! length checked against the context, and `max_tokens` settled.

use zoo::Pipeline;

use crate::api_error::ApiError;
use crate::request::{Endpoint, Prompt, Request};

/// `max_tokens` of a completion that names none (OpenAI's default).
pub const DEFAULT_COMPLETION_TOKENS: usize = 16;

/// The prompt's token ids, or a 400 saying why there are none or too many.
pub fn prompt_ids(pipe: &Pipeline, prompt: &Prompt) -> Result<Vec<u32>, ApiError> {
    let ids = match prompt {
        Prompt::Text(text) => {
            pipe.tokenizer.encode(text, true).map_err(|e| ApiError::invalid_param("prompt", e.to_string()))?
        }
        Prompt::Tokens(ids) => {
            let vocab = pipe.model.info().vocab_size;
            if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::invalid_param(
                    "prompt",
                    format!("token id {id} is outside the vocabulary ({vocab})"),
                ));
            }
            ids.clone()
        }
        Prompt::Chat(messages) => {
            pipe.chat_prompt(messages).map_err(|e| ApiError::invalid_param("messages", e.to_string()))?
        }
    };
    if ids.is_empty() {
        return Err(ApiError::invalid_param("prompt", "the prompt is empty: there is nothing to continue from"));
    }
    let context = pipe.model.info().max_context;
    if ids.len() >= context {
        let param = if matches!(prompt, Prompt::Chat(_)) { "messages" } else { "prompt" };
        let message =
            format!("the prompt is {} tokens; the context holds {context}, and one is needed to answer", ids.len());
        return Err(ApiError { code: Some("context_length_exceeded"), ..ApiError::invalid_param(param, message) });
    }
    Ok(ids)
}

/// Tokens to generate at most: the request's, else 16 for completions and the rest of the
/// context for chat (generation also stops when the context is full).
pub fn max_tokens(request: &Request, prompt_len: usize, context: usize) -> usize {
    request.max_tokens.unwrap_or(match request.endpoint {
        Endpoint::Completion => DEFAULT_COMPLETION_TOKENS,
        Endpoint::Chat => context.saturating_sub(prompt_len),
    })
}
