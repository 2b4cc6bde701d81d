"""Shared fixtures: an isolated bench key, the CI rule for missing components, the simulated bench.

Under ``CI=true`` a test whose real component (root, nmap, sshd, busybox, ...) is
missing *fails*; elsewhere it is skipped with the reason, so a developer without root
can still run the unit tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from rig.results import RunRecord

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


@pytest.fixture(scope="session")
def run_all(sim_bench: dict, tmp_path_factory: pytest.TempPathFactory):
    """``rig run`` of every scenario on every device of the shipped bench, once per test session, as
    a technician runs it: (process result, bundle path). The integration tests read it whole; the
    scenario tests read their scenario's part of it (:func:`scenario_run`) instead of a run of their own."""
    out = tmp_path_factory.mktemp("evidence")
    res = rig("run", "-c", str(SIM_CONFIG), "--out", str(out))
    return res, Path(res.stdout.strip().splitlines()[-1])


@dataclass
class ScenarioRun:
    """One scenario's results on each device of the shared run (:func:`run_all`), and its bundle."""

    record: "RunRecord"
    bundle: Path

    def of(self, device: str):  # -> ScenarioResult
        """The scenario's result on ``device`` (exactly one, or the test fails)."""
        [dev] = [d for d in self.record.devices if d.name == device]
        [sc] = dev.scenarios
        return sc


def scenario_run(run_all, scenario: str, devices: list[str] | None = None) -> ScenarioRun:
    """The shared run's results of ``scenario`` only (on ``devices``, or on every device), as typed
    records: each device keeps just that scenario. The document is checked against the contract."""
    import json

    from rig.results import record_from_dict, validate_results

    _, bundle = run_all
    doc = json.loads((bundle / "results.json").read_text())
    validate_results(doc)
    rec = record_from_dict(doc)
    rec.devices = [d for d in rec.devices if devices is None or d.name in devices]
    for d in rec.devices:
        d.scenarios = [s for s in d.scenarios if s.id == scenario]
    return ScenarioRun(rec, bundle)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(id): the standard clause a test exercises")


