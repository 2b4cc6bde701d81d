"""A simulated device's serial console: a null-modem cable between two real ptys.

The rig opens the *cable end* (a pty slave, symlinked at ``--link``) exactly as it
would open ``/dev/ttyUSB0``. On the device end a real program runs on its own pty:

* ``login``: busybox ``login`` chrooted into the device's root (password prompt);
* ``shell``: an unauthenticated busybox ``sh`` in that root;
* ``uboot``: real U-Boot (Debian's u-boot-qemu) in ``qemu-system-arm -M virt``, no
  network. It is powered on when the rig first sends a byte (so the rig sees the
  autoboot countdown, as on a bench after a power cycle) and powered off after
  ``UBOOT_IDLE_S`` seconds without traffic (qemu spins a core while U-Boot polls).

login and shell are respawned when they exit, as init would.

Run as ``python -m rig.sim.console --link PATH --root DIR --mode login|shell|uboot``.
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


def serve(link: str, root: str, mode: str, hostname: str | None) -> int:
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
    lazy = mode == "uboot"
    child, dev_master = (-1, -1) if lazy else _spawn(root, mode)
    if dev_master >= 0:
        os.set_blocking(dev_master, False)
    spawns: list[float] = [time.monotonic()]
    last_traffic = time.monotonic()
    print(f"console: {link} -> {slave_name}, mode {mode}, child {child}", file=sys.stderr, flush=True)
    try:
        while not stop:
            fds = [cable_master] + ([dev_master] if dev_master >= 0 else [])
            try:
                ready, _, _ = select.select(fds, [], [], 0.5)
            except InterruptedError:
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
            if lazy:
                if dev_master >= 0 and time.monotonic() - last_traffic > UBOOT_IDLE_S:
                    os.kill(child, signal.SIGKILL)  # power off
                    os.waitpid(child, 0)
                    os.close(dev_master)
                    child, dev_master = -1, -1
                    print("console: powered off (idle)", file=sys.stderr, flush=True)
                continue
            if dev_master < 0 and not stop:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--link", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--mode", choices=("login", "shell", "uboot"), required=True)
    ap.add_argument("--hostname")
    args = ap.parse_args(argv)
    return serve(args.link, args.root, args.mode, args.hostname)


if __name__ == "__main__":
    sys.exit(main())
