"""A stream sink the rig hosts on the bench network, for devices that push media.

Cameras push RTP, RTSP-over-TCP or proprietary streams to a server they are told
about. The sink listens on UDP ports ``port .. port+3`` (RTP, RTCP and two more for
side channels) and on TCP ``port``, reads and discards what arrives (counting it),
so the device's stack sees a live peer and no ICMP "port unreachable" cuts the
stream short. Every read is bounded; :meth:`StreamSink.close` stops it.
"""

from __future__ import annotations

import ipaddress
import json
import selectors
import socket
import subprocess
import threading
from dataclasses import dataclass, field

from drivers.errors import DeviceError

UDP_PORTS = 4


@dataclass
class SinkCounters:
    """What the sink received: datagrams per UDP port, bytes per port, TCP connections."""

    datagrams: dict[int, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)  # "5004/udp" -> bytes
    connections: int = 0
    #: datagram bytes and TCP connections from senders other than the device the sink is for
    #: (another device of the bench still pushing to this host): counted here, never in ``bytes``
    others: int = 0
    others_connections: int = 0


def interface_address(interface: str) -> ipaddress.IPv4Address:
    """The first IPv4 address of ``interface`` on this host (where the sink listens)."""
    proc = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", interface], capture_output=True, text=True, timeout=10)
    try:
        info = json.loads(proc.stdout or "[]")
        return ipaddress.IPv4Address(info[0]["addr_info"][0]["local"])
    except (ValueError, IndexError, KeyError):
        raise DeviceError(f"capture interface {interface} has no IPv4 address on this host (is the bench up?)") from None


#: port blocks tried after the configured one is taken (devices tested in parallel share the host)
PORT_BLOCKS = 64


class StreamSink:
    """UDP ``port..port+3`` and TCP ``port`` on ``host``, drained in one thread."""

    @classmethod
    def first_free(cls, host: ipaddress.IPv4Address, port: int, source: str | None = None) -> "StreamSink":
        """A sink on ``port``, or on the next free block of four ports (``.port`` says which);
        with ``source``, only what that address sends is counted as received."""
        last: DeviceError | None = None
        for k in range(PORT_BLOCKS):
            base = port + UDP_PORTS * k
            if base + UDP_PORTS > 65535:
                break
            try:
                return cls(host, base, source)
            except DeviceError as exc:
                last = exc
        raise last or DeviceError(f"stream sink: no free port block from {port}")

    def __init__(self, host: ipaddress.IPv4Address, port: int, source: str | None = None):
        self.host, self.port, self.source = host, port, source
        self.counters = SinkCounters()
        self._sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        try:
            for p in range(port, port + UDP_PORTS):
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                u.bind((str(host), p))
                u.setblocking(False)
                self._socks.append(u)
                self._sel.register(u, selectors.EVENT_READ, ("udp", p))
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((str(host), port))
            t.listen(8)
            t.setblocking(False)
            self._socks.append(t)
            self._sel.register(t, selectors.EVENT_READ, ("listen", port))
        except OSError as exc:
            self.close()
            raise DeviceError(f"stream sink cannot listen on {host}:{port}: {exc.strerror}") from None
        self._thread = threading.Thread(target=self._loop, name=f"sink-{port}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.2):
                kind, port = key.data
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if kind == "udp":
                        for _ in range(256):  # bounded burst per wake-up
                            data, sender = sock.recvfrom(65535)
                            if self.source is not None and sender[0] != self.source:
                                self.counters.others += len(data)
                                continue
                            self.counters.datagrams[port] = self.counters.datagrams.get(port, 0) + 1
                            self.counters.bytes[f"{port}/udp"] = self.counters.bytes.get(f"{port}/udp", 0) + len(data)
                    elif kind == "listen":
                        conn, peer = sock.accept()
                        if self.source is not None and peer[0] != self.source:
                            self.counters.others_connections += 1
                            conn.close()  # another device's push: not this device's stream
                            continue
                        conn.setblocking(False)
                        self.counters.connections += 1
                        if len(self._socks) < 64:
                            self._socks.append(conn)
                            self._sel.register(conn, selectors.EVENT_READ, ("tcp", port))
                        else:
                            conn.close()
                    else:
                        data = sock.recv(65536)
                        if not data:
                            self._sel.unregister(sock)
                            sock.close()
                        self.counters.bytes[f"{port}/tcp"] = self.counters.bytes.get(f"{port}/tcp", 0) + len(data)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    continue

    def close(self) -> None:
        """Stop the thread and close every socket (safe to call twice)."""
        self._stop.set()
        t = getattr(self, "_thread", None)
        if t is not None:
            t.join(timeout=2)
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        self._socks.clear()
        self._sel.close()

    def __enter__(self) -> "StreamSink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
