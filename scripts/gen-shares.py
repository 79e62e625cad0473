#!/usr/bin/env python3
"""Data for the rapl-share benchmark, and ENERGY.md's answer on it.

Writes OpenMetrics for HOSTS hypervisors and N VMs over [FROM - 10 min,
TO + 10 min], scraped every STEP s with +-0.4 s jitter and a per-series phase:

* node_exporter's node_rapl_{package,dram}_joules_total, two sockets per
  host, wrapping at max_energy_range_uj (every 40-70 minutes for a package);
* the libvirt exporter's libvirt_domain_info_cpu_time_seconds_total{uuid} and
  libvirt_domain_info_virtual_cpus{uuid}, labelled instance=<host>:9177;
  5 % of VMs start inside the window, 5 % stop, 2 % live-migrate to another
  host (a new counter from 0 there).

and the ground truth {uuid: joules} of `rapl-share` with idle = "vcpus" and a
fixed idle power IDLE_W, from the definitions of ENERGY.md (C1w of the zones,
C1 of the CPU time per placement, its span as presence) applied to exactly
the values written.
"""

import argparse
import json
import random

PACKAGE_RANGE_UJ = 262143328850
DRAM_RANGE_UJ = 65712999613


def series(rng, t_from, t_to, step, initial, rate, wrap):
    """Samples (t_ms, value) of a counter growing at rate/s (+-10 % noise)."""
    out = []
    t = t_from + int(rng.random() * step * 1000)
    value, last = initial, None
    while t <= t_to:
        ts = t + int((rng.random() - 0.5) * 800)
        if last is not None:
            value += (ts - last) / 1000 * rate * (0.9 + 0.2 * rng.random())
            if wrap:
                value %= wrap
        value = round(value, 6)
        out.append((ts, value))
        last = ts
        t += step * 1000
    return out


def c1(samples, start, end, wrap=None):
    """C1 (C1w with wrap) of ENERGY.md: (increase, span s) or None if absent."""
    base = None
    used = []
    for t, v in samples:
        if t <= start:
            base = (t, v)
        elif t <= end:
            used.append((t, v))
    if not used:
        return None
    if base is not None:
        used.insert(0, base)
    inc = 0.0
    for (_, p), (_, c) in zip(used, used[1:]):
        inc += c - p if c >= p else (c + wrap - p if wrap else c)
    return inc, (used[-1][0] - used[0][0]) / 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-vms", type=int, required=True)
    ap.add_argument("--hosts", type=int, required=True)
    ap.add_argument("--from", dest="t_from", type=int, required=True, help="epoch s")
    ap.add_argument("--to", dest="t_to", type=int, required=True, help="epoch s")
    ap.add_argument("--step", type=int, default=60)
    ap.add_argument("--idle-w", type=float, default=80.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--truth", required=True)
    a = ap.parse_args()
    rng = random.Random(20261130)
    start, end = a.t_from * 1000, a.t_to * 1000
    lo, hi = start - 600_000, end + 600_000
    hosts = [f"cmp-{h:04d}" for h in range(a.hosts)]

    package, dram, energy, span = [], [], {}, {}
    for host in hosts:
        e_h, s_h = 0.0, 0.0
        for socket in range(2):
            for kind, out, watts, wrap in (
                ("package", package, 60 + 80 * rng.random(), PACKAGE_RANGE_UJ / 1e6),
                ("dram", dram, 5 + 5 * rng.random(), DRAM_RANGE_UJ / 1e6),
            ):
                s = series(rng, lo, hi, a.step, rng.random() * wrap, watts, wrap)
                path = f"intel-rapl:{socket}" + (":0" if kind == "dram" else "")
                labels = f'index="{socket}",instance="{host}:9100",path="/sys/class/powercap/{path}"'
                out.append((labels, s))
                inc, sp = c1(s, start, end, wrap)
                e_h += inc
                s_h = max(s_h, sp)
        energy[host], span[host] = e_h, s_h

    cpu, vcpus, placements = [], [], []
    for i in range(a.n_vms):
        uuid = f"5f0c6f0e-2a1b-4c7e-9a0d-{i:012x}"
        host = hosts[i % len(hosts)]
        n_vcpus = rng.choice((1, 2, 4, 8))
        rate = n_vcpus * (0.05 + 0.85 * rng.random())
        kind = rng.random()
        lives = [(host, lo, hi)]
        if kind < 0.05:  # starts inside the window
            lives = [(host, start + int(rng.random() * (end - start) * 0.9), hi)]
        elif kind < 0.10:  # stops inside the window
            lives = [(host, lo, start + int(rng.random() * (end - start) * 0.9))]
        elif kind < 0.12:  # migrates
            at = start + int((0.2 + 0.6 * rng.random()) * (end - start))
            other = hosts[(i + 7) % len(hosts)]
            lives = [(host, lo, at), (other, at + 10_000, hi)]
        for n, (h, t0, t1) in enumerate(lives):
            labels = f'instance="{h}:9177",uuid="{uuid}"'
            s = series(rng, t0, t1, a.step, 0.0 if n else 1000 * rng.random(), rate, None)
            cpu.append((labels, s))
            vcpus.append((labels, [(t, float(n_vcpus)) for t, _ in s]))
            measured = c1(s, start, end)
            if measured:
                placements.append((uuid, h, measured[0], measured[1], n_vcpus))

    # rapl-share, idle = "vcpus", idle_power = IDLE_W for every host.
    on_host = {}
    for p in placements:
        on_host.setdefault(p[1], []).append(p)
    truth = {}
    for host, ps in on_host.items():
        e_h, i_h = energy[host], min(a.idle_w * span[host], energy[host])
        c_h = sum(p[2] for p in ps)
        w_h = sum(p[3] * p[4] for p in ps)
        for uuid, _, cpu_s, presence, n in ps:
            share = (e_h - i_h) * cpu_s / c_h if c_h > 0 else 0.0
            share += i_h * n * presence / w_h if w_h > 0 else 0.0
            truth[uuid] = truth.get(uuid, 0.0) + share

    with open(a.out, "w") as f:
        for family, kind, items in (
            ("node_rapl_package_joules", "counter", package),
            ("node_rapl_dram_joules", "counter", dram),
            ("libvirt_domain_info_cpu_time_seconds", "counter", cpu),
            ("libvirt_domain_info_virtual_cpus", "gauge", vcpus),
        ):
            f.write(f"# TYPE {family} {kind}\n")
            name = family + ("_total" if kind == "counter" else "")
            for labels, samples in items:
                for t, v in samples:
                    f.write(f"{name}{{{labels}}} {v!r} {t / 1000:.3f}\n")
        f.write("# EOF\n")
    with open(a.truth, "w") as f:
        json.dump(truth, f)
    print(f"series={len(package) + len(dram) + 2 * len(cpu)} placements={len(placements)} vms={len(truth)}")


if __name__ == "__main__":
    main()
