"""What the bytes of a flow look like: structure signatures and randomness tests.

Byte statistics alone cannot tell ciphertext from media: H.264 and JPEG entropy-coded
data are nearly as flat as AES output. So the primary evidence is *structure*: byte
patterns that formats must produce (JPEG's ``FF 00`` stuffing, H.264's emulation
prevention ``00 00 03``, start codes, file magics, printable text), each counted
against the rate at which it would occur by chance in ciphertext, with a one-sided
Poisson (binomial) test. A signature is *present* when its p-value is below
:data:`SIGNIFICANCE` and it occurred at least :data:`MIN_HITS` times; random data
therefore shows a false signature with probability below 1e-9 per test.

Supporting evidence comes from two sample-size-aware randomness tests:

* the chi-square test of the byte histogram, taken at the best key period K (1-16, 20,
  24, 32)
  (positions split by their offset modulo K, Bonferroni-corrected), so a repeating-key
  XOR that only permutes each class's histogram is still seen as skewed;
* repeated 8-byte windows, which ciphertext under a fresh nonce never has
  (probability ~N^2/2^65) and a scrambler with a fixed key has wherever the
  plaintext repeats (every frame header).

Neither randomness test is run on fewer than :data:`MIN_RANDOM_SAMPLE` bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

SIGNIFICANCE = 1e-9
MIN_HITS = 3
#: fewer bytes than this: the randomness tests say "insufficient sample"
MIN_RANDOM_SAMPLE = 2048
#: histogram chi-square p-value below which bytes are "not uniform"
NONUNIFORM_P = 1e-9
#: bytes analysed by the randomness tests (a prefix; the tests saturate well before)
STATS_LIMIT = 256 << 10
#: bytes the structure signatures are counted in (every format here shows within it)
SIGNATURE_LIMIT = 64 << 10
#: bytes the key-period and repeated-window tests look at (JPEG-like skew still shows at p < 1e-100 in 64 KiB)
PERIOD_SAMPLE = 64 << 10
#: key periods tried: every length to 16, then the longer ones firmware uses
PERIODS = (*range(1, 17), 20, 24, 32)
#: fraction of 8-byte windows that occur more than once, above which bytes repeat
REPEAT_FRACTION = 0.002

PRINTABLE = np.zeros(256, dtype=bool)
PRINTABLE[0x20:0x7F] = True
PRINTABLE[[0x09, 0x0A, 0x0D]] = True

# (name, what is counted, how it is counted, chance rate per trial in random bytes)
#   trials "ff": occurrences of FF; "0000": of 00 00; "bytes": positions
_SIGNATURES: tuple[tuple[str, bytes, str, float, str], ...] = (
    ("jpeg-stuffing", b"\xff\x00", "ff", 1 / 256, "JPEG entropy-coded data: FF followed by 00 (byte stuffing)"),
    ("jpeg-soi", b"\xff\xd8\xff", "bytes", 2.0**-24, "JPEG start-of-image markers FF D8 FF"),
    ("h26x-emulation-prevention", b"\x00\x00\x03", "0000", 1 / 256, "H.264/H.265 emulation-prevention bytes 00 00 03"),
    ("annexb-start-code", b"\x00\x00\x01", "nal", 2.0**-24 * 39 / 256, "H.264/H.265 Annex B start codes 00 00 01 before a NAL header"),
    ("png", b"\x89PNG\r\n\x1a\n", "bytes", 2.0**-64, "PNG file signature"),
    ("gzip", b"\x1f\x8b\x08", "bytes", 2.0**-24, "gzip member header"),
    ("zstd", b"\x28\xb5\x2f\xfd", "bytes", 2.0**-32, "zstd frame magic"),
    ("mp4", b"ftyp", "bytes", 2.0**-32, "MP4/ISO-BMFF ftyp box"),
    ("mp4-fragment", b"moof", "bytes", 2.0**-32, "fragmented MP4 moof box"),
)


@dataclass
class Signature:
    """One structure signature counted in a sample."""

    name: str
    hits: int
    trials: int
    chance: float  # expected rate per trial in ciphertext
    p_value: float
    present: bool
    what: str

    def to_dict(self) -> dict:
        """JSON-ready form (rounded figures) for flows.json."""
        return {"name": self.name, "hits": self.hits, "trials": self.trials, "expected_by_chance": round(self.trials * self.chance, 3),
                "p_value": float(f"{self.p_value:.3g}"), "present": self.present}


@dataclass
class ContentStats:
    """Structure and randomness figures of one sample of bytes."""

    size: int
    signatures: list[Signature] = field(default_factory=list)
    text_fraction: float = 0.0
    entropy_bits: float | None = None  # Shannon entropy of the byte histogram, bits per byte
    chi2_p: float | None = None  # best (smallest, corrected) p over key periods
    chi2_period: int | None = None
    repeat_fraction: float | None = None

    @property
    def structure(self) -> list[Signature]:
        """The signatures present beyond chance."""
        return [s for s in self.signatures if s.present]

    @property
    def is_text(self) -> bool:
        """At least 32 bytes, 90 % of them printable ASCII."""
        return self.size >= 32 and self.text_fraction >= 0.9

    @property
    def sample_ok(self) -> bool:
        """Enough bytes for the randomness tests."""
        return self.size >= MIN_RANDOM_SAMPLE

    @property
    def nonuniform(self) -> bool:
        """The byte histogram (at the best key period) is skewed beyond chance."""
        return self.chi2_p is not None and self.chi2_p < NONUNIFORM_P

    @property
    def repeats(self) -> bool:
        """8-byte windows repeat more than ciphertext ever does."""
        return self.repeat_fraction is not None and self.repeat_fraction > REPEAT_FRACTION

    @property
    def looks_random(self) -> bool | None:
        """True/False when the sample is large enough to tell, else None."""
        if not self.sample_ok:
            return None
        return not (self.nonuniform or self.repeats)

    def to_dict(self) -> dict:
        """JSON-ready form (rounded figures) for flows.json."""
        return {
            "bytes": self.size,
            "structure": [s.to_dict() for s in self.structure],
            "text_fraction": round(self.text_fraction, 3),
            "entropy_bits_per_byte": None if self.entropy_bits is None else round(self.entropy_bits, 3),
            "chi2_p": None if self.chi2_p is None else float(f"{self.chi2_p:.3g}"),
            "chi2_key_period": self.chi2_period,
            "repeated_8byte_windows": None if self.repeat_fraction is None else round(self.repeat_fraction, 5),
            "looks_random": self.looks_random,
        }


def poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam): the chance of ``k`` or more hits by accident."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    log_lam = math.log(lam)

    def log_pmf(i: int) -> float:
        """log P(X = i)."""
        return -lam + i * log_lam - math.lgamma(i + 1)

    if k <= lam:  # the upper tail is large: 1 - P(X < k), summing the k lower terms
        lower = sum(math.exp(log_pmf(i)) for i in range(k))
        return min(1.0, max(0.0, 1.0 - lower))
    # sum the tail from k upward; terms fall off geometrically once i > lam
    total, log_term, i = 0.0, log_pmf(k), k
    for _ in range(100_000):
        term = math.exp(log_term)
        total += term
        i += 1
        log_term += log_lam - math.log(i)
        if log_term < -745 or term < total * 1e-15:
            break
    return min(1.0, total)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact (log-space sum; n is a packet count)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    total = 0.0
    for i in range(k, n + 1):
        term = base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
        if term > -745:
            total += math.exp(term)
    return min(1.0, total)


def chi2_sf(x: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (Wilson-Hilferty; accurate for dof >= 30)."""
    if x <= 0:
        return 1.0
    z = ((x / dof) ** (1 / 3) - (1 - 2 / (9 * dof))) / math.sqrt(2 / (9 * dof))
    return 0.5 * math.erfc(z / math.sqrt(2))


