//! Chat templates: the Jinja template a model ships (`tokenizer_config.json`'s `chat_template`,
//! or `chat_template.jinja` beside it, as transformers 5 saves it), rendered with `minijinja`
//! the way transformers' `apply_chat_template` renders it: `trim_blocks` and `lstrip_blocks`,
//! loop controls, Python string methods, `raise_exception`, `strftime_now`, and a `tojson` that
//! formats like Python's `json.dumps(..., ensure_ascii=False)`.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use serde::Serialize;

use crate::error::{CheckpointError, Result};

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self { role: role.to_string(), content: content.into() }
    }
}

/// A model's chat template with the special tokens it may refer to.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: String,
    special_tokens: BTreeMap<String, String>,
    origin: String,
}

impl ChatTemplate {
    /// A template from its Jinja source; `special_tokens` are passed as variables
    /// (`bos_token`, `eos_token`, ...).
    pub fn new(source: impl Into<String>, special_tokens: BTreeMap<String, String>, origin: impl Into<String>) -> Self {
        Self { source: source.into(), special_tokens, origin: origin.into() }
    }

    /// The template of a model directory, if it ships one: `chat_template.jinja`, else
    /// `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates of
    /// which `default` is used).
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.is_file() { Some(crate::hf::read_json(&config_path)?) } else { None };
        let special_tokens = config.as_ref().map(special_tokens).unwrap_or_default();
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let source = crate::limits::read_text(&jinja)?;
            return Ok(Some(Self::new(source, special_tokens, jinja.display().to_string())));
        }
        let Some(config) = config else { return Ok(None) };
        let source = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            _ => None,
        };
        Ok(source.map(|s| Self::new(s, special_tokens, config_path.display().to_string())))
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The special tokens (`bos_token`, `eos_token`, ...) the template is rendered with.
    pub fn special_tokens(&self) -> &BTreeMap<String, String> {
        &self.special_tokens
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let env = environment().map_err(|e| self.error(e))?;
        let template = env.template_from_str(&self.source).map_err(|e| self.error(e))?;
        let mut context: BTreeMap<String, Value> =
            self.special_tokens.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect();
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())]))
            .collect();
        context.insert("messages".into(), Value::from(messages));
        context.insert("add_generation_prompt".into(), Value::from(add_generation_prompt));
        let mut out = crate::limits::BoundedWriter::new(crate::limits::TEMPLATE_OUTPUT);
        template.render_captured_to(context, &mut out).map_err(|e| self.error(e))?;
        String::from_utf8(out.text).map_err(|e| CheckpointError::invalid(&self.origin, format!("chat template: {e}")))
    }

    fn error(&self, e: JinjaError) -> CheckpointError {
        let mut message = format!("chat template: {e}");
        if let Some(detail) = e.detail() {
            message = format!("{message}: {detail}");
        }
        CheckpointError::invalid(&self.origin, message)
    }
}

/// `bos_token`, `eos_token`, ... from `tokenizer_config.json` (plain strings or
/// `{"content": ...}` objects).
fn special_tokens(config: &serde_json::Value) -> BTreeMap<String, String> {
    let mut tokens = BTreeMap::new();
    for key in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] {
        let value = match config.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(obj @ serde_json::Value::Object(_)) => obj.get("content").and_then(|c| c.as_str()).map(str::to_string),
            _ => None,
        };
        if let Some(v) = value {
            tokens.insert(key.to_string(), v);
        }
    }
    tokens
}

fn environment() -> Result<Environment<'static>, JinjaError> {
    let mut env = Environment::new();
    // Bounds a template's work (nested loops): rendering fails once the fuel is spent.
    env.set_fuel(Some(crate::limits::TEMPLATE_FUEL));
    env.set_syntax(minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> Result<Value, JinjaError> {
        Err(JinjaError::new(ErrorKind::InvalidOperation, message))
    });
    env.add_function("strftime_now", |format: String| strftime_now(&format));
    env.add_filter("tojson", tojson);
    Ok(env)
}

/// Today's date for templates that print it; only the common date fields are supported.
fn strftime_now(format: &str) -> Result<String, JinjaError> {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e.to_string()))?
        .as_secs()
        / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    Ok(format
        .replace("%Y", &y.to_string())
        .replace("%m", &format!("{m:02}"))
        .replace("%d", &format!("{d:02}"))
        .replace("%B", MONTHS[(m - 1) as usize])
        .replace("%b", &MONTHS[(m - 1) as usize][..3]))
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Python's `json.dumps(value, ensure_ascii=False)` (separators `", "` and `": "`), or with
/// `indent` as transformers' `tojson(indent=N)`.
fn tojson(value: Value, indent: Option<usize>) -> Result<Value, JinjaError> {
    let json = serde_json::to_value(&value).map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_json(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                write_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml() {
        let t = ChatTemplate::new(CHATML, BTreeMap::new(), "test");
        let text = t.render(&[Message::new("user", "Hi")], true).unwrap();
        assert_eq!(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn raise_exception_is_an_error_naming_the_template() {
        let t = ChatTemplate::new(
            "{{ raise_exception('roles must alternate') }}",
            BTreeMap::new(),
            "tokenizer_config.json",
        );
        let err = t.render(&[], false).unwrap_err().to_string();
        assert!(err.contains("tokenizer_config.json") && err.contains("roles must alternate"), "{err}");
    }

    #[test]
    fn python_string_methods_and_special_tokens() {
        let tokens = BTreeMap::from([("bos_token".to_string(), "<s>".to_string())]);
        let t = ChatTemplate::new("{{ bos_token }}{{ messages[0]['content'].strip().upper() }}", tokens, "t");
        assert_eq!(t.render(&[Message::new("user", "  hi ")], false).unwrap(), "<s>HI");
    }

    #[test]
    fn tojson_formats_like_python() {
        let t = ChatTemplate::new("{{ {'a': [1, 'é'], 'b': none} | tojson }}", BTreeMap::new(), "t");
        assert_eq!(t.render(&[], false).unwrap(), r#"{"a": [1, "é"], "b": null}"#);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
    }
}
