"""A simulated device's serial console: a null-modem cable between two real ptys.

The rig opens the *cable end* (a pty slave, symlinked at ``--link``) exactly as it
would open ``/dev/ttyUSB0``. On the device end a real program runs on its own pty:

* ``login``: busybox ``login`` chrooted into the device's root (password prompt);
* ``shell``: an unauthenticated busybox ``sh`` in that root;
* ``uboot``: real U-Boot (Debian's u-boot-qemu) in ``qemu-system-arm -M virt``, no
  network. It runs while the power relay is on; after ``UBOOT_IDLE_S`` seconds without
  traffic the relay switches it off again (qemu spins a core while U-Boot polls).

login and shell are respawned when they exit, as init would.

The power relay (``--power FILE``) is the device's supply: ``on`` or ``off`` in FILE,
written by the bench config's ``power-on`` / ``power-off`` actions. Off, the program on the
device end is killed, nothing it would print reaches the cable, bytes the rig sends are
lost, and (login and shell devices, with ``--netdev``) the namespace's interface is down: the device is gone
from the network too. On again, a login or shell device prints its boot banner and starts
its program; the U-Boot device starts qemu, so the rig sees the autoboot countdown from
its first byte, as on a bench after a power cycle. Without ``--power`` the device is always
on (and U-Boot is powered by the rig's first byte).

Run as ``python -m rig.sim.console --link PATH --root DIR --mode login|shell|uboot [--power FILE]``.
Stops cleanly on SIGTERM (child killed, link removed). Respawns are rate-limited.
"""

from __future__ import annotations

import argparse
import errno
import os
import pty
import select
import signal
import socket
import sys
import time
import tty

RESPAWN_DELAY_S = 0.3
MAX_RESPAWNS_PER_MIN = 60
UBOOT_IDLE_S = 20.0
UBOOT_BIOS = "/usr/lib/u-boot/qemu_arm/u-boot.bin"


def _spawn(root: str, mode: str) -> tuple[int, int]:
    pid, master = pty.fork()
    if pid == 0:  # child: on its own pty as controlling terminal
        try:
            if mode == "uboot":
                tty.setraw(0)  # a UART, not a terminal: Ctrl-C is a byte for U-Boot, never SIGINT for qemu
                qemu = "/usr/bin/qemu-system-arm"
                os.execv(qemu, [qemu, "-M", "virt", "-m", "64", "-nographic", "-nic", "none", "-no-reboot", "-bios", UBOOT_BIOS])
            os.chroot(root)
            os.chdir("/")
            env = {"PATH": "/bin:/sbin:/usr/bin:/usr/sbin", "TERM": "vt100", "HOME": "/root", "SHELL": "/bin/sh"}
            if mode == "login":
                os.execve("/bin/login", ["login"], env)
            else:
                env["PS1"] = "\\w # "
                os.execve("/bin/sh", ["-sh"], env)
        except BaseException as exc:  # noqa: BLE001 - report and leave the child
            os.write(2, f"console child failed: {exc}\n".encode())
        os._exit(127)
    return pid, master


BOOT_BANNER = (b"\r\nSimCam boot ROM 1.2 (SPI NOR)\r\nDRAM: 64 MiB\r\nLoading kernel from mtd3 ... OK\r\n"
               b"Starting kernel ...\r\n[    0.000000] Booting Linux on physical CPU 0x0\r\n[    1.204000] Run /sbin/init as init process\r\n")


