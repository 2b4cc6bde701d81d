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
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rig.evidence import GENESIS, JOURNAL, MANIFEST, PUBKEY, RESULTS, SIGNATURE, canonical, sha256_file
from rig.signing import fingerprint, load_public_pem, local_public_key, verify_signature

VERIFIED, TAMPERED, INCOMPLETE, UNREADABLE = "verified", "tampered", "incomplete", "unreadable"
EXIT = {VERIFIED: 0, TAMPERED: 1, UNREADABLE: 2, INCOMPLETE: 3}


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


def _check_journal(root: Path, key: Ed25519PublicKey, report: VerifyReport, sealed: bool) -> list[dict[str, Any]]:
    path = root / JOURNAL
    if not path.exists():
        report.tamper(f"{JOURNAL} is missing")
        return []
    data = path.read_bytes()
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
    if not root.is_dir() or not ((root / JOURNAL).exists() or (root / MANIFEST).exists()):
        report.status = UNREADABLE
        report.problems.append(f"{bundle}: not an evidence bundle (no {JOURNAL} or {MANIFEST})")
        return report
    try:
        key = load_public_pem((root / PUBKEY).read_bytes())
    except (OSError, ValueError) as exc:
        report.tamper(f"{PUBKEY} missing or not an Ed25519 public key ({exc}); nothing can be checked")
        return report
    report.key_fingerprint = fingerprint(key)
    if pinned_key is not None:
        if fingerprint(pinned_key) != report.key_fingerprint:
            report.tamper(f"bundle is signed by {report.key_fingerprint}, not by the pinned key {fingerprint(pinned_key)}")
        report.key_trust = "pinned"
    else:
        local = local_public_key()
        report.key_trust = "this-bench" if local is not None and fingerprint(local) == report.key_fingerprint else "unpinned"

    manifest_path = root / MANIFEST
    if manifest_path.exists():
        _verify_sealed(root, key, report)
    else:
        _verify_unsealed(root, key, report)
    return report


def _verify_sealed(root: Path, key: Ed25519PublicKey, report: VerifyReport) -> None:
    data = (root / MANIFEST).read_bytes()
    try:
        sig = (root / SIGNATURE).read_bytes()
    except OSError:
        report.tamper(f"{SIGNATURE} is missing")
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
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()} - {MANIFEST, SIGNATURE}
    for rel in sorted(present - listed.keys()):
        report.tamper(f"{rel}: file added after the bundle was sealed")
    for rel in sorted(listed.keys() - present):
        report.tamper(f"{rel}: file missing")
    for rel in sorted(listed.keys() & present):
        digest, size = sha256_file(root / rel)
        report.files_checked += 1
        if digest != listed[rel]["sha256"] or size != listed[rel]["size"]:
            report.tamper(f"{rel}: content changed (sha256 {digest[:16]}…, manifest says {listed[rel]['sha256'][:16]}…)")
    entries = _check_journal(root, key, report, sealed=True)
    _check_sealed_artifacts(root, entries, report)
    if report.status == TAMPERED:
        return
    if manifest.get("status") != "complete":
        report.status = INCOMPLETE
        report.notes.append("the run did not complete (crashed or interrupted); what it recorded is intact")
        return
    try:
        results = json.loads((root / RESULTS).read_bytes())
        if results.get("status") != "complete":
            report.status = INCOMPLETE
    except (OSError, ValueError):
        report.tamper(f"{RESULTS} unreadable")


def _check_sealed_artifacts(root: Path, entries: list[dict[str, Any]], report: VerifyReport) -> None:
    for e in entries:
        if e.get("event") != "artifact":
            continue
        rel = e.get("path", "")
        path = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            report.tamper(f"journal names an artifact outside the bundle: {rel!r}")
            continue
        if not path.is_file():
            report.tamper(f"{rel}: sealed artifact missing")
            continue
        digest, _ = sha256_file(path)
        if digest != e.get("sha256"):
            report.tamper(f"{rel}: content differs from the hash sealed in the journal")


def _verify_unsealed(root: Path, key: Ed25519PublicKey, report: VerifyReport) -> None:
    report.status = INCOMPLETE
    report.notes.append(f"no {MANIFEST}: the run was killed before it could seal the bundle")
    entries = _check_journal(root, key, report, sealed=False)
    _check_sealed_artifacts(root, entries, report)
    sealed = {e.get("path") for e in entries if e.get("event") == "artifact"}
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            continue
        rel = path.relative_to(root).as_posix()
        if rel in (JOURNAL, PUBKEY) or rel in sealed:
            continue
        report.files_checked += 1
        report.notes.append(f"{rel}: written but never sealed (the run stopped while writing it); kept, not verifiable")
    report.files_checked += len(sealed)
