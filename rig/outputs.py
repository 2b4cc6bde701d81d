"""Output callbacks: turn a :class:`RunRecord` into junit.xml and report.html.

Both escape every string that came from a device: XML/HTML special characters are
escaped and characters XML cannot carry (control bytes, escape sequences) are shown
as ``\\xNN``, so a banner carrying markup or terminal escapes shows as text.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
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
        if sc.coverage is not None:
            lines += [f"[not configured] {p.note}: {p.summary}" for p in sc.coverage if p.note]
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
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.pass{background:#d9f2d9}.fail{background:#f7d4d4}.error,.inconclusive{background:#fbe7c6}.skipped,.not-tested,.not-applicable,.not-configured,.unset{background:#eee}.observed{background:#d9f2d9}.unobserved{background:#fbe7c6}
.manual{background:#dde6f7}
code,pre{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figure img{border:1px solid #999;max-width:480px}
figcaption{font-size:.8em;color:#555}.bar{background:#7aa7d8;height:.8em;display:inline-block}
"""

#: images embedded into the report, each at most this big (the rest stay links)
EMBED_LIMIT = 2 << 20


def _e(text: object) -> str:
    return html.escape(xml_safe(str(text)), quote=True)


def _cls(verdict: str) -> str:
    return verdict.replace(" ", "-")


def _matrix(record: RunRecord, attested: list | None = None) -> list[str]:
    """The conformance matrix: clause x device, with the EN 303 645 / TS 103 701 and ISVS
    equivalents; a manual clause a technician attested shows that verdict (the latest)."""
    from rig.clauses import CLAUSES, cell, cell_notes

    by_clause = {(a.device, a.clause): a for a in attested or []}

    out = ["<h2>Conformance matrix</h2><p>Each clause on each device: the worst verdict of the scenarios that check it "
           "(a scenario that checks several clauses fails a clause only through that clause's findings); <i>manual</i> where no "
           "automated check covers the clause and a technician judges it; <i>not tested</i> where its scenarios did not run or "
           "did not apply; <i>not applicable</i> where the parts that check it do not apply to the device. A clause passes only "
           "when every part that checks it was observed; a part not observed makes it <i>inconclusive</i>. A part the bench config gives "
           "no means to carry out (no power action for the bootloader, no serial console) is <i>not configured</i>: named under the "
           "verdict (\"pass: bootloader not checked, no power action\"), never counted as observed.</p><table id=matrix><tr><th>clause</th><th>checked by</th>"
           + "".join(f"<th>{_e(d.name)}</th>" for d in record.devices) + "<th>EN 303 645 provision / TS 103 701 test group</th><th>OWASP ISVS</th></tr>"]
    per_device = [{s.id: s for s in d.scenarios} for d in record.devices]
    for c in CLAUSES:
        cells = ""
        for d, r in zip(record.devices, per_device):
            v, a = cell(c, r), by_clause.get((d.name, c.id))
            if v == "manual" and a is not None:
                cls = {"pass": "pass", "fail": "fail"}.get(a.verdict, "not-tested")
                cells += f"<td class={cls}>{_e(a.verdict)}<br><small>attested by {_e(a.by)}</small></td>"
            else:
                notes = cell_notes(c, r)
                shown = f"{v}: {'; '.join(notes)}" if notes and v == "pass" else v
                small = f"<br><small>{_e('; '.join(notes))}</small>" if notes and v != "pass" else ""
                cells += f"<td class={_cls(v)}>{_e(shown)}{small}</td>"
        out.append(f"<tr><td><b>{_e(c.id)}</b><br>{_e(c.title)}</td><td>{_e(', '.join(c.scenarios) or 'manual')}</td>{cells}"
                   f"<td>{_e(c.etsi)}</td><td>{_e(c.isvs)}</td></tr>")
    out.append("</table>")
    return out


def _timeline(record: RunRecord) -> list[str]:
    """When each device ran each scenario, as bars on the run's time axis."""
    rows = sorted(((s.started_at, d.name, s) for d in record.devices for s in d.scenarios if s.verdict.value != "skipped"), key=lambda r: r[0])
    if not rows:
        return []
    t0 = record.started_at
    span = max(1.0, max((r[0] - t0).total_seconds() + r[2].duration_s for r in rows))
    out = ["<h2>Timeline</h2><table><tr><th>start (s)</th><th>device</th><th>scenario</th><th>verdict</th><th>duration</th></tr>"]
    for start, dev, s in rows:
        off = (start - t0).total_seconds()
        bar = f"<span style=\"margin-left:{300 * off / span:.0f}px;width:{max(2, 300 * s.duration_s / span):.0f}px\" class=bar></span>"
        out.append(f"<tr><td>{off:.1f}</td><td>{_e(dev)}</td><td>{_e(s.id)}</td><td class={_cls(s.verdict.value)}>{s.verdict.value}</td>"
                   f"<td>{bar} {s.duration_s:.1f} s</td></tr>")
    out.append("</table>")
    return out


