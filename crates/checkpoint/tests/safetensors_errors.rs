//! Bad safetensors input: every failure is an error naming the file (and tensor), never a panic.

use std::path::{Path, PathBuf};

use zoo_checkpoint::Safetensors;
use zoo_core::{DType, WeightSource, WeightView};

/// A safetensors file: 8-byte little-endian header length, JSON header, data.
fn file_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A safetensors file `file` holding one tensor `name` of two `dtype` elements, `data`.
fn shard(dir: &Path, file: &str, name: &str, dtype: &str, data: &[u8]) -> PathBuf {
    let header = format!(r#"{{"{name}":{{"dtype":"{dtype}","shape":[2],"data_offsets":[0,{}]}}}}"#, data.len());
    write(dir, file, &file_bytes(&header, data))
}

const GOOD_HEADER: &str =
    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}"#;

fn good_data() -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&1.5f32.to_le_bytes());
    data.extend_from_slice(&(-2.0f32).to_le_bytes());
    data.extend_from_slice(&[0x80, 0x3f, 0x00, 0x40]); // bf16 1.0, 2.0
    data
}

/// Writes `bytes` to a temporary `model.safetensors` and hands `open`'s result for it to `read`.
fn opened<T>(bytes: &[u8], read: impl FnOnce(zoo_checkpoint::Result<Safetensors>) -> T) -> T {
    let dir = tempfile::tempdir().unwrap();
    read(Safetensors::open(&write(dir.path(), "model.safetensors", bytes)))
}

/// Opening `bytes` fails; the error names the file and is returned.
fn open_err(bytes: &[u8]) -> String {
    let err = opened(bytes, |st| st.err().expect("opening must fail").to_string());
    assert!(err.contains("model.safetensors"), "error does not name the file: {err}");
    err
}

/// Opening `bytes` succeeds and `get` on the file fails; the error is returned.
fn get_err(bytes: &[u8], get: impl FnOnce(&Safetensors) -> zoo_core::Result<WeightView>) -> String {
    opened(bytes, |st| get(&st.unwrap()).unwrap_err().to_string())
}

#[test]
fn reads_a_valid_file() {
    opened(&file_bytes(GOOD_HEADER, &good_data()), |st| {
        let st = st.unwrap();
        assert_eq!(st.names(), ["a", "b"]);
        let a = st.get("a").unwrap();
        assert_eq!((a.dtype, a.shape.clone()), (DType::F32, vec![2]));
        assert_eq!(a.to_f32_vec(), [1.5, -2.0]);
        assert_eq!(st.get("b").unwrap().to_f32_vec(), [1.0, 2.0]);
    });
}

#[test]
fn truncated_data_is_an_error() {
    let mut bytes = file_bytes(GOOD_HEADER, &good_data());
    bytes.truncate(bytes.len() - 3);
    open_err(&bytes);
}

#[test]
fn header_length_beyond_the_file_is_an_error() {
    let mut bytes = file_bytes(GOOD_HEADER, &good_data());
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    open_err(&bytes);
}

#[test]
fn file_shorter_than_the_length_prefix_is_an_error() {
    open_err(&[1, 2, 3]);
}

#[test]
fn invalid_json_is_an_error() {
    open_err(&file_bytes("{not json", &good_data()));
}

#[test]
fn offsets_outside_the_data_are_an_error() {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}"#;
    open_err(&file_bytes(header, &good_data()));
}

#[test]
fn shape_disagreeing_with_offsets_is_an_error() {
    let header = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}}"#;
    open_err(&file_bytes(header, &good_data()));
}

#[test]
fn unsupported_dtype_names_file_and_tensor() {
    let header = r#"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#;
    let err = get_err(&file_bytes(header, &[0; 8]), |st| st.get("ids"));
    assert!(err.contains("model.safetensors") && err.contains("`ids`") && err.contains("I64"), "{err}");
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let err = get_err(&file_bytes(GOOD_HEADER, &good_data()), |st| st.get("nope"));
    assert!(err.contains("model.safetensors") && err.contains("`nope`"), "{err}");
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    let err = get_err(&file_bytes(GOOD_HEADER, &good_data()), |st| st.get_shaped("a", &[3]));
    assert!(err.contains("`a`") && err.contains("[2]") && err.contains("[3]"), "{err}");
}

#[test]
fn sharded_index_reads_every_shard() {
    let dir = tempfile::tempdir().unwrap();
    shard(dir.path(), "model-00001-of-00002.safetensors", "a", "F32", &good_data()[..8]);
    shard(dir.path(), "model-00002-of-00002.safetensors", "b", "BF16", &good_data()[8..]);
    let index = write(
        dir.path(),
        "model.safetensors.index.json",
        br#"{"metadata":{"total_size":12},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
    );
    let st = Safetensors::open_index(&index).unwrap();
    assert_eq!(st.get("a").unwrap().to_f32_vec(), [1.5, -2.0]);
    assert_eq!(st.get("b").unwrap().to_f32_vec(), [1.0, 2.0]);
}

#[test]
fn index_naming_a_missing_shard_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let index = write(dir.path(), "model.safetensors.index.json", br#"{"weight_map":{"a":"absent.safetensors"}}"#);
    let err = Safetensors::open_index(&index).err().unwrap().to_string();
    assert!(err.contains("absent.safetensors"), "{err}");
}

#[test]
fn index_listing_a_tensor_no_shard_has_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    shard(dir.path(), "s.safetensors", "a", "F32", &good_data()[..8]);
    let index = write(
        dir.path(),
        "model.safetensors.index.json",
        br#"{"weight_map":{"a":"s.safetensors","ghost":"s.safetensors"}}"#,
    );
    let err = Safetensors::open_index(&index).err().unwrap().to_string();
    assert!(err.contains("ghost") && err.contains("model.safetensors.index.json"), "{err}");
}

#[test]
fn index_with_invalid_json_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let index = write(dir.path(), "model.safetensors.index.json", b"{");
    let err = Safetensors::open_index(&index).err().unwrap().to_string();
    assert!(err.contains("model.safetensors.index.json") && err.contains("JSON"), "{err}");
}
