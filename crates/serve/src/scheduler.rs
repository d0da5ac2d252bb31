//! Continuous batching. One thread owns the model and the KV cache; between forward steps it
//! admits queued jobs into free slots and drops finished or abandoned ones, and each step runs
//! every active sequence at once: a new sequence's prompt (minus what its slot already caches)
//! and each running sequence's last token, in one batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::mpsc::Receiver;
use zoo::Pipeline;
use zoo_core::{forward, Backend, Batch, DynBackend, KvCache, LogitsRows};

use crate::api_error::ApiError;
use crate::job::Job;
use crate::metrics::{add, Metrics};
use crate::sequence::{Context, Sequence};
use crate::slots::Slots;

/// What one step hands the sequences: every row's greedy pick, or the logits rows.
enum Picked {
    Ids(Vec<u32>),
    Logits(Vec<f32>),
}

/// The batching loop's state.
struct Scheduler<'p> {
    pipe: &'p Pipeline,
    ctx: Context<'p>,
    cache: KvCache<DynBackend>,
    slots: Slots,
    active: Vec<Sequence<'p>>,
    queue: Receiver<Job>,
}

/// Starts the scheduler thread with a cache of `max_batch` slots. It runs until the queue's
/// senders are gone and every admitted job has ended.
pub fn spawn(
    pipe: Arc<Pipeline>,
    max_batch: usize,
    queue: Receiver<Job>,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<()>, crate::Error> {
    let info = pipe.model.info();
    let cache = KvCache::new(pipe.model.backend(), &info.kv, max_batch, info.max_context)?;
    let eos = pipe.eos_token_ids();
    let thread = std::thread::Builder::new().name("zoo-scheduler".into()).spawn(move || {
        let ctx = Context {
            tokenizer: pipe.tokenizer.as_ref(),
            eos_token_ids: &eos,
            capacity: cache.capacity(),
            metrics: &metrics,
        };
        let scheduler = Scheduler { pipe: &pipe, ctx, cache, slots: Slots::new(max_batch), active: Vec::new(), queue };
        scheduler.run();
    });
    thread.map_err(crate::Error::Thread)
}

impl Scheduler<'_> {
    fn run(mut self) {
        while self.admit() {
            self.drop_cancelled();
            if self.active.is_empty() {
                continue;
            }
            if let Err(e) = self.step() {
                self.fail_all(e);
            }
            self.ctx.metrics.active_sequences.store(self.active.len() as u64, Ordering::Relaxed);
        }
    }

    /// Moves queued jobs into free slots; waits for one when nothing runs. Returns false once
    /// the queue is closed and nothing runs.
    fn admit(&mut self) -> bool {
        while self.slots.has_free() {
            let job = if self.active.is_empty() {
                match self.queue.blocking_recv() {
                    Some(job) => job,
                    None => return false,
                }
            } else {
                match self.queue.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            self.start(job);
        }
        true
    }

    fn start(&mut self, job: Job) {
        let metrics = self.ctx.metrics;
        if job.events.is_closed() {
            add(&metrics.cancelled_jobs, 1);
            return;
        }
        let Some(claim) = self.slots.claim(&job.prompt) else { return };
        self.cache.truncate(claim.slot, claim.reused);
        add(&metrics.prompt_tokens, job.prompt.len() as u64);
        add(&metrics.reused_prompt_tokens, claim.reused as u64);
        let events = job.events.clone();
        match Sequence::new(job, claim.slot, claim.reused, &self.ctx) {
            Ok(seq) => self.active.push(seq),
            Err(e) => {
                let _ = events.send(crate::job::Event::Failed(e));
                self.slots.release(claim.slot, &[]);
            }
        }
    }

    /// Ends sequences whose clients left, freeing their slots (their cache stays reusable).
    fn drop_cancelled(&mut self) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active).into_iter().partition(|s| s.cancelled());
        self.active = kept;
        for seq in gone {
            add(&self.ctx.metrics.cancelled_jobs, 1);
            self.release(&seq);
        }
    }

    fn release(&mut self, seq: &Sequence<'_>) {
        let cached = self.cache.len(seq.slot).min(seq.history.len());
        self.slots.release(seq.slot, &seq.history[..cached]);
    }

    /// One forward pass for every active sequence, then one token each.
    fn step(&mut self) -> Result<(), ApiError> {
        let mut batch = Batch::default();
        for seq in &self.active {
            batch.push(seq.slot, &seq.pending);
        }
        let model = self.pipe.model.as_ref();
        let internal = |e: zoo_core::Error| ApiError::internal(e.to_string());
        let logits = forward(model, &batch, &mut self.cache, LogitsRows::Last).map_err(internal)?;
        let backend = model.backend();
        let picked = if self.active.iter().any(|s| s.needs_logits()) {
            Picked::Logits(backend.to_host(&logits).map_err(internal)?)
        } else {
            Picked::Ids(backend.argmax_rows(&logits).map_err(internal)?)
        };
        add(&self.ctx.metrics.steps, 1);
        let vocab = model.info().vocab_size;
        let mut ended = Vec::new();
        for (row, seq) in self.active.iter_mut().enumerate() {
            let (id, values) = match &picked {
                Picked::Ids(ids) => (ids.get(row).copied(), None),
                Picked::Logits(all) => (None, all.get(row * vocab..(row + 1) * vocab)),
            };
            match seq.advance(id, values, &self.ctx) {
                Ok(false) => {}
                Ok(true) => ended.push(row),
                Err(e) => {
                    seq.fail(e);
                    ended.push(row);
                }
            }
        }
        for row in ended.into_iter().rev() {
            let seq = self.active.remove(row);
            self.release(&seq);
        }
        Ok(())
    }

    /// A step failed: every active sequence gets the error and its slot back, emptied.
    fn fail_all(&mut self, error: ApiError) {
        for seq in std::mem::take(&mut self.active) {
            seq.fail(error.clone());
            self.cache.truncate(seq.slot, 0);
            self.slots.release(seq.slot, &[]);
        }
    }
}
