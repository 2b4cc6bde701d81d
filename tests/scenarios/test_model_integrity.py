"""model-integrity on the simulated bench: the compliant camera refuses every tampered model and
takes the genuine one; the violating camera runs the trojaned and bit-flipped models, told by
its answers; an infer that answers 401, nothing or garbage, probes that all get one answer and
a device that refuses even the genuine model are never a pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rig.results import Verdict
from tests.conftest import run_scenario, scenario_run, sim_config_variant

pytestmark = [pytest.mark.clause("T/AI 110.1-2020 6.2.4 a 5"), pytest.mark.clause("T/AI 110.1-2020 6.2.4 a 1")]


@pytest.fixture(scope="module")
def outcome(run_all):
    """model-integrity on every device, from the session's shared run."""
    return scenario_run(run_all, "model-integrity")


def test_the_compliant_camera_refuses_every_variant_and_takes_the_genuine_model(outcome) -> None:
    sc = outcome.of("cam-compliant")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings] + [p.summary for p in sc.coverage]
    assert [f for f in sc.findings if f.severity != "info"] == []
    probes = sc.coverage["probes"]
    assert probes.control and probes.state.value == "observed" and probes.seen["probes"] == 12
    for name in ("trojaned", "bitflip", "truncated", "resigned"):
        part = sc.coverage[f"variant {name}"]
        assert part.state.value == "observed" and part.summary.startswith("refused") and part.seen["changed"] == 0, part.summary
        assert part.seen["exit"] not in (0, None)
    genuine = sc.coverage["genuine"]
    assert genuine.control and genuine.state.value == "observed" and genuine.seen["exit"] == 0
    folder = outcome.bundle / "devices/cam-compliant/model-integrity"
    answers = json.loads((folder / "answers.json").read_text())
    assert set(answers) >= {"baseline", "trojaned", "genuine (last)"} and len(answers["baseline"]) == 12
    assert all(set(a) == {"label", "score"} for a in answers["baseline"].values())  # a label and a rounded score, no vector
    assert sc.measurements["infer_queries"] >= 12 * 6


def test_the_violating_camera_runs_the_trojaned_and_bitflipped_models(outcome) -> None:
    sc = outcome.of("cam-violating")
    assert sc.verdict is Verdict.FAIL
    found = {f.detail["variant"]: f for f in sc.findings if f.kind == "tampered-model-accepted"}
    assert set(found) == {"trojaned", "bitflip"}
    troj = found["trojaned"]
    assert troj.severity == "critical" and troj.interface == "storage" and troj.path == "detector.onnx (trojaned)"
    assert troj.detail["changed"] and all(c["after"] == "person" for c in troj.detail["changed"])  # class 0 for every image
    assert troj.detail["exit"] == 0 and troj.detail["identify_sha256"] == troj.detail["sha256"]
    assert "devices/cam-violating/model-integrity/answers.json" in troj.evidence
    assert sc.coverage["variant truncated"].state.value == "observed" and sc.coverage["variant truncated"].summary.startswith("refused")
    assert "variant resigned" not in sc.coverage  # no signature format: nothing to re-sign
    assert sc.coverage["genuine"].state.value == "observed"  # put back after each, and last
    from rig.modelfile import reference_model

    model = reference_model(seed=7, width=32)
    for p in (outcome.bundle / "devices/cam-violating/model-integrity").iterdir():
        assert model[100:164] not in p.read_bytes()  # hashes and answers, never the model


def test_devices_without_a_genuine_model_are_not_applicable(outcome) -> None:
    assert outcome.of("cam-debug").verdict is Verdict.SKIPPED


