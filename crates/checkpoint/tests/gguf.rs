//! GGUF files built byte by byte: a valid small Llama file reads back (names, shapes, values,
//! un-permuted Q/K, config, tokenizer, chat template), and every malformed variant is an error
//! naming the file (and tensor), never a panic or a huge allocation. Dequantisation of every
//! decoded type is checked bit for bit against llama.cpp's gguf-py (`tests/data/quant_types.gguf`).

use std::path::Path;

use half::f16;
use zoo_checkpoint::gguf::Gguf;
use zoo_core::{DType, WeightSource};

mod gguf_writer;
use gguf_writer::{corrupted, with_file, write, Writer};

/// Opening `bytes` fails; the error names the file and is returned.
fn open_err(bytes: &[u8]) -> String {
    let err = with_file(bytes, |path| Gguf::open(path).err().expect("opening must fail").to_string());
    assert!(err.contains("model.gguf"), "error does not name the file: {err}");
    err
}

/// Two heads of head_dim 4 (hidden 8), one KV head: Q is [8, 8], K is [4, 8].
fn llama() -> Writer {
    let q: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let k: Vec<f32> = (0..32).map(|i| 100.0 + i as f32).collect();
    let q8_0 = {
        // One Q8_0 block: scale 0.5, ints -16..16.
        let mut b = f16::from_f32(0.5).to_le_bytes().to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        b
    };
    Writer::new()
        .str("general.architecture", "llama")
        .u32("llama.block_count", 1)
        .u32("llama.context_length", 64)
        .u32("llama.embedding_length", 8)
        .u32("llama.feed_forward_length", 16)
        .u32("llama.attention.head_count", 2)
        .u32("llama.attention.head_count_kv", 1)
        .f32("llama.rope.freq_base", 10000.0)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .str("tokenizer.ggml.model", "gpt2")
        .strs("tokenizer.ggml.tokens", &["<|end|>", "a", "b", "ab", "Ġ"])
        .i32s("tokenizer.ggml.token_type", &[3, 1, 1, 1, 1])
        .strs("tokenizer.ggml.merges", &["a b"])
        .u32("tokenizer.ggml.eos_token_id", 0)
        .str("tokenizer.chat_template", "{{ messages[0]['content'] }}{{ eos_token }}")
        .f32_tensor("blk.0.attn_q.weight", &[8, 8], &q)
        .f32_tensor("blk.0.attn_k.weight", &[8, 4], &k)
        .tensor("token_embd.weight", &[32, 1], 8, q8_0)
        .tensor("blk.0.ffn_norm.weight", &[8], 1, (0..8).flat_map(|i| f16::from_f32(i as f32).to_le_bytes()).collect())
}

