"""cam-hostile over UDP: SNMP answers that attack the client, and a flood at the rig's stream sink.

Two kinds of attack, both run by cam-hostile's server process (``python -m rig.sim.hostile serve``)
inside its namespace:

* **SNMP** (:data:`UDP_CASES`, port -> case): every datagram the rig sends (an SNMP get, a TFTP
  read request) is answered with the case's attack: a 64 KB answer (the largest a datagram can
  be) whose sysDescr is escapes and markup, BER that nests 10,000 levels deep or claims 2 GB, a
  burst of 10,000 datagrams of noise, and a well-formed answer whose sysDescr is only escapes.
  The two well-formed cases echo whatever community they are sent: a device that answers
  ``public`` and ``private`` *is* open to them, so the rig's finding is right.
* **The flood**: a camera is told where to push its stream (``stream-start`` writes
  ``{sink_host} {sink_port}`` to ``/run/stream.sink``, as on every simulated camera). cam-hostile
  answers with :data:`FLOOD_PPS` datagrams a second of markup and escapes at the four sink ports
  for :data:`FLOOD_S` seconds, and ignores ``stream-stop``: the rig's capture, sink and flow
  reader must hold. Rate and time are bounded (the bench's rule), and a new ``stream-start``
  (the file written again) starts a new flood.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from drivers.probes import SYSDESCR_OID
from rig.sim.hostile import ESCAPES as _ESCAPES

#: the flood: datagrams a second, their size, and how long one ``stream-start`` makes it last
FLOOD_PPS = 20_000
FLOOD_SIZE = 1200
FLOOD_S = 8.0
#: datagrams one request makes the reply-flood case send
REPLY_FLOOD = 10_000


def _snmp_answer(request: bytes, descr: bytes) -> bytes | None:
    """A well-formed GetResponse to ``request`` (its version, community and id echoed) carrying
    ``descr`` as sysDescr; None when ``request`` is not SNMP."""
    from scapy.asn1.asn1 import ASN1_OID, ASN1_STRING
    from scapy.layers.snmp import SNMP, SNMPresponse, SNMPvarbind

    try:
        req = SNMP(request)
        version, community, rid = req.version.val, req.community.val, req.PDU.id.val
    except Exception:  # noqa: BLE001 - not SNMP (a TFTP request): the caller answers otherwise
        return None
    return bytes(SNMP(version=version, community=community,
                      PDU=SNMPresponse(id=rid, varbindlist=[SNMPvarbind(oid=ASN1_OID(SYSDESCR_OID), value=ASN1_STRING(descr))])))


def oversized(request: bytes) -> list[bytes]:
    """A 64 KB answer: sysDescr of escapes and markup filling the largest datagram there is."""
    descr = (_ESCAPES * (65_000 // len(_ESCAPES) + 1))[:65_000]
    return [_snmp_answer(request, descr) or descr]


def _nested(depth: int) -> bytes:
    out = b"\x05\x00"  # NULL at the bottom
    for _ in range(depth):
        out = b"\x30\x84" + len(out).to_bytes(4, "big") + out
    return out


_MALFORMED = (
    _nested(10_000),  # a SEQUENCE 10,000 levels deep (60 KB): a recursive decoder's stack
    b"\x30\x84\x7f\xff\xff\xff\x02\x01\x00\x04\x06public",  # claims 2 GB, carries 13 bytes
    b"\x30\x0e\x02\x01\x00\x04\x06public\xa2\x84\xff\xff\xff\xff",  # a PDU whose length is 4 GB
)


_turn = itertools.count()


def malformed(request: bytes) -> list[bytes]:
    """BER that lies: nesting deeper than any agent's, lengths of gigabytes (one of each, in turn)."""
    return [_MALFORMED[next(_turn) % len(_MALFORMED)]]


def reply_flood(request: bytes) -> list[bytes]:
    """:data:`REPLY_FLOOD` datagrams of noise and escapes for one request."""
    return [_ESCAPES + os.urandom(64) for _ in range(REPLY_FLOOD)]


def escapes(request: bytes) -> list[bytes]:
    """A well-formed answer whose sysDescr is only escapes, NUL and markup."""
    return [_snmp_answer(request, _ESCAPES) or _ESCAPES]


@dataclass(frozen=True)
class UdpCase:
    """One UDP attack: a name the tests and the docs use, and the datagrams it answers a request with."""

    name: str
    answer: Callable[[bytes], list[bytes]]
    description: str


