"""rig rerun: the same config, devices, scenarios and drawn inputs, from a bundle that verifies."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from rig.config import load_config
from rig.engine import RunPlan, execute
from rig.rerun import RerunError, load_rerun, narrow
from rig.results import Verdict
from rig.scenario import Scenario, ScenarioContext

CFG = """
bench: {name: lab}
devices:
  d1: {privacy_level: 2}
  d2: {privacy_level: 1}
"""


class Draws(Scenario):
    """Draws a seed unless it is given one, and fails on d1 (a failure to reproduce)."""

    id = "x-draws"
    title = "draws an input"
    clauses = ("test",)

    def run(self, ctx: ScenarioContext):
        seed = ctx.inputs.setdefault("seed", secrets.token_hex(8))
        ref = ctx.artifact("seed.txt", seed.encode(), "text/plain")
        if ctx.device_name == "d1":
            ctx.finding("planted", "high", f"seed {seed}", evidence=[ref.path])
            return Verdict.FAIL
        return Verdict.PASS


@pytest.fixture
def first_run(scenario_registry, tmp_path: Path):
    scenario_registry(Draws)
    cfg_path = tmp_path / "bench" / "lab.yaml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(CFG)
    return execute(RunPlan.select(load_config(cfg_path), None, None, tmp_path / "ev"))


def seeds(out) -> dict[str, str]:
    return {d.name: d.scenarios[0].measurements["inputs"]["seed"] for d in out.record.devices}


def test_rerun_replays_the_inputs_and_reproduces_the_failure(first_run, tmp_path: Path) -> None:
    src = load_rerun(first_run.bundle)
    assert src.run_id == first_run.record.run_id and src.devices == ["d1", "d2"] and src.scenarios == ["x-draws"]
    devices, scns = narrow(src, ["d1"], [])
    plan = RunPlan.select(src.config, devices, scns, tmp_path / "ev2")
    plan.inputs, plan.rerun_of = src.inputs, src.run_id
    again = execute(plan)
    [d1] = again.record.devices
    assert d1.name == "d1" and d1.scenarios[0].verdict is Verdict.FAIL
    assert d1.scenarios[0].measurements["inputs"]["seed"] == seeds(first_run)["d1"]
    start = json.loads((again.bundle / "journal.jsonl").read_text().splitlines()[0])
    assert start["rerun_of"] == first_run.record.run_id
    assert '"inputs-replayed"' in (again.bundle / "journal.jsonl").read_text()


def test_rerun_refuses_a_tampered_bundle_or_an_unknown_selection(first_run) -> None:
    src = load_rerun(first_run.bundle)
    with pytest.raises(RerunError, match="--device d9: not in run"):
        narrow(src, ["d9"], [])
    with pytest.raises(RerunError, match="--scenario debug-ports: not in run"):
        narrow(src, [], ["debug-ports"])
    results = first_run.bundle / "results.json"
    results.write_text(results.read_text().replace('"seed"', '"SEED"'))
    with pytest.raises(RerunError, match="tampered"):
        load_rerun(first_run.bundle)


def test_rerun_cli_exit_codes(first_run, tmp_path: Path) -> None:
    from tests.conftest import rig

    bad = rig("rerun", str(tmp_path / "nothing"))
    assert bad.returncode == 2 and "not an evidence bundle" in bad.stderr
