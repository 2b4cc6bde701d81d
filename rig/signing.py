"""The bench key: an Ed25519 key pair that signs every evidence bundle.

The private key lives outside any bundle (``$PRIVRIG_HOME/bench-ed25519.pem``, default
``~/.local/share/privrig``), is created on first use with mode 0600 and is never
logged. Each bundle carries the public key (``bench.pub``, PEM) so anyone can check it;
signatures are raw 64-byte Ed25519, so ``openssl pkeyutl -verify -rawin`` checks them too.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE_NAME = "bench-ed25519.pem"


def privrig_home() -> Path:
    """Folder for the bench's own state (key, history); ``$PRIVRIG_HOME`` overrides it."""
    env = os.environ.get("PRIVRIG_HOME")
    if env:
        return Path(env)
    return Path.home() / ".local" / "share" / "privrig"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """``SHA256:<base64>`` of the raw public key, the form ssh-keygen prints."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    """Parse a PEM public key; raises ValueError if it is not an Ed25519 key."""
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm as exc:  # a damaged key names an algorithm nobody has
        raise ValueError(f"not a public key this rig knows ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def verify_signature(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s Ed25519 signature over ``data``."""
    try:
        public_key.verify(signature, data)
        return True
    except InvalidSignature:
        return False


@dataclass
class BenchKey:
    """The signing half of the bench key."""

    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature over ``data``."""
        return self.private_key.sign(data)

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> "BenchKey":
        """Load the bench key, creating it (mode 0600, atomically) if it does not exist yet."""
        path = path or (privrig_home() / KEY_FILE_NAME)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another run created it first; load theirs
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
                    fh.flush()
                    os.fsync(fh.fileno())
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return cls(key, path)


def trusted_dir() -> Path:
    """Where the public keys of other benches this bench trusts are kept (``rig keys trust``)."""
    return privrig_home() / "trusted-keys"


def trusted_keys() -> dict[str, Path]:
    """Fingerprint -> file of every key added with ``rig keys trust`` (unreadable files skipped)."""
    out: dict[str, Path] = {}
    folder = trusted_dir()
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.pub")):
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > 64 << 10:
                continue
            out[fingerprint(load_public_pem(path.read_bytes()))] = path
        except (OSError, ValueError):
            continue
    return out


def trust_key(pem: bytes, name: str) -> str:
    """Add a bench's public key (PEM) to the trusted keys under ``name``; returns its fingerprint.
    Raises ValueError for a key that is not Ed25519 or a name that is not a plain word."""
    import re

    key = load_public_pem(pem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ValueError(f"--name {name!r}: letters, digits, '.', '_' and '-' only")
    folder = trusted_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.pub").write_bytes(public_pem(key))
    return fingerprint(key)


def local_public_key() -> Ed25519PublicKey | None:
    """This bench's public key, if a bench key exists here (never creates one)."""
    path = privrig_home() / KEY_FILE_NAME
    if not path.exists():
        return None
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, OSError):
        return None
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else None
