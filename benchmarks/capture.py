"""Speed of channel-encryption's two halves, each against a baseline in the same run.

1. **Analysis**: writes a capture of at least 500 MB (long streams, ~12 MB each, of every
   labelled kind of :mod:`rig.sim.traffic`: MJPEG over HTTP and TLS, clear RTP and SRTP
   H.264, XOR-scrambled and AES-GCM UDP, H.264 and JSON over TCP, plus five short flows
   of each kind per long one), then times privrig's
   ``analyse_capture`` (read, reassemble, judge every flow) and scapy's ``rdpcap``
   (read and dissect only) on the same file, with peak memory of each (measured in a
   child process each). Target: privrig 20x faster or more.
2. **Capture**: a veth pair (198.18.250.0/30, namespace ``rig-bench-cap``); a sender in
   the namespace paces UDP at 200 Mbit/s for a few seconds while privrig's tcpdump
   capture runs on the host end; prints packets sent, captured, and tcpdump's drop
   counters. Target: none lost. Needs root.

    .venv/bin/python benchmarks/capture.py [--mb 520] [--rate-mbit 200] [--seconds 5] [--skip-scapy] [--skip-capture]

Not a test: the figures depend on the machine; read the ratios.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rig.sim import traffic  # noqa: E402
from rig.sim.net import check_subnet_free, ip, link_exists, netns_exists  # noqa: E402

NS, VETH, PEER = "rig-bench-cap", "rigbcap0", "rigbcap1"
SUBNET = ipaddress.IPv4Network("198.18.250.0/30")
HOST, DEV = "198.18.250.1", "198.18.250.2"


def write_big_pcap(path: Path, target_mb: int, cache: Path) -> tuple[int, int, int]:
    """What a bench capture of cameras looks like: long streams of every kind (minutes of
    video each, ~12 MB) and, between them, short flows of every kind, until ``target_mb``."""
    long = traffic.Generator(cache, seed=2, scale=400.0)
    short = traffic.Generator(cache, seed=3, scale=1.0)
    flows = 0
    with path.open("wb") as fh:
        w = traffic.PcapWriter(fh)
        i = 0
        while w.bytes < target_mb << 20:
            for kind in traffic.KINDS.values():
                kind.make(long, w, i)
                for j in range(5):
                    kind.make(short, w, i * 5 + j)
                flows += 6
            i += 1
        return w.packets, w.bytes, flows


def measure(code: str) -> dict:
    """Run ``code`` in a child interpreter; it prints JSON; add wall time and peak RSS."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=3600)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = round(wall, 2)
    return out


PRIVRIG = """
import json, resource, sys, time
sys.path.insert(0, '.')
from rig.traffic.flows import read_flows
from rig.traffic.verdict import judge
t = time.monotonic(); cap = read_flows({path!r}); r = time.monotonic() - t
reports = [judge(f) for f in cap.flows]; d = time.monotonic() - t
counts = {{}}
for f in reports: counts[f.channel.value] = counts.get(f.channel.value, 0) + 1
print(json.dumps({{"seconds": round(d, 2), "read_s": round(r, 2), "packets": cap.packets, "flows": len(reports), "verdicts": counts,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}}))
"""

SCAPY = """
import json, resource, time
from scapy.utils import rdpcap
t = time.monotonic(); pkts = rdpcap({path!r}); d = time.monotonic() - t
print(json.dumps({{"seconds": round(d, 2), "packets": len(pkts), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}}))
"""

SENDER = """
import socket, sys, time
rate, seconds, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
pps = rate * 1e6 / 8 / (size + 42)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
payload = bytes(size)
sent, t0 = 0, time.monotonic()
while True:
    now = time.monotonic() - t0
    if now >= seconds:
        break
    due = int(now * pps) + 1
    while sent < due:
        s.sendto(payload, (sys.argv[4], 9999))
        sent += 1
    time.sleep(0.0005)
print(sent, round(time.monotonic() - t0, 3))
"""


