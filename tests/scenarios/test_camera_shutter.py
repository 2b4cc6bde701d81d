"""camera-shutter on the simulated bench: real frames over HTTP(S), each shutter behaviour judged."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from rig.results import Verdict
from tests.conftest import run_scenario, sim_config_variant

pytestmark = pytest.mark.clause("T/AI 110.1-2020 6.2.1 g")
ALL = {(r, c) for r in range(4) for c in range(4)}


def run(tmp: Path, device: str):
    return run_scenario(tmp, device, "camera-shutter")


@pytest.fixture
def shutter_mode(sim_knob):
    """Inject a shutter behaviour into cam-secure's camera app for one test."""
    return sim_knob("cam-secure", "shutter-mode")


def leaking(sc) -> set[tuple[int, int]]:
    [f] = [f for f in sc.findings if f.kind == "shutter-leak"]
    return {tuple(x) for x in f.detail["leaking_regions"]}


def test_working_shutter_passes_and_is_seen_to_discriminate(sim_bench: dict, tmp_path: Path) -> None:
    out, sc = run(tmp_path, "cam-secure")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    regions = json.loads((out.bundle / "devices/cam-secure/camera-shutter/main-regions.json").read_text())
    assert regions["windows"]["closed"]["frames"] >= 5 and regions["windows"]["closed"]["leaking_regions"] == []
    assert regions["windows"]["reopened"]["leaking_regions"] and sum(v >= 0.5 for v in regions["windows"]["reopened"]["median_ncc"].values()) >= 12
    obs = json.loads((out.bundle / "devices/cam-secure/camera-shutter/observation-regions.json").read_text())
    assert obs["windows"]["closed"]["leaking_regions"] == []  # seen from outside, the cover closed over the whole lens
    for png in ("main-open.png", "main-closed.png", "main-reopened.png", "observation-closed.png"):
        img = cv2.imread(str(out.bundle / "devices/cam-secure/camera-shutter" / png))
        assert img is not None and img.shape[:2] == ((80, 80) if png.startswith("observation") else (240, 320))


def test_ignored_shutter_fails_on_every_output(sim_bench: dict, tmp_path: Path) -> None:
    _, sc = run(tmp_path, "cam-leaky")
    assert sc.verdict is Verdict.FAIL
    by_stream = {f.path: f for f in sc.findings if f.kind == "shutter-leak"}
    assert set(by_stream) == {"http://198.18.0.15:8080/stream.mjpg", "https://198.18.0.15:8443/stream.mjpg", "rtsp://198.18.0.15:8554/main"}
    for f in by_stream.values():
        assert {tuple(x) for x in f.detail["leaking_regions"]} == ALL
        assert any(e.endswith("-closed.png") for e in f.evidence)
    [lens] = [f for f in sc.findings if f.kind == "lens-uncovered"]  # from outside: no physical cover at all
    assert {tuple(x) for x in lens.detail["leaking_regions"]} == ALL and "observation-closed.png" in " ".join(lens.evidence)


def test_cover_over_part_of_the_lens_fails_on_the_uncovered_regions(shutter_mode, tmp_path: Path) -> None:
    shutter_mode("partial")  # the cover hides the left two thirds
    _, sc = run(tmp_path, "cam-secure")
    assert sc.verdict is Verdict.FAIL
    leak = leaking(sc)
    assert {(r, 3) for r in range(4)} <= leak  # the uncovered right column
    assert all(c >= 2 for _, c in leak)  # nothing under the cover
    [lens] = [f for f in sc.findings if f.kind == "lens-uncovered"]  # the observation camera sees the same gap
    seen = {tuple(x) for x in lens.detail["leaking_regions"]}
    assert {(r, 3) for r in range(4)} <= seen and all(c >= 2 for _, c in seen)


