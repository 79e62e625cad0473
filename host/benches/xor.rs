//! Decoding Prometheus XOR chunks (remote read): samples per second of
//! `decode_xor` on chunks of 120 samples as Prometheus cuts them, for a
//! libvirt energy counter (random increments, scrapes with jitter) and a
//! power gauge in whole microwatts. The chunks are written by an encoder that
//! follows `tsdb/chunkenc/xor.go` and are checked to decode to exactly the
//! samples written before anything is timed.
//!
//! ```sh
//! cargo bench -p wattson --bench xor
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use wattson::energy::counter::Sample;
use wattson::sources::prometheus::remote_read::decode_xor;

/// Writes bits MSB first, as `bstream.go` does.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    fn write(&mut self, value: u64, n: u32) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if value >> i & 1 == 1 {
                let last = self.bytes.len() - 1;
                self.bytes[last] |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
        }
    }

    fn uvarint(&mut self, mut x: u64) {
        while x >= 0x80 {
            self.write(x & 0x7f | 0x80, 8);
            x >>= 7;
        }
        self.write(x, 8);
    }
}

/// One XOR chunk of `samples` (at most 65,535), as `xor.go`'s appender writes it.
fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut w = BitWriter::default();
    let (mut t, mut delta, mut bits) = (0i64, 0i64, 0u64);
    let (mut leading, mut trailing) = (0xffu32, 0u32);
    for (i, s) in samples.iter().enumerate() {
        let v = s.value.to_bits();
        match i {
            0 => {
                let zigzag = ((s.t_ms << 1) ^ (s.t_ms >> 63)) as u64;
                w.uvarint(zigzag);
                w.write(v, 64);
            }
            _ => {
                let d = s.t_ms - t;
                if i == 1 {
                    w.uvarint(d as u64);
                } else {
                    let dod = d - delta;
                    let fits = |n: u32| -((1i64 << (n - 1)) - 1) <= dod && dod <= 1i64 << (n - 1);
                    match dod {
                        0 => w.write(0, 1),
                        _ if fits(14) => (w.write(0b10, 2), w.write(dod as u64, 14)).1,
                        _ if fits(17) => (w.write(0b110, 3), w.write(dod as u64, 17)).1,
                        _ if fits(20) => (w.write(0b1110, 4), w.write(dod as u64, 20)).1,
                        _ => (w.write(0b1111, 4), w.write(dod as u64, 64)).1,
                    }
                }
                delta = d;
                let xor = v ^ bits;
                if xor == 0 {
                    w.write(0, 1);
                } else {
                    w.write(1, 1);
                    let lead = xor.leading_zeros().min(31);
                    let trail = xor.trailing_zeros();
                    if leading != 0xff && lead >= leading && trail >= trailing {
                        w.write(0, 1);
                        w.write(xor >> trailing, 64 - leading - trailing);
                    } else {
                        (leading, trailing) = (lead, trail);
                        w.write(1, 1);
                        w.write(u64::from(lead), 5);
                        let significant = 64 - lead - trail;
                        w.write(u64::from(significant & 63), 6);
                        w.write(xor >> trail, significant);
                    }
                }
            }
        }
        (t, bits) = (s.t_ms, v);
    }
    let mut chunk = (samples.len() as u16).to_be_bytes().to_vec();
    chunk.extend(w.bytes);
    chunk
}

/// 100 series × 24 chunks of 120 samples, scraped every 30 s ± 0.4 s; each
/// sample's value from `value(rng, previous)`.
fn chunks(seed: u64, value: impl Fn(&mut StdRng, f64) -> f64) -> (Vec<Vec<u8>>, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut out, mut total) = (Vec::new(), 0);
    for _ in 0..100 {
        let mut t = 1_748_736_000_000i64 + rng.random_range(0..30_000);
        let mut v = rng.random_range(1e6..1e9f64).round();
        for _ in 0..24 {
            let samples: Vec<Sample> = (0..120)
                .map(|_| {
                    t += 30_000 + rng.random_range(-400..=400);
                    v = value(&mut rng, v);
                    Sample { t_ms: t, value: v }
                })
                .collect();
            let chunk = encode(&samples);
            let mut decoded = Vec::new();
            decode_xor(&chunk, &mut decoded).expect("the encoder writes valid chunks");
            assert!(
                decoded.len() == samples.len()
                    && decoded.iter().zip(&samples).all(|(a, b)| {
                        a.t_ms == b.t_ms && a.value.to_bits() == b.value.to_bits()
                    }),
                "decode_xor does not give back the samples written"
            );
            total += samples.len();
            out.push(chunk);
        }
    }
    (out, total)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_xor");
    let counter = chunks(1, |rng, v| {
        ((v + rng.random_range(1500.0..9000.0f64)) * 1e6).round() / 1e6
    });
    let gauge = chunks(2, |rng, v| (v * rng.random_range(0.97..1.03f64)).round());
    for (name, (chunks, samples)) in [("energy-counter", counter), ("power-gauge", gauge)] {
        group.throughput(Throughput::Elements(samples as u64));
        let mut out = Vec::with_capacity(120);
        group.bench_function(name, |b| {
            b.iter(|| {
                for chunk in &chunks {
                    out.clear();
                    decode_xor(chunk, &mut out).expect("valid chunks");
                }
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
