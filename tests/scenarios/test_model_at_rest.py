"""model-at-rest on the simulated bench: an encrypted model passes; a model the ONNX parser reads
fails with its path and summary, found by content under any name; what could not be read or
judged is not observed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig.results import Verdict
from tests.conftest import run_scenario, scenario_run, sim_config_variant

pytestmark = pytest.mark.clause("T/AI 110.1-2020 6.2.4 a 5")


@pytest.fixture(scope="module")
def outcome(run_all):
    """model-at-rest on every device, from the session's shared run."""
    return scenario_run(run_all, "model-at-rest")


def test_an_encrypted_model_passes_on_what_was_read(outcome) -> None:
    sc = outcome.of("cam-compliant")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    assert sc.findings == [] or all(f.severity == "info" for f in sc.findings)
    assert sc.coverage["parser"].state.value == "observed" and sc.coverage["parser"].control
    part = sc.coverage["model /data/system/models/detector.bin"]
    assert part.state.value == "observed" and "indistinguishable from random" in part.summary and part.seen["bytes"] > 70_000
    search = sc.coverage["search"]
    assert search.state.value == "observed" and search.seen["files_examined"] >= 5 and search.seen["candidates"] == 0
    models = json.loads((outcome.bundle / "devices/cam-compliant/model-at-rest/models.json").read_text())
    [f] = models["files"]
    assert f["parsed"] is None and f["looks_random"] is True and f["format"] is None


def test_a_readable_model_fails_with_its_summary_and_the_undeclared_one_is_found_by_content(outcome) -> None:
    sc = outcome.of("cam-violating")
    assert sc.verdict is Verdict.FAIL
    found = {f.path: f for f in sc.findings if f.kind == "model-readable"}
    assert set(found) == {"/data/system/models/detector.onnx", "/opt/simcam/res/res_0042.bin"}
    declared, hidden = found["/data/system/models/detector.onnx"], found["/opt/simcam/res/res_0042.bin"]
    assert declared.severity == "high" and declared.interface == "storage" and declared.detail["declared"] is True
    assert declared.detail["format"] == "ONNX" and declared.detail["nodes"] == 8 and declared.detail["parameters"] == 19652
    assert declared.detail["inputs"] == [{"name": "image", "shape": [1, 3, 32, 32]}] and declared.detail["opsets"] == {"ai.onnx": 17}
    assert hidden.detail["declared"] is False and hidden.detail["parameters"] == 5220  # a second model, under a name that says nothing
    folder = outcome.bundle / "devices/cam-violating/model-at-rest"
    assert declared.evidence == ["devices/cam-violating/model-at-rest/models.json"]
    # the bundle keeps hashes and the summary, never the model
    from rig.modelfile import reference_model

    model = reference_model(seed=7, width=32)
    assert declared.detail["sha256"] == __import__("hashlib").sha256(model).hexdigest()
    for p in folder.iterdir():
        assert model[100:164] not in p.read_bytes()


def test_structured_bytes_nobody_parses_are_not_taken_for_encryption(sim_bench: dict, tmp_path: Path) -> None:
    """cam-violating's settings store is XOR-scrambled: declared as a model, no parser reads it,
    yet it is no ciphertext (channel-encryption's tests see the key period)."""
    cfg = sim_config_variant(tmp_path, "cam-violating", lambda d: d["model"].update({"files": ["/data/system/settings.enc"], "search_roots": ["/data/system/etc"]}))
    _, sc = run_scenario(tmp_path / "ev", "cam-violating", "model-at-rest", config=cfg)
    assert sc.verdict is Verdict.FAIL
    [f] = [f for f in sc.findings if f.path == "/data/system/settings.enc"]
    assert (f.kind, f.severity) == ("model-in-clear", "medium") and "structured" in f.summary
    assert sc.coverage["search"].state.value == "observed" and sc.coverage["search"].seen["candidates"] == 0


def test_a_missing_model_and_a_missing_search_root_are_not_observed(sim_bench: dict, tmp_path: Path) -> None:
    def edit(d: dict) -> None:
        d["storage"]["models"] = [{"path": "/data/system/models/nowhere.bin"}]
        d["model"]["search_roots"] = ["/data/system/models", "/vendor/models"]

    cfg = sim_config_variant(tmp_path, "cam-compliant", edit)
    _, sc = run_scenario(tmp_path / "ev", "cam-compliant", "model-at-rest", config=cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    part = sc.coverage["model /data/system/models/nowhere.bin"]
    assert part.state.value == "unobserved" and "does not exist" in part.summary
    search = sc.coverage["search"]
    assert search.state.value == "unobserved" and "/vendor/models" in search.summary  # a root the lab named and the device lacks


def test_without_its_parser_control_random_bytes_prove_nothing(sim_bench: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The positive control: a parser that cannot read the rig's own model would call every
    model unreadable. Broken here on purpose, the encrypted model's pass must go."""
    from rig import modelfile

    monkeypatch.setattr(modelfile, "reference_model", lambda **_: b"\x08\x08\x12\x07broken!")
    _, sc = run_scenario(tmp_path, "cam-compliant", "model-at-rest")
    assert sc.verdict is not Verdict.PASS
    assert sc.coverage["parser"].state.value == "error" and "did not read" in sc.coverage["parser"].summary
    part = sc.coverage["model /data/system/models/detector.bin"]
    assert part.state.value == "unobserved" and "proves nothing" in part.summary


def test_an_absent_device_passes_nothing(sim_bench: dict, tmp_path: Path) -> None:
    cfg = sim_config_variant(tmp_path, "cam-absent", lambda d: d.update(model={"files": ["/data/model.onnx"]}))
    _, sc = run_scenario(tmp_path / "ev", "cam-absent", "model-at-rest", config=cfg)
    assert sc.verdict in (Verdict.ERROR, Verdict.INCONCLUSIVE)
    assert sc.coverage["model /data/model.onnx"].state.value != "observed" and sc.coverage["search"].state.value != "observed"
    assert sc.coverage["parser"].state.value == "observed"  # the rig's own side still worked
    assert any("198.18.0.30" in f.summary for f in sc.findings)
