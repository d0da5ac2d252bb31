//! Deterministic mutation fuzzing of every reader: small seed files of each format (made here,
//! or the repository's test data) are mutated with fixed seeds (bit flips, overwritten bytes,
//! boundary integers written over length fields, cut and spliced bytes) and opened. Every case
//! must end in an error or a checkpoint whose every tensor reads back; none may panic, and the
//! process's peak memory stays bounded. Mutations that cannot matter (whitespace inserted
//! between JSON tokens) must give exactly the unmutated file's result.
//!
//! `ZOO_FUZZ_CASES=N` runs N cases per format instead of the default (a few thousand in all,
//! seconds in a debug build); `ZOO_FUZZ_SEED=S` starts from another seed. See docs/safety.md.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use zoo_checkpoint::convert::{convert, ConvertOptions};
use zoo_core::{MemoryWeights, Tokenizer, WeightView};
use zoo_tests::fixtures_dir;

/// Cases per format unless `ZOO_FUZZ_CASES` says otherwise.
const DEFAULT_CASES: u64 = 300;

/// Peak resident memory the whole run may reach.
const MAX_PEAK_BYTES: u64 = 2 << 30;

/// xorshift64*: a fixed, dependency-free stream of numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn cases() -> u64 {
    std::env::var("ZOO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES)
}

fn seed() -> u64 {
    std::env::var("ZOO_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed)
}

/// One mutation of `bytes`; the mutated region leans towards the start, where headers are.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let focus = if rng.below(4) == 0 { out.len() } else { out.len().min(4096) };
    let at = rng.below(focus);
    match rng.below(6) {
        0 => {
            if let Some(b) = out.get_mut(at) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(focus);
                if let Some(b) = out.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
        }
        2 => {
            const BOUNDARIES: [u64; 8] = [0, 1, 0x7fff_ffff, 0xffff_ffff, 1 << 32, 1 << 40, i64::MAX as u64, u64::MAX];
            let value = BOUNDARIES[rng.below(BOUNDARIES.len())].to_le_bytes();
            let width = [1, 2, 4, 8][rng.below(4)];
            for (k, b) in value.iter().take(width).enumerate() {
                if let Some(slot) = out.get_mut(at + k) {
                    *slot = *b;
                }
            }
        }
        3 => out.truncate(at),
        4 => {
            let len = rng.below(64).min(out.len() - at.min(out.len()));
            out.drain(at.min(out.len())..at.min(out.len()) + len);
        }
        _ => {
            let from = rng.below(out.len());
            let chunk: Vec<u8> = out[from..(from + 1 + rng.below(32)).min(out.len())].to_vec();
            let at = at.min(out.len());
            out.splice(at..at, chunk);
        }
    }
    out
}

/// Runs `cases()` mutations of the file `seed_file` (written at `target` each time, with the
/// other files of its directory left as they are) through `open`.
fn fuzz(label: &str, seed_file: &Path, target: &Path, open: &dyn Fn(&Path) -> Result<(), String>) {
    let original = std::fs::read(seed_file).unwrap();
    let mut rng = Rng(seed() ^ label.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let mut opened = 0;
    for case in 0..cases() {
        let bytes = mutate(&original, &mut rng);
        std::fs::write(target, &bytes).unwrap();
        match catch_unwind(AssertUnwindSafe(|| open(target))) {
            Ok(Ok(())) => opened += 1,
            Ok(Err(message)) => {
                assert!(!message.contains('\n'), "{label} case {case}: a multi-line error: {message}");
            }
            Err(_) => {
                let keep = std::env::temp_dir().join(format!("zoo-fuzz-{label}-{case}"));
                let _ = std::fs::write(&keep, &bytes);
                panic!("{label} case {case} (seed {}) panicked; the input is saved as {}", seed(), keep.display());
            }
        }
    }
    std::fs::write(target, &original).unwrap();
    eprintln!("{label}: {} cases, {opened} opened", cases());
    assert_peak_memory_bounded();
}

fn assert_peak_memory_bounded() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    assert!(peak_kb * 1024 < MAX_PEAK_BYTES, "peak memory {peak_kb} kB");
}

