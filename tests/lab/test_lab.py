"""The lab on real parts: Redis (Debian's redis-server) as Celery's broker, PostgreSQL as the
history, two bench hosts (two workers, each with its own simulated bench on its own subnet
and bridge), one evidence store; then each fault the lab must survive."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from rig.config import load_config
from rig.verify import VERIFIED, verify_bundle
from tests.conftest import BENCH_TOOLS, RIG, need, need_root, need_tools, rig
from tests.lab.benches import bench_config

pytestmark = pytest.mark.bench


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on 127.0.0.1 with an append-only file (what survives a restart)."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, _free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                                      "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis writes its append-only file and exits
            self.proc.wait(timeout=20)


class Lab:
    """The lab of the tests: its files, its Redis, and a worker process per host."""

    def __init__(self, folder: Path, redis: Redis, pg_url: str):
        self.folder, self.redis = folder, redis
        self.benches = {"bench-a": bench_config(folder, "lab-bench-a", 40, {"lab-a-cam": "cam-compliant"}),
                        "bench-b": bench_config(folder, "lab-bench-b", 41, {"lab-b-cam": "cam-violating"}),
                        "bench-c": bench_config(folder, "lab-bench-c", 42, {"lab-c-cam": "cam-compliant"})}  # a host with no worker
        self.store = folder / "store"
        self.path = folder / "lab.yaml"
        self.path.write_text(f"""version: 1
lab:
  name: lab-test
  broker: {{url: "redis://127.0.0.1:{redis.port}/0", visibility_timeout_s: 10}}
  history: {{url: "{pg_url}"}}
  evidence_store: {self.store}
  hosts:
""" + "".join(f"    {h}: {{bench: {p}}}\n" for h, p in self.benches.items()))
        self.workers: dict[str, subprocess.Popen] = {}
        self.desk = folder / "home-desk"  # where submit and status run: it trusts the hosts' keys

    def home(self, host: str) -> Path:
        return self.folder / f"home-{host}"

    def trust_hosts(self, *hosts: str) -> None:
        """Each host's bench key made (``rig keys show`` on it) and trusted at the desk (``rig keys trust``)."""
        for host in hosts:
            shown = rig("keys", "show", env={**os.environ, "PRIVRIG_HOME": str(self.home(host))})
            assert shown.returncode == 0, shown.stderr
            pem = self.folder / f"{host}.pem"
            pem.write_text(shown.stdout)
            trusted = rig("keys", "trust", str(pem), "--name", host, env={**os.environ, "PRIVRIG_HOME": str(self.desk)})
            assert trusted.returncode == 0, trusted.stderr

    def start_worker(self, host: str, name: str | None = None, env: dict[str, str] | None = None) -> None:
        """A worker of ``host`` in its own process group (``name``: a second one of the same host)."""
        name = name or host
        env = {**os.environ, "PRIVRIG_HOME": str(self.home(host)), **(env or {})}
        self.workers[name] = subprocess.Popen([*RIG, "lab", "worker", "-c", str(self.path), "--bench", str(self.benches[host]), "-j", "2",
                                               "--spool", str(self.folder / f"spool-{name}")],
                                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=(self.folder / f"worker-{name}.log").open("ab"), start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = self.status()
            if len(st["hosts"][host]["workers"]) >= sum(1 for n in self.workers if n.split("#")[0] == host):
                return
            time.sleep(0.5)
        raise AssertionError(f"the worker {name} did not come up: {(self.folder / f'worker-{name}.log').read_text()[-2000:]}")

    def kill_worker(self, host: str, sig: int = signal.SIGKILL) -> None:
        proc = self.workers.pop(host)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)

    def status(self) -> dict:
        res = rig("lab", "status", "-c", str(self.path), "--json", env={**os.environ, "PRIVRIG_HOME": str(self.desk)})
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def submit(self, *args: str, timeout: float = 600, home: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*RIG, "lab", "submit", "-c", str(self.path), *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PRIVRIG_HOME": str(home or self.desk)})

    def verified(self, bundle: Path, host: str) -> bool:
        key = serialization.load_pem_private_key((self.home(host) / "bench-ed25519.pem").read_bytes(), None).public_key()
        return verify_bundle(bundle, pinned_key=key).status == VERIFIED  # type: ignore[arg-type]

    def record(self, bench: str, job_id: str) -> dict | None:
        p = self.store / bench / ".jobs" / f"{job_id}.json"
        return json.loads(p.read_text()) if p.exists() else None

    def store_attempts(self, bench: str, job_id: str) -> list[dict]:
        p = self.store / bench / ".jobs" / f"{job_id}.attempts.jsonl"
        return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []

    def wait_record(self, bench: str, job_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rec = self.record(bench, job_id)
            if rec is not None:
                return rec
            time.sleep(1)
        raise AssertionError(f"job {job_id} was not recorded within {timeout:g} s")


@pytest.fixture(scope="module")
def lab(postgres_url: str, tmp_path_factory: pytest.TempPathFactory):
    need_root()
    need_tools(*BENCH_TOOLS)
    need(shutil.which("redis-server") is not None, "redis-server (Debian redis-server; scripts/setup installs it)")
    from rig.sim.bench import SimBench

    folder = tmp_path_factory.mktemp("lab")
    (folder / "store").mkdir()
    # the store on a filesystem of its own (as an NFS export is): every bundle is copied across, not renamed
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "privrig-store", str(folder / "store")], check=True)
    (folder / "redis").mkdir()
    redis = Redis(folder / "redis")
    redis.start()
    the_lab = Lab(folder, redis, postgres_url)
    benches = [SimBench(load_config(the_lab.benches[h])) for h in ("bench-a", "bench-b")]
    try:
        for b in benches:
            b.down(log=lambda *_: None)
            b.up(log=lambda *_: None)
        the_lab.trust_hosts("bench-a", "bench-b")
        for h in ("bench-a", "bench-b"):
            the_lab.start_worker(h)
        yield the_lab
    finally:
        for h in list(the_lab.workers):
            the_lab.kill_worker(h, signal.SIGTERM)
        for b in benches:
            b.down(log=lambda *_: None)
        redis.stop()
        subprocess.run(["umount", "-l", str(folder / "store")], check=False)


