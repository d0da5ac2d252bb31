//! The zip container of `torch.save` files, read in place: the central directory (zip64
//! included) gives each entry's name and where its bytes lie in the file.
//!
//! PyTorch writes every entry STORED (uncompressed) and pads local headers so data starts on a
//! 64-byte boundary; a stored entry's data is therefore a plain byte range of the memory map and
//! tensors can borrow it. Compressed entries are listed with their method so callers can refuse
//! them by name. Every offset read from the file is checked against the file's length.

use std::ops::Range;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// Compression method of a stored (uncompressed) entry.
pub const STORED: u16 = 0;

/// One file in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path inside the archive.
    pub name: String,
    /// Compression method ([`STORED`] for everything torch writes).
    pub method: u16,
    /// Where its (possibly compressed) bytes lie in the archive.
    pub data: Range<usize>,
}

/// Lists the entries of the zip archive `bytes`; the message says what is wrong otherwise.
pub fn entries(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let eocd = find_eocd(bytes)?;
    let r = Reader { bytes };
    let mut count = u64::from(r.u16(eocd + 10)?);
    let mut cd_size = u64::from(r.u32(eocd + 12)?);
    let mut cd_offset = u64::from(r.u32(eocd + 16)?);
    if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        (count, cd_size, cd_offset) = zip64_directory(&r, eocd)?;
    }
    let cd = range(cd_offset, cd_size, bytes.len()).ok_or("central directory lies outside the file")?;
    // Each central record takes at least CENTRAL_LEN bytes, which bounds the allocation.
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(usize::MAX).min(cd.len() / CENTRAL_LEN));
    let mut pos = cd.start;
    for index in 0..count {
        if pos + CENTRAL_LEN > cd.end || r.u32(pos)? != CENTRAL_SIGNATURE {
            return Err(format!("central directory record {index} is missing or corrupt"));
        }
        let method = r.u16(pos + 10)?;
        let mut compressed = u64::from(r.u32(pos + 20)?);
        let mut uncompressed = u64::from(r.u32(pos + 24)?);
        let name_len = usize::from(r.u16(pos + 28)?);
        let extra_len = usize::from(r.u16(pos + 30)?);
        let comment_len = usize::from(r.u16(pos + 32)?);
        let mut local = u64::from(r.u32(pos + 42)?);
        let name_at = pos + CENTRAL_LEN;
        let name = r.slice(name_at, name_len)?;
        let name = std::str::from_utf8(name).map_err(|_| format!("entry {index} has a name that is not UTF-8"))?;
        let extra = r.slice(name_at + name_len, extra_len)?;
        apply_zip64_extra(extra, &mut uncompressed, &mut compressed, &mut local)
            .map_err(|e| format!("entry `{name}`: {e}"))?;
        let data = local_data(&r, local, compressed).map_err(|e| format!("entry `{name}`: {e}"))?;
        if method == STORED && compressed != uncompressed {
            return Err(format!("entry `{name}` is stored but its sizes differ ({compressed} vs {uncompressed})"));
        }
        out.push(Entry { name: name.to_string(), method, data });
        pos = name_at + name_len + extra_len + comment_len;
    }
    Ok(out)
}

