"""pytest --rig-config: the bench's devices x scenarios as test items, one bundle, -k and --junitxml as usual."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from rig.verify import VERIFIED, verify_bundle
from tests.conftest import SIM_CONFIG


def pytest_run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in an empty folder, as a lab runs it, with only the plugin's items."""
    return subprocess.run([sys.executable, "-m", "pytest", "-c", "/dev/null", "--rootdir", str(tmp), "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, timeout=600, cwd=tmp)


def test_collects_devices_by_scenarios_with_clause_markers(tmp_path: Path) -> None:
    res = pytest_run(tmp_path, "--rig-config", str(SIM_CONFIG), "--collect-only", "-q", "-m", "clause(id='T/AI 110.1-2020 6.2.3 c')")
    # -m on the clause marker picks uninstall-wipe on every device
    ids = [line for line in res.stdout.splitlines() if "::" in line]
    assert len(ids) == 10 and all(i.endswith("::uninstall-wipe") for i in ids), res.stdout + res.stderr


def test_runs_into_one_bundle_and_junit(sim_bench: dict, tmp_path: Path) -> None:
    res = pytest_run(tmp_path, "--rig-config", str(SIM_CONFIG), "--rig-out", str(tmp_path / "ev"), "--junitxml", str(tmp_path / "j.xml"),
                     "-k", "(cam-compliant or cam-violating) and storage-at-rest")
    assert res.returncode == 1, res.stdout[-3000:]
    cases = {(c.get("classname"), c.get("name")): c for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase")}
    assert set(cases) == {("rig-sim-bench.cam-compliant", "storage-at-rest"), ("rig-sim-bench.cam-violating", "storage-at-rest")}  # classname ends in the device
    failure = cases[("rig-sim-bench.cam-violating", "storage-at-rest")].find("failure")
    assert failure is not None and "raw-image-at-rest" in (failure.text or "") + (failure.get("message") or "")
    assert cases[("rig-sim-bench.cam-compliant", "storage-at-rest")].find("failure") is None
    bundle = Path(re.search(r"privrig bundle: (\S+)", res.stdout).group(1))  # type: ignore[union-attr]
    doc = json.loads((bundle / "results.json").read_text())
    assert {(d["name"], s["id"], s["verdict"]) for d in doc["devices"] for s in d["scenarios"]} == \
        {("cam-compliant", "storage-at-rest", "pass"), ("cam-violating", "storage-at-rest", "fail")}
    assert verify_bundle(bundle).status == VERIFIED
    assert (tmp_path / "ev" / "history.sqlite").exists()  # indexed like a rig run


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nbench: {name: x}\ndevices: {d: {privacy_level: 9}}\n")
    res = pytest_run(tmp_path, "--rig-config", str(bad))
    assert res.returncode == 4 and "devices.d.privacy_level" in res.stderr
