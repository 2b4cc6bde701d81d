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

    @classmethod
    def replay_inputs(cls, inputs):
        import re

        if set(inputs) != {"seed"} or not re.fullmatch(r"[0-9a-f]{16}", str(inputs["seed"])):
            raise ValueError(f"not a seed: {inputs!r}")
        return dict(inputs)

    def run(self, ctx: ScenarioContext):
        seed = ctx.inputs.setdefault("seed", secrets.token_hex(8))
        ref = ctx.artifact("seed.txt", seed.encode(), "text/plain")
        ctx.part("seed", "the seed was used").observed(f"seed {seed}", evidence=ref.path)
        if ctx.device_name == "d1":
            ctx.finding("planted", "high", f"seed {seed}", evidence=[ref.path])


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


def _resign(bundle: Path, key) -> None:  # noqa: ANN001 - a BenchKey
    from tests.conftest import resign_bundle

    resign_bundle(bundle, key)


def test_rerun_replays_only_bundles_of_this_bench_or_a_pinned_key(first_run, tmp_path: Path) -> None:
    from rig.signing import BenchKey, public_pem
    from rig.verify import UNTRUSTED, verify_bundle

    other = BenchKey.load_or_create(tmp_path / "other-bench.pem")
    _resign(first_run.bundle, other)
    assert verify_bundle(first_run.bundle).status == UNTRUSTED  # a sound bundle, only not ours
    with pytest.raises(RerunError, match="neither this bench's key nor one given with --pubkey"):
        load_rerun(first_run.bundle)
    from rig.signing import load_public_pem

    src = load_rerun(first_run.bundle, load_public_pem(public_pem(other.public_key)))
    assert src.devices == ["d1", "d2"]
    from tests.conftest import rig

    pub = tmp_path / "other.pub"
    pub.write_bytes(public_pem(other.public_key))
    refused = rig("rerun", str(first_run.bundle))
    assert refused.returncode == 2 and "neither this bench's key" in refused.stderr


def test_replayed_inputs_are_checked_before_anything_runs(first_run, tmp_path: Path) -> None:
    from rig.signing import BenchKey

    from tests.conftest import resign_bundle

    def poison(doc: dict) -> None:
        doc["devices"][0]["scenarios"][0]["measurements"]["inputs"]["seed"] = "$(reboot)"

    resign_bundle(first_run.bundle, BenchKey.load_or_create(), poison)  # signed by this bench: trusted, but its inputs are still checked
    with pytest.raises(RerunError, match="d1/x-draws: not a seed"):
        load_rerun(first_run.bundle)
