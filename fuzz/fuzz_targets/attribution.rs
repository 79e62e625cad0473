//! Any model answer for any window: the host's validator accepts it or says
//! why, never a panic; an accepted answer holds what the validator promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wattson::runtime::{
    Attribution, AttributionInput, Conservation, HostEnergy, Measured, ModelInfo, Placement,
    PlacementEnergy, Quality, Reading, UnattributedReason, Vm, Window, check_attribution,
};

/// Reads the fuzzer's bytes as small numbers and floats (zeros once used up).
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }
    fn float(&mut self) -> f64 {
        // Mostly plain joules; now and then any bit pattern (NaN, inf, negative).
        let raw = u64::from_le_bytes(std::array::from_fn(|_| self.byte()));
        if raw % 4 == 0 {
            f64::from_bits(raw)
        } else {
            (raw % 1_000_000) as f64 / 7.0
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let (n_vms, n_hosts) = (usize::from(b.byte() % 6), usize::from(b.byte() % 4));
    let vms: Vec<Vm> = (0..n_vms)
        .map(|i| Vm {
            uuid: format!("vm-{i}"),
            vcpus: Some(2),
            memory_mb: None,
        })
        .collect();
    let placements: Vec<Placement> = (0..n_vms + usize::from(b.byte() % 3))
        .map(|i| Placement {
            vm: (i % n_vms.max(1)) as u32,
            host: (n_hosts > 0 && b.byte() % 4 != 0).then(|| u32::from(b.byte()) % n_hosts as u32),
            presence_s: 3600.0,
            cpu_s: Some(b.float()),
            assigned: b.byte() % 5 != 0,
        })
        .collect();
    let hosts: Vec<Option<Reading>> = (0..n_hosts)
        .map(|_| {
            (b.byte() % 3 != 0).then(|| Reading {
                value: b.float(),
                span_s: 3600.0,
                covered_s: 3600.0,
            })
        })
        .collect();
    let input = AttributionInput {
        window: Window {
            start_ms: 0,
            end_ms: 3_600_000,
        },
        vms,
        details: vec![],
        hosts: (0..n_hosts).map(|h| format!("h{h}")).collect(),
        placements,
        measurements: vec![Measured {
            name: "energy".into(),
            vms: vec![None; n_vms],
            hosts,
            placements: vec![],
        }],
        gpus: vec![],
    };
    let result = Attribution {
        placements: (0..b.byte() % 8)
            .map(|_| PlacementEnergy {
                placement: u32::from(b.byte() % 10),
                joules: b.float(),
                gpu_joules: if b.byte() % 4 == 0 { b.float() } else { 0.0 },
            })
            .collect(),
        unattributed: (0..b.byte() % 4)
            .map(|_| HostEnergy {
                host: u32::from(b.byte() % 5),
                joules: b.float(),
                gpu_joules: if b.byte() % 4 == 0 { b.float() } else { 0.0 },
                reason: UnattributedReason::Other,
            })
            .collect(),
    };
    let info = ModelInfo {
        name: "fuzz".into(),
        version: "0".into(),
        description: String::new(),
        measurements: vec![],
        params: vec![],
        conservation: (b.byte() % 2 == 0).then(|| Conservation {
            measurement: "energy".into(),
            tolerance: 1e-9,
            gpu: None,
            gpu_in_meter: false,
        }),
        quality: Quality::Measured,
    };
    if check_attribution(&info, &input, &result).is_ok() {
        for e in &result.placements {
            assert!(e.joules.is_finite() && e.joules >= 0.0);
            // No `gpu` measurement declared: no GPU part.
            assert!(e.gpu_joules == 0.0);
            assert!(input.placements[e.placement as usize].assigned);
        }
        for e in &result.unattributed {
            assert!(e.joules.is_finite() && e.joules >= 0.0);
            assert!(e.gpu_joules == 0.0);
            assert!((e.host as usize) < input.hosts.len());
        }
    }
});
