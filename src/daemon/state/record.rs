//! One slot's record: a fixed-width text header (magic, sequence number, body length,
//! CRC-32) and the JSON body, so that `cat` shows an operator what is stored and a torn
//! or foreign file is told apart from a good one without trusting any of its bytes.
//!
//! The header is text on purpose (`tandem-state v1 seq … len … crc32 …`): the file is
//! the first thing someone looks at after a bad night, and JSON after one readable line
//! needs no tool.

use std::fmt;

const MAGIC: &[u8] = b"tandem-state v1 seq ";
const SEQ_DIGITS: usize = 20;
const LEN_TAG: &[u8] = b" len ";
const LEN_DIGITS: usize = 10;
const CRC_TAG: &[u8] = b" crc32 ";
const CRC_DIGITS: usize = 8;

/// Bytes of the header, newline included.
pub const HEADER_LEN: usize =
    MAGIC.len() + SEQ_DIGITS + LEN_TAG.len() + LEN_DIGITS + CRC_TAG.len() + CRC_DIGITS + 1;
/// The checksum covers the header up to its own field, then the body.
const CHECKED_HEADER: usize = HEADER_LEN - CRC_DIGITS - 1;

/// Why a slot's bytes are not a record. A torn write shows as `Truncated` or
/// `Checksum`; anything else was not written by this version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Defect {
    Empty,
    NotAStateFile,
    Truncated { len: usize, have: usize },
    Checksum,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Defect::Empty => f.write_str("empty"),
            Defect::NotAStateFile => f.write_str("not a tandem state record (v1)"),
            Defect::Truncated { len, have } => {
                write!(f, "cut short: the header says {len} bytes, {have} follow")
            }
            Defect::Checksum => f.write_str("checksum mismatch (a write that did not finish)"),
        }
    }
}

/// A record read back: its sequence number and its body (still JSON).
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub body: &'a [u8],
}

/// The bytes of a record for `body` at `seq`, padded with spaces (and a final newline)
/// to at least `min_len`: a slot is overwritten in place, and padding instead of
/// truncating keeps the file's size — so `fdatasync` has no metadata to commit — and
/// leaves no stale tail that looks like JSON.
pub fn encode(seq: u64, body: &[u8], min_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((HEADER_LEN + body.len() + 1).max(min_len));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(format!("{seq:0SEQ_DIGITS$}").as_bytes());
    out.extend_from_slice(LEN_TAG);
    out.extend_from_slice(format!("{:0LEN_DIGITS$}", body.len()).as_bytes());
    out.extend_from_slice(CRC_TAG);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[..CHECKED_HEADER]);
    crc.update(body);
    out.extend_from_slice(format!("{:08x}\n", crc.finalize()).as_bytes());
    out.extend_from_slice(body);
    if out.len() < min_len {
        out.resize(min_len - 1, b' ');
        out.push(b'\n');
    }
    out
}

/// Reads a record from a slot's bytes, trusting nothing: every field is checked before
/// it is used, and the checksum before the body is handed out.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, Defect> {
    if bytes.is_empty() {
        return Err(Defect::Empty);
    }
    let header = bytes.get(..HEADER_LEN).ok_or(Defect::NotAStateFile)?;
    let mut at = 0;
    let mut field = |tag: &[u8], digits: usize| -> Option<&[u8]> {
        let ok = header[at..].starts_with(tag);
        at += tag.len();
        let value = &header[at..at + digits];
        at += digits;
        ok.then_some(value)
    };
    let seq = field(MAGIC, SEQ_DIGITS).and_then(|d| parse(d, 10));
    let len = field(LEN_TAG, LEN_DIGITS).and_then(|d| parse(d, 10));
    let crc = field(CRC_TAG, CRC_DIGITS).and_then(|d| parse(d, 16));
    let (Some(seq), Some(len), Some(crc)) = (seq, len, crc) else {
        return Err(Defect::NotAStateFile);
    };
    if header[HEADER_LEN - 1] != b'\n' {
        return Err(Defect::NotAStateFile);
    }
    let len = usize::try_from(len).map_err(|_| Defect::NotAStateFile)?;
    let have = bytes.len() - HEADER_LEN;
    let body = bytes
        .get(HEADER_LEN..HEADER_LEN.saturating_add(len))
        .ok_or(Defect::Truncated { len, have })?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..CHECKED_HEADER]);
    hasher.update(body);
    if u64::from(hasher.finalize()) != crc {
        return Err(Defect::Checksum);
    }
    Ok(Record { seq, body })
}

/// Fixed-width ASCII digits in `radix`; anything else (a sign, a space) is not ours.
fn parse(digits: &[u8], radix: u32) -> Option<u64> {
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(text, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_its_padding_is_not_part_of_it() {
        let bytes = encode(42, b"{\"a\":1}\n", 200);
        assert_eq!(bytes.len(), 200);
        assert!(bytes.starts_with(b"tandem-state v1 seq 00000000000000000042 len 0000000008"));
        let record = decode(&bytes).expect("decodes");
        assert_eq!(
            record,
            Record {
                seq: 42,
                body: b"{\"a\":1}\n"
            }
        );
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        let bytes = encode(7, b"{\"terms\":[[1,2]]}\n", 0);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {at} accepted");
        }
    }

    #[test]
    fn defects_say_what_is_wrong() {
        assert_eq!(decode(b""), Err(Defect::Empty));
        assert_eq!(decode(b"{\"terms\": []}"), Err(Defect::NotAStateFile));
        let bytes = encode(1, b"0123456789", 0);
        assert_eq!(
            decode(&bytes[..HEADER_LEN + 4]),
            Err(Defect::Truncated { len: 10, have: 4 })
        );
        let mut bad = bytes.clone();
        bad[HEADER_LEN] = b'x';
        assert_eq!(decode(&bad), Err(Defect::Checksum));
    }
}