def _images(s, bundle_root: Path | None) -> list[str]:  # noqa: ANN001 - a ScenarioResult
    """The scenario's PNG evidence (frames, faces) embedded, so the report stands alone."""
    if bundle_root is None:
        return []
    figs = []
    for a in s.artifacts:
        if a.media_type != "image/png":
            continue
        path = bundle_root / a.path
        try:
            if path.stat().st_size > EMBED_LIMIT:
                figs.append(f"<figure><a href=\"{_e(a.path)}\">{_e(a.path.rsplit('/', 1)[-1])}</a><figcaption>too large to embed</figcaption></figure>")
                continue
            data = base64.b64encode(path.read_bytes()).decode()
        except OSError:
            continue
        figs.append(f"<figure><img alt=\"{_e(a.path)}\" src=\"data:image/png;base64,{data}\"><figcaption>{_e(a.path.rsplit('/', 1)[-1])}</figcaption></figure>")
    return ["<div class=frames>", *figs, "</div>"] if figs else []


def _attestations(attested: list, bundle_root: Path | None) -> list[str]:
    """The technicians' verdicts on manual clauses, with their notes and photos."""
    if not attested:
        return []
    out = ["<h2>Attestations</h2><table id=attestations><tr><th>device</th><th>clause</th><th>verdict</th><th>by, when</th><th>note</th><th>photo</th></tr>"]
    for a in attested:
        img = ""
        if a.photo and bundle_root is not None:
            path = bundle_root / "devices" / a.device / "attest" / a.photo
            try:
                if path.stat().st_size <= EMBED_LIMIT:
                    mime = "image/png" if a.photo.endswith(".png") else "image/jpeg"
                    img = f"<img style=\"max-width:240px\" alt=\"{_e(a.photo)}\" src=\"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}\">"
            except OSError:
                img = _e(a.photo)
        out.append(f"<tr><td>{_e(a.device)}</td><td>{_e(a.clause)}</td><td class={_cls(a.verdict if a.verdict in ('pass', 'fail') else 'not tested')}>"
                   f"{_e(a.verdict)}</td><td>{_e(a.by)}, {_e(a.at)}</td><td>{_e(a.note)}</td><td>{img}</td></tr>")
    out.append("</table>")
    return out


#: bytes of each probe transcript shown inline (the whole file stays in the bundle)
TRANSCRIPT_INLINE = 16 << 10


def _ports(s, bundle_root: Path | None) -> list[str]:  # noqa: ANN001 - a ScenarioResult
    """debug-ports: a table of the open ports, the service each was named, its findings, and
    the probe transcript inline (what was sent and answered)."""
    services = {**{f"{k}/tcp": v for k, v in (s.measurements.get("services") or {}).items()},
                **{f"{k}/udp": v for k, v in (s.measurements.get("services_udp") or {}).items()}}
    opened = [f"{p}/tcp" for p in s.measurements.get("open_tcp") or []] + [f"{p}/udp" for p in s.measurements.get("open_udp") or []]
    if not opened:
        return []
    by_port: dict[str, list] = {}
    for f in s.findings:
        if f.port is not None:
            by_port.setdefault(f"{f.port}/{f.proto or 'tcp'}", []).append(f)
    out = ["<table class=ports><tr><th>port</th><th>service</th><th>findings</th><th>probe transcript</th></tr>"]
    for port in dict.fromkeys(opened):
        num, proto = port.split("/")
        name = f"probe-{num}.txt" if proto == "tcp" else f"probe-{num}-udp.txt"
        art = next((a for a in s.artifacts if a.path.endswith("/" + name)), None)
        transcript = ""
        if art is not None and bundle_root is not None:
            try:
                data = (bundle_root / art.path).read_bytes()
                more = f"\n… {len(data) - TRANSCRIPT_INLINE} more bytes in {art.path}" if len(data) > TRANSCRIPT_INLINE else ""
                transcript = f"<details><summary>{_e(name)}</summary><pre>{_e(data[:TRANSCRIPT_INLINE].decode('utf-8', 'replace') + more)}</pre></details>"
            except OSError:
                transcript = _e(art.path)
        fs = "<br>".join(f"{_e(f.severity)}: {_e(f.kind)}" for f in by_port.get(port, []))
        cls = " class=fail" if any(f.severity != "info" for f in by_port.get(port, [])) else ""
        out.append(f"<tr><td{cls}>{_e(port)}</td><td>{_e(services.get(port, ''))}</td><td>{fs}</td><td>{transcript}</td></tr>")
    out.append("</table>")
    return out


