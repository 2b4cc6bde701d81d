"""Active service probes: recognise debug services by their protocol, not their port.

Each probe opens its own TCP connection, talks the protocol briefly, and returns a
:class:`ProbeResult` with a transcript of every byte exchanged. Probes are bounded:
at most ``READ_LIMIT`` bytes read and ``timeout`` seconds per step.

Recognised: SSH (banner), telnet and raw TCP consoles (and whether they hand out a
shell without login), the GDB remote serial protocol, JDWP, ADB (open with CNXN or
demanding a key with AUTH), OpenOCD's telnet and TCL servers.
"""

from __future__ import annotations

import os
import re
import socket
import struct
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


OPENOCD_BANNER = b"Open On-Chip Debugger"
ADB_CNXN, ADB_AUTH, ADB_VERSION, ADB_MAXDATA = 0x4E584E43, 0x48545541, 0x01000001, 256 * 1024
JDWP_HANDSHAKE = b"JDWP-Handshake"
HASH_CHECKSUM = re.compile(rb"#[0-9a-fA-F]{2}")


def _adb_message(command: int, arg0: int, arg1: int, payload: bytes) -> bytes:
    return struct.pack("<6I", command, arg0, arg1, len(payload), sum(payload) & 0xFFFFFFFF, command ^ 0xFFFFFFFF) + payload


def probe_tcp(address: str, port: int, timeout: float = 1.5) -> ProbeResult:
    """Identify what answers on ``address:port`` by talking to it, never by its number.

    Order: listen for a banner (SSH, telnet, OpenOCD telnet, raw consoles); on a silent
    port speak GDB RSP on the same connection (single-client stubs may not accept a
    second one quickly), then JDWP, ADB, OpenOCD TCL and a shell test, each on a fresh
    connection. Every step is bounded by ``timeout``. Never raises for network trouble:
    an unreachable port gives ``service=None`` and the reason in ``summary``; a port that resets
    each connection as it opens is open, and its probes all run (``service=None``, the resets noted).
    """
    res = ProbeResult(port)
    try:
        conn: _Conn | None = _Conn(address, port, timeout, res)
    except ConnectionResetError as exc:
        # the handshake completed and the device reset at once (the reset can reach the client before
        # connect() returns): the port is open, so the other probes still run
        res.note("!", f"the device reset the connection as it opened: {exc.strerror or type(exc).__name__}")
        conn = None
    except OSError as exc:
        res.summary = f"connect failed: {exc}"
        res.note("!", res.summary)
        return res
    if conn is not None and _first_exchange(conn, res, timeout) is not None:
        return res
    for step in (_http, _rtsp, _jdwp, _adb, _openocd_tcl, _tls, _raw_shell):
        try:
            c = _Conn(address, port, timeout, res)
        except OSError as exc:
            res.note("!", f"{step.__name__[1:]}: connect failed: {exc}")
            continue
        try:
            if step(c, res, timeout):
                return res
        except OSError as exc:
            res.note("!", f"{step.__name__[1:]}: the connection dropped: {exc.strerror or type(exc).__name__}")
            if res.service is not None:
                return res
        finally:
            c.close()
    res.summary = "no known debug protocol recognised"
    return res


