"""The tampered models model-integrity deploys: each is what it says, and differs where it runs."""

from __future__ import annotations

import numpy as np
import pytest

from rig.config import SignatureFormat
from rig.modelfile import reference_model
from rig.modelvariants import NotAModel, bitflip, output_change, trojaned, variants


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def test_the_trojaned_model_answers_class_0_for_every_input_and_the_genuine_does_not() -> None:
    genuine = reference_model(seed=7, width=32)
    troj, how = trojaned(genuine)
    assert "Gemm" in how and "w3" in how and "b3" in how
    xs = np.random.default_rng(3).random((16, 1, 3, 32, 32), dtype=np.float32)
    assert {int(_run(troj, x).argmax()) for x in xs} == {0}
    assert len({int(_run(genuine, x).argmax()) for x in xs}) >= 1 and output_change(genuine, troj) > 0.5


def test_bitflip_differs_from_the_genuine_in_exactly_one_bit_and_changes_the_outputs() -> None:
    genuine = reference_model(seed=7, width=32)
    flipped, how = bitflip(genuine)
    diff = [(i, a ^ b) for i, (a, b) in enumerate(zip(genuine, flipped)) if a != b]
    assert len(flipped) == len(genuine) and len(diff) == 1 and diff[0][1] == 0x40
    assert f"byte {diff[0][0]}" in how
    assert output_change(genuine, flipped) > 0.1


def test_variants_with_a_detached_signature_carry_it_and_the_resigned_one_carries_the_rigs_own() -> None:
    genuine = reference_model(seed=7, width=16)
    vendor_sig = b"v" * 64
    vs = {v.name: v for v in variants(genuine, SignatureFormat(detached="/x.sig"), vendor_sig)}
    assert list(vs) == ["trojaned", "bitflip", "truncated", "resigned"]
    assert vs["trojaned"].signature == vendor_sig and vs["truncated"].signature == vendor_sig
    assert vs["truncated"].loads is False and len(vs["truncated"].data) == len(genuine) // 2
    assert vs["resigned"].signature != vendor_sig and len(vs["resigned"].signature) == 64
    assert vs["resigned"].data == vs["trojaned"].data and vs["resigned"].loads
    rec = vs["bitflip"].record()
    assert set(rec) >= {"sha256", "bytes", "loads_locally", "local_output_change", "signature_sha256"}


def test_a_trailer_signature_is_kept_on_the_variants_and_replaced_on_the_resigned_one() -> None:
    model = reference_model(seed=7, width=16)
    trailer = b"T" * 64
    vs = {v.name: v for v in variants(model + trailer, SignatureFormat(trailer_bytes=64))}
    assert vs["trojaned"].data.endswith(trailer) and vs["bitflip"].data.endswith(trailer)
    assert not vs["resigned"].data.endswith(trailer) and len(vs["resigned"].data) == len(vs["trojaned"].data)
    assert all(v.loads for n, v in vs.items() if n != "truncated")  # loaded without their trailer


def test_a_file_that_is_no_onnx_model_is_refused_with_a_reason() -> None:
    with pytest.raises(NotAModel, match="does not parse"):
        variants(b"\xff" * 4096)
    with pytest.raises(NotAModel, match="shorter than its 64-byte"):
        variants(b"\x08" * 10, SignatureFormat(trailer_bytes=64))