#: port -> the attack it answers every datagram with (SNMP-shaped, on 161x)
UDP_CASES: dict[int, UdpCase] = {
    1611: UdpCase("snmp-64k-answer", oversized, "a 64 KB answer whose sysDescr is escapes and markup"),
    1612: UdpCase("snmp-malformed-ber", malformed, "BER 10,000 levels deep, or claiming 2 GB and 4 GB"),
    1613: UdpCase("snmp-reply-flood", reply_flood, "10,000 datagrams of noise for one request"),
    1614: UdpCase("snmp-escapes", escapes, "a well-formed answer whose sysDescr is only escapes"),
}


def bind_cases(host: str = "0.0.0.0", cases: dict[int, UdpCase] | None = None) -> list[tuple[socket.socket, UdpCase]]:
    """Bind every case's UDP port (before the server says it is ready)."""
    out = []
    for port, case in (cases or UDP_CASES).items():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, port))
        s.settimeout(0.5)
        out.append((s, case))
    return out


def serve_case(sock: socket.socket, case: UdpCase, stop: threading.Event) -> None:
    """Answer every datagram on ``sock`` with ``case``'s attack until ``stop`` (each answer bounded
    by its case; send errors, such as the rig's port already closed, are ignored)."""
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(65535)
        except (socket.timeout, TimeoutError):
            continue
        except OSError:
            return
        for datagram in case.answer(data):
            if stop.is_set():
                return
            try:
                sock.sendto(datagram, peer)
            except OSError:
                pass


def _sink_of(path: Path) -> tuple[str, int] | None:
    try:
        words = path.read_text()[:100].split()
        host, port = str(ipaddress.IPv4Address(words[0])), int(words[1])
    except (OSError, ValueError, IndexError):
        return None
    return (host, port) if 1024 <= port <= 65531 else None


def flood(host: str, port: int, stop: threading.Event, seconds: float = FLOOD_S, pps: int = FLOOD_PPS) -> int:
    """Send :data:`FLOOD_SIZE`-byte datagrams to ``host`` ports ``port..port+3`` at ``pps`` for
    ``seconds`` (or until ``stop``); returns how many were sent."""
    body = (b"hostile stream </script><script>alert(1)</script> $(touch /tmp/privrig-pwned) frame " * 20)
    sent, t0 = 0, time.monotonic()
    end = t0 + seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while not stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            due = int((now - t0) * pps)
            while sent < due:
                head = b"%08d " % sent + (_ESCAPES if sent % 100 == 0 else b"")
                try:
                    s.sendto((head + body)[:FLOOD_SIZE], (host, port + sent % 4))
                except OSError:
                    pass  # the sink closed (ICMP port unreachable): a hostile device goes on
                sent += 1
            time.sleep(0.005)
    return sent


def watch_sink(root: Path, stop: threading.Event) -> None:
    """Flood whatever sink ``root``/run/stream.sink names, once per time it is written."""
    path, last = root / "run" / "stream.sink", None
    while not stop.wait(0.2):
        try:
            st = path.stat()
        except OSError:
            continue
        if (st.st_mtime_ns, st.st_ino) == last:
            continue
        last = (st.st_mtime_ns, st.st_ino)
        sink = _sink_of(path)
        if sink is not None:
            flood(*sink, stop)


def start(stop: threading.Event, root: Path, host: str = "0.0.0.0") -> None:
    """Bind the SNMP cases and start their threads and the sink watcher (daemon threads)."""
    for sock, case in bind_cases(host):
        threading.Thread(target=serve_case, args=(sock, case, stop), daemon=True, name=f"udp-{case.name}").start()
    threading.Thread(target=watch_sink, args=(root, stop), daemon=True, name="udp-flood").start()


#: an SNMPv2c get of sysDescr with community public (request id 1), as scapy encodes it
READY_PROBE = bytes.fromhex("302602010104067075626c6963a019020101020100020100300e300c06082b060102010101000500")


def ready(address: str, timeout_s: float) -> bool:
    """True once the device answers a datagram on the escapes case (its UDP side is up). The
    request is :data:`READY_PROBE`, so the caller never imports scapy (a benchmark's figures)."""
    probe = READY_PROBE
    end = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        while time.monotonic() < end:
            try:
                s.sendto(probe, (address, 1614))
                s.recvfrom(65535)
                return True
            except OSError:
                time.sleep(0.1)
    return False
