//! Any bytes as a Prometheus query answer: decoded or refused, never a panic;
//! what is decoded has its labels readable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wattson::sources::prometheus::client::decode_answer;

fuzz_target!(|body: &[u8]| {
    if let Ok(series) = decode_answer(body) {
        for (labels, samples) in series {
            let _ = labels.iter().count();
            let _ = labels.key();
            let _ = samples.len();
        }
    }
});
