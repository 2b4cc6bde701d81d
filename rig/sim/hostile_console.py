"""A hostile serial console: a real pty whose device end attacks whoever opens the cable end.

A pty (or a USB CDC-ACM console) has no baud rate to slow a device down: a broken or
compromised board can flood it at full speed. ``python -m rig.sim.hostile_console --link PATH
--case CASE`` makes a pty, links its cable end at ``PATH`` (as the bench's consoles do) and runs
one case (:data:`CASES`):

* ``console-flood``: 100 MB of random bytes and terminal escapes at full speed;
* ``console-endless-login``: a login prompt, and another for every line typed, forever,
  each after a burst of escapes (OSC title, clear screen, OSC 52 clipboard);
* ``console-escapes``: a shell prompt whose every answer is escapes, NUL, invalid UTF-8, markup
  and ``$(...)``, and never the end marker the rig waits for.

Bounded like the rest of the bench: at most :data:`RUN_S` seconds, then it exits; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import sys
import time
import tty

from rig.sim.hostile_ssh import ESCAPES

#: the console exits after this long, whatever its case
RUN_S = 300.0
CASES = ("console-flood", "console-endless-login", "console-escapes")


def serve(link: str, case: str) -> int:
    """Run ``case`` on a new pty linked at ``link`` until SIGTERM or :data:`RUN_S`; returns 0."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.ttyname(slave), tmp)
    os.replace(tmp, link)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.monotonic() + RUN_S
    sent = 0
    print("ready", flush=True)

    def send(data: bytes) -> None:
        nonlocal sent
        try:
            sent += os.write(master, data)
        except BlockingIOError:
            time.sleep(0.001)  # nobody reads: a real UART drops, this one waits a little

    os.set_blocking(master, False)
    if case == "console-endless-login":
        send(ESCAPES + b"\r\nlogin: ")
    elif case == "console-escapes":
        send(ESCAPES + b"\r\n# ")
    while not stop and time.monotonic() < end:
        if case == "console-flood":
            if sent < 100 << 20:
                send(os.urandom(4096) + ESCAPES)
            else:
                time.sleep(0.1)
            continue
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            continue
        try:
            typed = os.read(master, 4096)
        except (BlockingIOError, OSError):
            continue
        for _ in range(typed.count(b"\r") + typed.count(b"\n")):
            if case == "console-endless-login":
                send(ESCAPES + b"\r\nLogin incorrect\r\nlogin: ")
            else:
                send(ESCAPES * 16 + b"\r\n# ")
    os.unlink(link)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m rig.sim.hostile_console --link PATH --case CASE``."""
    ap = argparse.ArgumentParser(prog="rig.sim.hostile_console")
    ap.add_argument("--link", required=True)
    ap.add_argument("--case", required=True, choices=CASES)
    args = ap.parse_args(argv)
    return serve(args.link, args.case)


if __name__ == "__main__":
    sys.exit(main())
