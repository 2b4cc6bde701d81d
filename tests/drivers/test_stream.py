"""Pulling a stream as a client: bounded in time and bytes, errors as text, never raised."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from drivers.stream import pull


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
