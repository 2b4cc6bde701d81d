"""A simulated camera's updater: takes an image by HTTP upload, checks it, and "flashes" it.

Run by the simulated bench inside a device's network namespace::

    python -m rig.sim.updater --root ROOT --port 8088 [--pubkey PEM --monotonic] [--fetch URL [--ca PEM]]

``POST /upgrade`` with the image as the body (``curl --data-binary @IMAGE``): 200 ``upgrade
ok`` once the image passes :func:`rig.sim.fwimage.check`, its version then written into the
device's ``/etc/device-info`` (what ``identify`` reports); 400 with the reason otherwise.
With ``--pubkey`` the vendor's Ed25519 signature is verified (and, with ``--monotonic``,
no older version taken); without, only the CRC (a violating device).

With ``--fetch`` the updater checks for updates itself when the device's ``update-check``
action touches ``/run/update.check`` in its root: it downloads URL (HTTPS verified against
``--ca``, or plain HTTP) and checks the image, without applying it. Bounded: 64 MiB per image,
one fetch per trigger, 10 s per fetch.
"""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from rig.sim import fwimage

MAX_IMAGE = 64 << 20


def running_version(root: Path) -> str:
    """The firmware version in the device's /etc/device-info."""
    for line in (root / "etc" / "device-info").read_text().splitlines():
        k, _, v = line.partition("=")
        if k.strip() == "firmware":
            return v.strip()
    return "0"


def flash(root: Path, version: str) -> None:
    """The device now runs ``version`` (written atomically into /etc/device-info)."""
    info = root / "etc" / "device-info"
    lines = [ln for ln in info.read_text().splitlines() if not ln.startswith("firmware=")] + [f"firmware={version}"]
    tmp = info.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, info)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--port", type=int, default=8088)
    ap.add_argument("--pubkey", type=Path)
    ap.add_argument("--monotonic", action="store_true")
    ap.add_argument("--fetch")
    ap.add_argument("--ca", type=Path)
    args = ap.parse_args(argv)
    public = serialization.load_pem_public_key(args.pubkey.read_bytes()) if args.pubkey else None
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "SimCamUpdater/1.0"

        def log_message(self, fmt: str, *a: object) -> None:
            pass

        def _answer(self, code: int, text: str) -> None:
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/upgrade":
                self._answer(404, "no such endpoint")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_IMAGE:
                self._answer(413 if length > MAX_IMAGE else 400, "image size not accepted")
                return
            image = self.rfile.read(length)
            with lock:
                verdict = fwimage.check(image, running_version(args.root), public, args.monotonic)  # type: ignore[arg-type]
                if not verdict.ok:
                    self._answer(400, f"upgrade refused: {verdict.reason}")
                    return
                flash(args.root, verdict.version or "0")
            self._answer(200, f"upgrade ok: now {verdict.version} ({verdict.reason})")

    srv = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    trigger = args.root / "run" / "update.check"
    ctx = ssl.create_default_context(cafile=str(args.ca)) if args.ca else None
    print(f"updater: port {args.port}, {'signature' if public else 'CRC only'}, fetch {args.fetch or '-'}", flush=True)
    while not stop.wait(0.3):
        if args.fetch and trigger.exists():
            try:
                trigger.unlink()
            except OSError:
                pass
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(args.fetch, timeout=10, context=ctx) as resp:  # noqa: S310 (the bench's own update server)
                    image = resp.read(MAX_IMAGE + 1)
                verdict = fwimage.check(image, running_version(args.root), public, args.monotonic)  # type: ignore[arg-type]
                print(f"updater: fetched {len(image)} bytes in {time.monotonic() - t0:.2f} s: {verdict.reason}", flush=True)
            except (OSError, ValueError) as exc:
                print(f"updater: fetch failed: {exc}", file=sys.stderr, flush=True)
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
