"""The run engine: devices x scenarios into one evidence bundle.

Guarantees:

* Every step is journaled (fsynced) as it happens; what was recorded survives a
  device dying, an exception, SIGTERM/SIGINT (bundle sealed as ``incomplete``) or
  SIGKILL (journal and sealed artifacts stay checkable by ``rig verify``).
* Every verdict is made here, by :func:`rig.coverage.decide`, from the scenario's findings
  and the parts it observed: no part observed, no pass. Each part not observed gets an
  ``info`` finding saying what and why.
* A scenario's device trouble (:class:`DeviceError`) becomes verdict ``error`` with the
  reason as a finding; a bug in a scenario becomes ``error`` too, with the traceback in
  the journal; the run goes on with the next scenario. A planned scenario that produced no
  result (its device's worker crashed, the run was interrupted) is recorded as ``error``
  saying why, and counts in the exit code.
* Devices run side by side (``jobs`` at a time), each in its own daemon thread: one
  device hanging or dying ends as ``error`` for that device only and never keeps the
  rig from sealing the bundle; results keep the config's device order.
* The exit code follows the contract (0/1/3; 4 when the rig itself broke).
"""

from __future__ import annotations

import copy
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from drivers.errors import DeviceError
from rig import __version__
from rig.config import DeviceConfig, LoadedConfig
from rig.coverage import decide, gap_findings
from rig.evidence import Bundle, BundleSealed
from rig.locks import DeviceBusy, device_lock
from rig.outputs import junit_xml, report_html
from rig.results import DeviceResult, Finding, RunRecord, ScenarioResult, Verdict, exit_code_for, utcnow
from drivers import netfilter
from rig.scenario import ScenarioExpired, ScenarioOptions, Scenario, ScenarioContext, run_action
from rig.signing import BenchKey
from scenarios import REGISTRY

EXIT_CRASH = 4
#: After SIGTERM/SIGINT, how long devices may finish the step they are in before sealing.
INTERRUPT_GRACE_S = 5.0
#: After a scenario's deadline, how long its thread may take to unwind before the engine goes on.
DEADLINE_GRACE_S = 5.0
#: Devices driven at once by default.
DEFAULT_JOBS = 8


class Progress(Protocol):
    def event(self, kind: str, device: str | None = None, scenario: str | None = None, **info: object) -> None: ...


