"""The lab's evidence store: one folder every bench host mounts (an NFS export), holding each
bench's verified bundles at ``BENCH/RUN_ID/``.

A bundle is never half-visible there: it is renamed into place (atomic within one filesystem,
on NFS too); from another filesystem it is copied into ``.incoming/RUN_ID.partial`` first,
every file and folder of the copy fsynced, then renamed. A leftover ``.partial`` (a copy cut
off by a kill) is removed by the next copy of the same bundle, and any older than a day by
:meth:`EvidenceStore.sweep`.

One job id gives at most one indexed bundle, whatever is killed where. A job writes its intent
(``BENCH/.jobs/JOB_ID.placing``: the run id it is about to place) before the bundle moves, and
its outcome (``BENCH/.jobs/JOB_ID.json``) after the bundle landed and was indexed; a job that
starts again finds either its outcome (nothing to do) or its intent with the bundle in place
(index and record it, run nothing again). Each attempt is appended to
``BENCH/.jobs/JOB_ID.attempts.jsonl`` before it touches the device. A bundle a killed attempt
left half-written is kept under ``BENCH/incomplete/RUN_ID/``, never lost.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
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
        """Move the folder ``src`` to ``dest`` so that ``dest`` appears whole or not at all, and
        is on disk (fsynced) before it appears when it had to be copied."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise FileExistsError(f"{dest} is already in the store")
        try:
            os.rename(src, dest)  # the same filesystem: atomic
            _fsync_dir(dest.parent)
            return dest
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # the spool and the store are on different filesystems
                raise
        tmp = self.root / ".incoming" / f"{dest.parent.name}.{dest.name}.partial"
        if tmp.exists():  # a copy of this very bundle that a kill cut off
            shutil.rmtree(tmp)
        shutil.copytree(src, tmp, symlinks=True)
        _fsync_tree(tmp)
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
        shutil.rmtree(src, ignore_errors=True)
        return dest

    def sweep(self, older_than_s: float = 86400.0) -> list[str]:
        """Remove ``.incoming`` leftovers older than ``older_than_s`` (copies that a kill cut off
        and no retry finished); returns their names. A copy under way is far younger."""
        gone = []
        now = time.time()
        for p in (self.root / ".incoming").iterdir():
            try:
                if p.name.endswith(".partial") and now - p.lstat().st_mtime > older_than_s:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    gone.append(p.name)
            except OSError:
                continue
        return gone

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

    def _jobs(self, bench: str) -> Path:
        d = self.root / _name(bench) / ".jobs"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _write(self, path: Path, doc: dict) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(doc, indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def record_job(self, bench: str, job_id: str, outcome: dict) -> None:
        """Record a job's outcome (atomically: written aside, fsynced, renamed); its intent goes."""
        d = self._jobs(bench)
        self._write(d / f"{_name(job_id)}.json", outcome)
        (d / f"{_name(job_id)}.placing").unlink(missing_ok=True)

    def intend(self, bench: str, job_id: str, run_id: str) -> None:
        """Say, durably, that job ``job_id`` is about to place bundle ``run_id``."""
        self._write(self._jobs(bench) / f"{_name(job_id)}.placing", {"job_id": job_id, "run_id": _name(run_id)})

    def intent(self, bench: str, job_id: str) -> Path | None:
        """Where the bundle a job meant to place is (``BENCH/RUN_ID``), if it said so; it may not be there."""
        p = self.root / _name(bench) / ".jobs" / f"{_name(job_id)}.placing"
        try:
            run_id = _name(str(json.loads(p.read_text())["run_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return self.root / _name(bench) / run_id

    def begin_attempt(self, bench: str, job_id: str, attempt: dict) -> int:
        """Append one attempt of a job (fsynced); returns how many attempts it has had, this one included."""
        p = self._jobs(bench) / f"{_name(job_id)}.attempts.jsonl"
        with open(p, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            cut = False
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                cut = fh.read(1) != b"\n"  # the last line was cut by a kill: this one starts on its own
            fh.write((("\n" if cut else "") + json.dumps(attempt) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())
        return len(self.attempts(bench, job_id))

    def attempts(self, bench: str, job_id: str) -> list[dict]:
        """Every attempt recorded for a job, oldest first."""
        p = self.root / _name(bench) / ".jobs" / f"{_name(job_id)}.attempts.jsonl"
        out = []
        try:
            lines = p.read_text().splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line a kill cut in half
        return out

    def bundles(self, bench: str) -> list[Path]:
        """The complete bundles of ``bench``."""
        d = self.root / _name(bench)
        return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "incomplete") if d.is_dir() else []


def outcome_of(bundle: Path) -> tuple[dict[str, str], int]:
    """What a bundle's own results.json says: scenario -> verdict, and `rig run`'s exit code for
    it (3 when the run did not complete). Raises OSError, ValueError, KeyError or TypeError for a
    results.json that cannot be read as one."""
    from rig.results import Verdict, exit_code_for

    doc = json.loads((bundle / "results.json").read_text())
    verdicts = {s["id"]: s["verdict"] for d in doc.get("devices", []) for s in d.get("scenarios", [])}
    code = exit_code_for([Verdict(v) for v in verdicts.values()]) if doc.get("status") == "complete" else 3
    return verdicts, code


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every regular file and folder under ``root`` (the folders last, deepest first)."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for f in files:
            p = os.path.join(folder, f)
            if os.path.islink(p):
                continue
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))