#: figures of a part shown inline (the whole record is in results.json)
SEEN_INLINE = 400


def _coverage(s) -> list[str]:  # noqa: ANN001 - a ScenarioResult
    """What each part of the scenario observed, next to its verdict: a pass shows what it rests
    on, an inconclusive what was not seen and why."""
    cov = s.coverage
    if cov is None or not cov.parts:
        return []
    import json

    out = ["<table class=coverage><tr><th>part</th><th>observed?</th><th>what it checks</th><th>what was seen, or why not</th><th>figures</th></tr>"]
    for p in cov:
        seen = json.dumps(p.seen, default=str, ensure_ascii=False) if p.seen else ""
        if len(seen) > SEEN_INLINE:
            seen = seen[:SEEN_INLINE] + " …"
        state = p.state.value + (" (control)" if p.control else "")
        out.append(f"<tr><td>{_e(p.name)}</td><td class={_cls(p.state.value)}>{_e(state)}</td><td>{_e(p.what)}</td>"
                   f"<td>{_e(p.summary or '')}</td><td><code>{_e(seen)}</code></td></tr>")
    out.append("</table>")
    return out


def report_html(record: RunRecord, bundle_root: Path | None = None, key_fingerprint: str | None = None, attested: list | None = None) -> bytes:
    """A self-contained page (no external fetches; images embedded): the conformance matrix,
    the verdicts, a timeline, and per device and scenario the findings with their evidence
    (frames inline, flow table, measurements). Every device-supplied string is escaped."""
    scen_ids = list(dict.fromkeys(s.id for d in record.devices for s in d.scenarios))
    signed = (f"Signed with the bench key <code>{_e(key_fingerprint)}</code> (manifest.sig over manifest.json, every file's SHA-256); "
              if key_fingerprint else "")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data: 'self'\">",
        f"<title>privrig report {_e(record.run_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>privrig report</h1><p>Run <code>{_e(record.run_id)}</code> on bench <b>{_e(record.bench)}</b>, "
        f"{_e(record.started_at.isoformat())} &ndash; status <b>{_e(record.status)}</b>, rig {_e(record.rig_version)}.</p>",
        f"<p>Integrity: {signed}check with <code>rig verify</code> on this folder (manifest.json, manifest.sig, bench.pub), or "
        "<code>openssl pkeyutl -verify -pubin -inkey bench.pub -rawin -in manifest.json -sigfile manifest.sig</code>.</p>",
        *_matrix(record, attested),
        *_attestations(attested or [], bundle_root),
        "<h2>Verdicts</h2><table id=verdicts><tr><th>device</th><th>identity</th>" + "".join(f"<th>{_e(i)}</th>" for i in scen_ids) + "</tr>",
    ]
    for d in record.devices:
        by_id = {s.id: s for s in d.scenarios}
        ident = ", ".join(f"{k} {v}" for k, v in d.identity.items() if v)
        row = f"<tr><th>{_e(d.name)}</th><td>{_e(ident)}</td>"
        for i in scen_ids:
            s = by_id.get(i)
            row += f"<td class={s.verdict.value}>{s.verdict.value}</td>" if s else "<td class=not-tested>not tested</td>"
        parts.append(row + "</tr>")
    parts.append("</table>")
    parts += _timeline(record)
    for d in record.devices:
        ident = ", ".join(f"{k}: {v}" for k, v in d.identity.items() if v)
        parts.append(f"<h2 id=\"dev-{_e(d.name)}\">{_e(d.name)}</h2><p>{_e(ident)}; privacy level {d.privacy_level}</p>")
        for s in d.scenarios:
            parts.append(f"<h3 id=\"dev-{_e(d.name)}-{_e(s.id)}\" class={s.verdict.value}>{_e(s.id)}: {s.verdict.value}</h3><p>Clauses: {_e('; '.join(s.clauses))}. {s.duration_s:.1f} s.</p>")
            parts += _coverage(s)
            if s.findings:
                parts.append("<table><tr><th>severity</th><th>kind</th><th>where</th><th>summary</th><th>evidence</th></tr>")
                for f in s.findings:
                    where = " ".join(str(x) for x in (f.interface, f"{f.port}/{f.proto}" if f.port is not None else None, f.path, f.flow, f.usb) if x)
                    ev = " ".join(f"<a href=\"{_e(p)}\">{_e(p.rsplit('/', 1)[-1])}</a>" for p in f.evidence)
                    parts.append(f"<tr><td>{_e(f.severity)}</td><td>{_e(f.kind)}</td><td>{_e(where)}</td><td>{_e(f.summary)}</td><td>{ev}</td></tr>")
                parts.append("</table>")
            parts += _ports(s, bundle_root) if s.id == "debug-ports" else []
            parts += _images(s, bundle_root)
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
