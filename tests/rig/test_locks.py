"""Device locks: a second run refuses or waits; a dead holder never leaves a device locked."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rig.config import parse_config
from rig.engine import RunPlan, execute
from rig.locks import DeviceBusy, DeviceLock, device_lock, resources
from rig.results import Verdict
from rig.scenario import Scenario, ScenarioContext

CFG = """
bench: {name: lab}
devices:
  cam-a:
    privacy_level: 2
    network: {address: 198.18.3.10}
    serial: {port: /dev/ttyUSB7}
  same-cam:
    privacy_level: 2
    network: {address: 198.18.3.10}
  other:
    privacy_level: 2
    network: {address: 198.18.3.11}
"""


def test_a_device_is_known_by_where_it_is(tmp_path: Path) -> None:
    cfg = parse_config(CFG, tmp_path / "c.yaml")
    assert resources(cfg.bench.devices["cam-a"]) == ["net:198.18.3.10", "serial:/dev/ttyUSB7"]
    first = device_lock("cam-a", cfg.bench.devices["cam-a"], {"run_id": "R1", "pid": 1}).acquire()
    try:
        with pytest.raises(DeviceBusy, match=r"same-cam: net:198\.18\.3\.10 is in use by run R1 \(pid 1\)"):
            device_lock("same-cam", cfg.bench.devices["same-cam"], {"run_id": "R2", "pid": 2}).acquire()  # another name, same camera
        device_lock("other", cfg.bench.devices["other"], {"run_id": "R2", "pid": 2}).acquire().release()
    finally:
        first.release()
    device_lock("same-cam", cfg.bench.devices["same-cam"], {"run_id": "R2", "pid": 2}).acquire().release()


def test_a_waiting_run_gets_the_device_when_it_is_freed() -> None:
    held = DeviceLock("d", ["net:198.18.3.20"], {"run_id": "R1"}).acquire()
    threading.Timer(0.5, held.release).start()
    t0 = time.monotonic()
    DeviceLock("d", ["net:198.18.3.20"], {"run_id": "R2"}).acquire(wait_s=5).release()
    assert 0.3 < time.monotonic() - t0 < 4


def test_a_killed_holder_frees_the_device() -> None:
    code = ("import sys, time; sys.path.insert(0, %r); from rig.locks import DeviceLock; "
            "DeviceLock('d', ['net:198.18.3.30'], {'run_id': 'R9'}).acquire(); print('held', flush=True); time.sleep(60)") % str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        with pytest.raises(DeviceBusy, match="R9"):
            DeviceLock("d", ["net:198.18.3.30"], {"run_id": "R1"}).acquire()
    finally:
        proc.kill()
        proc.wait()
    DeviceLock("d", ["net:198.18.3.30"], {"run_id": "R1"}).acquire().release()


class Touch(Scenario):
    id = "x-touch"
    title = "records that it ran"
    clauses = ("test",)

    def run(self, ctx: ScenarioContext):
        ref = ctx.artifact("ran.txt", b"ran", "text/plain")
        ctx.part("ran", "the scenario ran on the device").observed("ran", evidence=ref.path)


def test_a_busy_device_ends_as_error_and_the_others_run(scenario_registry, tmp_path: Path) -> None:
    scenario_registry(Touch)
    cfg = parse_config(CFG, tmp_path / "c.yaml")
    with device_lock("cam-a", cfg.bench.devices["cam-a"], {"run_id": "NIGHTLY-1", "pid": 4242}).acquire():
        out = execute(RunPlan.select(cfg, ["same-cam", "other"], None, tmp_path / "ev"))
    v = {d.name: d.scenarios[0] for d in out.record.devices}
    assert v["same-cam"].verdict is Verdict.ERROR and v["same-cam"].findings[0].kind == "device-busy"
    assert "NIGHTLY-1" in v["same-cam"].findings[0].summary and not (out.bundle / "devices/same-cam").exists()
    assert v["other"].verdict is Verdict.PASS and out.exit_code == 3
    assert '"device-busy"' in (out.bundle / "journal.jsonl").read_text()
