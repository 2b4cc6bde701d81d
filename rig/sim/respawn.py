"""Keep a simulated device's daemon running, as the device's init would.

``python -m rig.sim.respawn -- ARGV...`` starts ARGV and starts it again when it
exits, at most ``MAX_PER_MIN`` times a minute (then it waits). SIGTERM stops the
daemon and the supervisor.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

MAX_PER_MIN = 120


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m rig.sim.respawn -- ARGV...", file=sys.stderr)
        return 2
    stop = False
    child: subprocess.Popen[bytes] | None = None

    def _term(_sig: int, _frm: object) -> None:
        nonlocal stop
        stop = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    starts: list[float] = []
    while not stop:
        now = time.monotonic()
        starts = [t for t in starts if now - t < 60]
        if len(starts) >= MAX_PER_MIN:
            time.sleep(1.0)
            continue
        starts.append(now)
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        while child.poll() is None and not stop:
            try:
                child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        if stop:
            break
        time.sleep(0.1)
    if child is not None and child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=3)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
