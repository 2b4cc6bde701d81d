"""Run history: every run indexed by device, firmware, scenario, clause and verdict, with
its bundle path, in SQLite (default) or PostgreSQL, through one data layer (SQLAlchemy Core).

``rig run`` indexes each bundle it seals; ``rig history index BUNDLE...`` indexes bundles
after the fact (idempotent: a run already indexed is replaced). ``rig history`` answers
*since when does this clause fail on this device, and on which firmware did it last pass*.

The database URL: ``--db``, else ``$PRIVRIG_HISTORY_URL``, else the config's
``bench.history.url`` (its password from ``bench.history.password_env``, never from the
file), else SQLite at ``<evidence folder>/history.sqlite``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("bench", sa.String(128)),
    sa.Column("started_at", sa.String(32), nullable=False),  # ISO 8601 UTC: sorts as text in both databases
    sa.Column("finished_at", sa.String(32)),
    sa.Column("status", sa.String(16)),
    sa.Column("rig_version", sa.String(32)),
    sa.Column("bundle", sa.Text),
)

results = sa.Table(
    "results", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    sa.Column("device", sa.String(128), nullable=False),
    sa.Column("model", sa.String(200)),
    sa.Column("serial", sa.String(200)),
    sa.Column("firmware", sa.String(200)),
    sa.Column("scenario", sa.String(64), nullable=False),
    sa.Column("clause", sa.String(200), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("findings", sa.Integer),
    sa.Column("started_at", sa.String(32), nullable=False),
    sa.Index("ix_results_device_clause", "device", "clause", "started_at"),
)


class HistoryError(Exception):
    """The history database cannot be opened or written (the message names it, without a password)."""


def _safe_url(url: sa.engine.URL) -> str:
    return url.render_as_string(hide_password=True)


@dataclass
class ClauseHistory:
    """The answer for one clause on one device."""

    device: str
    clause: str
    scenario: str
    verdict: str  # latest
    runs: int
    failing_since: dict | None  # first run of the current streak of fails: run_id, started_at, firmware, bundle
    last_pass: dict | None  # latest pass: run_id, started_at, firmware, bundle

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


class History:
    """The history database (see the module docstring)."""

    def __init__(self, url: str | sa.engine.URL):
        try:
            self.url = sa.engine.make_url(url)
            self.engine = sa.create_engine(self.url, future=True, pool_pre_ping=True)
            if self.url.get_backend_name() == "sqlite" and self.url.database:
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            metadata.create_all(self.engine)
        except (sa.exc.SQLAlchemyError, OSError, ValueError) as exc:
            raise HistoryError(f"history database {self._name(url)}: {_reason(exc)}") from None

    @staticmethod
    def _name(url: object) -> str:
        try:
            return _safe_url(sa.engine.make_url(url))  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - never echo a URL that may hold a password
            return "(unparsable URL)"

    @classmethod
    def for_config(cls, history_cfg: Any, evidence_dir: Path, db: str | None = None) -> "History":
        """The database ``--db``, ``$PRIVRIG_HISTORY_URL``, the config's, or SQLite beside the evidence."""
        url = db or os.environ.get("PRIVRIG_HISTORY_URL")
        if not url and history_cfg is not None and history_cfg.url:
            u = sa.engine.make_url(history_cfg.url)
            if history_cfg.password_env:
                pw = os.environ.get(history_cfg.password_env)
                if pw is None:
                    raise HistoryError(f"bench.history.password_env: environment variable {history_cfg.password_env} is not set")
                u = u.set(password=pw)
            return cls(u)
        return cls(url or f"sqlite:///{(evidence_dir / 'history.sqlite').resolve()}")

    # -- writing ---------------------------------------------------------------------------
    def index(self, doc: dict, bundle: Path) -> int:
        """Index one run's results document (results.json); returns the rows written. A run
        indexed before is replaced, so indexing is idempotent."""
        rows = []
        for d in doc.get("devices", []):
            ident = d.get("identity") or {}
            for s in d.get("scenarios", []):
                for clause in s.get("clauses") or ["(none)"]:
                    rows.append({"run_id": doc["run_id"], "device": d["name"], "model": ident.get("model"), "serial": ident.get("serial"),
                                 "firmware": ident.get("firmware"), "scenario": s["id"], "clause": clause, "verdict": s["verdict"],
                                 "findings": sum(1 for f in s.get("findings", []) if f.get("severity") != "info"),
                                 "started_at": s.get("started_at") or doc["started_at"]})
        try:
            with self.engine.begin() as conn:
                conn.execute(results.delete().where(results.c.run_id == doc["run_id"]))
                conn.execute(runs.delete().where(runs.c.run_id == doc["run_id"]))
                conn.execute(runs.insert().values(run_id=doc["run_id"], bench=doc.get("bench"), started_at=doc["started_at"],
                                                  finished_at=doc.get("finished_at"), status=doc.get("status"),
                                                  rig_version=doc.get("rig_version"), bundle=str(bundle.resolve())))
                if rows:
                    conn.execute(results.insert(), rows)
        except sa.exc.SQLAlchemyError as exc:
            raise HistoryError(f"history database {_safe_url(self.url)}: {_reason(exc)}") from None
        return len(rows)

    def index_bundle(self, bundle: Path) -> int:
        """Index a bundle folder from its results.json."""
        try:
            doc = json.loads((bundle / "results.json").read_text())
        except (OSError, ValueError) as exc:
            raise HistoryError(f"{bundle / 'results.json'}: cannot read: {exc}") from None
        return self.index(doc, bundle)

    # -- asking ----------------------------------------------------------------------------
    def latest(self, device: str) -> dict[str, dict]:
        """Scenario -> the latest verdict of ``device`` (with its run and when)."""
        q = (sa.select(results.c.scenario, results.c.verdict, results.c.run_id, results.c.started_at)
             .where(results.c.device == device).order_by(results.c.started_at, results.c.run_id))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
        except sa.exc.SQLAlchemyError as exc:
            raise HistoryError(f"history database {_safe_url(self.url)}: {_reason(exc)}") from None
        return {r.scenario: {"verdict": r.verdict, "run_id": r.run_id, "started_at": r.started_at} for r in rows}

    def clause_history(self, device: str, clause: str | None = None, scenario: str | None = None) -> list[ClauseHistory]:
        """Per clause of ``device`` (narrowed to ``clause`` or ``scenario``): the latest verdict,
        since when it fails (the first fail after the last pass) and the last pass. Only a pass
        ends a streak of fails: skipped, error and inconclusive runs observed no pass, so they
        neither break nor start one (the latest verdict still shows them)."""
        q = (sa.select(results.c.clause, results.c.scenario, results.c.verdict, results.c.firmware, results.c.run_id, results.c.started_at, runs.c.bundle)
             .join(runs, runs.c.run_id == results.c.run_id).where(results.c.device == device))
        if clause:
            q = q.where(results.c.clause == clause)
        if scenario:
            q = q.where(results.c.scenario == scenario)
        q = q.order_by(results.c.clause, results.c.started_at, results.c.run_id)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
        except sa.exc.SQLAlchemyError as exc:
            raise HistoryError(f"history database {_safe_url(self.url)}: {_reason(exc)}") from None
        by_clause: dict[str, list] = {}
        for r in rows:
            by_clause.setdefault(r.clause, []).append(r)
        out = []
        for c, rs in by_clause.items():
            judged = [r for r in rs if r.verdict != "skipped"]
            latest = (judged or rs)[-1]
            since = None
            decisive = [r for r in judged if r.verdict in ("pass", "fail")]
            if decisive and decisive[-1].verdict == "fail":
                # the first fail after the last pass: runs that observed nothing (error,
                # inconclusive) neither end nor restart the streak; only a pass ends it
                for r in reversed(decisive):
                    if r.verdict == "pass":
                        break
                    since = r
            last_pass = next((r for r in reversed(judged) if r.verdict == "pass"), None)
            out.append(ClauseHistory(device, c, latest.scenario, latest.verdict, len(rs), _point(since), _point(last_pass)))
        return out


def index_run(history_cfg: Any, evidence_dir: Path, doc: dict, bundle: Path) -> str | None:
    """Index a sealed run in the configured history; returns a warning instead of raising, since
    the run and its bundle stand whatever happens to the history."""
    try:
        History.for_config(history_cfg, evidence_dir).index(doc, bundle)
    except HistoryError as exc:
        return str(exc)
    return None


def _point(r: Any) -> dict | None:
    return None if r is None else {"run_id": r.run_id, "started_at": r.started_at, "firmware": r.firmware, "bundle": r.bundle}


def _reason(exc: BaseException) -> str:
    """One line for a database failure, without the URL (which may hold a password)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
