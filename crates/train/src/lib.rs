//! # zoo-train
//!
//! Trains nanochat-GPT and GPT-2 from scratch with the model files `zoo run` uses
//! (`zoo_models::nanochat`, `zoo_models::gpt2`), through Burn's autodiff: the Burn backend's
//! parameter store ([`zoo_backend_burn::Params`]) hands the model the trainer's tensors,
//! gradients come from `backward()` on the loss, and the model is reloaded from the store after
//! each optimizer step. A run directory is a checkpoint `zoo run --weights DIR` loads, plus the
//! state `--resume` needs to continue bit for bit.
//!
//! One concept per module, in the order a run meets them: [`corpus`] (text and the validation
//! split), [`tokenizer`] (byte-level BPE), [`token_file`] (memory-mapped ids, random windows),
//! [`data`], [`family`] (presets, parameters, initialisation), [`init`], [`loss`],
//! [`optimizer`] (AdamW), [`schedule`], [`step`] (accumulation, clipping, update),
//! [`evaluate`], [`loss_log`], [`tensorboard`] (event files), [`plot`] (`loss.png`), [`run_dir`],
//! and [`trainer`] (the loop).

pub mod corpus;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod family;
pub mod init;
pub mod loss;
pub mod loss_log;
pub mod optimizer;
pub mod options;
pub mod plot;
pub mod run_dir;
pub mod schedule;
pub mod step;
pub mod tensorboard;
pub mod token_file;
pub mod tokenizer;
pub mod trainer;

pub use error::{Result, TrainError};
pub use family::Family;
pub use options::{Event, Precision, StepReport, Summary, TrainOptions};
#[cfg(feature = "cuda")]
pub use trainer::train_cuda;
pub use trainer::{train, train_cpu};
