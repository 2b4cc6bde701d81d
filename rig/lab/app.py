"""The lab on Celery and Redis: one queue per bench host (``bench.<host>``), one job per device.

A job is a Celery task (``privrig.run_device``) carrying its job id (also the task id), the
host, the device and the scenarios. The worker of that host runs it as ``rig run`` would
(the same engine, the same device locks: a technician's local run and a lab job never drive
one device at once; a job waits for a locked device), verifies the sealed bundle, moves it
atomically into the evidence store (:mod:`rig.lab.store`) and indexes it in the lab's history.

Delivery is at least once: tasks are acknowledged late (after they finished), and a worker
that dies mid-job leaves its message unacknowledged, so Redis hands it out again once the
broker's ``visibility_timeout_s`` has passed (a pool process that dies is requeued at once).
Every job is idempotent by its id (see :mod:`rig.lab.store`): a job already recorded returns
its record; one whose bundle was placed but not recorded is indexed and recorded without
running again; a sealed bundle a killed attempt left in the spool is filed, a half-written one
kept as incomplete. One job runs at a time (a claim in Redis) and one job drives a device at a
time lab-wide (a device key in Redis, renewed while the job runs, beside the local flock that
keeps a technician's run off it). Attempts are recorded; after ``lab.max_attempts`` attempts
that each died without a record the job is recorded as given up, never retried forever.

Progress: each engine event of a job is published on Redis (``privrig:events:<lab>``) for
``rig lab submit --wait`` to show, the same lines as ``rig run``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery

from rig.lab.config import LoadedLab
from rig.lab.store import EvidenceStore, outcome_of

TASK = "privrig.run_device"
CLAIM_TTL_S = 20  # a claim (job, device) of a process that died elsewhere frees itself this long after its last renewal
# (one whose holder was a process of this machine that is gone is taken over at once: _Held.take)
CLAIM_REFRESH_S = 5


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
    app.task(name=TASK, bind=True, max_retries=None)(_run_device)  # retries wait for a claim or a device, never rerun a dead job: max_attempts does
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


def _crash_point(point: str) -> None:
    """Fault injection for the lab tests: when ``$PRIVRIG_LAB_CRASH`` names a file whose first
    line is ``point``, the worker's process is killed (SIGKILL) here; the file is removed first
    unless its second line is ``again``. Unset (always, outside the tests), this does nothing."""
    path = os.environ.get("PRIVRIG_LAB_CRASH")
    if not path:
        return
    try:
        lines = Path(path).read_text().split()
    except OSError:
        return
    if lines[:1] != [point]:
        return
    if lines[1:2] != ["again"]:
        Path(path).unlink(missing_ok=True)
    os.kill(os.getpid(), signal.SIGKILL)


class _Held:
    """Keys this job holds in Redis (its claim, its device), each renewed while it runs."""

    def __init__(self, r: Any, me: str):
        self.r, self.me, self.keys = r, me, []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, key: str, ttl: int) -> bool:
        """Take ``key`` for ``ttl`` s if no one holds it (the holder's renewal keeps it), or if its
        holder is a process of this machine that no longer exists (a killed worker's claim is free at
        once, not after its ``ttl``); a holder elsewhere is trusted until its key expires."""
        if not self.r.set(key, self.me, nx=True, ex=ttl):
            holder = self.r.get(key)
            if holder is None or not _dead_here(holder.decode(errors="replace")):
                return False
            if not self.r.eval(_TAKE_OVER, 1, key, holder, self.me, ttl):  # changed hands meanwhile
                return False
        self.keys.append((key, ttl))
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew, daemon=True)
            self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(CLAIM_REFRESH_S):
            for key, ttl in list(self.keys):
                try:
                    if self.r.get(key) == self.me.encode():
                        self.r.expire(key, ttl)
                except Exception:  # noqa: BLE001 - the next renewal tries again
                    pass

    def release(self) -> None:
        """Give back every key still ours (one that expired and was taken since is left alone)."""
        self._stop.set()
        for key, _ in self.keys:
            try:
                if self.r.get(key) == self.me.encode():
                    self.r.delete(key)
            except Exception:  # noqa: BLE001 - it expires by itself
                pass


#: replace a key's holder only if it is still the one judged dead (atomic in Redis)
_TAKE_OVER = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) end return false"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


def holder_id(pid: int) -> str:
    """Who holds a claim: ``host:boot:pid``. The boot id tells this machine (and this boot) from
    another of the same host name, so only a holder of this very boot is ever judged dead."""
    return f"{socket.gethostname()}:{_boot_id()}:{pid}"


def _dead_here(holder: str) -> bool:
    """True only if ``holder`` names a process of this machine and boot that is gone."""
    host_boot, _, pid = holder.rpartition(":")
    if host_boot != holder_id(0).rpartition(":")[0] or not pid.isdigit() or int(pid) in (0, os.getpid()):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


def device_key(bench: str, device: str) -> str:
    """The Redis key that holds a device for one job lab-wide (two workers of one host on two machines)."""
    return f"privrig:device:{bench}:{device}"


def _finish(ctx: WorkerContext, store: EvidenceStore, bench_name: str, job: dict, placed: Path, attempts: int) -> dict:
    """Index a placed bundle and record the job's outcome from the bundle's own results."""
    from rig.history import History

    verdicts, code = outcome_of(placed)
    History.for_config(ctx.lab.lab.history, ctx.lab.lab.evidence_store).index_bundle(placed)
    _crash_point("indexed")
    record = {"job_id": job["job_id"], "host": ctx.host, "bench": bench_name, "device": job["device"], "run_id": placed.name,
              "exit_code": code,
              "bundle": str(placed), "verdicts": verdicts, "attempts": attempts}
    store.record_job(bench_name, job["job_id"], record)
    return record


def _run_device(task: Any, job: dict) -> dict:
    """One device's scenarios on this host (see the module docstring); returns the job's record."""
    from rig.engine import RunPlan, execute
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
    held = _Held(r, holder_id(os.getpid()))
    publish = _Publish(r, events_channel(ctx.lab), job_id, ctx.host)
    try:
        if not held.take(f"privrig:claim:{job_id}", CLAIM_TTL_S):
            raise task.retry(countdown=CLAIM_REFRESH_S, max_retries=None)  # another process runs it now
        if not held.take(device_key(bench_name, device), CLAIM_TTL_S):
            publish.event("warning", device, message=f"{device} is held by another job of the lab; waiting")
            raise task.retry(countdown=5, max_retries=None)  # another worker (maybe on another machine) drives it now
        done = store.job(bench_name, job_id)
        if done is not None:
            return done
        # the bundle a killed attempt placed (intent said so) but did not record: index it, run nothing again
        meant = store.intent(bench_name, job_id)
        if meant is not None and meant.is_dir() and verify_bundle(meant).status == VERIFIED:
            return _finish(ctx, store, bench_name, job, meant, len(store.attempts(bench_name, job_id)))
        spool = ctx.spool / job_id
        for old in sorted(spool.glob("attempt-*/*")) if spool.exists() else []:  # what a killed attempt left
            if not old.is_dir():
                continue
            if verify_bundle(old).status == VERIFIED:  # sealed and whole: it is the job's result
                store.intend(bench_name, job_id, old.name)
                placed = store.put(bench_name, old)
                publish.event("warning", device, message=f"an earlier attempt finished its bundle before it was cut off; filed as {placed.name}")
                record = _finish(ctx, store, bench_name, job, placed, len(store.attempts(bench_name, job_id)))
                shutil.rmtree(spool, ignore_errors=True)
                return record
            kept = store.keep_incomplete(bench_name, old)
            publish.event("warning", device, message=f"an earlier attempt was cut off; its partial bundle is kept at {kept}")
        n = store.begin_attempt(bench_name, job_id, {"attempt": len(store.attempts(bench_name, job_id)) + 1, "host": ctx.host,
                                                     "worker": held.me, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        limit = ctx.lab.lab.max_attempts
        if n > limit:  # every earlier attempt died without a record (it killed its worker): stop driving the device
            record = {"job_id": job_id, "host": ctx.host, "bench": bench_name, "device": device, "run_id": None, "exit_code": 3,
                      "bundle": None, "verdicts": {}, "attempts": n - 1, "gave_up": True,
                      "error": f"given up after {n - 1} attempt(s) that each ended without a record (lab.max_attempts {limit}); "
                               f"partial bundles under {store.root / bench_name / 'incomplete'}"}
            store.record_job(bench_name, job_id, record)
            publish.event("warning", device, message=record["error"])
            shutil.rmtree(spool, ignore_errors=True)
            return record
        _crash_point("started")
        attempt = spool / f"attempt-{int(time.time() * 1000)}"
        attempt.mkdir(parents=True, exist_ok=True)
        plan = RunPlan.select(bench, [device], job.get("scenarios") or None, attempt, lock_wait_s=float(job.get("lock_wait_s", 86400)))
        out = execute(plan, progress=publish)
        report = verify_bundle(out.bundle)
        if report.status != VERIFIED:
            kept = store.keep_incomplete(bench_name, out.bundle)
            raise RuntimeError(f"job {job_id}: the bundle did not verify ({report.status}); kept at {kept}")
        store.intend(bench_name, job_id, out.bundle.name)
        placed = store.put(bench_name, out.bundle)
        _crash_point("placed")
        record = _finish(ctx, store, bench_name, job, placed, n)
        shutil.rmtree(spool, ignore_errors=True)
        return record
    finally:
        held.release()