/// Opens a checkpoint and reads every tensor and the tokenizer.
fn open_checkpoint(path: &Path) -> Result<(), String> {
    let checkpoint = zoo_checkpoint::open(path).map_err(|e| e.to_string())?;
    read_all(checkpoint.weights.as_ref())?;
    if let Some(tokenizer) = &checkpoint.tokenizer {
        tokenizer.encode("Hello, world", false).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn read_all(weights: &dyn zoo_core::WeightSource) -> Result<(), String> {
    for name in weights.names() {
        let view = weights.get(&name).map_err(|e| e.to_string())?;
        let _ = view.to_f32_vec();
    }
    Ok(())
}

/// A tiny Mistral-layout model (hidden 8, one layer, vocabulary 16) as an HF directory.
fn tiny_model(dir: &Path) -> PathBuf {
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    let config = serde_json::json!({"model_type": "mistral", "architectures": ["MistralForCausalLM"],
        "vocab_size": 16, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 32,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "sliding_window": null, "tie_word_embeddings": false});
    std::fs::write(hf.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let mut weights = MemoryWeights::new("tiny");
    let mut rng = Rng(7);
    let mut add = |name: &str, shape: &[usize]| {
        let values: Vec<f32> =
            (0..shape.iter().product()).map(|_| (rng.below(2000) as f32 - 1000.0) / 1000.0).collect();
        weights.insert(WeightView::from_f32(name, shape.to_vec(), &values).unwrap());
    };
    add("model.embed_tokens.weight", &[16, 8]);
    add("lm_head.weight", &[16, 8]);
    add("model.norm.weight", &[8]);
    for (name, shape) in [
        ("input_layernorm", &[8][..]),
        ("post_attention_layernorm", &[8]),
        ("self_attn.q_proj", &[8, 8]),
        ("self_attn.k_proj", &[4, 8]),
        ("self_attn.v_proj", &[4, 8]),
        ("self_attn.o_proj", &[8, 8]),
        ("mlp.gate_proj", &[16, 8]),
        ("mlp.up_proj", &[16, 8]),
        ("mlp.down_proj", &[8, 16]),
    ] {
        add(&format!("model.layers.0.{name}.weight"), shape);
    }
    zoo_checkpoint::safetensors::write(&hf.join("model.safetensors"), &weights, None, None).unwrap();
    hf
}

#[test]
fn safetensors_and_its_index() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tiny_model(tmp.path());
    fuzz("safetensors", &hf.join("model.safetensors"), &hf.join("model.safetensors"), &open_checkpoint);
    // The same weights through a sharded index.
    let sharded = tmp.path().join("sharded");
    std::fs::create_dir(&sharded).unwrap();
    std::fs::copy(hf.join("config.json"), sharded.join("config.json")).unwrap();
    std::fs::copy(hf.join("model.safetensors"), sharded.join("model-00001-of-00001.safetensors")).unwrap();
    let names = zoo_checkpoint::open(&hf).unwrap().weights.names();
    let map: serde_json::Map<String, serde_json::Value> =
        names.into_iter().map(|n| (n, "model-00001-of-00001.safetensors".into())).collect();
    let index = sharded.join("model.safetensors.index.json");
    std::fs::write(&index, serde_json::json!({"metadata": {}, "weight_map": map}).to_string()).unwrap();
    fuzz("index", &index.clone(), &index, &open_checkpoint);
}

#[test]
fn torchless_and_burn_records() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tiny_model(tmp.path());
    for file in ["m.bin", "m.mpk", "g.mpk.gz"] {
        let target = tmp.path().join(file);
        convert(&hf, &target, &ConvertOptions::default()).unwrap();
        let seed = tmp.path().join(format!("seed-{file}"));
        std::fs::copy(&target, &seed).unwrap();
        fuzz(file, &seed, &target, &open_checkpoint);
    }
}

#[test]
fn gguf_and_pytorch_files() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/checkpoint/tests/data");
    let tmp = tempfile::tempdir().unwrap();
    fuzz("gguf", &data.join("quant_types.gguf"), &tmp.path().join("m.gguf"), &|p: &Path| {
        let gguf = zoo_checkpoint::gguf::Gguf::open(p).map_err(|e| e.to_string())?;
        read_all(&gguf)?;
        open_checkpoint(p).or(Ok(()))
    });
    fuzz("pt", &data.join("tensors_p2.pt"), &tmp.path().join("m.pt"), &|p: &Path| {
        read_all(&zoo_checkpoint::torch_pt::TorchPt::open(p).map_err(|e| e.to_string())?)
    });
}

