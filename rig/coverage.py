"""What a scenario observed, part by part, and the one place a verdict is made from it.

A scenario declares the *parts* it will observe before it looks (OpenHTF declares its
measurements before a phase runs): the ports it will check, the outputs it will grab, the
roots it will search, the positive controls that show the check can tell (the canary was
stored, the open window showed the scene, the device's own stream reached the sink). As it
runs it records, for each part, what it saw (``observed``) or why it could not see
(``unobserved``: nothing answered, a 401, a search killed by its timeout; ``error``: the
rig or the link failed). A part never recorded stays ``unset`` and counts as not observed.

:func:`decide` is the only place a verdict comes from (the engine calls it for every
scenario, and :func:`rig.clauses.cell` uses the same parts for each clause of the matrix):

* ``fail``: a finding above ``info`` (a violation seen wins over what was not seen);
* ``error``: a part errored, or the scenario raised;
* ``inconclusive``: a required part is ``unset`` or ``unobserved``, or no part was declared
  at all (a scenario that observed nothing cannot pass);
* ``pass``: every declared part observed (``not-applicable`` parts, with their reason, and
  ``not-configured`` parts, with what the config lacks, do not count either way; at least one
  part must have been observed).

``not-configured`` is a part the bench config gives the rig no means to carry out (no power
action for the bootloader, no serial section for the console, no ``firmware.older`` for the
rollback): the lab chose not to check it, which is not the same as a check that ran and saw
nothing (``unobserved``). It is shown as such in the coverage table and in the matrix cell
("pass: bootloader not checked, no power action"), and ``rig config check`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rig.results import Finding, Verdict

#: text kept per part, at most (what was seen, why not)
TEXT_LIMIT = 600


class PartState(str, Enum):
    """How far one part of a scenario got."""

    UNSET = "unset"  # declared and never recorded: not observed
    OBSERVED = "observed"
    UNOBSERVED = "unobserved"  # carried out, nothing to judge (nothing answered, 401, timed out)
    ERROR = "error"  # the rig, a tool or the link failed while carrying it out
    NOT_APPLICABLE = "not-applicable"  # does not apply to this device (the reason says why)
    NOT_CONFIGURED = "not-configured"  # the config gives no means to carry it out (``seen.missing`` says which)


#: states that leave nothing to observe and count neither way in a verdict
SETTLED = (PartState.OBSERVED, PartState.NOT_APPLICABLE, PartState.NOT_CONFIGURED)
#: states that say the part was not looked at by design (not applicable or not configured)
ASIDE = frozenset({PartState.NOT_APPLICABLE, PartState.NOT_CONFIGURED})

#: where a finding about a part may say it was seen (and the evidence it points at)
WHERE_KEYS = ("interface", "proto", "port", "service", "path", "flow", "usb", "evidence")


@dataclass
class Part:
    """One thing a scenario set out to observe.

    ``clauses`` narrows the scenario's clauses to the ones this part checks (``None``: all
    of them). ``where`` (interface, port, path, ...) locates the part for the finding the
    engine writes when it is not observed; ``kind`` names that finding.
    """

    name: str
    what: str
    clauses: tuple[str, ...] | None = None
    control: bool = False  # a positive control: shows the check can tell at all
    where: dict[str, Any] = field(default_factory=dict)
    kind: str | None = None
    state: PartState = PartState.UNSET
    summary: str | None = None  # what was seen, or why it was not
    seen: dict[str, Any] = field(default_factory=dict)  # figures: ports, bytes, frames, files

    def observed(self, summary: str, **seen: Any) -> "Part":
        """Record what was seen. A part already recorded as not observed or errored keeps that
        state (a later success does not undo an earlier gap); the figures are added."""
        self.seen.update(seen)
        if self.state in (PartState.UNSET, PartState.OBSERVED):
            self.state = PartState.OBSERVED
            self.summary = _clip(summary)
        return self

    def unobserved(self, reason: str, kind: str | None = None, **seen: Any) -> "Part":
        """Record that the part ran but saw nothing it could judge, and why (one line)."""
        self.seen.update(seen)
        if self.state is not PartState.ERROR:
            self.state = PartState.UNOBSERVED
            self.summary = _clip(reason)
            self.kind = kind or self.kind
        return self

    def error(self, reason: str, kind: str | None = None, evidence: list[str] | None = None) -> "Part":
        """Record that the rig could not carry the part out (the link died, a tool failed)."""
        self.state = PartState.ERROR
        self.summary = _clip(reason)
        self.kind = kind or self.kind
        if evidence:
            self.where["evidence"] = list(evidence)
        return self

    def not_applicable(self, reason: str) -> "Part":
        """The part does not apply to this device; ``reason`` says why."""
        self.state = PartState.NOT_APPLICABLE
        self.summary = _clip(reason)
        return self

    def not_configured(self, missing: str, reason: str) -> "Part":
        """The config gives the rig no means to carry the part out: ``missing`` says what in a
        few words for the matrix ("no power action"), ``reason`` what to add to the config."""
        self.state = PartState.NOT_CONFIGURED
        self.summary = _clip(reason)
        self.seen["missing"] = _clip(missing)[:80]
        return self

    @property
    def done(self) -> bool:
        """Recorded as observed, not applicable or not configured (nothing more will be seen)."""
        return self.state in SETTLED

    @property
    def note(self) -> str | None:
        """For a not-configured part, the matrix's few words: "bootloader not checked, no power action"."""
        if self.state is not PartState.NOT_CONFIGURED:
            return None
        return f"{self.name} not checked, {self.seen.get('missing') or 'not configured'}"

    def checks(self, clause: str) -> bool:
        """This part speaks for ``clause``."""
        return self.clauses is None or clause in self.clauses

    def to_dict(self) -> dict[str, Any]:
        """The results.json form (``coverage.parts[]``)."""
        out: dict[str, Any] = {"name": self.name, "what": self.what, "state": self.state.value}
        if self.clauses is not None:
            out["clauses"] = list(self.clauses)
        if self.control:
            out["control"] = True
        if self.summary:
            out["summary"] = self.summary
        if self.seen:
            out["seen"] = self.seen
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Part":
        """Back from results.json (a sealed bundle's report rendered again)."""
        return cls(str(d.get("name", "")), str(d.get("what", "")), tuple(d["clauses"]) if d.get("clauses") is not None else None,
                   bool(d.get("control", False)), state=PartState(d.get("state", "unset")), summary=d.get("summary"),
                   seen=dict(d.get("seen") or {}))


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


