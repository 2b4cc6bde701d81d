"""What the lab engine (Celery + Redis) costs, against a local ``rig run`` in the same run.

1. **Broker at scale** (no devices): a throwaway redis-server, a lab of 100 bench hosts
   (100 bench configs, one device each), 1,000 jobs submitted (10 per host, one queue per
   host): the submit rate, Redis' memory per queued job, and how long ``rig lab status``
   takes to answer over 100 queues.
2. **Overhead per job** (needs root and the simulated bench's packages): a one-device bench
   (198.18.60.0/24), ``rig run --scenario interface-auth`` on it locally, then the same job
   through a worker: submit to start (the run-start event), end to indexed (the run-end
   event to the job's record in the store), and the whole job against the local run.

    .venv/bin/python benchmarks/lab.py [--jobs 1000] [--hosts 100] [--skip-bench]

Not a test: the figures depend on the machine; read them against the local run printed
beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RIG = [sys.executable, "-m", "rig.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis(folder: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--appendonly", "yes", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    r = redis.Redis(port=port)
    for _ in range(200):
        try:
            r.ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def _lab_file(folder: Path, port: int, hosts: dict[str, Path], history: str) -> Path:
    p = folder / "lab.yaml"
    p.write_text(f"""version: 1
lab:
  name: bench-lab
  broker: {{url: "redis://127.0.0.1:{port}/0", visibility_timeout_s: 600}}
  history: {{url: "{history}"}}
  evidence_store: {folder / 'store'}
  hosts:
""" + "".join(f"    {h}: {{bench: {b}}}\n" for h, b in hosts.items()))
    return p


def broker_at_scale(n_jobs: int, n_hosts: int) -> None:
    """Part 1 (see the module docstring)."""
    import redis

    from rig.lab.app import TASK, make_app, queue_of
    from rig.lab.config import load_lab

    with tempfile.TemporaryDirectory(prefix="privrig-labbench-") as tmp:
        folder = Path(tmp)
        proc, port = _redis(folder)
        try:
            hosts = {}
            for i in range(n_hosts):
                b = folder / f"bench-{i:03d}.yaml"
                b.write_text(f"""version: 1
