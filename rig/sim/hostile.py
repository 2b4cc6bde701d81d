"""A hostile simulated device: services that attack the client side.

A device under test is untrusted: a compromised camera, a fuzzer on the other side, a firmware
bug. ``cam-hostile`` is a network namespace (``rig-hostile``, on the simulated bench's bridge)
whose every port runs one attack on whoever connects (the rig's drivers), so the tests can show
that each driver holds: bounded time, bounded memory, no escape byte reaching a terminal, no
traceback, and never a pass. The cases (:data:`CASES`, port -> case) are:

* HTTP (and the same over RTSP): endless headers, a 1 GB header line, a body trickled at one
  byte a second, a 2 GB multipart part, a Digest challenge with a 1 MB nonce, 10,000 challenges,
  a redirect loop, a 401 loop, a negative and a huge Content-Length, a reply that never ends,
  terminal escapes and markup in the headers and body;
* telnet: a 100 MB flood of random bytes and escapes at full speed, endless login prompts;
* TLS: a 16 MB certificate chain, garbage after the ServerHello, a handshake that stalls;
* SSH: a 10 MB pre-banner that never becomes a banner; and, with ``up(ssh=True)``, a real
  ``sshd`` whose shell, files and forced commands attack (:mod:`rig.sim.hostile_ssh`);
* UDP: SNMP answers of 64 KB, of lying BER, of 10,000 datagrams, of escapes; and a flood at the
  rig's stream sink once ``stream-start`` names it (:mod:`rig.sim.hostile_udp`).

The server is bounded too (the bench's own rule): each connection at most :data:`CONN_S`
seconds and its case's byte budget, at most :data:`MAX_CONNS` at once; it stops on SIGTERM.
Run as ``python -m rig.sim.hostile serve`` inside the namespace (``HostileDevice.up`` does).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

#: a connection is closed by the device after this long, whatever its case
CONN_S = 300.0
#: connections served at once (more wait in the backlog)
MAX_CONNS = 64
#: the namespace, its veth on the bridge, and the device's address on the simulated bench
NETNS, VETH = "rig-hostile", "righostile0"
ADDRESS = ipaddress.IPv4Address("198.18.0.40")

#: what a hostile device puts in front of a terminal: OSC title, clear screen, OSC 52 clipboard
#: (the rig's terminal must never receive it raw), NUL, invalid UTF-8, markup and shell syntax
ESCAPES = (b"\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b]52;c;cm0gLXJmIH4K\x07\x00\xff\xfe\xc3(</script><script>alert(1)</script>"
           b"$(touch /tmp/privrig-pwned)`id`")


def _send_for(conn: socket.socket, chunk: Callable[[int], bytes], budget: int, rate_s: float = 0.0) -> None:
    """Send ``chunk(i)`` until ``budget`` bytes went out, the peer left or :data:`CONN_S` passed."""
    sent, end, i = 0, time.monotonic() + CONN_S, 0
    while sent < budget and time.monotonic() < end:
        data = chunk(i)
        conn.sendall(data)
        sent += len(data)
        i += 1
        if rate_s:
            time.sleep(rate_s)


def _read_head(conn: socket.socket, limit: int = 65536, timeout: float = 5.0) -> bytes:
    """The client's request head, bounded (the device reads what it needs and no more)."""
    conn.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < limit:
            got = conn.recv(4096)
            if not got:
                break
            data += got
    except OSError:
        pass
    return data


@dataclass(frozen=True)
class Case:
    """One attack: its name, the protocol it speaks first, and what it does to a client."""

    name: str
    proto: str  # http, rtsp, telnet, tls, ssh
    attack: Callable[[socket.socket, str], None]
    what: str


def _status(proto: str, code: str) -> bytes:
    return (b"RTSP/1.0 " if proto == "rtsp" else b"HTTP/1.1 ") + code.encode() + b"\r\n"


def _cseq(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"cseq:"):
            return b"CSeq: " + line.split(b":", 1)[1].strip()[:16] + b"\r\n"
    return b"CSeq: 1\r\n"


def endless_headers(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "200 OK") + _cseq(head))
    _send_for(conn, lambda i: b"X-Hostile-%d: %s\r\n" % (i, b"v" * 40), 2 << 30)


