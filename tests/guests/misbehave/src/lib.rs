//! `misbehave`: an attribution model for the host's containment tests.
//!
//! With `mode = "ok"` it behaves like `libvirt-joules` (same measurement);
//! every other mode misbehaves in one way the host must contain:
//!
//! | mode             | behaviour                                                  |
//! |------------------|------------------------------------------------------------|
//! | `ok`             | joules = the `energy` counter increase, per VM with data   |
//! | `loop`           | loops forever                                              |
//! | `grow`           | allocates and touches 1 MiB chunks without bound           |
//! | `recurse`        | recurses without bound                                     |
//! | `panic`          | `panic!("misbehave: deliberate panic")`                    |
//! | `huge`           | returns about `huge_mb` MiB of vm-energy entries           |
//! | `nan`            | first VM gets NaN joules                                   |
//! | `negative`       | first VM gets -1.0 joules                                  |
//! | `inf`            | first VM gets +inf joules                                  |
//! | `unknown-placement`   | adds an entry for a placement the input does not have |
//! | `duplicate-placement` | lists the first placement twice                       |
//! | `gpu-excess`     | each card's first holder gets twice the card's energy as GPU joules |
//!
//! It declares the `gpu` measurement: without `[gpu]` in the policy it gets
//! no GPUs and gives no GPU joules, so only `gpu-excess` with GPUs breaks
//! the host's GPU law.

use std::hint::black_box;

use wattson_plugin::{
    Attribution, AttributionInput, CounterSpec, KeyKind, Model, ModelInfo, ParamSpec, Params,
    PlacementEnergy, Unit,
};

const ENERGY: &str = "energy";

struct Misbehave;

impl Model for Misbehave {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "misbehave",
            env!("CARGO_PKG_VERSION"),
            "Test model that misbehaves on request (param `mode`)",
        )
        .gpu("gpu")
        .measurement(CounterSpec::new(
            ENERGY,
            "${metric}",
            "uuid",
            KeyKind::Uuid,
            Unit::Joules,
        ))
        .param(ParamSpec::text(
            "metric",
            "PromQL selector of the per-VM joules counter",
            Some("libvirt_domain_info_energy_consumption_joules_total"),
        ))
        .param(ParamSpec::choice(
            "mode",
            "How to misbehave",
            &[
                "ok",
                "loop",
                "grow",
                "recurse",
                "panic",
                "huge",
                "nan",
                "negative",
                "inf",
                "unknown-placement",
                "duplicate-placement",
                "gpu-excess",
            ],
            Some("ok"),
        ))
        .param(
            ParamSpec::integer("huge_mb", "Approximate MiB returned by `huge`", Some(8)).min(0.0),
        )
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let mode = params.choice("mode")?;
        wattson_plugin::debug!("misbehave: mode {mode}");
        let mut vms = input.per_vm_energy(ENERGY, 1.0)?;
        match mode {
            "ok" => {}
            "loop" => spin(),
            "grow" => grow(),
            "recurse" => {
                black_box(recurse(black_box(0)));
            }
            "panic" => panic!("misbehave: deliberate panic"),
            "huge" => vms = huge(params.integer("huge_mb")?),
            "nan" => first(&mut vms)?.joules = f64::NAN,
            "negative" => first(&mut vms)?.joules = -1.0,
            "inf" => first(&mut vms)?.joules = f64::INFINITY,
            "unknown-placement" => vms.push(PlacementEnergy {
                placement: u32::try_from(input.placements.len()).unwrap_or(u32::MAX),
                joules: 1.0,
                gpu_joules: 0.0,
            }),
            "duplicate-placement" => {
                let dup = *first(&mut vms)?;
                vms.push(dup);
            }
            "gpu-excess" => gpu_excess(&input, &mut vms),
            other => return Err(format!("unknown mode {other:?}")),
        }
        Ok(Attribution {
            placements: vms,
            ..Attribution::default()
        })
    }
}

/// The first entry, or an error when no VM had data.
fn first(vms: &mut [PlacementEnergy]) -> Result<&mut PlacementEnergy, String> {
    vms.first_mut()
        .ok_or_else(|| "misbehave: no VM with an energy reading to corrupt".to_string())
}

/// Gives each card's first holder twice the card's energy as GPU joules
/// (inside its joules): more than its holdings, so the host's GPU law breaks.
fn gpu_excess(input: &AttributionInput, vms: &mut Vec<PlacementEnergy>) {
    for card in &input.gpus {
        let Some(held) = card.holdings.first() else {
            continue;
        };
        let excess = 2.0 * card.energy.value;
        match vms.iter_mut().find(|e| e.placement == held.placement) {
            Some(e) => {
                e.joules += excess;
                e.gpu_joules += excess;
            }
            None => vms.push(PlacementEnergy {
                placement: held.placement,
                joules: excess,
                gpu_joules: excess,
            }),
        }
    }
}

/// Loops forever.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates and touches memory until the allocator fails.
fn grow() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(black_box(vec![0xa5u8; 1 << 20]));
        black_box(&chunks);
    }
}

/// Recurses until the stack runs out: the `black_box`ed exit is never taken,
/// but LLVM cannot prove it, so the recursion is neither rejected nor turned
/// into a loop.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let frame = black_box([depth; 64]);
    let below = recurse(black_box(depth + 1));
    black_box(frame[(depth % 64) as usize].wrapping_add(below))
}

/// About `mb` MiB of entries (16 bytes each as the host counts them).
fn huge(mb: i64) -> Vec<PlacementEnergy> {
    let bytes = usize::try_from(mb.max(0)).unwrap_or(0) << 20;
    (0..bytes / 16)
        .map(|i| PlacementEnergy {
            placement: i as u32,
            joules: 1.0,
            gpu_joules: 0.0,
        })
        .collect()
}

wattson_plugin::register_model!(Misbehave);
