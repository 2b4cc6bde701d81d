"""The simulated camera application: its PKI, and the sink file it follows (device-side input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from rig.sim.camera import make_pki, read_sink
from rig.sim.media import nal_units, xor_scramble


def test_pki_issues_server_and_client_certificates_from_one_ca(tmp_path: Path) -> None:
    paths = make_pki(tmp_path / "tls", "cam-x")
    ca = x509.load_pem_x509_certificate(paths["ca-cert"].read_bytes())
    for name in ("server-cert", "client-cert"):
        cert = x509.load_pem_x509_certificate(paths[name].read_bytes())
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
    assert paths["client-key"].stat().st_mode & 0o077 == 0
    before = paths["server-cert"].read_bytes()
    assert make_pki(tmp_path / "tls", "cam-x")["server-cert"].read_bytes() == before  # made once


@pytest.mark.parametrize("text,expected", [
    ("198.18.0.1 25004\n", ("198.18.0.1", 25004)),
    ("198.18.0.1 99999", None),
    ("$(reboot) 25004", None),
    ("198.18.0.1", None),
    ("", None),
])
def test_sink_file_is_validated(tmp_path: Path, text: str, expected) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stream.sink").write_text(text)
    assert read_sink(tmp_path) == expected


def test_no_sink_file_means_not_streaming(tmp_path: Path) -> None:
    assert read_sink(tmp_path) is None


def test_nal_splitting_and_xor_roundtrip() -> None:
    stream = b"\x00\x00\x00\x01\x67AAA\x00\x00\x01\x68BB\x00\x00\x00\x01\x65CCCC"
    assert nal_units(stream) == [b"\x67AAA", b"\x68BB", b"\x65CCCC"]
    key = b"\x01\x02\x03"
    assert xor_scramble(xor_scramble(b"hello world", key), key) == b"hello world"
