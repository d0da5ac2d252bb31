//! TFRecord framing: each record is its length (`u64`, little-endian), the masked CRC-32C of
//! those 8 bytes, the data, and the masked CRC-32C of the data (both `u32`, little-endian).

use super::crc32c::masked_crc32c;

/// Why a byte string is not a sequence of TFRecords.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end inside a record.
    #[error("truncated record at byte {offset}")]
    Truncated {
        /// Where the record starts.
        offset: usize,
    },
    /// A checksum does not match.
    #[error("bad {what} checksum in the record at byte {offset}")]
    Checksum {
        /// `length` or `data`.
        what: &'static str,
        /// Where the record starts.
        offset: usize,
    },
}

/// `data` framed as one TFRecord.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut record = Vec::with_capacity(data.len() + 16);
    record.extend_from_slice(&length);
    record.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    record.extend_from_slice(data);
    record.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    record
}

/// The records of `bytes`, their checksums checked.
pub fn unframe(bytes: &[u8]) -> Result<Vec<&[u8]>, RecordError> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let truncated = RecordError::Truncated { offset };
        let (Some(length), Some(length_crc)) = (rest.get(..8), rest.get(8..12)) else {
            return Err(truncated);
        };
        if masked_crc32c(length) != u32::from_le_bytes(length_crc.try_into().unwrap_or_default()) {
            return Err(RecordError::Checksum { what: "length", offset });
        }
        let size = usize::try_from(u64::from_le_bytes(length.try_into().unwrap_or_default()))
            .map_err(|_| RecordError::Truncated { offset })?;
        let end = size.checked_add(16).filter(|&end| end <= rest.len()).ok_or(truncated)?;
        let (data, data_crc) = (&rest[12..12 + size], &rest[12 + size..end]);
        if masked_crc32c(data) != u32::from_le_bytes(data_crc.try_into().unwrap_or_default()) {
            return Err(RecordError::Checksum { what: "data", offset });
        }
        records.push(data);
        offset += end;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut bytes = frame(b"first");
        bytes.extend(frame(b""));
        bytes.extend(frame(&[7u8; 300]));
        assert_eq!(bytes.len(), 5 + 300 + 3 * 16);
        let records = unframe(&bytes).unwrap();
        assert_eq!(records, [&b"first"[..], &b""[..], &[7u8; 300][..]]);
    }

    #[test]
    fn damage_is_reported() {
        let bytes = frame(b"payload");
        assert_eq!(unframe(&bytes[..bytes.len() - 1]), Err(RecordError::Truncated { offset: 0 }));
        let mut flipped = bytes.clone();
        flipped[13] ^= 1;
        assert_eq!(unframe(&flipped), Err(RecordError::Checksum { what: "data", offset: 0 }));
        let mut long = bytes;
        long[0] = 0xFF;
        assert_eq!(unframe(&long), Err(RecordError::Checksum { what: "length", offset: 0 }));
    }
}
