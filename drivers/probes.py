"""Active service probes: recognise debug services by their protocol, not their port.

Each probe opens its own TCP connection, talks the protocol briefly, and returns a
:class:`ProbeResult` with a transcript of every byte exchanged. Probes are bounded:
at most ``READ_LIMIT`` bytes read and ``timeout`` seconds per step.

Recognised so far: telnet (and whether it hands out a shell without login), SSH
(banner) and the GDB remote serial protocol.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field

from drivers.transcript import escape_bytes, strip_ansi

READ_LIMIT = 64 * 1024
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240


@dataclass
class ProbeResult:
    port: int
    service: str | None = None  # e.g. "telnet", "gdbserver", "ssh"
    debug: bool = False  # a debug/diagnostic service in the sense of clause 6.2.1 b
    summary: str = ""
    detail: dict[str, object] = field(default_factory=dict)
    transcript: list[str] = field(default_factory=list)

    def note(self, direction: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.transcript.append(f"{time.strftime('%H:%M:%S')} {direction} {escape_bytes(raw)}")

    def transcript_bytes(self) -> bytes:
        return ("\n".join(self.transcript) + "\n").encode()


CONNECT_TRIES = 4  # single-client debug stubs (gdbserver) stop listening while busy


class _Conn:
    def __init__(self, address: str, port: int, timeout: float, result: ProbeResult):
        for attempt in range(CONNECT_TRIES):
            try:
                self.sock = socket.create_connection((address, port), timeout=timeout)
                break
            except ConnectionRefusedError:
                if attempt == CONNECT_TRIES - 1:
                    raise
                result.note("!", f"connection refused, retry {attempt + 1} in 0.5 s")
                time.sleep(0.5)
        self.timeout = timeout
        self.result = result
        self.total = 0

    def send(self, data: bytes) -> None:
        self.result.note(">", data)
        self.sock.sendall(data)

    def recv(self, wait: float, until: re.Pattern[bytes] | None = None) -> bytes:
        """Read for up to ``wait`` seconds (less if ``until`` matches); bounded."""
        buf = b""
        end = time.monotonic() + wait
        while self.total < READ_LIMIT:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(min(left, self.timeout))
            try:
                chunk = self.sock.recv(4096)
            except (socket.timeout, TimeoutError):
                break
            except OSError:
                break
            if not chunk:
                break
            self.total += len(chunk)
            buf += chunk
            if until is not None and until.search(buf):
                break
        if buf:
            self.result.note("<", buf)
        return buf

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _telnet_refuse(data: bytes) -> tuple[bytes, bytes]:
    """Split telnet negotiation from text; answer every DO with WONT and WILL with DONT."""
    reply = bytearray()
    text = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == IAC and i + 1 < len(data):
            cmd = data[i + 1]
            if cmd in (DO, DONT, WILL, WONT) and i + 2 < len(data):
                opt = data[i + 2]
                if cmd == DO:
                    reply += bytes([IAC, WONT, opt])
                elif cmd == WILL:
                    reply += bytes([IAC, DONT, opt])
                i += 3
                continue
            if cmd == SB:
                j = data.find(bytes([IAC, SE]), i)
                i = j + 2 if j >= 0 else len(data)
                continue
            if cmd == IAC:
                text.append(IAC)
            i += 2
            continue
        text.append(b)
        i += 1
    return bytes(reply), bytes(text)


SHELL_PROMPT = re.compile(rb"(?:^|[\r\n])[^\r\n]{0,80}[#$] ?$")
LOGIN_PROMPT = re.compile(rb"(?i)(login|username|user name)\s*: ?$")
PASSWORD_PROMPT = re.compile(rb"(?i)password\s*: ?$")


def _gdb_packet(payload: str) -> bytes:
    return f"${payload}#{sum(payload.encode()) % 256:02x}".encode()


GDB_REPLY = re.compile(rb"^\+?\$([^#]{0,4096})#[0-9a-fA-F]{2}")


def probe_tcp(address: str, port: int, timeout: float = 3.0) -> ProbeResult:
    """Identify what answers on ``address:port`` by talking to it.

    Order: listen first (banner services: telnet, SSH), then speak GDB RSP. Never raises
    for network trouble: an unreachable port gives a result with ``service=None`` and the
    reason in ``summary``.
    """
    res = ProbeResult(port)
    try:
        conn = _Conn(address, port, timeout, res)
    except OSError as exc:
        res.summary = f"connect failed: {exc}"
        res.note("!", res.summary)
        return res
    try:
        banner = conn.recv(1.5, until=re.compile(rb"[\r\n]"))
        if banner.startswith(b"SSH-"):
            res.service = "ssh"
            res.summary = f"SSH server ({escape_bytes(banner.strip()[:80])})"
            return res
        if banner[:1] == bytes([IAC]) or LOGIN_PROMPT.search(banner) or SHELL_PROMPT.search(banner):
            return _telnet(conn, banner, res)
        if not banner:
            # same connection: single-client stubs (gdbserver) re-create their listening
            # socket after each client, so a quick second connect may never be accepted
            conn.send(b"+" + _gdb_packet("qSupported:swbreak+;hwbreak+"))
            reply = conn.recv(timeout, until=re.compile(rb"#[0-9a-fA-F]{2}"))
            m = GDB_REPLY.search(reply)
            if m:
                res.service = "gdbserver"
                res.debug = True
                res.detail["features"] = escape_bytes(m.group(1)[:300])
                conn.send(b"+" + _gdb_packet("?"))
                stop = conn.recv(timeout, until=re.compile(rb"#[0-9a-fA-F]{2}"))
                res.detail["stop_reply"] = escape_bytes(stop[:100])
                res.summary = "GDB remote serial protocol answers (qSupported accepted): a debugger can attach"
                return res
        res.summary = "no known debug protocol recognised"
        return res
    finally:
        conn.close()


def _telnet(conn: _Conn, first: bytes, res: ProbeResult) -> ProbeResult:
    res.service = "telnet"
    res.debug = True
    text = b""
    data = first
    for _ in range(6):  # bounded negotiation rounds
        reply, t = _telnet_refuse(data)
        text = strip_ansi((text + t).decode("latin-1").replace("\r", "")).encode("latin-1")
        if reply:
            conn.send(reply)
        tail = text.rstrip(b"\r\n ") + b" "
        if LOGIN_PROMPT.search(text.rstrip()) or PASSWORD_PROMPT.search(text.rstrip()) or SHELL_PROMPT.search(tail.rstrip() + b" "):
            break
        data = conn.recv(1.0, until=re.compile(rb"[:#$] ?$"))
        if not data:
            break
    stripped = text.rstrip()
    if LOGIN_PROMPT.search(stripped) or PASSWORD_PROMPT.search(stripped):
        res.detail["access"] = "login-prompt"
        res.summary = "telnet server asks for a login"
        return res
    # a prompt-looking line: prove it is a shell by having it compute something
    conn.send(b"echo RIG$((6*7))PROBE\r\n")
    out = conn.recv(2.0, until=re.compile(rb"RIG42PROBE"))
    _, out_text = _telnet_refuse(out)
    out_text = strip_ansi(out_text.decode("latin-1")).encode("latin-1")
    if b"RIG42PROBE" in out_text:
        res.detail["access"] = "unauthenticated-shell"
        res.summary = "telnet hands out a shell without any login"
    else:
        res.detail["access"] = "unknown"
        res.summary = "telnet server (no login prompt seen, shell not confirmed)"
    return res
