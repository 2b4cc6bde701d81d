"""The simulated cameras' firmware image format, and the checks each simulated updater makes.

    magic "SIMFW1\\0\\0" (8) | version (16, NUL-padded ASCII) | payload length (4, big-endian)
    | payload | CRC-32 of everything before it (4, big-endian) | Ed25519 signature of everything
    before it (64)

A compliant updater checks the layout, the CRC, the vendor's Ed25519 signature and that the
version is not older than the running one; a violating one checks the magic and the CRC only
(and ignores what follows the CRC). The bench builds the genuine images with the vendor key
it draws at ``rig sim up``.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

MAGIC = b"SIMFW1\0\0"
HEADER = struct.Struct(">8s16sI")
SIG_BYTES = 64


def build(version: str, payload: bytes, key: ed25519.Ed25519PrivateKey) -> bytes:
    """A genuine image of ``version`` carrying ``payload``, signed by ``key``."""
    body = HEADER.pack(MAGIC, version.encode()[:16], len(payload)) + payload
    body += struct.pack(">I", zlib.crc32(body))
    return body + key.sign(body)


@dataclass
class Check:
    """What an updater concluded: accepted, the image's version, and why not."""

    ok: bool
    version: str | None
    reason: str


def _version_tuple(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in v.replace("-", ".").split("."))


def check(image: bytes, running: str, public: ed25519.Ed25519PublicKey | None, monotonic: bool) -> Check:
    """The updater's verdict on ``image``: with ``public``, the signature (the last 64 bytes,
    over everything before them) and, with ``monotonic``, no version older than ``running``;
    without, the magic and the CRC only (a CRC-only updater)."""
    if len(image) < HEADER.size + 4 or not image.startswith(MAGIC):
        return Check(False, None, "not a SimCam image")
    _, raw_version, length = HEADER.unpack_from(image)
    version = raw_version.rstrip(b"\0").decode("ascii", "replace")
    end = HEADER.size + length
    if len(image) < end + 4:
        return Check(False, version, "image shorter than its header says")
    (crc,) = struct.unpack_from(">I", image, end)
    if zlib.crc32(image[:end]) != crc:
        return Check(False, version, "CRC mismatch")
    if public is None:
        return Check(True, version, "CRC ok")
    if len(image) != end + 4 + SIG_BYTES:
        return Check(False, version, "unexpected length after the CRC")
    try:
        public.verify(image[-SIG_BYTES:], image[:-SIG_BYTES])
    except InvalidSignature:
        return Check(False, version, "signature does not verify with the vendor key")
    if monotonic and _version_tuple(version) < _version_tuple(running):
        return Check(False, version, f"version {version} is older than the running {running}")
    return Check(True, version, "signature and version ok")
