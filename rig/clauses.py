"""The clauses privrig reports on, what checks each, and where it sits in other schemes.

Each T/AI 110.1-2020 clause of the device-security and privacy requirements is listed with
the scenarios that check it, or none (``manual``: a technician's judgement, not an
automated check). For labs that work to EN 303 645, each is mapped to the provision whose
ETSI TS 103 701 test group checks the same thing, and to the OWASP IoT Security
Verification Standard (ISVS) requirement; a dash where no provision or requirement matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.results import ScenarioResult


@dataclass(frozen=True)
class Clause:
    """One clause: its id, a short English title, its checks, its equivalents."""

    id: str
    title: str
    scenarios: tuple[str, ...]  # empty: manual
    etsi: str  # EN 303 645 provision = ETSI TS 103 701 test group
    isvs: str  # OWASP ISVS requirement(s)
    #: where a scenario checks several clauses: the finding kinds that fail this one (None: any)
    kinds: frozenset[str] | None = None

    @property
    def manual(self) -> bool:
        """No automated check covers the clause."""
        return not self.scenarios


T = "T/AI 110.1-2020 "

CLAUSES: tuple[Clause, ...] = (
    Clause(T + "6.2.1 a", "security chip or trusted execution environment for biometric data", (), "5.4-1", "2.4.4, 5.1.4"),
    Clause(T + "6.2.1 b", "no debug, burning or diagnostic interface reachable; unused ports closed", ("debug-ports",), "5.6-1, 5.6-4", "3.2.2, 3.1.3, 5.1.1"),
    Clause(T + "6.2.1 c", "physical protection of the capture device (anti-tamper, anti-disassembly)", (), "-", "5.1.9"),
    Clause(T + "6.2.1 d", "interfaces that must stay open authenticate their callers", ("interface-auth",), "5.1-1, 5.5-5", "2.1.3, 2.1.6"),
    Clause(T + "6.2.1 e", "firmware updated automatically and securely", ("firmware-update",), "5.3-2, 5.3-9", "3.4.2, 3.4.3"),
    Clause(T + "6.2.1 f", "visual data classified, sensitive data detected", (), "-", "-"),
    Clause(T + "6.2.1 g", "physical shutter blocks the camera when its service is off", ("camera-shutter",), "-", "-"),
    Clause(T + "6.2.2 a 2", "one-way or mutual authentication keeps illegitimate nodes out", ("server-auth",), "5.5-1", "4.1",
           frozenset({"forged-server-accepted"})),
    Clause(T + "6.2.2 b", "channels carrying visual data encrypted, with integrity", ("channel-encryption", "server-auth"), "5.5-1, 5.8-1", "4.1.1, 4.1.2"),
    Clause(T + "Annex A transport layer", "transmission encrypted at every privacy level", ("channel-encryption",), "5.5-1", "4.2.1"),
    Clause(T + "6.2.3", "storage meets the privacy level's rules", ("storage-at-rest",), "5.4-1", "2.3.1, 3.2.4"),
    Clause(T + "6.2.3 b", "data kept in separate, isolated vaults", (), "-", "2.2.3"),
    Clause(T + "6.2.3 c", "uninstall or account deletion removes every file stored", ("uninstall-wipe",), "5.11-1", "2.3.2"),
    Clause(T + "6.2.3 d", "no private data on external storage", ("uninstall-wipe",), "5.11-1", "2.3.1"),
    Clause(T + "6.2.3 e", "master and data keys in an HSM or key management service", (), "5.4-1", "2.4.4"),
    Clause(T + "6.2.4 a 1", "core algorithm framework and components tested: no backdoor through the model", ("model-integrity",), "-", "-",
           frozenset({"tampered-model-accepted"})),
    Clause(T + "6.2.4 a 3", "algorithm accuracy and robustness verifiable", (), "-", "-"),
    Clause(T + "6.2.4 a 4", "algorithm resists adversarial samples", (), "-", "-"),
    Clause(T + "6.2.4 a 5", "AI model protected by strong encryption or better", ("model-at-rest", "model-integrity"), "-", "-",
           frozenset({"model-readable", "model-in-clear", "tampered-model-accepted"})),
    Clause(T + "6.2.4 b 1", "stored passwords encrypted (strongly hashed)", ("storage-at-rest",), "5.4-1", "2.2.1",
           frozenset({"weak-password-hash", "empty-password", "plaintext-secret", "private-key-in-clear"})),
    Clause(T + "6.2.4 b 3", "authentication resists guessing (lockout, multi-factor where required)", ("interface-auth",), "5.1-5", "2.1.3",
           frozenset({"no-login-rate-limit", "default-credential-accepted"})),
    Clause(T + "6.2.5 b c", "published and stored visual data de-identified", ("deidentification",), "-", "-"),
    Clause(T + "Annex A.1/A.2", "level 1 and 2 outputs structured or de-identified", ("deidentification",), "-", "-"),
    Clause(T + "Annex A", "no raw images at rest on level 1 and 2 devices", ("storage-at-rest",), "-", "2.3.1", frozenset({"raw-image-at-rest"})),
    Clause("Edge AI group standard: model security (anti-tamper, anti-reverse)", "model files encrypted and integrity-checked",
           ("storage-at-rest", "model-at-rest", "model-integrity"), "-", "2.2.1",
           frozenset({"model-in-clear", "model-tamper-accepted", "model-readable", "tampered-model-accepted"})),
)

#: worse first: the cell of a clause covered by several scenarios shows the worst verdict
ORDER = ("fail", "error", "inconclusive", "pass", "not configured", "not applicable", "skipped")


def scenario_cell(clause: Clause, result: "ScenarioResult") -> str | None:
    """What one scenario's result says of ``clause``: ``fail`` only through one of the clause's
    finding ``kinds``; otherwise what the parts that check the clause add up to
    (:func:`rig.coverage.clause_state`). ``None`` when the result says nothing of it (skipped,
    or no part of it checks the clause)."""
    from rig.coverage import clause_state

    verdict = result.verdict.value
    if verdict == "skipped":
        return None
    kinds = {f.kind for f in result.findings if f.severity != "info"}
    if kinds and (clause.kinds is None or kinds & clause.kinds):
        return "fail"
    if result.coverage is not None and result.coverage.parts:
        state = clause_state(result.coverage, clause.id)
        if state is not None:
            return state
        return None if verdict in ("pass", "fail") else verdict  # no part checks it; an error still shows
    # a result without parts (it raised before declaring any, or predates coverage)
    return "pass" if verdict == "fail" else verdict  # failed on another of its clauses


def cell(clause: Clause, results: dict[str, "ScenarioResult"]) -> str:
    """A device's status on ``clause`` from its scenario results (by scenario id): the worst of
    what each scenario that checks the clause says of it (:func:`scenario_cell`); ``not tested``
    when none ran (or all skipped); ``manual`` when no automated check covers it."""
    if clause.manual:
        return "manual"
    seen = [v for sid in clause.scenarios if sid in results and (v := scenario_cell(clause, results[sid])) is not None]
    if not seen:
        return "not tested"
    return min(seen, key=lambda v: ORDER.index(v) if v in ORDER else len(ORDER))


def cell_notes(clause: Clause, results: dict[str, "ScenarioResult"]) -> list[str]:
    """What the cell of ``clause`` did not check because the config gave no means (the parts
    not configured, e.g. "bootloader not checked, no power action"), from every scenario that
    checks it and ran; empty for a manual clause."""
    from rig.coverage import clause_notes

    if clause.manual:
        return []
    out: list[str] = []
    for sid in clause.scenarios:
        r = results.get(sid)
        if r is not None and r.coverage is not None and r.verdict.value != "skipped":
            out += [n for n in clause_notes(r.coverage, clause.id) if n not in out]
    return out
