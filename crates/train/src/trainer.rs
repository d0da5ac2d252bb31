//! The training loop: set up (or resume) a run directory, load the family's model through a
//! Burn backend whose weights are the trainer's parameters, and repeat optimizer steps,
//! reloading the model after each so it sees the updated parameters; evaluate, log and
//! checkpoint along the way.

use std::time::{Duration, Instant};

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::DType;
use serde_json::Value;
use zoo_backend_burn::{Burn, DeviceHooks, Kernels, Params};
use zoo_core::{Model, WeightSource};

use crate::data::{Data, TokenizerSource};
use crate::error::{Result, TrainError};
use crate::family::{self, Family, ParamSpec};
use crate::loss_log::LossLog;
use crate::optimizer::Optimizer;
use crate::options::{Event, Precision, StepReport, Summary, TrainOptions};
use crate::run_dir::{RunDir, RunState};
use crate::schedule::Schedule;
use crate::step::{gradients, host, update, Plan};
use crate::tensorboard::{self as tb, EventWriter};

/// Steps of an invocation left out of its reported throughput when it runs more of them.
const WARM_UP_STEPS: u64 = 2;

/// Trains on burn-ndarray (the CPU, f32) under Burn's autodiff.
pub fn train_cpu(options: &TrainOptions, events: &mut dyn FnMut(Event<'_>)) -> Result<Summary> {
    type Cpu = burn::backend::Autodiff<burn::backend::NdArray<f32>>;
    if options.precision == Some(Precision::Bf16) {
        return Err(TrainError::config("--precision", "burn-ndarray trains in f32 only"));
    }
    train::<Cpu>(options, Default::default(), "burn-ndarray", Precision::F32, None, events)
}

/// Trains on burn-cuda (GPU 0) under Burn's autodiff: bf16 mixed precision unless
/// `--precision f32`.
#[cfg(feature = "cuda")]
pub fn train_cuda(options: &TrainOptions, events: &mut dyn FnMut(Event<'_>)) -> Result<Summary> {
    type Gpu = burn::backend::Autodiff<burn::backend::Cuda<f32, i32>>;
    let precision = options.precision.unwrap_or(Precision::Bf16);
    let hooks = Some(zoo_backend_burn::cuda_train::hooks());
    train::<Gpu>(options, burn::backend::cuda::CudaDevice::new(0), "cuda", precision, hooks, events)
}

/// What one optimizer step leaves: the loss, the gradient norm before clipping, and the model
/// over the updated parameters.
type Stepped<BB> = (f32, f32, Box<dyn Model<Burn<BB>>>);

/// Trains on the Burn backend `BB` (an `Autodiff<…>`) on `device`, computing in `precision`,
/// with the device's `hooks` (cuBLAS products on the GPU) where it has them.
pub fn train<BB: AutodiffBackend + Kernels>(
    options: &TrainOptions,
    device: BB::Device,
    backend_name: &'static str,
    precision: Precision,
    hooks: Option<DeviceHooks<BB>>,
    events: &mut dyn FnMut(Event<'_>),
) -> Result<Summary> {
    check_options(options)?;
    let mut run = Run::<BB>::start(options, device, backend_name, precision, hooks)?;
    run.run(options, events)
}

fn check_options(o: &TrainOptions) -> Result<()> {
    if o.steps == Some(0) {
        return Err(TrainError::config("--steps", "must be at least 1"));
    }
    if o.steps.is_none() && o.time.is_none() && !o.resume {
        return Err(TrainError::config("--steps", "give --steps N or --time DURATION"));
    }
    if !(o.lr.is_finite() && o.lr > 0.0) {
        return Err(TrainError::config("--lr", format!("{} is not a positive learning rate", o.lr)));
    }
    for (flag, value) in
        [("--micro-batch", o.micro_batch as u64), ("--save-every", o.save_every), ("--eval-every", o.eval_every)]
    {
        if value == 0 {
            return Err(TrainError::config(flag, "must be at least 1"));
        }
    }
    Ok(())
}

/// A run in progress.
struct Run<BB: AutodiffBackend + Kernels> {
    family: Family,
    dir: RunDir,
    config: Value,
    specs: Vec<ParamSpec>,
    params: Params<BB>,
    backend: Burn<BB>,
    source: Box<dyn WeightSource>,
    optimizer: Optimizer<BB::InnerBackend>,
    data: Data,
    state: RunState,
    plan: Plan,
    precision: Precision,
}

impl<BB: AutodiffBackend + Kernels> Run<BB> {
    fn start(
        o: &TrainOptions,
        device: BB::Device,
        backend_name: &'static str,
        precision: Precision,
        hooks: Option<DeviceHooks<BB>>,
    ) -> Result<Self> {
        let dir = RunDir::create(&o.out)?;
        let resuming = dir.has_checkpoint();
        if o.resume != resuming {
            let message = if o.resume {
                "it holds no checkpoint (train/state.json)"
            } else {
                "it already holds a run: pass --resume to continue it, or choose another directory"
            };
            return Err(if o.resume {
                TrainError::Resume { path: o.out.clone(), message: message.into() }
            } else {
                TrainError::config("--out", format!("{}: {message}", o.out.display()))
            });
        }
        let (data, config, state) = if resuming { Self::reopen(o, &dir)? } else { Self::fresh(o, &dir)? };
        let context = o.family.context(&config)?;
        data.train.check_fits(context + 1)?;
        data.validation.check_fits(context + 1)?;
        let rows = (state.batch_tokens / context).max(1);
        let plan = Plan { rows, micro: o.micro_batch.min(rows), window: context + 1, seed: state.seed };
        let specs = o.family.parameters(&config)?;
        let params = Params::<BB>::new();
        let dtype = match precision {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
        };
        let mut backend = Burn::<BB>::new(backend_name, device.clone(), dtype).with_params(params.clone());
        if let Some(hooks) = hooks {
            backend = backend.with_hooks(hooks);
        }
        let source: Box<dyn WeightSource> = if resuming {
            Box::new(dir.open_model()?)
        } else {
            Box::new(crate::init::initial_weights(&specs, state.seed)?)
        };
        let mut optimizer = Optimizer::new(o.adamw);
        if resuming {
            let moments = zoo_checkpoint::Safetensors::open(&dir.train_file("optimizer.safetensors"))?;
            for spec in &specs {
                optimizer.restore(&spec.name, dir.read_moments(&moments, &spec.name, state.step as usize, &device)?);
            }
        }
        Ok(Self {
            family: o.family,
            dir,
            config,
            specs,
            params,
            backend,
            source,
            optimizer,
            data,
            state,
            plan,
            precision,
        })
    }

    /// A new run: data prepared, config resolved and written.
    fn fresh(o: &TrainOptions, dir: &RunDir) -> Result<(Data, Value, RunState)> {
        let tokenizer = match &o.tokenizer {
            Some(path) => TokenizerSource::File(path),
            None => TokenizerSource::Train(o.vocab_size),
        };
        let data = Data::prepare(o.family, &o.data, tokenizer, dir)?;
        let config = resolve_config(o, &data)?;
        dir.write_json(&dir.file("config.json"), &config)?;
        let generation = serde_json::json!({"bos_token_id": data.delimiter, "eos_token_id": data.delimiter});
        dir.write_json(&dir.file("generation_config.json"), &generation)?;
        let context = o.family.context(&config)?;
        let state = RunState {
            family: o.family.name().into(),
            step: 0,
            total_steps: o.steps.unwrap_or(0),
            seed: o.seed,
            batch_tokens: o.batch_tokens.unwrap_or(16 * context),
            lr: o.lr,
            tokens: 0,
        };
        Ok((data, config, state))
    }

    /// A resumed run: everything but the length from the run directory.
    fn reopen(o: &TrainOptions, dir: &RunDir) -> Result<(Data, Value, RunState)> {
        let state: RunState = dir.read_json(&dir.train_file("state.json"))?;
        if state.family != o.family.name() {
            let message = format!("it trains {}, not {}", state.family, o.family.name());
            return Err(TrainError::Resume { path: o.out.clone(), message });
        }
        let config = dir.read_json(&dir.file("config.json"))?;
        Ok((Data::open(o.family, dir)?, config, state))
    }

    fn load(&self) -> Result<Box<dyn Model<Burn<BB>>>> {
        self.family.load(self.backend.clone(), &self.config, self.source.as_ref())
    }

    /// One optimizer step at learning rate `lr`, in the backend's execution context (on a GPU,
    /// its launches execute where they are issued): the loss, the gradient norm before
    /// clipping, and the model over the updated parameters.
    fn step(&mut self, model: &dyn Model<Burn<BB>>, lr: f64, clip: f32) -> Result<Stepped<BB>> {
        let (backend, rows) = (self.backend.clone(), self.plan.tokens() as usize);
        // The outer result says whether the step ran at all; the inner one is the step's.
        zoo_core::backend::scoped(&backend, rows, || Ok(self.optimizer_step(model, lr, clip)))?
    }

    /// [`Self::step`]'s work, in whatever context it runs.
    fn optimizer_step(&mut self, model: &dyn Model<Burn<BB>>, lr: f64, clip: f32) -> Result<Stepped<BB>> {
        let (loss, grads) = gradients(model, &self.params, &self.data.train, &self.plan, self.state.step)?;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step: self.state.step, loss });
        }
        let grad_norm = update(&mut self.optimizer, &self.params, &self.specs, grads, lr, clip)?;
        Ok((loss, grad_norm, self.load()?))
    }

    fn run(&mut self, o: &TrainOptions, events: &mut dyn FnMut(Event<'_>)) -> Result<Summary> {
        let mut model = self.load()?;
        let started = Instant::now();
        let first_step = self.state.step;
        let mut total = o.steps.unwrap_or(self.state.total_steps);
        let parameters = self.specs.iter().map(|s| s.shape.iter().product::<usize>()).sum();
        events(Event::Ready {
            parameters,
            vocab_size: self.data.vocab_size(),
            train_tokens: self.data.train.len(),
            validation_tokens: self.data.validation.len(),
            first_step,
            total_steps: total,
        });
        let mut log = LossLog::open(&self.dir.train_file("loss.csv"), Some(first_step))?;
        let mut board = EventWriter::create(&self.dir.train(), (first_step > 0).then_some(first_step))?;
        let (mut train_loss, mut validation_loss) = (f32::NAN, None);
        // Throughput over all steps, and over the steps after the first WARM_UP_STEPS
        // (which compile the GPU's kernels).
        let (mut all, mut warm) = ((0u64, 0.0f64), (0u64, 0.0f64));
        while total == 0 || self.state.step < total {
            if o.time.is_some_and(|t| started.elapsed() >= t)
                || o.stop_after.is_some_and(|n| self.state.step - first_step >= n)
            {
                break;
            }
            let began = Instant::now();
            let schedule = Schedule::new(self.state.lr, total.max(self.state.step + 1));
            let lr = schedule.at(self.state.step);
            let (loss, grad_norm);
            (loss, grad_norm, model) = self.step(model.as_ref(), lr, o.clip)?;
            self.state.step += 1;
            self.state.tokens += self.plan.tokens();
            if total == 0 {
                total = estimate_total(o.time, started.elapsed(), self.state.step - first_step) + first_step;
            }
            self.state.total_steps = total;
            let seconds = began.elapsed().as_secs_f64().max(1e-9);
            all = (all.0 + self.plan.tokens(), all.1 + seconds);
            if self.state.step - first_step > WARM_UP_STEPS {
                warm = (warm.0 + self.plan.tokens(), warm.1 + seconds);
            }
            let tokens_per_second = self.plan.tokens() as f64 / seconds;
            let step = self.state.step;
            events(Event::Step(StepReport { step, total_steps: total, loss, lr, grad_norm, tokens_per_second }));
            train_loss = loss;
            let last = step >= total || o.stop_after.is_some_and(|n| step - first_step >= n);
            validation_loss =
                if step % o.eval_every == 0 || last { Some(self.evaluate(model.as_ref(), o, events)?) } else { None };
            log.row(step, self.state.tokens, lr, loss, validation_loss)?;
            let mut scalars = vec![
                (tb::TRAIN_LOSS, loss),
                (tb::LEARNING_RATE, lr as f32),
                (tb::GRAD_NORM, grad_norm),
                (tb::TOKENS_PER_SECOND, tokens_per_second as f32),
            ];
            scalars.extend(validation_loss.map(|v| (tb::VALIDATION_LOSS, v)));
            board.scalars(step, &scalars)?;
            if step % o.save_every == 0 && !last {
                self.save(events)?;
            }
        }
        let validation_loss = match validation_loss {
            Some(v) => v,
            None => {
                let v = self.evaluate(model.as_ref(), o, events)?;
                board.scalars(self.state.step, &[(tb::VALIDATION_LOSS, v)])?;
                v
            }
        };
        self.save(events)?;
        self.plot(events);
        let uniform_loss = (self.data.vocab_size() as f32).ln();
        let (tokens, step_seconds) = if warm.0 > 0 { warm } else { all };
        Ok(Summary {
            steps: self.state.step,
            train_loss,
            validation_loss,
            uniform_loss,
            tokens,
            step_seconds,
            flops_per_token: self.flops_per_token()?,
            precision: self.precision,
        })
    }

    fn evaluate(
        &self,
        model: &dyn Model<Burn<BB>>,
        o: &TrainOptions,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<f32> {
        let validation_loss = crate::evaluate::validation_loss(model, &self.data.validation, &self.plan)?;
        let sample = crate::evaluate::sample(model, &self.data.tokenizer, self.data.delimiter, o.sample_tokens)?;
        events(Event::Evaluated { step: self.state.step, validation_loss, sample: &sample });
        Ok(validation_loss)
    }

    /// Model FLOPs per trained token: 6 per weight of each matrix product (every matrix but
    /// the embedding tables; a head tied to the token embedding counts once as a product) and
    /// `12 · layers · width · context` for attention's scores and weighted sums.
    fn flops_per_token(&self) -> Result<f64> {
        let products: usize = self
            .specs
            .iter()
            .filter(|s| s.shape.len() == 2 && s.decay)
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        let (layers, width) =
            (family::config_usize(&self.config, "n_layer")?, family::config_usize(&self.config, "n_embd")?);
        let tied_head =
            if self.specs.iter().any(|s| s.name == "lm_head.weight") { 0 } else { self.data.vocab_size() * width };
        let context = self.family.context(&self.config)?;
        Ok(6.0 * (products + tied_head) as f64 + 12.0 * (layers * width * context) as f64)
    }

    /// Draws `train/loss.png` from `train/loss.csv`; a failure is a warning, not an error.
    fn plot(&self, events: &mut dyn FnMut(Event<'_>)) {
        let path = self.dir.train_file("loss.png");
        let drawn = crate::loss_log::read(&self.dir.train_file("loss.csv"))
            .and_then(|rows| crate::plot::loss_png(&rows, &path));
        if let Err(e) = drawn {
            events(Event::Warning(format!("no loss plot: {e}")));
        }
    }

    /// Writes the weights, the moments and then the state (which names the step they hold).
    fn save(&self, events: &mut dyn FnMut(Event<'_>)) -> Result<()> {
        let mut weights = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            let param =
                self.params.get(&spec.name).ok_or_else(|| TrainError::config(spec.name.clone(), "not loaded"))?;
            let (values, dims) = host(param.inner())?;
            weights.push((spec.name.clone(), values, dims));
        }
        self.dir.write_model(&self.specs, &weights)?;
        let mut moments = Vec::new();
        for (name, m) in self.optimizer.moments() {
            let ((mv, dims), (vv, _)) = (host(m.m)?, host(m.v)?);
            moments.push((name, mv, vv, dims));
        }
        self.dir.write_moments(&moments)?;
        self.dir.write_json(&self.dir.train_file("state.json"), &self.state)?;
        events(Event::Saved { step: self.state.step, dir: self.dir.root() });
        Ok(())
    }
}

/// With only a time budget, the run's length is estimated from the steps so far.
fn estimate_total(budget: Option<Duration>, elapsed: Duration, steps: u64) -> u64 {
    let per_step = elapsed.as_secs_f64() / steps.max(1) as f64;
    let budget = budget.map_or(0.0, |b| b.as_secs_f64());
    ((budget / per_step.max(1e-9)) as u64).max(steps)
}

/// The model config: a preset or a `config.json` file, its vocabulary set to the tokenizer's.
fn resolve_config(o: &TrainOptions, data: &Data) -> Result<Value> {
    let vocab = data.vocab_size();
    let mut config = if std::path::Path::new(&o.config).is_file() {
        let path = std::path::Path::new(&o.config);
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        serde_json::from_str::<Value>(&text)
            .map_err(|e| TrainError::config("--config", format!("{}: invalid JSON: {e}", path.display())))?
    } else {
        o.family.preset(&o.config, vocab, data.delimiter)?
    };
    let Some(fields) = config.as_object_mut() else {
        return Err(TrainError::config("--config", format!("{}: not a JSON object", o.config)));
    };
    fields.insert("model_type".into(), o.family.name().into());
    fields.insert("vocab_size".into(), vocab.into());
    Ok(config)
}
