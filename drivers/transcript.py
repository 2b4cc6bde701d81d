"""Transcripts: every byte exchanged with a device, timestamped, bounded and redacted.

A transcript is JSON Lines: ``{"t": "...Z", "dir": "tx|rx|err|info", "data": "..."}``.
``data`` escapes device bytes losslessly (backslash doubled, control and non-UTF-8
bytes as ``\\xNN``), so a transcript can be shown in a terminal or report without the
device being able to inject escape sequences. Known secrets are replaced by
``[redacted]`` before anything is written.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone
from typing import Protocol

DEFAULT_LIMIT = 16 * 1024 * 1024


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (CSI, OSC, two-byte escapes).

    Consoles emit them around prompts (busybox ash asks for the cursor position with
    ``ESC[6n`` after every prompt); prompt matching must not depend on them.
    """
    return ANSI_RE.sub("", text)


def escape_bytes(data: bytes) -> str:
    """Printable text for untrusted bytes: valid UTF-8 kept, control/invalid bytes as \\xNN."""
    out: list[str] = []
    text = data.decode("utf-8", errors="surrogateescape")
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t":
            out.append(ch)
        elif 0xDC80 <= o <= 0xDCFF:  # undecodable byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif o < 0x20 or o == 0x7F or 0x80 <= o < 0xA0 or o in (0x2028, 0x2029) or 0x202A <= o <= 0x202E or 0x2066 <= o <= 0x2069:
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


class Transcript:
    """Append-only record of one conversation with a device."""

    def __init__(self, sink: Sink | None, secrets: list[str] | None = None, limit: int = DEFAULT_LIMIT, words: list[str] | None = None):
        self._sink = sink
        self._secrets = [s for s in (secrets or []) if s]
        self._words: list[re.Pattern[bytes]] = []
        for w in words or []:
            self.add_word(w)
        self._limit = limit
        self._written = 0
        self._truncated = False
        self._lock = threading.Lock()

    def add_secret(self, secret: str) -> None:
        if secret:
            self._secrets.append(secret)

    def add_word(self, word: str) -> None:
        """Redact ``word`` wherever it stands as a word of its own (not inside a longer run of
        letters and digits): for well-known passwords the rig tries ("1234", "admin"), which
        redacted as plain substrings would blank every number and name in the transcript."""
        if word:
            self._words.append(re.compile(rb"(?<![A-Za-z0-9])" + re.escape(word.encode()) + rb"(?![A-Za-z0-9])"))

    def _patterns(self) -> list[re.Pattern[bytes]]:
        return [re.compile(re.escape(x.encode())) for x in self._secrets] + self._words

    def redact_stream(self, carry: bytes, data: bytes) -> tuple[bytes, bytes]:
        """Redact a byte stream chunk by chunk (a raw capture): returns the bytes to write now,
        redacted, and the bytes to hold back for the next chunk. A secret split across two
        chunks is still caught: the last (longest secret + 1) bytes wait for the next chunk
        unless a match that starts before them is complete. Write :meth:`redact` of what is
        held back when the stream ends."""
        buf = carry + data
        patterns = self._patterns()
        if not patterns:
            return buf, b""
        hold = max([len(x.encode()) for x in self._secrets] + [len(rx.pattern) for rx in self._words]) + 1
        if len(buf) <= hold:
            return b"", buf
        cut = len(buf) - hold
        for rx in patterns:
            for m in rx.finditer(buf):
                if m.start() < cut < m.end():
                    cut = m.end()
        return self.redact(buf[:cut]), buf[cut:]

    def redact(self, data: bytes) -> bytes:
        """``data`` with every secret (and every tried password, as a word) replaced by ``[redacted]``."""
        for s in self._secrets:
            data = data.replace(s.encode(), b"[redacted]")
        for rx in self._words:
            data = rx.sub(b"[redacted]", data)
        return data

    def record(self, direction: str, data: bytes | str, **meta: object) -> None:
        """Record ``data`` sent (``tx``) or received (``rx``/``err``) or a note (``info``)."""
        if self._sink is None:
            return
        raw = data.encode() if isinstance(data, str) else data
        entry: dict[str, object] = {
            "t": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "dir": direction,
            "data": escape_bytes(self.redact(raw)),
        }
        entry.update({k: v for k, v in meta.items() if v is not None})
        line = json.dumps(entry, ensure_ascii=False).encode() + b"\n"
        with self._lock:
            if self._truncated:
                return
            if self._written + len(line) > self._limit:
                self._truncated = True
                line = json.dumps({"t": entry["t"], "dir": "info", "data": f"transcript limit of {self._limit} bytes reached; later traffic not recorded"}).encode() + b"\n"
            self._sink.write(line)
            self._written += len(line)
