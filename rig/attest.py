"""A technician's verdict on a clause no automated check covers, signed into the bundle.

``rig attest BUNDLE --device D --clause C --verdict pass|fail|not-applicable --by NAME
--note TEXT [--photo FILE]`` adds to a sealed bundle that verifies:

* ``devices/<device>/attest/attest-<n>.json`` (clause, verdict, note, who, when, the
  photo's SHA-256) and the photo beside it, each journaled as an artifact;
* an ``attestation`` journal entry, chained and signed like every other line;
* report.html rendered again, the attested verdict in the conformance matrix;
* a new manifest.json and manifest.sig over every file.

results.json is not touched: it stays what the run produced. Only the bench key that
signed the bundle can attest into it, so the chain of signatures stays one.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rig.clauses import CLAUSES
from rig.evidence import output_hashes, Journal, sha256_file, write_manifest
from rig.results import record_from_dict, utcnow, iso
from rig.signing import BenchKey
from rig.verify import VERIFIED, verify_bundle

VERDICTS = ("pass", "fail", "not-applicable")
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
PHOTO_LIMIT = 20 << 20


class AttestError(Exception):
    """The attestation cannot be recorded (the message names the argument or file)."""


@dataclass(frozen=True)
class Attestation:
    """One technician's verdict on one clause of one device."""

    device: str
    clause: str
    verdict: str
    note: str
    by: str
    at: str
    photo: str | None = None
    photo_sha256: str | None = None


def attestations(bundle: Path) -> list[Attestation]:
    """Every attestation recorded in ``bundle``, oldest first."""
    out = []
    for f in sorted(bundle.glob("devices/*/attest/attest-*.json"), key=lambda p: (p.parent.parent.name, int(re.sub(r"\D", "", p.stem) or 0))):
        try:
            out.append(Attestation(**json.loads(f.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return out


def attest(bundle: Path, device: str, clause: str, verdict: str, note: str, by: str, photo: Path | None = None,
           key: BenchKey | None = None) -> Attestation:
    """Record one attestation into ``bundle`` and seal it again (see the module docstring)."""
    if verdict not in VERDICTS:
        raise AttestError(f"--verdict {verdict}: must be one of {', '.join(VERDICTS)}")
    manual = {c.id: c for c in CLAUSES if c.manual}
    if clause not in manual:
        raise AttestError(f"--clause {clause}: not a manual clause; attest one of: {'; '.join(manual)}")
    if not by.strip() or not note.strip():
        raise AttestError("--by and --note must say who judged and on what grounds")
    report = verify_bundle(bundle)
    if report.status != VERIFIED:
        raise AttestError(f"{bundle}: bundle is {report.status}; only a sealed bundle that verifies takes an attestation")
    key = key or BenchKey.load_or_create()
    if key.fingerprint != report.key_fingerprint:
        raise AttestError(f"{bundle}: signed by {report.key_fingerprint}, but this bench's key is {key.fingerprint}: attest on the bench that ran it")
    results = json.loads((bundle / "results.json").read_text())
    if device not in [d["name"] for d in results["devices"]]:
        raise AttestError(f"--device {device}: not in run {results['run_id']}")
    if photo is not None:
        kind = PHOTO_TYPES.get(photo.suffix.lower())
        if kind is None or not photo.is_file():
            raise AttestError(f"--photo {photo}: a .jpg or .png file is needed")
        if photo.stat().st_size > PHOTO_LIMIT:
            raise AttestError(f"--photo {photo}: larger than {PHOTO_LIMIT >> 20} MiB")
    folder = bundle / "devices" / device / "attest"
    folder.mkdir(parents=True, exist_ok=True)
    n = len(list(folder.glob("attest-*.json"))) + 1
    journal = Journal.resume(bundle / "journal.jsonl", key, results["run_id"])
    try:
        photo_name = photo_sha = None
        if photo is not None:
            photo_name = f"attest-{n}-photo{photo.suffix.lower()}"
            shutil.copyfile(photo, folder / photo_name)
            photo_sha, size = sha256_file(folder / photo_name)
            journal.append("artifact", path=f"devices/{device}/attest/{photo_name}", sha256=photo_sha, size=size, media_type=PHOTO_TYPES[photo.suffix.lower()])
        att = Attestation(device, clause, verdict, note.strip()[:4000], by.strip()[:200], iso(utcnow()), photo_name, photo_sha)
        path = folder / f"attest-{n}.json"
        path.write_text(json.dumps(att.__dict__, indent=1, ensure_ascii=False) + "\n")
        digest, size = sha256_file(path)
        journal.append("artifact", path=f"devices/{device}/attest/{path.name}", sha256=digest, size=size, media_type="application/json")
        journal.append("attestation", device=device, clause=clause, verdict=verdict, by=att.by, artifact=f"devices/{device}/attest/{path.name}")
        from rig.outputs import report_html

        (bundle / "report.html").write_bytes(report_html(record_from_dict(results), bundle, key.fingerprint, attestations(bundle)))
        journal.append("outputs-resealed", outputs=output_hashes(bundle))  # the new report, bound to the chain like the first
    finally:
        journal.close()
    write_manifest(bundle, results["run_id"], key, results.get("status", "complete"))
    return att
