"""Is any of the scene still reaching the output? Per-region judgement of frames.

A closed privacy shutter (lens cover, rotation, retraction) leaves a sensor that sees
nothing: black level, read noise, maybe a glow. A shutter that only dims the image, or a
lens defocused by a half-closed cover, still passes the scene, and a cover over part of
the lens passes the rest. The global mean cannot tell these apart; regions can. Each
frame is cut into a grid; a region *shows the scene* when either

* its low-resolution detail (the image minus its blur) correlates with the same region
  of the open-shutter reference (zero-mean normalised cross-correlation, so a dimmed or
  defocused scene still correlates, while sensor noise and the smooth glare or gradient
  on the inside of a cover do not), or
* it carries texture comparable to the reference's (edge energy and contrast both at
  least a quarter of the reference region's): something is visible, even if it moved.

A region is *leaking* when it shows the scene in at least :data:`LEAK_FRACTION` of the
closed-shutter frames. Frames are compared at 1/4 resolution, which averages sensor
noise away and keeps what a person would recognise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GRID = (4, 4)  # rows, columns
SCALE = 4  # downsampling before any statistic
BAND_SIGMA = 3.0  # pixels of the analysis image: detail finer than this is compared
NCC_VISIBLE = 0.5
TEXTURE_RATIO = 0.25
LEAK_FRACTION = 0.1
#: fraction of regions that must show the reference again after reopening
REOPEN_FRACTION = 0.75
#: band-pass detail (grey levels, std at analysis resolution) a region of the open reference
#: needs to count as showing a scene: sensor noise averaged by the median and the 1/4 scale
#: stays well under it, a lit scene is far above
SCENE_DETAIL = 1.5
#: fraction of the reference's regions that must show a scene (the positive control: a black,
#: flat or frozen-blank open window proves nothing about a closed one)
SCENE_FRACTION = 0.25


def _gray_small(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    if gray.shape[::-1] != size:
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32)


def _regions(img: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    rows, cols = GRID
    h, w = img.shape
    return [(r, c, img[r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols]) for r in range(rows) for c in range(cols)]


def _edges(img: np.ndarray) -> float:
    gy, gx = np.gradient(img)
    return float(np.hypot(gx, gy).mean())


@dataclass
class Reference:
    """The open-shutter scene: median of a window of frames at the analysis resolution."""

    image: np.ndarray
    size: tuple[int, int]  # (width, height) of the analysis image

    @classmethod
    def from_frames(cls, frames: list[np.ndarray]) -> "Reference":
        """The median of ``frames`` at analysis resolution (at least one frame)."""
        if not frames:
            raise ValueError("a reference needs at least one frame")
        h, w = frames[0].shape[:2]
        size = (max(8, w // SCALE), max(8, h // SCALE))
        return cls(np.median(np.stack([_gray_small(f, size) for f in frames]), axis=0), size)


def scene_regions(ref: Reference) -> list[tuple[int, int]]:
    """The regions of the open reference that carry scene detail (see :data:`SCENE_DETAIL`)."""
    det = _detail(ref.image)
    return [(r, c) for r, c, d in _regions(det) if float(d.std()) >= SCENE_DETAIL]


def shows_a_scene(ref: Reference) -> bool:
    """The open window shows a scene: at least :data:`SCENE_FRACTION` of its regions carry detail."""
    return len(scene_regions(ref)) >= SCENE_FRACTION * GRID[0] * GRID[1]


@dataclass
class RegionStat:
    """One grid region of one frame: its statistics and whether it shows the scene."""

    row: int
    col: int
    mean: float
    contrast: float  # standard deviation
    edges: float
    ncc: float  # with the reference region
    shows_scene: bool

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _detail(img: np.ndarray) -> np.ndarray:
    """Band-pass: the image minus its blur. Glare, vignetting and gradients on a closed cover
    are smooth and vanish; the scene's detail survives dimming and a defocus."""
    import cv2

    return img - cv2.GaussianBlur(img, (0, 0), BAND_SIGMA)


def region_stats(frame: np.ndarray, ref: Reference) -> list[RegionStat]:
    """Per-region statistics of one frame against the reference."""
    img = _gray_small(frame, ref.size)
    det, rdet = _detail(img), _detail(ref.image)
    out = []
    for (r, c, reg), (_, _, rreg), (_, _, d), (_, _, rd) in zip(_regions(img), _regions(ref.image), _regions(det), _regions(rdet)):
        a, b = d - d.mean(), rd - rd.mean()
        denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
        ncc = float((a * b).sum() / denom) if denom > 1e-6 else 0.0
        contrast, edges = float(reg.std()), _edges(reg)
        r_contrast, r_edges = float(rreg.std()), _edges(rreg)
        textured = r_edges > 0 and r_contrast > 0 and edges >= TEXTURE_RATIO * r_edges and contrast >= TEXTURE_RATIO * r_contrast
        out.append(RegionStat(r, c, float(reg.mean()), contrast, edges, ncc, ncc >= NCC_VISIBLE or textured))
    return out


@dataclass
class WindowVerdict:
    """What a window of frames showed, region by region."""

    frames: int
    leaking: list[tuple[int, int]] = field(default_factory=list)  # regions showing the scene in >= LEAK_FRACTION of frames
    shown_fraction: dict[str, float] = field(default_factory=dict)  # "r,c" -> fraction of frames showing the scene
    median_ncc: dict[str, float] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        """No region shows the scene (or no frame arrived at all: the output stopped)."""
        return not self.leaking

    def scene_fraction(self) -> float:
        """Fraction of regions whose median correlation with the reference is >= NCC_VISIBLE."""
        if not self.median_ncc:
            return 0.0
        return sum(1 for v in self.median_ncc.values() if v >= NCC_VISIBLE) / len(self.median_ncc)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"frames": self.frames, "leaking_regions": [list(x) for x in self.leaking], "shown_fraction": self.shown_fraction,
                "median_ncc": self.median_ncc, "blocked": self.blocked}


def judge_window(frames: list[np.ndarray], ref: Reference) -> tuple[WindowVerdict, list[list[RegionStat]]]:
    """Judge a window of frames against the reference; also return every frame's statistics."""
    per_frame = [region_stats(f, ref) for f in frames]
    v = WindowVerdict(len(frames))
    if not per_frame:
        return v, per_frame
    for i in range(len(per_frame[0])):
        r, c = per_frame[0][i].row, per_frame[0][i].col
        shown = sum(1 for fs in per_frame if fs[i].shows_scene) / len(per_frame)
        key = f"{r},{c}"
        v.shown_fraction[key] = round(shown, 3)
        v.median_ncc[key] = round(float(np.median([fs[i].ncc for fs in per_frame])), 3)
        if shown >= LEAK_FRACTION:
            v.leaking.append((r, c))
    return v, per_frame


def overlay(frame: np.ndarray, leaking: list[tuple[int, int]]) -> np.ndarray:
    """The frame with a red box on every leaking region and a grid: the picture for the report."""
    import cv2

    img = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    rows, cols = GRID
    for r in range(rows):
        for c in range(cols):
            p0, p1 = (c * w // cols, r * h // rows), ((c + 1) * w // cols - 1, (r + 1) * h // rows - 1)
            cv2.rectangle(img, p0, p1, (0, 0, 255) if (r, c) in leaking else (90, 90, 90), 2 if (r, c) in leaking else 1)
    return img
