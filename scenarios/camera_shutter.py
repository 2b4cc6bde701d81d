"""camera-shutter: with the shutter closed, no part of the scene reaches any output, and
it comes back when the shutter opens (T/AI 110.1-2020 6.2.1 g).

Phases, on every http(s) stream in ``camera.streams``:

1. **open**: ``shutter-open``, wait ``camera.settle_s``, grab a window of frames: the
   reference scene (the median frame). No frame here is an ``error``: nothing to judge.
2. **closed**: ``shutter-close``, wait, grab a window: each frame judged region by region
   against the reference (:mod:`rig.vision.shutter`). A region showing the scene in 10 %
   or more of the frames is a leak. A stream that stops delivering frames is blocked.
3. **reopened**: ``shutter-open``, wait, grab a window: at least 75 % of the regions must
   correlate with the reference again, so the check is seen to discriminate; otherwise the
   verdict is ``inconclusive``.

With ``camera.observation`` (a bench camera looking at the device from outside), the lens
region of its picture is judged the same way in the same windows: the clause asks for a
*physical* shutter, so a lens region still showing the open lens while the shutter is
closed is ``lens-uncovered``, even if the outputs go dark.

Parts: ``output <stream>`` per configured output and ``observation`` for the bench camera.
An output is observed when its open window showed a scene (the positive control), its closed
window was grabbed (frames, or a 2xx stream that stopped sending), and the scene came back
when reopened. A grab that failed or answered other than 2xx (a 401, a 503) in any window is
not observed, never "the shutter blocked the view".

Evidence per stream: ``<stream>-open.png``, ``<stream>-closed.png`` (leaking regions boxed
in red), ``<stream>-reopened.png`` and ``<stream>-regions.json`` (every frame's per-region
statistics and the window verdicts).
"""

from __future__ import annotations

import json
import re
import time

from drivers.stream import FrameGrab, grab_frames
from rig.config import CameraStream, DeviceConfig
from rig.coverage import Part
from rig.config import SecretMissing
from rig.scenario import Scenario, ScenarioContext, grabbable_streams, run_action
from rig.vision.shutter import GRID, REOPEN_FRACTION, SCENE_FRACTION, Reference, judge_window, overlay, scene_regions

#: the name the bench observation camera's windows and artifacts go by
OBSERVATION = "observation"


