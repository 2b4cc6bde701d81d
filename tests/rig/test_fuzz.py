"""Property tests over privrig's untrusted inputs, with a budget that fits CI (the longer
campaign is benchmarks/fuzz.py): configs, action templates and bundles, mutated at random;
every case must end in a clean result or the documented refusal, never an exception, a hang
or a damaged bundle that verifies."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig import fuzz

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "config"
FAST = settings(max_examples=150, deadline=3000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], database=None)


@FAST
@given(seed=st.integers(0, 2**32 - 1), edits=st.integers(1, 6))
def test_mutated_configs_load_or_are_refused_in_one_line_each(seed: int, edits: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    good = (CORPUS / "good.yaml").read_bytes()
    path = tmp_path_factory.mktemp("cfg") / "bench.yaml"
    assert fuzz.check_config(fuzz.mutate(good, random.Random(seed), edits), path) is None


@FAST
@given(command=st.text(alphabet=st.sampled_from(list("{}!:>.[]0123456789abcdetokn_sikhpmlr x")), max_size=40))
def test_action_templates_are_refused_or_render_bounded(command: str) -> None:
    assert fuzz.check_template(command) is None


def test_damaged_bundles_never_verify(tmp_path: Path) -> None:
    from tests.rig.test_evidence import make_bundle
    from rig.signing import BenchKey

    src = make_bundle(tmp_path / "src", BenchKey.load_or_create())
    rng = random.Random(16)
    failures = []
    for i in range(60):
        dst = tmp_path / f"case-{i}"
        what = fuzz.tamper_bundle(src, dst, rng)
        bad = fuzz.check_bundle(dst, what)
        if bad:
            failures.append(bad)
    assert failures == []


def test_mutated_device_answers_never_break_the_rigs_clients() -> None:
    """A camera's genuine HTTP, RTSP, telnet and SSH answers, mutated, served on loopback to the
    MJPEG grabber, the RTSP client, the probes and login naming: each ends with an answer or its
    documented "no answer", never an exception or a raw escape (benchmarks/fuzz.py runs more)."""
    import time

    rng = random.Random(23)
    t0 = time.monotonic()
    for proto in sorted(fuzz.DEVICE_SEEDS):  # the seeds themselves first: the clients read them
        for seed in fuzz.DEVICE_SEEDS[proto]:
            assert fuzz.check_device_answer(proto, seed) is None
    for _ in range(16):
        proto = rng.choice(sorted(fuzz.DEVICE_SEEDS))
        answer = fuzz.mutate(rng.choice(fuzz.DEVICE_SEEDS[proto]) + rng.choice([b"", b"\x1b]52;c;eA==\x07", b"\x00\xff"]), rng, rng.randint(1, 8))
        assert fuzz.check_device_answer(proto, answer) is None, answer[:120]
    assert time.monotonic() - t0 < 180  # a bound on hangs, not a speed target
