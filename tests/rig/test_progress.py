"""Terminal progress: lines in a log, a live table on a terminal, a summary at the end; device text never markup."""

from __future__ import annotations

import io
import json

from rig.progress import TerminalProgress

EVIL = "banner [bold red]owned[/] \x1b[2J\x1b]0;title\x07 <script>"


def feed(p: TerminalProgress) -> None:
    p.event("run-start", run_id="R1", bundle="/ev/R1", devices=["cam-01", "cam-02"], scenarios=["debug-ports", "uninstall-wipe"])
    for d in ("cam-01", "cam-02"):
        p.event("device-start", d)
    p.event("scenario-start", "cam-01", "debug-ports")
    p.event("scenario-end", "cam-01", "debug-ports", verdict="fail", findings=1, duration_s=2.0, summaries=[EVIL])
    p.event("scenario-end", "cam-02", "debug-ports", verdict="pass", findings=0, duration_s=1.0, summaries=[])
    p.event("warning", "cam-02", message=EVIL)
    p.event("scenario-end", "cam-01", "uninstall-wipe", verdict="error", findings=1, duration_s=1.0, summaries=[])
    p.event("run-end", status="complete", exit_code=1, bundle="/ev/R1")


def test_log_lines_and_summary_table() -> None:
    out = io.StringIO()
    feed(TerminalProgress(stream=out))
    text = out.getvalue()
    assert "[cam-01] debug-ports FAIL (1 findings, 2.0 s)" in text and "[cam-02] debug-ports pass" in text
    assert "\x1b" not in text and "\\x1b[2J" in text and "[bold red]owned[/]" in text  # escaped, printed as the characters it is
    summary = text[text.index("summary"):]
    row = next(line for line in summary.splitlines() if "cam-01" in line)
    assert "fail" in row and "error" in row
    assert "not run" in next(line for line in summary.splitlines() if "cam-02" in line)  # cam-02 never got to uninstall-wipe
    assert text.rstrip().endswith("run complete, exit 1")


def test_live_table_on_a_terminal() -> None:
    out = io.StringIO()
    p = TerminalProgress(stream=out, terminal=True)
    assert p.live_mode
    feed(p)
    text = out.getvalue()
    assert "cam-01" in text and "FAIL" in text and "summary" in text
    assert "\x1b[2J" not in text and "\x1b]0;title" not in text  # device text cannot clear the screen or set the title
    assert "\\x1b[2J" in text


def test_quiet_and_json() -> None:
    out = io.StringIO()
    feed(TerminalProgress(quiet=True, stream=out))
    assert out.getvalue().strip().splitlines() == ["[cam-02] warning: " + EVIL.replace("\x1b", "\\x1b").replace("\x07", "\\x07")]
    out = io.StringIO()
    feed(TerminalProgress(as_json=True, stream=out))
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events][:2] == ["run-start", "device-start"] and events[-1]["exit_code"] == 1
