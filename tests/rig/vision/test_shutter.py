"""The per-region shutter judgement on labelled frames: what must count as blocked, what must not.

The labelled set is the astronaut scene under sensor noise (several levels), JPEG-coded
(several qualities), with the shutter states a lab meets. ``test_error_rates`` prints the
table the docs quote.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rig.sim.media import scene
from rig.vision.shutter import GRID, Reference, judge_window, overlay

ALL = {(r, c) for r in range(GRID[0]) for c in range(GRID[1])}


def jpeg(img: np.ndarray, rng: np.random.Generator, noise: float, quality: int) -> np.ndarray:
    noisy = np.clip(img.astype(np.float32) + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def variants(base: np.ndarray) -> dict[str, tuple[np.ndarray, set]]:
    """Closed-shutter images and the regions that show the scene in each."""
    h, w = base.shape[:2]
    f = base.astype(np.float32)
    dark = np.full_like(f, 6.0)
    shifted = np.roll(f, (12, 20), axis=(0, 1))
    return {
        "black (works)": (dark, set()),
        "lit inside of the cover (works)": (np.full_like(f, 120.0), set()),
        "glare gradient on the cover (works)": (np.repeat(np.linspace(10, 90, w, dtype=np.float32)[None, :, None], h, 0).repeat(3, 2), set()),
        "ignored": (f, ALL),
        "scene moved while 'closed'": (shifted, ALL),
        "dimmed to 12 % and defocused": (cv2.GaussianBlur(f * 0.12, (0, 0), 4), ALL),
        "dimmed to 5 %": (f * 0.05, ALL),
        "cover over the left half": (np.concatenate([dark[:, : w // 2], f[:, w // 2:]], axis=1), {(r, c) for r in range(4) for c in (2, 3)}),
    }


def test_error_rates(capsys: pytest.CaptureFixture[str]) -> None:
    base = scene(320, 240)
    rows = []
    for noise in (2.0, 6.0, 12.0):
        for quality in (90, 60, 30):
            rng = np.random.default_rng(int(noise * 100 + quality))
            ref = Reference.from_frames([jpeg(base, rng, noise, quality) for _ in range(8)])
            for name, (img, shows) in variants(base).items():
                verdict, _ = judge_window([jpeg(img, rng, noise, quality) for _ in range(10)], ref)
                leak = set(verdict.leaking)
                rows.append((noise, quality, name, len(leak - shows), len(shows - leak)))
            back, _ = judge_window([jpeg(base, rng, noise, quality) for _ in range(10)], ref)
            rows.append((noise, quality, "reopened: scene back", 0, 0 if back.scene_fraction() >= 0.75 else 16))
    with capsys.disabled():
        print("\nnoise quality variant                              false-leak-regions missed-regions")
        for r in rows:
            print("{:<5} {:<7} {:<36} {:>18} {:>14}".format(*r))
    false_leak = sum(r[3] for r in rows)
    missed = sum(r[4] for r in rows)
    regions = len(rows) * 16
    assert false_leak == 0, [r for r in rows if r[3]]
    # a dimmed frame's darkest regions (her black suit) can fall under the noise at sigma 12:
    assert missed <= 0.01 * regions, [r for r in rows if r[4]]


def test_overlay_marks_leaking_regions_in_red() -> None:
    img = overlay(np.zeros((240, 320, 3), np.uint8), [(0, 0)])
    assert tuple(img[1, 1]) == (0, 0, 255) and tuple(img[60, 100]) == (90, 90, 90) and tuple(img[30, 40]) == (0, 0, 0)


def test_empty_window_is_blocked_and_reference_needs_frames() -> None:
    ref = Reference.from_frames([scene(320, 240)])
    verdict, stats = judge_window([], ref)
    assert verdict.blocked and verdict.frames == 0 and stats == []
    with pytest.raises(ValueError):
        Reference.from_frames([])


def test_the_open_window_must_show_a_scene(capsys: pytest.CaptureFixture[str]) -> None:
    """The positive control: a reference made of black, flat, noisy or blank frames proves
    nothing about a closed shutter, however dark the closed window is."""
    from rig.vision.shutter import SCENE_FRACTION, scene_regions, shows_a_scene

    base = scene(320, 240)
    h, w = base.shape[:2]
    need = SCENE_FRACTION * GRID[0] * GRID[1]
    rows = []
    for noise in (2.0, 6.0, 12.0):
        for quality in (90, 60, 30):
            rng = np.random.default_rng(int(noise * 10 + quality))
            cases = {"scene": (base, True), "scene dimmed to 15 %": ((base * 0.15).astype(np.uint8), True),
                     "black sensor": (np.full_like(base, 6), False), "flat grey card": (np.full_like(base, 128), False),
                     "glare gradient": (np.repeat(np.linspace(10, 90, w)[None, :, None], h, 0).repeat(3, 2).astype(np.uint8), False)}
            for name, (img, expect) in cases.items():
                ref = Reference.from_frames([jpeg(img, rng, noise, quality) for _ in range(8)])
                rows.append((noise, quality, name, len(scene_regions(ref)), expect, shows_a_scene(ref)))
    with capsys.disabled():
        print(f"\nnoise quality case                  regions-with-detail (need {need:.0f}) shows-a-scene")
        for r in rows:
            print("{:<5} {:<7} {:<21} {:>22} {:>14}".format(r[0], r[1], r[2], r[3], str(r[5])))
    assert [r for r in rows if r[4] != r[5]] == []
