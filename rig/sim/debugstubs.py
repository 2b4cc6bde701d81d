"""Protocol stubs for debug services no Debian package provides as a daemon.

``python -m rig.sim.debugstubs KIND PORT`` serves, on 0.0.0.0:PORT, until SIGTERM:

* ``adb-open``: an adbd that answers a host's CNXN with its own CNXN (the behaviour of
  a device with ``ro.adb.secure=0``);
* ``adb-auth``: an adbd that answers CNXN with AUTH TOKEN and rejects every signature
  (``ro.adb.secure=1`` and an unknown host key);
* ``jdwp``: a JVM started with ``-agentlib:jdwp=server=y``: echoes the handshake;
* ``rtsp-open``: a camera's RTSP server that answers OPTIONS and DESCRIBE (with an SDP
  for an H.264 track) without asking for credentials (RFC 2326 framing).

Message formats follow AOSP's protocol.txt and the JDWP specification. Each connection
is served in its own thread, reads are bounded, idle connections close after 30 s.
"""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import struct
import sys

CNXN, AUTH = 0x4E584E43, 0x48545541
VERSION, MAXDATA = 0x01000001, 256 * 1024
DEVICE_BANNER = b"device::ro.product.name=simcam;ro.product.model=SimCam;ro.product.device=simcam;features=shell_v2,cmd\x00"


def message(command: int, arg0: int, arg1: int, payload: bytes) -> bytes:
    return struct.pack("<6I", command, arg0, arg1, len(payload), sum(payload) & 0xFFFFFFFF, command ^ 0xFFFFFFFF) + payload


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


class _Handler(socketserver.BaseRequestHandler):
    kind = "jdwp"

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        try:
            if self.kind == "rtsp-open":
                self._rtsp(sock)
                return
            if self.kind == "jdwp":
                if _read_exact(sock, 14) == b"JDWP-Handshake":
                    sock.sendall(b"JDWP-Handshake")
                    while sock.recv(4096):  # a debugger would now send command packets
                        pass
                return
            for _ in range(16):  # bounded conversation
                header = _read_exact(sock, 24)
                command, arg0, arg1, length, _crc, magic = struct.unpack("<6I", header)
                if magic != command ^ 0xFFFFFFFF or length > MAXDATA:
                    return
                _read_exact(sock, length)
                if command == CNXN and self.kind == "adb-open":
                    sock.sendall(message(CNXN, VERSION, MAXDATA, DEVICE_BANNER))
                elif command in (CNXN, AUTH):
                    sock.sendall(message(AUTH, 1, 0, os.urandom(20)))  # AUTH TOKEN
                else:
                    return
        except (OSError, ConnectionError, struct.error):
            return


    def _rtsp(self, sock: socket.socket) -> None:
        buf = b""
        for _ in range(16):  # bounded conversation
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(4096)
                if not chunk or len(buf) > 65536:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ")[0]
            cseq = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("cseq:")), "0")
            if method == "OPTIONS":
                sock.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n".encode())
            elif method == "DESCRIBE":
                sdp = "v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=SimCam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:track1\r\n"
                sock.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}".encode())
            else:
                sock.sendall(f"RTSP/1.0 405 Method Not Allowed\r\nCSeq: {cseq}\r\n\r\n".encode())


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("adb-open", "adb-auth", "jdwp", "rtsp-open"):
        print("usage: python -m rig.sim.debugstubs adb-open|adb-auth|jdwp|rtsp-open PORT", file=sys.stderr)
        return 2
    handler = type("Handler", (_Handler,), {"kind": argv[0]})
    server = _Server(("0.0.0.0", int(argv[1])), handler)
    signal.signal(signal.SIGTERM, _stop)
    print(f"{argv[0]} listening on {argv[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
