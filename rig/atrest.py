"""Judging data at rest from the bytes the device's storage gives up.

* :func:`media_kind`: an image or video format by its first 16 bytes (magic numbers and
  the codec headers that follow them), never by the file name;
* :func:`judge_secret_line`: a configuration line that stores a secret in the clear, and
  :func:`private_key_state`: whether a PEM or OpenSSH private key is stored unencrypted;
* :func:`judge_password_field`: a password hash that is empty, not a hash, or of a broken
  scheme (DES crypt, MD5 crypt);
* :func:`looks_encrypted`: whether bytes the vendor declares encrypted are random;
* :func:`model_format`: a model file's format by its magic, when it is stored in the clear.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from rig.traffic import content

# -- raw images and video -----------------------------------------------------------------

#: profile_idc values of an H.264 SPS (Baseline to High 4:4:4, SVC, MVC)
_H264_PROFILES = {44, 66, 77, 83, 86, 88, 100, 110, 118, 122, 128, 134, 135, 138, 139, 244}
#: SEI payload types a stream opens with (buffering period, timing, user data, recovery point)
_H264_SEI_FIRST = {0, 1, 5, 6}
#: VPS, SPS, PPS, AUD, prefix SEI: what an H.265 recording starts with
_H265_PARAMETER_NAL = {32, 33, 34, 35, 39}


def media_kind(head: bytes) -> str | None:
    """The image or video format of a file from its first bytes (at least 12), or None.

    Each format needs its magic *and* the structure right after it: a JPEG SOI followed by
    a marker segment, an Annex B start code followed by a valid NAL header, an ISO BMFF
    ``ftyp`` box with a printable brand, so random bytes (ciphertext) match with a chance
    below 2^-32 per file."""
    h = head
    if len(h) < 12:
        return None
    if h[:3] == b"\xff\xd8\xff" and (0xC0 <= h[3] <= 0xFE):
        return "JPEG"
    if h[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if h[:4] == b"RIFF" and h[8:12] in (b"WEBP", b"AVI "):
        return "WebP" if h[8:12] == b"WEBP" else "AVI"
    if h[4:8] == b"ftyp" and re.fullmatch(rb"[a-zA-Z0-9 ]{4}", h[8:12]):
        brand = h[8:12].decode().strip()
        return "HEIF" if brand in ("heic", "heix", "mif1", "msf1", "avif") else f"MP4/{brand}"
    if h[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska/WebM"
    if h[:2] == b"BM" and struct.unpack("<I", h[2:6])[0] > 54 and h[6:10] == b"\0\0\0\0":
        return "BMP"
    for start in (b"\0\0\0\1", b"\0\0\1"):
        if h.startswith(start) and len(h) > len(start) + 1:
            b0, b1 = h[len(start)], h[len(start) + 1]
            ref, typ = (b0 >> 5) & 3, b0 & 0x1F
            if not b0 & 0x80 and ((typ == 7 and ref and b1 in _H264_PROFILES) or (typ == 9 and not ref and b1 & 0x1F == 0x10)
                                  or (typ == 6 and not ref and b1 in _H264_SEI_FIRST)):
                return "H.264"
            if not b0 & 0x81 and (b0 >> 1) & 0x3F in _H265_PARAMETER_NAL and b1 == 0x01:
                return "H.265"
    return None


# -- secrets in configuration and app files -----------------------------------------------

#: the extended regular expression the device's grep pre-selects lines with (case-insensitive)
SECRET_GREP = (r"(pass(word|wd|phrase)?|pwd|psk|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[\"']?[[:space:]]*[:=]"
               r"|-----BEGIN [A-Z ]*PRIVATE KEY-----")

_KEY_VALUE = re.compile(
    r"""(?ix)(?P<key>[a-z0-9_.-]*(?:pass(?:word|wd|phrase)?|pwd|psk|secret|token|api[_-]?key|access[_-]?key|private[_-]?key))["']?\s*[:=]\s*(?P<val>.*)""")
_PEM_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----")
#: values that name no secret: keywords of config syntaxes, switches, placeholders
_NOT_SECRET_WORDS = {"", "true", "false", "yes", "no", "on", "off", "none", "null", "nil", "required", "optional", "files", "compat",
                     "db", "systemd", "ldap", "nis", "sss", "winbind", "prompt", "ask", "disabled", "enabled", "default", "empty"}
_REFERENCE = re.compile(r"""^(\$\{?[A-Za-z_]|%\(|\{\{|<[A-Za-z_ -]+>$|@[A-Za-z_]|!vault|ENC\(|enc:|vault:|env:|file:|/)""")
_HASHED = re.compile(r"^(\$(1|2[aby]?|5|6|7|y|gy|argon2(id|i|d)?|pbkdf2[-_a-z0-9]*|scrypt)\$|\{(S?SHA|SSHA256|SSHA512|PBKDF2|CRYPT|MD5|SMD5)[^}]*\})")


@dataclass(frozen=True)
class SecretHit:
    """One secret stored in the clear: the key it sits under and a masked view of it."""

    kind: str  # "plaintext-secret" | "private-key"
    key: str
    masked: str  # first and last character, length: never the secret itself
    sha256: str = ""  # of the value: the finding can be checked against the device later, the value is never kept
    length: int = 0


def mask(value: str) -> str:
    """A view of a secret that shows it exists without showing it."""
    if len(value) <= 4:
        return f"[{len(value)} characters]"
    return f"{value[0]}…{value[-1]} [{len(value)} characters]"