def analysis_benchmark(mb: int, skip_scapy: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="privrig-bench-") as tmp:
        pcap = Path(tmp) / "big.pcap"
        t0 = time.monotonic()
        packets, size, flows = write_big_pcap(pcap, mb, Path(tmp) / "media")
        print(f"capture file: {size / 1e6:.0f} MB, {packets} packets, {flows} flows (written in {time.monotonic() - t0:.1f} s)")
        ours = measure(PRIVRIG.format(path=str(pcap)))
        print(f"privrig read + judge: {ours['seconds']:.1f} s (read and reassemble {ours['read_s']:.1f} s, judge {ours['seconds'] - ours['read_s']:.1f} s; "
              f"{size / 1e6 / ours['seconds']:.0f} MB/s, {ours['packets'] / ours['seconds'] / 1e3:.0f} kpkt/s), "
              f"{ours['flows']} flows judged {ours['verdicts']}, peak RSS {ours['peak_rss_mb']} MB (the file is mmapped: its pages count)")
        if not skip_scapy:
            theirs = measure(SCAPY.format(path=str(pcap)))
            print(f"scapy rdpcap (read only): {theirs['seconds']:.1f} s ({size / 1e6 / theirs['seconds']:.1f} MB/s), peak RSS {theirs['peak_rss_mb']} MB")
            print(f"=> privrig is {theirs['seconds'] / ours['seconds']:.1f}x faster than rdpcap on the same file (target >= 20x)")


def capture_benchmark(rate: float, seconds: float) -> None:
    from drivers.capture import PacketCapture

    if os.geteuid() != 0:
        print("capture benchmark: needs root (skipped)")
        return
    if netns_exists(NS) or link_exists(VETH):
        raise SystemExit(f"{NS} or {VETH} exists: a previous run was interrupted; remove them (ip netns del {NS})")
    check_subnet_free(SUBNET)
    try:
        ip("netns", "add", NS)
        ip("link", "add", VETH, "type", "veth", "peer", "name", PEER)
        ip("link", "set", PEER, "netns", NS)
        ip("addr", "add", f"{HOST}/30", "dev", VETH)
        ip("link", "set", VETH, "up")
        ip("addr", "add", f"{DEV}/30", "dev", PEER, netns=NS)
        ip("link", "set", PEER, "up", netns=NS)
        ip("link", "set", "lo", "up", netns=NS)
        with tempfile.TemporaryDirectory(prefix="privrig-cap-") as tmp:
            pcap = Path(tmp) / "c.pcap"
            with pcap.open("wb") as out:
                cap = PacketCapture(VETH, ipaddress.ip_address(DEV), out, max_bytes=4 << 30)
                cap.start()
                proc = subprocess.run(["ip", "netns", "exec", NS, sys.executable, "-c", SENDER, str(rate), str(seconds), "1400", HOST],
                                      capture_output=True, text=True, timeout=seconds + 60)
                time.sleep(1.0)
                stats = cap.stop()
            sent, took = proc.stdout.split()
            sent_n = int(sent)
            from rig.traffic.flows import read_flows

            got = sum(f.up.packets for f in read_flows(pcap).flows if f.proto == "udp" and f.server == (HOST, 9999))
            achieved = sent_n * (1400 + 42) * 8 / float(took) / 1e6
            print(f"capture at {achieved:.0f} Mbit/s for {took} s: sent {sent_n} packets; in the pcap {got} of them "
                  f"(tcpdump: {stats.captured} captured in all, {stats.dropped_kernel} dropped by the kernel, {stats.dropped_interface or 0} by the interface); "
                  f"lost {sent_n - got} ({(sent_n - got) / sent_n:.3%}; target 0)")
    finally:
        if netns_exists(NS):
            ip("netns", "del", NS, check=False)
        if link_exists(VETH):
            ip("link", "del", VETH, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=520)
    ap.add_argument("--rate-mbit", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--skip-scapy", action="store_true")
    ap.add_argument("--skip-capture", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; peak RSS of this process so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    analysis_benchmark(args.mb, args.skip_scapy)
    if not args.skip_capture:
        capture_benchmark(args.rate_mbit, args.seconds)


if __name__ == "__main__":
    main()