@pytest.fixture(scope="session")
def media_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the ffmpeg H.264 clip and TLS material the labelled traffic reuses."""
    need_tools("ffmpeg")
    return tmp_path_factory.mktemp("media")


def run_scenario(tmp: Path, device: str, scenario: str, config: Path = SIM_CONFIG):
    """Run one scenario on one device of a bench config; return (outcome, its ScenarioResult).

    The results document is checked against the contract schema on the way."""
    from rig.config import load_config
    from rig.engine import RunPlan, execute
    from rig.results import validate_results

    out = execute(RunPlan.select(load_config(config), [device], [scenario], tmp))
    validate_results(out.record.to_dict())
    return out, out.record.devices[0].scenarios[0]


def run_shipped(devices: list[str], scenarios: list[str], out: Path):
    """Run ``scenarios`` on ``devices`` of the shipped bench config into ``out``; the outcome, its
    results document checked against the contract schema."""
    from rig.config import load_config
    from rig.engine import RunPlan, execute
    from rig.results import validate_results

    outcome = execute(RunPlan.select(load_config(SIM_CONFIG), devices, scenarios, out))
    validate_results(outcome.record.to_dict())
    return outcome


def scenario_of(outcome, device: str):
    """The one scenario result of ``device`` in ``outcome``."""
    [dev] = [d for d in outcome.record.devices if d.name == device]
    [sc] = dev.scenarios
    return sc


@contextmanager
def device_context(tmp: Path, device: dict, scenario: str = "x-unit", name: str = "dut"):
    """A real :class:`~rig.scenario.ScenarioContext` for one device config (a dict as in a bench
    file) over a fresh bundle under ``tmp``: to run one part of a scenario against a server on
    loopback. Its drivers are closed and its journal too when the block ends."""
    from rig.config import DeviceConfig
    from rig.evidence import Bundle
    from rig.scenario import ScenarioContext
    from rig.signing import BenchKey

    bundle = Bundle.create(tmp, BenchKey.load_or_create())
    ctx = ScenarioContext(name, DeviceConfig.model_validate(device), scenario, bundle.folder(name, scenario), bundle.journal)
    try:
        yield ctx
    finally:
        ctx.close()
        bundle.journal.close()


def sim_config_text() -> str:
    """The shipped bench config's text with its relative ``credentials:`` paths made absolute, so a
    variant written elsewhere (a test's tmp folder) still finds hil_config/credentials/."""
    import re

    return re.sub(r"(?m)^(\s*credentials:\s*)(credentials/\S+)", lambda m: m.group(1) + str((SIM_CONFIG.parent / m.group(2)).resolve()),
                  SIM_CONFIG.read_text())


def sim_config_variant(tmp: Path, device: str, edit) -> Path:
    """The shipped bench config with ``edit(device_dict)`` applied to one device, written under ``tmp``."""
    import yaml

    raw = yaml.safe_load(SIM_CONFIG.read_text())
    for dev in raw["devices"].values():  # relative paths stay relative to hil_config/, not to tmp
        if dev.get("credentials"):
            dev["credentials"] = str((SIM_CONFIG.parent / dev["credentials"]).resolve())
    edit(raw["devices"][device])
    raw["bench"]["evidence_dir"] = str(tmp)
    cfg = tmp / "bench.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    return cfg


@pytest.fixture
def sim_knob(sim_bench: dict):
    """Set a simulated device's run-time fault knob (a file its camera app reads per frame),
    removed again after the test: ``sim_knob("cam-secure", "shutter-mode")("partial")``."""
    made: list[Path] = []

    def knob(device: str, name: str):
        path = Path(sim_bench["devices"][device]["console"]).parent / name
        made.append(path)
        return lambda value: path.write_text(value + "\n")

    yield knob
    for p in made:
        p.unlink(missing_ok=True)


@pytest.fixture
def scenario_registry(monkeypatch):
    """``scenario_registry(*classes)``: the engine sees only these scenarios for one test."""

    def use(*classes):
        import scenarios

        reg = {c.id: c for c in classes}
        monkeypatch.setattr(scenarios, "REGISTRY", reg)
        monkeypatch.setattr("rig.engine.REGISTRY", reg)
        return reg

    return use


def resign_bundle(root: Path, key, edit=None) -> None:  # noqa: ANN001 - a BenchKey; edit(results_doc) changes the results first
    """What someone holding another (or this) bench's key can do to a bundle: change its results,
    then sign the journal, the outputs' hashes and the manifest again with ``key``."""
    import base64
    import hashlib
    import json

    from rig.evidence import GENESIS, JOURNAL, canonical, output_hashes, write_manifest
    from rig.signing import public_pem

    if edit is not None:
        doc = json.loads((root / "results.json").read_text())
        edit(doc)
        (root / "results.json").write_text(json.dumps(doc))
    lines, prev = [], GENESIS
    for raw in (root / JOURNAL).read_text().splitlines():
        e = json.loads(raw)
        e.pop("sig")
        e["prev"] = prev
        if isinstance(e.get("outputs"), dict):
            e["outputs"] = output_hashes(root)
        e["sig"] = base64.b64encode(key.sign(canonical(e))).decode()
        line = canonical(e)
        lines.append(line)
        prev = hashlib.sha256(line).hexdigest()
    (root / JOURNAL).write_bytes(b"\n".join(lines) + b"\n")
    (root / "bench.pub").write_bytes(public_pem(key.public_key))
    write_manifest(root, root.name, key, "complete")


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server (Debian's binaries, run as the postgres user) on 127.0.0.1."""
    need_root()
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    need(bool(initdb) and shutil.which("runuser") is not None, "PostgreSQL server binaries (Debian postgresql; scripts/setup installs it)")
    bindir = Path(initdb[-1]).parent
    top = Path(tempfile.mkdtemp(prefix="privrig-pg-", dir="/tmp"))
    os.chmod(top, 0o755)
    shutil.chown(top, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_pg(*argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)

    as_pg(str(bindir / "initdb"), "-D", str(top / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
    as_pg(str(bindir / "pg_ctl"), "-D", str(top / "data"), "-l", str(top / "log"), "-w", "-t", "60", "start",
          "-o", f"-k {top} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off")
    try:
        as_pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "privrig")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/privrig"
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(top / "data"), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(top, ignore_errors=True)
