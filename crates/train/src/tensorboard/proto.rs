//! The protobuf messages of an events file, encoded and decoded by hand: TensorFlow's
//! `Event` (`wall_time` = 1, double; `step` = 2, int64; `file_version` = 3, string;
//! `summary` = 5; `session_log` = 7), `Summary` (`value` = 1, repeated), `Summary.Value`
//! (`tag` = 1, string; `simple_value` = 2, float) and `SessionLog` (`status` = 1, `START` = 1).
//! The decoder reads what the encoder writes and skips every other field.

/// A protobuf payload that does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf: {0}")]
pub struct ProtoError(pub &'static str);

/// One `Event` of an events file.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The training step.
    pub step: i64,
    /// What the event carries.
    pub what: What,
}

/// The payload of an [`Event`] (protobuf's `oneof what`).
#[derive(Clone, Debug, PartialEq)]
pub enum What {
    /// The file's first event: `brain.Event:2`.
    FileVersion(String),
    /// Scalar summaries: tag and value.
    Scalars(Vec<(String, f32)>),
    /// A session (re)start at `step`: TensorBoard drops the events of earlier sessions at this
    /// step and later, so a resumed run's curves do not double back.
    SessionStart,
    /// Something this decoder does not read.
    Other,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const BYTES: u8 = 2;
const FIXED32: u8 = 5;

impl Event {
    /// The protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        key(&mut out, 1, FIXED64);
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        key(&mut out, 2, VARINT);
        varint(&mut out, self.step as u64);
        match &self.what {
            What::FileVersion(version) => bytes(&mut out, 3, version.as_bytes()),
            What::Scalars(values) => {
                let mut summary = Vec::new();
                for (tag, value) in values {
                    let mut entry = Vec::new();
                    bytes(&mut entry, 1, tag.as_bytes());
                    key(&mut entry, 2, FIXED32);
                    entry.extend_from_slice(&value.to_le_bytes());
                    bytes(&mut summary, 1, &entry);
                }
                bytes(&mut out, 5, &summary);
            }
            What::SessionStart => {
                let mut log = Vec::new();
                key(&mut log, 1, VARINT);
                varint(&mut log, 1);
                bytes(&mut out, 7, &log);
            }
            What::Other => {}
        }
        out
    }

    /// Decodes an `Event`.
    pub fn decode(data: &[u8]) -> Result<Self, ProtoError> {
        let mut event = Self { wall_time: 0.0, step: 0, what: What::Other };
        for field in Fields(data) {
            match field? {
                (1, Value::Fixed64(bits)) => event.wall_time = f64::from_bits(bits),
                (2, Value::Varint(step)) => event.step = step as i64,
                (3, Value::Bytes(text)) => event.what = What::FileVersion(string(text)?),
                (5, Value::Bytes(summary)) => event.what = What::Scalars(scalars(summary)?),
                (7, Value::Bytes(log)) => {
                    for field in Fields(log) {
                        if let (1, Value::Varint(1)) = field? {
                            event.what = What::SessionStart;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(event)
    }
}

/// The tags and simple values of a `Summary`.
fn scalars(summary: &[u8]) -> Result<Vec<(String, f32)>, ProtoError> {
    let mut values = Vec::new();
    for field in Fields(summary) {
        if let (1, Value::Bytes(entry)) = field? {
            let (mut tag, mut value) = (None, None);
            for field in Fields(entry) {
                match field? {
                    (1, Value::Bytes(text)) => tag = Some(string(text)?),
                    (2, Value::Fixed32(bits)) => value = Some(f32::from_bits(bits)),
                    _ => {}
                }
            }
            if let (Some(tag), Some(value)) = (tag, value) {
                values.push((tag, value));
            }
        }
    }
    Ok(values)
}

fn string(bytes: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtoError("a string is not UTF-8"))
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, BYTES);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A field's value, by wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of a message: field number and value.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or(ProtoError("truncated varint"))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if n > self.0.len() {
            return Err(ProtoError("truncated field"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u64, Value<'a>), ProtoError> {
        let key = self.varint()?;
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default())),
            BYTES => {
                let n = usize::try_from(self.varint()?).map_err(|_| ProtoError("length too large"))?;
                Value::Bytes(self.take(n)?)
            }
            FIXED32 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default())),
            _ => return Err(ProtoError("unsupported wire type")),
        };
        Ok((key >> 3, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), ProtoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.0 = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip() {
        for what in [
            What::FileVersion("brain.Event:2".into()),
            What::Scalars(vec![("loss/train".into(), 3.25), ("train/lr".into(), 1e-3)]),
            What::SessionStart,
        ] {
            let event = Event { wall_time: 1_800_000_000.5, step: 300, what };
            assert_eq!(Event::decode(&event.encode()).unwrap(), event);
        }
    }

    #[test]
    fn matches_protobuf_bytes() {
        // Event { wall_time: 1.0, step: 2, summary { value { tag: "a", simple_value: 1.0 } } },
        // as protobuf encodes it.
        let event = Event { wall_time: 1.0, step: 2, what: What::Scalars(vec![("a".into(), 1.0)]) };
        let expected = [
            0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, // wall_time
            0x10, 0x02, // step
            0x2A, 0x0A, 0x0A, 0x08, // summary { value {
            0x0A, 0x01, b'a', // tag
            0x15, 0, 0, 0x80, 0x3F, // simple_value
        ];
        assert_eq!(event.encode(), expected);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Event::decode(&[0x2A, 0x05, 0x0A]).is_err());
        assert!(Event::decode(&[0xFF; 11]).is_err());
    }
}