def huge_header_line(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "200 OK") + _cseq(head) + b"X-Big: ")
    block = b"a" * 65536
    _send_for(conn, lambda i: block, 1 << 30)


def trickle(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "200 OK") + _cseq(head) + b"Content-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
    _send_for(conn, lambda i: b"<"[:1] if i == 0 else b"x", 100000, rate_s=1.0)


def multipart_2gb(conn: socket.socket, proto: str) -> None:
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
                 b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 2147483648\r\n\r\n\xff\xd8\xff\xe0")
    block = os.urandom(65536)
    _send_for(conn, lambda i: block, 2 << 30)


def huge_nonce(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "401 Unauthorized") + _cseq(head) + b'WWW-Authenticate: Digest realm="hostile", qop="auth", nonce="'
                 + b"n" * (1 << 20) + b'"\r\nContent-Length: 0\r\n\r\n')


def many_challenges(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "401 Unauthorized") + _cseq(head))
    _send_for(conn, lambda i: b'WWW-Authenticate: Digest realm="r%d", nonce="%d", qop="auth"\r\n' % (i, i), 10_000 * 60)
    conn.sendall(b"Content-Length: 0\r\n\r\n")


def redirect_loop(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    path = (head.split(b" ")[1:2] or [b"/"])[0][:200]
    conn.sendall(_status(proto, "302 Found") + _cseq(head) + b"Location: " + path + (b"&" if b"?" in path else b"?") + b"again\r\n"
                 b"Content-Length: 0\r\n\r\n")


def loop_401(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "401 Unauthorized") + _cseq(head) + b'WWW-Authenticate: Digest realm="loop", qop="auth", nonce="'
                 + os.urandom(8).hex().encode() + b'"\r\nWWW-Authenticate: Basic realm="loop"\r\nContent-Length: 0\r\n\r\n')


def bad_length(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "200 OK") + _cseq(head) + b"Content-Length: -1\r\nContent-Length: 99999999999999999999\r\n"
                 b"Content-Type: image/jpeg\r\n\r\n\xff\xd8" + os.urandom(1024))


def never_ends(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "200 OK") + _cseq(head) + b"Content-Type: text/html\r\n\r\n")
    block = b"<p>" + b"z" * 8192
    _send_for(conn, lambda i: block, 4 << 30)


def escapes(conn: socket.socket, proto: str) -> None:
    head = _read_head(conn)
    conn.sendall(_status(proto, "200 OK") + _cseq(head) + b"Server: " + ESCAPES.replace(b"\x00", b"") + b"\r\nContent-Length: "
                 + str(len(ESCAPES) * 64).encode() + b"\r\n\r\n" + ESCAPES * 64)


def telnet_flood(conn: socket.socket, proto: str) -> None:
    block = (os.urandom(16384) + ESCAPES) * 4
    _send_for(conn, lambda i: block, 100 << 20)


def endless_login(conn: socket.socket, proto: str) -> None:
    conn.settimeout(0.01)
    end = time.monotonic() + CONN_S
    for _ in range(10_000_000):
        if time.monotonic() > end:
            return
        conn.sendall(b"\r\n" + ESCAPES + b"\r\nlogin: ")
        try:
            conn.recv(4096)  # whatever it types: asked again
        except (socket.timeout, BlockingIOError):
            pass


def _server_hello() -> bytes:
    """A TLS 1.2 ServerHello (ECDHE-RSA-AES128-GCM-SHA256) that a client accepts, so that what follows
    it is read: with the renegotiation_info extension (RFC 5746), without which OpenSSL stops at the
    hello (UNSAFE_LEGACY_RENEGOTIATION_DISABLED) and the attack behind it never reaches the rig."""
    ext = b"\xff\x01\x00\x01\x00"
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + b"\xc0\x2f" + b"\x00" + len(ext).to_bytes(2, "big") + ext
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(hs).to_bytes(2, "big") + hs


def tls_huge_chain(conn: socket.socket, proto: str) -> None:
    conn.settimeout(5)
    conn.recv(16384)  # the ClientHello
    total = (16 << 20) - 16
    first = b"\x0b" + total.to_bytes(3, "big") + (total - 3).to_bytes(3, "big") + (total - 6).to_bytes(3, "big") + b"\x30\x82"
    records = [first + os.urandom(16384 - len(first))]
    conn.sendall(_server_hello() + b"\x16\x03\x03" + len(records[0]).to_bytes(2, "big") + records[0])
    block = os.urandom(16384)
    _send_for(conn, lambda i: b"\x16\x03\x03\x40\x00" + block, total)


