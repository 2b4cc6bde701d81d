"""Frames judged per second by camera-shutter and deidentification, at 640x480 and 1920x1080.

For each size: JPEG frames of the bench scene (scikit-image's astronaut, scaled, with
sensor noise) are decoded by OpenCV (the baseline: what any frame consumer pays) and then
judged region by region against a reference (:func:`rig.vision.shutter.region_stats`), and
separately with the face check on the face region (:func:`rig.vision.faces.check_face`:
CenterFace and Haar on the region, SSIM). Prints frames per second for decoding alone and
for decoding plus each judgement, in the same run.

    .venv/bin/python benchmarks/frames.py [--frames 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rig.sim.media import scene, scene_face  # noqa: E402
from rig.vision.faces import check_face  # noqa: E402
from rig.vision.shutter import Reference, region_stats  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    for w, h in ((640, 480), (1920, 1080)):
        base = scene(w, h).astype(np.float32)
        jpegs = [cv2.imencode(".jpg", np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
                 for _ in range(20)]
        ref = Reference.from_frames([cv2.imdecode(j, cv2.IMREAD_COLOR) for j in jpegs[:5]])
        t0 = time.perf_counter()
        for i in range(args.frames):
            cv2.imdecode(jpegs[i % len(jpegs)], cv2.IMREAD_COLOR)
        decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(args.frames):
            region_stats(cv2.imdecode(jpegs[i % len(jpegs)], cv2.IMREAD_COLOR), ref)
        both = time.perf_counter() - t0
        ref_img = cv2.imdecode(jpegs[0], cv2.IMREAD_COLOR)
        face = scene_face(w, h)
        t0 = time.perf_counter()
        for i in range(args.frames):
            check_face(cv2.imdecode(jpegs[i % len(jpegs)], cv2.IMREAD_COLOR), ref_img, face)
        faces = time.perf_counter() - t0
        print(f"{w}x{h}: decode only {args.frames / decode:.0f} frames/s; + shutter regions {args.frames / both:.0f} frames/s "
              f"({(both - decode) / args.frames * 1000:.2f} ms per frame); + face check of one {face[2]}x{face[3]} face {args.frames / faces:.0f} frames/s "
              f"({(faces - decode) / args.frames * 1000:.2f} ms per frame)")


if __name__ == "__main__":
    main()
