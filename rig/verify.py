"""Checking an evidence bundle: ``rig verify BUNDLE``.

Outcome (and exit code of ``rig verify``):

* ``verified`` (0): manifest signature valid, every file present with its recorded
  sha256, no file added, journal chain and signatures intact, run complete.
* ``tampered`` (1): any changed, missing or added byte, a bad signature, a broken
  journal chain, or a key other than the one the user pinned with ``--pubkey``.
* ``incomplete`` (3): the run did not finish (killed, crashed, interrupted). Everything
  that was recorded checks out: each journal line's signature and chain, each sealed
  artifact's hash.
* ``unreadable`` (2): not a bundle at all.
* ``untrusted`` (4): every byte checks out (sealed or incomplete), but the signer is neither
  this bench, a key added with ``rig keys trust``, nor the ``--pubkey`` given: anyone can sign
  a bundle with a key of their own.

Only regular files and folders are read: a symlink, a FIFO or a device node anywhere in a
bundle is tampering (and never opened, so it cannot hang or feed the check), and so is a
folder the manifest does not list. results.json, junit.xml and report.html are also bound to
the signed journal, so removing the manifest after editing one of them is tampering, not an
interrupted run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import os
import stat

from rig.evidence import GENESIS, JOURNAL, MANIFEST, OUTPUTS, PUBKEY, RESULTS, SIGNATURE, canonical, sha256_file
from rig.signing import fingerprint, load_public_pem, local_public_key, trusted_keys, verify_signature

VERIFIED, TAMPERED, INCOMPLETE, UNREADABLE, UNTRUSTED = "verified", "tampered", "incomplete", "unreadable", "untrusted"
EXIT = {VERIFIED: 0, TAMPERED: 1, UNREADABLE: 2, INCOMPLETE: 3, UNTRUSTED: 4}
#: a journal or manifest larger than this is not one privrig wrote (read no further)
MAX_META_BYTES = 256 << 20


@dataclass
class VerifyReport:
    bundle: Path
    status: str = VERIFIED
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key_fingerprint: str | None = None
    key_trust: str = "unknown"
    files_checked: int = 0
    journal_entries: int = 0
    scenarios_done: list[str] = field(default_factory=list)

    def tamper(self, msg: str) -> None:
        self.problems.append(msg)
        self.status = TAMPERED

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle),
            "status": self.status,
            "problems": self.problems,
            "notes": self.notes,
            "key_fingerprint": self.key_fingerprint,
            "key_trust": self.key_trust,
            "files_checked": self.files_checked,
            "journal_entries": self.journal_entries,
            "scenarios_done": self.scenarios_done,
        }


class NotRegular(Exception):
    """A path in a bundle that is not a regular file (a symlink, FIFO or device) or is too large."""


def _read(path: Path, limit: int = MAX_META_BYTES) -> bytes:
    """The bytes of a regular file, never following a link and never opening anything else;
    raises :class:`NotRegular` (or OSError when it is missing)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(f"{path.name} is not a regular file")
    if st.st_size > limit:
        raise NotRegular(f"{path.name} is larger than any file privrig writes there")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit + 1)


def _tree(root: Path, report: VerifyReport) -> tuple[set[str], set[str]]:
    """(regular files, folders) of the bundle, relative; anything else is tampering, named."""
    files: set[str] = set()
    dirs: set[str] = set()
    for top, dnames, fnames in os.walk(root, followlinks=False):
        for name in sorted(dnames + fnames):
            full = Path(top) / name
            rel = full.relative_to(root).as_posix()
            mode = os.lstat(full).st_mode
            if stat.S_ISDIR(mode):
                dirs.add(rel)
            elif stat.S_ISREG(mode):
                files.add(rel)
            else:
                kind = "a symlink" if stat.S_ISLNK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
                report.tamper(f"{rel}: {kind}, not a regular file (never read)")
    return files, dirs


def _hash(root: Path, rel: str) -> tuple[str, int] | None:
    """sha256 and size of a regular file in the bundle, or None when it is not one."""
    path = root / rel
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
    except OSError:
        return None
    return sha256_file(path)


