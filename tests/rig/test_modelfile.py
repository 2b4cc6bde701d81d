"""rig.modelfile: model files recognised by content and read with the frameworks' parsers,
with the error rates of "readable" on a labelled set (stated in docs/scenarios/model-at-rest.md)."""

from __future__ import annotations

import gzip
import io
import os
import zipfile

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rig import modelfile


def _torch_zip(name: str = "detector") -> bytes:
    """A PyTorch checkpoint's layout (torch.save writes a zip: data.pkl, data/0..N, version)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{name}/data.pkl", b"\x80\x02}q\x00.")
        z.writestr(f"{name}/version", b"3\n")
        for i in range(3):
            z.writestr(f"{name}/data/{i}", os.urandom(256))
    return buf.getvalue()


def _labelled() -> list[tuple[str, bytes, bool]]:
    """(label, bytes, a standard tool reads it) for the error rates."""
    out: list[tuple[str, bytes, bool]] = []
    models = [modelfile.reference_model(seed, classes=2 + seed % 5, width=w) for seed in range(8) for w in (4, 8, 16)]
    out += [(f"onnx-{i}", m, True) for i, m in enumerate(models)]
    out += [(f"torch-zip-{i}", _torch_zip(f"m{i}"), True) for i in range(4)]
    key = AESGCM.generate_key(bit_length=128)
    for i, m in enumerate(models[:8]):
        nonce = os.urandom(12)
        out.append((f"aes-gcm-{i}", b"SIMENC01" + nonce + AESGCM(key).encrypt(nonce, m, None), False))
        out.append((f"xor-{i}", bytes(b ^ k for b, k in zip(m, b"\x5a\x3c\x9e\x01" * len(m))), False))
        out.append((f"gzip-{i}", gzip.compress(m), False))
        out.append((f"truncated-{i}", m[: len(m) // 2], False))
        out.append((f"clear-header-then-ciphertext-{i}", m[:16] + os.urandom(len(m) - 16), False))
    out += [(f"random-{i}", os.urandom(4096 * (i + 1)), False) for i in range(6)]
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("README.txt", "firmware assets\n" * 50)
        z.writestr("lang/en.json", '{"ok": "OK"}')
    out.append(("zip-of-text", plain.getvalue(), False))
    out.append(("xml-config", b'<?xml version="1.0"?>\n<config><wifi ssid="lab"/></config>\n', False))
    return out


def test_the_reference_model_is_read_and_summarised() -> None:
    data = modelfile.reference_model(seed=3, classes=4, width=8)
    got = modelfile.parse(data)
    assert got.readable and got.format == "ONNX"
    s = got.summary
    assert s.nodes == 8 and s.opsets == {"ai.onnx": 17} and s.producer == "privrig reference" and s.version == "8"
    assert s.parameters == 8 * 3 * 9 + 8 + 16 * 8 * 9 + 16 + 4 * 16 + 4
    assert s.inputs == [{"name": "image", "shape": [1, 3, 32, 32]}] and s.size == len(data) and len(s.sha256) == 64


def test_readable_has_no_false_positive_and_no_false_negative_on_the_labelled_set() -> None:
    rows = _labelled()
    fp = [label for label, data, truth in rows if not truth and modelfile.parse(data).readable]
    fn = [label for label, data, truth in rows if truth and not modelfile.parse(data).readable]
    negatives = sum(1 for *_, t in rows if not t)
    print(f"model readable: {len(rows)} files, false positives {len(fp)}/{negatives}, false negatives {len(fn)}/{len(rows) - negatives}")
    assert len(rows) >= 70 and negatives >= 45
    assert fp == [] and fn == []


def test_recognised_formats_without_a_parser_are_named_not_read() -> None:
    tfl = b"\x1c\x00\x00\x00TFL3" + os.urandom(64)
    got = modelfile.parse(tfl)
    assert got.format == "TensorFlow Lite" and not got.readable and "no parser" in got.error
    ncnn = b"7767517\n3 3\nInput data 0 1 data\n"
    assert modelfile.parse(ncnn).format == "ncnn param"
    # an XML file is a candidate only when it is an OpenVINO network
    assert modelfile.recognise(b'<?xml version="1.0"?>\n<net name="face" version="11">') is not None
    assert modelfile.recognise(b'<?xml version="1.0"?>\n<config/>' + b" " * 40) is None


def test_hostile_bytes_never_raise() -> None:
    """A device may hand the parser anything: nesting bombs, lying lengths, a zip bomb's directory."""
    nested = b"\x08\x08" + b"\x3a\x80\x80\x04" * 20000  # graph fields nested 20,000 deep, each claiming 64 KiB
    lying = b"\x08\x08\x3a\xff\xff\xff\xff\x0f" + os.urandom(100)  # a graph of 4 GiB in 108 bytes
    empty_graph = b"\x08\x08\x12\x07privrig"  # a ModelProto without a graph: parsed, but no model
    for data in (nested, lying, empty_graph, b"PK\x03\x04" + os.urandom(200), b"\x08\x08\x12"):
        got = modelfile.parse(data)
        assert not got.readable and got.error