#[test]
fn tokenizer_json() {
    let tmp = tempfile::tempdir().unwrap();
    let seed = fixtures_dir().join("nanochat-tiny/tokenizer.json");
    let target = tmp.path().join("tokenizer.json");
    fuzz("tokenizer", &seed, &target, &|p: &Path| {
        let tokenizer = zoo_checkpoint::TextTokenizer::load(p).map_err(|e| e.to_string())?;
        let ids = tokenizer.encode("Hello, world! 🦀", true).map_err(|e| e.to_string())?;
        tokenizer.decode(&ids, false).map(|_| ()).map_err(|e| e.to_string())
    });
}

#[test]
fn config_json_through_model_loading() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tiny_model(tmp.path());
    let seed = tmp.path().join("seed-config.json");
    std::fs::copy(hf.join("config.json"), &seed).unwrap();
    let load = |p: &Path| -> Result<(), String> {
        let options = zoo::LoadOptions { weights: p.parent().unwrap().into(), ..Default::default() };
        match zoo::load(&options) {
            Ok(_) => Ok(()),
            // No tokenizer beside this model: loading got as far as it can.
            Err(e) if e.to_string().contains("no tokenizer") => Ok(()),
            Err(e) => Err(format!("{e:#}")),
        }
    };
    fuzz("config", &seed, &hf.join("config.json"), &load);
}

#[test]
fn whitespace_between_json_tokens_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tiny_model(tmp.path());
    let config_path = hf.join("config.json");
    let original = zoo_checkpoint::open(&hf).unwrap().config;
    let text = std::fs::read_to_string(&config_path).unwrap();
    let mut rng = Rng(seed());
    for _ in 0..cases() / 10 {
        // Whitespace after a structural character is always between tokens.
        let spots: Vec<usize> = text.match_indices([',', ':', '{', '[']).map(|(i, _)| i + 1).collect();
        let at = spots[rng.below(spots.len())];
        let spaced = format!("{}{}{}", &text[..at], [" ", "\n", "\t", "\r\n  "][rng.below(4)], &text[at..]);
        std::fs::write(&config_path, spaced).unwrap();
        assert_eq!(zoo_checkpoint::open(&hf).unwrap().config, original);
    }
    let seed_tokenizer = fixtures_dir().join("nanochat-tiny/tokenizer.json");
    let reference = zoo_checkpoint::TextTokenizer::load(&seed_tokenizer).unwrap();
    let text = std::fs::read_to_string(&seed_tokenizer).unwrap();
    let path = tmp.path().join("tokenizer.json");
    for _ in 0..cases() / 30 {
        let spots: Vec<usize> = text.match_indices(['{', '[']).map(|(i, _)| i + 1).collect();
        let at = spots[rng.below(spots.len())];
        std::fs::write(&path, format!("{} {}", &text[..at], &text[at..])).unwrap();
        let mutated = zoo_checkpoint::TextTokenizer::load(&path).unwrap();
        for sample in zoo_checkpoint::verify::SAMPLE_TEXTS {
            assert_eq!(mutated.encode(sample, true).unwrap(), reference.encode(sample, true).unwrap());
        }
    }
}