def _check_journal(root: Path, key: Ed25519PublicKey, report: VerifyReport, sealed: bool) -> list[dict[str, Any]]:
    path = root / JOURNAL
    if not path.exists() and not path.is_symlink():
        report.tamper(f"{JOURNAL} is missing")
        return []
    try:
        data = _read(path)
    except (NotRegular, OSError) as exc:
        report.tamper(f"{JOURNAL}: {exc}")
        return []
    lines = data.split(b"\n")
    torn = lines[-1] != b""
    if torn and not sealed:
        report.notes.append(f"last {JOURNAL} line was cut off mid-write ({len(lines[-1])} bytes); ignored")
    entries = []
    prev = GENESIS
    body = lines[:-1] if not torn or not sealed else lines
    for n, line in enumerate(body, 1):
        if not line:
            report.tamper(f"{JOURNAL} line {n} is empty")
            break
        try:
            entry = json.loads(line)
            sig = base64.b64decode(entry.pop("sig"), validate=True)
        except (ValueError, KeyError, TypeError):
            report.tamper(f"{JOURNAL} line {n} is not a signed journal entry")
            break
        if entry.get("prev") != prev:
            report.tamper(f"{JOURNAL} line {n} does not chain to line {n - 1} (a line was removed, added or reordered)")
            break
        if not verify_signature(key, sig, canonical(entry)):
            report.tamper(f"{JOURNAL} line {n} ({entry.get('event')}) has a bad signature: its content was changed")
            break
        if entry.get("seq") != n:
            report.tamper(f"{JOURNAL} line {n} has sequence number {entry.get('seq')}")
            break
        prev = hashlib.sha256(line).hexdigest()
        entries.append(entry)
    report.journal_entries = len(entries)
    for e in entries:
        if e.get("event") == "scenario-end":
            report.scenarios_done.append(f"{e.get('device')}/{e.get('scenario')}: {e.get('verdict')}")
    return entries


