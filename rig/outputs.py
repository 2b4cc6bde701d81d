"""Output callbacks: turn a :class:`RunRecord` into junit.xml and report.html.

Both escape every string that came from a device: XML/HTML special characters are
escaped and characters XML cannot carry (control bytes, escape sequences) are shown
as ``\\xNN``, so a banner carrying markup or terminal escapes shows as text.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

from rig.results import RunRecord, Verdict

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by ``\\xNN``."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def junit_xml(record: RunRecord) -> bytes:
    """One testsuite per run, one testcase per device x scenario (classname = device)."""
    cases = [(d, s) for d in record.devices for s in d.scenarios]
    suite = ET.Element(
        "testsuite",
        name=f"privrig {record.bench}",
        tests=str(len(cases)),
        failures=str(sum(1 for _, s in cases if s.verdict is Verdict.FAIL)),
        errors=str(sum(1 for _, s in cases if s.verdict in (Verdict.ERROR, Verdict.INCONCLUSIVE))),
        skipped=str(sum(1 for _, s in cases if s.verdict is Verdict.SKIPPED)),
        time=f"{sum(s.duration_s for _, s in cases):.3f}",
        timestamp=record.started_at.strftime("%Y-%m-%dT%H:%M:%S"),
        id=record.run_id,
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="run_id", value=record.run_id)
    ET.SubElement(props, "property", name="status", value=record.status)
    for dev, sc in cases:
        case = ET.SubElement(suite, "testcase", classname=xml_safe(dev.name), name=sc.id, time=f"{sc.duration_s:.3f}")
        cprops = ET.SubElement(case, "properties")
        for clause in sc.clauses:
            ET.SubElement(cprops, "property", name="clause", value=clause)
        lines = [f"[{f.severity}] {f.kind}: {f.summary}" + (f" (evidence: {', '.join(f.evidence)})" if f.evidence else "") for f in sc.findings]
        body = xml_safe("\n".join(lines))
        first = xml_safe(sc.findings[0].summary) if sc.findings else sc.verdict.value
        if sc.verdict is Verdict.FAIL:
            el = ET.SubElement(case, "failure", message=first[:500], type="fail")
            el.text = body
        elif sc.verdict in (Verdict.ERROR, Verdict.INCONCLUSIVE):
            el = ET.SubElement(case, "error", message=first[:500], type=sc.verdict.value)
            el.text = body
        elif sc.verdict is Verdict.SKIPPED:
            ET.SubElement(case, "skipped", message=first[:500])
        if body and sc.verdict is Verdict.PASS:
            out = ET.SubElement(case, "system-out")
            out.text = body
    ET.indent(suite)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="utf-8") + b"\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.pass{background:#d9f2d9}.fail{background:#f7d4d4}.error,.inconclusive{background:#fbe7c6}.skipped{background:#eee}
code,pre{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
"""


def _e(text: object) -> str:
    return html.escape(xml_safe(str(text)), quote=True)


def report_html(record: RunRecord) -> bytes:
    """A self-contained page (no external fetches): verdict matrix and findings with evidence links."""
    scen_ids = sorted({s.id for d in record.devices for s in d.scenarios})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data: 'self'\">",
        f"<title>privrig report {_e(record.run_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>privrig report</h1><p>Run <code>{_e(record.run_id)}</code> on bench <b>{_e(record.bench)}</b>, "
        f"{_e(record.started_at.isoformat())} &ndash; status <b>{_e(record.status)}</b>, rig {_e(record.rig_version)}.</p>",
        "<p>Integrity: check with <code>rig verify</code> on this folder (manifest.json, manifest.sig, bench.pub).</p>",
        "<h2>Verdicts</h2><table><tr><th>device</th>" + "".join(f"<th>{_e(i)}</th>" for i in scen_ids) + "</tr>",
    ]
    for d in record.devices:
        by_id = {s.id: s for s in d.scenarios}
        row = f"<tr><th>{_e(d.name)}</th>"
        for i in scen_ids:
            s = by_id.get(i)
            row += f"<td class={s.verdict.value}>{s.verdict.value}</td>" if s else "<td>not tested</td>"
        parts.append(row + "</tr>")
    parts.append("</table>")
    for d in record.devices:
        ident = ", ".join(f"{k}: {v}" for k, v in d.identity.items() if v)
        parts.append(f"<h2>{_e(d.name)}</h2><p>{_e(ident)}; privacy level {d.privacy_level}</p>")
        for s in d.scenarios:
            parts.append(f"<h3 class={s.verdict.value}>{_e(s.id)}: {s.verdict.value}</h3><p>Clauses: {_e('; '.join(s.clauses))}. {s.duration_s:.1f} s.</p>")
            if s.findings:
                parts.append("<table><tr><th>severity</th><th>kind</th><th>where</th><th>summary</th><th>evidence</th></tr>")
                for f in s.findings:
                    where = " ".join(str(x) for x in (f.interface, f"{f.port}/{f.proto}" if f.port is not None else None, f.path, f.flow, f.usb) if x)
                    ev = " ".join(f"<a href=\"{_e(p)}\">{_e(p.rsplit('/', 1)[-1])}</a>" for p in f.evidence)
                    parts.append(f"<tr><td>{_e(f.severity)}</td><td>{_e(f.kind)}</td><td>{_e(where)}</td><td>{_e(f.summary)}</td><td>{ev}</td></tr>")
                parts.append("</table>")
            table = s.measurements.get("flow_table")
            if isinstance(table, list) and table:
                parts.append("<table><tr><th>flow</th><th>protocol</th><th>channel</th><th>packets</th><th>bytes</th><th>why</th></tr>")
                for row in table:
                    ch = str(row.get("channel", ""))
                    cls = "fail" if ch in ("plaintext", "weak", "obfuscated") else "pass" if ch == "encrypted" else "skipped"
                    parts.append(f"<tr><td><code>{_e(row.get('flow'))}</code></td><td>{_e(row.get('protocol'))}</td><td class={cls}>{_e(ch)}</td>"
                                 f"<td>{_e(row.get('packets'))}</td><td>{_e(row.get('bytes'))}</td><td>{_e(row.get('reason'))}</td></tr>")
                parts.append("</table>")
            rest = {k: v for k, v in s.measurements.items() if k != "flow_table"}
            if rest:
                parts.append("<details><summary>measurements</summary><pre>" + _e("\n".join(f"{k}: {v}" for k, v in rest.items())) + "</pre></details>")
    parts.append("</body></html>\n")
    return "".join(parts).encode("utf-8")
