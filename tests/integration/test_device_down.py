"""A device that drops off the network mid-run ends as error, alone, within its timeouts; the
others finish as before and what was recorded is kept."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from rig.config import load_config
from rig.engine import RunPlan, execute
from rig.results import Verdict
from rig.verify import VERIFIED, verify_bundle
from tests.conftest import SIM_CONFIG


def test_device_unplugged_mid_run(sim_bench: dict, tmp_path: Path) -> None:
    veth = sim_bench["devices"]["cam-secure"]["veth"]  # the bench end of cam-secure's cable
    plan = RunPlan.select(load_config(SIM_CONFIG), ["cam-secure", "cam-leaky"], ["channel-encryption", "camera-shutter"], tmp_path)
    unplug = threading.Timer(4.0, lambda: subprocess.run(["ip", "link", "set", veth, "down"], check=True, timeout=10))
    unplug.start()
    t0 = time.monotonic()
    try:
        out = execute(plan)
    finally:
        unplug.cancel()
        subprocess.run(["ip", "link", "set", veth, "up"], check=True, timeout=10)  # plug it back for the other tests
    took = time.monotonic() - t0
    v = {(d.name, s.id): s for d in out.record.devices for s in d.scenarios}
    # the unplugged camera: its running scenario and the next end as error, each saying why
    for sid in ("channel-encryption", "camera-shutter"):
        sc = v[("cam-secure", sid)]
        assert sc.verdict is Verdict.ERROR, (sid, sc.verdict, [f.summary for f in sc.findings])
        assert any(f.severity == "info" and ("198.18.0.14" in f.summary or "cam-secure" in f.summary) for f in sc.findings)
    # the other camera finished as it always does
    assert v[("cam-leaky", "channel-encryption")].verdict is Verdict.FAIL and v[("cam-leaky", "camera-shutter")].verdict is Verdict.FAIL
    assert took < 240  # bounded by the SSH and action timeouts, never a hang
    assert out.exit_code == 1 and out.record.status == "complete"
    assert (out.bundle / "devices/cam-secure/channel-encryption/capture.pcap").stat().st_size > 0  # the packets seen before the unplug are kept
    assert verify_bundle(out.bundle).status == VERIFIED