def tls_garbage(conn: socket.socket, proto: str) -> None:
    conn.settimeout(5)
    conn.recv(16384)
    conn.sendall(_server_hello())
    _send_for(conn, lambda i: os.urandom(4096), 64 << 20)


def stall(conn: socket.socket, proto: str) -> None:
    conn.settimeout(5)
    try:
        conn.recv(16384)
    except OSError:
        pass
    time.sleep(CONN_S)


def ssh_prebanner(conn: socket.socket, proto: str) -> None:
    _send_for(conn, lambda i: b"Welcome, this is not a banner yet " + b"." * 60 + b"\r\n", 10 << 20)
    time.sleep(CONN_S)


#: port -> the attack it runs (HTTP on 80xx, RTSP on 55xx, telnet 23xx, TLS 44xx, SSH 22xx)
CASES: dict[int, Case] = {
    8001: Case("http-endless-headers", "http", endless_headers, "headers that never end"),
    8002: Case("http-1gb-header-line", "http", huge_header_line, "one header line of 1 GB"),
    8003: Case("http-trickle", "http", trickle, "a body trickled at one byte a second"),
    8004: Case("mjpeg-2gb-part", "http", multipart_2gb, "an MJPEG part of 2 GB"),
    8005: Case("http-digest-1mb-nonce", "http", huge_nonce, "a Digest challenge with a 1 MB nonce"),
    8006: Case("http-10000-challenges", "http", many_challenges, "10,000 WWW-Authenticate challenges"),
    8007: Case("http-redirect-loop", "http", redirect_loop, "a redirect to itself, forever"),
    8008: Case("http-401-loop", "http", loop_401, "401 whatever the credentials"),
    8009: Case("http-bad-content-length", "http", bad_length, "a negative and a huge Content-Length"),
    8010: Case("http-never-ends", "http", never_ends, "a reply that never ends"),
    8011: Case("http-escapes", "http", escapes, "terminal escapes, NUL, invalid UTF-8, markup and $(...)"),
    5541: Case("rtsp-endless-headers", "rtsp", endless_headers, "RTSP headers that never end"),
    5542: Case("rtsp-digest-1mb-nonce", "rtsp", huge_nonce, "an RTSP Digest challenge with a 1 MB nonce"),
    5543: Case("rtsp-never-ends", "rtsp", never_ends, "an RTSP reply that never ends"),
    5544: Case("rtsp-10000-challenges", "rtsp", many_challenges, "10,000 RTSP challenges"),
    2301: Case("telnet-flood", "telnet", telnet_flood, "100 MB of random bytes and escapes at full speed"),
    2302: Case("telnet-endless-login", "telnet", endless_login, "login prompts, forever"),
    4431: Case("tls-16mb-chain", "tls", tls_huge_chain, "a 16 MB certificate chain"),
    4432: Case("tls-garbage-after-hello", "tls", tls_garbage, "garbage after the ServerHello"),
    4433: Case("tls-stall", "tls", stall, "a handshake that stalls"),
    2201: Case("ssh-10mb-prebanner", "ssh", ssh_prebanner, "10 MB of lines before a banner that never comes"),
}


def serve(host: str = "0.0.0.0", ports: dict[int, Case] | None = None) -> int:
    """Listen on every case's port and attack whoever connects, bounded (module docstring);
    returns 0 on SIGTERM."""
    cases = ports or CASES
    stop = threading.Event()
    slots = threading.BoundedSemaphore(MAX_CONNS)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def handle(conn: socket.socket, case: Case) -> None:
        try:
            with conn:
                case.attack(conn, case.proto)
        except OSError:
            pass  # the client gave up: what the attack is for
        finally:
            slots.release()

    def listen(port: int, case: Case) -> None:
        with socket.socket() as srv:
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            srv.bind((host, port))
            srv.listen(16)
            srv.settimeout(0.5)
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except socket.timeout:
                    continue
                if not slots.acquire(timeout=1.0):
                    conn.close()
                    continue
                threading.Thread(target=handle, args=(conn, case), daemon=True).start()

    for port, case in cases.items():
        threading.Thread(target=listen, args=(port, case), daemon=True).start()
    if ports is None:
        from rig.sim import hostile_ssh, hostile_udp

        hostile_udp.start(stop, hostile_ssh.STATE / "rootfs", host)
    print("ready", flush=True)
    while not stop.wait(1.0):
        pass
    return 0


