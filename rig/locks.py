"""Device locks: two runs never drive the same device at once.

A device is known by *where* it is, not by the name a config gives it: its network
address, SSH endpoint, serial port and USB selector each get a lock file, so two configs
that name the same camera differently still exclude each other. Locks are ``flock(2)``
locks on files under the lock folder (``/run/lock/privrig``, or ``$PRIVRIG_HOME/locks``
when that is not writable): the kernel drops them when the holder dies, so a killed run
never leaves a device locked. Each lock file says who holds it (run id, pid, since when),
so a refused run can name the holder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from rig.config import DeviceConfig


class DeviceBusy(Exception):
    """The device is locked by another run (the message names it)."""


def lock_dir() -> Path:
    """Where lock files live: ``/run/lock/privrig`` if it can be made, else ``$PRIVRIG_HOME/locks``."""
    for d in (Path("/run/lock/privrig"), Path(os.environ.get("PRIVRIG_HOME", Path.home() / ".local/share/privrig")) / "locks"):
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise OSError("no writable folder for device locks (/run/lock/privrig or $PRIVRIG_HOME/locks)")


def resources(device: DeviceConfig) -> list[str]:
    """The places that identify a device on this bench, sorted (locks are always taken in this order)."""
    out = set()
    if device.network is not None:
        out.add(f"net:{device.network.address}")
    if device.ssh is not None:
        out.add(f"ssh:{device.ssh.host}:{device.ssh.port}")
    if device.serial is not None:
        port = device.serial.port
        out.add(f"serial:{os.path.realpath(port) if port.startswith('/') else port}")
    if device.usb is not None:
        out.add(f"usb:{device.usb.bus}:{device.usb.serial or ''}:{device.usb.vendor or ''}:{device.usb.product or ''}")
    return sorted(out)


def device_lock(name: str, device: DeviceConfig, holder: dict) -> DeviceLock:
    """The lock of one device: its resources, or its name when the config names none."""
    return DeviceLock(name, resources(device) or [f"device:{name}"], {**holder, "device": name})


def _file_for(res: str, folder: Path) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", res)[:60]
    return folder / f"{slug}-{hashlib.sha256(res.encode()).hexdigest()[:12]}.lock"


@dataclass
class DeviceLock:
    """All of one device's locks, held together; a context manager."""

    device: str
    keys: list[str]
    holder: dict
    folder: Path = field(default_factory=lock_dir)
    _fds: list[int] = field(default_factory=list)

    def acquire(self, wait_s: float = 0.0) -> "DeviceLock":
        """Take every lock, waiting up to ``wait_s`` seconds for a busy one (0: refuse at once).

        Raises :class:`DeviceBusy` naming the holder; on failure no lock is kept."""
        deadline = time.monotonic() + wait_s
        try:
            for res in self.keys:
                path = _file_for(res, self.folder)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                self._fds.append(fd)
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise DeviceBusy(f"{self.device}: {res} is in use by {self._describe(fd)}"
                                             + (f" (waited {wait_s:g} s)" if wait_s else " (rig run --wait-lock SECONDS waits for it)")) from None
                        time.sleep(0.2)
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({**self.holder, "resource": res, "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode(), 0)
        except BaseException:
            self.release()
            raise
        return self

    @staticmethod
    def _describe(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another run"
        return f"run {info.get('run_id', '?')} (pid {info.get('pid', '?')}) since {info.get('since', '?')}"

    def release(self) -> None:
        """Drop every lock held (idempotent)."""
        while self._fds:
            fd = self._fds.pop()
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> "DeviceLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