def test_dimmed_and_defocused_scene_is_not_a_closed_shutter(shutter_mode, tmp_path: Path) -> None:
    shutter_mode("dim")
    _, sc = run(tmp_path, "cam-secure")
    # every region but the one the camera's frame counter (OSD) covers: at 12 % brightness the
    # bright overlay dominates that region, which then matches neither scene nor darkness
    assert sc.verdict is Verdict.FAIL and ALL - {(3, 3)} <= leaking(sc)


def test_output_that_stops_while_closed_counts_as_blocked(shutter_mode, tmp_path: Path) -> None:
    shutter_mode("stop")  # the stream answered 200 and stopped sending: the only "no frames" that is blocked
    out, sc = run(tmp_path, "cam-secure")
    assert sc.verdict is Verdict.PASS
    assert [f.kind for f in sc.findings] == ["output-stopped"]
    regions = json.loads((out.bundle / "devices/cam-secure/camera-shutter/main-regions.json").read_text())
    assert regions["windows"]["closed"]["status"] == 200 and regions["windows"]["closed"]["frames"] == 0


def test_a_closed_window_that_answers_503_is_not_a_blocked_view(shutter_mode, tmp_path: Path) -> None:
    """The camera app turns its stream server away while the shutter is closed (503): once that
    counted as "the shutter blocked the view" and passed; nothing of the closed window was seen."""
    shutter_mode("refuse")
    cfg = sim_config_variant(tmp_path, "cam-secure", lambda d: d["camera"].pop("observation"))
    _, sc = run_scenario(tmp_path / "ev", "cam-secure", "camera-shutter", cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    part = sc.coverage["output main"]
    assert part.state.value == "unobserved" and "503" in part.summary and part.seen["status"]["closed"] == 503
    assert not [f for f in sc.findings if f.kind == "output-stopped"]
    [f] = sc.findings
    assert f.kind == "stream-unavailable" and f.path == "https://198.18.0.14:8443/stream.mjpg"


def test_an_open_window_without_a_scene_proves_nothing(sim_bench: dict, tmp_path: Path) -> None:
    """A camera looking at nothing (a black or capped lens) passes the closed window trivially:
    the open window must show a scene first (the positive control)."""
    root = Path(sim_bench["devices"]["cam-secure"]["console"]).parent / "rootfs/run/shutter"
    cfg = sim_config_variant(tmp_path, "cam-secure", lambda d: (d["camera"].pop("observation"),
                                                               d["actions"].update({"shutter-open": {"via": "ssh", "command": "echo closed > /run/shutter"}})))
    try:
        _, sc = run_scenario(tmp_path / "ev", "cam-secure", "camera-shutter", cfg)  # "open" leaves the sensor dark
    finally:
        root.write_text("open\n")
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    part = sc.coverage["output main"]
    assert part.state.value == "unobserved" and "open window shows no scene" in part.summary
    assert part.seen["scene_regions"] <= 1  # at most the frame counter's corner (the OSD) carries detail
    assert not [f for f in sc.findings if f.kind == "shutter-leak"]  # against a scene-less reference nothing is judged, noise never "leaks"


def test_devices_without_a_shutter_action_are_skipped(sim_bench: dict, tmp_path: Path) -> None:
    _, sc = run(tmp_path, "cam-compliant")
    assert sc.verdict is Verdict.SKIPPED and "shutter" in sc.findings[0].summary


def test_rtsp_output_is_judged_like_the_others(sim_knob, tmp_path: Path) -> None:
    sim_knob("cam-leaky", "shutter-mode")("works")  # the leaky camera, its shutter made to work
    out, sc = run(tmp_path, "cam-leaky")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    rtsp = json.loads((out.bundle / "devices/cam-leaky/camera-shutter/rtsp-regions.json").read_text())
    assert rtsp["stream"] == "rtsp://198.18.0.15:8554/main"
    assert rtsp["windows"]["open"]["frames"] >= 5 and rtsp["windows"]["closed"]["frames"] >= 5
    assert rtsp["windows"]["closed"]["leaking_regions"] == [] and sum(v >= 0.5 for v in rtsp["windows"]["reopened"]["median_ncc"].values()) >= 12
