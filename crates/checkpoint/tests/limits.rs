//! Bounded inputs: a gzip bomb as `.mpk.gz`, an endless config, a chat template with nested
//! loops and a tokenizer the library panics on end in errors naming the file.

use std::io::Write;

use zoo_checkpoint::{ChatTemplate, Message};

#[test]
fn a_gzip_bomb_is_refused_before_it_expands() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bomb.mpk.gz");
    let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap();
    std::fs::write(tmp.path().join("bomb.json"), r#"{"model_type": "llama"}"#).unwrap();
    let err = zoo_checkpoint::open(&path).err().unwrap().to_string();
    assert!(err.contains("bomb.mpk.gz") && err.contains("decompresses to more than"), "{err}");
}

#[test]
fn an_endless_config_is_refused() {
    let err = zoo_checkpoint::limits::read_text(std::path::Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(err.contains("/dev/zero") && err.contains("larger than"), "{err}");
}

#[test]
fn a_template_with_nested_loops_runs_out_of_fuel() {
    let source = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}";
    let template = ChatTemplate::new(source, Default::default(), "t.json");
    let err = template.render(&[Message::new("user", "hi")], true).unwrap_err().to_string();
    assert!(err.contains("t.json") && err.contains("fuel"), "{err}");
}
