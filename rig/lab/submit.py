"""``rig lab submit`` and ``rig lab status``: the lab seen from a desk or a CI job."""

from __future__ import annotations

import json
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import click

from rig.lab.app import TASK, events_channel, make_app, queue_of
from rig.lab.config import LoadedLab
from rig.progress import TerminalProgress, safe

#: the exit codes of ``rig run``: 0 all passed, 1 something failed, 2 usage, 3 error, inconclusive or incomplete
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
FORWARDED = ("device-start", "scenario-start", "scenario-end", "warning")


def _err(message: str) -> None:
    click.echo(f"rig: lab: {safe(message)}", err=True)


def job_id(device: str) -> str:
    """A job id: when, which device, and enough randomness to be unique (also the task id)."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{device}-{uuid.uuid4().hex[:8]}"


def _workers(app) -> dict[str, list[str]]:  # noqa: ANN001 - a Celery app
    """Host -> the workers that consume its queue now (asked over the broker, 2 s)."""
    out: dict[str, list[str]] = {}
    try:
        queues = app.control.inspect(timeout=2.0).active_queues() or {}
    except Exception:  # noqa: BLE001 - no broker, no answer: no worker known
        return out
    for worker, qs in queues.items():
        for q in qs:
            name = q.get("name", "")
            if name.startswith("bench."):
                out.setdefault(name[len("bench."):], []).append(worker)
    return out


def submit(lab: LoadedLab, devices: list[str], scenarios: list[str], all_devices: bool, wait: float | None, junit: Path | None,
           quiet: bool = False) -> int:
    """Send one job per device; with ``wait``, follow them and return ``rig run``'s exit code."""
    from scenarios import REGISTRY

    owner = lab.devices()
    if not devices and not all_devices:
        _err("give --device NAME (repeatable) or --all")
        return EXIT_USAGE
    unknown = [d for d in devices if d not in owner]
    if unknown:
        _err(f"--device {unknown[0]}: no host of lab {lab.lab.name} has it (devices: {', '.join(owner)})")
        return EXIT_USAGE
    bad = [s for s in scenarios if s not in REGISTRY]
    if bad:
        _err(f"--scenario {bad[0]}: unknown scenario; available: {', '.join(REGISTRY)}")
        return EXIT_USAGE
    targets = list(owner) if all_devices else list(dict.fromkeys(devices))
    try:
        app = make_app(lab)
        import redis

        r = redis.Redis.from_url(lab.lab.broker.resolved_url(), socket_timeout=10)
        pubsub = r.pubsub(ignore_subscribe_messages=True)
        if wait is not None:
            pubsub.subscribe(events_channel(lab))  # before any job is sent: no event is missed
        jobs: dict[str, tuple[str, str]] = {}
        for d in targets:
            jid = job_id(d)
            app.send_task(TASK, kwargs={"job": {"job_id": jid, "host": owner[d], "device": d, "scenarios": scenarios,
                                                "submitted_at": datetime.now(timezone.utc).isoformat()}},
                          task_id=jid, queue=queue_of(owner[d]))
            jobs[jid] = (d, owner[d])
            click.echo(f"{jid} {d} {owner[d]}")
    except Exception as exc:  # noqa: BLE001 - the broker is the lab's: one line, never a traceback
        _err(f"cannot reach the broker of lab {lab.lab.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        return EXIT_INCOMPLETE
    if wait is None:
        return EXIT_PASS
    return _follow(lab, app, pubsub, jobs, scenarios or list(REGISTRY), wait, junit, quiet)


def _follow(lab: LoadedLab, app, pubsub, jobs: dict[str, tuple[str, str]], scenarios: list[str], wait: float,  # noqa: ANN001
            junit: Path | None, quiet: bool) -> int:
    progress = TerminalProgress(quiet)
    progress.event("run-start", run_id=f"lab {lab.lab.name}", bundle=str(lab.lab.evidence_store), devices=[d for d, _ in jobs.values()],
                   scenarios=scenarios)
    deadline = time.monotonic() + wait
    results: dict[str, dict | str] = {}
    next_poll = 0.0
    while len(results) < len(jobs) and time.monotonic() < deadline:
        msg = pubsub.get_message(timeout=0.5)
        if msg and msg.get("type") == "message":
            try:
                ev = json.loads(msg["data"])
            except (ValueError, TypeError):
                ev = {}
            if ev.get("job") in jobs and ev.get("event") in FORWARDED:
                info = {k: v for k, v in ev.items() if k not in ("job", "host", "event", "device", "scenario")}
                progress.event(ev["event"], ev.get("device"), ev.get("scenario"), **info)
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + 1.0
            for jid in jobs:
                if jid in results:
                    continue
                res = app.AsyncResult(jid)
                if res.ready():
                    value = res.get(propagate=False, timeout=10)
                    results[jid] = value if isinstance(value, dict) else f"{type(value).__name__}: {value}"
    pubsub.close()
    codes = []
    missing = [jid for jid in jobs if jid not in results]
    if missing:
        up = _workers(app)
        for jid in missing:
            device, host = jobs[jid]
            why = "no worker of that host is up" if not up.get(host) else f"still queued or running on {', '.join(up[host])}"
            _err(f"job {jid} ({device}) on host {host} did not finish within {wait:g} s: {why}")
        codes.append(EXIT_INCOMPLETE)
    checked: list[dict] = []
    for jid, res in results.items():
        device, host = jobs[jid]
        if not isinstance(res, dict):
            codes.append(EXIT_INCOMPLETE)
            _err(f"job {jid} ({device}) on host {host} failed: {res}")
            continue
        rec, problem = from_store(lab, host, jid)
        if rec is None:
            codes.append(EXIT_INCOMPLETE)
            _err(f"job {jid} ({device}) on host {host}: {problem}")
            continue
        if rec.get("exit_code") != res.get("exit_code") or rec.get("run_id") != res.get("run_id"):
            _err(f"job {jid} ({device}): the broker's answer (exit {res.get('exit_code')}, run {res.get('run_id')}) is not what the store "
                 f"holds (exit {rec.get('exit_code')}, run {rec.get('run_id')}); the store's verified bundle is reported")
        codes.append(int(rec["exit_code"]))
        checked.append(rec)
        click.echo(f"{device} {host} exit {rec['exit_code']} {rec['bundle']} (verified, signed by {rec['signed_by']})")
    code = EXIT_FAIL if EXIT_FAIL in codes else EXIT_INCOMPLETE if EXIT_INCOMPLETE in codes or any(c not in (0, 1) for c in codes) else EXIT_PASS
    progress.event("run-end", status="complete" if not missing else "incomplete", exit_code=code, bundle=str(lab.lab.evidence_store))
    if junit is not None:
        write_junit(junit, checked)
    return code


def from_store(lab: LoadedLab, host: str, jid: str) -> tuple[dict | None, str]:
    """A finished job as the evidence store holds it, never as the broker says: its record, its
    bundle verified byte for byte and signed by a key this desk trusts (``rig keys trust``), its
    exit code recomputed from the bundle's own results. ``(None, why)`` when any of it fails."""
    from rig.lab.store import EvidenceStore, outcome_of
    from rig.verify import VERIFIED, verify_bundle

    bench = lab.benches[host].bench.bench.name
    try:
        store = EvidenceStore(lab.lab.evidence_store)
        rec = store.job(bench, jid)
    except (OSError, ValueError) as exc:
        return None, f"the evidence store {lab.lab.evidence_store} cannot be read: {exc}"
    if rec is None:
        return None, f"the broker says it finished, but the evidence store has no record of it ({lab.lab.evidence_store}/{bench}/.jobs)"
    if rec.get("gave_up"):
        return None, str(rec.get("error", "given up"))
    try:
        bundle = store.root / bench / str(rec["run_id"])
        report = verify_bundle(bundle)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        return None, f"its record in the store names no readable bundle ({exc})"
    if report.status != VERIFIED or report.key_trust not in ("this-bench", "trusted"):
        why = "; ".join(report.problems[:2] + report.notes[:1]) or report.status
        hint = f" (trust host {host}'s key: on it `rig keys show > {host}.pem`, here `rig keys trust {host}.pem --name {host}`)" \
            if report.key_trust == "unknown" else ""
        return None, f"its bundle {bundle} did not verify: {report.status}: {why}{hint}"
    try:
        _, code = outcome_of(bundle)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"its bundle's results.json cannot be read: {exc}"
    return {**rec, "exit_code": code, "bundle": str(bundle), "signed_by": report.key_fingerprint}, ""


def write_junit(path: Path, records: list[dict]) -> None:
    """One JUnit file for the submission: every job's bundle's ``junit.xml`` suites under one root."""
    root = ET.Element("testsuites", name="privrig lab")
    for rec in records:
        try:
            tree = ET.parse(Path(rec["bundle"]) / "junit.xml").getroot()
        except (OSError, ET.ParseError):
            continue
        for suite in ([tree] if tree.tag == "testsuite" else list(tree)):
            root.append(suite)
    for k in ("tests", "failures", "errors", "skipped"):
        root.set(k, str(sum(int(s.get(k, 0)) for s in root)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def status(lab: LoadedLab, as_json: bool) -> int:
    """Print workers, queues and the last verdicts; exit 0, or 3 when the broker cannot be reached."""
    from rich.console import Console
    from rich.table import Table

    from rig.history import History, HistoryError

    try:
        app = make_app(lab)
        import redis

        r = redis.Redis.from_url(lab.lab.broker.resolved_url(), socket_timeout=10)
        queued = {h: int(r.llen(queue_of(h))) for h in lab.benches}
    except Exception as exc:  # noqa: BLE001
        _err(f"cannot reach the broker of lab {lab.lab.name}: {type(exc).__name__}")
        return EXIT_INCOMPLETE
    workers = _workers(app)
    try:
        active = app.control.inspect(timeout=2.0).active() or {}
    except Exception:  # noqa: BLE001
        active = {}
    running: dict[str, list[str]] = {}
    for tasks in active.values():
        for t in tasks:
            job = (t.get("kwargs") or {}).get("job") or {}
            running.setdefault(job.get("host", "?"), []).append(f"{job.get('job_id')} ({job.get('device')})")
    last: dict[str, dict] = {}
    try:
        hist = History.for_config(lab.lab.history, lab.lab.evidence_store)
        for dev in lab.devices():
            last[dev] = hist.latest(dev)
    except HistoryError as exc:
        _err(f"history: {exc}")
    doc = {"lab": lab.lab.name, "hosts": {h: {"workers": workers.get(h, []), "queued": queued[h], "running": running.get(h, []),
                                               "devices": {d: last.get(d, {}) for d in b.bench.devices}} for h, b in lab.benches.items()}}
    if as_json:
        click.echo(json.dumps(doc, indent=1))
        return EXIT_PASS
    con = Console(file=sys.stdout, width=160)
    t = Table(title=f"lab {lab.lab.name}")
    for col in ("host", "workers", "queued", "running", "device", "last verdicts"):
        t.add_column(col)
    for h, info in doc["hosts"].items():
        first = True
        for d, verdicts in info["devices"].items():
            t.add_row(h if first else "", ", ".join(info["workers"]) or "none" if first else "", str(info["queued"]) if first else "",
                      ", ".join(info["running"]) if first else "", d, ", ".join(f"{s} {v['verdict']}" for s, v in verdicts.items()) or "-")
            first = False
    con.print(t)
    return EXIT_PASS
