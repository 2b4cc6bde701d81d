"""The run engine: devices x scenarios into one evidence bundle.

Guarantees:

* Every step is journaled (fsynced) as it happens; what was recorded survives a
  device dying, an exception, SIGTERM/SIGINT (bundle sealed as ``incomplete``) or
  SIGKILL (journal and sealed artifacts stay checkable by ``rig verify``).
* A scenario's device trouble (:class:`DeviceError`) becomes verdict ``error`` with the
  reason as a finding; a bug in a scenario becomes ``error`` too, with the traceback in
  the journal; the run goes on with the next scenario.
* The exit code follows the contract (0/1/3; 4 when the rig itself broke).
"""

from __future__ import annotations

import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from drivers.errors import DeviceError
from rig import __version__
from rig.config import DeviceConfig, LoadedConfig
from rig.evidence import Bundle
from rig.outputs import junit_xml, report_html
from rig.results import DeviceResult, Finding, RunRecord, ScenarioResult, Verdict, exit_code_for, utcnow
from rig.scenario import Scenario, ScenarioContext, run_action
from rig.signing import BenchKey
from scenarios import REGISTRY

EXIT_CRASH = 4


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

    @classmethod
    def select(cls, config: LoadedConfig, devices: list[str] | None, scenarios: list[str] | None, out_dir: Path | None) -> "RunPlan":
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
        return cls(config, list(dict.fromkeys(devices)) if devices else names, list(dict.fromkeys(scenarios)) if scenarios else list(REGISTRY), out)


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
    finally:
        ctx.close()
    return identity


def _run_scenario(scenario: Scenario, device_name: str, device: DeviceConfig, bundle: Bundle, progress: Progress) -> ScenarioResult:
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
    ctx = ScenarioContext(device_name, device, scenario.id, folder, journal)
    verdict: Verdict | None
    try:
        verdict = scenario.run(ctx)
    except DeviceError as exc:
        ctx.finding(exc.kind, "info", exc.reason)
        verdict = Verdict.ERROR
    except Exception as exc:  # a bug in a scenario must not take the run down
        tb = traceback.format_exc(limit=20)
        journal.append("scenario-crash", device=device_name, scenario=scenario.id, error=f"{type(exc).__name__}: {exc}", traceback=tb)
        ctx.finding("rig-error", "info", f"the rig failed inside this scenario: {type(exc).__name__}: {exc}")
        verdict = Verdict.ERROR
    finally:
        ctx.close()
    if verdict is None:
        verdict = Verdict.FAIL if any(f.severity != "info" for f in ctx.findings) else Verdict.PASS
    if verdict in (Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.SKIPPED) and not ctx.findings:
        ctx.finding("no-reason-given", "info", f"scenario ended {verdict.value} without saying why")
    if verdict is Verdict.FAIL and not any(f.evidence for f in ctx.findings):
        # the contract: every fail points at evidence; a scenario that forgot is a rig bug
        journal.append("scenario-bug", device=device_name, scenario=scenario.id, error="fail without evidence")
        ctx.finding("rig-error", "info", "scenario reported fail without evidence; verdict turned to error")
        verdict = Verdict.ERROR
    dur = time.monotonic() - t0
    res = ScenarioResult(scenario.id, list(scenario.clauses), verdict, started, dur, ctx.findings, ctx.measurements, folder.refs)
    journal.append("scenario-end", device=device_name, scenario=scenario.id, verdict=verdict.value, findings=len(ctx.findings), duration_s=round(dur, 3))
    progress.event("scenario-end", device_name, scenario.id, verdict=verdict.value, findings=len(ctx.findings), duration_s=dur,
                   summaries=[f.summary for f in ctx.findings if f.severity != "info"][:5])
    return res


def execute(plan: RunPlan, key: BenchKey | None = None, progress: Progress | None = None,
            on_bundle: Callable[[Path], None] | None = None) -> RunOutcome:
    """Run ``plan`` and seal its bundle. Always returns an outcome with a readable bundle,
    unless the bundle folder itself cannot be created (then OSError propagates)."""
    progress = progress or NullProgress()
    key = key or BenchKey.load_or_create()
    bundle = Bundle.create(plan.out_dir, key)
    if on_bundle:
        on_bundle(bundle.root)
    cfg = plan.config
    record = RunRecord(bundle.run_id, __version__, cfg.sha256, utcnow(), cfg.bench.bench.name)
    bundle.journal.append("run-start", rig_version=__version__, config=str(cfg.path), config_sha256=cfg.sha256,
                          devices=plan.devices, scenarios=plan.scenarios, key_fingerprint=key.fingerprint)
    bundle.folder("_run", "config").write("config.yaml", cfg.text.encode(), "application/yaml")
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
    try:
        for name in plan.devices:
            device = cfg.bench.devices[name]
            progress.event("device-start", name)
            identity = _identify(name, device, bundle, progress)
            dres = DeviceResult(name, identity, device.privacy_level)
            record.devices.append(dres)
            for sid in plan.scenarios:
                dres.scenarios.append(_run_scenario(REGISTRY[sid](), name, device, bundle, progress))
        record.status = "complete"
        exit_code = exit_code_for(record.verdicts())
    except Interrupted as exc:
        crash = f"interrupted by {exc}"
        bundle.journal.append("run-interrupted", signal=str(exc))
    except Exception as exc:
        crash = f"{type(exc).__name__}: {exc}"
        bundle.journal.append("run-crash", error=crash, traceback=traceback.format_exc(limit=30))
    finally:
        if in_main:
            for s, h in old.items():
                signal.signal(s, h)
    record.finished_at = utcnow()
    bundle.journal.append("run-end", status=record.status, exit_code=exit_code)
    try:
        bundle.finalize(record, [("junit.xml", junit_xml(record)), ("report.html", report_html(record))])
    except Exception as exc:
        crash = (crash + "; " if crash else "") + f"sealing failed: {type(exc).__name__}: {exc}"
        try:
            bundle.journal.append("seal-failed", error=crash)
        except (OSError, ValueError):
            pass  # journal already closed; the crash is reported on the terminal
        exit_code = EXIT_CRASH
    progress.event("run-end", status=record.status, exit_code=exit_code, bundle=str(bundle.root))
    return RunOutcome(exit_code, bundle.root, record, crash)
