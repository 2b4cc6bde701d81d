"""A serial console that attacks the rig (rig/sim/hostile_console.py): a flood at full speed,
endless login prompts, answers made of escapes. On a real pty, as a technician runs it (``rig
run`` of debug-ports on a console-only board): the run ends by its deadline, prints no escape and
no traceback, keeps console.raw and the transcript within their bounds, writes a bundle that
verifies with the device's markup escaped, and passes the console only where it refused every
default credential (a prompt that looks like a shell is proved by a command, never by its look)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.serial import RAW_LIMIT
from drivers.transcript import DEFAULT_LIMIT
from rig.sim.hostile_console import CASES
from tests.conftest import ROOT

CONFIG = """\
version: 1
bench: {{name: hostile-console, evidence_dir: {ev}, scenario_timeout_s: {deadline}}}
devices:
  board-hostile:
    identity: {{model: Hostile B1, serial: HOSTILE-B1, firmware: 6.6.6}}
    privacy_level: 2
    serial: {{port: {link}, baud: 115200, timeout_s: 3}}
"""
#: the scenario deadline of these runs (the engine adds its grace)
DEADLINE_S = 40


@pytest.fixture
def console(request: pytest.FixtureRequest, tmp_path: Path):
    link = tmp_path / "console"
    proc = subprocess.Popen([sys.executable, "-m", "rig.sim.hostile_console", "--link", str(link), "--case", request.param], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        yield link
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("console", CASES, indirect=True)
def test_a_hostile_console_ends_escapes_and_never_passes(console: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "board.yaml"
    cfg.write_text(CONFIG.format(ev=tmp_path / "ev", deadline=DEADLINE_S, link=console))
    t0 = time.monotonic()
    proc = subprocess.run([str(ROOT / ".venv/bin/rig"), "run", "-c", str(cfg), "--scenario", "debug-ports", "--out", str(tmp_path / "ev")],
                          capture_output=True, timeout=DEADLINE_S + 120, env={**os.environ, "COLUMNS": "200"})
    took = time.monotonic() - t0
    assert took < DEADLINE_S + 60, f"{took:.0f} s"
    for stream in (proc.stdout, proc.stderr):
        assert b"\x1b]" not in stream and b"\x1b[2J" not in stream and b"\x00" not in stream and b"\x07" not in stream, stream[-400:]
        assert b"Traceback" not in stream, stream[-2000:]
    bundle = Path(proc.stdout.decode().strip().splitlines()[-1])
    assert subprocess.run([str(ROOT / ".venv/bin/rig"), "verify", str(bundle)], capture_output=True).returncode == 0
    [dev] = json.loads((bundle / "results.json").read_text())["devices"]
    [sc] = dev["scenarios"]
    [part] = [p for p in sc["coverage"]["parts"] if p["name"] == "console"]
    if sc["verdict"] == "pass":
        # only a console that refused every default credential, each answered (the endless-login case:
        # a login prompt that refuses everything is what a compliant console does, escapes or not)
        assert part["state"] == "observed" and "none let the rig in" in part["summary"], part
        assert sc["measurements"]["console_credentials_tried"] >= 1
    else:
        assert part["state"] in ("unobserved", "error"), part  # flood and escapes: no shell proved, never "seen"
    folder = bundle / "devices/board-hostile/debug-ports"
    raw = folder / "console.raw"
    assert raw.exists() and 0 < raw.stat().st_size <= RAW_LIMIT  # the device's bytes were seen, and kept within the bound
    assert (folder / "console.jsonl").stat().st_size <= DEFAULT_LIMIT + 4096
    assert b"\x1b" not in (folder / "console.jsonl").read_bytes()  # the transcript escapes what the raw file keeps
    html = (bundle / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "\x1b" not in html
    assert not Path("/tmp/privrig-pwned").exists()
