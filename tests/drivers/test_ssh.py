"""SSH driver against a real OpenSSH sshd on loopback: pinning, auth, timeouts, dropped links."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from drivers.errors import AuthFailed, CommandTimeout, HostKeyMismatch, LinkLost, Unreachable
from drivers.ssh import SshDriver
from drivers.transcript import Transcript
from rig.config import SshTransport
from tests.conftest import need_root, need_tools


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    need_root()
    need_tools("/usr/sbin/sshd", "ssh-keygen")
    d = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(d / "host")
    _keygen(d / "client")
    _keygen(d / "stranger")
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = _free_port()
    cfg = d / "sshd_config"
    cfg.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nUseDNS no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"dir": d, "port": port, "host_pub": host_pub, "pid": proc.pid}
    proc.terminate()
    proc.wait(timeout=10)


def resource(sshd: dict, **kw) -> SshTransport:
    base = {"host": "127.0.0.1", "port": sshd["port"], "user": "root", "key_file": sshd["dir"] / "client", "host_key": sshd["host_pub"], "connect_timeout_s": 5}
    base.update(kw)
    return SshTransport.model_validate(base)


def test_runs_command_and_records_transcript(sshd: dict) -> None:
    sink = io.BytesIO()
    with SshDriver(resource(sshd), Transcript(sink), "cam-01") as drv:
        res = drv.run("echo hello; echo oops >&2; exit 3")
    assert res.exit_status == 3
    assert res.stdout == b"hello\n" and res.stderr == b"oops\n"
    entries = [json.loads(l) for l in sink.getvalue().splitlines()]
    assert {"tx", "rx", "err", "info"} <= {e["dir"] for e in entries}
    assert any(e["dir"] == "tx" and "echo hello" in e["data"] for e in entries)
    assert any("matches the pin" in e["data"] for e in entries)


def test_host_key_mismatch_refused_before_anything_is_sent(sshd: dict) -> None:
    wrong = _keygen(sshd["dir"] / "impostor")
    sink = io.BytesIO()
    drv = SshDriver(resource(sshd, host_key=wrong), Transcript(sink), "cam-01")
    with pytest.raises(HostKeyMismatch) as ei:
        drv.connect()
    msg = str(ei.value)
    assert "host key mismatch" in msg and "SHA256:" in msg and "refusing" in msg
    shown, pinned = msg.split("shows ")[1], msg.split("pins ")[1]
    assert shown.split()[1] != pinned.split(";")[0]
    assert not any(json.loads(l)["dir"] == "tx" for l in sink.getvalue().splitlines())


def test_fingerprint_and_known_hosts_pins(sshd: dict) -> None:
    import base64
    import hashlib

    blob = base64.b64decode(sshd["host_pub"].split()[1])
    fp = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    with SshDriver(resource(sshd, host_key=fp)) as drv:
        assert drv.run("true").exit_status == 0
    kh = sshd["dir"] / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd['port']} {sshd['host_pub']}\n")
    with SshDriver(resource(sshd, host_key=None, known_hosts=kh)) as drv:
        assert drv.run("true").exit_status == 0
    kh.write_text(f"198.18.0.99 {sshd['host_pub']}\n")
    with pytest.raises(HostKeyMismatch, match="has no key for"):
        SshDriver(resource(sshd, host_key=None, known_hosts=kh)).connect()


def test_wrong_key_is_auth_failure(sshd: dict) -> None:
    with pytest.raises(AuthFailed, match="authentication refused"):
        SshDriver(resource(sshd, key_file=sshd["dir"] / "stranger")).connect()


def test_missing_password_variable_is_named(sshd: dict) -> None:
    os.environ.pop("RIG_TEST_NO_SUCH_PW", None)
    with pytest.raises(AuthFailed, match="RIG_TEST_NO_SUCH_PW"):
        SshDriver(resource(sshd, key_file=None, password_env="RIG_TEST_NO_SUCH_PW")).connect()


def test_command_timeout_does_not_hang(sshd: dict) -> None:
    with SshDriver(resource(sshd)) as drv:
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout, match="within 0.5 s"):
            drv.run("sleep 20", timeout=0.5)
        assert time.monotonic() - t0 < 3
        assert drv.run("echo still-usable").text == "still-usable\n"


def test_refused_port_is_unreachable(sshd: dict) -> None:
    with pytest.raises(Unreachable, match="connection refused"):
        SshDriver(resource(sshd, port=_free_port())).connect()


def test_dropped_link_is_link_lost(sshd: dict) -> None:
    drv = SshDriver(resource(sshd)).connect()
    result: dict = {}

    def run() -> None:
        t0 = time.monotonic()
        try:
            result["ret"] = drv.run("sleep 30", timeout=25)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            result["exc"] = exc
        result["took"] = time.monotonic() - t0

    th = threading.Thread(target=run)
    th.start()
    time.sleep(1.0)
    # kill the per-connection sshd processes (children of the listener): the link drops
    children = subprocess.run(["pgrep", "-P", str(sshd["pid"])], capture_output=True, text=True).stdout.split()
    assert children, "expected a per-connection sshd child"
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    th.join(timeout=20)
    assert not th.is_alive(), "driver hung after the link dropped"
    assert isinstance(result.get("exc"), LinkLost), result
    assert result["took"] < 10
    drv.close()


def test_a_session_lost_between_commands_is_reopened_once(sshd: dict) -> None:
    sink = io.BytesIO()
    drv = SshDriver(resource(sshd), Transcript(sink), "cam-01").connect()
    assert drv.run("echo one").stdout == b"one\n"
    for pid in subprocess.run(["pgrep", "-P", str(sshd["pid"])], capture_output=True, text=True).stdout.split():
        os.kill(int(pid), signal.SIGKILL)  # the device drops the session while no command runs
    deadline = time.monotonic() + 5
    while drv.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not drv.connected
    assert drv.run("echo two").stdout == b"two\n"  # no command was in flight: a new session runs it
    assert b"reconnecting once" in sink.getvalue()
    drv.close()


def test_a_session_that_cannot_be_reopened_is_link_lost(sshd: dict) -> None:
    """The reconnect path once raised UnboundLocalError (a local import shadowed DeviceError)."""
    drv = SshDriver(resource(sshd), None, "cam-01").connect()
    drv.res = resource(sshd, port=_free_port())  # the device comes back on no port at all
    drv._client.get_transport().close()  # type: ignore[union-attr]
    with pytest.raises(LinkLost, match="reconnecting failed"):
        drv.run("echo never")
    drv.close()


def test_output_kept_in_memory_is_bounded(sshd: dict) -> None:
    sink = io.BytesIO()
    with SshDriver(resource(sshd), Transcript(sink)) as drv:
        res = drv.run("head -c 300000 /dev/zero | tr '\\0' 'x'; echo tail >&2", max_output=1000)
    assert len(res.stdout) == 1000 and res.truncated
    assert res.stderr == b"tail\n"
    assert sink.getvalue().count(b"x") >= 300000  # the transcript still has every byte


def test_channels_closed_mid_output_never_break_a_transport(sshd: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stress: four sessions side by side, each abandoning commands while their output still
    flows (the storage search killed by its deadline) between normal ones.

    The "Bad file descriptor" seen once in nine full runs: paramiko's Channel.fileno() makes an
    OS pipe that the transport thread writes to, unlocked, while Channel.close() closes it
    (paramiko #692, #2271). A write after the close kills the transport with EBADF, or lands in
    whatever descriptor another thread opened in between. The window is widened here the way a
    busy machine widens it; the driver must make no such pipe at all, so no transport dies and
    no session has to be reopened."""
    import paramiko.pipe

    made, late_writes = [], []
    real_make = paramiko.pipe.make_pipe

    def make_pipe():  # noqa: ANN202
        made.append(1)
        return real_make()

    def slow_set(self):  # noqa: ANN001, ANN202 - PosixPipe.set with the race window held open
        if self._set or self._closed:
            return
        self._set = True
        time.sleep(0.02)
        if self._closed:
            late_writes.append(1)
        os.write(self._wfd, b"*")

    monkeypatch.setattr(paramiko.pipe, "make_pipe", make_pipe)
    monkeypatch.setattr(paramiko.pipe.PosixPipe, "set", slow_set)
    problems: list[str] = []

    def session(n: int) -> None:
        sink = io.BytesIO()
        drv = SshDriver(resource(sshd, command_timeout_s=10), Transcript(sink), f"stress-{n}")
        drv.connect()
        try:
            for k in range(12):
                transport = drv._client.get_transport()  # type: ignore[union-attr]
                try:
                    drv.run("i=0; while :; do i=$((i+1)); echo $i; done", timeout=0.25 + 0.05 * (k % 4))
                except CommandTimeout:
                    pass
                res = drv.run("head -c 200000 /dev/zero | tr '\\0' x")
                if len(res.stdout) != 200000 or res.exit_status != 0:
                    problems.append(f"stress-{n} iteration {k}: {len(res.stdout)} bytes, exit {res.exit_status}")
                if not transport.is_active() or transport is not drv._client.get_transport():  # type: ignore[union-attr]
                    problems.append(f"stress-{n} iteration {k}: transport died: {transport.saved_exception!r}")
            if b"reconnecting" in sink.getvalue():
                problems.append(f"stress-{n}: a session had to be reopened")
        finally:
            drv.close()

    threads = [threading.Thread(target=session, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads)
    assert problems == []
    assert made == [] and late_writes == []  # no channel pipe was ever made, so none was written after its close
