//! Tokenizers built from GGUF vocabularies written byte by byte: SentencePiece merges by score,
//! byte fallback, the space prefix, BOS/EOS and added tokens; vocabulary-only files; kinds zoo
//! does not build (refused with the reason, the model still opens); and every malformed
//! vocabulary (arrays of the wrong length, bad ids, repeated tokens, wrong value types) an error
//! naming the file, never a panic.

use zoo_checkpoint::TextTokenizer;
use zoo_core::Tokenizer;

mod gguf_writer;
use gguf_writer::{corrupted, with_file, write, Writer};

/// `<unk> <s> </s>`, the 256 byte tokens (ids 3..259), then `extra` pieces with their scores.
fn spm_vocab(extra: &[(&str, f32)]) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].iter().map(|t| t.to_string()).collect();
    let mut types = vec![2, 3, 3];
    tokens.extend((0..=255u32).map(|b| format!("<0x{b:02X}>")));
    types.extend([6; 256]);
    let mut scores = vec![0.0; tokens.len()];
    for (t, s) in extra {
        tokens.push(t.to_string());
        scores.push(*s);
        types.push(if t.starts_with("<|") { 4 } else { 1 });
    }
    (tokens, scores, types)
}

/// A vocabulary-only SentencePiece GGUF.
fn spm(extra: &[(&str, f32)]) -> Writer {
    let (tokens, scores, types) = spm_vocab(extra);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    Writer::new()
        .str("general.architecture", "llama")
        .str("tokenizer.ggml.model", "llama")
        .strs("tokenizer.ggml.tokens", &tokens)
        .f32s("tokenizer.ggml.scores", &scores)
        .i32s("tokenizer.ggml.token_type", &types)
}

/// Pieces for "hi!" and friends; `▁hi` outranks `hi`.
const PIECES: &[(&str, f32)] =
    &[("▁", -1.0), ("h", -2.0), ("i", -3.0), ("!", -4.0), ("▁h", -5.0), ("▁hi", -6.0), ("hi", -7.0), ("<|user|>", 0.0)];

/// The id of `piece` in `spm(PIECES)`: the extra pieces follow the 259 fixed tokens.
fn id(piece: &str) -> u32 {
    let index = PIECES.iter().position(|(p, _)| *p == piece).expect("one of PIECES");
    259 + index as u32
}

fn load(bytes: &[u8]) -> Result<TextTokenizer, String> {
    with_file(bytes, |path| TextTokenizer::load(path).map_err(|e| e.to_string()))
}

/// Loading fails with one line naming the file; returns it.
fn load_err(bytes: &[u8]) -> String {
    let err = load(bytes).err().expect("loading must fail");
    assert!(err.contains("model.gguf") && !err.contains('\n'), "{err}");
    err
}

