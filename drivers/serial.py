"""Serial console driver (pyserial): expect-style conversations with deadlines.

Guarantees:

* The port is opened exclusively (``flock``), so two runs never type into one console.
* Every wait has a deadline; :meth:`SerialDriver.expect` returns which pattern matched
  or ``None`` at the deadline, never blocks longer.
* A port that vanishes (USB-serial unplugged, pty closed) raises :class:`LinkLost`
  naming the port, never hangs and never returns silently.
* Every byte received goes to the raw sink unchanged but for the secrets the transcript
  redacts (a password the rig typed that the device echoes) (``console.raw``, at most
  :data:`RAW_LIMIT` bytes; the transcript says when a flood passed it) and, with a
  timestamp, to the transcript (its own limit); what the rig types goes to the transcript,
  secrets redacted. The match buffer kept in memory is bounded.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import serial

from drivers.errors import CommandTimeout, LinkLost, Unreachable
from drivers.transcript import Sink, Transcript, strip_ansi
from rig.config import SerialTransport

BUFFER_LIMIT = 64 * 1024
#: bytes of a console kept raw (``console.raw``), at most: a pty or USB console has no baud rate
#: to slow a flood (the transcript has its own limit)
RAW_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class ExpectResult:
    name: str | None  # which pattern matched, None at the deadline
    match: re.Match[str] | None
    text: str  # everything read during this wait (decoded, bounded)


class SerialDriver:
    """One serial console."""

    def __init__(self, resource: SerialTransport, transcript: Transcript | None = None, raw: Sink | None = None, device: str = "device"):
        self.res = resource
        self.transcript = transcript or Transcript(None)
        self.raw = raw
        self.device = device
        self.where = f"{device} serial {resource.port}"
        self._port: serial.SerialBase | None = None
        self.raw_bytes = 0  # bytes given to the raw sink (at most RAW_LIMIT)
        self.raw_dropped = 0  # bytes received after the raw sink was full
        self._raw_carry = b""  # received bytes the raw sink holds back until a secret split across reads can be told

    def open(self) -> "SerialDriver":
        """Open the port exclusively; :class:`Unreachable` if it does not exist or is busy."""
        try:
            port = serial.serial_for_url(self.res.port, baudrate=self.res.baud, timeout=0.05, write_timeout=2, do_not_open=True)
            if isinstance(port, serial.Serial):
                port.exclusive = True
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            text = str(exc)
            if "No such file" in text or "could not open port" in text and "Errno 2" in text:
                raise Unreachable(f"{self.where}: port does not exist (cable unplugged, or wrong serial.port?)") from None
            if "lock" in text.lower() or "Resource temporarily unavailable" in text:
                raise Unreachable(f"{self.where}: port is in use by another program or run") from None
            raise Unreachable(f"{self.where}: cannot open: {text}") from None
        self._port = port
        self.transcript.record("info", f"opened {self.res.port} at {self.res.baud} baud")
        return self

    def close(self) -> None:
        """Close the port (and write what the raw capture held back); never raises."""
        if self.raw is not None and self._raw_carry:
            try:
                self.raw.write(self.transcript.redact(self._raw_carry))
            except (OSError, ValueError):
                pass
            self._raw_carry = b""
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass
            self._port = None
            self.transcript.record("info", "closed")

    def __enter__(self) -> "SerialDriver":
        if self._port is None:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lost(self, exc: BaseException) -> LinkLost:
        self.transcript.record("info", f"link lost: {exc}")
        return LinkLost(f"{self.where}: port vanished or stopped answering ({exc})")

    def write(self, data: str | bytes, secret: bool = False, label: str = "redacted") -> None:
        """Send ``data``; with ``secret`` the transcript shows ``[label]``, never the bytes.

        A secret from the config is also redacted wherever the device echoes it; a
        well-known default (``label`` given) is only hidden where the rig typed it, since
        redacting a word like ``root`` everywhere would destroy the transcript.
        """
        if self._port is None:
            self.open()
        assert self._port is not None
        raw = data.encode() if isinstance(data, str) else data
        if secret:
            if label == "redacted":
                self.transcript.add_secret(raw.decode(errors="replace").strip())
            tag = f"[{label}]".encode()
            self.transcript.record("tx", tag + b"\r" if raw.endswith(b"\r") else tag)
        else:
            self.transcript.record("tx", raw)
        try:
            self._port.write(raw)
            self._port.flush()
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None

    def read_some(self) -> bytes:
        """Bytes available now (waits at most ~50 ms); raises :class:`LinkLost` if the port is gone."""
        assert self._port is not None
        try:
            waiting = self._port.in_waiting
            data = self._port.read(max(1, min(waiting, 65536)))
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None
        if data:
            if self.raw is not None:
                room = max(0, RAW_LIMIT - self.raw_bytes)
                if room:  # every byte as received, but a password the rig typed and the device echoed: redacted
                    out, self._raw_carry = self.transcript.redact_stream(self._raw_carry, data[:room])
                    self.raw.write(out)
                    self.raw_bytes += min(room, len(data))
                if len(data) > room:
                    if not self.raw_dropped:
                        self.transcript.record("info", f"console.raw limit of {RAW_LIMIT} bytes reached; later bytes not kept raw")
                    self.raw_dropped += len(data) - room
            self.transcript.record("rx", data)
        return data

    def expect(self, patterns: dict[str, str], timeout: float) -> ExpectResult:
        """Read until one of ``patterns`` (name -> regex) matches the text read so far.

        Patterns are tried in order on the accumulated text (at most 64 KiB kept). Returns at
        the first match or after ``timeout`` seconds with ``name=None``.
        """
        if self._port is None:
            self.open()
        compiled = {n: re.compile(p, re.MULTILINE) for n, p in patterns.items()}
        buf = ""
        deadline = time.monotonic() + timeout
        while True:
            data = self.read_some()
            if data:
                buf = strip_ansi(buf + data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n"))[-BUFFER_LIMIT:]
                for name, rx in compiled.items():
                    m = rx.search(buf)
                    if m:
                        return ExpectResult(name, m, buf)
            if time.monotonic() >= deadline:
                return ExpectResult(None, None, buf)

    def drain(self, quiet_s: float = 0.3, limit_s: float = 3.0) -> str:
        """Read until the line is quiet for ``quiet_s`` (at most ``limit_s``); returns the text."""
        buf = ""
        end = time.monotonic() + limit_s
        last = time.monotonic()
        while time.monotonic() < end and time.monotonic() - last < quiet_s:
            data = self.read_some()
            if data:
                last = time.monotonic()
                buf = (buf + data.decode("utf-8", errors="replace"))[-BUFFER_LIMIT:]
        return buf

    def run_command(self, command: str, timeout: float | None = None) -> tuple[int, str]:
        """Run ``command`` at a shell prompt; return (exit status, output).

        The end of output is found with a marker the shell must compute (so the echo of
        the typed line cannot match it). Raises :class:`CommandTimeout` at the deadline.
        """
        timeout = timeout if timeout is not None else self.res.timeout_s
        nonce = secrets.token_hex(4)
        # the typed line contains RIG''END, the output RIGEND: echo cannot match
        self.write(f"{command}; echo RIG''END{nonce} $?\r")
        res = self.expect({"done": rf"RIGEND{nonce} (\d+)"}, timeout)
        if res.name is None:
            raise CommandTimeout(f"{self.where}: no end of output for {command!r} within {timeout:g} s")
        assert res.match is not None
        out = res.text[: res.match.start()]
        # drop the echoed command line
        lines = out.split("\n")
        if lines and f"RIG''END{nonce}" in lines[0]:
            lines = lines[1:]
        elif len(lines) > 1 and any(f"RIG''END{nonce}" in ln for ln in lines[:3]):
            idx = next(i for i, ln in enumerate(lines) if f"RIG''END{nonce}" in ln)
            lines = lines[idx + 1 :]
        return int(res.match.group(1)), "\n".join(lines).strip("\n")