class BootStub:
    """A vendor's bootloader in front of a login or shell device (``--bootloader``): at power-on
    it counts down 1.5 s to autoboot, any key stops it at a ``=>`` prompt that answers
    ``version`` and boots on ``boot`` or ``reset``. A protocol stub of the U-Boot a shop camera
    ships (the U-Boot device runs the real one in qemu)."""

    COUNTDOWN_S = 1.5
    VERSION = b"U-Boot 2016.01-simcam-r1 (Mar 21 2017 - 10:04:11 +0800)"

    def __init__(self, write):  # type: ignore[no-untyped-def]
        self.write = write
        self.state = "off"
        self.deadline = 0.0
        self.line = b""

    @property
    def active(self) -> bool:
        """The bootloader holds the console (counting down, or at its prompt)."""
        return self.state in ("countdown", "prompt")

    def power_on(self) -> None:
        self.write(b"\r\n" + self.VERSION + b"\r\n\r\nDRAM:  64 MiB\r\nSF: Detected w25q128 with page size 256 Bytes\r\n"
                   b"In:    serial\r\nOut:   serial\r\nErr:   serial\r\nHit any key to stop autoboot:  1 ")
        self.state, self.deadline, self.line = "countdown", time.monotonic() + self.COUNTDOWN_S, b""

    def tick(self) -> bool:
        """True when the countdown ran out: time to boot."""
        if self.state == "countdown" and time.monotonic() >= self.deadline:
            self.write(b"\b\b\b 0 \r\n## Booting kernel from Legacy Image at 82000000 ...\r\n")
            self.state = "off"
            return True
        return False

    def feed(self, data: bytes) -> bool:
        """Bytes from the cable; True when the prompt was told to boot."""
        if self.state == "countdown":
            self.state = "prompt"
            self.write(b"\b\b\b 0 \r\n=> ")
            return False
        for b in data:
            ch = bytes([b])
            if ch == b"\x03":
                self.line = b""
                self.write(b"<INTERRUPT>\r\n=> ")
            elif ch in (b"\r", b"\n"):
                cmd, self.line = self.line.strip(), b""
                if cmd in (b"boot", b"reset"):
                    self.write(b"\r\nresetting ...\r\n")
                    self.state = "off"
                    return True
                if cmd == b"version":
                    self.write(b"\r\n\r\n" + self.VERSION + b"\r\narm-linux-gnueabi-gcc (Linaro GCC 4.9) 4.9.4\r\n=> ")
                elif cmd:
                    self.write(b"\r\nUnknown command '" + cmd[:40] + b"' - try 'help'\r\n=> ")
                else:
                    self.write(b"\r\n=> ")
            elif len(self.line) < 256 and 0x20 <= b < 0x7F:
                self.line += ch
                self.write(ch)
        return False


def _relay(power_file: str | None) -> bool:
    """The relay's state (no relay: always on)."""
    if power_file is None:
        return True
    try:
        with open(power_file) as fh:
            return fh.read(16).strip() == "on"
    except OSError:
        return False


def _link(netdev: str | None, up: bool, gateway: str | None = None) -> None:
    """The device's network link, when ``--netdev`` names it (the bench passes it only to a
    console running inside the device's own namespace: never the host's interface). Taking a
    link down drops the routes through it; up again, the default route via ``gateway`` is put
    back, as the device's network setup would at boot."""
    import subprocess

    if netdev is None:
        return
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["ip", "link", "set", "dev", netdev, "up" if up else "down"], check=False, timeout=10, **quiet)
    if up and gateway:
        subprocess.run(["ip", "route", "replace", "default", "via", gateway, "dev", netdev], check=False, timeout=10, **quiet)


