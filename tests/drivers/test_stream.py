"""Pulling a stream as a client: bounded in time and bytes, errors as text, never raised."""

from __future__ import annotations

import threading
import time
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


def test_pull_stops_at_its_deadline() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res = pull(f"http://127.0.0.1:{srv.server_address[1]}/stream.mjpg", seconds=0.5)
        assert res.error is None and res.status_line == "HTTP/1.0 200 OK"
        assert res.bytes > 0 and res.seconds < 2.0
        capped = pull(f"http://127.0.0.1:{srv.server_address[1]}/", seconds=5, max_bytes=10_000)
        assert capped.bytes < 10_000 + 65536 and capped.seconds < 5
    finally:
        srv.shutdown()


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
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Mjpeg)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        g = grab_frames(f"http://127.0.0.1:{srv.server_address[1]}/stream.mjpg", seconds=1.0)
        assert g.error is None and len(g.frames) == 3 and g.undecodable == 1
        assert g.frames[0].shape == (240, 320, 3) and g.times == sorted(g.times)
        assert grab_frames(f"http://127.0.0.1:{srv.server_address[1]}/", seconds=5, max_frames=2).times[-1] < 2
    finally:
        srv.shutdown()
    refused = grab_frames("http://127.0.0.1:9/stream.mjpg", seconds=1)
    assert refused.frames == [] and "connect to 127.0.0.1:9" in (refused.error or "")