class Coverage:
    """The parts of one scenario run, in the order they were declared."""

    def __init__(self, parts: list[Part] | None = None):
        self.parts: dict[str, Part] = {p.name: p for p in parts or []}

    def part(self, name: str, what: str, clauses: tuple[str, ...] | list[str] | None = None, control: bool = False,
             kind: str | None = None, **where: Any) -> Part:
        """Declare a part (idempotent: a second declaration returns the first)."""
        if name not in self.parts:
            bad = set(where) - set(WHERE_KEYS)
            if bad:
                raise ValueError(f"part {name}: unknown location keys {sorted(bad)}")
            self.parts[name] = Part(name, what, tuple(clauses) if clauses is not None else None, control,
                                    {k: v for k, v in where.items() if v is not None}, kind)
        return self.parts[name]

    def __getitem__(self, name: str) -> Part:
        return self.parts[name]

    def __contains__(self, name: str) -> bool:
        return name in self.parts

    def __iter__(self):  # noqa: ANN204 - an iterator of parts
        return iter(self.parts.values())

    def fail_unset(self, reason: str, kind: str) -> None:
        """Every part not yet recorded ends as ``error`` with ``reason`` (the scenario raised)."""
        for p in self.parts.values():
            if p.state is PartState.UNSET:
                p.error(f"not carried out: {reason}", kind)

    def counts(self) -> dict[str, int]:
        """How many parts ended in each state."""
        out: dict[str, int] = {}
        for p in self.parts.values():
            out[p.state.value] = out.get(p.state.value, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """The results.json ``coverage`` object: the parts and a count per state."""
        return {"parts": [p.to_dict() for p in self.parts.values()], "counts": self.counts()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Coverage | None":
        """Back from results.json; ``None`` for a results document written before coverage existed."""
        if not isinstance(d, dict) or not isinstance(d.get("parts"), list):
            return None
        return cls([Part.from_dict(p) for p in d["parts"] if isinstance(p, dict)])


def gap_findings(coverage: Coverage, findings: list[Finding]) -> list[Finding]:
    """One ``info`` finding per part that was not observed, saying what and why, unless the
    scenario already recorded a finding of that kind at that place."""
    out = []
    have = {(f.kind, f.port, f.path, f.flow) for f in findings}
    for p in coverage:
        if p.state in SETTLED:
            continue
        kind = p.kind or ("part-error" if p.state is PartState.ERROR else "not-observed")
        if (kind, p.where.get("port"), p.where.get("path"), p.where.get("flow")) in have:
            continue
        why = p.summary or "the scenario ended before recording it"
        out.append(Finding(kind, "info", f"{p.name}: {'not observed' if p.state is not PartState.ERROR else 'error'}: {why}",
                           detail={"part": p.name, "state": p.state.value}, **p.where))
    return out


def decide(findings: list[Finding], coverage: Coverage, raised: bool = False) -> Verdict:
    """The verdict of one scenario run from its findings and its parts (see the module docstring)."""
    if any(f.severity != "info" for f in findings):
        return Verdict.FAIL
    states = {p.state for p in coverage}
    if raised or PartState.ERROR in states:
        return Verdict.ERROR
    if not coverage.parts or states & {PartState.UNSET, PartState.UNOBSERVED}:
        return Verdict.INCONCLUSIVE
    if states <= ASIDE:
        return Verdict.INCONCLUSIVE  # nothing applied or was configured, so nothing was observed
    return Verdict.PASS


def clause_state(coverage: Coverage, clause: str) -> str | None:
    """What the parts that check ``clause`` add up to: ``error``, ``inconclusive``, ``pass``,
    ``not configured`` (every part not configured, or those with not-applicable ones),
    ``not applicable``, or ``None`` when no part speaks for it. A ``pass`` may stand beside
    not-configured parts: :func:`clause_notes` names them."""
    parts = [p for p in coverage if p.checks(clause)]
    if not parts:
        return None
    states = {p.state for p in parts}
    if PartState.ERROR in states:
        return "error"
    if states & {PartState.UNSET, PartState.UNOBSERVED}:
        return "inconclusive"
    if states == {PartState.NOT_APPLICABLE}:
        return "not applicable"
    if states <= ASIDE:
        return "not configured"
    return "pass"


def clause_notes(coverage: Coverage, clause: str) -> list[str]:
    """The parts that check ``clause`` and were not configured, in the matrix's words
    ("bootloader not checked, no power action")."""
    return [n for p in coverage if p.checks(clause) and (n := p.note)]
