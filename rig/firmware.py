"""Tampered update images, derived from the vendor's genuine one (firmware-update).

Each variant is what an attacker on the update path, or a rogue update server, would hand the
device; a device that updates securely refuses every one and keeps running what it ran:

* ``bitflip``: one bit flipped in the middle of the signed content;
* ``truncated``: the first half of the image;
* ``appended``: one byte added after the image (a signature that does not cover the length);
* ``resigned``: the signature replaced by one the rig made with its own key, where the image's
  signature format is known (a trailer of known length, or a detached signature file);
* ``rollback``: the older genuine image, correctly signed by the vendor (a version check).

Variants are built in memory from the genuine image (bounded by ``firmware.max_mb``) and
written to a private temporary folder outside the bundle; the bundle keeps only their
SHA-256 and size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from rig.config import FirmwareSettings, SignatureFormat


@dataclass
class Variant:
    """One image to apply: its name, what was done to it, its bytes and (detached) signature."""

    name: str
    description: str
    data: bytes = field(repr=False)
    signature: bytes | None = field(default=None, repr=False)
    rollback: bool = False

    @property
    def sha256(self) -> str:
        """SHA-256 of the image bytes (what the evidence keeps)."""
        return hashlib.sha256(self.data).hexdigest()

    def record(self) -> dict:
        """What the bundle keeps of the variant: never the bytes."""
        out = {"name": self.name, "description": self.description, "sha256": self.sha256, "bytes": len(self.data)}
        if self.signature is not None:
            out["signature_sha256"] = hashlib.sha256(self.signature).hexdigest()
        return out


class ImageTooLarge(ValueError):
    """An image larger than ``firmware.max_mb``."""


def read_image(path: Path, max_mb: int) -> bytes:
    """The image's bytes; raises :class:`ImageTooLarge` (or OSError) rather than reading gigabytes."""
    size = path.stat().st_size
    if size > max_mb << 20:
        raise ImageTooLarge(f"{path}: {size} bytes, larger than firmware.max_mb ({max_mb} MiB)")
    with path.open("rb") as fh:
        return fh.read((max_mb << 20) + 1)


def rig_signature(content: bytes, algorithm: str) -> bytes:
    """A signature over ``content`` with a key the rig makes now and forgets: valid in form,
    from nobody the device should trust."""
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate().sign(content)
    if algorithm == "rsa-pss-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return key.sign(content, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH), hashes.SHA256())
    key = ec.generate_private_key(ec.SECP256R1())
    return key.sign(content, ec.ECDSA(hashes.SHA256()))


def fit_trailer(sig: bytes, size: int) -> bytes:
    """A signature laid into a trailer of ``size`` bytes (zero-padded, as DER signatures of
    varying length are in fixed trailers)."""
    return sig[:size] + b"\0" * max(0, size - len(sig))


def variants(genuine: bytes, fw: FirmwareSettings, detached_sig: bytes | None = None) -> list[Variant]:
    """Every variant of ``genuine`` the config allows (see the module docstring), in the order
    they are applied. ``detached_sig`` is the genuine image's detached signature, if the
    format says there is one."""
    sig_fmt: SignatureFormat | None = fw.signature
    trailer = sig_fmt.trailer_bytes if sig_fmt is not None and sig_fmt.trailer_bytes else 0
    signed_end = len(genuine) - trailer if trailer and trailer < len(genuine) else len(genuine)
    out = []
    flipped = bytearray(genuine)
    at = signed_end // 2
    flipped[at] ^= 0x01
    out.append(Variant("bitflip", f"one bit flipped at byte {at} of the signed content", bytes(flipped), detached_sig))
    out.append(Variant("truncated", f"cut to its first {len(genuine) // 2} bytes", genuine[: len(genuine) // 2], detached_sig))
    out.append(Variant("appended", "one byte appended after the image", genuine + b"\0", detached_sig))
    if sig_fmt is not None and trailer:
        content = genuine[:signed_end]
        out.append(Variant("resigned", f"the {trailer}-byte signature trailer replaced by a signature of the rig's own key ({sig_fmt.algorithm})",
                           content + fit_trailer(rig_signature(content, sig_fmt.algorithm), trailer)))
    elif sig_fmt is not None and sig_fmt.detached is not None:
        out.append(Variant("resigned", f"the detached signature replaced by a signature of the rig's own key ({sig_fmt.algorithm})", genuine,
                           rig_signature(genuine, sig_fmt.algorithm)))
    return out


def rollback(older: bytes, detached_sig: bytes | None = None) -> Variant:
    """The older genuine image, as the vendor signed it."""
    return Variant("rollback", "the older genuine image (a downgrade)", older, detached_sig, rollback=True)


def public_key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    """The PEM of an Ed25519 public key (the simulated devices' vendor key)."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
