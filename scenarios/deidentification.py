"""deidentification: level 1 and 2 devices hand out no recognisable face (T/AI 110.1-2020
Annex A.1/A.2, 6.2.5 b c).

Against a reference of the unprocessed scene (``camera.reference``, a capture the
technician takes with the outputs' framing) whose face regions are known
(``camera.faces``, or found in the reference by CenterFace), a window of frames is
grabbed from every http(s) output and each face region of each frame is judged by
:func:`rig.vision.faces.check_face` (a detector finds a face there and its structure
matches the reference). A region recognisable in 20 % or more of the frames is a finding.

Parts: ``output <stream>`` per configured output. An output is observed when frames were
grabbed and they show the reference scene: the background outside the face regions must
correlate with the reference (:func:`rig.vision.faces.scene_match`), since a frame of another
framing, a test card or a moved camera has no face where the reference has one, and would
pass for de-identified. An output that could not be grabbed, answered other than 2xx, or
shows another scene is not observed.

Evidence per stream: ``<stream>-faces.png`` (a frame with each face region boxed: red
recognisable, green not) and ``<stream>-faces.json`` (per frame and region: detector
scores, SSIM, decision; per frame the scene match).
"""

from __future__ import annotations

import json
import re

from drivers.stream import grab_frames
from rig.config import DeviceConfig
from rig.config import SecretMissing
from rig.scenario import Scenario, ScenarioContext, grabbable_streams
from rig.vision import faces

#: fraction of frames in which a region must be recognisable to be a finding
RECOGNISABLE_FRACTION = 0.2


class Deidentification(Scenario):
    """The deidentification scenario (see the module docstring)."""

    id = "deidentification"
    title = "Outputs of level 1 and 2 devices carry no recognisable face"
    clauses = ("T/AI 110.1-2020 Annex A.1/A.2", "T/AI 110.1-2020 6.2.5 b c")

    def applies(self, device: DeviceConfig) -> str | None:
        if device.privacy_level == 3:
            return "privacy level 3: Annex A does not ask level 3 outputs to be de-identified"
        if not device.camera or not device.camera.streams:
            return "no camera stream configured: no output to judge"
        if device.camera.reference is None:
            return "no camera.reference: a capture of the unprocessed scene is needed to know whose face to look for"
        return None

    def run(self, ctx: ScenarioContext) -> None:
        import cv2

        cam = ctx.device.camera
        assert cam is not None and cam.reference is not None
        streams = grabbable_streams(ctx)
        parts = {s.name: ctx.part(f"output {s.name}", f"{s.url}: frames of the reference scene, each face region judged",
                                  kind="stream-unavailable", interface="camera", path=s.url) for s in streams}
        ref = cv2.imread(str(cam.reference), cv2.IMREAD_COLOR)
        if ref is None:
            for p in parts.values():
                p.error(f"camera.reference {cam.reference} cannot be read as an image", "reference-unreadable")
            return
        regions = [tuple(r) for r in cam.faces] or [b for b, _ in faces.centerface(ref)]
        ctx.measure("face_regions", [list(r) for r in regions])
        if not regions:
            for p in parts.values():
                p.unobserved("no face configured in camera.faces and none found in the reference: no face to look for", "no-reference-face")
            return
        client_cert = ctx.device.network.client_certificate if ctx.device.network else None
        for s in streams:
            part = parts[s.name]
            try:
                creds = ctx.stream_credentials(s.name)
            except SecretMissing as exc:
                part.error(str(exc), "secret-missing")
                continue
            g = grab_frames(s.url, cam.window_s, max_frames=cam.frames, client_cert=client_cert, auth=creds)
            ctx.step("window", stream=s.name, **g.to_dict())
            if g.error or not g.frames:
                part.unobserved(f"{s.name}: {g.error or f'no frame arrived within {cam.window_s:g} s'}", status=g.status, frames=len(g.frames))
                continue
            frames = [f if f.shape[:2] == ref.shape[:2] else cv2.resize(f, (ref.shape[1], ref.shape[0])) for f in g.frames]
            scene = [round(faces.scene_match(f, ref, regions), 3) for f in frames]  # type: ignore[arg-type]
            scene_median = sorted(scene)[len(scene) // 2]
            checks = [[faces.check_face(f, ref, r) for r in regions] for f in frames]  # type: ignore[arg-type]
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", s.name)
            rates = [sum(fc[i].recognisable for fc in checks) / len(checks) for i in range(len(regions))]
            pic = frames[len(frames) // 2].copy()
            for (x, y, w, h), rate in zip(regions, rates):
                cv2.rectangle(pic, (x, y), (x + w, y + h), (0, 0, 255) if rate >= RECOGNISABLE_FRACTION else (0, 200, 0), 2)
            ctx.artifact(f"{name}-faces.png", cv2.imencode(".png", pic)[1].tobytes(), "image/png")
            ctx.artifact(f"{name}-faces.json", json.dumps({"stream": s.url, "regions": [list(r) for r in regions], "recognisable_fraction": rates,
                                                            "scene_match": scene, "scene_match_threshold": faces.SCENE_MATCH,
                                                            "frames": [[c.to_dict() for c in fc] for fc in checks]}, indent=1).encode(), "application/json")
            evidence = ctx.evidence_of(f"{name}-faces.png", f"{name}-faces.json")
            for r, rate in zip(regions, rates):
                if rate >= RECOGNISABLE_FRACTION:
                    ssims = sorted(fc[regions.index(r)].ssim for fc in checks)
                    ctx.finding("face-recognisable", "high",
                                f"{s.name}: the face at x={r[0]} y={r[1]} {r[2]}x{r[3]} is recognisable in {rate:.0%} of {len(checks)} frames "
                                f"(median SSIM with the reference {ssims[len(ssims) // 2]:.2f})",
                                interface="camera", path=s.url, evidence=evidence,
                                detail={"region": list(r), "recognisable_fraction": round(rate, 3)})
            seen = {"frames": len(frames), "scene_match": scene_median, "recognisable_fraction": [round(r, 3) for r in rates], "evidence": evidence}
            if scene_median < faces.SCENE_MATCH:
                part.unobserved(f"{s.name}: the frames do not show the reference scene (background correlation {scene_median:.2f}, need "
                                f"{faces.SCENE_MATCH}): another framing, a test card or a moved camera has no face where the reference has one",
                                kind="scene-mismatch", **seen)
                continue
            part.observed(f"{s.name}: {len(frames)} frames of the reference scene (background correlation {scene_median:.2f}), "
                          f"{len(regions)} face region(s) judged", **seen)
