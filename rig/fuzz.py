"""Mutation strategies and one-case checks for privrig's untrusted inputs: configs, action
templates, captures and bundles. Shared by the property tests (``tests/``, a small budget
that fits CI) and the longer campaign (``benchmarks/fuzz.py``).

Each ``check_*`` function runs one case and returns ``None`` when privrig behaved (a clean
result or its documented refusal), or a one-line description of the misbehaviour: an
exception other than the documented one, or a wrong answer (a changed bundle verified).
A hang is caught by the caller's time bound.
"""

from __future__ import annotations

import random
import shutil
import socket
import threading
from pathlib import Path
from typing import Callable

#: bytes a mutation inserts: what YAML, format strings and binary formats are made of
SPECIALS = [b"&a ", b"*a", b"<<: *a", b"!!int ", b"!!bool ", b"!!python/object ", b"{", b"}", b"[", b"]", b": ", b"- ", b"\n", b"\t",
            b"'", b'"', b"~", b"{token}", b"{0}", b"{token:>9}", b"{token!r}", b"\x00", b"\xff", b"\x1b[2J", b"%", b"\\", b"#", b"2020-02-30",
            b"a{99999}", b"(" * 50, b"[" * 60]


def mutate(data: bytes, rng: random.Random, edits: int = 3) -> bytes:
    """``data`` with a few random edits: bytes flipped, runs cut, specials inserted, lines duplicated."""
    buf = bytearray(data)
    for _ in range(edits):
        if not buf:
            buf += rng.choice(SPECIALS)
            continue
        pos = rng.randrange(len(buf))
        how = rng.randrange(5)
        if how == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif how == 1:
            del buf[pos:pos + rng.randint(1, 64)]
        elif how == 2:
            buf[pos:pos] = rng.choice(SPECIALS)
        elif how == 3:
            end = buf.find(b"\n", pos)
            start = buf.rfind(b"\n", 0, pos) + 1
            if end > start:
                buf[end:end] = b"\n" + bytes(buf[start:end])
        else:
            del buf[pos:]
    return bytes(buf)


def check_config(text: bytes, path: Path) -> str | None:
    """Load ``text`` as a bench config: a LoadedConfig or a ConfigError whose lines are single
    escaped lines naming the file (or a file it names in its folder); anything else is a failure."""
    from rig.config import ConfigError, load_config

    path.write_bytes(text)
    try:
        load_config(path)
    except ConfigError as exc:
        for p in exc.problems:
            line = str(p)
            # the config's own path, or a file it names beside it (a credentials list it could not read)
            if "\n" in line or "\x1b" in line or not (line.startswith(str(path)) or line.startswith(f"{path.parent}/")):
                return f"config problem line is not one escaped line naming the file: {line[:120]!r}"
    except Exception as exc:  # noqa: BLE001 - this is what the check looks for
        return f"config: {type(exc).__name__}: {str(exc)[:120]}"
    return None


def check_template(command: str) -> str | None:
    """An action command: refused by validation, or rendered with every placeholder into a
    bounded string; anything else is a failure."""
    from pydantic import ValidationError

    from rig.config import Action

    try:
        action = Action.model_validate({"via": "ssh", "command": command})
    except ValidationError:
        return None
    except Exception as exc:  # noqa: BLE001
        return f"template validation: {type(exc).__name__}: {str(exc)[:120]}"
    values = {"token": "privrig-0123456789abcdef0123", "sink_host": "198.18.0.1", "sink_port": "25004", "model": "/data/m.bin"}
    try:
        out = action.render(**values)
    except Exception as exc:  # noqa: BLE001
        return f"template render: {type(exc).__name__}: {str(exc)[:120]}"
    if len(str(out)) > len(command) + 4 * sum(len(v) for v in values.values()) + 64:
        return f"template render grew to {len(str(out))} characters"
    return None


def check_capture(data: bytes, path: Path) -> str | None:
    """Read and judge a capture: an Analysis (perhaps stopped early) or CaptureError."""
    from rig.traffic.flows import CaptureError
    from rig.traffic.verdict import analyse_capture

    path.write_bytes(data)
    try:
        analyse_capture(path)
    except CaptureError:
        return None
    except Exception as exc:  # noqa: BLE001
        return f"capture: {type(exc).__name__}: {str(exc)[:120]}"
    return None


