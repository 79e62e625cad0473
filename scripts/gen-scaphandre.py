#!/usr/bin/env python3
"""Data for the per-VM gauge benchmark (scripts/bench-scaphandre.sh), and
ENERGY.md's answer on it.

Writes OpenMetrics for N VMs on HOSTS hypervisors over [FROM - 10 min,
TO + 10 min], scraped every STEP s with +-0.4 s jitter and a per-series phase:

* Scaphandre's scaph_process_power_consumption_microwatts{exe, vmname,
  instance=<host>:8080} per VM (whole microwatts, a daily swing and noise)
  and scaph_host_power_microwatts per host;
* the libvirt exporter's libvirt_domain_info_meta{domain, uuid, project_id,
  instance=<host>:9177} = 1, which maps vmname to uuid;
* 5 % of VMs start inside the window, 5 % stop, 2 % have a 10-minute gap in
  their power series (not bridged: G1's max_gap is 300 s);

and the ground truth {uuid: joules}: G1 of each VM's power series over
exactly [FROM, TO] (trapezoids, edges interpolated, gaps > 300 s not
bridged) / 1e6, from the values written.
"""

import argparse
import json
import math
import random
import uuid as uuidlib

MAX_GAP_MS = 300_000


def g1(samples, start, end):
    """G1 of ENERGY.md over [start, end] (ms): the integral in value x s."""
    total = 0.0
    for (t0, v0), (t1, v1) in zip(samples, samples[1:]):
        if t1 - t0 > MAX_GAP_MS or t1 <= start or t0 >= end:
            continue
        a, b = max(t0, start), min(t1, end)
        at = lambda x: v0 + (v1 - v0) * (x - t0) / (t1 - t0)
        total += (at(a) + at(b)) / 2 * (b - a) / 1000
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-vms", type=int, required=True)
    ap.add_argument("--hosts", type=int, default=500)
    ap.add_argument("--from", dest="t_from", type=int, required=True, help="epoch s")
    ap.add_argument("--to", dest="t_to", type=int, required=True, help="epoch s")
    ap.add_argument("--step", type=int, default=30)
    ap.add_argument("--out", required=True)
    ap.add_argument("--truth", required=True)
    a = ap.parse_args()
    start, end = a.t_from * 1000, a.t_to * 1000
    lo, hi = start - 600_000, end + 600_000
    step = a.step * 1000
    rng = random.Random("wattson-scaphandre")
    projects = [uuidlib.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(20)]

    def times(rng, first, last):
        t = first + int(rng.random() * step)
        while t <= last:
            yield t + int((rng.random() - 0.5) * 800)
            t += step

    truth = {}
    power, meta = [], []
    for i in range(a.n_vms):
        vm = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        host = f"cmp-{i % a.hosts:04d}"
        domain = f"instance-{i:08x}"
        first, last = lo, hi
        kind = rng.random()
        if kind < 0.05:
            first = start + int(rng.random() * (end - start))
        elif kind < 0.10:
            last = start + int(rng.random() * (end - start))
        gap = None
        if 0.10 <= kind < 0.12:
            g = start + int(rng.random() * (end - start - 600_000))
            gap = (g, g + 600_000)
        base = rng.uniform(5e6, 200e6)
        phase = rng.uniform(0, 2 * math.pi)
        samples = []
        for t in times(rng, first, last):
            if gap and gap[0] <= t < gap[1]:
                continue
            p = base * (1 + 0.3 * math.sin(2 * math.pi * t / 86_400_000 + phase)
                        + 0.05 * (2 * rng.random() - 1))
            samples.append((t, float(max(round(p), 0))))
        power.append((f'exe="qemu-system-x86_64",instance="{host}:8080",vmname="{domain}"', samples))
        meta.append((f'domain="{domain}",instance="{host}:9177",project_id="{projects[i % 20]}",uuid="{vm}"',
                     list(times(rng, first, last))))
        if len(samples) > 1:
            truth[vm] = g1(samples, start, end) / 1e6

    with open(a.out, "w", buffering=1 << 20) as fo:
        fo.write("# TYPE scaph_process_power_consumption_microwatts gauge\n")
        for labels, samples in power:
            fo.write("".join(f"scaph_process_power_consumption_microwatts{{{labels}}} {v} {t / 1000:.3f}\n"
                             for t, v in samples))
        fo.write("# TYPE scaph_host_power_microwatts gauge\n")
        # The host's own 100 W and about 150 W for each VM on it.
        host_w = 100e6 + 150e6 * a.n_vms / a.hosts
        for h in range(a.hosts):
            fo.write("".join(f'scaph_host_power_microwatts{{instance="cmp-{h:04d}:8080"}} '
                             f"{host_w * (0.95 + 0.1 * rng.random()):.0f} {t / 1000:.3f}\n"
                             for t in times(rng, lo, hi)))
        fo.write("# TYPE libvirt_domain_info_meta gauge\n")
        for labels, ts in meta:
            fo.write("".join(f"libvirt_domain_info_meta{{{labels}}} 1 {t / 1000:.3f}\n" for t in ts))
        fo.write("# EOF\n")
    with open(a.truth, "w") as f:
        json.dump(truth, f)


if __name__ == "__main__":
    main()