def serve(link: str, root: str, mode: str, hostname: str | None, power_file: str | None = None, netdev: str | None = None,
          bootloader: bool = False, gateway: str | None = None) -> int:
    if hostname:
        try:
            socket.sethostname(hostname)  # only inside the UTS namespace we were started in
        except OSError as exc:
            print(f"console: cannot set hostname: {exc}", file=sys.stderr)
    cable_master, cable_slave = pty.openpty()
    tty.setraw(cable_slave)  # the rig's end: no echo, no line editing; pyserial sets raw too
    os.set_blocking(cable_master, False)  # never block on a cable nobody reads
    slave_name = os.ttyname(cable_slave)
    tmp = link + ".tmp"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(slave_name, tmp)
    os.replace(tmp, link)
    stop = False

    def _term(_sig: int, _frm: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    def to_cable(data: bytes) -> None:
        try:
            os.write(cable_master, data)
        except BlockingIOError:
            pass  # nobody reads the cable: a real UART drops bytes too

    stub = BootStub(to_cable) if bootloader and mode != "uboot" else None
    lazy = mode == "uboot" and power_file is None
    powered = _relay(power_file)
    power_stamp = _stamp(power_file)
    if not powered and mode != "uboot":
        _link(netdev, False)
    child, dev_master = (-1, -1) if lazy or not powered else _spawn(root, mode)
    if dev_master >= 0:
        os.set_blocking(dev_master, False)
    spawns: list[float] = [time.monotonic()]
    last_traffic = time.monotonic()
    print(f"console: {link} -> {slave_name}, mode {mode}, child {child}", file=sys.stderr, flush=True)
    try:
        while not stop:
            fds = [cable_master] + ([dev_master] if dev_master >= 0 else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.1 if stub is not None and stub.active else 0.5)
            except InterruptedError:
                continue
            stamp = _stamp(power_file)
            if stamp != power_stamp:  # the relay was switched
                power_stamp = stamp
                now_on = _relay(power_file)
                if now_on != powered:
                    powered = now_on
                    if not powered:
                        if child > 0:
                            os.kill(child, signal.SIGKILL)
                            os.waitpid(child, 0)
                        if dev_master >= 0:
                            os.close(dev_master)
                        child, dev_master = -1, -1
                        if mode != "uboot":
                            _link(netdev, False)
                        print("console: power off (relay)", file=sys.stderr, flush=True)
                    else:
                        last_traffic = time.monotonic()
                        if mode != "uboot" and stub is None:
                            _link(netdev, True, gateway)
                        if stub is not None:  # the network comes up with Linux, once the bootloader lets it boot
                            stub.power_on()  # the bootloader first; Linux when it boots
                            print("console: power on (relay), bootloader counting down", file=sys.stderr, flush=True)
                            continue
                        if mode != "uboot":
                            to_cable(BOOT_BANNER)
                        child, dev_master = _spawn(root, mode)
                        os.set_blocking(dev_master, False)
                        spawns.append(time.monotonic())
                        print(f"console: power on (relay), child {child}", file=sys.stderr, flush=True)
                    continue
            if stub is not None and stub.active and powered:
                booted = False
                if cable_master in ready:
                    try:
                        data = os.read(cable_master, 4096)
                    except OSError:
                        data = b""
                    if data:
                        last_traffic = time.monotonic()
                        booted = stub.feed(data)
                booted = booted or stub.tick()
                if booted:
                    _link(netdev, True, gateway)
                    to_cable(BOOT_BANNER)
                    child, dev_master = _spawn(root, mode)
                    os.set_blocking(dev_master, False)
                    spawns.append(time.monotonic())
                continue
            if cable_master in ready:
                try:
                    data = os.read(cable_master, 4096)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    last_traffic = time.monotonic()
                if not powered:
                    continue  # nobody is there: the bytes are lost
                if data and lazy and dev_master < 0:  # power on at first contact
                    child, dev_master = _spawn(root, mode)
                    os.set_blocking(dev_master, False)
                    print(f"console: powered on, child {child}", file=sys.stderr, flush=True)
                    continue  # the byte that woke it is lost, as on real hardware
                if data and dev_master >= 0:
                    try:
                        os.write(dev_master, data)
                    except (BlockingIOError, OSError):
                        pass
            if dev_master >= 0 and dev_master in ready:
                try:
                    data = os.read(dev_master, 4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    last_traffic = time.monotonic()
                    try:
                        os.write(cable_master, data)
                    except BlockingIOError:
                        pass  # nobody reads the cable: a real UART drops bytes too
                else:  # the program on the device end exited
                    os.close(dev_master)
                    dev_master = -1
                    os.waitpid(child, 0)
                    child = -1
            if mode == "uboot":
                if dev_master >= 0 and time.monotonic() - last_traffic > UBOOT_IDLE_S:
                    os.kill(child, signal.SIGKILL)  # power off
                    os.waitpid(child, 0)
                    os.close(dev_master)
                    child, dev_master = -1, -1
                    if power_file is not None:  # the relay's idle timer: it is off now, and says so
                        _write_relay(power_file, "off")
                        power_stamp = _stamp(power_file)
                        powered = False
                    print("console: powered off (idle)", file=sys.stderr, flush=True)
                continue
            if dev_master < 0 and not stop and powered and not (stub is not None and stub.active):
                now = time.monotonic()
                spawns = [t for t in spawns if now - t < 60]
                delay = RESPAWN_DELAY_S if len(spawns) < MAX_RESPAWNS_PER_MIN else 5.0
                time.sleep(delay)
                child, dev_master = _spawn(root, mode)
                os.set_blocking(dev_master, False)
                spawns.append(time.monotonic())
    finally:
        if child > 0:
            try:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        try:
            if os.path.islink(link) and os.readlink(link) == slave_name:
                os.unlink(link)
        except OSError:
            pass
    return 0


def _stamp(power_file: str | None) -> tuple[int, int] | None:
    if power_file is None:
        return None
    try:
        st = os.stat(power_file)
        return st.st_mtime_ns, st.st_size
    except OSError:
        return (0, 0)


def _write_relay(power_file: str, state: str) -> None:
    tmp = power_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(state + "\n")
    os.replace(tmp, power_file)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--link", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--mode", choices=("login", "shell", "uboot"), required=True)
    ap.add_argument("--hostname")
    ap.add_argument("--power", help="the power relay's state file (on/off); none: always on")
    ap.add_argument("--netdev", help="the device's own network interface, taken down while the power is off (inside its namespace only)")
    ap.add_argument("--bootloader", action="store_true", help="a vendor bootloader whose autoboot any key stops, at each power-on")
    ap.add_argument("--gateway", help="the default route put back when the link comes up")
    args = ap.parse_args(argv)
    return serve(args.link, args.root, args.mode, args.hostname, args.power, args.netdev, args.bootloader, args.gateway)


if __name__ == "__main__":
    sys.exit(main())
