"""Tampered update images: each variant is what it says, and the simulated updaters judge them
as a compliant (Ed25519, monotonic) and a violating (CRC only) device would."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from rig.config import FirmwareSettings, SignatureFormat
from rig.firmware import ImageTooLarge, read_image, rollback, variants
from rig.sim import fwimage

VENDOR = ed25519.Ed25519PrivateKey.generate()
GENUINE = fwimage.build("2.1.0", b"firmware payload " * 4096, VENDOR)
OLDER = fwimage.build("1.9.0", b"older payload " * 4096, VENDOR)


def settings(**kw) -> FirmwareSettings:
    return FirmwareSettings(image=Path("/nonexistent/genuine.bin"), version="2.1.0", **kw)


def test_each_variant_is_what_it_says() -> None:
    vs = {v.name: v for v in variants(GENUINE, settings(signature=SignatureFormat(trailer_bytes=64)))}
    assert list(vs) == ["bitflip", "truncated", "appended", "resigned"]
    diff = [i for i, (a, b) in enumerate(zip(GENUINE, vs["bitflip"].data)) if a != b]
    assert len(diff) == 1 and bin(GENUINE[diff[0]] ^ vs["bitflip"].data[diff[0]]).count("1") == 1 and diff[0] < len(GENUINE) - 64
    assert vs["truncated"].data == GENUINE[: len(GENUINE) // 2]
    assert vs["appended"].data == GENUINE + b"\0"
    assert vs["resigned"].data[:-64] == GENUINE[:-64] and vs["resigned"].data[-64:] != GENUINE[-64:]
    for v in vs.values():
        rec = v.record()
        assert rec["sha256"] == hashlib.sha256(v.data).hexdigest() and rec["bytes"] == len(v.data) and "data" not in rec


def test_without_a_signature_format_there_is_no_resigned_variant_and_detached_ones_carry_their_signature() -> None:
    assert [v.name for v in variants(GENUINE, settings())] == ["bitflip", "truncated", "appended"]
    det = variants(GENUINE, settings(signature=SignatureFormat(detached=Path("/x.sig"), algorithm="ecdsa-p256-sha256")), b"genuine-sig")
    resigned = det[-1]
    assert resigned.name == "resigned" and resigned.data == GENUINE and resigned.signature not in (None, b"genuine-sig")
    assert all(v.signature == b"genuine-sig" for v in det[:-1])


@pytest.mark.parametrize("name,compliant,violating", [
    ("bitflip", False, False), ("truncated", False, False), ("appended", False, True), ("resigned", False, True), ("rollback", False, True),
])
def test_the_simulated_updaters_judge_the_variants(name: str, compliant: bool, violating: bool) -> None:
    vs = {v.name: v for v in variants(GENUINE, settings(signature=SignatureFormat(trailer_bytes=64)))}
    vs["rollback"] = rollback(OLDER)
    image = vs[name].data
    assert fwimage.check(image, "2.0.0", VENDOR.public_key(), monotonic=True).ok is compliant
    assert fwimage.check(image, "2.0.0", None, monotonic=False).ok is violating
    assert fwimage.check(GENUINE, "2.0.0", VENDOR.public_key(), monotonic=True).ok  # the positive control
    assert fwimage.check(GENUINE, "2.1.0", VENDOR.public_key(), monotonic=True).ok  # the same version again: taken


def test_an_image_larger_than_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        fh.truncate((2 << 20) + 1)
    with pytest.raises(ImageTooLarge, match="larger than firmware.max_mb"):
        read_image(big, 2)
    assert len(read_image(big, 3)) == (2 << 20) + 1
