"""Speed of debug-ports' network survey against plain ``nmap -p- -sV``, in the same run.

Builds its own simulated bench of 8 devices (profiles violating / debug-nonstd /
compliant in turn, subnet 198.18.8.0/24, bridge rigbb0), then times:

1. privrig's TCP survey (all 65535 ports, protocol probes on every open port, ``-sV``
   only where the probes name nothing) of one debug-nonstd device;
2. the same for all 8 devices at once (one survey thread per device);
3. ``nmap -p- -sV -Pn -n -T4`` of that one device, and of the 8 in one nmap run;

and prints wall times with how many debug services each approach *named* (nmap calls
gdbserver ``dbm?`` and an ADB or OpenOCD port by the port table's guess, which privrig
never counts). Needs root and the packages scripts/setup installs. Not a test: the
figures depend on the machine; the ratio against nmap in the same run is what to read.

    .venv/bin/python benchmarks/scan.py [--devices 8] [--skip-nmap]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.portscan import OpenPort  # noqa: E402
from rig.config import parse_config  # noqa: E402
from rig.sim.bench import SimBench  # noqa: E402
from scenarios.debug_ports import NMAP_DEBUG_SERVICES, survey_tcp  # noqa: E402

PROFILES = ("debug-nonstd", "violating", "compliant")


def bench_config(n: int) -> str:
    lines = ["version: 1", "bench: {name: scan-benchmark}", "simulator:", "  subnet: 198.18.8.0/24", "  bridge: rigbb0",
             "  state_dir: /run/privrig/sim-bench8", "  devices:"]
    lines += [f"    bm-{i}: {{profile: {PROFILES[i % len(PROFILES)]}}}" for i in range(n)]
    lines.append("devices:")
    for i in range(n):
        lines += [f"  bm-{i}:", "    privacy_level: 2", "    network:", f"      address: 198.18.8.{10 + i}", "      open_ports: [22/tcp]"]
    return "\n".join(lines) + "\n"


def privrig_named(address: str) -> tuple[float, int]:
    t0 = time.monotonic()
    survey = survey_tcp(address)
    dur = time.monotonic() - t0
    named = sum(1 for op in survey.ports if survey.probes[op.port].debug or op.identified in NMAP_DEBUG_SERVICES)
    return dur, named


def nmap_named(addresses: list[str]) -> tuple[float, int]:
    t0 = time.monotonic()
    proc = subprocess.run(["nmap", "-p-", "-sV", "-Pn", "-n", "-T4", "-oX", "-", *addresses], capture_output=True, timeout=3600)
    dur = time.monotonic() - t0
    named = 0
    for port in ET.fromstring(proc.stdout).iter("port"):
        svc = port.find("service")
        if svc is not None and OpenPort(0, "tcp", svc.get("name", ""), method=svc.get("method", "")).identified in NMAP_DEBUG_SERVICES:
            named += 1
    return dur, named


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=8)
    ap.add_argument("--skip-nmap", action="store_true", help="only privrig's figures (the nmap baseline takes minutes)")
    args = ap.parse_args()
    cfg = parse_config(bench_config(args.devices), Path(tempfile.gettempdir()) / "scan-benchmark.yaml")
    bench = SimBench(cfg)
    bench.down(log=lambda *_: None)
    bench.up(log=lambda *_: None)
    try:
        addresses = [str(d.network.address) for d in cfg.bench.devices.values()]  # type: ignore[union-attr]
        one = addresses[0]  # a debug-nonstd device: 8 debug services on non-standard ports
        rows = []
        d, n = privrig_named(one)
        rows.append(("privrig survey, 1 device", d, n))
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
            results = list(pool.map(privrig_named, addresses))
        rows.append((f"privrig survey, {len(addresses)} devices at once", time.monotonic() - t0, sum(r[1] for r in results)))
        if not args.skip_nmap:
            rows.append(("nmap -p- -sV, 1 device", *nmap_named([one])))
            rows.append((f"nmap -p- -sV, {len(addresses)} devices", *nmap_named(addresses)))
        print(f"{'what':40} {'wall s':>8} {'debug services named':>22}")
        for what, dur, named in rows:
            print(f"{what:40} {dur:8.1f} {named:22d}")
        if not args.skip_nmap:
            print(f"speed-up vs nmap: 1 device {rows[2][1] / rows[0][1]:.1f}x, {len(addresses)} devices {rows[3][1] / rows[1][1]:.1f}x")
    finally:
        bench.down(log=lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
