"""The evidence store on its own: intents, attempts, leftovers (no broker, no bench)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rig.lab.store import EvidenceStore


def _bundle(folder: Path, name: str) -> Path:
    b = folder / name
    (b / "devices").mkdir(parents=True)
    (b / "journal.jsonl").write_text("{}\n")
    return b


def test_an_intent_names_the_bundle_and_the_record_clears_it(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "store")
    assert store.intent("b", "job-1") is None
    store.intend("b", "job-1", "20261206T000000Z-abc")
    assert store.intent("b", "job-1") == tmp_path / "store" / "b" / "20261206T000000Z-abc"
    store.record_job("b", "job-1", {"job_id": "job-1"})
    assert store.intent("b", "job-1") is None and store.job("b", "job-1") == {"job_id": "job-1"}


def test_attempts_survive_a_line_cut_in_half(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "store")
    assert store.begin_attempt("b", "job-1", {"attempt": 1}) == 1
    with open(tmp_path / "store" / "b" / ".jobs" / "job-1.attempts.jsonl", "a") as fh:
        fh.write('{"attempt": 2, "ho')  # a kill in the middle of a write
    assert store.begin_attempt("b", "job-1", {"attempt": 3}) == 2


def test_a_leftover_copy_is_replaced_by_the_next_and_old_ones_swept(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "store")
    left = tmp_path / "store" / ".incoming" / "b.run-1.partial"
    left.mkdir()
    (left / "half").write_text("x")
    old = tmp_path / "store" / ".incoming" / "b.run-0.partial"
    old.mkdir()
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert store.sweep() == ["b.run-0.partial"] and left.exists()  # a copy under way is young: left alone
    # a copy across filesystems goes through .partial: force it by placing from a bundle the rename cannot move
    import errno

    real_rename = os.rename

    def cross(src, dst):  # noqa: ANN001 - os.rename's signature
        if str(src).endswith("run-1"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(src, dst)

    os.rename = cross
    try:
        placed = store.put("b", _bundle(tmp_path / "spool", "run-1"))
    finally:
        os.rename = real_rename
    assert (placed / "journal.jsonl").is_file() and not left.exists() and not (tmp_path / "spool" / "run-1").exists()