def _first_exchange(conn: _Conn, res: ProbeResult, timeout: float) -> ProbeResult | None:
    """The first connection: a banner names SSH, FTP, telnet or a console; a silent port is asked
    GDB RSP. The result when the port is named, ``None`` when the other probes must run."""
    try:
        banner = conn.recv(timeout, until=re.compile(rb"[\r\n]|[:#$>] ?$"))
        if banner.startswith(b"SSH-"):
            res.service = "ssh"
            res.summary = f"SSH server ({escape_bytes(banner.strip()[:80])})"
            return res
        if re.match(rb"220[ -]", banner):
            res.service = "ftp"
            res.summary = f"FTP server ({escape_bytes(banner.strip()[:80])})"
            return res
        if banner[:1] == bytes([IAC]) or OPENOCD_BANNER in banner:
            return _telnet(conn, banner, res)
        if banner and (LOGIN_PROMPT.search(banner.rstrip()) or SHELL_PROMPT.search(banner.rstrip())):
            return _telnet(conn, banner, res, raw=True)
        if not banner:
            if _gdb(conn, res, timeout):
                return res
        else:
            res.detail["banner"] = escape_bytes(banner[:200])
    except OSError as exc:  # the device dropped the connection mid-conversation (a reset, a broken pipe)
        res.note("!", f"the connection dropped during the first exchange: {exc.strerror or type(exc).__name__}")
        if res.service is not None:
            res.summary = res.summary or f"{res.service} negotiation seen, then the device dropped the connection"
            return res
    finally:
        conn.close()
    return None


