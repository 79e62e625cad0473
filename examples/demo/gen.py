#!/usr/bin/env python3
"""Demo data: OpenMetrics for a few VMs' energy counters, as the libvirt
exporter would have scraped them every 15 s (per-VM phase, jitter, a counter
reset, a VM that starts and one that stops), from FROM to TO.

usage: gen.py OUT.om   (window 2025-06-01T00:00:00Z .. 06:00:00Z)
"""
import random
import sys

T0 = 1748736000  # 2025-06-01T00:00:00Z
T1 = T0 + 6 * 3600
METRIC = "libvirt_domain_info_energy_consumption_joules"

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
    lines.append("# EOF")
    with open(sys.argv[1], "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
