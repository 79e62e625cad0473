//! The example plugins in Python and JavaScript (`examples/plugins`): the
//! first compile of each (Cranelift + compile-cache write + instantiate +
//! `describe()`), and a load from the compile cache by a fresh runtime (what
//! every later `wattson` run does), as the median of 10.
//!
//! ```sh
//! examples/plugins/build.sh wit/since_v0.2.0 target/polyglot
//! cargo bench -p wattson --bench polyglot
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use wattson::runtime::{Limits, Runtime};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/polyglot");
    println!("| component | size | first compile | cached load (median of 10) | ratio |");
    println!("|---|---|---|---|---|");
    for (name, file) in [("python-model", "model.wasm"), ("js-format", "format.wasm")] {
        let path = dir.join(file);
        let Ok(meta) = std::fs::metadata(&path) else {
            eprintln!(
                "{} is not built: examples/plugins/build.sh wit/since_v0.2.0 target/polyglot",
                path.display()
            );
            continue;
        };
        let path = path.to_str().expect("a UTF-8 path");
        let load = |runtime: &Runtime| {
            if file == "model.wasm" {
                runtime.load_model(path).map(drop)
            } else {
                runtime.load_format(path).map(drop)
            }
            .expect("the example loads")
        };
        let cache = tempfile::tempdir().expect("temp dir");
        let fresh =
            || Runtime::new(Limits::default(), Some(cache.path().to_owned())).expect("runtime");
        let started = Instant::now();
        load(&fresh());
        let first = started.elapsed();
        let mut cached: Vec<Duration> = (0..10)
            .map(|_| {
                let runtime = fresh();
                let started = Instant::now();
                load(&runtime);
                started.elapsed()
            })
            .collect();
        cached.sort();
        let median = cached[cached.len() / 2];
        println!(
            "| {name} | {:.1} MB | {:.1} s | {:.1} ms | {:.0}x |",
            meta.len() as f64 / 1e6,
            first.as_secs_f64(),
            median.as_secs_f64() * 1e3,
            first.as_secs_f64() / median.as_secs_f64()
        );
    }
}
