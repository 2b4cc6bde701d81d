"""The run record as data: findings, scenario results, device results, the run.

These are the in-memory form of ``results.json`` (the contract in
``shared/spec/results.md``); output callbacks (:mod:`rig.outputs`) turn a
:class:`RunRecord` into JSON, JUnit XML and HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema

if TYPE_CHECKING:
    from rig.coverage import Coverage

SCHEMA_ID = "rig-results/1"


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"


SEVERITIES = ("info", "low", "medium", "high", "critical")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    """RFC 3339 UTC timestamp with second precision, as in the contract."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ArtifactRef:
    path: str  # relative to the bundle root, POSIX separators
    sha256: str
    media_type: str
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "media_type": self.media_type}


@dataclass
class Finding:
    """One observation, naming where it was seen (interface, port, path, flow, usb)."""

    kind: str
    severity: str
    summary: str
    interface: str | None = None
    proto: str | None = None
    port: int | None = None
    service: str | None = None
    path: str | None = None
    flow: str | None = None
    usb: str | None = None
    evidence: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} not in {SEVERITIES}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "severity": self.severity}
        for key in ("interface", "proto", "port", "service", "path", "flow", "usb"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        out["summary"] = self.summary
        out["evidence"] = list(self.evidence)
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class ScenarioResult:
    id: str
    clauses: list[str]
    verdict: Verdict
    started_at: datetime
    duration_s: float
    findings: list[Finding] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)
    artifacts: list[ArtifactRef] = field(default_factory=list)
    #: what each part of the scenario observed (None: not run, or a results document from before coverage)
    coverage: "Coverage | None" = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "clauses": list(self.clauses),
            "verdict": self.verdict.value,
            "started_at": iso(self.started_at),
            "duration_s": round(self.duration_s, 3),
            "findings": [f.to_dict() for f in self.findings],
            "measurements": self.measurements,
            "artifacts": [a.to_dict() for a in self.artifacts],
        }
        if self.coverage is not None:
            out["coverage"] = self.coverage.to_dict()
        return out


@dataclass
class DeviceResult:
    name: str
    identity: dict[str, str | None]
    privacy_level: int
    scenarios: list[ScenarioResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "identity": dict(self.identity),
            "privacy_level": self.privacy_level,
            "scenarios": [s.to_dict() for s in self.scenarios],
        }


@dataclass
class RunRecord:
    run_id: str
    rig_version: str
    config_sha256: str
    started_at: datetime
    bench: str
    finished_at: datetime | None = None
    status: str = "incomplete"
    devices: list[DeviceResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "run_id": self.run_id,
            "rig_version": self.rig_version,
            "config_sha256": self.config_sha256,
            "bench": self.bench,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at or utcnow()),
            "status": self.status,
            "devices": [d.to_dict() for d in self.devices],
        }

    def verdicts(self) -> list[Verdict]:
        return [s.verdict for d in self.devices for s in d.scenarios]


def exit_code_for(verdicts: list[Verdict]) -> int:
    """Exit code of ``rig run`` per the contract: 1 any fail, 3 any error/inconclusive, else 0."""
    if any(v is Verdict.FAIL for v in verdicts):
        return 1
    if any(v in (Verdict.ERROR, Verdict.INCONCLUSIVE) for v in verdicts):
        return 3
    return 0


def results_schema() -> dict[str, Any]:
    """The JSON Schema of results.json kept in the project (``rig/schemas``)."""
    text = resources.files("rig").joinpath("schemas/results.schema.json").read_text()
    return json.loads(text)


def validate_results(doc: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` breaks the results contract."""
    jsonschema.Draft202012Validator(results_schema(), format_checker=jsonschema.FormatChecker()).validate(doc)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def record_from_dict(doc: dict[str, Any]) -> RunRecord:
    """A :class:`RunRecord` back from a results.json document (to render a sealed bundle's report again)."""
    from rig.coverage import Coverage

    rec = RunRecord(doc["run_id"], doc["rig_version"], doc["config_sha256"], _parse_time(doc["started_at"]), doc.get("bench", ""),
                    _parse_time(doc["finished_at"]) if doc.get("finished_at") else None, doc.get("status", "incomplete"))
    for d in doc.get("devices", []):
        dev = DeviceResult(d["name"], dict(d.get("identity") or {}), d.get("privacy_level", 0))
        for s in d.get("scenarios", []):
            findings = [Finding(**{k: v for k, v in f.items() if k in Finding.__dataclass_fields__}) for f in s.get("findings", [])]
            arts = [ArtifactRef(a["path"], a["sha256"], a["media_type"]) for a in s.get("artifacts", [])]
            dev.scenarios.append(ScenarioResult(s["id"], list(s.get("clauses", [])), Verdict(s["verdict"]), _parse_time(s["started_at"]),
                                                float(s.get("duration_s", 0.0)), findings, dict(s.get("measurements") or {}), arts,
                                                Coverage.from_dict(s.get("coverage"))))
        rec.devices.append(dev)
    return rec
