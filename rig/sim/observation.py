"""The bench observation camera of the simulated bench: it looks at each device from outside.

Run by ``rig sim up`` on the bench host (not in a device namespace)::

    python -m rig.sim.observation --listen 198.18.0.1:9180 --state DIR DEVICE...

``GET /<device>.mjpg`` is an MJPEG stream of a picture of that device: its body and its
lens, with the physical cover in the position the device's shutter puts it. The cover
follows the device's ``/run/shutter`` (written by the shutter actions) and its simulated
shutter behaviour (``DIR/<device>/shutter-mode`` or the profile's default): ``works``,
``dim`` and ``stop`` close the cover over the whole lens; ``partial`` over the left two
thirds; ``ignored`` leaves it open (the shutter exists only in software, if at all).
The lens sits at :data:`LENS` in every picture.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from rig.sim import media

WIDTH, HEIGHT = 320, 240
LENS = (120, 60, 80, 80)  # x, y, w, h of the lens in the observation picture
FPS = 10


_LENS_IMAGE: np.ndarray | None = None


def render(cover: float, seed: int) -> bytes:
    """The device seen from outside, its lens ``cover`` (0 open .. 1 closed) covered from the left."""
    import cv2

    global _LENS_IMAGE
    rng = np.random.default_rng(seed)
    img = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    cv2.rectangle(img, (60, 30), (260, 210), (70, 70, 75), -1)  # the camera body
    x, y, w, h = LENS
    if _LENS_IMAGE is None:
        _LENS_IMAGE = cv2.resize(media.scene(), (w, h), interpolation=cv2.INTER_AREA)  # the glass shows the scene's reflection
    lens = _LENS_IMAGE.copy()
    yy, xx = np.mgrid[0:h, 0:w]
    ring = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) > (w / 2 - 2) ** 2
    lens[ring] = (30, 30, 30)
    img[y:y + h, x:x + w] = lens
    if cover > 0:
        cv2.rectangle(img, (x - 4, y - 4), (x + int((w + 8) * cover) - 4, y + h + 4), (40, 120, 200), -1)  # the sliding cover
    noisy = np.clip(img.astype(np.float32) + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise media.MediaError("OpenCV could not encode the observation picture")
    return buf.tobytes()


COVER = {"works": 1.0, "dim": 1.0, "stop": 1.0, "refuse": 1.0, "partial": 2 / 3, "ignored": 0.0}


class Bench:
    """Where each device's shutter state and behaviour are read from."""

    def __init__(self, state: Path, defaults: dict[str, str]):
        self.state, self.defaults = state, defaults
        # every cover position rendered before the first request: on a loaded bench host a
        # window must never wait for frames to be drawn (a closed window once got none)
        self._frames: dict[float, list[bytes]] = {c: [render(c, s) for s in range(10)] for c in set(COVER.values())}

    def cover(self, device: str) -> float:
        """How far the device's physical cover is closed right now (0..1)."""
        try:
            closed = (self.state / device / "rootfs" / "run" / "shutter").read_text()[:16].strip() == "closed"
        except OSError:
            closed = False
        if not closed:
            return 0.0
        try:
            mode = (self.state / device / "shutter-mode").read_text().strip()
        except OSError:
            mode = self.defaults.get(device, "works")
        return COVER.get(mode, COVER.get(self.defaults.get(device, "works"), 1.0))

    def frame(self, device: str, i: int) -> bytes:
        cover = self.cover(device)
        if cover not in self._frames:
            self._frames[cover] = [render(cover, s) for s in range(10)]
        return self._frames[cover][i % 10]


def main(argv: list[str] | None = None) -> int:
    """Serve the observation streams until SIGTERM."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="address:port on the bench host")
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("devices", nargs="+", help="device=shutter-behaviour")
    args = ap.parse_args(argv)
    bench = Bench(args.state, dict(d.split("=", 1) for d in args.devices))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt: str, *a: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            device = self.path.lstrip("/").removesuffix(".mjpg")
            if device not in bench.defaults:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=obs")
            self.end_headers()
            start, i = time.monotonic(), 0
            try:
                while not stop.is_set() and time.monotonic() - start < 120:
                    self.wfile.write(media.mjpeg_part(bench.frame(device, i), "obs"))
                    i += 1
                    time.sleep(1 / FPS)
            except OSError:
                return

    host, port = args.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"observation: serving {', '.join(bench.defaults)} on {args.listen}", flush=True)
    stop.wait()
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