#[test]
fn sentencepiece_merges_by_score_with_byte_fallback() {
    let tok = load(&spm(PIECES).metadata_only()).unwrap();
    // "hi!é": prefix ▁, `▁hi` (its pieces join before `hi` would), `!`, then é's two bytes.
    let ids = tok.encode("hi!é", true).unwrap();
    assert_eq!(ids, [1, id("▁hi"), id("!"), 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(tok.decode(&ids, true).unwrap(), "hi!é");
    assert_eq!(tok.decode(&ids, false).unwrap(), "<s> hi!é");
    // A space after the prefix, and text after a user-defined token gets a prefix of its own.
    assert_eq!(tok.encode(" hi", false).unwrap(), [id("▁"), id("▁hi")]);
    assert_eq!(tok.encode("hi<|user|>hi", false).unwrap(), [id("▁hi"), id("<|user|>"), id("▁hi")]);
    assert_eq!(tok.decode(&[id("▁"), id("▁hi")], true).unwrap(), " hi");
    assert_eq!(tok.encode("", true).unwrap(), [1]);
}

#[test]
fn scores_decide_which_pair_joins_first() {
    let pieces = [("a", -1.0), ("b", -2.0), ("c", -3.0), ("ab", -10.0), ("bc", -5.0), ("▁", -4.0)];
    let tok = load(&spm(&pieces).metadata_only()).unwrap();
    let id = |t: &str| tok.token_to_id(t).unwrap();
    assert_eq!(tok.encode("abc", false).unwrap(), [id("▁"), id("a"), id("bc")]);
    let pieces = [("a", -1.0), ("b", -2.0), ("c", -3.0), ("ab", -5.0), ("bc", -10.0), ("▁", -4.0)];
    let tok = load(&spm(&pieces).metadata_only()).unwrap();
    assert_eq!(tok.encode("abc", false).unwrap(), [id("▁"), id("ab"), id("c")]);
}

#[test]
fn flags_and_special_ids_are_followed() {
    let w = spm(PIECES)
        .bool("tokenizer.ggml.add_space_prefix", false)
        .bool("tokenizer.ggml.add_bos_token", false)
        .bool("tokenizer.ggml.add_eos_token", true)
        .u32("tokenizer.ggml.eos_token_id", 2);
    let tok = load(&w.metadata_only()).unwrap();
    assert_eq!(tok.encode("hi", true).unwrap(), [id("hi"), 2]);
    assert_eq!(tok.encode(" !", false).unwrap(), [id("▁"), id("!")]);
    assert_eq!(tok.decode(&[id("▁"), id("!"), 2], true).unwrap(), " !");
    assert_eq!(tok.encode(" h", false).unwrap(), [id("▁h")]);
}

#[test]
fn a_model_file_with_a_vocabulary_zoo_does_not_build_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let model = |w: Writer| {
        w.str("general.architecture", "llama")
            .u32("llama.block_count", 1)
            .u32("llama.embedding_length", 8)
            .u32("llama.feed_forward_length", 16)
            .u32("llama.attention.head_count", 2)
            .f32_tensor("token_embd.weight", &[8, 2], &[0.0; 16])
    };
    for (w, why) in [
        (
            model(Writer::new().str("tokenizer.ggml.model", "bert").strs("tokenizer.ggml.tokens", &["a"])),
            "`bert` (WordPiece) is not supported",
        ),
        (
            model(Writer::new().str("tokenizer.ggml.model", "gpt2").str("tokenizer.ggml.pre", "no-such-split")),
            "`tokenizer.ggml.pre` `no-such-split` is not supported",
        ),
    ] {
        let path = write(dir.path(), &w.bytes());
        let ckpt = zoo_checkpoint::open(&path).unwrap();
        assert!(ckpt.tokenizer.is_none());
        assert!(ckpt.tokenizer_refused.as_deref().unwrap().contains(why), "{:?}", ckpt.tokenizer_refused);
        let err = TextTokenizer::load(&path).err().unwrap().to_string();
        assert!(err.contains("model.gguf") && err.contains(why), "{err}");
    }
    let path = write(dir.path(), &model(Writer::new()).bytes());
    assert!(zoo_checkpoint::open(&path).unwrap().tokenizer_refused.is_none());
    let err = TextTokenizer::load(&path).err().unwrap().to_string();
    assert!(err.contains("model.gguf") && err.contains("has no tokenizer"), "{err}");
}

#[test]
fn malformed_vocabularies_are_errors_naming_the_file() {
    let (tokens, scores, types) = spm_vocab(PIECES);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let base = || Writer::new().str("tokenizer.ggml.model", "llama");
    let full = || base().strs("tokenizer.ggml.tokens", &tokens);
    let cases: Vec<(Writer, &str)> = vec![
        (base(), "no `tokenizer.ggml.tokens` array"),
        (base().strs("tokenizer.ggml.tokens", &[]), "has 0 tokens"),
        (base().i32s("tokenizer.ggml.tokens", &[1, 2]), "holds a int32, not strings"),
        (base().u32("tokenizer.ggml.tokens", 7), "is a uint32, not an array"),
        (base().strs("tokenizer.ggml.tokens", &["a", "b", "a"]), "\"a\" appears twice"),
        (full().f32s("tokenizer.ggml.scores", &scores[1..]), "`tokenizer.ggml.scores` has 266 entries for 267 tokens"),
        (full().strs("tokenizer.ggml.scores", &tokens), "`tokenizer.ggml.scores` holds a string, not numbers"),
        (full().i32s("tokenizer.ggml.token_type", &types[..3]), "has 3 entries for 267 tokens"),
        (full().i32s("tokenizer.ggml.token_type", &[9; 267]), "of token 0 is I32(9), not a type from 0 to 6"),
        (full().u32("tokenizer.ggml.bos_token_id", 267), "`tokenizer.ggml.bos_token_id` is U32(267)"),
        (full().str("tokenizer.ggml.unknown_token_id", "0"), "`tokenizer.ggml.unknown_token_id` is String"),
        (full().u32("tokenizer.ggml.add_bos_token", 1), "`tokenizer.ggml.add_bos_token` is a uint32, not a bool"),
        (Writer::new().u32("tokenizer.ggml.model", 1), "`tokenizer.ggml.model` is a uint32, not a string"),
    ];
    for (w, want) in cases {
        let err = load_err(&w.metadata_only());
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    // Byte-level BPE: merges that are not two tokens, or join tokens the vocabulary lacks.
    let bpe = |merges: &[&str]| {
        Writer::new()
            .str("tokenizer.ggml.model", "gpt2")
            .strs("tokenizer.ggml.tokens", &["a", "b", "ab"])
            .strs("tokenizer.ggml.merges", merges)
    };
    assert!(load_err(&bpe(&["ab"]).metadata_only()).contains("merge 0 \"ab\" is not two tokens"));
    assert!(load_err(&bpe(&["a c"]).metadata_only()).contains("`tokenizer.ggml.merges`"));
    assert_eq!(load(&bpe(&["a b"]).metadata_only()).unwrap().encode("ab", false).unwrap(), [2]);
}

#[test]
fn corrupted_vocabularies_never_panic() {
    let bytes = spm(PIECES).u32("tokenizer.ggml.bos_token_id", 1).metadata_only();
    let dir = tempfile::tempdir().unwrap();
    for b in corrupted(&bytes, 4, 2, 0x9e37_79b9_7f4a_7c15).take(300) {
        let path = write(dir.path(), &b);
        if let Err(e) = TextTokenizer::load(&path) {
            assert!(e.to_string().contains("model.gguf"), "{e}");
        }
    }
}
