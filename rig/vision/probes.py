"""Probe images for the device's model: the lab's own set, or images the rig renders.

A lab gives ``model.probes``: a folder of PNG/JPEG images (read in name order, each bounded
in size). Without one, the rig renders :data:`RENDERED` images from the bench scene (a real
photograph: crops of it) and plain colour fields, so that a classifier's answers differ from
one probe to the next (model-integrity needs answers that vary: a constant answer from a
trojaned model is then told from the genuine one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: a probe image larger than this is not read (bytes)
MAX_PROBE_BYTES = 16 << 20
#: probes taken from a lab folder, at most
MAX_PROBES = 256
#: how many images the rig renders without a lab set
RENDERED = 12


@dataclass(frozen=True)
class Probe:
    """One probe image: its name and its encoded bytes (PNG or JPEG)."""

    name: str
    data: bytes


class ProbeError(ValueError):
    """The lab's probe folder cannot be used (missing, empty, an image that does not decode)."""


def rendered(count: int = RENDERED, fmt: str = ".png") -> list[Probe]:
    """``count`` deterministic probe images: 160x120 crops of the bench scene on a 4x3 grid, then
    colour fields; encoded as ``fmt`` (``.png`` or ``.jpg``)."""
    import cv2
    import numpy as np

    from rig.sim.media import scene

    img = scene(640, 360)
    h, w = img.shape[:2]
    crops = [img[r * h // 3:(r + 1) * h // 3, c * w // 4:(c + 1) * w // 4] for r in range(3) for c in range(4)]
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (40, 40, 40)]
    images = crops + [np.full((120, 160, 3), c, np.uint8) for c in colours]
    out = []
    for i, im in enumerate(images[:count]):
        ok, buf = cv2.imencode(fmt, cv2.resize(im, (160, 120), interpolation=cv2.INTER_AREA))
        if not ok:
            raise ProbeError(f"OpenCV could not encode probe {i}")
        out.append(Probe(f"scene-{i:02d}{fmt}", buf.tobytes()))
    return out


def from_folder(folder: Path, limit: int = MAX_PROBES) -> list[Probe]:
    """The lab's probe images in ``folder`` (``*.png``, ``*.jpg``, ``*.jpeg``, name order, at most
    ``limit``); raises :class:`ProbeError` naming the folder or the file that is wrong."""
    import cv2
    import numpy as np

    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg") and p.is_file())
    except OSError as exc:
        raise ProbeError(f"model.probes: {folder}: {exc.strerror or exc}") from None
    if not files:
        raise ProbeError(f"model.probes: {folder} holds no .png or .jpg image")
    out = []
    for p in files[:limit]:
        if p.stat().st_size > MAX_PROBE_BYTES:
            raise ProbeError(f"model.probes: {p}: larger than {MAX_PROBE_BYTES >> 20} MiB")
        data = p.read_bytes()
        if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
            raise ProbeError(f"model.probes: {p}: not an image OpenCV decodes")
        out.append(Probe(p.name, data))
    return out