def test_the_whole_lab_runs_into_one_store_and_one_history(lab: Lab, postgres_url: str) -> None:
    res = lab.submit("--device", "lab-a-cam", "--device", "lab-b-cam", "--scenario", "interface-auth", "--wait", "300",
                     "--junit", str(lab.folder / "lab-junit.xml"))
    assert res.returncode == 1, res.stderr  # the violating camera fails, as `rig run` would say
    jobs = [line.split() for line in res.stdout.splitlines() if line.count(" ") == 2]
    assert sorted((d, h) for _, d, h in jobs) == [("lab-a-cam", "bench-a"), ("lab-b-cam", "bench-b")]
    assert "[lab-b-cam] interface-auth FAIL" in res.stderr and "lab-a-cam" in res.stderr  # progress from the workers' events
    for job_id, device, host in jobs:
        bench = f"lab-{host}"
        rec = lab.record(bench, job_id)
        assert rec is not None and rec["device"] == device and rec["verdicts"] == {"interface-auth": "pass" if device == "lab-a-cam" else "fail"}
        bundle = Path(rec["bundle"])
        assert bundle.parent == lab.store / bench and lab.verified(bundle, host)
        hist = rig("history", "--db", postgres_url, "--device", device, "--scenario", "interface-auth", "--json")
        assert hist.returncode == 0, hist.stderr
        assert {a["verdict"] for a in json.loads(hist.stdout)} == {rec["verdicts"]["interface-auth"]}
    assert not list((lab.store / ".incoming").iterdir())  # nothing half-placed
    assert os.stat(lab.store).st_dev != os.stat(lab.folder / "spool-bench-a").st_dev  # copied across filesystems, fsynced, renamed
    assert "(verified, signed by" in res.stdout  # reported from the store's bundles, not the broker's word
    junit = (lab.folder / "lab-junit.xml").read_text()
    assert junit.count("<testsuite ") == 2 and 'failures="1"' in junit
    st = lab.status()
    assert st["hosts"]["bench-b"]["devices"]["lab-b-cam"]["interface-auth"]["verdict"] == "fail"
    assert st["hosts"]["bench-c"]["workers"] == [] and st["hosts"]["bench-a"]["workers"]