def _gdb(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    conn.send(b"+" + _gdb_packet("qSupported:swbreak+;hwbreak+"))
    reply = conn.recv(timeout, until=HASH_CHECKSUM)
    m = GDB_REPLY.search(reply)
    if not m:
        return False
    res.service = "gdbserver"
    res.debug = True
    res.detail["access"] = "unauthenticated-debugger"
    res.detail["features"] = escape_bytes(m.group(1)[:300])
    conn.send(b"+" + _gdb_packet("?"))
    stop = conn.recv(timeout, until=HASH_CHECKSUM)
    res.detail["stop_reply"] = escape_bytes(stop[:100])
    res.summary = "GDB remote serial protocol answers (qSupported accepted): a debugger can attach"
    return True


#: Request-speaking protocols: what to send, and how every answer of theirs begins.
#: GET, not HEAD: small embedded servers (and openssl s_server -WWW) ignore HEAD.
ASK = {
    "http": (b"GET / HTTP/1.0\r\n\r\n", b"HTTP/"),
    "rtsp": (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", b"RTSP/"),
}


def _ask(conn: _Conn, protocol: str, timeout: float) -> bytes | None:
    """Send ``protocol``'s request; its status line if the answer is that protocol, else None."""
    payload, prefix = ASK[protocol]
    conn.send(payload)
    reply = conn.recv(timeout, until=re.compile(rb"\r?\n"))
    return reply.splitlines()[0].strip()[:60] if reply.startswith(prefix) else None


def _http(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    """An ordinary web server (not a debug service): named so nmap -sV need not be asked."""
    status = _ask(conn, "http", timeout)
    if status is None:
        return False
    res.service, res.summary = "http", f"HTTP server ({escape_bytes(status)})"
    return True


def _rtsp(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    """An RTSP server (a camera's stream, not a debug service)."""
    if _ask(conn, "rtsp", timeout) is None:
        return False
    res.service, res.summary = "rtsp", "RTSP server"
    return True


def _jdwp(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    conn.send(JDWP_HANDSHAKE)
    reply = conn.recv(timeout, until=re.compile(re.escape(JDWP_HANDSHAKE)))
    if JDWP_HANDSHAKE not in reply:
        return False
    res.service, res.debug = "jdwp", True
    res.detail["access"] = "unauthenticated-debugger"
    res.summary = "Java Debug Wire Protocol handshake accepted: a Java debugger can attach and run code"
    return True


def _adb(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    conn.send(_adb_message(ADB_CNXN, ADB_VERSION, ADB_MAXDATA, b"host::\x00"))
    reply = conn.recv(timeout)
    if len(reply) < 24:
        return False
    command, arg0, _arg1, length, _crc, magic = struct.unpack("<6I", reply[:24])
    if magic != command ^ 0xFFFFFFFF or command not in (ADB_CNXN, ADB_AUTH):
        return False
    res.service, res.debug = "adb", True
    if command == ADB_CNXN:
        res.detail["access"] = "open"
        res.detail["banner"] = escape_bytes(reply[24 : 24 + min(length, 200)])
        res.summary = "ADB answers CNXN without a key: anyone on the network gets a device shell"
    else:
        res.detail["access"] = "key-required"
        res.detail["auth_type"] = arg0
        res.summary = "ADB demands an RSA key (AUTH): the debug bridge is reachable but authenticated"
    return True


def _openocd_tcl(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    conn.send(b"version\x1a")
    reply = conn.recv(timeout, until=re.compile(rb"\x1a"))
    if OPENOCD_BANNER not in reply:
        return False
    res.service, res.debug = "openocd-tcl", True
    res.detail["access"] = "unauthenticated-debugger"
    res.detail["version"] = escape_bytes(reply.strip(b"\x1a")[:100])
    res.summary = "OpenOCD TCL server answers: JTAG/SWD debug and flash access to the chip"
    return True


def _tls(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    """A TLS server (not a debug service by itself): names it so nmap -sV need not."""
    import ssl

    ctx = naming_context()
    try:
        conn.sock.settimeout(timeout)
        tls = ctx.wrap_socket(conn.sock, do_handshake_on_connect=True)
    except (OSError, ssl.SSLError):
        return False
    res.note("<", f"TLS handshake: {tls.version()} {tls.cipher()[0] if tls.cipher() else ''}")
    res.detail["tls"] = tls.version() or ""
    try:
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        first = tls.recv(16)
    except (OSError, ssl.SSLError):
        first = b""
    res.service = "https" if first.startswith(b"HTTP/") else "tls"
    res.summary = f"{res.service} server ({tls.version()})"
    return True


def naming_context():  # -> ssl.SSLContext
    """A TLS client that names a service without trusting it and reaches every version this host's
    OpenSSL still has: a camera that speaks only TLS 1.0 is still named."""
    import ssl

    from drivers.tlsprobe import every_version

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return every_version(ctx)


def _raw_shell(conn: _Conn, res: ProbeResult, timeout: float) -> bool:
    conn.send(b"echo RIG$((6*7))PROBE\n")
    reply = conn.recv(timeout, until=re.compile(rb"RIG42PROBE"))
    if b"RIG42PROBE" not in reply:
        return False
    res.service, res.debug = "raw-console", True
    res.detail["access"] = "unauthenticated-shell"
    res.summary = "raw TCP console (UART-over-TCP bridge or bind shell) runs commands without any login"
    return True


def _telnet(conn: _Conn, first: bytes, res: ProbeResult, raw: bool = False) -> ProbeResult:
    """Telnet (or a raw console when ``raw``): what does it hand out without credentials?"""
    res.service = "raw-console" if raw else "telnet"
    res.debug = True
    if OPENOCD_BANNER in first:
        res.service = "openocd-telnet"
        res.detail["access"] = "unauthenticated-debugger"
        res.summary = "OpenOCD telnet console: JTAG/SWD debug and flash commands without any login"
        return res
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
        res.summary = f"{res.service} server asks for a login"
        return res
    # a prompt-looking line: prove it is a shell by having it compute something
    conn.send(b"echo RIG$((6*7))PROBE\r\n")
    out = conn.recv(2.0, until=re.compile(rb"RIG42PROBE"))
    _, out_text = _telnet_refuse(out)
    out_text = strip_ansi(out_text.decode("latin-1")).encode("latin-1")
    if b"RIG42PROBE" in out_text:
        res.detail["access"] = "unauthenticated-shell"
        res.summary = f"{res.service} hands out a shell without any login"
    else:
        res.detail["access"] = "unknown"
        res.summary = "telnet server (no login prompt seen, shell not confirmed)"
    return res


# -- UDP ------------------------------------------------------------------------------

#: SNMP communities tried: the defaults devices ship with (read-only, read-write).
SNMP_COMMUNITIES = ("public", "private")
SYSDESCR_OID = "1.3.6.1.2.1.1.1.0"


def _udp_exchange(address: str, port: int, payload: bytes, timeout: float, res: ProbeResult) -> bytes | None:
    """Send one datagram, return the first reply from the device (any source port) or None."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        res.note(">", payload)
        try:
            sock.sendto(payload, (address, port))
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                sock.settimeout(max(0.01, end - time.monotonic()))
                data, peer = sock.recvfrom(READ_LIMIT)
                if peer[0] == address:  # TFTP answers from a new port (its transfer id)
                    res.note("<", data)
                    return data
        except (socket.timeout, TimeoutError):
            return None
        except OSError as exc:  # ICMP port unreachable surfaces as ECONNREFUSED on some stacks
            res.note("!", str(exc))
            return None
    return None


def _snmp(address: str, port: int, res: ProbeResult, timeout: float) -> bool:
    from scapy.asn1.asn1 import ASN1_OID
    from scapy.layers.snmp import SNMP, SNMPget, SNMPvarbind

    accepted: list[str] = []
    descr = ""
    for community in SNMP_COMMUNITIES:
        req = SNMP(version=1, community=community, PDU=SNMPget(id=int.from_bytes(os.urandom(3), "big"), varbindlist=[SNMPvarbind(oid=ASN1_OID(SYSDESCR_OID))]))
        reply = _udp_exchange(address, port, bytes(req), timeout, res)
        if not reply:
            continue
        try:
            answer = SNMP(reply)
            if answer.community.val == community.encode() and answer.PDU.name.startswith("SNMPresponse"):
                accepted.append(community)
                value = answer.PDU.varbindlist[0].value.val if answer.PDU.varbindlist else b""
                descr = escape_bytes(value if isinstance(value, bytes) else str(value).encode())[:200]
                continue
        except Exception:  # noqa: BLE001 - a malformed reply is simply not SNMP (deep or lying BER included)
            pass
        res.detail["unparsed_replies"] = int(res.detail.get("unparsed_replies", 0)) + 1  # type: ignore[call-overload]
    if not accepted:
        return False
    res.service, res.debug = "snmp", True
    res.detail["access"] = "default-community"
    res.detail["communities"] = accepted
    res.detail["sysDescr"] = descr
    res.summary = f"SNMP answers with default communit{'ies' if len(accepted) > 1 else 'y'} {', '.join(accepted)} (sysDescr: {descr})"
    return True


def _tftp(address: str, port: int, res: ProbeResult, timeout: float) -> bool:
    name = f"privrig-probe-{os.urandom(4).hex()}".encode()  # never an existing file
    reply = _udp_exchange(address, port, b"\x00\x01" + name + b"\x00octet\x00", timeout, res)
    if not reply or len(reply) < 4 or reply[:2] not in (b"\x00\x03", b"\x00\x05"):
        return False
    res.service, res.debug = "tftp", True
    res.detail["access"] = "unauthenticated-transfer"
    if reply[:2] == b"\x00\x05":
        res.detail["error"] = escape_bytes(reply[4:].rstrip(b"\x00")[:100])
    res.summary = "TFTP server answers a read request: a file and firmware transfer interface without authentication"
    return True


def snmp_communities(address: str, port: int, timeout: float = 1.0) -> tuple[list[str], ProbeResult]:
    """The default communities (:data:`SNMP_COMMUNITIES`) an SNMP agent answers, with the transcript."""
    res = ProbeResult(port)
    _snmp(address, port, res, timeout)
    return list(res.detail.get("communities", [])), res  # type: ignore[arg-type]


def probe_udp(address: str, port: int, timeout: float = 1.0) -> ProbeResult:
    """Identify a UDP service by speaking SNMP (default communities) and TFTP to it.

    Bounded: at most three datagrams, each answered within ``timeout`` or given up.
    """
    res = ProbeResult(port)
    for step in (_snmp, _tftp):
        if step(address, port, res, timeout):
            return res
    res.summary = "no known UDP debug protocol answered"
    return res


# -- login services (interface-auth) --------------------------------------------------

@dataclass(frozen=True)
class LoginService:
    """What answers on a port, for interface-auth: the login-bearing protocol (``ssh``, ``telnet``,
    ``ftp``, ``http``, ``https``, ``rtsp``, ``tls``, ``tls-client-auth`` for a TLS port that demands
    a client certificate), or ``None``; whether anything took the connection; one line saying what
    was seen (a refusal, a timeout, an unknown answer)."""

    service: str | None
    answered: bool
    note: str
    refused: bool = False  # the host answered with a reset: the port is closed, the device is there
    silent: bool = False  # the port took connections and sent not one byte to any probe: what it is was not seen


#: TLS alerts that mean "this server wants a client certificate"
CLIENT_CERT_ALERTS = ("CERTIFICATE_REQUIRED",)


def identify_login_service(address: str, port: int, timeout: float = 2.0) -> LoginService:
    """Which login-bearing protocol answers on a port (see :class:`LoginService`).

    Listens for a banner first (SSH-, telnet IAC, FTP 220), then speaks HTTP (GET), RTSP
    (OPTIONS) and TLS + HTTP in turn on fresh connections. A connection refused or timed out
    is said as such: "nothing answered" is never "no login service"."""
    res = ProbeResult(port)
    try:
        conn = _Conn(address, port, timeout, res)
    except ConnectionRefusedError:
        return LoginService(None, False, f"{port}/tcp: connection refused", refused=True)
    except OSError as exc:
        return LoginService(None, False, f"{port}/tcp: {exc.strerror or type(exc).__name__}")
    try:
        banner = conn.recv(timeout, until=re.compile(rb"[\r\n]|[:#$>] ?$"))
    finally:
        conn.close()
    heard = bool(banner)
    if banner.startswith(b"SSH-"):
        return LoginService("ssh", True, escape_bytes(banner.split(b"\r")[0][:80]))
    if banner[:1] == bytes([IAC]) or LOGIN_PROMPT.search(banner.rstrip()):
        return LoginService("telnet", True, "telnet negotiation or a login prompt")
    if banner.startswith(b"220"):
        return LoginService("ftp", True, escape_bytes(banner.split(b"\r")[0][:80]))
    for name in ("rtsp", "http"):  # RTSP first: RTSP servers answer an HTTP GET too (their HTTP tunnel, often a 503)
        try:
            c = _Conn(address, port, timeout, res)
        except OSError:
            continue
        try:
            line = _ask(c, name, timeout)
            if line is not None:
                return LoginService(name, True, escape_bytes(line))
        finally:
            heard = heard or c.total > 0
            c.close()
    import ssl

    ctx = naming_context()
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, ctx.wrap_socket(raw, server_hostname=address) as tls:
            # listen before speaking: a TLS 1.3 server that wants a client certificate alerts right
            # after the handshake, and a request already sent would make its close a reset that
            # races the alert away ("EOF occurred in violation of protocol")
            tls.settimeout(min(timeout, 1.0))
            try:
                head = tls.recv(16)
            except (socket.timeout, TimeoutError):
                tls.settimeout(timeout)
                tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
                head = tls.recv(16)
            return LoginService("https" if head.startswith(b"HTTP/") else "tls", True, f"TLS handshake ({tls.version()})")
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if any(a in reason for a in CLIENT_CERT_ALERTS):
            return LoginService("tls-client-auth", True, f"TLS server refuses a client without a certificate ({reason})")
        if not heard and "EOF" in reason:
            return LoginService(None, True, f"{port}/tcp took the connections and closed each without a byte (TLS: {reason})", silent=True)
        return LoginService(None, True, f"{port}/tcp answered, no login protocol recognised (TLS: {reason})")
    except OSError as exc:
        if not heard:
            return LoginService(None, True, f"{port}/tcp took the connections and answered none of the probes "
                                f"(banner, HTTP, RTSP, TLS; last: {exc.strerror or type(exc).__name__})", silent=True)
        return LoginService(None, True, f"{port}/tcp answered, no login protocol recognised (last try: {exc.strerror or type(exc).__name__})")
