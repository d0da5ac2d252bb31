//! # zoo-models
//!
//! One file per model family, each generic over [`zoo_core::Backend`] and registered with
//! `inventory::submit!` beside its code. Nothing outside a family's file names it.
//!
//! | family | file | reference |
//! |---|---|---|
//! | `gpt2` | [`gpt2`] | transformers `GPT2LMHeadModel` |

pub mod gpt2;
pub mod nn;

/// Call from a binary to make sure this crate (and so its registrations) is linked.
pub fn link() {}