def verify_bundle(bundle: Path, pinned_key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check every byte of ``bundle`` as described in the module docstring."""
    report = VerifyReport(bundle)
    root = bundle
    if root.is_symlink() or not root.is_dir() or not any((root / n).exists() or (root / n).is_symlink() for n in (JOURNAL, MANIFEST)):
        report.status = UNREADABLE
        report.problems.append(f"{bundle}: not an evidence bundle (no {JOURNAL} or {MANIFEST})")
        return report
    try:
        key = load_public_pem(_read(root / PUBKEY, 64 << 10))
    except (OSError, ValueError, NotRegular) as exc:
        report.tamper(f"{PUBKEY} missing or not an Ed25519 public key ({exc}); nothing can be checked")
        return report
    report.key_fingerprint = fingerprint(key)
    if pinned_key is not None:
        if fingerprint(pinned_key) != report.key_fingerprint:
            report.key_trust = "not-pinned"
            report.tamper(f"bundle is signed by {report.key_fingerprint}, not by the pinned key {fingerprint(pinned_key)}")
        else:
            report.key_trust = "pinned"
    else:
        local = local_public_key()
        if local is not None and fingerprint(local) == report.key_fingerprint:
            report.key_trust = "this-bench"
        elif report.key_fingerprint in trusted_keys():
            report.key_trust = "trusted"
        else:
            report.key_trust = "unknown"

    manifest_path = root / MANIFEST
    if manifest_path.exists() or manifest_path.is_symlink():
        _verify_sealed(root, key, report)
    else:
        _verify_unsealed(root, key, report)
    if report.key_trust == "unknown" and report.status in (VERIFIED, INCOMPLETE):
        report.notes.append(f"intact, but signed by {report.key_fingerprint}: neither this bench's key nor one added with "
                            "`rig keys trust`; pin the signer with --pubkey if you know it")
        report.status = UNTRUSTED
    return report


def _check_outputs(root: Path, entries: list[dict[str, Any]], report: VerifyReport) -> None:
    """results.json, junit.xml and report.html against the hashes the journal sealed them with."""
    sealed = [e for e in entries if isinstance(e.get("outputs"), dict)]
    if not sealed:
        return
    for name, digest in sealed[-1]["outputs"].items():
        if name not in OUTPUTS:
            continue
        got = _hash(root, name)
        if got is None:
            report.tamper(f"{name}: sealed by the journal, now missing or not a regular file")
        elif got[0] != digest:
            report.tamper(f"{name}: content differs from the hash the journal sealed it with")


def _verify_sealed(root: Path, key: Ed25519PublicKey, report: VerifyReport) -> None:
    try:
        data = _read(root / MANIFEST)
    except (OSError, NotRegular) as exc:
        report.tamper(f"{MANIFEST}: {exc}")
        return
    try:
        sig = _read(root / SIGNATURE, 4096)
    except (OSError, NotRegular) as exc:
        report.tamper(f"{SIGNATURE} is missing or not a regular file ({exc})")
        return
    if not verify_signature(key, sig, data):
        report.tamper(f"{SIGNATURE} is not a valid signature over {MANIFEST}")
        return
    try:
        manifest = json.loads(data)
        listed = {f["path"]: f for f in manifest["files"]}
    except (ValueError, KeyError, TypeError):
        report.tamper(f"{MANIFEST} is signed but malformed")
        return
    if manifest.get("key_fingerprint") != report.key_fingerprint:
        report.tamper(f"{MANIFEST} names key {manifest.get('key_fingerprint')} but {PUBKEY} is {report.key_fingerprint}")
    files, dirs = _tree(root, report)
    present = files - {MANIFEST, SIGNATURE}
    for rel in sorted(present - listed.keys()):
        report.tamper(f"{rel}: file added after the bundle was sealed")
    for rel in sorted(listed.keys() - present):
        report.tamper(f"{rel}: file missing (or not a regular file)")
    if isinstance(manifest.get("dirs"), list):
        for rel in sorted(dirs - set(manifest["dirs"])):
            report.tamper(f"{rel}/: folder added after the bundle was sealed")
    for rel in sorted(listed.keys() & present):
        digest, size = sha256_file(root / rel)
        report.files_checked += 1
        if digest != listed[rel]["sha256"] or size != listed[rel]["size"]:
            report.tamper(f"{rel}: content changed (sha256 {digest[:16]}…, manifest says {listed[rel]['sha256'][:16]}…)")
    entries = _check_journal(root, key, report, sealed=True)
    _check_sealed_artifacts(root, entries, report)
    _check_outputs(root, entries, report)
    if report.status == TAMPERED:
        return
    if manifest.get("status") != "complete":
        report.status = INCOMPLETE
        report.notes.append("the run did not complete (crashed or interrupted); what it recorded is intact")
        return
    try:
        results = json.loads(_read(root / RESULTS))
        if results.get("status") != "complete":
            report.status = INCOMPLETE
    except (OSError, ValueError, NotRegular):
        report.tamper(f"{RESULTS} unreadable")


def _check_sealed_artifacts(root: Path, entries: list[dict[str, Any]], report: VerifyReport) -> None:
    for e in entries:
        if e.get("event") != "artifact":
            continue
        rel = e.get("path", "")
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            report.tamper(f"journal names an artifact outside the bundle: {rel!r}")
            continue
        got = _hash(root, rel)
        if got is None:
            report.tamper(f"{rel}: sealed artifact missing or not a regular file")
            continue
        if got[0] != e.get("sha256"):
            report.tamper(f"{rel}: content differs from the hash sealed in the journal")


def _verify_unsealed(root: Path, key: Ed25519PublicKey, report: VerifyReport) -> None:
    report.status = INCOMPLETE
    report.notes.append(f"no {MANIFEST}: the run was killed before it could seal the bundle")
    files, _ = _tree(root, report)
    entries = _check_journal(root, key, report, sealed=False)
    if any(e.get("event") == "bundle-sealed" for e in entries):
        report.tamper(f"{MANIFEST} was removed: the journal says this bundle was sealed")
    _check_sealed_artifacts(root, entries, report)
    _check_outputs(root, entries, report)
    sealed = {e.get("path") for e in entries if e.get("event") == "artifact"}
    for rel in sorted(files):
        if rel in (JOURNAL, PUBKEY) or rel in sealed:
            continue
        report.files_checked += 1
        report.notes.append(f"{rel}: written but never sealed (the run stopped while writing it); kept, not verifiable")
    report.files_checked += len(sealed)
