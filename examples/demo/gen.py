#!/usr/bin/env python3
"""Demo data: OpenMetrics for a few VMs' energy counters, as the libvirt
exporter would have scraped them every 15 s (per-VM phase, jitter, a counter
reset, a VM that starts and one that stops), from FROM to TO, with the
exporter's info series (names, projects, flavors), vCPUs and memory; and a
GPU passed through to one VM: DCGM's energy counter (mJ) for the card and
`wattson daemon`'s info series saying which VM holds it.

usage: gen.py OUT.om   (window 2025-06-01T00:00:00Z .. 06:00:00Z)
"""
import random
import sys

T0 = 1748736000  # 2025-06-01T00:00:00Z
T1 = T0 + 6 * 3600
METRIC = "libvirt_domain_info_energy_consumption_joules"

PROJECTS = {
    "a1b2c3d4e5f60718293a4b5c6d7e8f90": "astro-survey",
    "0f9e8d7c6b5a49382716051a2b3c4d5e": "genomics",
    "77777777777777777777777777777777": "ci-runners",
}
# flavor: (name, vcpus, memory MiB)
FLAVORS = [("m1.small", 1, 2048), ("m1.large", 4, 8192), ("m1.tiny", 1, 512),
           ("m1.large", 4, 8192), ("c1.xlarge", 8, 16384), ("m1.small", 1, 2048)]

VMS = [
    # uuid, project_id, domain, watts, start, stop, reset_at
    ("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1001", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "instance-00000101", 42.0, T0, T1, None),
    ("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1002", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "instance-00000102", 118.0, T0, T1, T0 + 4 * 3600 + 1234),
    ("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1003", "0f9e8d7c6b5a49382716051a2b3c4d5e", "instance-00000103", 7.5, T0, T1, None),
    ("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1004", "0f9e8d7c6b5a49382716051a2b3c4d5e", "instance-00000104", 64.0, T0 + 4 * 3600 + 1500, T1, None),
    ("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1005", "77777777777777777777777777777777", "instance-00000105", 180.0, T0, T0 + 4 * 3600 + 2400, None),
    ("5f0c6f0e-2a1b-4c7e-9a0d-1b7e0c9d1006", "77777777777777777777777777777777", "instance-00000106", 25.0, T0, T0 + 3 * 3600, None),
]


def main():
    rng = random.Random(42)
    lines = [f"# TYPE {METRIC} counter"]
    for uuid, project, domain, watts, start, stop, reset_at in VMS:
        phase = rng.uniform(0, 15)
        value = rng.uniform(1e5, 1e6)
        t, last = start + phase, None
        labels = f'uuid="{uuid}",project_id="{project}",domain="{domain}",instance="cmp-01:9177"'
        while t <= stop:
            ts = round(t + rng.uniform(-0.4, 0.4), 3)
            if last is not None:
                joules = (ts - last) * watts * rng.uniform(0.8, 1.2)
                if reset_at is not None and last < reset_at <= ts:
                    value = joules * 0.5
                else:
                    value += joules
            lines.append(f"{METRIC}_total{{{labels}}} {value!r} {ts:.3f}")
            last = ts
            t += 15
    # The libvirt exporter's info series and sizes, scraped alongside.
    gauges = {
        "libvirt_domain_info_meta": lambda i, vm: 1,
        "libvirt_domain_info_virtual_cpus": lambda i, vm: FLAVORS[i][1],
        "libvirt_domain_info_maximum_memory_bytes": lambda i, vm: FLAVORS[i][2] * 1024 * 1024,
    }
    # Disk sizes, one series per device (the first VM has two disks).
    lines.append("# TYPE libvirt_domain_block_stats_capacity_bytes gauge")
    for i, vm in enumerate(VMS):
        uuid, _, _, _, start, stop, _ = vm
        for dev, gib in [("vda", 20 + 10 * (i % 3))] + ([("vdb", 100)] if i == 0 else []):
            t = start
            while t <= stop:
                lines.append(f'libvirt_domain_block_stats_capacity_bytes{{uuid="{uuid}",target_device="{dev}"}} {gib * 2**30} {t:.3f}')
                t += 15
    for family, value_of in gauges.items():
        lines.append(f"# TYPE {family} gauge")
        for i, vm in enumerate(VMS):
            uuid, project, domain, _, start, stop, _ = vm
            labels = f'uuid="{uuid}"'
            if family == "libvirt_domain_info_meta":
                labels += (f',instance_name="{domain}",project_uuid="{project}",'
                           f'project_name="{PROJECTS[project]}",flavor="{FLAVORS[i][0]}",'
                           f'user_name="demo"')
            t = start
            while t <= stop:
                lines.append(f"{family}{{{labels}}} {value_of(i, vm)} {t:.3f}")
                t += 15
    gpu(rng, lines)
    lines.append("# EOF")
    with open(sys.argv[1], "w") as f:
        f.write("\n".join(lines) + "\n")


# The GPU: card 00000000:3B:00.0 on cmp-01, held by this VM all along.
GPU_HOLDER = VMS[1]
GPU_WATTS = 210.0


def gpu(rng, lines):
    """DCGM's energy counter and the holder's info series, every 15 s."""
    bus_id = "00000000:3B:00.0"
    # dcgm-exporter's name has no _total, which OpenMetrics wants of a
    # counter family: written as a gauge family, stored the same.
    lines.append("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION gauge")
    value, last, t = 5.0e8, None, T0 + rng.uniform(0, 15)
    while t <= T1:
        ts = round(t + rng.uniform(-0.4, 0.4), 3)
        if last is not None:
            value += (ts - last) * GPU_WATTS * rng.uniform(0.7, 1.0) * 1000.0
        lines.append(
            'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{instance="cmp-01:9400",gpu="0",'
            f'UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",pci_bus_id="{bus_id}",'
            f'modelName="NVIDIA A100 80GB PCIe"}} {value!r} {ts:.3f}')
        last = ts
        t += 15
    uuid, _, _, _, start, stop, _ = GPU_HOLDER
    lines.append("# TYPE wattson_vm_gpu_info gauge")
    t = start + 5
    while t <= stop:
        lines.append(
            f'wattson_vm_gpu_info{{uuid="{uuid}",host="cmp-01",pci_bus_id="{bus_id}",'
            'gpu_uuid="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",mode="passthrough",'
            f'share="1",profile=""}} 1 {t:.3f}')
        t += 15


if __name__ == "__main__":
    main()
