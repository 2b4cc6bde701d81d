"""A simulated camera's uplink: a heartbeat with the device's token to its cloud every second.

Run by the simulated bench inside a device's network namespace::

    python -m rig.sim.uplink --cloud 198.19.0.50:8883 --name cloud.simcam.example --device NAME --token-file F (--ca PEM | --no-verify)

Each heartbeat is a fresh TLS connection (SNI ``--name``): with ``--ca`` the server's
certificate must chain to that CA and carry the name (a compliant device); with
``--no-verify`` any server is believed (``verify=False``, as too many firmwares ship). A
failed connection waits a second and tries again; SIGTERM stops it.

``--mode-file`` names a fault knob the tests set, read before each heartbeat: ``silent``
(complete the handshake, as the device would, then send nothing and close), ``mute`` (open
the TCP connection and send nothing for 6 s), ``hangup`` (open it and close at once); any
other content, or no file, is the normal heartbeat.
"""

from __future__ import annotations

import argparse
import signal
import socket
import ssl
import sys
import threading
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Send heartbeats until SIGTERM."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cloud", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--token-file", type=Path, required=True)
    ap.add_argument("--device", default="simcam")
    ap.add_argument("--mode-file", type=Path)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--ca", type=Path)
    group.add_argument("--no-verify", action="store_true")
    args = ap.parse_args(argv)
    host, _, port = args.cloud.rpartition(":")
    token = args.token_file.read_text().strip()
    if args.ca:
        ctx = ssl.create_default_context(cafile=str(args.ca))
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    seq = 0
    while not stop.wait(1.0):
        seq += 1
        mode = _mode(args.mode_file)
        try:
            with socket.create_connection((host, int(port)), timeout=3) as raw:
                if mode == "hangup":
                    continue
                if mode == "mute":
                    stop.wait(6.0)
                    continue
                with ctx.wrap_socket(raw, server_hostname=args.name) as tls:
                    if mode == "silent":
                        continue
                    tls.settimeout(3)
                    tls.sendall(f"HEARTBEAT device={args.device} token={token} seq={seq}\n".encode())
                    tls.recv(64)
        except (OSError, ssl.SSLError):
            continue
    return 0


def _mode(path: Path | None) -> str:
    """The fault knob's word (``normal`` without one)."""
    try:
        return path.read_text()[:16].strip() if path is not None else "normal"
    except OSError:
        return "normal"


if __name__ == "__main__":
    sys.exit(main())
