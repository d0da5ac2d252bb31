//! Training end to end on the CPU (burn-ndarray under autodiff), on the committed public-domain
//! text `tests/fixtures/train/books.txt`: the loss falls well below a uniform guess, the run
//! directory loads through `zoo::load` on every CPU backend and its loss there equals the
//! trainer's, and a run stopped and resumed equals the run made in one go, bit for bit.

use std::path::{Path, PathBuf};

use zoo_core::{Batch, KvCache, LogitsRows};
use zoo_train::token_file::{leading_windows, TokenFile};
use zoo_train::{Event, Family, Summary, TrainOptions};

fn books() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/train/books.txt")
}

fn options(family: Family, out: &Path, steps: u64) -> TrainOptions {
    let mut o = TrainOptions::new(family, &books(), out);
    o.vocab_size = 512;
    o.steps = Some(steps);
    o.batch_tokens = Some(16 * 64);
    o.eval_every = 1000;
    o.sample_tokens = 8;
    o
}

/// Trains, returning the summary and every step's training loss.
fn train(o: &TrainOptions) -> (Summary, Vec<f32>) {
    let mut losses = Vec::new();
    let summary = zoo_train::train_cpu(o, &mut |event| {
        if let Event::Step(s) = event {
            losses.push(s.loss);
        }
    })
    .unwrap();
    (summary, losses)
}

/// Mean next-token loss of the validation split's first windows, as `zoo run`'s loader and
/// `backend` compute it (host log-softmax in f64).
fn loaded_validation_loss(dir: &Path, backend: &str, window: usize) -> f64 {
    let options = zoo::LoadOptions { weights: dir.to_path_buf(), backend: Some(backend.into()), ..Default::default() };
    let pipe = zoo::load(&options).unwrap();
    let file = TokenFile::open(&dir.join("train/validation.bin")).unwrap();
    let windows = leading_windows(&file, 16, window);
    let (mut total, mut count) = (0.0, 0);
    for w in &windows {
        let len = w.len() - 1;
        let mut cache = KvCache::new(&pipe.backend, &pipe.model.info().kv, 1, len).unwrap();
        let batch = Batch::single(&w[..len]);
        let step = cache.plan(&batch, LogitsRows::All).unwrap();
        let logits = pipe.model.forward_step(&step, &mut cache).unwrap();
        let logits = zoo_core::Backend::to_host(&pipe.backend, &logits).unwrap();
        let vocab = logits.len() / len;
        for (row, &target) in logits.chunks(vocab).zip(&w[1..]) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
            total += max + sum.ln() - row[target as usize] as f64;
            count += 1;
        }
    }
    total / count as f64
}

fn trains_and_loads(family: Family, steps: u64, lr: f64) {
    let dir = tempfile::tempdir().unwrap();
    let o = TrainOptions { lr, ..options(family, dir.path(), steps) };
    let (summary, losses) = train(&o);
    assert_eq!(summary.steps, steps);
    let uniform = summary.uniform_loss;
    assert!((losses[0] - uniform).abs() < 0.5, "the first loss {} is near ln(vocab) {uniform}", losses[0]);
    assert!(summary.train_loss < uniform - 1.0, "training loss {} vs ln(vocab) {uniform}", summary.train_loss);
    assert!(summary.train_loss < losses[0] - 1.0, "training loss {} vs the first {}", summary.train_loss, losses[0]);
    assert!(summary.validation_loss < uniform - 1.0, "validation loss {} vs {uniform}", summary.validation_loss);
    for backend in ["ndarray", "burn-ndarray", "candle"] {
        let loaded = loaded_validation_loss(dir.path(), backend, 65);
        let relative = (loaded - summary.validation_loss as f64).abs() / loaded;
        assert!(relative < 1e-4, "{backend}: loaded model's loss {loaded} vs trainer's {}", summary.validation_loss);
    }
    let csv = std::fs::read_to_string(dir.path().join("train/loss.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, steps + 1, "a header and one row per step");
}

#[test]
fn nanochat_learns_and_its_checkpoint_loads_everywhere() {
    trains_and_loads(Family::NanoChat, 60, 1e-2);
}

#[test]
fn gpt2_learns_and_its_checkpoint_loads_everywhere() {
    // GPT-2's N(0, 0.02) start leaves the unigram plateau later than nanochat's.
    trains_and_loads(Family::Gpt2, 120, 3e-3);
}

#[test]
fn resuming_continues_bit_for_bit() {
    let (straight, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut o = options(Family::NanoChat, straight.path(), 6);
    o.micro_batch = 4; // two forward passes per step: accumulation is part of what resumes
    train(&o);
    let mut first = TrainOptions { out: split.path().to_path_buf(), stop_after: Some(3), ..o.clone() };
    let (stopped, _) = train(&first);
    assert_eq!(stopped.steps, 3);
    first.stop_after = None;
    first.resume = true;
    let (resumed, _) = train(&first);
    assert_eq!(resumed.steps, 6);
    for file in ["model.safetensors", "train/optimizer.safetensors"] {
        let a = std::fs::read(straight.path().join(file)).unwrap();
        let b = std::fs::read(split.path().join(file)).unwrap();
        assert!(a == b, "{file} differs between the straight and the resumed run");
    }
    let logged = logged_losses(split.path());
    assert_eq!(logged.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6], "{logged:?}");
    assert_eq!(logged, logged_losses(straight.path()), "TensorBoard sees the same curve");
}

/// `(step, training loss)` from every TensorBoard events file of a run, in file order.
fn logged_losses(dir: &Path) -> Vec<(i64, f32)> {
    let files = zoo_train::tensorboard::event_files(&dir.join("train")).unwrap();
    let mut losses = Vec::new();
    for file in files {
        for event in zoo_train::tensorboard::read_events(&file).unwrap() {
            if let zoo_train::tensorboard::What::Scalars(values) = event.what {
                losses.extend(values.iter().filter(|v| v.0 == "loss/train").map(|v| (event.step, v.1)));
            }
        }
    }
    losses
}

#[test]
fn bad_data_and_options_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TrainOptions::new(Family::Gpt2, &dir.path().join("nope.txt"), &dir.path().join("run"));
    let message =
        zoo_train::train_cpu(&TrainOptions { steps: Some(1), ..missing }, &mut |_| {}).unwrap_err().to_string();
    assert!(message.contains("nope.txt"), "{message}");

    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let o = TrainOptions { steps: Some(1), ..TrainOptions::new(Family::NanoChat, &empty, &dir.path().join("run2")) };
    let message = zoo_train::train_cpu(&o, &mut |_| {}).unwrap_err().to_string();
    assert!(message.contains("empty.txt") && message.contains("no text"), "{message}");

    let o = TrainOptions { config: "huge".into(), ..options(Family::NanoChat, &dir.path().join("run3"), 1) };
    let message = zoo_train::train_cpu(&o, &mut |_| {}).unwrap_err().to_string();
    assert!(message.contains("--config") && message.contains("huge"), "{message}");

    let o = TrainOptions { resume: true, ..options(Family::NanoChat, &dir.path().join("run4"), 1) };
    let message = zoo_train::train_cpu(&o, &mut |_| {}).unwrap_err().to_string();
    assert!(message.contains("no checkpoint"), "{message}");
    assert!(!message.contains('\n'));
}
