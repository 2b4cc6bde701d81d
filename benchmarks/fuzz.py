"""A longer fuzz campaign over privrig's untrusted inputs than the test suite affords.

    .venv/bin/python benchmarks/fuzz.py [--cases N] [--seed S] [--seconds-per-case T]

Configs (the shipped sim bench and the corpus's good.yaml, mutated), action templates
(random format strings), captures (the labelled traffic's pcaps and a pcapng, mutated),
bundles (a sealed bundle, damaged one way per case) and device answers (a camera's HTTP,
RTSP, telnet and SSH answers mutated and served on loopback to the rig's clients; a
twentieth of --cases, each talks to a server). Prints, per input kind, the cases tried,
the crashes (an exception other than the documented refusal, a damaged bundle that
verified, a raw escape in what a driver returned), the hangs (a case over --seconds-per-case), with the first few failing cases;
exits 1 if any. Each case runs in this process under an alarm, so a hang is caught, not waited on.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PRIVRIG_HOME", tempfile.mkdtemp(prefix="privrig-fuzz-home-"))

from rig import fuzz  # noqa: E402


class Hang(Exception):
    pass


def _alarm(*_: object) -> None:
    raise Hang()


def _capture_seeds(tmp: Path) -> list[bytes]:
    """Real captures: a few labelled flows written to pcap, and the same as pcapng."""
    from scapy.utils import PcapNgWriter, rdpcap, wrpcap
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    pkts = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="198.18.0.1", dst="198.18.0.10") / TCP(sport=40000, dport=8080, flags="S"),
            Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src="198.18.0.10", dst="198.18.0.1") / TCP(sport=8080, dport=40000, flags="SA"),
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="198.18.0.1", dst="198.18.0.10") / TCP(sport=40000, dport=8080, flags="PA") / b"GET / HTTP/1.1\r\n\r\n",
            Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(src="198.18.0.10", dst="198.18.0.1") / UDP(sport=5004, dport=5004) / (b"\x80\x60" + os.urandom(300))]
    wrpcap(str(tmp / "a.pcap"), pkts)
    w = PcapNgWriter(str(tmp / "a.pcapng"))
    for p in rdpcap(str(tmp / "a.pcap")):
        w.write(p)
    w.close()
    return [(tmp / "a.pcap").read_bytes(), (tmp / "a.pcapng").read_bytes()]


def _bundle(tmp: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from rig.signing import BenchKey
    from tests.rig.test_evidence import make_bundle

    return make_bundle(tmp / "src", BenchKey.load_or_create())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2000, help="cases per input kind")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds-per-case", type=float, default=15.0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    signal.signal(signal.SIGALRM, _alarm)
    tmp = Path(tempfile.mkdtemp(prefix="privrig-fuzz-"))
    shutil.copytree(ROOT / "hil_config/credentials", tmp / "credentials")  # the files the shipped bench names beside it
    configs = [(ROOT / "hil_config/sim-bench.yaml").read_bytes(), (ROOT / "tests/corpus/config/good.yaml").read_bytes()]
    captures = _capture_seeds(tmp)
    bundle = _bundle(tmp)
    alphabet = "{}!:>.[]0123456789abcdetokn_sikhpmlr x"
    kinds = {
        "config": lambda i: fuzz.check_config(fuzz.mutate(rng.choice(configs), rng, rng.randint(1, 8)), tmp / "bench.yaml"),
        "template": lambda i: fuzz.check_template("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))),
        "capture": lambda i: fuzz.check_capture(fuzz.mutate(rng.choice(captures), rng, rng.randint(1, 8)), tmp / f"c{i % 2}.pcap"),
        "bundle": lambda i: fuzz.check_bundle(tmp / f"b{i}", fuzz.tamper_bundle(bundle, tmp / f"b{i}", rng)),
        # device side: a camera's genuine answers (HTTP, RTSP, telnet, SSH), mutated, served on
        # loopback to the rig's own clients (MJPEG grabber, RTSP client, probes, login naming)
        "device": lambda i: (lambda proto: fuzz.check_device_answer(
            proto, fuzz.mutate(rng.choice(fuzz.DEVICE_SEEDS[proto]), rng, rng.randint(1, 8))))(rng.choice(sorted(fuzz.DEVICE_SEEDS))),
    }
    budget = {"device": max(1, args.cases // 20)}  # each device case talks to a server: ~2 s, so a twentieth of the cases
    bad = 0
    import tracemalloc

    print(f"{'input':10} {'cases':>7} {'crashes':>8} {'hangs':>6} {'s':>7} {'peak MiB':>9}")
    for name, case in kinds.items():
        crashes, hangs = [], []
        t0 = time.monotonic()
        cases = budget.get(name, args.cases)
        tracemalloc.start()
        for i in range(cases):
            signal.setitimer(signal.ITIMER_REAL, args.seconds_per_case)
            try:
                problem = case(i)
            except Hang:
                hangs.append(f"case {i}")
                problem = None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if problem:
                crashes.append(f"case {i}: {problem}")
            if name == "bundle":
                shutil.rmtree(tmp / f"b{i}", ignore_errors=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{name:10} {cases:>7} {len(crashes):>8} {len(hangs):>6} {time.monotonic() - t0:>7.1f} {peak / 2**20:>9.1f}")
        for c in (crashes + hangs)[:5]:
            print(f"    {c}")
        bad += len(crashes) + len(hangs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