class HostileDevice:
    """``cam-hostile`` on the simulated bench's bridge: its namespace and its server process.
    :meth:`up` needs the bench up (its bridge); :meth:`down` leaves nothing behind."""

    def __init__(self, bridge: str = "rigbr0", subnet: str = "198.18.0.0/24", gateway: str = "198.18.0.1", address: ipaddress.IPv4Address = ADDRESS):
        self.bridge, self.subnet, self.gateway, self.address = bridge, ipaddress.IPv4Network(subnet), ipaddress.IPv4Address(gateway), address
        self.proc: subprocess.Popen | None = None
        self.sshd: subprocess.Popen | None = None

    def up(self, timeout_s: float = 20.0, ssh: bool = False) -> str:
        """Make the namespace and start the attacks; with ``ssh`` also its ``sshd``
        (:mod:`rig.sim.hostile_ssh`: keys and tree under its ``STATE``). Returns the device's
        address once every case's port listens. Raises ``RuntimeError`` naming what did not come up."""
        from rig.sim import net
        from rig.sim import hostile_ssh

        self.down()
        try:
            net.make_device_netns(NETNS, VETH, self.bridge, self.address, self.subnet, self.gateway)
        except net.SimError as exc:
            self.down()
            raise RuntimeError(f"cam-hostile: no namespace on {self.bridge} (is the simulated bench up?): {exc}") from None
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(["ip", "netns", "exec", NETNS, sys.executable, "-m", "rig.sim.hostile", "serve"], cwd=root,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        ports = list(CASES)
        if ssh:
            from rig.sim.bench import _host_passwd_with_root_shell

            sroot = hostile_ssh.prepare()
            etc_ns = Path("/etc/netns") / NETNS  # root's login shell is the device's busybox sh
            etc_ns.mkdir(parents=True, exist_ok=True)
            (etc_ns / "passwd").write_text(_host_passwd_with_root_shell("/bin/sh"))
            log = open(hostile_ssh.STATE / "sshd.log", "ab")
            self.sshd = subprocess.Popen(["ip", "netns", "exec", NETNS, *hostile_ssh.sshd_argv(hostile_ssh.STATE, sroot, str(self.address))],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
            log.close()
            ports += list(hostile_ssh.SHELL_CASES)
        deadline = time.monotonic() + timeout_s
        for port in ports:
            while True:
                try:
                    with socket.create_connection((str(self.address), port), timeout=1.0):
                        break  # a connect: the case's attack runs on it and is dropped
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None or (self.sshd and self.sshd.poll() is not None):
                        self.down()
                        name = CASES[port].name if port in CASES else hostile_ssh.SHELL_CASES[port].name
                        raise RuntimeError(f"cam-hostile: port {port} ({name}) did not listen within {timeout_s:g} s") from None
                    time.sleep(0.2)
        from rig.sim import hostile_udp

        if not hostile_udp.ready(str(self.address), max(1.0, deadline - time.monotonic())):
            self.down()
            raise RuntimeError(f"cam-hostile: its UDP cases did not answer within {timeout_s:g} s")
        return str(self.address)

    def down(self) -> None:
        """Stop the server and remove the namespace (idempotent)."""
        from rig.sim import net

        for proc in (self.proc, self.sshd):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        self.proc = self.sshd = None
        if net.netns_exists(NETNS):
            for pid in net.netns_pids(NETNS):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            net.ip("netns", "del", NETNS, check=False)
        shutil.rmtree(Path("/etc/netns") / NETNS, ignore_errors=True)
        from rig.sim import hostile_ssh

        shutil.rmtree(hostile_ssh.STATE, ignore_errors=True)  # its keys, root filesystem and tree
        if net.link_exists(VETH):
            net.ip("link", "del", VETH, check=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m rig.sim.hostile serve``: run the attacks on every case's port."""
    ap = argparse.ArgumentParser(prog="rig.sim.hostile")
    ap.add_argument("command", choices=["serve"])
    ap.parse_args(argv)
    return serve()


if __name__ == "__main__":
    sys.exit(main())
