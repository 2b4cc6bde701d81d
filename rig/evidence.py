"""The evidence bundle: a folder a certification body can check byte for byte.

Guarantees:

* ``journal.jsonl`` is appended and fsynced as each step happens. Every line is
  hash-chained to the previous one (``prev``) and carries its own Ed25519 signature
  (``sig``), so even a run killed with SIGKILL leaves a journal whose every complete
  line can be checked against ``bench.pub``.
* Artifacts are written under ``devices/<device>/<scenario>/``, fsynced, and
  *sealed*: their sha256 goes into the journal the moment they are closed.
* :meth:`Bundle.finalize` writes results.json (validated against the contract schema),
  junit.xml, report.html, then ``manifest.json`` (sha256 and size of every file) and
  ``manifest.sig`` (raw Ed25519 over manifest.json).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from rig.results import ArtifactRef, RunRecord, iso, utcnow, validate_results
from rig.signing import BenchKey, public_pem

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
JOURNAL = "journal.jsonl"
PUBKEY = "bench.pub"
RESULTS = "results.json"
MANIFEST_SCHEMA = "rig-manifest/1"
GENESIS = "0" * 64

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


def canonical(obj: dict[str, Any]) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces) that signatures are made over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def new_run_id() -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by time, unique by the random suffix."""
    return utcnow().strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


_DEFERRED = {signal.SIGTERM, signal.SIGINT}


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGTERM/SIGINT until the block is done, so a record is never half written.

    The engine turns those signals into an exception; without this, one arriving
    between two statements of :meth:`Journal.append` would leave a sequence gap.
    """
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    except (OSError, ValueError):  # pragma: no cover - platforms without sigmask
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


#: the files a sealed bundle's journal binds by hash (so removing the manifest after editing
#: one reads as tampering, not as an incomplete run)
OUTPUTS = ("results.json", "junit.xml", "report.html")


def output_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of each of :data:`OUTPUTS` present in the bundle at ``root``."""
    return {name: sha256_file(root / name)[0] for name in OUTPUTS if (root / name).is_file()}


def write_manifest(root: Path, run_id: str, key: BenchKey, status: str) -> None:
    """manifest.json (SHA-256 and size of every file, and every folder) and manifest.sig over it,
    for the bundle at ``root``: how a run seals its bundle, and how ``rig attest`` seals it again."""
    files, dirs = [], []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir():
            dirs.append(rel)
            continue
        if rel in (MANIFEST, SIGNATURE):
            continue
        digest, size = sha256_file(path)
        files.append({"path": rel, "sha256": digest, "size": size})
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "run_id": run_id,
        "created_at": iso(utcnow()),
        "status": status,
        "key_fingerprint": key.fingerprint,
        "public_key_pem": public_pem(key.public_key).decode(),
        "files": files,
        "dirs": dirs,
    }
    data = json.dumps(manifest, indent=2).encode() + b"\n"
    _write_atomic(root / MANIFEST, data)
    _write_atomic(root / SIGNATURE, key.sign(data))
    _fsync_dir(root)


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class BundleSealed(RuntimeError):
    """A write arrived after the bundle was sealed (a device thread that outlived the run)."""


