"""Progress of a run on the terminal: live per device and scenario, and a summary at the end.

* On a terminal: a live table (rich) with a row per device (what it is doing, how many
  scenarios are done, a letter per verdict so far); each failing scenario's first findings
  are printed above it as they come.
* Elsewhere (a CI log, a pipe): one line per event, as a log reads best.
* ``--quiet``: only warnings. ``--json``: one JSON object per event, for machines.
* At the end (not with ``--quiet`` or ``--json``): a summary table, devices by scenarios.

Everything a device may have supplied (finding summaries, warnings) is escaped to one line
of plain text and handed to rich as :class:`rich.text.Text`, never as markup, so a banner
carrying ``[bold]`` or terminal escape sequences prints as the characters it is.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import IO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from drivers.transcript import escape_bytes

STYLE = {"pass": "green", "fail": "bold red", "error": "yellow", "inconclusive": "yellow", "skipped": "dim"}
LETTER = {"pass": "P", "fail": "F", "error": "E", "inconclusive": "I", "skipped": "-"}


def safe(text: object) -> str:
    """One line of device-derived text, safe for a terminal (no escape sequences, no newlines)."""
    return escape_bytes(str(text).encode()).replace("\n", "\\n")


class TerminalProgress:
    """The ``Progress`` of :mod:`rig.engine` for a person or a log (see the module docstring)."""

    def __init__(self, quiet: bool = False, as_json: bool = False, stream: IO[str] | None = None, terminal: bool | None = None):
        """``terminal`` forces (or forbids) terminal rendering; by default ``stream`` (stderr) decides."""
        self.quiet, self.as_json = quiet, as_json
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True, force_terminal=terminal)
        if not self.console.is_terminal:  # a log: wide enough for the summary table
            self.console = Console(file=self.stream, highlight=False, soft_wrap=True, width=160)
        self.live_mode = self.console.is_terminal and not quiet and not as_json
        self._lock = threading.Lock()
        self._devices: dict[str, dict] = {}
        self._scenarios: list[str] = []
        self._verdicts: dict[tuple[str, str], str] = {}
        self._live: Live | None = None

    # -- the engine's callback -------------------------------------------------------------
    def event(self, kind: str, device: str | None = None, scenario: str | None = None, **info: object) -> None:
        """Show one engine event (thread-safe: devices report from their own threads)."""
        with self._lock:
            if self.as_json:
                self.stream.write(json.dumps({"event": kind, "device": device, "scenario": scenario, **info}, default=str) + "\n")
                self.stream.flush()
                return
            self._track(kind, device, scenario, info)
            if kind == "warning":
                self._print(Text(f"[{device}] warning: {safe(info.get('message'))}", style="yellow"))
            elif self.quiet:
                return
            elif kind == "run-start":
                self._print(Text(f"run {info['run_id']}: {len(info['devices'])} device(s) x {len(info['scenarios'])} scenario(s) -> {info['bundle']}"))  # type: ignore[arg-type]
                if self.live_mode:
                    self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=True)
                    self._live.start()
            elif kind == "scenario-end":
                verdict = str(info.get("verdict"))
                summaries = list(info.get("summaries") or [])  # type: ignore[call-overload]
                if not self.live_mode or verdict == "fail":
                    line = Text(f"[{device}] {scenario} ")
                    line.append(verdict.upper() if verdict == "fail" else verdict, style=STYLE.get(verdict, ""))
                    line.append(f" ({info.get('findings', 0)} findings, {float(info.get('duration_s', 0)):.1f} s)")  # type: ignore[arg-type]
                    aside = list(info.get("not_configured") or [])  # type: ignore[call-overload]
                    if aside:
                        line.append(f"; not configured: {safe('; '.join(aside))}", style="dim")
                    self._print(line)
                    for s in summaries:
                        self._print(Text(f"    - {safe(s)}"))
            elif kind in ("device-start", "scenario-start") and not self.live_mode:
                self._print(Text(f"[{device}]" + (f" {scenario} ..." if scenario else "")))
            elif kind == "run-end":
                if self._live is not None:
                    self._live.stop()
                    self._live = None
                self.console.print(self.summary())
                self._print(Text(f"run {info['status']}, exit {info['exit_code']}"))
            if self._live is not None:
                self._live.update(self._table())

    # -- state -----------------------------------------------------------------------------
    def _track(self, kind: str, device: str | None, scenario: str | None, info: dict) -> None:
        if kind == "run-start":
            self._scenarios = list(info.get("scenarios") or [])
            self._devices = {d: {"doing": "waiting", "done": 0} for d in info.get("devices") or []}
        elif device is not None:
            d = self._devices.setdefault(device, {"doing": "waiting", "done": 0})
            if kind == "device-start":
                d["doing"] = "identify"
            elif kind == "scenario-start":
                d["doing"] = scenario
            elif kind == "scenario-end":
                d["done"] += 1
                self._verdicts[(device, str(scenario))] = str(info.get("verdict"))
                d["doing"] = "done" if d["done"] >= len(self._scenarios) else "…"

    def _print(self, text: Text) -> None:
        self.console.print(text, markup=False, highlight=False)

    def _table(self) -> Table:
        t = Table(title="privrig", expand=False, show_edge=False)
        t.add_column("device")
        t.add_column("now")
        t.add_column("done", justify="right")
        t.add_column("verdicts")
        for name, d in self._devices.items():
            letters = Text()
            for sid in self._scenarios:
                v = self._verdicts.get((name, sid))
                letters.append(LETTER.get(v, "·") if v else "·", style=STYLE.get(v or "", "dim"))
            t.add_row(Text(name), Text(str(d["doing"])), f"{d['done']}/{len(self._scenarios)}", letters)
        return t

    def summary(self) -> Table:
        """Devices by scenarios, each cell the verdict (what ``rig run`` prints at the end)."""
        t = Table(title="summary", show_edge=True)
        t.add_column("device")
        for sid in self._scenarios:
            t.add_column(sid)
        for name in self._devices:
            cells = [Text(self._verdicts.get((name, sid), "not run"), style=STYLE.get(self._verdicts.get((name, sid), ""), "dim"))
                     for sid in self._scenarios]
            t.add_row(Text(name), *cells)
        return t
