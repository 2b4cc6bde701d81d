"""The simulated cameras' cloud, on the bench host at the simulator's cloud address (an address
in the benchmarking range outside the bench subnet, reached through the bench host as the
devices' gateway): the TLS endpoint their uplinks send heartbeats to, and their update server.

Run by the simulated bench::

    python -m rig.sim.cloud --address 198.19.0.50 --pki DIR --updates DIR

* ``8883``: TLS with the certificate for ``cloud.simcam.example`` issued by the cloud CA in
  DIR; each connection's lines (``HEARTBEAT ...``) are answered ``OK``;
* ``8080`` (HTTP) and ``8443`` (HTTPS, same certificate): the files under ``--updates``.

Every connection is bounded (64 KiB read, 10 s); SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import functools
import signal
import socket
import ssl
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CLOUD_NAME = "cloud.simcam.example"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, fmt: str, *a: object) -> None:
        pass


def _heartbeats(address: str, port: int, ctx: ssl.SSLContext, stop: threading.Event) -> None:
    lsock = socket.create_server((address, port))
    lsock.settimeout(0.3)

    def serve(conn: socket.socket) -> None:
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(10)
                got = 0
                while got < 65536:
                    data = tls.recv(4096)
                    if not data:
                        break
                    got += len(data)
                    tls.sendall(b"OK\n" * data.count(b"\n"))
        except (OSError, ssl.SSLError):
            conn.close()

    while not stop.is_set():
        try:
            conn, _ = lsock.accept()
        except (TimeoutError, socket.timeout):
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    lsock.close()


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", required=True)
    ap.add_argument("--pki", type=Path, required=True)
    ap.add_argument("--updates", type=Path, required=True)
    args = ap.parse_args(argv)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.pki / "cloud-cert.pem", args.pki / "cloud-key.pem")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_heartbeats, args=(args.address, 8883, ctx, stop), daemon=True).start()
    handler = functools.partial(_Quiet, directory=str(args.updates))
    plain = ThreadingHTTPServer((args.address, 8080), handler)
    secure = ThreadingHTTPServer((args.address, 8443), handler)
    secure.socket = ctx.wrap_socket(secure.socket, server_side=True)
    for srv in (plain, secure):
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.3}, daemon=True).start()
    print(f"cloud: {args.address} heartbeats 8883, updates 8080/8443 from {args.updates}", flush=True)
    stop.wait()
    for srv in (plain, secure):
        srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
