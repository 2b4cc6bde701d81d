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


def test_report_shows_the_flow_table_escaped() -> None:
    rec = record()
    now = datetime.now(timezone.utc)
    table = [{"flow": "tcp 198.18.0.1:40000 > 198.18.0.15:8080", "protocol": "http", "channel": "plaintext", "packets": 54, "bytes": 327451,
              "reason": f"client sends HTTP in the clear: {HOSTILE!r}"},
             {"flow": "udp 198.18.0.14:36086 > 198.18.0.1:25008", "protocol": "rtp", "channel": "encrypted", "packets": 173, "bytes": 200000, "reason": "SRTP"}]
    rec.devices[0].scenarios.append(ScenarioResult("channel-encryption", ["6.2.2 b"], Verdict.FAIL, now, 6.0, [], {"flow_table": table, "capture": {"dropped": 0}}))
    html = report_html(rec).decode()
    assert "<td><code>tcp 198.18.0.1:40000 &gt; 198.18.0.15:8080</code></td><td>http</td><td class=fail>plaintext</td>" in html
    assert "<td class=pass>encrypted</td>" in html
    assert "<script>" not in html and "\x1b" not in html
    assert "capture: {&#x27;dropped&#x27;: 0}" in html  # other measurements still listed


def test_port_table_shows_probe_transcripts_escaped(tmp_path) -> None:
    rec = record()
    sc = rec.devices[0].scenarios[0]
    sc.measurements.update({"open_tcp": [22, 23], "services": {"22": "ssh", "23": "telnet"}})
    art = tmp_path / "devices/d/debug-ports/probe-23.txt"
    art.parent.mkdir(parents=True)
    art.write_text(f"> \\xff\\xfd\\x01\n< login: {HOSTILE}\n")
    from rig.results import ArtifactRef

    sc.artifacts.append(ArtifactRef("devices/d/debug-ports/probe-23.txt", "0" * 64, "text/plain"))
    html = report_html(rec, tmp_path).decode()
    table = html[html.index("class=ports"):]
    assert "<td class=fail>23/tcp</td><td>telnet</td><td>high: open-debug-service</td>" in table
    assert "<details><summary>probe-23.txt</summary><pre>&gt; \\xff\\xfd\\x01" in table and "<td>22/tcp</td><td>ssh</td>" in table
    assert "<script>" not in html and "\x1b" not in html
