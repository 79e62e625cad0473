//! The XOR chunk decoder: Prometheus' Gorilla-encoded float samples
//! (`tsdb/chunkenc/xor.go`), as remote read streams them.

use crate::energy::counter::Sample;

/// Prometheus' staleness marker (a NaN with this exact bit pattern): not a sample.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Reads bits MSB first, as `tsdb/chunkenc/bstream.go` writes them, from
/// one big-endian word load at a time (a sample costs a few loads, not a
/// loop per bit).
struct Bits<'a> {
    bytes: &'a [u8],
    /// Position in bits.
    at: usize,
}

impl Bits<'_> {
    /// The next bits, left-aligned: at least 57 of them are the stream's
    /// (zeros past its end, which [`Bits::skip`] refuses to pass).
    #[inline]
    fn peek(&self) -> u64 {
        let i = self.at / 8;
        let word = match self.bytes.get(i..i + 8) {
            Some(eight) => <[u8; 8]>::try_from(eight).map_or(0, u64::from_be_bytes),
            None => {
                let mut eight = [0u8; 8];
                let rest = self.bytes.get(i..).unwrap_or_default();
                eight[..rest.len()].copy_from_slice(rest);
                u64::from_be_bytes(eight)
            }
        };
        word << (self.at % 8)
    }

    /// Moves past `n` bits, if the stream has them.
    #[inline]
    fn skip(&mut self, n: u32) -> Option<()> {
        let end = self.at + n as usize;
        (end <= self.bytes.len() * 8).then(|| self.at = end)
    }

    /// The next `n` (at most 64) bits as a number; inlined, as the
    /// decoder's hot path calls it with a width known only at run time.
    #[inline(always)]
    fn bits(&mut self, n: u8) -> Option<u64> {
        if n > 56 {
            let high = self.bits(n - 32)?;
            return Some(high << 32 | self.bits(32)?);
        }
        let value = match n {
            0 => 0,
            n => self.peek() >> (64 - u32::from(n)),
        };
        self.skip(u32::from(n))?;
        Some(value)
    }

    fn byte(&mut self) -> Option<u8> {
        self.bits(8).map(|b| b as u8)
    }

    /// Go's `binary.ReadUvarint` over the bit stream.
    fn uvarint(&mut self) -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(x);
            }
        }
        None
    }

    /// Go's `binary.ReadVarint` (zig-zag).
    fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Appends the samples of one XOR chunk (its 2-byte sample count, then the
/// stream) to `out`, stale markers left out.
pub fn decode_xor(data: &[u8], out: &mut Vec<Sample>) -> Result<(), String> {
    let corrupt = |what: &str| format!("a garbled XOR chunk ({what})");
    let (count, stream) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
        _ => return Err(corrupt("shorter than its header")),
    };
    let mut bits = Bits {
        bytes: stream,
        at: 0,
    };
    out.reserve(count);
    let (mut t, mut value_bits, mut delta) = (0i64, 0u64, 0u64);
    let (mut leading, mut trailing) = (0u8, 0u8);
    for i in 0..count {
        match i {
            0 => {
                t = bits.varint().ok_or_else(|| corrupt("first timestamp"))?;
                value_bits = bits.bits(64).ok_or_else(|| corrupt("first value"))?;
            }
            _ => {
                if i == 1 {
                    delta = bits.uvarint().ok_or_else(|| corrupt("second timestamp"))?;
                } else {
                    // '0', '10', '110', '1110' or '1111', then that many bits.
                    // Regular scrapes make '0' the common case.
                    let prefix = bits.peek();
                    let ones = match prefix >> 63 {
                        0 => 0,
                        _ => prefix.leading_ones().min(4),
                    };
                    let prefix_len = (ones + 1).min(4);
                    let dod = match ones {
                        0 => {
                            bits.skip(1).ok_or_else(|| corrupt("timestamp"))?;
                            0
                        }
                        1..=3 => {
                            let n = [14, 17, 20][ones as usize - 1];
                            bits.skip(prefix_len + n)
                                .ok_or_else(|| corrupt("timestamp"))?;
                            let raw = (prefix << prefix_len) >> (64 - n);
                            // Negative numbers come back as high unsigned ones.
                            if raw > 1 << (n - 1) {
                                raw as i64 - (1i64 << n)
                            } else {
                                raw as i64
                            }
                        }
                        _ => {
                            bits.skip(4).ok_or_else(|| corrupt("timestamp"))?;
                            bits.bits(64).ok_or_else(|| corrupt("timestamp"))? as i64
                        }
                    };
                    delta = (delta as i64).wrapping_add(dod) as u64;
                }
                t = t.wrapping_add(delta as i64);
                // The value: same as before ('0'), or XOR with the previous
                // bits in the previous window ('10') or a new one ('11').
                let control = bits.peek();
                if control >> 63 == 0 {
                    bits.skip(1).ok_or_else(|| corrupt("value"))?;
                } else {
                    let (header, significant) = if control >> 62 & 1 == 1 {
                        bits.skip(13).ok_or_else(|| corrupt("value"))?;
                        leading = (control >> 57 & 0x1f) as u8;
                        let significant = match (control >> 51 & 0x3f) as u8 {
                            0 => 64,
                            n => n,
                        };
                        trailing = 64u8
                            .checked_sub(leading + significant)
                            .ok_or_else(|| corrupt("value width"))?;
                        (13, significant)
                    } else {
                        bits.skip(2).ok_or_else(|| corrupt("value"))?;
                        let significant = 64u8
                            .checked_sub(leading + trailing)
                            .ok_or_else(|| corrupt("value width"))?;
                        (2, significant)
                    };
                    // Most values fit in the word already read.
                    let xor = if header + u32::from(significant) <= 57 {
                        bits.skip(u32::from(significant))
                            .ok_or_else(|| corrupt("value"))?;
                        (control << header)
                            .checked_shr(64 - u32::from(significant))
                            .unwrap_or(0)
                    } else {
                        bits.bits(significant).ok_or_else(|| corrupt("value"))?
                    };
                    value_bits ^= xor.checked_shl(u32::from(trailing)).unwrap_or(0);
                }
            }
        }
        let value = f64::from_bits(value_bits);
        if value_bits != STALE_NAN && super::super::finite(value) {
            out.push(Sample { t_ms: t, value });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garbled_chunk_is_an_error_not_samples() {
        let mut samples = Vec::new();
        assert!(decode_xor(&[0], &mut samples).is_err());
        assert!(decode_xor(&[0, 200, 1, 2, 3], &mut samples).is_err());
        assert!(decode_xor(&[0, 0], &mut samples).is_ok());
        assert!(samples.is_empty());
    }

    /// Chunks Prometheus 2.42 wrote (`fuzz/chunks.py`, also the fuzzer's
    /// seeds): every sample the header counts, 30 s apart, counters never
    /// decreasing.
    #[test]
    fn chunks_prometheus_wrote_decode() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/xor_chunk");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("prometheus-") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let mut samples = Vec::new();
            decode_xor(&data, &mut samples).unwrap();
            assert_eq!(
                samples.len(),
                usize::from(u16::from_be_bytes([data[0], data[1]]))
            );
            for pair in samples.windows(2) {
                assert_eq!(pair[1].t_ms - pair[0].t_ms, 30_000, "{name}");
                assert!(pair[1].value.is_finite(), "{name}");
                if name.starts_with("prometheus-counter-") {
                    assert!(pair[1].value >= pair[0].value, "{name}");
                }
            }
            seen += 1;
        }
        assert!(seen >= 9, "{seen} chunks in {dir}");
    }
}
