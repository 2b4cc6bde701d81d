"""rig/lab/app.py on a real redis-server: a claim whose holder died on this machine is taken over
at once; a live holder, or one on another machine, keeps it until it expires."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import need
from tests.lab.test_lab import Redis


@pytest.fixture(scope="module")
def r(tmp_path_factory: pytest.TempPathFactory):
    need(shutil.which("redis-server") is not None, "redis-server (Debian redis-server; scripts/setup installs it)")
    import redis

    server = Redis(tmp_path_factory.mktemp("redis-app"))
    server.start()
    try:
        yield redis.Redis(host="127.0.0.1", port=server.port)
    finally:
        server.stop()


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()  # reaped: its pid names no process now
    return p.pid


def test_a_claim_of_a_dead_process_of_this_machine_is_taken_at_once(r) -> None:
    from rig.lab.app import _Held, holder_id

    r.set("k-dead", holder_id(_dead_pid()), ex=20)
    held = _Held(r, holder_id(12345678))
    try:
        assert held.take("k-dead", 20)
        assert r.get("k-dead") == holder_id(12345678).encode() and 0 < r.ttl("k-dead") <= 20
    finally:
        held.release()
    assert r.get("k-dead") is None


def test_a_live_holder_or_one_elsewhere_keeps_its_claim(r) -> None:
    import os

    from rig.lab.app import _Held, holder_id

    held = _Held(r, holder_id(12345678))
    try:
        r.set("k-live", holder_id(os.getppid()), ex=20)  # pytest's parent: alive
        assert not held.take("k-live", 20) and r.get("k-live") == holder_id(os.getppid()).encode()
        other = holder_id(_dead_pid()).split(":")
        other[-2] = "0therb00"  # same host name, another machine (or boot): its pid means nothing here
        r.set("k-far", ":".join(other), ex=20)
        assert not held.take("k-far", 20)
        r.set("k-old", "bench-host:12345", ex=20)  # an older worker's id (host:pid): never judged
        assert not held.take("k-old", 20)
    finally:
        held.release()


def test_the_take_over_replaces_only_the_holder_judged_dead(r) -> None:
    """Between the read and the take another process may have taken the key: the script then leaves it."""
    from rig.lab.app import _TAKE_OVER

    r.set("k-race", "newcomer", ex=20)
    assert not r.eval(_TAKE_OVER, 1, "k-race", "the-dead-one", "me", 20)
    assert r.get("k-race") == b"newcomer"
    assert r.eval(_TAKE_OVER, 1, "k-race", "newcomer", "me", 20) and r.get("k-race") == b"me"
