//! `tdp-estimate`: for hosts with no meter, each VM's energy estimated from
//! its vCPUs, its time on the host and its CPU utilisation, as Cloud Carbon
//! Footprint does (`docs/ENERGY.md#estimates`). Per placement:
//!
//! util = cpu / (vcpus × presence), clamped to [0, 1];
//! E = vcpus × presence × (min_w + util × (max_w − min_w))
//!   + memory GB × presence × memory_w_per_gb.
//!
//! `min_w` and `max_w` are watts per vCPU, looked up per placement in the
//! tables of the same name: a key is a host glob (`gpu-*`) or `flavor:` and a
//! flavor glob (`flavor:m1.*`), the first match in the policy's order wins,
//! and CCF's defaults for an unknown x86 server (0.74 W, 3.5 W) apply where
//! none matches. Records say `quality: estimated`. With `gpu = "passthrough"`
//! each VM gets its GPUs' energy on top (the estimate counts no GPU).

use std::collections::HashMap;

use wattson_plugin::gpu::{self, Mode};
use wattson_plugin::{
    Attribution, AttributionInput, Measurement, Model, ModelInfo, ParamSpec, Params, glob_match,
};

/// CCF's minimum watts per vCPU of an unknown x86 server.
const CCF_MIN_W: f64 = 0.74;
/// CCF's maximum watts per vCPU of an unknown x86 server.
const CCF_MAX_W: f64 = 3.5;
/// MB of memory per GB (libvirt's sizes are MiB; CCF's are GB of the same kind).
const MB_PER_GB: f64 = 1024.0;

/// Watts per vCPU at 0 % and 100 % utilisation.
type MinMax = (f64, f64);

struct TdpEstimate;

impl Model for TdpEstimate {
    fn describe() -> ModelInfo {
        gpu::declare(ModelInfo::new(
            "tdp-estimate",
            env!("CARGO_PKG_VERSION"),
            "For hosts without a meter: each VM's energy estimated from its vCPUs, time and CPU \
             utilisation between min_w and max_w watts per vCPU (Cloud Carbon Footprint's \
             method), plus memory_w_per_gb; records are marked estimated.",
        )
        .measurement(Measurement::CpuTime("cpu".to_owned()))
        .measurement(Measurement::Inventory)
        .param(
            ParamSpec::number_table(
                "min_w",
                "Watts per vCPU at 0 % utilisation, by host glob or `flavor:` glob (first \
                 match wins; 0.74 where none matches)",
            )
            .min(0.0),
        )
        .param(
            ParamSpec::number_table(
                "max_w",
                "Watts per vCPU at 100 % utilisation, by host glob or `flavor:` glob (first \
                 match wins; 3.5 where none matches)",
            )
            .min(0.0),
        )
        .param(
            ParamSpec::number(
                "memory_w_per_gb",
                "Watts per GB of memory (0: memory not counted)",
                Some(0.0),
            )
            .min(0.0),
        )
        .estimated())
    }

    fn attribute(input: AttributionInput, params: Params) -> Result<Attribution, String> {
        let gpus = gpu::attribute(&input, Mode::from_params(&params)?)?;
        let memory_w = params.number("memory_w_per_gb")?;
        let (min_table, max_table) = (params.table("min_w")?, params.table("max_w")?);
        let mut out = Attribution::default();
        let mut unsized_vms = 0usize;
        let mut watts: HashMap<(Option<u32>, Option<&str>), MinMax> = HashMap::new();
        for (i, p) in input.placements.iter().enumerate() {
            if !p.assigned {
                continue;
            }
            let vm = &input.vms[p.vm as usize];
            let Some(vcpus) = vm.vcpus.filter(|v| *v > 0).map(f64::from) else {
                unsized_vms += 1;
                continue;
            };
            let flavor = input
                .details
                .get(p.vm as usize)
                .and_then(|d| d.flavor.as_deref());
            // Looked up once per (host, flavor): thousands of VMs share a few.
            let (min_w, max_w) = *watts.entry((p.host, flavor)).or_insert_with(|| {
                let host = p.host.and_then(|h| input.hosts.get(h as usize));
                let lookup = |table: &[(String, f64)], default: f64| {
                    table
                        .iter()
                        .find(|(pattern, _)| match pattern.strip_prefix("flavor:") {
                            Some(glob) => flavor.is_some_and(|f| glob_match(glob, f)),
                            None => host.is_some_and(|h| glob_match(pattern, h)),
                        })
                        .map_or(default, |(_, w)| *w)
                };
                (lookup(min_table, CCF_MIN_W), lookup(max_table, CCF_MAX_W))
            });
            let presence = p.presence_s;
            let util = if presence > 0.0 {
                (p.cpu_s.unwrap_or(0.0) / (vcpus * presence)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let memory_gb = vm.memory_mb.map_or(0.0, |m| m as f64 / MB_PER_GB);
            let joules = vcpus * presence * (min_w + util * (max_w - min_w))
                + memory_gb * presence * memory_w;
            out.give(i as u32, joules);
        }
        if unsized_vms > 0 {
            wattson_plugin::warn(&format!(
                "{unsized_vms} VM placement(s) have no vCPU count, so no estimate (check \
                 [inventory] vcpus_metric)"
            ));
        }
        gpus.add_to(&input, &mut out);
        Ok(out)
    }
}

wattson_plugin::register_model!(TdpEstimate);