def tamper_bundle(src: Path, dst: Path, rng: random.Random) -> str:
    """A copy of the bundle ``src`` at ``dst`` with one random damage; returns what was done."""
    import os

    shutil.copytree(src, dst, symlinks=True)
    files = sorted(p for p in dst.rglob("*") if p.is_file())
    victim = rng.choice(files)
    rel = victim.relative_to(dst).as_posix()
    how = rng.randrange(7)
    if how == 0:
        data = bytearray(victim.read_bytes() or b"\0")
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        victim.write_bytes(bytes(data))
        return f"flip a bit of {rel}"
    if how == 1:
        victim.unlink()
        return f"delete {rel}"
    if how == 2:
        (victim.parent / "planted.bin").write_bytes(b"x")
        return f"add a file beside {rel}"
    if how == 3:
        victim.unlink()
        victim.symlink_to("/dev/zero")
        return f"{rel} -> /dev/zero"
    if how == 4:
        victim.unlink()
        os.mkfifo(victim)
        return f"{rel} replaced by a FIFO"
    if how == 5:
        victim.write_bytes(victim.read_bytes()[: max(0, victim.stat().st_size // 2)])
        return f"cut {rel} in half"
    (victim.parent / "empty-folder").mkdir()
    return f"add an empty folder beside {rel}"


def check_bundle(bundle: Path, what: str) -> str | None:
    """``rig verify`` on a damaged bundle must say tampered (or not a bundle), never verified."""
    from rig.verify import TAMPERED, UNREADABLE, verify_bundle

    try:
        rep = verify_bundle(bundle)
    except Exception as exc:  # noqa: BLE001
        return f"verify after '{what}': {type(exc).__name__}: {str(exc)[:120]}"
    if rep.status not in (TAMPERED, UNREADABLE):
        return f"verify after '{what}': {rep.status}"
    return None


# -- device answers: what a mutated device says to the rig's own clients ------------------------

#: genuine answers of a camera, per protocol: the seeds the device-side campaign mutates
DEVICE_SEEDS: dict[str, list[bytes]] = {
    "http": [b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="cam", qop="auth", nonce="6f1a2b", algorithm=MD5\r\n'
             b'WWW-Authenticate: Basic realm="cam"\r\nContent-Length: 0\r\n\r\n',
             b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=f\r\n\r\n--f\r\nContent-Type: image/jpeg\r\n"
             b"Content-Length: 20\r\n\r\n\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\xff\xd9\r\n--f\r\n"],
    "rtsp": [b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm="cam", nonce="abc123"\r\n\r\n',
             b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 44\r\n\r\n"
             b"v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=cam\r\nm=video 0 RTP/AVP 96\r\n"],
    "telnet": [b"\xff\xfd\x18\xff\xfb\x01\xff\xfb\x03\r\nSimCam login: ", b"\r\nBusyBox v1.36 built-in shell (ash)\r\n# "],
    "ssh": [b"SSH-2.0-dropbear_2019.78\r\n", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"],
}


def loopback_server(handler: Callable[[socket.socket], None], connections: int = 8,
                    accept_timeout: float = 10.0) -> tuple[int, threading.Thread]:
    """A listener on 127.0.0.1 that hands each of up to ``connections`` connections to ``handler``
    and closes it; it stops after ``accept_timeout`` s without a connection. Returns its port and
    its thread. Bounded both ways, as the bench's rule asks of every loop."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(connections)
    srv.settimeout(accept_timeout)

    def loop() -> None:
        try:
            for _ in range(connections):
                conn, _ = srv.accept()
                with conn:
                    handler(conn)
        except OSError:
            pass
        finally:
            srv.close()

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return srv.getsockname()[1], th


def _serve_once(answer: bytes, read_first: bool) -> tuple[int, threading.Thread]:
    """A loopback listener that answers each of up to 8 connections with ``answer`` (after the
    client's request when ``read_first``) and closes it; returns its port and its thread."""

    def answer_one(conn: socket.socket) -> None:
        conn.settimeout(1.0)
        try:
            if read_first:
                conn.recv(65536)
            conn.sendall(answer)
        except OSError:
            pass

    return loopback_server(answer_one, accept_timeout=6.0)


def check_device_answer(proto: str, answer: bytes) -> str | None:
    """Serve ``answer`` as a device would on ``proto`` (``http``, ``rtsp``, ``telnet``, ``ssh``) and
    run the rig's clients for it (the MJPEG grabber or the RTSP client, then the protocol probe
    and login-service naming): ``None`` when each ended with an answer or its documented
    "no answer", or the misbehaviour (an exception out of a driver that never raises, a raw
    escape byte in what it returned)."""
    import json

    from drivers.httpauth import Credentials
    from drivers.probes import identify_login_service, probe_tcp
    from drivers.rtsp import request
    from drivers.stream import grab_frames

    port, th = _serve_once(answer, read_first=proto in ("http", "rtsp"))
    out: list[object] = []
    try:
        if proto == "http":
            out.append(grab_frames(f"http://127.0.0.1:{port}/s.mjpg", 1.0, max_frames=2, connect_timeout=1.0, auth=Credentials("admin", "x")).to_dict())
        elif proto == "rtsp":
            out.append(repr(request(f"rtsp://127.0.0.1:{port}/main", "DESCRIBE", Credentials("admin", "x"), timeout=1.0)))
        res = probe_tcp("127.0.0.1", port, timeout=0.5)
        out += [res.summary, res.detail]
        out.append(identify_login_service("127.0.0.1", port, timeout=0.5).note)
    except Exception as exc:  # noqa: BLE001 - any escape from a driver is the finding
        return f"{proto}: {type(exc).__name__}: {exc}"[:300]
    text = json.dumps(out, default=str)
    for raw in ("\x1b", "\x00", "\x07"):
        if raw in text:
            return f"{proto}: a raw {raw!r} in what the driver returned"
    return None