/// Bounds-checked little-endian reads.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn slice(&self, at: usize, len: usize) -> Result<&[u8], String> {
        at.checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| format!("truncated: {len} bytes at offset {at} lie beyond the end of the file"))
    }

    fn u16(&self, at: usize) -> Result<u16, String> {
        let b = self.slice(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, at: usize) -> Result<u32, String> {
        let b = self.slice(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&self, at: usize) -> Result<u64, String> {
        let b = self.slice(at, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// `start..start + len` when it fits in a file of `file_len` bytes.
fn range(start: u64, len: u64, file_len: usize) -> Option<Range<usize>> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= file_len).then_some(start..end)
}

/// The end-of-central-directory record: the last one whose comment length matches the file end.
fn find_eocd(bytes: &[u8]) -> Result<usize, String> {
    let not_zip = "not a zip archive, or truncated: no end-of-central-directory record";
    if bytes.len() < EOCD_LEN {
        return Err(not_zip.into());
    }
    let r = Reader { bytes };
    let last = bytes.len() - EOCD_LEN;
    let first = last.saturating_sub(usize::from(u16::MAX));
    for pos in (first..=last).rev() {
        if r.u32(pos)? == EOCD_SIGNATURE && usize::from(r.u16(pos + 20)?) == last - pos {
            return Ok(pos);
        }
    }
    Err(not_zip.into())
}

/// `(entry count, directory size, directory offset)` from the zip64 end-of-directory record.
fn zip64_directory(r: &Reader<'_>, eocd: usize) -> Result<(u64, u64, u64), String> {
    let locator = eocd.checked_sub(ZIP64_LOCATOR_LEN).ok_or("zip64 locator missing")?;
    if r.u32(locator)? != ZIP64_LOCATOR_SIGNATURE {
        return Err("zip64 locator missing".into());
    }
    let record = usize::try_from(r.u64(locator + 8)?).map_err(|_| "zip64 record offset out of range")?;
    if r.u32(record)? != ZIP64_EOCD_SIGNATURE {
        return Err("zip64 end-of-central-directory record missing".into());
    }
    Ok((r.u64(record + 32)?, r.u64(record + 40)?, r.u64(record + 48)?))
}

/// Replaces the 0xffffffff placeholders with the values of the zip64 extra field, in the order
/// the format fixes: uncompressed size, compressed size, local header offset.
fn apply_zip64_extra(
    mut extra: &[u8],
    uncompressed: &mut u64,
    compressed: &mut u64,
    local: &mut u64,
) -> Result<(), String> {
    while extra.len() >= 4 {
        let id = u16::from_le_bytes([extra[0], extra[1]]);
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let body = extra.get(4..4 + len).ok_or("truncated extra field")?;
        if id == ZIP64_EXTRA_ID {
            let r = Reader { bytes: body };
            let mut at = 0;
            for field in [uncompressed, compressed, local] {
                if *field == 0xffff_ffff {
                    *field = r.u64(at).map_err(|_| "zip64 extra field too short")?;
                    at += 8;
                }
            }
            return Ok(());
        }
        extra = &extra[4 + len..];
    }
    Ok(())
}

/// The data range of the entry whose local header is at `local`.
fn local_data(r: &Reader<'_>, local: u64, size: u64) -> Result<Range<usize>, String> {
    let local = usize::try_from(local).map_err(|_| "local header offset out of range")?;
    if r.u32(local)? != LOCAL_SIGNATURE {
        return Err(format!("no local header at offset {local}"));
    }
    let name_len = usize::from(r.u16(local + 26)?);
    let extra_len = usize::from(r.u16(local + 28)?);
    let start = local + LOCAL_LEN + name_len + extra_len;
    range(start as u64, size, r.bytes.len())
        .ok_or_else(|| format!("data ({size} bytes at offset {start}) is truncated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored zip with one entry, as Python's `zipfile` writes it.
    fn one_entry(name: &str, data: &[u8]) -> Vec<u8> {
        entry_with_offset_extra(name, data, None)
    }

    /// Like [`one_entry`], optionally giving the local header offset as a zip64 extra field
    /// (placeholder 0xffffffff in the central record), as writers do past 4 GiB.
    fn entry_with_offset_extra(name: &str, data: &[u8], zip64_offset: Option<u64>) -> Vec<u8> {
        let mut z = Vec::new();
        let header = |z: &mut Vec<u8>, sig: u32| z.extend_from_slice(&sig.to_le_bytes());
        header(&mut z, LOCAL_SIGNATURE);
        z.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version..crc
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(data);
        let cd = z.len();
        header(&mut z, CENTRAL_SIGNATURE);
        z.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // versions..crc
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        let extra: Vec<u8> = match zip64_offset {
            Some(offset) => [&[1, 0, 8, 0][..], &offset.to_le_bytes()].concat(),
            None => Vec::new(),
        };
        z.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        z.extend_from_slice(&[0; 10]); // comment, disk, attributes
        let local: u32 = if zip64_offset.is_some() { u32::MAX } else { 0 };
        z.extend_from_slice(&local.to_le_bytes());
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(&extra);
        let cd_len = z.len() - cd;
        header(&mut z, EOCD_SIGNATURE);
        z.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
        z.extend_from_slice(&(cd_len as u32).to_le_bytes());
        z.extend_from_slice(&(cd as u32).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z
    }

    #[test]
    fn reads_a_stored_entry() {
        let z = one_entry("a/data.pkl", b"hello");
        let list = entries(&z).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "a/data.pkl");
        assert_eq!(&z[list[0].data.clone()], b"hello");
    }

    #[test]
    fn reads_a_zip64_local_header_offset() {
        let z = entry_with_offset_extra("a/data.pkl", b"hello", Some(0));
        assert_eq!(&z[entries(&z).unwrap()[0].data.clone()], b"hello");
        let z = entry_with_offset_extra("a/data.pkl", b"hello", Some(1 << 40));
        assert!(entries(&z).unwrap_err().contains("a/data.pkl"));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let z = one_entry("a/data.pkl", b"hello");
        for len in 0..z.len() {
            assert!(entries(&z[..len]).is_err(), "truncated to {len} bytes");
        }
    }

    #[test]
    fn corrupt_offsets_are_errors() {
        let mut z = one_entry("a/data.pkl", b"hello");
        let n = z.len();
        z[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes()); // directory offset → zip64 lookup
        assert!(entries(&z).is_err());
        let mut z = one_entry("a/data.pkl", b"hello");
        z[18..22].copy_from_slice(&1000u32.to_le_bytes()); // local sizes are ignored ...
        assert!(entries(&z).is_ok());
        let cd = z.len() - 22 - (CENTRAL_LEN + 10);
        z[cd + 20..cd + 28].copy_from_slice(&[0xe8, 3, 0, 0, 0xe8, 3, 0, 0]); // ... central ones are not
        assert!(entries(&z).unwrap_err().contains("truncated"));
    }
}