bench: {{name: b{i:03d}}}
devices:
  cam-{i:03d}:
    privacy_level: 2
    network: {{address: 198.18.{100 + i // 250}.{1 + i % 250}, open_ports: [22/tcp]}}
""")
                hosts[f"host-{i:03d}"] = b
            t0 = time.perf_counter()
            lab = load_lab(_lab_file(folder, port, hosts, f"sqlite:///{folder / 'h.sqlite'}"))
            load_s = time.perf_counter() - t0
            app = make_app(lab)
            r = redis.Redis(port=port)
            mem0 = int(r.info("memory")["used_memory"])
            t0 = time.perf_counter()
            devices = list(lab.devices().items())
            for k in range(n_jobs):
                dev, host = devices[k % len(devices)]
                app.send_task(TASK, kwargs={"job": {"job_id": f"bench-{k}", "host": host, "device": dev, "scenarios": ["interface-auth"]}},
                              task_id=f"bench-{k}", queue=queue_of(host))
            submit_s = time.perf_counter() - t0
            mem1 = int(r.info("memory")["used_memory"])
            lengths = [int(r.llen(queue_of(h))) for h in lab.benches]
            t0 = time.perf_counter()
            st = subprocess.run([*RIG, "lab", "status", "-c", str(folder / "lab.yaml"), "--json"], capture_output=True, text=True, timeout=600)
            status_s = time.perf_counter() - t0
            queued = sum(h["queued"] for h in json.loads(st.stdout)["hosts"].values()) if st.returncode == 0 else -1
            print(f"broker: lab of {n_hosts} hosts loaded and checked in {load_s:.2f} s")
            print(f"broker: {n_jobs} jobs submitted in {submit_s:.2f} s ({n_jobs / submit_s:.0f} jobs/s, one client)")
            print(f"broker: Redis memory {(mem1 - mem0) / n_jobs / 1024:.1f} KiB per queued job ({(mem1 - mem0) / 1e6:.1f} MB for {n_jobs})")
            print(f"broker: queues hold {min(lengths)}-{max(lengths)} jobs each ({sum(lengths)} in all); "
                  f"`rig lab status` over {n_hosts} hosts answered in {status_s:.2f} s and counted {queued} queued")
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def overhead_per_job() -> None:
    """Part 2 (see the module docstring)."""
    import redis

    from rig.config import load_config
    from rig.lab.app import events_channel
    from rig.lab.config import load_lab
    from rig.sim.bench import SimBench
    from tests.lab.benches import bench_config

    with tempfile.TemporaryDirectory(prefix="privrig-labbench-") as tmp:
        folder = Path(tmp)
        bench_path = bench_config(folder, "lab-bench-x", 60, {"labx-cam": "cam-compliant"})
        bench = SimBench(load_config(bench_path))
        bench.down(log=lambda *_: None)
        bench.up(log=lambda *_: None)
        proc, port = _redis(folder)
        worker = None
        try:
            t0 = time.perf_counter()
            local = subprocess.run([*RIG, "run", "-c", str(bench_path), "--device", "labx-cam", "--scenario", "interface-auth", "-q",
                                    "--out", str(folder / "local")], capture_output=True, text=True, timeout=600)
            local_s = time.perf_counter() - t0
            lab_path = _lab_file(folder, port, {"host-x": bench_path}, f"sqlite:///{folder / 'h.sqlite'}")
            lab = load_lab(lab_path)
            worker = subprocess.Popen([*RIG, "lab", "worker", "-c", str(lab_path), "--host", "host-x", "-j", "1", "--spool", str(folder / "spool")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(8)  # the worker connects
            r = redis.Redis(port=port)
            ps = r.pubsub(ignore_subscribe_messages=True)
            ps.subscribe(events_channel(lab))
            t_submit = time.perf_counter()
            sub = subprocess.run([*RIG, "lab", "submit", "-c", str(lab_path), "--device", "labx-cam", "--scenario", "interface-auth"],
                                 capture_output=True, text=True, timeout=60)
            job_id = sub.stdout.split()[0]
            t_start = t_end = None
            while t_end is None and time.perf_counter() - t_submit < 600:
                msg = ps.get_message(timeout=0.2)
                if msg and msg.get("type") == "message":
                    ev = json.loads(msg["data"])
                    if ev.get("event") == "run-start" and t_start is None:
                        t_start = time.perf_counter()
                    if ev.get("event") == "run-end":
                        t_end = time.perf_counter()
            rec = folder / "store" / "lab-bench-x" / ".jobs" / f"{job_id}.json"
            while not rec.exists() and time.perf_counter() - t_submit < 600:
                time.sleep(0.05)
            t_rec = time.perf_counter()
            print(f"job: local `rig run` {local_s:.2f} s (exit {local.returncode}); the same job through the lab {t_rec - t_submit:.2f} s")
            print(f"job: submit to start {((t_start or t_submit) - t_submit):.2f} s (including `rig lab submit`'s own start-up); "
                  f"end to indexed {(t_rec - (t_end or t_rec)):.2f} s (verify, move into the store, index the history)")
            print(f"job: lab overhead {(t_rec - t_submit) - local_s:+.2f} s per job against the local run")
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=60)
            proc.terminate()
            proc.wait(timeout=20)
            bench.down(log=lambda *_: None)
            shutil.rmtree(folder / "spool", ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--skip-bench", action="store_true", help="only the broker part (no root, no simulated bench)")
    args = ap.parse_args()
    broker_at_scale(args.jobs, args.hosts)
    if not args.skip_bench:
        overhead_per_job()
    return 0


if __name__ == "__main__":
    sys.exit(main())
