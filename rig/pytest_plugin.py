"""privrig as a pytest plugin: ``pytest --rig-config BENCH.yaml``.

Each device x scenario of the bench becomes a test item (``cam-01::debug-ports``) with a
``clause`` marker per clause it checks, so ``-k``, ``-m``, ``--junitxml`` and the rest of
pytest work as usual. All items of a session write one evidence bundle, the same a
``rig run`` writes (journal, artifacts, results.json, junit.xml, report.html, signed
manifest), sealed at the end of the session; its path is printed in the terminal summary.

Verdicts map to outcomes: ``pass`` passes; ``fail`` fails, with the findings as the
failure text; ``error`` and ``inconclusive`` fail as errors (``RigError``); ``skipped``
skips with the reason. Each device is locked while its scenario runs (see
:mod:`rig.locks`).

Fixtures for a lab's own tests: ``rig_config`` (the loaded bench config) and
``rig_device(name)`` (a device's typed config). Without ``--rig-config`` the plugin adds
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from rig.config import ConfigError, LoadedConfig, load_config
from rig.results import DeviceResult, RunRecord, ScenarioResult, Verdict


class RigVerdict(Exception):
    """A scenario ended fail, error or inconclusive (the result rides along for the report)."""

    def __init__(self, result: ScenarioResult):
        super().__init__(result.verdict.value)
        self.result = result


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("privrig", "privrig bench tests")
    group.addoption("--rig-config", metavar="FILE", help="bench config: each device x scenario becomes a test item")
    group.addoption("--rig-out", metavar="DIR", help="evidence folder for the session's bundle (default: the config's, else ./evidence)")
    group.addoption("--rig-wait-lock", type=float, default=0.0, metavar="SECONDS", help="wait this long for a device another run holds")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clause(id): the standard clause a test exercises")
    path = config.getoption("rig_config", None)
    if not path:
        return
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise pytest.UsageError("\n".join(f"rig: config error: {p}" for p in exc.problems)) from None
    out = config.getoption("rig_out")
    config.pluginmanager.register(RigSession(cfg, Path(out) if out else None, config.getoption("rig_wait_lock")), "privrig-session")


class RigSession:
    """The session's bench: its items, its one bundle, its fixtures."""

    def __init__(self, cfg: LoadedConfig, out_dir: Path | None, wait_lock: float):
        self.cfg = cfg
        self.out_dir = out_dir or cfg.bench.bench.evidence_dir or Path("evidence")
        self.wait_lock = wait_lock
        self.bundle: Any = None
        self.record: RunRecord | None = None
        self.slots: dict[str, DeviceResult] = {}
        self.history_warning: str | None = None

    # -- collection ------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)  # before -k and -m deselect
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        name = f"rig-{self.cfg.bench.bench.name}"
        bench = RigBench.from_parent(session, name=name, nodeid=name, path=Path(self.cfg.path).resolve())
        bench.rig = self
        items.extend(bench.collect())

    # -- fixtures --------------------------------------------------------------------------
    @pytest.fixture(scope="session")
    def rig_config(self) -> LoadedConfig:
        """The bench config given with ``--rig-config``."""
        return self.cfg

    @pytest.fixture(scope="session")
    def rig_device(self):  # noqa: ANN201 - a factory
        """``rig_device(name)``: the typed config of one bench device (KeyError naming the devices otherwise)."""

        def get(name: str):  # noqa: ANN202
            if name not in self.cfg.bench.devices:
                raise KeyError(f"{name}: no such device (devices: {', '.join(self.cfg.bench.devices)})")
            return self.cfg.bench.devices[name]

        return get

    # -- running ---------------------------------------------------------------------------
    def run(self, device: str, scenario_id: str) -> ScenarioResult:
        """Run one scenario on one device into the session's bundle, under the device's lock."""
        from rig.engine import NullProgress, _run_scenario, busy_result, open_run
        from rig.locks import DeviceBusy, device_lock
        from rig.signing import BenchKey
        from scenarios import REGISTRY

        if self.bundle is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.bundle, self.record = open_run(self.cfg, self.out_dir, BenchKey.load_or_create(), list(self.cfg.bench.devices), list(REGISTRY),
                                                via="pytest")
        dev = self.cfg.bench.devices[device]
        if device not in self.slots:
            self.slots[device] = DeviceResult(device, dev.identity.model_dump(), dev.privacy_level)
            self.record.devices.append(self.slots[device])  # type: ignore[union-attr]
        lock = device_lock(device, dev, {"run_id": self.bundle.run_id, "pid": os.getpid()})
        try:
            lock.acquire(self.wait_lock)
        except DeviceBusy as exc:
            result = busy_result(scenario_id, str(exc))
        else:
            try:
                result = _run_scenario(REGISTRY[scenario_id](), device, dev, self.bundle, NullProgress(), self.cfg.bench.bench.reveal_credentials)
            finally:
                lock.release()
        self.slots[device].scenarios.append(result)
        return result

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.bundle is None or self.record is None:
            return
        from rig.engine import seal_run
        from rig.history import index_run
        from rig.results import exit_code_for

        self.record.status = "complete"
        seal_run(self.bundle, self.record, exit_code_for(self.record.verdicts()))
        self.history_warning = index_run(self.cfg.bench.bench.history, self.out_dir, self.record.to_dict(), self.bundle.root)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.history_warning:
            from rig.progress import safe

            terminalreporter.write_line(f"privrig: warning: run not added to the history: {safe(self.history_warning)}")
        if self.bundle is not None:
            terminalreporter.write_line(f"privrig bundle: {self.bundle.root}")


class RigBench(pytest.Collector):
    """The bench's devices x scenarios."""

    rig: RigSession

    def collect(self) -> list[pytest.Item]:
        from scenarios import REGISTRY

        return [RigScenarioItem.from_parent(self, name=f"{device}::{sid}", device=device, scenario_id=sid)
                for device in self.rig.cfg.bench.devices for sid in REGISTRY]


class RigScenarioItem(pytest.Item):
    """One scenario on one device."""

    def __init__(self, *, device: str, scenario_id: str, **kw: Any):
        super().__init__(**kw)
        from scenarios import REGISTRY

        self.device, self.scenario_id = device, scenario_id
        for clause in REGISTRY[scenario_id].clauses:
            self.add_marker(pytest.mark.clause(clause, id=clause))  # -m "clause(id='…')" selects by clause
        self.keywords[device] = True
        self.keywords[scenario_id] = True

    def runtest(self) -> None:
        rig: RigSession = self.parent.rig  # type: ignore[attr-defined]
        result = rig.run(self.device, self.scenario_id)
        self.user_properties.append(("verdict", result.verdict.value))
        if result.verdict is Verdict.SKIPPED:
            pytest.skip(result.findings[0].summary if result.findings else "not applicable")
        if result.verdict is not Verdict.PASS:
            raise RigVerdict(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, RigVerdict):
            r = excinfo.value.result
            lines = [f"{self.device}: {r.id} {r.verdict.value} ({'; '.join(r.clauses)})"]
            lines += [f"  [{f.severity}] {f.kind}: {f.summary}" + (f" (evidence: {', '.join(f.evidence)})" if f.evidence else "") for f in r.findings]
            from rig.progress import safe

            return "\n".join(safe(line) for line in lines)
        return super().repr_failure(excinfo)  # type: ignore[arg-type]

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{self.device}::{self.scenario_id}"
