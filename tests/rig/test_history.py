"""Run history on SQLite and on a real PostgreSQL server the test starts: since when does a
clause fail on a device, and on which firmware did it last pass."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from rig.config import ConfigError, parse_config
from rig.history import History, HistoryError
from tests.conftest import rig

A, B = "T/AI 110.1-2020 6.2.3 c", "T/AI 110.1-2020 6.2.3 d"


def night(n: int, firmware: str, verdict: str, device: str = "cam-07") -> dict:
    """The results document of one nightly run (the contract's shape)."""
    t = f"2026-11-{10 + n:02d}T02:00:00Z"
    return {"schema": "rig-results/1", "run_id": f"2026111{n}T020000Z-00000{n}", "rig_version": "0.1.0", "config_sha256": "0" * 64,
            "bench": "lab-a", "started_at": t, "finished_at": t, "status": "complete",
            "devices": [{"name": device, "identity": {"model": "X1", "serial": "0042", "firmware": firmware}, "privacy_level": 2,
                         "scenarios": [{"id": "uninstall-wipe", "clauses": [A, B], "verdict": verdict, "started_at": t, "duration_s": 1.0,
                                        "findings": [], "measurements": {}, "artifacts": []}]}]}


NIGHTS = [night(1, "1.0.0", "pass"), night(2, "1.0.1", "pass"), night(3, "1.1.0", "fail"), night(4, "1.1.0", "skipped"), night(5, "1.1.1", "fail")]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    with History(url).engine.begin() as conn:  # a clean slate per test
        conn.exec_driver_sql("DELETE FROM results")
        conn.exec_driver_sql("DELETE FROM runs")
    return url


def test_since_when_a_clause_fails_and_where_it_last_passed(db_url: str, tmp_path: Path) -> None:
    h = History(db_url)
    for doc in NIGHTS:
        h.index(doc, tmp_path / doc["run_id"])
    h.index(NIGHTS[2], tmp_path / NIGHTS[2]["run_id"])  # indexing again replaces, never doubles
    [a] = h.clause_history("cam-07", clause=A)
    assert a.verdict == "fail" and a.runs == 5
    assert a.failing_since is not None and (a.failing_since["run_id"], a.failing_since["firmware"]) == (NIGHTS[2]["run_id"], "1.1.0")
    assert a.last_pass is not None and (a.last_pass["run_id"], a.last_pass["firmware"]) == (NIGHTS[1]["run_id"], "1.0.1")
    assert a.last_pass["bundle"] == str((tmp_path / NIGHTS[1]["run_id"]).resolve())
    assert {c.clause for c in h.clause_history("cam-07", scenario="uninstall-wipe")} == {A, B}
    h.index(night(6, "1.1.2", "pass"), tmp_path / "n6")
    [a] = h.clause_history("cam-07", clause=A)
    assert a.verdict == "pass" and a.failing_since is None and a.last_pass["firmware"] == "1.1.2"  # type: ignore[index]
    assert h.clause_history("cam-99") == []


def test_only_a_pass_ends_a_fail_streak(db_url: str, tmp_path: Path) -> None:
    """fail, error, inconclusive, fail: nothing between the fails observed a pass, so the clause
    has been failing since the first; the latest run's error still shows as the latest verdict."""
    h = History(db_url)
    runs = [night(1, "1.0.0", "pass"), night(2, "1.1.0", "fail"), night(3, "1.1.0", "error"), night(4, "1.1.1", "inconclusive"),
            night(5, "1.1.1", "fail"), night(6, "1.1.2", "error")]
    for doc in runs:
        h.index(doc, tmp_path / doc["run_id"])
    [a] = h.clause_history("cam-07", clause=A)
    assert a.verdict == "error" and a.runs == 6
    assert a.failing_since is not None and a.failing_since["run_id"] == runs[1]["run_id"]
    assert a.last_pass is not None and a.last_pass["run_id"] == runs[0]["run_id"]


def test_cli_answers_and_exit_codes(db_url: str, tmp_path: Path) -> None:
    bundles = []
    for doc in NIGHTS:
        b = tmp_path / doc["run_id"]
        b.mkdir()
        (b / "results.json").write_text(json.dumps(doc))
        bundles += ["--index", str(b)]
    res = rig("history", "--db", db_url, *bundles, "--device", "cam-07", "--clause", A)
    assert res.returncode == 0, res.stderr
    assert f"failing since 2026-11-13T02:00:00Z (run {NIGHTS[2]['run_id']}, firmware 1.1.0)" in res.stdout
    assert f"last pass: 2026-11-12T02:00:00Z (run {NIGHTS[1]['run_id']}, firmware 1.0.1)" in res.stdout
    js = rig("history", "--db", db_url, "--device", "cam-07", "--json")
    assert {c["clause"] for c in json.loads(js.stdout)} == {A, B}
    none = rig("history", "--db", db_url, "--device", "cam-99")
    assert none.returncode == 1 and "nothing recorded for device cam-99" in none.stderr


def test_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    res = rig("history", "--db", f"postgresql+psycopg://rig:hunter2@127.0.0.1:{port}/privrig", "--device", "cam-07")
    assert res.returncode == 2 and "hunter2" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    with pytest.raises(HistoryError, match="rig:\\*\\*\\*@127.0.0.1"):
        History(f"postgresql+psycopg://rig:hunter2@127.0.0.1:{port}/privrig")


def test_config_keeps_the_password_out_of_the_url(tmp_path: Path) -> None:
    base = "bench:\n  name: lab\n  history: {url: '%s'}\ndevices:\n  d1: {privacy_level: 2}\n"
    with pytest.raises(ConfigError, match="password_env"):
        parse_config(base % "postgresql+psycopg://rig:secret@db.lab/privrig", tmp_path / "c.yaml")
    cfg = parse_config(base % "postgresql+psycopg://rig@db.lab/privrig", tmp_path / "c.yaml")
    assert cfg.bench.bench.history is not None and cfg.bench.bench.history.url.endswith("/privrig")
