"""deidentification on the simulated bench: the camera app's face filter, judged from real frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig.results import Verdict
from tests.conftest import run_scenario

pytestmark = pytest.mark.clause("T/AI 110.1-2020 Annex A.1/A.2")
FACE = [115, 24, 51, 61]  # CenterFace's box for the astronaut in the 320x240 reference


def run(tmp: Path, device: str):
    return run_scenario(tmp, device, "deidentification")


@pytest.fixture
def face_filter(sim_knob):
    """Switch cam-secure's face filter for one test."""
    return sim_knob("cam-secure", "deid-mode")


def test_pixelated_faces_pass(sim_bench: dict, tmp_path: Path) -> None:
    out, sc = run(tmp_path, "cam-secure")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    assert sc.measurements["face_regions"] == [FACE]  # found in the reference by CenterFace
    doc = json.loads((out.bundle / "devices/cam-secure/deidentification/main-faces.json").read_text())
    assert doc["recognisable_fraction"] == [0.0] and len(doc["frames"]) >= 5
    assert (out.bundle / "devices/cam-secure/deidentification/main-faces.png").stat().st_size > 1000


def test_untouched_faces_fail_on_every_output(sim_bench: dict, tmp_path: Path) -> None:
    _, sc = run(tmp_path, "cam-leaky")
    assert sc.verdict is Verdict.FAIL
    found = {(f.path, tuple(f.detail["region"])) for f in sc.findings if f.kind == "face-recognisable"}
    assert found == {("http://198.18.0.15:8080/stream.mjpg", tuple(FACE)), ("https://198.18.0.15:8443/stream.mjpg", tuple(FACE)),
                     ("rtsp://198.18.0.15:8554/main", tuple(FACE))}


@pytest.mark.parametrize("mode,verdict", [("blur-weak", Verdict.FAIL), ("blur-strong", Verdict.PASS), ("mask", Verdict.PASS), ("none", Verdict.FAIL)])
def test_each_face_filter(face_filter, tmp_path: Path, mode: str, verdict: Verdict) -> None:
    face_filter(mode)
    _, sc = run(tmp_path, "cam-secure")
    assert sc.verdict is verdict, [f.summary for f in sc.findings]
    if verdict is Verdict.FAIL:
        [f] = sc.findings
        assert f.kind == "face-recognisable" and f.detail["region"] == FACE


def test_level_3_and_cameraless_devices_are_skipped(sim_bench: dict, tmp_path: Path) -> None:
    _, sc = run(tmp_path, "cam-boot")
    assert sc.verdict is Verdict.SKIPPED and "level 3" in sc.findings[0].summary


def test_every_output_is_judged_or_the_scenario_is_not_a_pass(sim_bench: dict, tmp_path: Path) -> None:
    """cam-secure's main output de-identifies; a second configured output that cannot be grabbed
    was once ignored and the scenario passed on the one it could see."""
    from tests.conftest import sim_config_variant

    cfg = sim_config_variant(tmp_path, "cam-secure", lambda d: d["camera"]["streams"].append(
        {"name": "sub", "url": "http://198.18.0.14:8080/stream.mjpg"}))  # nothing listens there
    _, sc = run_scenario(tmp_path / "ev", "cam-secure", "deidentification", cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    assert {p.name: p.state.value for p in sc.coverage} == {"output main": "observed", "output sub": "unobserved"}
    [f] = sc.findings
    assert f.kind == "stream-unavailable" and f.path == "http://198.18.0.14:8080/stream.mjpg" and "Connection refused" in f.summary


def test_frames_that_do_not_show_the_reference_scene_are_not_judged(sim_bench: dict, tmp_path: Path) -> None:
    """A reference of another framing (here the technician's capture is 16 pixels off) lowers the
    face SSIM below the recognisable line: cam-leaky's untouched faces once passed that way."""
    import cv2
    import numpy as np

    from tests.conftest import sim_config_variant

    ref = cv2.imread(str(Path(sim_bench["devices"]["cam-leaky"]["console"]).parent / "reference.png"))
    moved = tmp_path / "moved-reference.png"
    cv2.imwrite(str(moved), np.roll(ref, (16, 16), axis=(0, 1)))
    cfg = sim_config_variant(tmp_path, "cam-leaky", lambda d: d["camera"].update({"reference": str(moved), "faces": [[131, 40, 51, 61]]}))
    _, sc = run_scenario(tmp_path / "ev", "cam-leaky", "deidentification", cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    for name in ("output main", "output secure", "output rtsp"):
        part = sc.coverage[name]
        assert part.state.value == "unobserved" and "do not show the reference scene" in part.summary and part.seen["scene_match"] < 0.5
    assert {f.kind for f in sc.findings} == {"scene-mismatch"}
