"""The simulated console's power relay: a real pty, a real busybox login, switched by a file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import serial

from rig.sim.bench import build_rootfs
from rig.config import Identity
from tests.conftest import ROOT, need_root, need_tools


def _read_for(port: serial.Serial, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += port.read(4096)
    return out


def test_relay_off_means_silence_and_on_means_a_boot_from_the_first_byte(tmp_path: Path) -> None:
    need_root()
    need_tools("busybox")
    root = tmp_path / "rootfs"
    build_rootfs(root, "relaycam", Identity(model="R"), "pw")
    relay = tmp_path / "power"
    relay.write_text("off\n")
    link = tmp_path / "console"
    proc = subprocess.Popen([sys.executable, "-m", "rig.sim.console", "--link", str(link), "--root", str(root), "--mode", "login",
                             "--power", str(relay)], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with serial.Serial(os.path.realpath(link), 115200, timeout=0.1) as port:
            port.write(b"\r")
            assert _read_for(port, 1.5) == b""  # off: nobody there, the byte is lost
            relay.write_text("on\n")
            booted = _read_for(port, 3.0)
            assert b"SimCam boot ROM" in booted and b"Starting kernel" in booted and b"login:" in booted
            relay.write_text("off\n")
            time.sleep(1.0)
            port.reset_input_buffer()
            port.write(b"root\r")
            assert _read_for(port, 1.5) == b""  # switched off again: silent
    finally:
        proc.terminate()
        proc.wait(timeout=10)
