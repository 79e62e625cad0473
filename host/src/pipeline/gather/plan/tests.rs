use std::path::Path;

use super::*;
use crate::policy::Source;
use crate::runtime::{HostPowerSpec, IdlePowerSpec, RaplSpec};

#[test]
fn the_plan_is_checked_before_any_query() {
    let policy = |extra: &str| {
        Policy::parse(Source::new(
            Path::new("p.toml"),
            format!(
                "[site]\nname = \"S\"\ncompute_service = \"c\"\n{extra}\n[model]\nplugin = \"libvirt-joules\"\n"
            ),
        ))
        .unwrap()
    };
    let measurements = [
        Measurement::Rapl(RaplSpec {
            name: "rapl".into(),
            zones: vec![],
        }),
        Measurement::HostPower(HostPowerSpec {
            name: "wall".into(),
            max_gap_s: None,
        }),
        Measurement::IdlePower(IdlePowerSpec {
            name: "idle".into(),
            meter: "nope".into(),
            setting: "auto".into(),
        }),
        Measurement::IdlePower(IdlePowerSpec {
            name: "idle2".into(),
            meter: "wall".into(),
            setting: "lots".into(),
        }),
    ];
    let problems = plan_problems(&policy(""), &measurements);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(
        problems[0].contains("set [inventory] host_label"),
        "{}",
        problems[0]
    );
    assert!(problems[1].contains("(host-power)") && problems[1].contains("host_label"));
    assert!(
        problems[2].contains("needs `nope` to be a host meter"),
        "{}",
        problems[2]
    );
    assert!(
        problems[3].contains("neither \"auto\", \"fit\" nor a number"),
        "{}",
        problems[3]
    );

    // With a host key and the zones' ranges, only the unknown meter and
    // the bad setting remain.
    let configured = policy(
        "[inventory]\nhost_label = \"instance\"\n[rapl]\nmax_energy_range_uj = { package = 262143328850, dram = 65712999613 }\n",
    );
    let problems = plan_problems(&configured, &measurements);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(plan_warnings(&configured, &measurements).is_empty());

    // The local powercap tree: the daemon's, never extract's.
    let local = policy(
        "[inventory]\nhost_label = \"instance\"\n[rapl]\npowercap_root = \"/sys/class/powercap\"\n",
    );
    let problems = plan_problems(&local, &measurements);
    assert!(
        problems[0].contains("no history: only the daemon reads it"),
        "{problems:#?}"
    );

    // Zones without their range are read with C1: a warning, not an error.
    let rangeless = policy(
        "[inventory]\nhost_label = \"instance\"\n[rapl]\nmax_energy_range_uj = { dram = 65712999613 }\n",
    );
    assert_eq!(plan_problems(&rangeless, &measurements).len(), 2);
    let warnings = plan_warnings(&rangeless, &measurements);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("zone(s) package:") && warnings[0].contains("{ package = <value> }"),
        "{}",
        warnings[0]
    );
}

/// A model that asks for GPUs is planned by extract and the daemon alike:
/// without [gpu] its input's `gpus` stays empty and it attributes none.
#[test]
fn a_model_asking_for_gpus_is_planned_with_none() {
    let policy = Policy::parse(Source::new(
        Path::new("p.toml"),
        "[site]\nname = \"S\"\ncompute_service = \"c\"\n[inventory]\nlibvirt_uri = \"test:///default\"\n[model]\nplugin = \"rapl-share\"\n".to_owned(),
    ))
    .unwrap();
    let measurements = [
        Measurement::CpuTime("cpu".into()),
        Measurement::Gpu(crate::runtime::GpuSpec {
            name: "cards".into(),
            max_gap_s: None,
        }),
    ];
    assert_eq!(plan_problems(&policy, &measurements), Vec::<String>::new());
    assert_eq!(
        crate::daemon::plan_problems(&policy, &measurements),
        Vec::<String>::new()
    );
}