class NullProgress:
    def event(self, kind: str, device: str | None = None, scenario: str | None = None, **info: object) -> None:
        pass


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; the run stops and seals what it has."""


@dataclass
class RunPlan:
    config: LoadedConfig
    devices: list[str]
    scenarios: list[str]
    out_dir: Path
    jobs: int = DEFAULT_JOBS
    #: how long a device locked by another run is waited for (0: it ends as error at once)
    lock_wait_s: float = 0.0
    #: inputs to hand scenarios again (device -> scenario -> inputs), from the bundle being rerun
    inputs: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: the run this one replays (journaled as ``rerun_of``)
    rerun_of: str | None = None

    @classmethod
    def select(cls, config: LoadedConfig, devices: list[str] | None, scenarios: list[str] | None, out_dir: Path | None,
               jobs: int = DEFAULT_JOBS, lock_wait_s: float = 0.0) -> "RunPlan":
        """Resolve the selection; raises ValueError naming an unknown device or scenario."""
        names = list(config.bench.devices)
        for d in devices or []:
            if d not in config.bench.devices:
                raise ValueError(f"--device {d}: no such device in {config.path} (devices: {', '.join(names)})")
        for s in scenarios or []:
            if s not in REGISTRY:
                from scenarios import PLANNED

                extra = " (planned, not implemented yet)" if s in PLANNED else ""
                raise ValueError(f"--scenario {s}: unknown scenario{extra}; available: {', '.join(REGISTRY)}")
        out = out_dir or config.bench.bench.evidence_dir or Path("evidence")
        if jobs < 1:
            raise ValueError(f"--jobs {jobs}: must be at least 1")
        if lock_wait_s < 0:
            raise ValueError(f"--wait-lock {lock_wait_s:g}: must be 0 or more seconds")
        return cls(config, list(dict.fromkeys(devices)) if devices else names, list(dict.fromkeys(scenarios)) if scenarios else list(REGISTRY), out, jobs,
                   lock_wait_s)


@dataclass
class RunOutcome:
    exit_code: int
    bundle: Path
    record: RunRecord
    crash: str | None = None
    notes: list[str] = field(default_factory=list)


def _identify(device_name: str, device: DeviceConfig, bundle: Bundle, progress: Progress) -> dict[str, str | None]:
    identity: dict[str, str | None] = device.identity.model_dump()
    if "identify" not in device.actions:
        return identity
    folder = bundle.folder(device_name, "identify")
    ctx = ScenarioContext(device_name, device, "identify", folder, bundle.journal)
    try:
        _, out = run_action(ctx, "identify")
        reported = {}
        for line in out.splitlines()[:200]:
            k, sep, v = line.partition("=")
            k = k.strip().lower()
            if sep and k in ("model", "serial", "firmware"):
                reported[k] = v.strip()[:200]
        for k, v in reported.items():
            if identity.get(k) and identity[k] != v:
                bundle.journal.append("identity-mismatch", device=device_name, field=k, declared=identity[k], reported=v)
                progress.event("warning", device_name, message=f"device reports {k}={v!r}, config declares {identity[k]!r}; using what the device reports")
            identity[k] = v
        bundle.journal.append("identity", device=device_name, identity=identity)
    except DeviceError as exc:
        bundle.journal.append("identify-failed", device=device_name, reason=exc.reason)
        progress.event("warning", device_name, message=f"could not read identity: {exc.reason}")
    except Exception as exc:  # noqa: BLE001 - a bug here must not take the device's scenarios with it
        reason = f"{type(exc).__name__}: {exc}"
        bundle.journal.append("identify-failed", device=device_name, reason=reason, traceback=traceback.format_exc(limit=20))
        progress.event("warning", device_name, message=f"could not read identity (rig error {reason})")
    finally:
        ctx.close()
    return identity


def _device_worker(name: str, device: DeviceConfig, dres: DeviceResult, scenario_ids: list[str], bundle: Bundle,
                   progress: Progress, cancel: threading.Event, options: ScenarioOptions | None = None, lock_wait_s: float = 0.0,
                   inputs: dict[str, dict] | None = None, crashes: dict[str, str] | None = None) -> None:
    """One device's scenarios, in order, under the device's lock; never raises (a dead or
    busy device ends as error verdicts)."""
    lock = device_lock(name, device, {"run_id": bundle.run_id, "pid": os.getpid()})
    try:
        lock.acquire(lock_wait_s)
    except DeviceBusy as exc:
        _busy(name, scenario_ids, dres, bundle, progress, str(exc))
        return
    except OSError as exc:
        _busy(name, scenario_ids, dres, bundle, progress, f"{name}: cannot take the device lock: {exc}")
        return
    try:
        if netfilter.sweep(name):  # a redirect a killed rig left for this device (server-auth): gone before anything runs
            bundle.journal.append("interception-swept", device=name, table=netfilter.table_name(name))
    except DeviceError as exc:
        bundle.journal.append("interception-sweep-failed", device=name, reason=exc.reason)
    try:
        _device_scenarios(name, device, dres, scenario_ids, bundle, progress, cancel, options or ScenarioOptions(), inputs or {},
                          crashes if crashes is not None else {})
    finally:
        lock.release()


def busy_result(scenario_id: str, reason: str) -> ScenarioResult:
    """The result of a scenario that could not run because its device is locked by another run."""
    return ScenarioResult(scenario_id, list(REGISTRY[scenario_id].clauses), Verdict.ERROR, utcnow(), 0.0, [Finding("device-busy", "info", reason)])


def _busy(name: str, scenario_ids: list[str], dres: DeviceResult, bundle: Bundle, progress: Progress, reason: str) -> None:
    """Every selected scenario of a device that could not be locked ends as error, saying why."""
    try:
        bundle.journal.append("device-busy", device=name, reason=reason)
        progress.event("warning", name, message=reason)
        with bundle.gate:
            dres.scenarios.extend(busy_result(sid, reason) for sid in scenario_ids)
    except BundleSealed:
        return


def open_run(cfg: LoadedConfig, out_dir: Path, key: BenchKey, devices: list[str], scenarios: list[str], **start: object) -> tuple[Bundle, RunRecord]:
    """A new bundle for a run of ``cfg``: run-start journaled (``start`` adds fields), the config
    snapshot written, and the empty record the run fills."""
    bundle = Bundle.create(out_dir, key)
    record = RunRecord(bundle.run_id, __version__, cfg.sha256, utcnow(), cfg.bench.bench.name)
    bundle.journal.append("run-start", rig_version=__version__, config=str(cfg.path), config_abs=str(Path(cfg.path).resolve()),
                          config_sha256=cfg.sha256, devices=devices, scenarios=scenarios, key_fingerprint=key.fingerprint,
                          **{k: v for k, v in start.items() if v is not None})
    bundle.folder("_run", "config").write("config.yaml", cfg.text.encode(), "application/yaml")
    return bundle, record


def seal_run(bundle: Bundle, record: RunRecord, exit_code: int) -> None:
    """Journal run-end and seal: results.json, junit.xml, report.html, the signed manifest."""
    record.finished_at = utcnow()
    bundle.journal.append("run-end", status=record.status, exit_code=exit_code)
    bundle.finalize(record, [("junit.xml", junit_xml(record)), ("report.html", report_html(record, bundle.root, bundle.key.fingerprint))])


def no_result(scenario_id: str, reason: str) -> ScenarioResult:
    """The result of a planned scenario that never produced one (its verdict is ``error``)."""
    return ScenarioResult(scenario_id, list(REGISTRY[scenario_id].clauses) if scenario_id in REGISTRY else [], Verdict.ERROR, utcnow(), 0.0,
                          [Finding("no-result", "info", f"planned but produced no result: {reason}")])


def _device_scenarios(name: str, device: DeviceConfig, dres: DeviceResult, scenario_ids: list[str], bundle: Bundle,
                      progress: Progress, cancel: threading.Event, options: ScenarioOptions, inputs: dict[str, dict],
                      crashes: dict[str, str]) -> None:
    """The scenarios of one locked device (see :func:`_device_worker`). A crash of the worker
    itself is journaled; the scenarios it never ran are recorded by :func:`execute`."""
    try:
        progress.event("device-start", name)
        dres.identity = _identify(name, device, bundle, progress)
        for sid in scenario_ids:
            if cancel.is_set():
                return
            result = _run_scenario(REGISTRY[sid](), name, device, bundle, progress, options, inputs.get(sid))
            with bundle.gate:  # a scenario already recorded as no-result (the run is being sealed) keeps that record
                if not bundle.sealed and all(r.id != sid for r in dres.scenarios):
                    dres.scenarios.append(result)
    except BundleSealed:
        return  # the run was sealed without this device's late work
    except Exception as exc:  # noqa: BLE001 - a worker must never die silently
        crashes[name] = f"{type(exc).__name__}: {exc}"
        try:
            bundle.journal.append("device-crash", device=name, error=crashes[name], traceback=traceback.format_exc(limit=20))
        except BundleSealed:
            pass


def _run_scenario(scenario: Scenario, device_name: str, device: DeviceConfig, bundle: Bundle, progress: Progress,
                  options: ScenarioOptions | None = None, inputs: dict | None = None) -> ScenarioResult:
    started = utcnow()
    t0 = time.monotonic()
    journal = bundle.journal
    reason = scenario.applies(device)
    if reason is not None:
        res = ScenarioResult(scenario.id, list(scenario.clauses), Verdict.SKIPPED, started, 0.0, [Finding("not-applicable", "info", reason)])
        journal.append("scenario-end", device=device_name, scenario=scenario.id, verdict="skipped", reason=reason)
        progress.event("scenario-end", device_name, scenario.id, verdict="skipped", findings=0, duration_s=0.0)
        return res
    journal.append("scenario-start", device=device_name, scenario=scenario.id, clauses=list(scenario.clauses))
    progress.event("scenario-start", device_name, scenario.id)
    folder = bundle.folder(device_name, scenario.id)
    ctx = ScenarioContext(device_name, device, scenario.id, folder, journal, options)
    deadline_s = (options or ScenarioOptions()).deadline_s
    state: dict[str, bool] = {"raised": False}

    def body() -> None:
        try:
            if inputs:
                try:
                    checked = type(scenario).replay_inputs(inputs)
                except ValueError as exc:
                    raise DeviceError(f"replayed inputs refused, nothing was run: {exc}") from None
                ctx.inputs.update(checked)
                journal.append("inputs-replayed", device=device_name, scenario=scenario.id, inputs=checked)
            scenario.run(ctx)
        except ScenarioExpired:
            return  # the engine ended it at its deadline; its record is made there
        except DeviceError as exc:
            state["raised"] = True
            if ctx.expired is None:
                ctx.finding(exc.kind, "info", exc.reason)
                ctx.coverage.fail_unset(exc.reason, exc.kind)
        except BaseException as exc:  # a bug in a scenario must not take the run down (nor print a traceback)
            state["raised"] = True
            if ctx.expired is None:
                tb = traceback.format_exc(limit=20)
                journal.append("scenario-crash", device=device_name, scenario=scenario.id, error=f"{type(exc).__name__}: {exc}", traceback=tb)
                ctx.finding("rig-error", "info", f"the rig failed inside this scenario: {type(exc).__name__}: {exc}")
                ctx.coverage.fail_unset(f"the rig failed ({type(exc).__name__})", "rig-error")
        finally:
            try:
                ctx.close()
            except BaseException:  # noqa: BLE001 - a transcript sealed by the deadline: nothing more to close
                pass

    worker = threading.Thread(target=body, name=f"{device_name}-{scenario.id}", daemon=True)  # daemon: a stuck one never keeps the rig alive
    worker.start()
    worker.join(deadline_s)
    expired = worker.is_alive()
    findings, coverage, measurements = ctx.findings, ctx.coverage, ctx.measurements
    if expired:  # what it saw until now is kept; nothing it does later reaches the record
        why = f"the scenario ran past its deadline of {deadline_s:g} s (scenario_timeout_s) and was ended"
        with bundle.gate:
            ctx.expired = why
            findings, coverage, measurements = list(ctx.findings), copy.deepcopy(ctx.coverage), dict(ctx.measurements)
        journal.append("scenario-deadline", device=device_name, scenario=scenario.id, deadline_s=deadline_s)
        try:
            ctx.expire(why)
        except Exception:  # noqa: BLE001 - closing a driver that is stuck: the deadline stands anyway
            pass
        worker.join(DEADLINE_GRACE_S)
        coverage.fail_unset(why, "scenario-deadline")
        _record(journal, device_name, scenario.id, findings, Finding("scenario-deadline", "info", why))
    raised = state["raised"] or expired
    for gap in gap_findings(coverage, findings):
        _record(journal, device_name, scenario.id, findings, gap)
    if not coverage.parts and not any(f.severity != "info" for f in findings) and not raised:
        _record(journal, device_name, scenario.id, findings, Finding("nothing-observed", "info", "the scenario recorded no observation: nothing supports a verdict"))
    verdict = decide(findings, coverage, raised)
    journal.append("coverage", device=device_name, scenario=scenario.id, coverage=coverage.to_dict())
    if verdict is Verdict.FAIL and not any(f.evidence for f in findings):
        # the contract: every fail points at evidence; a scenario that forgot is a rig bug
        journal.append("scenario-bug", device=device_name, scenario=scenario.id, error="fail without evidence")
        _record(journal, device_name, scenario.id, findings, Finding("rig-error", "info", "scenario reported fail without evidence; verdict turned to error"))
        verdict = Verdict.ERROR
    dur = time.monotonic() - t0
    if ctx.inputs:  # what the scenario drew (canary tokens, seeds), so a rerun can use the same
        measurements["inputs"] = dict(ctx.inputs)
    res = ScenarioResult(scenario.id, list(scenario.clauses), verdict, started, dur, findings, measurements, list(folder.refs), coverage)
    journal.append("scenario-end", device=device_name, scenario=scenario.id, verdict=verdict.value, findings=len(findings), duration_s=round(dur, 3))
    progress.event("scenario-end", device_name, scenario.id, verdict=verdict.value, findings=len(findings), duration_s=dur,
                   summaries=[f.summary for f in findings if f.severity != "info"][:5],
                   not_configured=[n for p in coverage if (n := p.note)][:8])
    return res


def _record(journal, device: str, scenario: str, findings: list[Finding], f: Finding) -> None:  # noqa: ANN001 - the bundle's Journal
    """A finding the engine adds itself (a gap, the deadline), journaled like a scenario's."""
    findings.append(f)
    journal.append("finding", device=device, scenario=scenario, finding=f.to_dict())


