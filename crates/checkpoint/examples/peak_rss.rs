//! Peak memory of loading and running a model, for the peak-memory table in docs/formats.md.
//!
//! - `peak_rss gen DIR [LAYERS]`: writes a Mistral-layout f32 HF directory (hidden 2048,
//!   intermediate 5632, vocab 32000; 5 layers ≈ 1.4 GB) with deterministic values;
//! - `peak_rss load PATH`: opens any checkpoint zoo reads, makes every tensor resident on the
//!   ndarray backend, runs every matrix once (`linear` of one row, as a decode step does) and an
//!   embedding lookup, then prints the weight bytes and the process's peak RSS (`VmHWM`).

use std::path::Path;

use zoo_backend_ndarray::NdArray;
use zoo_core::{Backend, MemoryWeights, WeightView};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("gen") => gen(Path::new(&args[2]), args.get(3).map_or(Ok(5), |s| s.parse())?),
        Some("load") => load(Path::new(&args[2])),
        _ => Err("usage: peak_rss gen DIR [LAYERS] | peak_rss load PATH".into()),
    }
}

fn gen(dir: &Path, layers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (hidden, inter, vocab, heads, kv) = (2048usize, 5632usize, 32000usize, 16usize, 4usize);
    let head_dim = hidden / heads;
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 4096, "sliding_window": null,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": false
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    let mut shapes = vec![
        ("model.embed_tokens.weight".to_string(), vec![vocab, hidden]),
        ("lm_head.weight".to_string(), vec![vocab, hidden]),
        ("model.norm.weight".to_string(), vec![hidden]),
    ];
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        shapes.push((format!("{p}.self_attn.q_proj.weight"), vec![hidden, hidden]));
        shapes.push((format!("{p}.self_attn.k_proj.weight"), vec![kv * head_dim, hidden]));
        shapes.push((format!("{p}.self_attn.v_proj.weight"), vec![kv * head_dim, hidden]));
        shapes.push((format!("{p}.self_attn.o_proj.weight"), vec![hidden, hidden]));
        shapes.push((format!("{p}.mlp.gate_proj.weight"), vec![inter, hidden]));
        shapes.push((format!("{p}.mlp.up_proj.weight"), vec![inter, hidden]));
        shapes.push((format!("{p}.mlp.down_proj.weight"), vec![hidden, inter]));
        shapes.push((format!("{p}.input_layernorm.weight"), vec![hidden]));
        shapes.push((format!("{p}.post_attention_layernorm.weight"), vec![hidden]));
    }
    let mut weights = MemoryWeights::new("generated");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.05
            })
            .collect();
        weights.insert(WeightView::from_f32(name, shape, &values)?);
    }
    zoo_checkpoint::safetensors::write(&dir.join("model.safetensors"), &weights, None, None)?;
    Ok(())
}

fn load(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let checkpoint = zoo_checkpoint::open(path)?;
    let backend = NdArray::new(None);
    let mut bytes = 0u64;
    let mut resident = Vec::new();
    for name in checkpoint.weights.names() {
        let view = checkpoint.weights.get(&name)?;
        bytes += view.data.len() as u64 + view.scales.as_ref().map_or(0, |s| 4 * s.scales.len() as u64);
        resident.push((name, backend.weight(&view)?));
    }
    let mut checksum = 0f32;
    for (name, w) in &resident {
        if let [rows, cols] = zoo_core::TensorShape::shape(w)[..] {
            let x = backend.upload(&vec![0.01; cols], &[1, cols])?;
            checksum += backend.to_host(&backend.linear(&x, w, None)?)?.iter().sum::<f32>();
            if name.contains("embed_tokens") {
                let e = backend.embedding(w, &[0, rows as u32 - 1])?;
                checksum += backend.to_host(&e)?.iter().sum::<f32>();
            }
        }
    }
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    let kib: f64 = hwm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let ratio = kib * 1024.0 / bytes as f64;
    println!(
        "{}: {} tensors, {:.3} GB of weights; peak RSS {:.3} GB ({ratio:.3}x); checksum {checksum:.4}",
        path.display(),
        resident.len(),
        bytes as f64 / 1e9,
        kib * 1024.0 / 1e9
    );
    Ok(())
}
