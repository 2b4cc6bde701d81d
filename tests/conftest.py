"""Shared fixtures: an isolated bench key, the CI rule for missing components, the simulated bench.

Under ``CI=true`` a test whose real component (root, nmap, sshd, busybox, ...) is
missing *fails*; elsewhere it is skipped with the reason, so a developer without root
can still run the unit tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIM_CONFIG = ROOT / "hil_config" / "sim-bench.yaml"
RIG = [sys.executable, "-m", "rig.cli"]

# Every test run signs with its own throwaway bench key, never the user's.
os.environ.setdefault("PRIVRIG_HOME", tempfile.mkdtemp(prefix="privrig-test-home-"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, what: str) -> None:
    """Fail (under CI=true) or skip (elsewhere) unless ``condition`` holds."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required component missing under CI=true: {what}", pytrace=False)
    pytest.skip(f"needs {what}")


def need_root() -> None:
    need(os.geteuid() == 0, "root (network namespaces, chroot, raw sockets)")


def need_tools(*tools: str) -> None:
    for t in tools:
        need(shutil.which(t) is not None or Path(t).exists(), f"{t} installed (scripts/setup installs it)")


BENCH_TOOLS = ("nmap", "tcpdump", "ffmpeg", "/usr/sbin/vsftpd", "qemu-system-arm", "/usr/lib/u-boot/qemu_arm/u-boot.bin", "openocd", "/usr/sbin/snmpd", "/usr/sbin/in.tftpd", "/usr/sbin/sshd", "ssh-keygen", "busybox", "gdbserver", "ip", "openssl", "unshare")


def rig(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    """Run the ``rig`` command line as a user would, in a subprocess."""
    return subprocess.run(RIG + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


@pytest.fixture(scope="session")
def sim_bench():
    """The shipped simulated bench (hil_config/sim-bench.yaml), up for the session.

    Any bench left over (a demo, a killed test run) is taken down first; the fixture
    takes its own bench down at the end, leaving no namespace, mount or process.
    """
    need_root()
    need_tools(*BENCH_TOOLS)
    from rig.config import load_config
    from rig.sim.bench import SimBench

    bench = SimBench(load_config(SIM_CONFIG))
    bench.down(log=lambda *_: None)
    state = bench.up(log=lambda *_: None)
    try:
        yield state
    finally:
        bench.down(log=lambda *_: None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(id): the standard clause a test exercises")


@pytest.fixture(scope="session")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the ffmpeg H.264 clip and TLS material the labelled traffic reuses."""
    need_tools("ffmpeg")
    return tmp_path_factory.mktemp("media")