def test_a_job_delivered_twice_runs_once(lab: Lab) -> None:
    """Late acknowledgement means at-least-once delivery: the job id makes a second delivery a no-op."""
    from rig.lab.app import TASK, make_app, queue_of
    from rig.lab.config import load_lab

    res = lab.submit("--device", "lab-a-cam", "--scenario", "interface-auth", "--wait", "300")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.split()[0]
    before = sorted(p.name for p in (lab.store / "lab-bench-a").iterdir())
    app = make_app(load_lab(lab.path))
    again = app.send_task(TASK, kwargs={"job": {"job_id": job_id, "host": "bench-a", "device": "lab-a-cam", "scenarios": ["interface-auth"]}},
                          task_id=job_id, queue=queue_of("bench-a"))
    assert again.get(timeout=120)["run_id"] == lab.record("lab-bench-a", job_id)["run_id"]
    assert sorted(p.name for p in (lab.store / "lab-bench-a").iterdir()) == before


def test_a_host_without_a_worker_waits_and_the_wait_ends_naming_it(lab: Lab) -> None:
    t0 = time.monotonic()
    res = lab.submit("--device", "lab-c-cam", "--scenario", "interface-auth", "--wait", "8")
    assert res.returncode == 3 and time.monotonic() - t0 < 60
    assert "on host bench-c did not finish within 8 s: no worker of that host is up" in res.stderr
    assert lab.status()["hosts"]["bench-c"]["queued"] >= 1  # still waiting for a worker of bench-c


