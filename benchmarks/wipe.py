"""Speed and link cost of uninstall-wipe's residue search, against pulling the data, in the same run.

Builds its own one-device simulated bench (profile compliant, subnet 198.18.9.0/24, bridge
rigbw0), fills the device's ``/data/bulk`` with ``--files`` files (default 100,000; sizes
64 B to 4 KiB, a few holding a canary token), then times over the device's real sshd:

1. privrig's residue search: a listing with sizes and SHA-256 of every file
   (:meth:`DeviceStorage.snapshot`, gzipped on the device) plus the canary search in names
   and contents (:meth:`DeviceStorage.find_token`): wall time and bytes moved over SSH;
2. the baseline a lab might script instead: ``tar cf - /data`` over the same SSH session
   and the same checks done on the bench host (hash every file, search every file): wall
   time and bytes moved.

Needs root and the packages scripts/setup installs. Not a test: the figures depend on the
machine; read the ratios.

    .venv/bin/python benchmarks/wipe.py [--files 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.ssh import SshDriver  # noqa: E402
from drivers.storage import DeviceStorage  # noqa: E402
from drivers.transcript import Transcript  # noqa: E402
from rig.config import parse_config  # noqa: E402
from rig.sim.bench import SimBench  # noqa: E402

TOKEN = "privrig-benchmark0123456789"
CONFIG = """version: 1
bench: {name: wipe-benchmark}
simulator:
  subnet: 198.18.9.0/24
  bridge: rigbw0
  state_dir: /run/privrig/sim-wipe
  devices:
    bw-0: {profile: compliant}
devices:
  bw-0:
    privacy_level: 2
    network: {address: 198.18.9.10, open_ports: [22/tcp]}
    ssh: {host: 198.18.9.10, user: root, key_file: /run/privrig/sim-wipe/id_ed25519, known_hosts: /run/privrig/sim-wipe/known_hosts, command_timeout_s: 1800}
"""


def fill(root: Path, n: int, seed: int = 1) -> int:
    """``n`` files in 100 folders under ``root``; every 10,000th holds the token; returns bytes written."""
    rng = random.Random(seed)
    total = 0
    for i in range(n):
        d = root / f"dir{i % 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(64, 4096)
        data = rng.randbytes(size)
        if i % 10_000 == 0:
            data = data[: size // 2] + TOKEN.encode() + data[size // 2:]
        (d / f"event-{i:06d}.bin").write_bytes(data)
        total += len(data)
    return total


def pulled(ssh: SshDriver, path: str) -> tuple[float, int, int, int]:
    """tar the folder over SSH and do the same checks on the host: (seconds, bytes, files, token hits)."""
    t0 = time.monotonic()
    res = ssh.run(f"tar cf - {path}", timeout=1800, max_output=4 << 30, record_stdout=False)
    files = hits = 0
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        for m in tar:
            if m.isfile():
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                hashlib.sha256(data).hexdigest()
                files += 1
                hits += TOKEN.encode() in data
    return time.monotonic() - t0, len(res.stdout), files, hits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    args = ap.parse_args()
    cfg = parse_config(CONFIG, Path(tempfile.gettempdir()) / "wipe-benchmark.yaml")
    bench = SimBench(cfg)
    bench.down(log=lambda *_: None)
    bench.up(log=lambda *_: None)
    try:
        t0 = time.monotonic()
        written = fill(Path("/run/privrig/sim-wipe/bw-0/rootfs/data/bulk"), args.files)
        print(f"device filled: {args.files} files, {written / 1e6:.1f} MB in {time.monotonic() - t0:.1f} s")
        dev = cfg.bench.devices["bw-0"]
        with SshDriver(dev.ssh, Transcript(None), "bw-0") as ssh:  # type: ignore[arg-type]
            st = DeviceStorage(ssh, timeout_s=1800, max_files=args.files + 1000)
            t0 = time.monotonic()
            listing = st.snapshot(["/data"])
            t_list = time.monotonic() - t0
            hits = st.find_token(["/data"], TOKEN)
            t_all = time.monotonic() - t0
            moved = st.bytes_moved
            t_tar, b_tar, f_tar, h_tar = pulled(ssh, "/data")
        print(f"{'what':52} {'wall s':>8} {'MB over SSH':>12} {'files':>8} {'token hits':>11}")
        print(f"{'privrig listing (size + SHA-256, gzip on device)':52} {t_list:8.1f} {'':>12} {len(listing.files):8d}")
        print(f"{'privrig residue search (listing + canary search)':52} {t_all:8.1f} {moved / 1e6:12.2f} {len(listing.files):8d} {len(hits.contents):11d}")
        print(f"{'baseline: tar over SSH, hash and search on the host':52} {t_tar:8.1f} {b_tar / 1e6:12.2f} {f_tar:8d} {h_tar:11d}")
        print(f"privrig moves {b_tar / max(moved, 1):.1f}x fewer bytes, in {t_all / t_tar:.2f}x the baseline's time")
    finally:
        bench.down(log=lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