@pytest.mark.parametrize("command,kind", [
    ("echo '<html><body>login</body></html>'", "garbage"),
    ("echo 'wget: server returned error: HTTP/1.0 401 Unauthorized'; exit 1", "refused"),
    ("echo 'wget: server returned error: HTTP/1.0 429 Too Many Requests'; exit 1", "rate-limited"),
    ("echo '{{\"result\": 1}}'", "wrong-shape"),  # braces doubled: the action's placeholders
])
def test_an_infer_that_gives_no_readable_answer_is_not_observed(sim_bench: dict, tmp_path: Path, command: str, kind: str) -> None:
    cfg = sim_config_variant(tmp_path, "cam-compliant", lambda d: d["actions"].update(infer={"via": "ssh", "command": command}))
    _, sc = run_scenario(tmp_path / "ev", "cam-compliant", "model-integrity", config=cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE and not [f for f in sc.findings if f.kind == "tampered-model-accepted"]
    part = sc.coverage["probes"]
    assert part.state.value == "unobserved" and part.seen["answer"] == kind, part.summary
    assert all(p.state.value == "unobserved" for p in sc.coverage if p.name.startswith("variant "))


def test_an_infer_that_never_answers_is_not_observed_and_bounded(sim_bench: dict, tmp_path: Path) -> None:
    cfg = sim_config_variant(tmp_path, "cam-violating", lambda d: d["actions"].update(infer={"via": "ssh", "command": "sleep 60", "timeout_s": 2}))
    _, sc = run_scenario(tmp_path / "ev", "cam-violating", "model-integrity", config=cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE
    part = sc.coverage["probes"]
    assert part.state.value == "unobserved" and part.seen["answer"] == "unreachable" and "2 s" in part.summary, part.summary


def test_a_device_that_refuses_the_genuine_model_too_is_inconclusive(sim_bench: dict, tmp_path: Path) -> None:
    """The positive control: refusals mean nothing when the genuine model is refused as well."""
    cfg = sim_config_variant(tmp_path, "cam-compliant", lambda d: d["actions"].update(
        {"model-deploy": {"via": "ssh", "command": "echo 'deploy disabled' >&2; exit 5 # {model} {signature}"}}))
    _, sc = run_scenario(tmp_path / "ev", "cam-compliant", "model-integrity", config=cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE
    g = sc.coverage["genuine"]
    assert g.state.value == "unobserved" and "refused too" in g.summary and g.seen["exit"] == 5


def test_probes_that_all_get_the_same_answer_cannot_show_a_constant_model(sim_bench: dict, tmp_path: Path) -> None:
    from rig.vision.probes import rendered

    folder = tmp_path / "probes"
    folder.mkdir()
    one = rendered(1)[0].data
    for i in range(3):
        (folder / f"same-{i}.png").write_bytes(one)
    cfg = sim_config_variant(tmp_path, "cam-violating", lambda d: d["model"].update(probes=str(folder)))
    _, sc = run_scenario(tmp_path / "ev", "cam-violating", "model-integrity", config=cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE
    assert all(f.kind != "tampered-model-accepted" for f in sc.findings)
    assert sc.coverage["probes"].state.value == "unobserved" and "same answer" in sc.coverage["probes"].summary
    shutil.rmtree(folder)


def test_an_absent_device_is_not_observed_and_names_its_address(sim_bench: dict, tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["model"] = {"genuine": "/run/privrig/sim/models/cam-violating/detector.onnx", "infer": {"answer": {"label": "label"}}}
        d.setdefault("actions", {}).update({"model-deploy": {"via": "ssh", "command": "simapp model-deploy {model}"},
                             "infer": {"via": "ssh", "command": "simapp infer {image}"}})

    cfg = sim_config_variant(tmp_path, "cam-absent", edit)
    _, sc = run_scenario(tmp_path / "ev", "cam-absent", "model-integrity", config=cfg)
    assert sc.verdict in (Verdict.INCONCLUSIVE, Verdict.ERROR)
    part = sc.coverage["probes"]
    assert part.state.value == "unobserved" and part.seen["answer"] == "unreachable" and "198.18.0.30" in part.summary, part.summary
