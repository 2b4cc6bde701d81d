"""The lab on Celery and Redis: one queue per bench host (``bench.<host>``), one job per device.

A job is a Celery task (``privrig.run_device``) carrying its job id (also the task id), the
host, the device and the scenarios. The worker of that host runs it as ``rig run`` would
(the same engine, the same device locks: a technician's local run and a lab job never drive
one device at once; a job waits for a locked device), verifies the sealed bundle, moves it
atomically into the evidence store (:mod:`rig.lab.store`) and indexes it in the lab's history.

Delivery is at least once: tasks are acknowledged late (after they finished), and a worker
that dies mid-job leaves its message unacknowledged, so Redis hands it out again once the
broker's ``visibility_timeout_s`` has passed. Every job is idempotent by its id: a job already
recorded in the store returns its record; one another process is running (a claim in Redis,
refreshed while it runs) waits and is retried; a bundle a killed attempt left half-written is
kept in the store as incomplete before the job runs again.

Progress: each engine event of a job is published on Redis (``privrig:events:<lab>``) for
``rig lab submit --wait`` to show, the same lines as ``rig run``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery

from rig.lab.config import LoadedLab
from rig.lab.store import EvidenceStore

TASK = "privrig.run_device"
CLAIM_TTL_S = 30
CLAIM_REFRESH_S = 10


def queue_of(host: str) -> str:
    """The queue a host's worker consumes."""
    return f"bench.{host}"


def events_channel(lab: LoadedLab) -> str:
    """The Redis channel job events are published on."""
    return f"privrig:events:{lab.lab.name}"


def make_app(lab: LoadedLab) -> Celery:
    """The Celery app of ``lab`` (broker and result backend: its Redis), with the job task."""
    url = lab.lab.broker.resolved_url()
    vt = lab.lab.broker.visibility_timeout_s
    app = Celery("privrig", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # acknowledged once done: a job a dead worker held is handed out again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker takes the next job only when it has a free process
        broker_transport_options={"visibility_timeout": vt},
        result_backend_transport_options={"visibility_timeout": vt},
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_expires=14 * 86400,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue="privrig",
    )
    app.task(name=TASK, bind=True, max_retries=None)(_run_device)
    return app


# -- the worker's side -------------------------------------------------------------------------

@dataclass
class WorkerContext:
    """What a worker process knows: its lab, host, bench config and spool folder."""

    lab: LoadedLab
    host: str
    spool: Path


#: set by ``rig lab worker`` before the worker starts (inherited by its pool processes)
CONTEXT: WorkerContext | None = None


class _Publish:
    """The engine's Progress for a lab job: every event published on Redis with the job id."""

    def __init__(self, redis: Any, channel: str, job_id: str, host: str):
        self.redis, self.channel, self.job_id, self.host = redis, channel, job_id, host

    def event(self, kind: str, device: str | None = None, scenario: str | None = None, **info: object) -> None:
        msg = json.dumps({"job": self.job_id, "host": self.host, "event": kind, "device": device, "scenario": scenario, **info}, default=str)
        try:
            self.redis.publish(self.channel, msg)
        except Exception:  # noqa: BLE001 - progress is a courtesy: a broker blip must not fail the job
            pass


def _redis(lab: LoadedLab) -> Any:
    import redis

    return redis.Redis.from_url(lab.lab.broker.resolved_url(), socket_timeout=10)


def _run_device(task: Any, job: dict) -> dict:
    """One device's scenarios on this host (see the module docstring); returns the job's record."""
    from rig.engine import RunPlan, execute
    from rig.history import History
    from rig.verify import VERIFIED, verify_bundle

    ctx = CONTEXT
    if ctx is None:
        raise RuntimeError("privrig.run_device runs only in a worker started by `rig lab worker`")
    job_id, device = str(job["job_id"]), str(job["device"])
    if job.get("host") != ctx.host:
        raise RuntimeError(f"job {job_id} is for host {job.get('host')!r}, this worker is {ctx.host!r}")
    bench = ctx.lab.benches[ctx.host]
    store = EvidenceStore(ctx.lab.lab.evidence_store)
    bench_name = bench.bench.bench.name
    done = store.job(bench_name, job_id)
    if done is not None:
        return done  # delivered again after it completed: nothing to run
    r = _redis(ctx.lab)
    claim = f"privrig:claim:{job_id}"
    me = f"{socket.gethostname()}:{os.getpid()}"
    if not r.set(claim, me, nx=True, ex=CLAIM_TTL_S):
        raise task.retry(countdown=CLAIM_REFRESH_S)  # another process runs it now (or its claim has not expired yet)
    stop = threading.Event()

    def refresh() -> None:
        while not stop.wait(CLAIM_REFRESH_S):
            try:
                r.set(claim, me, ex=CLAIM_TTL_S)
            except Exception:  # noqa: BLE001 - the next refresh tries again
                pass

    threading.Thread(target=refresh, daemon=True).start()
    try:
        spool = ctx.spool / job_id
        for old in sorted(spool.glob("attempt-*/*")) if spool.exists() else []:  # what a killed attempt left
            if old.is_dir():
                kept = store.keep_incomplete(bench_name, old)
                _Publish(r, events_channel(ctx.lab), job_id, ctx.host).event("warning", device, message=f"an earlier attempt was cut off; its partial bundle is kept at {kept}")
        attempt = spool / f"attempt-{int(time.time() * 1000)}"
        attempt.mkdir(parents=True, exist_ok=True)
        plan = RunPlan.select(bench, [device], job.get("scenarios") or None, attempt, lock_wait_s=float(job.get("lock_wait_s", 86400)))
        out = execute(plan, progress=_Publish(r, events_channel(ctx.lab), job_id, ctx.host))
        report = verify_bundle(out.bundle)
        if report.status != VERIFIED:
            kept = store.keep_incomplete(bench_name, out.bundle)
            raise RuntimeError(f"job {job_id}: the bundle did not verify ({report.status}); kept at {kept}")
        placed = store.put(bench_name, out.bundle)
        History.for_config(ctx.lab.lab.history, ctx.lab.lab.evidence_store).index_bundle(placed)
        record = {"job_id": job_id, "host": ctx.host, "bench": bench_name, "device": device, "run_id": placed.name,
                  "exit_code": out.exit_code, "bundle": str(placed),
                  "verdicts": {s.id: s.verdict.value for d in out.record.devices for s in d.scenarios}}
        store.record_job(bench_name, job_id, record)
        shutil.rmtree(spool, ignore_errors=True)
        return record
    finally:
        stop.set()
        try:
            if r.get(claim) == me.encode():
                r.delete(claim)
        except Exception:  # noqa: BLE001 - the claim expires by itself
            pass
