"""rig attest: a technician's verdict on a manual clause, signed into a sealed bundle that still verifies."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rig.attest import AttestError, attest, attestations
from rig.config import parse_config
from rig.engine import RunPlan, execute
from rig.results import Verdict
from rig.scenario import Scenario, ScenarioContext
from rig.signing import BenchKey
from rig.verify import TAMPERED, VERIFIED, verify_bundle
from tests.conftest import rig

CLAUSE = "T/AI 110.1-2020 6.2.1 c"  # physical tamper protection: no automated check


class Quick(Scenario):
    id = "debug-ports"  # stands in for the real one: the matrix keys on the id
    title = "quick"
    clauses = ("T/AI 110.1-2020 6.2.1 b",)

    def run(self, ctx: ScenarioContext):
        ctx.artifact("note.txt", b"ok", "text/plain")
        return Verdict.PASS


@pytest.fixture
def bundle(scenario_registry, tmp_path: Path) -> Path:
    scenario_registry(Quick)
    cfg = parse_config("bench: {name: lab}\ndevices:\n  cam-07: {privacy_level: 2}\n", tmp_path / "c.yaml")
    return execute(RunPlan.select(cfg, None, None, tmp_path / "ev")).bundle


def test_attestation_is_signed_in_and_shown(bundle: Path, tmp_path: Path) -> None:
    photo = tmp_path / "housing.png"
    cv2.imwrite(str(photo), np.full((60, 80, 3), (40, 90, 200), np.uint8))
    before = (bundle / "results.json").read_bytes()
    att = attest(bundle, "cam-07", CLAUSE, "fail", "housing opens with a coin; no tamper switch <b>", "Li Wei", photo)
    assert att.verdict == "fail" and att.photo == "attest-1-photo.png"
    assert verify_bundle(bundle).status == VERIFIED  # re-sealed: journal chain, artifacts and manifest agree
    assert (bundle / "results.json").read_bytes() == before  # the run's results stay as the run wrote them
    journal = [json.loads(line) for line in (bundle / "journal.jsonl").read_text().splitlines()]
    [att] = [e for e in journal if e["event"] == "attestation"]
    assert att["clause"] == CLAUSE and att["by"] == "Li Wei"
    assert journal[-1]["event"] == "outputs-resealed" and set(journal[-1]["outputs"]) == {"results.json", "junit.xml", "report.html"}
    html = (bundle / "report.html").read_text()
    matrix = html[html.index("id=matrix"):]
    assert "6.2.1 c</b>" in matrix and "<td class=fail>fail<br><small>attested by Li Wei</small></td>" in matrix
    assert "no tamper switch &lt;b&gt;" in html and 'alt="attest-1-photo.png" src="data:image/png;base64,' in html
    assert [a.clause for a in attestations(bundle)] == [CLAUSE]
    (bundle / "devices/cam-07/attest/attest-1.json").write_text((bundle / "devices/cam-07/attest/attest-1.json").read_text().replace("fail", "pass"))
    assert verify_bundle(bundle).status == TAMPERED  # an edited verdict is caught


def test_attestation_refusals(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(AttestError, match="not a manual clause"):
        attest(bundle, "cam-07", "T/AI 110.1-2020 6.2.1 b", "pass", "looked", "Li Wei")
    with pytest.raises(AttestError, match="--device cam-99"):
        attest(bundle, "cam-99", CLAUSE, "pass", "looked", "Li Wei")
    other = BenchKey.load_or_create(tmp_path / "another-bench.pem")  # another bench's key
    with pytest.raises(AttestError, match="attest on the bench that ran it"):
        attest(bundle, "cam-07", CLAUSE, "pass", "looked", "Li Wei", key=other)
    res = rig("attest", str(bundle), "--device", "cam-07", "--clause", CLAUSE, "--verdict", "pass", "--note", "sealed screws", "--by", "Zhang")
    assert res.returncode == 0 and "attested" in res.stdout
    bad = rig("attest", str(bundle), "--device", "cam-07", "--clause", "nope", "--verdict", "pass", "--note", "x", "--by", "y")
    assert bad.returncode == 2 and "not a manual clause" in bad.stderr