class CameraShutter(Scenario):
    """The camera-shutter scenario (see the module docstring for its phases)."""

    id = "camera-shutter"
    title = "A closed shutter blocks the camera on every output"
    clauses = ("T/AI 110.1-2020 6.2.1 g",)

    def applies(self, device: DeviceConfig) -> str | None:
        missing = [a for a in ("shutter-close", "shutter-open") if a not in device.actions]
        if missing:
            return f"no {' and no '.join(missing)} action: the rig cannot drive the shutter"
        if not device.camera or not device.camera.streams:
            return "no camera stream configured: no output to judge"
        return None

    def run(self, ctx: ScenarioContext) -> None:
        cam = ctx.device.camera
        assert cam is not None
        client_cert = ctx.device.network.client_certificate if ctx.device.network else None
        streams = grabbable_streams(ctx)
        parts = {s.name: ctx.part(f"output {s.name}", f"{s.url}: the scene shows when open, no region of it when closed, and it comes back",
                                  kind="stream-unavailable", interface="camera", path=s.url) for s in streams}
        if cam.observation is not None:
            parts[OBSERVATION] = ctx.part("observation", f"{cam.observation.url}: the lens region, seen from outside, is covered when closed",
                                          kind="stream-unavailable", interface="camera", path=cam.observation.url)
        if not parts:
            return  # every output was named as unchecked (grabbable_streams): nothing observed

        targets = []
        for name, url in [(s.name, s.url) for s in streams] + ([(OBSERVATION, cam.observation.url)] if cam.observation else []):
            try:
                targets.append((name, url, ctx.stream_credentials(name)))
            except SecretMissing as exc:
                parts[name].error(str(exc), "secret-missing")
        if not targets:
            return

        def window(phase: str) -> dict[str, FrameGrab]:
            run_action(ctx, f"shutter-{'close' if phase == 'closed' else 'open'}")
            time.sleep(cam.settle_s)
            out = {}
            for name, url, creds in targets:
                g = grab_frames(url, cam.window_s, max_frames=cam.frames, client_cert=client_cert if name != OBSERVATION else None, auth=creds)
                ctx.step(f"{phase} window", stream=name, **g.to_dict())
                out[name] = g
            return out

        opened = window("open")
        try:
            closed = window("closed")
        finally:
            reopened = window("reopened")  # leave the device as found, whatever happened
        for s in streams:
            if s.name in opened:
                self._judge(ctx, s, parts[s.name], opened[s.name], closed[s.name], reopened[s.name])
        if cam.observation is not None and OBSERVATION in opened:
            x, y, w, h = cam.observation.lens
            lens = {k: FrameGrab(g.url, [f[y:y + h, x:x + w] for f in g.frames], g.times, g.bytes, g.decoded, g.undecodable, g.error, g.status)
                    for k, g in (("open", opened[OBSERVATION]), ("closed", closed[OBSERVATION]), ("reopened", reopened[OBSERVATION]))}
            obs = CameraStream(name=OBSERVATION, url=cam.observation.url)
            if not lens["closed"].frames and not lens["closed"].error:
                lens["closed"].error = "the observation camera delivered no frame while the shutter was closed"
            self._judge(ctx, obs, parts[OBSERVATION], lens["open"], lens["closed"], lens["reopened"], observation=True)

    def _judge(self, ctx: ScenarioContext, s: CameraStream, part: Part, opened: FrameGrab, closed: FrameGrab, reopened: FrameGrab,
               observation: bool = False) -> None:
        """Judge one output's three windows; record artifacts, findings and what its part observed.

        With ``observation`` the frames are the lens as a bench camera sees it: a region
        that still shows the open lens means the physical cover did not close over it."""
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", s.name)
        window_s = ctx.device.camera.window_s  # type: ignore[union-attr]
        seen = {"frames": {"open": len(opened.frames), "closed": len(closed.frames), "reopened": len(reopened.frames)},
                "status": {"open": opened.status, "closed": closed.status, "reopened": reopened.status}}
        if opened.error or not opened.frames:
            part.unobserved(f"{s.name}: no reference with the shutter open: {opened.error or f'no frame within {window_s:g} s'}", **seen)
            return
        import cv2

        ref = Reference.from_frames(opened.frames)
        ctx.artifact(f"{name}-open.png", cv2.imencode(".png", overlay(opened.frames[len(opened.frames) // 2], []))[1].tobytes(), "image/png")
        c_verdict, c_stats = judge_window(closed.frames, ref)
        r_verdict, r_stats = judge_window(reopened.frames, ref)
        shown = [f"{name}-open.png"]
        if closed.frames:
            worst = max(range(len(c_stats)), key=lambda i: sum(st.shows_scene for st in c_stats[i]))
            ctx.artifact(f"{name}-closed.png", cv2.imencode(".png", overlay(closed.frames[worst], c_verdict.leaking))[1].tobytes(), "image/png")
            shown.append(f"{name}-closed.png")
        if reopened.frames:
            ctx.artifact(f"{name}-reopened.png", cv2.imencode(".png", overlay(reopened.frames[-1], []))[1].tobytes(), "image/png")
            shown.append(f"{name}-reopened.png")
        evidence = ctx.evidence_of(*shown, f"{name}-regions.json")
        scene = scene_regions(ref)
        doc = {
            "grid": list(GRID), "stream": s.url, "scene_regions": [list(x) for x in scene],
            "windows": {"open": opened.to_dict(), "closed": {**closed.to_dict(), **c_verdict.to_dict()}, "reopened": {**reopened.to_dict(), **r_verdict.to_dict()}},
            "closed_frames": [[st.to_dict() for st in fs] for fs in c_stats],
            "reopened_frames": [[st.to_dict() for st in fs] for fs in r_stats],
        }
        ctx.artifact(f"{name}-regions.json", json.dumps(doc, indent=1).encode(), "application/json")
        ctx.measure(f"{name}_closed", {"frames": len(closed.frames), "leaking_regions": len(c_verdict.leaking), "error": closed.error})
        total = GRID[0] * GRID[1]
        seen.update(scene_regions=len(scene), leaking_regions=len(c_verdict.leaking), evidence=evidence)
        if len(scene) < SCENE_FRACTION * total:  # judged first: against a reference with no scene, any noise "matches"
            part.unobserved(f"{s.name}: the open window shows no scene ({len(scene)} of {total} regions carry detail): a black, flat or "
                            "blank picture cannot show what a closed shutter hides", kind="shutter-inconclusive", **seen)
            return
        if c_verdict.leaking:
            regions = ", ".join(f"r{r}c{c}" for r, c in c_verdict.leaking)
            what = (f"seen from outside, {len(c_verdict.leaking)} of {total} lens regions stay uncovered with the shutter closed ({regions}): "
                    "no physical cover closes over them") if observation else \
                f"{s.name}: with the shutter closed, {len(c_verdict.leaking)} of {total} regions still show the scene ({regions})"
            ctx.finding("lens-uncovered" if observation else "shutter-leak", "high", what,
                        interface="camera", path=s.url, evidence=evidence,
                        detail={"leaking_regions": [list(x) for x in c_verdict.leaking], "shown_fraction": c_verdict.shown_fraction,
                                "frames": len(closed.frames)})
        if closed.error:
            part.unobserved(f"{s.name}: the closed window could not be grabbed ({closed.error}): a failing stream is not a shutter that "
                            "blocks the view", **seen)
            return
        back = r_verdict.scene_fraction()
        if reopened.error or not reopened.frames or back < REOPEN_FRACTION:
            part.unobserved(f"{s.name}: the scene did not come back after reopening ({back:.0%} of regions match the reference, need "
                            f"{REOPEN_FRACTION:.0%}; {len(reopened.frames)} frames{'; ' + reopened.error if reopened.error else ''}): "
                            "the check cannot show it discriminates", kind="shutter-inconclusive", **seen)
            return
        if not closed.frames:
            ctx.finding("output-stopped", "info", f"{s.name}: the stream answered {closed.status or 'and stayed open'} but sent no frame while "
                        "the shutter was closed: the output is blocked", interface="camera", path=s.url, evidence=evidence)
            part.observed(f"{s.name}: open window showed the scene ({len(scene)} of {total} regions); closed: the stream stayed up "
                          f"and sent no frame; reopened: {back:.0%} of regions back", **seen)
            return
        part.observed(f"{s.name}: open window showed the scene ({len(scene)} of {total} regions); closed: {len(closed.frames)} frames, "
                      f"{len(c_verdict.leaking)} regions showing it; reopened: {back:.0%} of regions back", **seen)
