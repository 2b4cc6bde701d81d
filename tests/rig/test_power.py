"""The power strategy's wait on a console (rig/power.py): a board whose bootloader stops on any
key must boot untouched while the rig waits for it. CI once caught the rig's return, sent the
moment power came back, stopping cam-retail's autoboot: the camera sat at ``=>`` with its
network down, and the next scenario on it saw nothing answer."""

from __future__ import annotations

import os
import pty
import select
import threading
import time
import tty
from pathlib import Path
from types import SimpleNamespace

import pytest

from drivers.serial import SerialDriver
from rig import power
from rig.config import parse_config
from rig.sim.console import BOOT_BANNER, BootStub

BOARD = """\
version: 1
bench: {{name: power}}
devices:
  board:
    privacy_level: 2
    serial: {{port: {port}, baud: 115200, timeout_s: 3}}
    power: {{wait_for: console, off_s: 1, timeout_s: 20}}
"""


class Board(threading.Thread):
    """A board on a real pty: powered on, its bootloader counts down (BootStub, 1.5 s) and any byte
    stops it at ``=>``; untouched, it boots to a login prompt and answers a return with one.
    ``booted_at`` says when it booted, ``state`` where it is."""

    def __init__(self, booted: bool = False) -> None:
        super().__init__(daemon=True)
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self.slave = slave
        self.stub = BootStub(lambda b: os.write(self.master, b))
        self.state = "login" if booted else "countdown"
        self.stop = threading.Event()

    def run(self) -> None:
        if self.state == "countdown":
            self.stub.power_on()
        for _ in range(2000):  # bounded: 2000 x 10 ms
            if self.stop.is_set():
                return
            ready, _, _ = select.select([self.master], [], [], 0.01)
            data = os.read(self.master, 4096) if ready else b""
            if self.stub.active:
                if (data and self.stub.feed(data)) or self.stub.tick():
                    os.write(self.master, BOOT_BANNER + b"\r\nboard login: ")
                self.state = "prompt" if self.stub.state == "prompt" else "countdown" if self.stub.active else "login"
            elif data and b"\r" in data:
                os.write(self.master, b"\r\nboard login: ")

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)


def _ctx(tmp_path: Path, board: Board) -> SimpleNamespace:
    cfg = parse_config(BOARD.format(port=board.port), tmp_path / "power.yaml")
    drv = SerialDriver(cfg.bench.devices["board"].serial, device="board").open()
    steps: list[str] = []
    return SimpleNamespace(device=cfg.bench.devices["board"], device_name="board", serial=lambda: drv,
                           step=lambda what, **kw: steps.append(what), steps=steps, drv=drv)


@pytest.fixture
def board():
    b = Board()
    yield b
    b.close()


def test_waiting_on_the_console_sends_no_key_into_an_autoboot_countdown(tmp_path: Path, board: Board) -> None:
    ctx = _ctx(tmp_path, board)
    board.start()
    try:
        took = power.wait_back(ctx)  # type: ignore[arg-type]
    finally:
        ctx.drv.close()
    assert board.state == "login", "the rig's wait stopped the autoboot"
    assert took >= BootStub.COUNTDOWN_S  # it waited out the countdown rather than waking a prompt


def test_a_quiet_console_is_woken_with_a_return(tmp_path: Path) -> None:
    """A board already up prints nothing until spoken to: after QUIET_S of silence the rig sends
    a return and takes the prompt it gets."""
    b = Board(booted=True)
    ctx = _ctx(tmp_path, b)
    b.start()
    try:
        t0 = time.monotonic()
        ok, how = power._back(ctx, "console", 5.0)  # type: ignore[arg-type]
        took = time.monotonic() - t0
    finally:
        ctx.drv.close()
        b.close()
    assert ok and how == "console showed a login prompt"
    assert power.QUIET_S <= took < power.QUIET_S + power.WAKE_S


def test_a_key_in_the_countdown_would_have_stopped_it(tmp_path: Path, board: Board) -> None:
    """The control: the same board, sent a return the moment it powers on as the rig once did,
    stops at its bootloader prompt, so the first test could fail."""
    ctx = _ctx(tmp_path, board)
    board.start()
    try:
        time.sleep(0.2)
        ctx.drv.write(b"\r")
        res = ctx.drv.expect({"bootloader": r"^=> ?$", "login": r"login: ?$"}, 5.0)
    finally:
        ctx.drv.close()
    assert res.name == "bootloader" and board.state == "prompt"
