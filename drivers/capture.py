"""Packet capture on the bench interface with tcpdump (libpcap, kernel-side BPF filter).

tcpdump writes pcap to its stdout packet by packet (``-U``); a reader thread copies
it into an evidence artifact as it arrives, so a run that dies mid-capture still
leaves the packets seen so far, sealed. On stop tcpdump is sent SIGINT and its own
counters are parsed: packets captured, received by the filter, and dropped by the
kernel (ring buffer overrun) and by the interface. A capture that lost packets is
reported as such; the scenario decides what that means.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from drivers.errors import ComponentMissing, DeviceError

#: kernel capture buffer asked of libpcap (KiB): large enough for a bench's bursts
BUFFER_KIB = 32768
CHUNK = 1 << 16


class Sink(Protocol):
    """Where the pcap bytes go (an evidence artifact stream, or any binary file)."""

    def write(self, data: bytes) -> object:
        """Store ``data``."""


@dataclass
class CaptureStats:
    """tcpdump's own account of the capture, plus what reached the artifact."""

    captured: int | None
    received: int | None
    dropped_kernel: int | None
    dropped_interface: int | None
    bytes_written: int
    truncated: bool  # the size limit stopped the capture early
    duration_s: float

    @property
    def dropped(self) -> int | None:
        """Packets tcpdump says it lost (kernel plus interface), or None if it gave no counters."""
        if self.dropped_kernel is None:
            return None
        return self.dropped_kernel + (self.dropped_interface or 0)

    def to_dict(self) -> dict:
        """JSON-ready form, with the total drop count."""
        return dict(self.__dict__, dropped=self.dropped)


def bpf_filter(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The kernel-side filter for everything to and from one device address."""
    return f"host {ipaddress.ip_address(address)}"  # rebuilt from the parsed address: nothing else gets in


class PacketCapture:
    """A running tcpdump on ``interface`` for ``address``, streaming into ``sink``.

    Use as a context manager, or call :meth:`start` and :meth:`stop` (which is safe to
    call twice and always reaps the process).
    """

    def __init__(self, interface: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address, sink: Sink,
                 max_bytes: int = 512 << 20, tcpdump: str | None = None):
        if not re.fullmatch(r"[A-Za-z0-9_.:@-]{1,15}", interface):
            raise DeviceError(f"capture interface {interface!r} is not a valid interface name")
        self.interface = interface
        self.address = address
        self.sink = sink
        self.max_bytes = max_bytes
        self.tcpdump = tcpdump or shutil.which("tcpdump") or "/usr/bin/tcpdump"
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._written = 0
        self._truncated = False
        self._stderr = b""
        self._started = 0.0
        self._stats: CaptureStats | None = None

    def argv(self) -> list[str]:
        """The tcpdump command line (no shell; the filter is built from a parsed address)."""
        return [self.tcpdump, "-i", self.interface, "-n", "-s", "0", "-B", str(BUFFER_KIB), "--immediate-mode", "-U", "-Z", "root", "-w", "-", bpf_filter(self.address)]

    def start(self, ready_timeout: float = 10.0) -> None:
        """Start tcpdump and return once it listens; raise with tcpdump's reason otherwise."""
        if shutil.which(self.tcpdump) is None:
            raise ComponentMissing("tcpdump is not installed (scripts/setup installs it)")
        self._proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._started = time.monotonic()
        deadline = self._started + ready_timeout
        err = bytearray()
        assert self._proc.stderr is not None
        # tcpdump says "listening on IFACE" on stderr once the filter is attached
        fd = self._proc.stderr.fileno()
        while b"listening on" not in err:
            left = deadline - time.monotonic()
            if left <= 0 or self._proc.poll() is not None:
                break
            r, _, _ = select.select([fd], [], [], min(left, 0.2))
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                err += chunk[: 8192 - len(err)]
        if b"listening on" not in err:
            self._kill()
            reason = err.decode(errors="replace").strip().splitlines()
            raise DeviceError(f"capture on {self.interface} did not start: {reason[-1] if reason else 'no answer from tcpdump within %g s' % ready_timeout}")
        self._stderr = bytes(err)
        self._reader = threading.Thread(target=self._pump, name=f"capture-{self.interface}", daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._pump_err, name=f"capture-err-{self.interface}", daemon=True)
        self._err_reader.start()

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out: BinaryIO = self._proc.stdout  # type: ignore[assignment]
        while True:
            data = out.read1(CHUNK) if hasattr(out, "read1") else out.read(CHUNK)  # type: ignore[attr-defined]
            if not data:
                return
            if self._written + len(data) > self.max_bytes:
                self._truncated = True
                data = data[: max(0, self.max_bytes - self._written)]
                if data:
                    self.sink.write(data)
                    self._written += len(data)
                try:
                    self._proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
                out.read()  # drain so tcpdump can exit
                return
            self.sink.write(data)
            self._written += len(data)

    def _pump_err(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            chunk = self._proc.stderr.read(4096)
            if not chunk:
                return
            if len(self._stderr) < 65536:
                self._stderr += chunk

    @property
    def started(self) -> bool:
        """tcpdump was started (whether or not it still runs)."""
        return self._proc is not None

    def elapsed(self) -> float:
        """Seconds since the capture started listening."""
        return time.monotonic() - self._started if self._started else 0.0

    @property
    def bytes_written(self) -> int:
        """Pcap bytes handed to the sink so far."""
        return self._written

    def stop(self, timeout: float = 10.0) -> CaptureStats:
        """Stop tcpdump (SIGINT, then SIGKILL), flush the artifact, return the counters."""
        if self._stats is not None:
            return self._stats
        proc = self._proc
        if proc is None:
            raise DeviceError("capture was never started")
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
        for t in (self._reader, getattr(self, "_err_reader", None)):
            if t is not None:
                t.join(timeout=timeout)
        text = self._stderr.decode(errors="replace")
        self._stats = CaptureStats(
            captured=_count(text, r"(\d+) packets? captured"),
            received=_count(text, r"(\d+) packets? received by filter"),
            dropped_kernel=_count(text, r"(\d+) packets? dropped by kernel"),
            dropped_interface=_count(text, r"(\d+) packets? dropped by interface"),
            bytes_written=self._written,
            truncated=self._truncated,
            duration_s=round(time.monotonic() - self._started, 3),
        )
        return self._stats

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> "PacketCapture":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _count(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None