# the byte after a start code: H.264 (nal_ref_idc 0-3; slice, IDR, SEI, SPS, PPS, AUD) or
# H.265 (TRAIL, IDR, CRA, VPS, SPS, PPS, SEI with layer 0): 39 of 256 values
_NAL_FIRST = bytes(sorted({r << 5 | t for r in range(4) for t in (1, 5, 6, 7, 8, 9)} | {0x02, 0x26, 0x28, 0x2A, 0x40, 0x42, 0x44, 0x4E, 0x50}))
_NAL_CLASS = b"[" + b"".join(re.escape(bytes([b])) for b in _NAL_FIRST) + b"]"
_START_CODE = re.compile(b"\x00\x00\x01" + _NAL_CLASS)


def signatures(data: bytes) -> list[Signature]:
    """Count every structure signature in ``data`` against its chance rate.

    For the two "followed by" signatures the chance rate is the larger of 1/256 and the
    sample's own frequency of the following byte: a format rich in zero bytes (H.264)
    then does not pass for JPEG just because 00 is common after everything, FF included.
    """
    n = len(data)
    trials_of = {"bytes": n, "ff": data.count(b"\xff"), "0000": data.count(b"\x00\x00")}
    follow = {"ff": data.count(b"\x00") / n if n else 0.0, "0000": data.count(b"\x03") / n if n else 0.0}
    out = []
    for name, pattern, trials_kind, chance, what in _SIGNATURES:
        if trials_kind == "nal":
            # a start code counts only before a plausible NAL header, and only if most are:
            # zero runs in clear counters and tables also contain 00 00 01
            total = data.count(pattern)
            hits = len(_START_CODE.findall(data))
            if hits < 0.8 * total:
                hits = 0
            trials = n
            # chance from the sample's own byte frequencies: clear counters and zero padding
            # make 00 00 01 common without any video in sight
            f00, f01 = (data.count(b"\x00") / n, data.count(b"\x01") / n) if n else (0.0, 0.0)
            chance = max(chance, f00 * f00 * f01 * len(_NAL_FIRST) / 256)
        else:
            hits = data.count(pattern)
            trials = trials_of[trials_kind]
        if trials_kind in follow:
            chance = max(chance, follow[trials_kind])
        p = poisson_sf(hits, trials * chance)
        out.append(Signature(name, hits, trials, chance, p, hits >= MIN_HITS and p < SIGNIFICANCE, what))
    return out