#[test]
fn a_llama_file_reads_back_under_hf_names() {
    let gguf = with_file(&llama().bytes(), |path| Gguf::open(path).unwrap());
    assert_eq!(gguf.version(), 3);
    assert_eq!(
        gguf.names(),
        [
            "model.embed_tokens.weight",
            "model.layers.0.post_attention_layernorm.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.0.self_attn.q_proj.weight",
        ]
    );
    // Q8_0 stays quantised (dequantised on demand); ne [32, 1] is PyTorch shape [1, 32].
    let embd = gguf.get("model.embed_tokens.weight").unwrap();
    assert_eq!((embd.dtype, embd.shape.clone(), embd.data.len()), (DType::Q8_0, vec![1, 32], 34));
    assert_eq!(embd.to_f32_vec(), (0..32).map(|i| 0.5 * (i as f32 - 16.0)).collect::<Vec<_>>());
    // F16 stays F16, in place.
    let norm = gguf.get("model.layers.0.post_attention_layernorm.weight").unwrap();
    assert_eq!((norm.dtype, norm.to_f32_vec()[7]), (DType::F16, 7.0));
    // Q rows un-permuted per head of 4: stored rows [0, 2, 1, 3] hold HF rows [0, 1, 2, 3].
    let q = gguf.get("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(q.shape, [8, 8]);
    let row = |v: &[f32], r: usize| v[r * 8] as usize / 8;
    let qv = q.to_f32_vec();
    assert_eq!((0..8).map(|r| row(&qv, r)).collect::<Vec<_>>(), [0, 2, 1, 3, 4, 6, 5, 7]);
    let k = gguf.get("model.layers.0.self_attn.k_proj.weight").unwrap().to_f32_vec();
    assert_eq!((0..4).map(|r| (k[r * 8] as usize - 100) / 8).collect::<Vec<_>>(), [0, 2, 1, 3]);
}

#[test]
fn a_llama_file_is_a_whole_checkpoint() {
    let ckpt = with_file(&llama().bytes(), |path| zoo_checkpoint::open(path).unwrap());
    assert_eq!(ckpt.config["model_type"], "llama");
    assert_eq!(ckpt.config["num_key_value_heads"], 1);
    assert_eq!(ckpt.config["vocab_size"], 1, "from token_embd's shape when the metadata has none");
    assert_eq!(ckpt.config["tie_word_embeddings"], true);
    let tokenizer = ckpt.tokenizer.unwrap();
    assert_eq!(tokenizer.encode("ab<|end|>", false).unwrap(), [3, 0]);
    assert_eq!(tokenizer.decode(&[3, 0], true).unwrap(), "ab");
    let template = ckpt.chat_template.unwrap();
    assert_eq!(template.render(&[zoo_checkpoint::Message::new("user", "hi")], false).unwrap(), "hi<|end|>");
}

#[test]
fn not_gguf_and_unsupported_versions() {
    assert!(open_err(b"GGML\x03\0\0\0").contains("not a GGUF file"));
    let mut w = llama();
    w.version = 1;
    assert!(open_err(&w.bytes()).contains("version 1 is not supported"));
    let mut bytes = llama().bytes();
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    assert!(open_err(&bytes).contains("big-endian"));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = llama().bytes();
    for len in 0..bytes.len() {
        let err = open_err(&bytes[..len]);
        assert!(
            err.contains("truncated") || err.contains("past the end") || err.contains("ends before"),
            "{len}: {err}"
        );
    }
}

#[test]
fn lengths_and_counts_larger_than_the_file() {
    // A string length of 2^60.
    let mut bytes = llama().bytes();
    bytes[24..32].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(open_err(&bytes).contains("more than the"), "string length");
    // An array of 2^40 strings.
    let w = Writer::new().kv(
        "tokenizer.ggml.tokens",
        9,
        [8u32.to_le_bytes().to_vec(), (1u64 << 40).to_le_bytes().to_vec()].concat(),
    );
    assert!(open_err(&w.bytes()).contains("more than the"));
    // A tensor count of 2^62 with no tensors.
    let mut bytes = Writer::new().bytes();
    bytes[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(open_err(&bytes).contains("truncated"));
    // A metadata count of u64::MAX.
    let mut bytes = Writer::new().bytes();
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open_err(&bytes).contains("truncated"));
}

#[test]
fn bad_metadata_values() {
    let err = open_err(&Writer::new().kv("x", 42, vec![0; 8]).bytes());
    assert!(err.contains("`x` has unknown value type 42"), "{err}");
    let err = open_err(&Writer::new().kv("flag", 7, vec![2]).bytes());
    assert!(err.contains("bool byte 2"), "{err}");
    let err = open_err(&Writer::new().u32("general.alignment", 3).bytes());
    assert!(err.contains("general.alignment"), "{err}");
    let err = open_err(&Writer::new().u32("k", 1).u32("k", 2).bytes());
    assert!(err.contains("`k` appears twice"), "{err}");
    // Arrays of arrays nested deeper than any real file.
    let mut value = 4u32.to_le_bytes().to_vec();
    value.extend(0u64.to_le_bytes());
    for _ in 0..8 {
        value = [9u32.to_le_bytes().to_vec(), 1u64.to_le_bytes().to_vec(), value].concat();
    }
    let err = open_err(&Writer::new().kv("deep", 9, value).bytes());
    assert!(err.contains("nested"), "{err}");
}

#[test]
fn bad_tensor_infos_name_the_tensor() {
    let one = |ne: &[u64], ty: u32, data: Vec<u8>| open_err(&Writer::new().tensor("w", ne, ty, data).bytes());
    let err = one(&[4, 1, 1, 1, 1], 0, vec![0; 16]);
    assert!(err.contains("`w` has 5 dimensions"), "{err}");
    let err = one(&[4], 99, vec![0; 16]);
    assert!(err.contains("`w` has unknown ggml type 99"), "{err}");
    let err = one(&[20], 8, vec![0; 34]);
    assert!(err.contains("`w`") && err.contains("not whole Q8_0 blocks"), "{err}");
    let err = one(&[1 << 40, 1 << 40], 0, vec![0; 4]);
    assert!(err.contains("`w`") && err.contains("overflow"), "{err}");
    let err = one(&[64], 0, vec![0; 16]);
    assert!(err.contains("`w`") && err.contains("past the end"), "{err}");
    // An offset outside the file, and one off the alignment.
    let mut bytes = Writer::new().f32_tensor("w", &[4], &[0.0; 4]).bytes();
    let at = 24 + 8 + 1 + 4 + 8 + 4;
    bytes[at..at + 8].copy_from_slice(&(1u64 << 50).to_le_bytes());
    let err = open_err(&bytes);
    assert!(err.contains("`w`") && err.contains("past the end"), "{err}");
    bytes[at..at + 8].copy_from_slice(&4u64.to_le_bytes());
    let err = open_err(&bytes);
    assert!(err.contains("`w`") && err.contains("not a multiple of the alignment"), "{err}");
    let w = Writer::new().f32_tensor("w", &[4], &[0.0; 4]).f32_tensor("w", &[4], &[0.0; 4]);
    assert!(open_err(&w.bytes()).contains("`w` appears twice"));
}

#[test]
fn undecodable_types_fail_when_read_naming_the_tensor() {
    let bytes = Writer::new().tensor("blk.0.ffn_up.weight", &[256], 10, vec![0; 84]).bytes();
    let gguf = with_file(&bytes, |path| Gguf::open(path).unwrap());
    let err = gguf.get("model.layers.0.mlp.up_proj.weight").unwrap_err().to_string();
    assert!(err.contains("model.gguf") && err.contains("blk.0.ffn_up.weight") && err.contains("Q2_K"), "{err}");
}

#[test]
fn unsupported_architecture_and_missing_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &Writer::new().str("general.architecture", "rwkv6").bytes());
    let err = zoo_checkpoint::open(&path).err().unwrap().to_string();
    assert!(err.contains("model.gguf") && err.contains("`rwkv6` is not supported"), "{err}");
    let path = write(dir.path(), &Writer::new().bytes());
    let err = zoo_checkpoint::open(&path).err().unwrap().to_string();
    assert!(err.contains("general.architecture"), "{err}");
}

