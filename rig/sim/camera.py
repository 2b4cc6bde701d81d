"""The simulated camera application: the streams a device serves and pushes.

Run by the simulated bench inside a device's network namespace::

    python -m rig.sim.camera --root ROOT --state DIR [--http PORT] [--https PORT]
        [--tls-min TLSv1|TLSv1.2] [--mtls] [--push rtp-h264,xor-udp,srtp]

* ``--http`` / ``--https`` serve ``/stream.mjpg`` (multipart MJPEG of OpenCV frames)
  and ``/snapshot.jpg``; HTTPS uses the device certificate from ``DIR/tls``, accepts
  versions from ``--tls-min`` on, and with ``--mtls`` demands a client certificate
  issued by the device CA.
* ``--push`` streams to the sink the device was told about. The device is told over
  its own shell: the ``stream-start`` action writes ``HOST PORT`` into
  ``/run/stream.sink`` of the device's root filesystem, ``stream-stop`` removes it,
  and this process follows that file. ``rtp-h264`` is ffmpeg encoding live with
  libx264 into RTP (``HOST:PORT``, RTCP on PORT+1); ``srtp`` is the same kind of
  H.264 in RTP under SRTP AEAD_AES_128_GCM (RFC 7714); ``xor-udp`` is JPEG frames
  XOR-scrambled with a fixed key to ``HOST:PORT+2``.

Every loop is bounded in rate and reacts to SIGTERM.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import warnings
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from cryptography.x509.oid import ExtendedKeyUsageOID

from rig.certs import issue
from rig.sim import media, webauth
from rig.sim.webauth import LOGIN_PAGE, WebAuth

FPS = 10
STREAM_LIMIT_S = 120  # one client gets at most this much of the MJPEG stream
XOR_KEY = bytes.fromhex("5a3c9e01f7b2640d")


# -- PKI --------------------------------------------------------------------------------------

def make_pki(directory: Path, device: str) -> dict[str, Path]:
    """A device CA, a server certificate for ``device`` (EC, and an RSA one for a legacy TLS
    stack) and a client certificate for the rig (made once)."""
    paths = {n: directory / f"{n}.pem" for n in ("ca-cert", "ca-key", "server-cert", "server-key", "rsa-cert", "rsa-key", "client-cert", "client-key")}
    ca = issue(paths["ca-cert"], paths["ca-key"], f"{device} device CA", ca=True)
    issue(paths["server-cert"], paths["server-key"], device, issuer=ca, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    issue(paths["rsa-cert"], paths["rsa-key"], device, issuer=ca, usage=ExtendedKeyUsageOID.SERVER_AUTH, key_type="rsa2048")
    issue(paths["client-cert"], paths["client-key"], "privrig-bench", issuer=ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return paths


# -- HTTP(S) ----------------------------------------------------------------------------------

SHUTTER_MODES = ("works", "ignored", "partial", "dim", "stop", "refuse")


class _Frames:
    """Frames of the bench scene rendered once and cycled, so serving costs no CPU per
    client; which set is served follows the shutter (``/run/shutter`` in the device's root,
    written by the shutter actions) and the simulated shutter behaviour (``--shutter``, or
    ``DIR/shutter-mode`` written by a test to inject a fault at run time), and the face
    filter (``--deid``, or ``DIR/deid-mode``)."""

    def __init__(self, root: Path | None = None, state: Path | None = None, mode: str = "works", deid: str = "none"):
        self.root, self.state, self.default_mode, self.default_deid = root, state, mode, deid
        self._sets: dict[tuple[str, str], tuple[list[bytes], list[bytes]]] = {}

    def _deid(self) -> str:
        try:
            deid = (self.state / "deid-mode").read_text().strip() if self.state else self.default_deid  # type: ignore[operator]
        except OSError:
            deid = self.default_deid
        return deid if deid in media.DEID_MODES else self.default_deid

    def _mode(self) -> str:
        try:
            mode = (self.state / "shutter-mode").read_text().strip() if self.state else self.default_mode  # type: ignore[operator]
        except OSError:
            mode = self.default_mode
        return mode if mode in SHUTTER_MODES else self.default_mode

    def refusing(self) -> bool:
        """The camera turns its stream server away while the shutter is closed (``refuse``)."""
        return self._mode() == "refuse" and self.closed()

    def closed(self) -> bool:
        """The shutter is closed (the device's ``/run/shutter`` says so)."""
        try:
            return self.root is not None and (self.root / "run" / "shutter").read_text()[:16].strip() == "closed"
        except OSError:
            return False

    def at(self, i: int) -> bytes | None:
        """Frame ``i`` as the camera sees it now, or None while a stopping shutter is closed."""
        key = (self._mode(), self._deid())
        if key not in self._sets:
            self._sets[key] = media.shutter_frames(key[0], deid=key[1])
        opened, closed = self._sets[key]
        if self.closed():
            return closed[i % len(closed)] if closed else None
        return opened[i % len(opened)]


def _handler(frames: _Frames, stop: threading.Event, auth: WebAuth | None = None,
             login_page: bool = False) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "SimCam/1.0"
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt: str, *args: object) -> None:  # quiet: the bench log is not a web log
            pass

        def _send(self, code: int, body: bytes, ctype: str = "text/html", headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorised(self) -> bool:
            """With accounts, the stream and snapshot need Basic/Digest or a form-login session."""
            if auth is None:
                return True
            if auth.session_ok(self.headers.get("Cookie")):
                return True
            if auth.check(self.headers.get("Authorization"), "GET", self.client_address[0]):
                return True
            self._send(401, b"<html><body>401 Unauthorized</body></html>\n", headers=[("WWW-Authenticate", c) for c in auth.challenges()])
            return False

        def do_POST(self) -> None:  # noqa: N802
            if not (login_page and auth is not None and self.path == "/login"):
                self.send_error(404)
                return
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            sid = auth.form_login(form.get("username", [""])[0], form.get("password", [""])[0], self.client_address[0])
            if sid is None:
                self._send(200, LOGIN_PAGE % b"<p class=error>Invalid user name or password.</p>")
                return
            self._send(302, b"", headers=[("Location", "/live.html"), ("Set-Cookie", f"session={sid}; HttpOnly; Path=/")])

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if login_page and self.path in ("/", "/index.html"):
                self._send(200, LOGIN_PAGE % b"")
                return
            if login_page and self.path.startswith("/live.html"):
                if auth is not None and not auth.session_ok(self.headers.get("Cookie")):
                    self._send(302, b"", headers=[("Location", "/")])
                    return
                self._send(200, b"<html><body><img src=/stream.mjpg></body></html>\n")
                return
            if self.path.startswith(("/snapshot.jpg", "/stream.mjpg")) and not self._authorised():
                return
            if self.path.startswith("/snapshot.jpg"):
                body = frames.at(int(time.time() * FPS))
                if body is None:
                    self.send_error(503, "camera off")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if not self.path.startswith("/stream.mjpg"):
                self.send_error(404)
                return
            if frames.refusing():
                self.send_error(503, "camera off")
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=privrigframe")
            self.end_headers()
            start = time.monotonic()
            i = 0
            try:
                while not stop.is_set() and time.monotonic() - start < STREAM_LIMIT_S:
                    frame = frames.at(i)
                    if frame is not None:  # a camera that stops sending while its shutter is closed
                        self.wfile.write(media.mjpeg_part(frame))
                    i += 1
                    time.sleep(1 / FPS)
            except (OSError, ssl.SSLError):
                return

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # refused TLS clients (no or a foreign certificate) are expected: one line, no traceback
        print(f"camera: {client_address[0]}: {sys.exc_info()[1]}", file=sys.stderr, flush=True)


def serve_http(port: int, frames: _Frames, stop: threading.Event, tls: ssl.SSLContext | None = None,
               auth: WebAuth | None = None, login_page: bool = False, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve the camera's HTTP (or, with ``tls``, HTTPS) endpoints on ``host:port`` in a daemon
    thread. With ``auth`` the stream and snapshot need an account (Basic/Digest as ``auth`` says, or a session from the form login that
    ``login_page`` serves at ``/``)."""
    srv = _Server((host, port), _handler(frames, stop, auth, login_page))
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        # the handshake happens in the handler thread (on first read), not in accept()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return srv


def tls_context(pki: dict[str, Path], minimum: str, mutual: bool, legacy: bool = False) -> ssl.SSLContext:
    """The device's TLS server context: its certificate, the lowest version it takes, client
    certificates if ``mutual``. ``legacy`` is an old firmware's TLS stack kept beside TLS 1.3:
    TLS 1.0 up, an RSA certificate, and static-RSA CBC suites (no forward secrecy) allowed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if legacy:
        ctx.load_cert_chain(pki["rsa-cert"], pki["rsa-key"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("AES128-SHA:AES256-SHA:DEFAULT:@SECLEVEL=0")
        return ctx
    ctx.load_cert_chain(pki["server-cert"], pki["server-key"])
    if minimum == "TLSv1":
        with warnings.catch_warnings():  # serving TLS 1.0 is what this simulated device is for
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # an old firmware's TLS stack
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if mutual:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca-cert"])
    return ctx


# -- push -------------------------------------------------------------------------------------

def read_sink(root: Path) -> tuple[str, int] | None:
    """The sink the device was told about (``/run/stream.sink``), validated."""
    try:
        text = (root / "run" / "stream.sink").read_text()[:100].split()
        host, port = str(ipaddress.IPv4Address(text[0])), int(text[1])
        if not 1 <= port <= 65531:
            return None
        return host, port
    except (OSError, ValueError, IndexError):
        return None


class Pusher:
    """The push channels of one device, started and stopped as the sink file says."""

    def __init__(self, kinds: list[str], state: Path, frames: _Frames):
        self.kinds = kinds
        self.state = state
        self.frames = frames
        self.target: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ffmpeg: subprocess.Popen[bytes] | None = None
        self._nals: list[bytes] | None = None

    def follow(self, target: tuple[str, int] | None) -> None:
        """Start, restart or stop the push channels to match ``target`` (None: stop)."""
        if target == self.target:
            if self._ffmpeg is not None and self._ffmpeg.poll() is not None and target is not None:
                self._start_ffmpeg(target)  # ffmpeg died (sink went away): restart, as the app would
            return
        self.stop()
        self.target = target
        if target is None:
            return
        self._stop = threading.Event()
        for kind in self.kinds:
            if kind == "rtp-h264":
                self._start_ffmpeg(target)
            elif kind == "srtp":
                self._spawn(self._srtp, target)
            elif kind == "xor-udp":
                self._spawn(self._xor, (target[0], target[1] + 2))

    def _spawn(self, fn, target: tuple[str, int]) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=fn, args=(target, self._stop), daemon=True)
        t.start()
        self._threads.append(t)

    def _start_ffmpeg(self, target: tuple[str, int]) -> None:
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            print("camera: ffmpeg missing, rtp-h264 not streamed", file=sys.stderr, flush=True)
            return
        self._ffmpeg = subprocess.Popen(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15", "-c:v", "libx264",
             "-preset", "superfast", "-tune", "zerolatency", "-g", "15", "-f", "rtp", f"rtp://{target[0]}:{target[1]}?pkt_size=1200"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sys.stderr,
        )

    def _srtp(self, target: tuple[str, int], stop: threading.Event) -> None:
        if self._nals is None:
            self._nals = media.nal_units(media.h264_clip(self.state / "media"))
        sender = media.SrtpAeadSender(os.urandom(16), os.urandom(12))  # keys agreed out of band (DTLS-SRTP on a real device)
        pk = media.RtpPacketizer(ssrc=int.from_bytes(os.urandom(4), "big"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            i = 0
            while not stop.is_set():
                nal = self._nals[i % len(self._nals)]
                i += 1
                frame_end = (nal[0] & 0x1F) in (1, 5)
                for p in pk.packets(nal, last_of_frame=frame_end):
                    try:
                        s.sendto(sender.protect(p), target)
                    except OSError:
                        pass
                if frame_end:
                    stop.wait(1 / 15)

    def _xor(self, target: tuple[str, int], stop: threading.Event) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            i = 0
            while not stop.is_set():
                data = media.xor_scramble(self.frames.at(i) or b"", XOR_KEY)
                i += 1
                for j in range(0, len(data), 1200):
                    try:
                        s.sendto(data[j:j + 1200], target)
                    except OSError:
                        pass
                stop.wait(1 / 5)

    def stop(self) -> None:
        """Stop every push channel (threads joined, ffmpeg terminated)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self._threads.clear()
        if self._ffmpeg is not None:
            if self._ffmpeg.poll() is None:
                self._ffmpeg.terminate()
                try:
                    self._ffmpeg.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self._ffmpeg.kill()
            self._ffmpeg = None
        self.target = None


def main(argv: list[str] | None = None) -> int:
    """Run the camera application until SIGTERM."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--name", default="simcam")
    ap.add_argument("--http", type=int)
    ap.add_argument("--https", type=int)
    ap.add_argument("--tls-min", choices=["TLSv1", "TLSv1.2"], default="TLSv1.2")
    ap.add_argument("--mtls", action="store_true")
    ap.add_argument("--push", default="")
    ap.add_argument("--shutter", choices=SHUTTER_MODES, default="works")
    ap.add_argument("--deid", choices=media.DEID_MODES, default="none")
    ap.add_argument("--deny", action="store_true", help="stream and snapshot answer 401 (credentials the bench does not have)")
    ap.add_argument("--accounts", type=Path, help="file of user:password lines: the stream and snapshot need one of them")
    ap.add_argument("--auth", choices=webauth.SCHEMES, default="digest", help="how the stream asks for an account")
    ap.add_argument("--throttle", action="store_true", help="each wrong password slows the next answer (a rate limit)")
    ap.add_argument("--login-page", action="store_true", help="a form login at / (POST /login sets a session)")
    ap.add_argument("--legacy-tls", action="store_true", help="TLS 1.0 and static-RSA CBC suites beside TLS 1.3")
    ap.add_argument("--internal", type=int, help="plain HTTP on 127.0.0.1 only, no login (the RTSP server's source)")
    args = ap.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    frames = _Frames(args.root, args.state, args.shutter, args.deid)
    servers = []
    auth = webauth.WebAuth(webauth.read_accounts(args.accounts), args.auth, throttle=args.throttle) if args.accounts else None
    if args.deny:  # credentials the bench config does not give (a mute device): an account nobody has, wrong guesses slowed down
        auth = webauth.WebAuth({}, "digest-md5", throttle=True)
    if args.http:
        servers.append(serve_http(args.http, frames, stop, auth=auth, login_page=args.login_page))
    if args.https:
        pki = make_pki(args.state / "tls", args.name)
        servers.append(serve_http(args.https, frames, stop, tls_context(pki, args.tls_min, args.mtls, args.legacy_tls),
                                  auth=auth, login_page=args.login_page))
    if args.internal:
        servers.append(serve_http(args.internal, frames, stop, host="127.0.0.1"))
    pusher = Pusher([k for k in args.push.split(",") if k], args.state, frames)
    (args.root / "run").mkdir(exist_ok=True)
    print(f"camera: serving http={args.http} https={args.https} push={args.push or '-'}", flush=True)
    try:
        while not stop.wait(0.2):
            if pusher.kinds:
                pusher.follow(read_sink(args.root))
    finally:
        pusher.stop()
        for srv in servers:
            srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
