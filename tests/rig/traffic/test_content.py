"""Structure signatures and randomness tests, each against data whose nature is known."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rig.sim import media
from rig.traffic import content


def test_poisson_and_binomial_tails_match_known_values() -> None:
    assert content.poisson_sf(0, 3.0) == 1.0
    assert math.isclose(content.poisson_sf(1, 3.0), 1 - math.exp(-3.0), rel_tol=1e-9)
    assert math.isclose(content.poisson_sf(5, 2.0), 1 - sum(math.exp(-2) * 2**k / math.factorial(k) for k in range(5)), rel_tol=1e-9)
    assert math.isclose(content.binomial_sf(3, 3, 0.5), 0.125, rel_tol=1e-12)
    assert math.isclose(content.binomial_sf(2, 4, 0.5), 11 / 16, rel_tol=1e-12)


def test_chi2_tail_is_accurate_at_255_degrees_of_freedom() -> None:
    # 95th and 99.9th percentiles of chi-square(255): 293.25 and 330.52
    assert abs(content.chi2_sf(293.25, 255) - 0.05) < 0.002
    assert abs(content.chi2_sf(330.52, 255) - 0.001) < 0.0002


def test_ciphertext_shows_no_structure_and_looks_random() -> None:
    data = AESGCM(os.urandom(16)).encrypt(os.urandom(12), bytes(200_000), None)
    st = content.analyse(data)
    assert st.structure == [] and not st.is_text
    assert st.looks_random is True
    assert st.entropy_bits > 7.99


def test_jpeg_is_found_by_its_byte_stuffing() -> None:
    frames = b"".join(media.jpeg_frame(i) for i in range(6))
    st = content.analyse(frames)
    names = {s.name for s in st.structure}
    assert {"jpeg-stuffing", "jpeg-soi"} <= names


def test_h264_is_random_by_histogram_but_plain_by_structure(media_cache: Path) -> None:
    """The issue's point: compressed video passes a byte-histogram test, structure does not."""
    nals = media.nal_units(media.h264_clip(media_cache))
    body = b"".join(n[1:] for n in nals if (n[0] & 0x1F) in (1, 5))[:60_000]  # slice data only, no start codes
    hist = np.bincount(np.frombuffer(body, dtype=np.uint8), minlength=256)
    assert -(hist[hist > 0] / len(body) * np.log2(hist[hist > 0] / len(body))).sum() > 7.9  # "as random as AES" by entropy
    annexb = b"".join(b"\x00\x00\x00\x01" + n for n in nals)[:200_000]
    names = {s.name for s in content.analyse(annexb).structure}
    assert "annexb-start-code" in names


def test_xor_scrambled_jpeg_keeps_entropy_but_not_randomness() -> None:
    frames = b"".join(media.jpeg_frame(i) for i in range(4))
    scrambled = media.xor_scramble(frames, os.urandom(8))
    st = content.analyse(scrambled)
    assert st.entropy_bits > 7.9  # would pass an entropy threshold
    assert not any(s.name.startswith("jpeg") for s in st.structure)  # markers gone
    assert st.looks_random is False and (st.nonuniform or st.repeats)


def test_clear_unit_headers_are_left_out() -> None:
    """A session id ending in FF before a zero counter would read as JPEG stuffing."""
    aead = AESGCM(os.urandom(16))
    units = [b"\x50\x52\x56\x31\x12\x34\x56\xff" + i.to_bytes(8, "big") + aead.encrypt(os.urandom(12), os.urandom(1000), None) for i in range(60)]
    assert content.analyse(b"".join(units), units=units).structure  # headers in: a false signature
    st = content.analyse(b"".join(units), units=units, skip_unit_head=16)
    assert st.structure == [] and st.looks_random is True


def test_start_codes_count_only_before_a_nal_header() -> None:
    counters = b"".join(os.urandom(40) + (0x10000 + i).to_bytes(4, "big") for i in range(500))  # 00 01 00 xx: no NAL after 00 00 01
    assert "annexb-start-code" not in {s.name for s in content.analyse(counters).structure}


def test_small_samples_are_not_judged_random() -> None:
    st = content.analyse(os.urandom(content.MIN_RANDOM_SAMPLE - 1))
    assert st.looks_random is None and st.chi2_p is None


@pytest.mark.parametrize("text", [b'{"event":"person","score":0.93}\n' * 20, b"user=admin&password=secret&token=abc\r\n" * 10])
def test_text_records_are_text(text: bytes) -> None:
    assert content.analyse(text).is_text
