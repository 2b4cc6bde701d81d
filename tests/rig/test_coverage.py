"""The verdict rules in one place: parts observed or not, and the clause cells built from them."""

from __future__ import annotations

from datetime import datetime, timezone

from rig.clauses import CLAUSES, cell
from rig.coverage import Coverage, PartState, clause_state, decide, gap_findings
from rig.results import Finding, ScenarioResult, Verdict, record_from_dict, RunRecord, DeviceResult, validate_results

T = "T/AI 110.1-2020 "
BY_ID = {c.id: c for c in CLAUSES}


def test_decide_fail_wins_then_error_then_gaps_then_pass() -> None:
    cov = Coverage()
    a = cov.part("a", "first")
    b = cov.part("b", "second")
    a.observed("seen")
    assert decide([], cov) is Verdict.INCONCLUSIVE  # b never recorded: unset
    b.unobserved("nothing answered")
    assert decide([], cov) is Verdict.INCONCLUSIVE
    assert decide([Finding("x", "high", "bad", evidence=["e"])], cov) is Verdict.FAIL  # a violation seen wins
    b.error("the link died")
    assert decide([], cov) is Verdict.ERROR
    b2 = Coverage()
    b2.part("only", "one").observed("seen")
    assert decide([], b2) is Verdict.PASS
    assert decide([], b2, raised=True) is Verdict.ERROR
    assert decide([], Coverage()) is Verdict.INCONCLUSIVE  # nothing declared, nothing observed
    na = Coverage()
    na.part("n", "n/a").not_applicable("level 3")
    assert decide([], na) is Verdict.INCONCLUSIVE  # nothing applied: nothing observed either


def test_a_later_success_does_not_undo_a_gap() -> None:
    cov = Coverage()
    p = cov.part("p", "two looks")
    p.unobserved("first look timed out")
    p.observed("second look saw it")
    assert p.state is PartState.UNOBSERVED and "timed out" in (p.summary or "")


def test_gap_findings_name_the_part_and_why() -> None:
    cov = Coverage()
    cov.part("22/tcp", "ssh", interface="network", proto="tcp", port=22).unobserved("nothing answered: No route to host", kind="no-answer")
    cov.part("console", "serial", interface="serial", path="/dev/ttyUSB0")
    cov.part("ok", "fine").observed("seen")
    gaps = gap_findings(cov, [])
    assert [(g.kind, g.port, g.path) for g in gaps] == [("no-answer", 22, None), ("not-observed", None, "/dev/ttyUSB0")]
    assert gaps[0].summary == "22/tcp: not observed: nothing answered: No route to host" and gaps[0].severity == "info"
    assert gap_findings(cov, gaps) == []  # not twice


def _storage_result(kinds: list[str], media: str) -> ScenarioResult:
    cov = Coverage()
    cov.part("media", "images", clauses=(T + "Annex A",))
    cov.part("secrets", "secrets", clauses=(T + "6.2.3", T + "6.2.4 b 1")).observed("searched")
    cov.part("hashes", "hashes", clauses=(T + "6.2.4 b 1",)).observed("read")
    {"error": lambda p: p.error("search killed"), "unobserved": lambda p: p.unobserved("folder unreadable"),
     "observed": lambda p: p.observed("seen")}[media](cov["media"])
    findings = [Finding(k, "high", k, evidence=["devices/d/storage-at-rest/secrets.json"]) for k in kinds]
    return ScenarioResult("storage-at-rest", [T + "6.2.3", T + "6.2.4 b 1", T + "Annex A"], decide(findings, cov), datetime.now(timezone.utc), 1.0,
                          findings, coverage=cov)


def test_a_clause_whose_part_was_not_observed_is_never_pass_in_the_matrix() -> None:
    """storage-at-rest fails on a plaintext secret while its media search errored: 6.2.4 b 1 fails,
    and Annex A (raw images), which nothing observed, once showed pass."""
    r = _storage_result(["plaintext-secret"], "error")
    assert r.verdict is Verdict.FAIL
    results = {r.id: r}
    assert cell(BY_ID[T + "6.2.4 b 1"], results) == "fail"
    assert cell(BY_ID[T + "Annex A"], results) == "error"
    r = _storage_result(["plaintext-secret"], "unobserved")
    assert cell(BY_ID[T + "Annex A"], {r.id: r}) == "inconclusive"
    r = _storage_result(["plaintext-secret"], "observed")
    assert cell(BY_ID[T + "Annex A"], {r.id: r}) == "pass"  # observed, and failed only on another clause's kinds
    assert clause_state(r.coverage, T + "6.2.4 b 1") == "pass"  # type: ignore[arg-type]


