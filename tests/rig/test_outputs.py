"""Outputs escape device-supplied text: markup and terminal escapes show as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from drivers.transcript import escape_bytes, strip_ansi
from rig.outputs import junit_xml, report_html
from rig.results import DeviceResult, Finding, RunRecord, ScenarioResult, Verdict

HOSTILE = "<script>alert(1)</script>\x1b[2J\x1b]0;pwned\x07\x00 & \"q\""


def record() -> RunRecord:
    now = datetime.now(timezone.utc)
    rec = RunRecord("20261122T153000Z-3f9a1c", "0.1.0", "a" * 64, now, "lab", status="complete")
    f = Finding("open-debug-service", "high", f"banner {HOSTILE}", interface="network", proto="tcp", port=23, evidence=["devices/d/debug-ports/probe-23.txt"])
    rec.devices.append(DeviceResult("d", {"model": HOSTILE}, 2, [ScenarioResult("debug-ports", ["6.2.1 b"], Verdict.FAIL, now, 1.0, [f], {"banner": HOSTILE})]))
    return rec


def test_report_escapes_device_strings() -> None:
    html = report_html(record()).decode()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x1b" not in html and "\x00" not in html and "\\x1b[2J" in html


def test_junit_is_well_formed_with_hostile_text() -> None:
    root = ET.fromstring(junit_xml(record()))
    failure = root.find("testcase/failure")
    assert failure is not None and "<script>" in failure.get("message", "")  # as text, parsed back
    assert "\x1b" not in failure.text


def test_transcript_escaping_is_lossless_and_inert() -> None:
    raw = b"ok\\x41 \x1b[31mred\xff\n"
    text = escape_bytes(raw)
    assert "\x1b" not in text and "\\xff" in text and "\\\\x41" in text
    assert strip_ansi("/ # \x1b[6n") == "/ # "