def test_a_worker_killed_mid_job_gets_it_again_and_the_cut_bundle_is_kept(lab: Lab) -> None:
    res = lab.submit("--device", "lab-b-cam", "--scenario", "debug-ports")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.split()[0]
    spool = lab.folder / "spool-bench-b" / job_id
    deadline = time.monotonic() + 60
    while not any(spool.glob("attempt-*/*/journal.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # the run is well under way
    lab.kill_worker("bench-b")  # SIGKILL: no chance to acknowledge, clean up or seal
    assert lab.record("lab-bench-b", job_id) is None
    lab.start_worker("bench-b")
    rec = lab.wait_record("lab-bench-b", job_id, timeout=300)
    assert rec["verdicts"] == {"debug-ports": "fail"} and lab.verified(Path(rec["bundle"]), "bench-b")
    kept = list((lab.store / "lab-bench-b" / "incomplete").iterdir())
    assert kept and all((k / "journal.jsonl").exists() and not (k / "manifest.sig").exists() for k in kept)


def test_a_broker_that_goes_away_and_returns_loses_no_job(lab: Lab) -> None:
    lab.kill_worker("bench-a", signal.SIGTERM)
    res = lab.submit("--device", "lab-a-cam", "--scenario", "interface-auth")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.split()[0]
    lab.redis.stop()
    lab.redis.start()  # the same port and append-only file
    lab.start_worker("bench-a")
    rec = lab.wait_record("lab-bench-a", job_id, timeout=300)
    assert rec["verdicts"] == {"interface-auth": "pass"}


def test_a_job_for_a_device_a_local_run_holds_waits_for_its_lock(lab: Lab) -> None:
    from rig.locks import device_lock

    cfg = load_config(lab.benches["bench-a"])
    lock = device_lock("lab-a-cam", cfg.device("lab-a-cam"), {"run_id": "a-technician", "pid": os.getpid()})
    lock.acquire(0)
    try:
        res = lab.submit("--device", "lab-a-cam", "--scenario", "interface-auth")
        assert res.returncode == 0, res.stderr
        job_id = res.stdout.split()[0]
        time.sleep(15)
        assert lab.record("lab-bench-a", job_id) is None  # held off by the local run's lock
    finally:
        lock.release()
    rec = lab.wait_record("lab-bench-a", job_id, timeout=300)
    assert rec["verdicts"] == {"interface-auth": "pass"}


def _jobs_of(res: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[0] for line in res.stdout.splitlines() if line.count(" ") == 2]


def test_submit_reports_what_the_store_verifies_not_what_the_broker_says(lab: Lab) -> None:
    """A result in Redis is only a hint: a forged one (anyone on the broker can write it) names
    no job the store recorded; a desk that does not trust the host's key reports nothing."""
    from rig.lab.app import make_app
    from rig.lab.config import load_lab

    proc = subprocess.Popen([*RIG, "lab", "submit", "-c", str(lab.path), "--device", "lab-c-cam", "--scenario", "interface-auth",
                             "--wait", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PRIVRIG_HOME": str(lab.desk)})
    try:
        job_id = proc.stdout.readline().split()[0]  # bench-c has no worker: nothing will run it
        make_app(load_lab(lab.path)).backend.store_result(job_id, {"job_id": job_id, "exit_code": 0, "run_id": "forged",
                                                                   "bundle": "/etc"}, "SUCCESS")
        out, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 3 and "evidence store has no record of it" in err, err
    # a real job, its bundle in the store, but the desk has never trusted bench-a's key
    stranger = lab.folder / "home-stranger"
    res = lab.submit("--device", "lab-a-cam", "--scenario", "interface-auth", "--wait", "300", home=stranger)
    assert res.returncode == 3 and "did not verify: untrusted" in res.stderr and "rig keys trust" in res.stderr, res.stderr
    rec = lab.record("lab-bench-a", _jobs_of(res)[0])
    assert rec is not None and rec["exit_code"] == 0  # the job itself ran and was recorded


def test_a_worker_killed_between_placing_and_recording_indexes_one_bundle(lab: Lab) -> None:
    """The pool process dies right after the bundle landed in the store and before the job was
    recorded: the job is delivered again and files what it placed, running nothing again."""
    crash = lab.folder / "crash-placed"
    crash.write_text("placed\n")
    lab.kill_worker("bench-a", signal.SIGTERM)
    lab.start_worker("bench-a", env={"PRIVRIG_LAB_CRASH": str(crash)})
    try:
        before = {p.name for p in (lab.store / "lab-bench-a").iterdir()}
        res = lab.submit("--device", "lab-a-cam", "--scenario", "interface-auth", "--wait", "300")
        assert res.returncode == 0, res.stderr
        assert not crash.exists()  # it did die where it was told to
        [job_id] = _jobs_of(res)
        rec = lab.record("lab-bench-a", job_id)
        new = {p.name for p in (lab.store / "lab-bench-a").iterdir()} - before
        assert new == {rec["run_id"]} and rec["attempts"] == 1  # one bundle, one run of the device
        assert len(lab.store_attempts("lab-bench-a", job_id)) == 1
        assert not (lab.store / "lab-bench-a" / ".jobs" / f"{job_id}.placing").exists()
    finally:
        lab.kill_worker("bench-a", signal.SIGTERM)
        lab.start_worker("bench-a")


def test_a_job_that_kills_its_worker_is_given_up_after_max_attempts(lab: Lab) -> None:
    crash = lab.folder / "crash-always"
    crash.write_text("started\nagain\n")
    lab.kill_worker("bench-b", signal.SIGTERM)
    lab.start_worker("bench-b", env={"PRIVRIG_LAB_CRASH": str(crash)})
    try:
        res = lab.submit("--device", "lab-b-cam", "--scenario", "debug-ports", "--wait", "300")
        assert res.returncode == 3 and "given up after 3 attempt(s)" in res.stderr, res.stderr
        [job_id] = _jobs_of(res)
        rec = lab.record("lab-bench-b", job_id)
        assert rec["gave_up"] is True and rec["run_id"] is None
        attempts = lab.store_attempts("lab-bench-b", job_id)
        assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]  # the fourth only recorded the giving up
    finally:
        crash.unlink(missing_ok=True)
        lab.kill_worker("bench-b", signal.SIGTERM)
        lab.start_worker("bench-b")


def test_two_workers_of_one_host_never_drive_its_device_at_once(lab: Lab) -> None:
    """A second worker of bench-a in another process group (as on a second machine): both take
    bench-a's queue, and the device key in Redis keeps one job at a time on the camera."""
    lab.start_worker("bench-a", name="bench-a#2")
    try:
        procs = [subprocess.Popen([*RIG, "lab", "submit", "-c", str(lab.path), "--device", "lab-a-cam", "--scenario", "interface-auth",
                                   "--wait", "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PRIVRIG_HOME": str(lab.desk)}) for _ in range(2)]
        outs = [p.communicate(timeout=500) for p in procs]
    finally:
        lab.kill_worker("bench-a#2", signal.SIGTERM)
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    assert any("held by another job of the lab; waiting" in e for _, e in outs), [e for _, e in outs]
    spans = []
    for out, _ in outs:
        rec = lab.record("lab-bench-a", out.split()[0])
        doc = json.loads((Path(rec["bundle"]) / "results.json").read_text())
        spans.append((doc["started_at"], doc["finished_at"]))
    (s1, e1), (s2, e2) = sorted(spans)
    assert e1 <= s2, spans  # one after the other
