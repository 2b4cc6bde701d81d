"""Serial driver against a real pty console (rig.sim.console running busybox sh / login)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.errors import CommandTimeout, LinkLost, Unreachable
from drivers.serial import SerialDriver
from drivers.transcript import Transcript
from rig.config import Identity, SerialTransport
from tests.conftest import ROOT, need_root, need_tools


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    need_root()
    need_tools("busybox", "openssl", "chroot")
    from rig.sim.bench import build_rootfs

    root = tmp_path_factory.mktemp("dev") / "rootfs"
    password = build_rootfs(root, "cam-test", Identity(model="T", serial="S", firmware="F"))
    return root, password


class Console:
    def __init__(self, root: Path, mode: str, link: Path):
        self.link = link
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rig.sim.console", "--link", str(link), "--root", str(root), "--mode", mode],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.exists(), "console link did not appear"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture()
def console(rootfs: tuple[Path, str], tmp_path: Path):
    made: list[Console] = []

    def start(mode: str) -> Console:
        c = Console(rootfs[0], mode, tmp_path / f"console-{mode}")
        made.append(c)
        return c

    yield start
    for c in made:
        c.stop()


def driver(link: Path, sink: io.BytesIO | None = None, raw: io.BytesIO | None = None) -> SerialDriver:
    return SerialDriver(SerialTransport(port=str(link), timeout_s=3), Transcript(sink) if sink is not None else None, raw, "cam-test")


def test_shell_console_runs_commands(console) -> None:
    c = console("shell")
    sink, raw = io.BytesIO(), io.BytesIO()
    with driver(c.link, sink, raw) as drv:
        drv.write(b"\r")
        res = drv.expect({"shell": drv.res.prompts.shell}, 3)
        assert res.name == "shell"
        assert drv.run_command("echo hello") == (0, "hello")
        status, out = drv.run_command("cat /etc/device-info; false")
        assert status == 1 and "model=T" in out
    assert b"hello" in raw.getvalue()
    assert any(json.loads(l)["dir"] == "rx" for l in sink.getvalue().splitlines())


def test_login_console_password_is_redacted(console, rootfs: tuple[Path, str]) -> None:
    c = console("login")
    password = rootfs[1]
    sink = io.BytesIO()
    with driver(c.link, sink) as drv:
        drv.write(b"\r")
        p = drv.res.prompts
        assert drv.expect({"login": p.login}, 5).name == "login"
        drv.write(b"root\r")
        assert drv.expect({"password": p.password}, 5).name == "password"
        drv.write(password + "\r", secret=True)
        assert drv.expect({"shell": p.shell}, 5).name == "shell"
        assert drv.run_command("id -u") == (0, "0")
    text = sink.getvalue().decode()
    assert password not in text
    assert "[redacted]" in text


def test_vanished_pty_is_link_lost_not_a_hang(console) -> None:
    c = console("shell")
    with driver(c.link) as drv:
        drv.write(b"\r")
        assert drv.expect({"shell": drv.res.prompts.shell}, 3).name == "shell"
        c.stop()  # the far end goes away: cable pulled, USB-serial unplugged
        t0 = time.monotonic()
        with pytest.raises((LinkLost, CommandTimeout)) as ei:
            drv.run_command("sleep 1", timeout=3)
        assert time.monotonic() - t0 < 5
        assert "cam-test serial" in str(ei.value)
        assert isinstance(ei.value, LinkLost), "a pty whose master closed must read as a lost link"


def test_missing_port_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(Unreachable, match="does not exist"):
        driver(tmp_path / "ttyUSB9").open()


def test_port_is_exclusive(console) -> None:
    c = console("shell")
    with driver(c.link):
        with pytest.raises(Unreachable, match="in use|cannot open"):
            driver(c.link).open()


def test_expect_deadline_returns_none(console) -> None:
    c = console("shell")
    with driver(c.link) as drv:
        t0 = time.monotonic()
        res = drv.expect({"never": r"THIS-WILL-NOT-APPEAR"}, 0.5)
        assert res.name is None
        assert 0.4 < time.monotonic() - t0 < 2


def test_a_flooding_console_is_kept_raw_only_up_to_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pty has no baud rate: a flood (rig.sim.hostile_console) fills console.raw up to RAW_LIMIT
    (made 1 MiB here), no further; the transcript says so; a wait still ends at its deadline."""
    import drivers.serial as serial_driver

    monkeypatch.setattr(serial_driver, "RAW_LIMIT", 1 << 20)
    link = tmp_path / "console"
    proc = subprocess.Popen([sys.executable, "-m", "rig.sim.hostile_console", "--link", str(link), "--case", "console-flood"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        raw, log = io.BytesIO(), io.BytesIO()
        with SerialDriver(SerialTransport(port=str(link), timeout_s=2), Transcript(log), raw, "board-hostile") as con:
            t0 = time.monotonic()
            res = con.expect({"never": r"RIGEND[0-9a-f]{8} \d+"}, 3.0)
            took = time.monotonic() - t0
        assert res.name is None and took < 3.0 + 2.0
        assert con.raw_bytes == len(raw.getvalue()) == 1 << 20 and con.raw_dropped > 0
        assert b"console.raw limit of 1048576 bytes reached" in log.getvalue()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
