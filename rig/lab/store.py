"""The lab's evidence store: one folder every bench host mounts (an NFS export), holding each
bench's verified bundles at ``BENCH/RUN_ID/``.

A bundle is never half-visible there: it is copied into ``.incoming/`` on the store's own
filesystem first and then renamed into place (a rename within one filesystem is atomic, on
NFS too). A job's outcome is recorded at ``BENCH/.jobs/JOB_ID.json`` the same way, after the
bundle landed and was indexed: a job delivered twice (a worker died after the work and before
its acknowledgement) finds its record and runs nothing again. A bundle a killed attempt left
half-written is kept under ``BENCH/incomplete/RUN_ID/``, never lost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path


def _name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", text):
        raise ValueError(f"not a safe store name: {text!r}")
    return text


class EvidenceStore:
    """The store at ``root`` (created if missing)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / ".incoming").mkdir(parents=True, exist_ok=True)

    def _place(self, src: Path, dest: Path) -> Path:
        """Move the folder ``src`` to ``dest`` so that ``dest`` appears whole or not at all."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise FileExistsError(f"{dest} is already in the store")
        try:
            os.rename(src, dest)  # the same filesystem: atomic
            return dest
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: the spool and the store are on different filesystems
                raise
        tmp = self.root / ".incoming" / f"{dest.name}.{uuid.uuid4().hex}.partial"
        shutil.copytree(src, tmp, symlinks=True)
        os.rename(tmp, dest)
        shutil.rmtree(src, ignore_errors=True)
        return dest

    def put(self, bench: str, bundle: Path) -> Path:
        """Place a sealed, verified bundle at ``BENCH/RUN_ID/``; returns where it is."""
        return self._place(bundle, self.root / _name(bench) / _name(bundle.name))

    def keep_incomplete(self, bench: str, bundle: Path) -> Path:
        """Keep what a killed attempt wrote at ``BENCH/incomplete/RUN_ID/``."""
        dest = self.root / _name(bench) / "incomplete" / _name(bundle.name)
        if dest.exists():
            dest = dest.with_name(f"{dest.name}-{uuid.uuid4().hex[:6]}")
        return self._place(bundle, dest)

    def job(self, bench: str, job_id: str) -> dict | None:
        """The recorded outcome of a job that already completed (None: it has not)."""
        p = self.root / _name(bench) / ".jobs" / f"{_name(job_id)}.json"
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None

    def record_job(self, bench: str, job_id: str, outcome: dict) -> None:
        """Record a job's outcome (atomically: written aside, then renamed)."""
        d = self.root / _name(bench) / ".jobs"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{_name(job_id)}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(outcome, indent=1))
        os.replace(tmp, d / f"{_name(job_id)}.json")

    def bundles(self, bench: str) -> list[Path]:
        """The complete bundles of ``bench``."""
        d = self.root / _name(bench)
        return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "incomplete") if d.is_dir() else []
