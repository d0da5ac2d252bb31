//! # zoo-core
//!
//! The traits every other zoo crate builds on, and nothing that depends on a file format or a
//! compute engine:
//! - [`Backend`]: tensor operations a decoder-only transformer needs, with an associated tensor
//!   type; [`DynBackend`] erases the concrete backend for run-time selection;
//! - [`Model`]: a loaded network, generic over its backend, run with a [`KvCache`];
//! - [`Sampler`], [`Tokenizer`], and the generation loop ([`Session`]);
//! - the registries of model families and backends ([`registry`]), filled by `inventory`;
//! - [`WeightSource`]: named tensors as checkpoint readers hand them out.

pub mod backend;
pub mod batch;
pub mod checks;
pub mod dtype;
pub mod dyn_backend;
pub mod error;
pub mod generate;
pub mod hooked;
pub mod kquant;
pub mod kv_cache;
pub mod load_report;
pub mod model;
pub mod op_profile;
pub mod quant;
pub mod quote;
pub mod recordings;
pub mod registry;
pub mod rope;
pub mod sampler;
pub mod text_stream;
pub mod tokenizer;
pub mod weights;

pub use backend::{
    scoped, AttentionSpec, Backend, KvGrowth, KvSpec, Qkv, RopeConvention, RopeSpec, SeqSpan, StepInput, StepMemory,
    Support, TensorShape, UnaryOp,
};
pub use batch::generate_batch;
pub use dtype::DType;
pub use dyn_backend::{DynBackend, DynTensor};
pub use error::{Error, Result};
pub use generate::{GenerateOptions, Generation, Session, Stats, StopReason, Stream, Token};
pub use hooked::{GetHook, Hooked};
pub use kv_cache::{Batch, KvCache, KvLayout, LogitsRows, Step};
pub use load_report::{LoadReport, TakenNames, Tracked};
pub use model::{forward, LimitedContext, Model, ModelInfo};
pub use op_profile::{OpProfile, OpTime};
pub use quote::quoted;
pub use recordings::{Recording, Recordings};
pub use registry::{BackendEntry, BackendOptions, DynModel, LoadRequest, ModelFamily};
pub use rope::{RopeScaling, RopeType, Yarn};
pub use sampler::{Sampler, SamplingParams};
pub use text_stream::{Piece, TextStream};
pub use tokenizer::Tokenizer;
pub use weights::{Bytes, GroupScales, MemoryWeights, WeightMeta, WeightSource, WeightView};

/// Re-exported so that registrations (`zoo_core::inventory::submit!`) need no direct dependency.
pub use inventory;