class Journal:
    """Append-only, hash-chained, per-line signed log. Thread-safe."""

    def __init__(self, path: Path, key: BenchKey, run_id: str, gate: "threading.RLock | None" = None):
        self.path = path
        self._key = key
        self._lock = gate or threading.RLock()
        self._seq = 0
        self._prev = GENESIS
        self._run_id = run_id
        self._fh = path.open("ab", buffering=0)

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one entry and fsync before returning; returns the entry as written."""
        with deferred_signals(), self._lock:
            if self._fh.closed:
                raise BundleSealed(f"journal closed; {event} not recorded")
            self._seq += 1
            entry = {"seq": self._seq, "ts": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"), "run_id": self._run_id, "event": event, "prev": self._prev}
            for k, v in fields.items():
                if v is not None:
                    entry[k] = v
            entry["sig"] = base64.b64encode(self._key.sign(canonical(entry))).decode()
            line = canonical(entry)
            self._fh.write(line + b"\n")
            os.fsync(self._fh.fileno())
            self._prev = hashlib.sha256(line).hexdigest()
            return entry

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    @classmethod
    def resume(cls, path: Path, key: BenchKey, run_id: str) -> "Journal":
        """Reopen a sealed bundle's journal to append to its chain (``rig attest``): the next
        entry carries the next sequence number and the hash of the last line."""
        data = path.read_bytes()
        lines = [line for line in data.split(b"\n") if line]
        journal = cls(path, key, run_id)
        if lines:
            journal._seq = int(json.loads(lines[-1])["seq"])
            journal._prev = hashlib.sha256(lines[-1]).hexdigest()
        return journal


class ArtifactStream:
    """A file being written into the bundle; hashes as it goes, flushes every write."""

    def __init__(self, bundle: "Bundle", rel: str, media_type: str):
        self._bundle = bundle
        self.rel = rel
        self.media_type = media_type
        self.path = bundle.root / rel
        with bundle.gate:
            if bundle.sealed:
                raise BundleSealed(f"bundle sealed; {rel} not created")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[bytes] = self.path.open("xb")
        self._hash = hashlib.sha256()
        self._size = 0
        self._lock = threading.Lock()
        self.ref: ArtifactRef | None = None

    def write(self, data: bytes) -> None:
        with deferred_signals(), self._bundle.gate, self._lock:
            if self._bundle.sealed:
                raise BundleSealed(f"bundle sealed; {self.rel} not written")
            if self._fh.closed:
                raise ValueError(f"artifact {self.rel} already sealed")
            self._fh.write(data)
            self._fh.flush()
            self._hash.update(data)
            self._size += len(data)

    @property
    def size(self) -> int:
        return self._size

    def seal(self) -> ArtifactRef:
        """Close the file, fsync it and record its sha256 in the journal (idempotent)."""
        with deferred_signals(), self._bundle.gate:
            with self._lock:
                if self.ref is not None:
                    return self.ref
                if self._bundle.sealed and self._bundle.sealing_thread != threading.get_ident():
                    raise BundleSealed(f"bundle sealed; {self.rel} left unsealed")
                os.fsync(self._fh.fileno())
                self._fh.close()
                self.ref = ArtifactRef(self.rel, self._hash.hexdigest(), self.media_type, self._size)
            self._bundle._sealed(self.ref)
        return self.ref


class ArtifactFolder:
    """Where one device x scenario writes its artifacts."""

    def __init__(self, bundle: "Bundle", device: str, scenario: str):
        self.bundle = bundle
        self.rel_dir = f"devices/{device}/{scenario}"
        self.dir = bundle.root / self.rel_dir
        self.refs: list[ArtifactRef] = []
        self.closed = False  # the scenario's deadline passed: nothing new is written here

    def close(self) -> None:
        """No new artifact from now on (a scenario ended at its deadline whose thread goes on)."""
        self.closed = True

    def _open(self, name: str, media_type: str) -> ArtifactStream:
        if self.closed:
            raise BundleSealed(f"{self.rel_dir} is closed (the scenario's deadline passed); {name} not written")
        return ArtifactStream(self.bundle, self._rel(self.unique_name(name)), media_type)

    def _rel(self, name: str) -> str:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"artifact name {name!r} is not a safe file name")
        return f"{self.rel_dir}/{name}"  # the folder is made with the file, under the gate (never after sealing)

    def unique_name(self, name: str) -> str:
        """``name`` if unused in this folder, else ``stem-2.ext``, ``stem-3.ext``…"""
        if not (self.dir / name).exists():
            return name
        stem, dot, ext = name.partition(".")
        for i in range(2, 10_000):
            cand = f"{stem}-{i}{dot}{ext}"
            if not (self.dir / cand).exists():
                return cand
        raise RuntimeError("too many artifacts with one name")

    def write(self, name: str, data: bytes, media_type: str) -> ArtifactRef:
        """Write a whole artifact at once; it is sealed (hash journaled) on return."""
        stream = self._open(name, media_type)
        stream.write(data)
        ref = stream.seal()
        self.refs.append(ref)
        return ref

    @contextmanager
    def stream(self, name: str, media_type: str) -> Iterator[ArtifactStream]:
        """An artifact written piece by piece (transcripts); sealed on exit, even on error."""
        stream = self._open(name, media_type)
        try:
            yield stream
        finally:
            self.refs.append(stream.seal())

    def open_stream(self, name: str, media_type: str) -> ArtifactStream:
        """Like :meth:`stream` for callers that seal it themselves (drivers)."""
        stream = self._open(name, media_type)
        self.bundle._open_streams.append(stream)
        return stream

    def adopt(self, stream: ArtifactStream) -> ArtifactRef:
        ref = stream.seal()
        if ref not in self.refs:
            self.refs.append(ref)
        return ref


class Bundle:
    """One run's evidence folder ``DIR/<run_id>/``."""

    def __init__(self, root: Path, run_id: str, key: BenchKey):
        self.root = root
        self.run_id = run_id
        self.key = key
        self._open_streams: list[ArtifactStream] = []
        #: held while anything is written and for the whole of sealing, so no byte of a
        #: device thread can land between the manifest and its signature
        self.gate = threading.RLock()
        self.sealed = False
        self.sealing_thread: int | None = None
        self.journal = Journal(root / JOURNAL, key, run_id, self.gate)

    @classmethod
    def create(cls, out_dir: Path, key: BenchKey, run_id: str | None = None) -> "Bundle":
        """Make ``out_dir/<run_id>/`` with bench.pub and an opened journal."""
        run_id = run_id or new_run_id()
        root = out_dir / run_id
        root.mkdir(parents=True, exist_ok=False)
        (root / PUBKEY).write_bytes(public_pem(key.public_key))
        _fsync_dir(root)
        bundle = cls(root, run_id, key)
        return bundle

    def folder(self, device: str, scenario: str) -> ArtifactFolder:
        return ArtifactFolder(self, device, scenario)

    def _sealed(self, ref: ArtifactRef) -> None:
        self.journal.append("artifact", path=ref.path, sha256=ref.sha256, size=ref.size, media_type=ref.media_type)

    def write_top(self, name: str, data: bytes) -> None:
        _write_atomic(self.root / name, data)

    def finalize(self, record: RunRecord, outputs: list[tuple[str, bytes]]) -> None:
        """Write results.json and the other outputs, then manifest.json and its signature.

        ``record`` is validated against the results schema first; a record that breaks the
        contract raises before anything is signed. From here on, writes from other threads
        raise :class:`BundleSealed`.
        """
        with self.gate:
            self.sealed = True
            self.sealing_thread = threading.get_ident()
            self._finalize(record, outputs)

    def write_manifest(self, status: str) -> None:
        """manifest.json over every file of the bundle, and its signature."""
        write_manifest(self.root, self.run_id, self.key, status)

    def _finalize(self, record: RunRecord, outputs: list[tuple[str, bytes]]) -> None:
        for stream in self._open_streams:
            stream.seal()
        doc = record.to_dict()
        validate_results(doc)
        self.write_top(RESULTS, json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n")
        for name, data in outputs:
            self.write_top(name, data)
        self.journal.append("bundle-sealed", status=record.status, outputs=output_hashes(self.root))
        self.journal.close()
        self.write_manifest(record.status)