def judge_secret_line(line: bytes) -> SecretHit | None:
    """A secret stored in the clear on this line, or None.

    The line must assign a value to a key that names a secret (``password=``,
    ``"api_key": "…"``, ``token: …``) and the value must be a literal: not empty, not a
    keyword (``files`` in nsswitch.conf, ``true``), not a reference (``${VAR}``, a path,
    ``ENC(…)``, a vault tag), not a password hash (crypt, LDAP ``{SSHA}``) and not a mask
    (``****``). A PEM header of an unencrypted-looking private key is reported for
    :func:`private_key_state` to confirm."""
    text = line.decode("utf-8", errors="replace").strip()
    if text.startswith(("#", ";", "//")):
        return None
    pem = _PEM_KEY.search(text)
    if pem:
        return None if "ENCRYPTED" in pem.group(1) else SecretHit("private-key", pem.group(0), "")
    m = _KEY_VALUE.search(text)
    if not m:
        return None
    val = m.group("val").strip().rstrip(",;").strip()
    if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
        val = val[1:-1]
    elif val and val[0] in "\"'" and val[0] in val[1:]:
        val = val[1:val.index(val[0], 1)]
    else:
        val = re.split(r"\s+#|\s+//", val, maxsplit=1)[0].strip()
    if val.lower() in _NOT_SECRET_WORDS or _REFERENCE.match(val) or _HASHED.match(val) or set(val) <= set("*xX•.-_ "):
        return None
    if val[:1] in "{[":  # a nested object opens here; its members get their own lines
        return None
    import hashlib

    return SecretHit("plaintext-secret", m.group("key"), mask(val), hashlib.sha256(val.encode()).hexdigest(), len(val))


def private_key_state(data: bytes) -> str:
    """``unencrypted``, ``encrypted`` or ``unparsed`` for a file holding a private key,
    decided by loading it without a password (cryptography), never by its header alone."""
    from cryptography.hazmat.primitives import serialization

    loaders = [serialization.load_pem_private_key]
    if b"OPENSSH PRIVATE KEY" in data:
        loaders = [serialization.load_ssh_private_key]
    for load in loaders:
        try:
            load(data, password=None)
            return "unencrypted"
        except TypeError:
            return "encrypted"  # "password was not given but private key is encrypted"
        except (ValueError, Exception):  # noqa: BLE001 - any parse failure means "cannot tell"
            continue
    return "unparsed"


# -- password hashes ---------------------------------------------------------------------

_STRONG = re.compile(r"^\$(5|6|y|gy|2[aby]|7|argon2(id|i|d)?|sha1)\$")


def judge_password_field(field: str) -> str | None:
    """What is wrong with the password field of a shadow or passwd line, or None.

    ``empty`` (anyone logs in), ``md5-crypt`` (``$1$``, broken by GPU cracking),
    ``des-crypt`` (13 characters, 8-character passwords), ``not-a-hash`` (a plain
    string). Locked (``!``, ``*``), ``x`` (see shadow) and yescrypt, SHA-crypt, bcrypt,
    scrypt and Argon2 are fine."""
    if field == "":
        return "empty"
    if field in ("x", "*", "!", "!!", "!*", "*LK*", "NP"):
        return None
    if field[0] in "!*":
        return None  # a locked account, whatever hash follows
    if field.startswith("$1$"):
        return "md5-crypt"
    if _STRONG.match(field):
        return None
    if re.fullmatch(r"[./0-9A-Za-z]{13}", field):
        return "des-crypt"
    if field.startswith("_") and len(field) == 20:
        return "des-crypt"  # BSDi extended DES
    if field.startswith("$"):
        return "unknown-scheme"
    return "not-a-hash"


# -- declared encryption and models ------------------------------------------------------

#: bytes of a file's start left out of the randomness test (a container's clear header, salt, nonce)
CLEAR_HEADER = 64


def looks_encrypted(data: bytes) -> tuple[bool | None, content.ContentStats]:
    """Whether ``data`` (a file's first bytes) is indistinguishable from random after its
    first :data:`CLEAR_HEADER` bytes: True, False, or None when there are too few bytes
    to tell. The tests are channel-encryption's (byte histogram at key periods 1-32,
    repeated 8-byte windows), so XOR or base64 "encryption" is not taken for ciphertext."""
    stats = content.analyse(data[CLEAR_HEADER:], randomness="full")
    if stats.structure:
        return False, stats
    return stats.looks_random, stats


def model_format(head: bytes) -> str | None:
    """A model file format recognised by its first bytes, or None."""
    h = head
    if h[4:8] == b"TFL3":
        return "TensorFlow Lite"
    if h[:4] == b"GGUF":
        return "GGUF"
    if h[:4] == b"RKNN":
        return "RKNN"
    if h[:7] == b"7767517":
        return "ncnn param"
    if h[:4] == b"PK\x03\x04":
        return "zip (PyTorch, Keras, ...)"
    if h[:8] == b"\x89HDF\r\n\x1a\n":
        return "HDF5 (Keras)"
    if h[:6] == b"\x93NUMPY":
        return "NumPy"
    if h[:5] == b"<?xml":
        return "XML (OpenVINO IR, ...)"
    if len(h) >= 10 and h[8:10] == b'{"' and 0 < struct.unpack("<Q", h[:8])[0] < (100 << 20):
        return "safetensors"
    # ONNX: a protobuf ModelProto opens with ir_version (field 1, varint, 3..12) and then
    # producer_name (field 2), opset_import (8) or graph (7), length-delimited
    if len(h) >= 3 and h[0] == 0x08 and 3 <= h[1] <= 12 and h[2] in (0x12, 0x1A, 0x22, 0x3A, 0x42):
        return "ONNX"
    return None
