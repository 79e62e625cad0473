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
//! | `unknown-uuid`   | adds an entry for `00000000-dead-beef-0000-000000000000`   |
//! | `duplicate-uuid` | lists the first VM twice                                   |

use std::hint::black_box;

use wattson_plugin::{
    Attribution, AttributionInput, CounterSpec, KeyKind, Measurement, Model, ModelInfo, ParamSpec,
    Params, Unit, VmEnergy,
};

const ENERGY: &str = "energy";

/// The uuid `unknown-uuid` adds.
const UNKNOWN_UUID: &str = "00000000-dead-beef-0000-000000000000";

struct Misbehave;

impl Model for Misbehave {
    fn describe() -> ModelInfo {
        ModelInfo {
            name: "misbehave".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Test model that misbehaves on request (param `mode`)".into(),
            measurements: vec![Measurement::Counter(CounterSpec {
                name: ENERGY.into(),
                selector: "${metric}".into(),
                key_label: "uuid".into(),
                key: KeyKind::Uuid,
                unit: Unit::Joules,
                wrap_range: None,
            })],
            params: vec![
                ParamSpec::text(
                    "metric",
                    "PromQL selector of the per-VM joules counter",
                    Some("libvirt_domain_info_energy_consumption_joules_total"),
                ),
                ParamSpec::text(
                    "mode",
                    "ok, loop, grow, recurse, panic, huge, nan, negative, inf, unknown-uuid, \
                     duplicate-uuid",
                    Some("ok"),
                ),
                ParamSpec::integer("huge_mb", "Approximate MiB returned by `huge`", Some(8)),
            ],
            conservation: None,
        }
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let mode = params.text("mode")?;
        wattson_plugin::debug!("misbehave: mode {mode}");
        let mut vms = honest(&input)?;
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
            "unknown-uuid" => vms.push(VmEnergy {
                uuid: UNKNOWN_UUID.into(),
                joules: 1.0,
            }),
            "duplicate-uuid" => {
                let dup = first(&mut vms)?.clone();
                vms.push(dup);
            }
            other => return Err(format!("unknown mode {other:?}")),
        }
        Ok(Attribution {
            vms,
            unattributed: Vec::new(),
        })
    }
}

/// What `libvirt-joules` returns.
fn honest(input: &AttributionInput) -> Result<Vec<VmEnergy>, String> {
    let energy = input.measured(ENERGY)?;
    Ok(input
        .vms
        .iter()
        .zip(&energy.vms)
        .filter_map(|(vm, reading)| {
            reading.as_ref().map(|r| VmEnergy {
                uuid: vm.uuid.clone(),
                joules: r.value,
            })
        })
        .collect())
}

/// The first entry, or an error when no VM had data.
fn first(vms: &mut [VmEnergy]) -> Result<&mut VmEnergy, String> {
    vms.first_mut()
        .ok_or_else(|| "misbehave: no VM with an energy reading to corrupt".to_string())
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

/// About `mb` MiB of entries with long uuids.
fn huge(mb: i64) -> Vec<VmEnergy> {
    let bytes = usize::try_from(mb.max(0)).unwrap_or(0) << 20;
    // 1 KiB uuids: a thousand entries per MiB.
    let pad = "f".repeat(1000);
    (0..bytes / 1024)
        .map(|i| VmEnergy {
            uuid: format!("{i:016x}-{pad}"),
            joules: 1.0,
        })
        .collect()
}

wattson_plugin::register_model!(Misbehave);
