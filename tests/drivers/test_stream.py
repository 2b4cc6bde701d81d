"""Pulling a stream as a client: bounded in time and bytes, errors as text, never raised."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from drivers.stream import grab_frames, pull
from rig.sim import media


class Endless(BaseHTTPRequestHandler):
    def log_message(self, *a) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(10_000):
                self.wfile.write(b"z" * 4096)
                time.sleep(0.001)
        except OSError:
            pass


@contextmanager
def served(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """An HTTP server on loopback for the block; yields its port."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()


def test_pull_stops_at_its_deadline() -> None:
    with served(Endless) as port:
        res = pull(f"http://127.0.0.1:{port}/stream.mjpg", seconds=0.5)
        assert res.error is None and res.status_line == "HTTP/1.0 200 OK"
        assert res.bytes > 0 and res.seconds < 2.0
        capped = pull(f"http://127.0.0.1:{port}/", seconds=5, max_bytes=10_000)
        assert capped.bytes < 10_000 + 65536 and capped.seconds < 5


def test_refused_and_unsupported_are_reported() -> None:
    assert "connect to 127.0.0.1:9" in (pull("http://127.0.0.1:9/", seconds=1).error or "")
    assert "http and https only" in (pull("rtsp://127.0.0.1/", seconds=1).error or "")


class Mjpeg(BaseHTTPRequestHandler):
    """Three frames, a corrupt one, then silence: what grab_frames must cope with."""

    def log_message(self, *a) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=x")
        self.end_headers()
        opened, _ = media.shutter_frames("works", count=3)
        try:
            for f in opened[:2]:
                self.wfile.write(media.mjpeg_part(f, "x"))
            self.wfile.write(media.mjpeg_part(b"\xff\xd8\xff\xe0garbage\xff\xd9", "x"))
            self.wfile.write(media.mjpeg_part(opened[2], "x"))
            time.sleep(3)
        except OSError:
            pass


def test_grab_frames_decodes_mjpeg_and_skips_corrupt_frames() -> None:
    with served(Mjpeg) as port:
        g = grab_frames(f"http://127.0.0.1:{port}/stream.mjpg", seconds=1.0)
        assert g.error is None and len(g.frames) == 3 and g.undecodable == 1
        assert g.frames[0].shape == (240, 320, 3) and g.times == sorted(g.times)
        assert grab_frames(f"http://127.0.0.1:{port}/", seconds=5, max_frames=2).times[-1] < 2
    refused = grab_frames("http://127.0.0.1:9/stream.mjpg", seconds=1)
    assert refused.frames == [] and "connect to 127.0.0.1:9" in (refused.error or "")
