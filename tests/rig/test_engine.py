"""The engine keeps going past a broken scenario and enforces the contract's verdict rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rig.config import parse_config
from rig.engine import RunPlan, execute
from rig.results import Verdict, exit_code_for
from rig.scenario import Scenario, ScenarioContext
from rig.verify import VERIFIED, verify_bundle

CFG = """
bench: {name: lab}
devices:
  d1: {privacy_level: 3}
  d2: {privacy_level: 1}
"""


class Broken(Scenario):
    id = "x-broken"
    title = "raises"
    clauses = ("test",)

    def run(self, ctx: ScenarioContext):
        ctx.measure("before", 1)
        raise KeyError("bug")


class FailsWithoutEvidence(Scenario):
    id = "x-noevidence"
    title = "forgets evidence"
    clauses = ("test",)

    def run(self, ctx: ScenarioContext):
        ctx.finding("something", "high", "bad but unproven")
        return None


class OnlyD1(Scenario):
    id = "x-only-d1"
    title = "applies to d1"
    clauses = ("test",)

    def applies(self, device):
        return None if device.privacy_level == 3 else "level 3 only"

    def run(self, ctx: ScenarioContext):
        ctx.artifact("note.txt", b"checked", "text/plain")
        return Verdict.PASS


@pytest.fixture()
def registry(scenario_registry):
    return scenario_registry(Broken, FailsWithoutEvidence, OnlyD1)


def test_broken_scenario_is_error_and_run_goes_on(registry, tmp_path: Path) -> None:
    cfg = parse_config(CFG, tmp_path / "c.yaml")
    out = execute(RunPlan.select(cfg, None, None, tmp_path / "ev"))
    v = {(d.name, s.id): s for d in out.record.devices for s in d.scenarios}
    assert v[("d1", "x-broken")].verdict is Verdict.ERROR
    assert "KeyError" in v[("d1", "x-broken")].findings[0].summary
    assert v[("d1", "x-broken")].measurements == {"before": 1}
    assert v[("d1", "x-noevidence")].verdict is Verdict.ERROR  # fail without evidence breaks the contract
    assert v[("d1", "x-only-d1")].verdict is Verdict.PASS
    assert v[("d2", "x-only-d1")].verdict is Verdict.SKIPPED and "level 3 only" in v[("d2", "x-only-d1")].findings[0].summary
    assert out.exit_code == 3 and out.record.status == "complete"
    assert "scenario-crash" in (out.bundle / "journal.jsonl").read_text()
    assert verify_bundle(out.bundle).status == VERIFIED


def test_exit_codes() -> None:
    assert exit_code_for([Verdict.PASS, Verdict.SKIPPED]) == 0
    assert exit_code_for([Verdict.PASS, Verdict.ERROR, Verdict.FAIL]) == 1
    assert exit_code_for([Verdict.PASS, Verdict.INCONCLUSIVE]) == 3
    assert exit_code_for([]) == 0


class SlowOnD1(Scenario):
    id = "x-slow"
    title = "slow on d1"
    clauses = ("test",)

    def run(self, ctx: ScenarioContext):
        if ctx.device_name == "d1":
            time.sleep(1.5)
        ctx.artifact("done.txt", ctx.device_name.encode(), "text/plain")
        return Verdict.PASS


def test_devices_run_side_by_side_in_config_order(scenario_registry, tmp_path: Path) -> None:
    scenario_registry(SlowOnD1)
    cfg = parse_config(CFG, tmp_path / "c.yaml")
    out = execute(RunPlan.select(cfg, None, None, tmp_path / "ev"))
    ends = [json.loads(l)["device"] for l in (out.bundle / "journal.jsonl").read_text().splitlines() if '"scenario-end"' in l]
    assert ends == ["d2", "d1"]  # d2 did not wait for the slow d1
    assert [d.name for d in out.record.devices] == ["d1", "d2"]  # results keep config order
    assert out.exit_code == 0
    serial = execute(RunPlan.select(cfg, None, None, tmp_path / "ev2", jobs=1))
    ends = [json.loads(l)["device"] for l in (serial.bundle / "journal.jsonl").read_text().splitlines() if '"scenario-end"' in l]
    assert ends == ["d1", "d2"]