#[test]
fn corrupted_bytes_never_panic() {
    let bytes = llama().bytes();
    let dir = tempfile::tempdir().unwrap();
    for b in corrupted(&bytes, 0, 3, 0x2545_f491_4f6c_dd1d).take(2000) {
        let path = write(dir.path(), &b);
        if let Ok(ckpt) = zoo_checkpoint::open(&path) {
            for name in ckpt.weights.names() {
                let _ = ckpt.weights.get(&name);
            }
        }
    }
}

#[test]
fn dequantisation_matches_gguf_py() {
    // Made by xtask/python/make_gguf_fixtures.py with llama.cpp's gguf-py: each type beside its
    // values as gguf-py's `dequantize` computes them.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant_types.gguf");
    let gguf = Gguf::open(&path).unwrap();
    for ty in ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "F16"] {
        let ours = gguf.get(ty).unwrap();
        let expected = gguf.get(&format!("{ty}.expected")).unwrap();
        assert_eq!(ours.shape, [2, 256], "{ty}");
        let (ours, expected) = (ours.to_f32_vec(), expected.to_f32_vec());
        let worst = ours.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst == 0.0, "{ty}: max |Δ| = {worst:e}");
    }
}

#[test]
fn meta_says_what_get_hands_out_without_decoding() {
    // Every kind of tensor: kept blocks and floats, reordered Llama Q/K.
    let dir = tempfile::tempdir().unwrap();
    let llama_path = write(dir.path(), &llama().bytes());
    let quant_types = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant_types.gguf");
    for path in [llama_path, quant_types] {
        let gguf = Gguf::open(&path).unwrap();
        for name in gguf.names() {
            let (meta, view) = (gguf.meta(&name).unwrap(), gguf.get(&name).unwrap());
            assert_eq!((meta.dtype, &meta.shape), (view.dtype, &view.shape), "{name}");
            assert_eq!(meta.bytes(), view.data.len() as u64, "{name}");
        }
    }
    let gguf = Gguf::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant_types.gguf")).unwrap();
    assert_eq!(gguf.meta("Q5_0").unwrap().dtype, DType::Q5_0, "Q5_0 stays blocks");
    assert_eq!(gguf.meta("Q5_1").unwrap().dtype, DType::Q5_1, "Q5_1 stays blocks");
    assert_eq!(gguf.meta("Q4_K").unwrap().dtype, DType::Q4_K, "K-quants stay super-blocks");
    assert_eq!(gguf.meta("Q4_1").unwrap().dtype, DType::Q4_1, "Q4_1 stays blocks");
}