def _record_missing(record: RunRecord, scenario_ids: list[str], bundle: Bundle, crashes: dict[str, str], why: str | None) -> int:
    """Every planned scenario a device never produced a result for becomes ``error``, saying why
    (the device worker's crash, or ``why``); returns how many."""
    added = 0
    order = {sid: i for i, sid in enumerate(scenario_ids)}
    with bundle.gate:
        for d in record.devices:
            have = {s.id for s in d.scenarios}
            for sid in scenario_ids:
                if sid in have:
                    continue
                reason = (f"the device's worker crashed ({crashes[d.name]})" if d.name in crashes
                          else why or "the device's worker ended without running it")
                d.scenarios.append(no_result(sid, reason))
                added += 1
            d.scenarios.sort(key=lambda r: order.get(r.id, len(order)))
    if added:
        bundle.journal.append("no-result", count=added)
    return added


def execute(plan: RunPlan, key: BenchKey | None = None, progress: Progress | None = None,
            on_bundle: Callable[[Path], None] | None = None) -> RunOutcome:
    """Run ``plan`` and seal its bundle. Always returns an outcome with a readable bundle,
    unless the bundle folder itself cannot be created (then OSError propagates)."""
    progress = progress or NullProgress()
    key = key or BenchKey.load_or_create()
    cfg = plan.config
    bundle, record = open_run(cfg, plan.out_dir, key, plan.devices, plan.scenarios, rerun_of=plan.rerun_of)
    if on_bundle:
        on_bundle(bundle.root)
    progress.event("run-start", run_id=bundle.run_id, bundle=str(bundle.root), devices=plan.devices, scenarios=plan.scenarios)

    def _on_signal(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    in_main = True
    try:
        for s in old:
            signal.signal(s, _on_signal)
    except ValueError:  # not in the main thread (pytest plugin, embedding)
        in_main = False
    crash: str | None = None
    exit_code = EXIT_CRASH
    cancel = threading.Event()
    # results keep the config's device order whatever order the threads finish in
    slots = {name: DeviceResult(name, cfg.bench.devices[name].identity.model_dump(), cfg.bench.devices[name].privacy_level) for name in plan.devices}
    record.devices.extend(slots.values())
    crashes: dict[str, str] = {}
    workers = [
        threading.Thread(target=_device_worker, args=(name, cfg.bench.devices[name], slots[name], plan.scenarios, bundle, progress, cancel,
                                                      ScenarioOptions.of(cfg.bench, name), plan.lock_wait_s, plan.inputs.get(name), crashes),
                         name=f"device-{name}", daemon=True)  # daemon: a hung device never keeps the rig alive
        for name in plan.devices
    ]
    pending = list(workers)
    try:
        while pending or workers:
            # start up to plan.jobs devices, then poll so signals reach the main thread
            while workers and len([w for w in pending if w.is_alive()]) < plan.jobs:
                w = workers.pop(0)
                w.start()
            for w in list(pending):
                if w.ident is not None and not w.is_alive():
                    pending.remove(w)
            if not pending and not workers:
                break
            time.sleep(0.1)
        record.status = "complete"
        exit_code = exit_code_for(record.verdicts())
    except Interrupted as exc:
        crash = f"interrupted by {exc}"
        cancel.set()
        bundle.journal.append("run-interrupted", signal=str(exc))
        deadline = time.monotonic() + INTERRUPT_GRACE_S
        for w in pending:  # let devices finish the step they are in, within a bound
            if w.ident is not None:
                w.join(timeout=max(0.0, deadline - time.monotonic()))
    except Exception as exc:
        crash = f"{type(exc).__name__}: {exc}"
        cancel.set()
        bundle.journal.append("run-crash", error=crash, traceback=traceback.format_exc(limit=30))
    finally:
        if in_main:
            for s, h in old.items():
                signal.signal(s, h)
    missing = _record_missing(record, plan.scenarios, bundle, crashes, "the run was interrupted before it ran" if crash else None)
    if missing and not crash:
        exit_code = exit_code_for(record.verdicts())
    try:
        seal_run(bundle, record, exit_code)
    except Exception as exc:
        crash = (crash + "; " if crash else "") + f"sealing failed: {type(exc).__name__}: {exc}"
        try:
            bundle.journal.append("seal-failed", error=crash)
        except (OSError, ValueError):
            pass  # journal already closed; the crash is reported on the terminal
        exit_code = EXIT_CRASH
    progress.event("run-end", status=record.status, exit_code=exit_code, bundle=str(bundle.root))
    return RunOutcome(exit_code, bundle.root, record, crash)