def test_coverage_survives_results_json_and_the_schema_checks_a_pass() -> None:
    now = datetime.now(timezone.utc)
    r = _storage_result([], "observed")
    assert r.verdict is Verdict.PASS
    rec = RunRecord("20261130T000000Z-abcdef", "0.1.0", "0" * 64, now, "lab", now, "complete", [DeviceResult("d", {}, 2, [r])])
    doc = rec.to_dict()
    validate_results(doc)
    back = record_from_dict(doc).devices[0].scenarios[0]
    assert [(p.name, p.state) for p in back.coverage] == [(p.name, p.state) for p in r.coverage]  # type: ignore[union-attr]
    assert cell(BY_ID[T + "Annex A"], {back.id: back}) == "pass"
    # a pass whose record shows a part not observed breaks the contract
    doc["devices"][0]["scenarios"][0]["coverage"]["parts"][0]["state"] = "unobserved"
    import jsonschema
    import pytest

    with pytest.raises(jsonschema.ValidationError):
        validate_results(doc)


def _debug_result(boot: str) -> ScenarioResult:
    cov = Coverage()
    cov.part("console", "serial console", clauses=None).observed("a login prompt; root/root refused")
    boot_part = cov.part("bootloader", "console from power-on")
    if boot == "not-configured":
        boot_part.not_configured("no power action", "add power-off and power-on via host")
    elif boot == "unobserved":
        boot_part.unobserved("the device was never seen down")
    return ScenarioResult("debug-ports", [T + "6.2.1 b"], decide([], cov), datetime.now(timezone.utc), 1.0, [], coverage=cov)


def test_a_part_not_configured_is_not_a_gap_and_the_matrix_names_it() -> None:
    """A network camera without power actions: its bootloader was never going to be checked. That
    is the lab's choice, shown as such, not an observation that failed (inconclusive)."""
    from rig.clauses import cell_notes

    r = _debug_result("not-configured")
    assert r.verdict is Verdict.PASS
    assert gap_findings(r.coverage, []) == []  # type: ignore[arg-type]
    assert cell(BY_ID[T + "6.2.1 b"], {r.id: r}) == "pass"
    assert cell_notes(BY_ID[T + "6.2.1 b"], {r.id: r}) == ["bootloader not checked, no power action"]
    # attempted and saw nothing stays a gap
    r2 = _debug_result("unobserved")
    assert r2.verdict is Verdict.INCONCLUSIVE and cell(BY_ID[T + "6.2.1 b"], {r2.id: r2}) == "inconclusive"
    assert cell_notes(BY_ID[T + "6.2.1 b"], {r2.id: r2}) == []
    # nothing but parts not configured: nothing observed, never a pass
    only = Coverage()
    only.part("bootloader", "b").not_configured("no power action", "add one")
    assert decide([], only) is Verdict.INCONCLUSIVE and clause_state(only, T + "6.2.1 b") == "not configured"


def test_not_configured_survives_results_json_the_schema_and_the_report() -> None:
    from rig.outputs import junit_xml, report_html

    now = datetime.now(timezone.utc)
    r = _debug_result("not-configured")
    rec = RunRecord("20261206T000000Z-abcdef", "0.1.0", "0" * 64, now, "lab", now, "complete", [DeviceResult("d", {}, 2, [r])])
    doc = rec.to_dict()
    validate_results(doc)
    back = record_from_dict(doc)
    part = back.devices[0].scenarios[0].coverage["bootloader"]  # type: ignore[index]
    assert part.state is PartState.NOT_CONFIGURED and part.note == "bootloader not checked, no power action"
    page = report_html(back).decode()
    assert "pass: bootloader not checked, no power action" in page  # the matrix cell
    assert "<td class=not-configured>not-configured</td>" in page  # the coverage table
    assert "[not configured] bootloader not checked, no power action" in junit_xml(back).decode()
