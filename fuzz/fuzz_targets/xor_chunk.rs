//! Any bytes as a Prometheus XOR chunk (remote read): the decoder returns
//! samples or says the chunk is garbled, never panics, and never returns more
//! samples than the chunk's header counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wattson::sources::prometheus::remote_read::decode_xor;

fuzz_target!(|data: &[u8]| {
    let mut samples = Vec::new();
    if decode_xor(data, &mut samples).is_ok() {
        let count = data
            .get(..2)
            .map_or(0, |h| usize::from(u16::from_be_bytes([h[0], h[1]])));
        assert!(samples.len() <= count);
    }
});