# formats recognised by how a stream or datagram *begins* (chance: the pattern's length in bits)
_ANCHORED: tuple[tuple[str, re.Pattern[bytes], float, str], ...] = (
    ("annexb-at-start", re.compile(b"\x00\x00\x00\x01" + _NAL_CLASS), 2.0**-32 * len(_NAL_FIRST) / 256,
     "begins with an H.264/H.265 start code and NAL header"),
    ("jpeg-at-start", re.compile(b"\\xff\\xd8\\xff[\\xc0-\\xfe]"), 2.0**-24 * 63 / 256, "begins with a JPEG SOI marker"),
    ("png-at-start", re.compile(b"\\x89PNG"), 2.0**-32, "begins with a PNG signature"),
    ("gzip-at-start", re.compile(b"\\x1f\\x8b\\x08"), 2.0**-24, "begins with a gzip header"),
)


def anchored(starts: list[bytes]) -> list[Signature]:
    """Formats recognised at the start of streams or datagrams (``starts``: their first bytes)."""
    out = []
    n = len(starts)
    for name, pattern, chance, what in _ANCHORED:
        hits = sum(1 for b in starts if pattern.match(b))
        p = poisson_sf(hits, n * chance)
        out.append(Signature(name, hits, n, chance, p, hits >= 1 and p < SIGNIFICANCE, what))
    return out


def analyse(data: bytes, units: list[bytes] | None = None, skip_unit_head: int = 0, randomness: str = "full",
            prior: ContentStats | None = None) -> ContentStats:
    """Structure signatures and randomness figures of ``data``.

    ``units`` are the datagrams or records ``data`` was joined from: the key-period test
    then counts positions from each unit's start, and ``skip_unit_head`` bytes of each unit (clear headers
    of an unidentified protocol, explicit nonces) are left out of every test.

    ``randomness``: ``"full"`` runs every randomness test (needed where randomness
    decides: unidentified streams, RTP payloads); ``"basic"`` only the entropy and the
    plain histogram test (supporting evidence for a cryptographic protocol); ``"none"``
    only the structure signatures. ``prior``: an earlier result for the same bytes whose
    signatures are reused (a second, deeper pass).
    """
    starts = [u[:8] for u in units[:256]] if units is not None else [data[:8]]
    if units is not None and skip_unit_head:
        units = [u[skip_unit_head:] for u in units if len(u) > skip_unit_head]
        data = b"".join(units)
    sigs = prior.signatures if prior is not None else signatures(data[:SIGNATURE_LIMIT]) + (anchored(starts) if data else [])
    stats = ContentStats(size=len(data), signatures=sigs)
    if not data:
        return stats
    sample = np.frombuffer(data[:STATS_LIMIT], dtype=np.uint8)
    stats.text_fraction = float(PRINTABLE[sample].mean())
    if units is not None:
        kept, total = [], 0
        for u in units:
            if total >= STATS_LIMIT:
                break
            kept.append(u)
            total += len(u)
        rand = sample[:total]
        offsets = np.concatenate([np.arange(len(u), dtype=np.int64) for u in kept]) if kept else np.zeros(0, dtype=np.int64)
        rand, offsets = rand[:len(offsets)], offsets[:len(rand)]
    else:
        rand = sample
        offsets = np.arange(len(sample), dtype=np.int64)
    if len(rand) < MIN_RANDOM_SAMPLE or randomness == "none":
        return stats
    hist = np.bincount(rand, minlength=256).astype(np.float64)
    prob = hist[hist > 0] / len(rand)
    stats.entropy_bits = float(-(prob * np.log2(prob)).sum())
    best_p, best_k = 1.0, None
    for k in (PERIODS if randomness == "full" else (1,)):
        if min(len(rand), PERIOD_SAMPLE) < MIN_RANDOM_SAMPLE * k // 4:  # keep >= ~2 expected counts per cell
            break
        cls = offsets[:PERIOD_SAMPLE] % k
        table = np.bincount(cls * 256 + rand[:PERIOD_SAMPLE], minlength=k * 256).reshape(k, 256).astype(np.float64)
        expected = table.sum(axis=1, keepdims=True) / 256.0
        mask = expected[:, 0] > 0
        chi2 = float((((table - expected) ** 2)[mask] / expected[mask]).sum())
        p = min(1.0, chi2_sf(chi2, 255 * int(mask.sum())) * (len(PERIODS) if randomness == "full" else 1))
        if p < best_p:
            best_p, best_k = p, k
    stats.chi2_p, stats.chi2_period = best_p, best_k
    if randomness != "full":
        return stats
    if len(rand) >= 16:
        windows = np.lib.stride_tricks.sliding_window_view(rand[:PERIOD_SAMPLE], 8)
        keys = np.ascontiguousarray(windows).view("<u8").ravel()
        _, counts = np.unique(keys, return_counts=True)
        stats.repeat_fraction = float(counts[counts > 1].sum()) / len(keys)
    return stats
