"""cam-hostile's SSH side: a real OpenSSH ``sshd`` whose commands and files attack the client.

The rig reaches a device's storage through its shell (:mod:`drivers.storage`): what the shell
prints, and the names of the files it lists, are the device's to choose. cam-hostile runs
``sshd`` (key login as root, chrooted into a busybox root filesystem of its own, like every
bench device) on one port per case (:data:`SHELL_CASES`): on port 22 the shell is the device's
busybox, over a data tree built to hurt whoever walks it (:func:`hostile_tree`); on the other
ports ``sshd`` answers every command with the attack (``ForceCommand``), whatever the rig asked:

* ``ssh-200mb-output``: 200 MB of random bytes at full speed, exit 0;
* ``ssh-never-ends``: output at full speed that never ends (the device stops it after
  :data:`SHELL_S` seconds: the bench's own loops are bounded);
* ``ssh-escapes``: OSC title, clear screen, OSC 52 clipboard, NUL, invalid UTF-8, markup and
  ``$(...)`` on stdout and stderr, exit 0;
* ``ssh-gzip-bomb``: 1 GiB of zeros gzipped to about 1 MB, followed by the exit marker the
  storage searches read (a device that knows the rig forges it), so the rig decompresses it.

The tree under ``/data``: ``/data/names`` holds files whose paths carry ``</script>``,
``$(touch /tmp/privrig-pwned)``, `` `id` ``, newlines (one forging a listing line), terminal
escapes and invalid UTF-8, with the escapes as content, and one camera frame (:data:`SNAPSHOT`); symlinks out of the tree (``../../..``,
``/etc``), a self loop and a two-link loop, and a FIFO that blocks whoever opens it.
``/data/many`` holds :data:`MANY` entries (hard links, which cost a directory entry each).
"""

from __future__ import annotations

import gzip
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rig.sim.hostile import ESCAPES as _HOSTILE_ESCAPES

#: the device stops an endless command after this long (its own bound; the rig's is shorter)
SHELL_S = 120
#: directory entries under /data/many
MANY = 1_000_000
#: where cam-hostile keeps its keys, sshd config and root filesystem (root-owned: ChrootDirectory)
STATE = Path("/run/privrig-hostile")


@dataclass(frozen=True)
class ShellCase:
    """One SSH port: its name, the command forced on every session (None: the device's shell)."""

    name: str
    command: str | None
    what: str


#: what a hostile device puts in front of a terminal (rig.sim.hostile.ESCAPES), as one line
ESCAPES = _HOSTILE_ESCAPES + b"\n"

SHELL_CASES: dict[int, ShellCase] = {
    22: ShellCase("ssh-hostile-tree", None, "a busybox shell over a tree of hostile names, loops and 1,000,000 entries"),
    2210: ShellCase("ssh-200mb-output", "head -c 209715200 /dev/urandom", "200 MB of output at full speed"),
    2211: ShellCase("ssh-never-ends", f"timeout {SHELL_S} yes 'output that never ends'", "output that never ends"),
    2212: ShellCase("ssh-escapes", "cat /hostile/escapes.bin; cat /hostile/escapes.bin >&2", "terminal escapes, NUL, invalid UTF-8, markup, $(...)"),
    2213: ShellCase("ssh-gzip-bomb", "cat /hostile/bomb.gz; echo '#privrig-exit 0' >&2", "1 GiB of zeros in a 1 MB gzip, exit marker forged"),
}

#: paths under /data/names (as bytes: some are not UTF-8), each a regular file holding ESCAPES
NAMES: tuple[bytes, ...] = (
    b"</script><script>alert(1)</script>.jpg",
    b"$(touch /tmp/privrig-pwned).jpg",
    b"`id`;reboot;.jpg",
    b"two\nlines.jpg",
    b"forged\n0 /etc/shadow",
    b"\x1b]0;pwned\x07\x1b[2J.jpg",
    b"\xff\xfe invalid utf-8.jpg",
    b"...",
    b"plain.jpg",
)


#: a raw camera frame (a JPEG head) under a name with markup, a newline and $(...): storage-at-rest
#: must fail on it, naming the path escaped
SNAPSHOT = b"<b>snap</b>\n$(reboot).jpg"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01"


def hostile_tree(root: Path, many: int = MANY) -> None:
    """Build ``/data`` and ``/hostile`` in the device root ``root`` (see the module docstring);
    idempotent for a tree already built. Hard links keep the many entries at one inode per 60,000."""
    names = root / "data" / "names"
    for raw in NAMES:
        p = os.path.join(os.fsencode(names), raw)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as fh:
            fh.write(ESCAPES)
    for link, target in (("up", "../../.."), ("etc", "/etc"), ("loop", "."), ("a", "b"), ("b", "a")):
        if not (names / link).is_symlink():
            (names / link).symlink_to(target)
    if not (names / "fifo").exists():
        os.mkfifo(names / "fifo")
    many_dir = root / "data" / "many"
    if not (many_dir / "done").exists():
        per_inode = 60_000
        made = 0
        while made < many:
            d = many_dir / f"d{made // per_inode:03d}"
            d.mkdir(parents=True, exist_ok=True)
            src = d / "0"
            src.write_bytes(b"x")
            ds = os.fsencode(d)
            for i in range(1, min(per_inode, many - made)):
                os.link(src, os.path.join(ds, b"%d" % i))
            made += per_inode
        (many_dir / "done").write_text(f"{many}\n")
    frame = os.path.join(os.fsencode(names), SNAPSHOT)
    os.makedirs(os.path.dirname(frame), exist_ok=True)
    with open(frame, "wb") as fh:  # a real find, for storage-at-rest
        fh.write(JPEG + ESCAPES)
    hostile = root / "hostile"
    hostile.mkdir(exist_ok=True)
    (hostile / "escapes.bin").write_bytes(ESCAPES * 4)
    bomb = hostile / "bomb.gz"
    if not bomb.exists():
        with gzip.open(bomb, "wb", compresslevel=9) as fh:
            block = bytes(1 << 20)
            for _ in range(1024):
                fh.write(block)


def sshd_config(state: Path, root: Path, address: str) -> str:
    """The ``sshd_config`` of cam-hostile: key login as root, chrooted, one port per case."""
    from rig.sim.bench import SSHD_QUIET

    lines = [f"Port {p}" for p in SHELL_CASES] + [
        f"ListenAddress {address}",
        f"HostKey {state / 'ssh_host_ed25519_key'}",
        f"PidFile {state / 'sshd.pid'}",
        f"AuthorizedKeysFile {state / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        f"ChrootDirectory {root}",
        *SSHD_QUIET,
    ]
    for port, case in SHELL_CASES.items():
        if case.command:
            lines += [f"Match LocalPort {port}", f"    ForceCommand {case.command}"]
    return "\n".join(lines) + "\n"


def prepare(state: Path = STATE, many: int = MANY) -> Path:
    """Make cam-hostile's SSH state under ``state``: its root filesystem and tree, its host key,
    and a client key the tests log in with (``state/id_ed25519``); returns the root. Idempotent."""
    from rig.config import Identity
    from rig.sim.bench import build_rootfs

    state.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(state, 0o755)
    root = state / "rootfs"
    if not (root / "bin" / "busybox").exists():
        build_rootfs(root, "cam-hostile", Identity(model="Hostile H1", serial="HOSTILE-0001", firmware="6.6.6"))
    hostile_tree(root, many)
    for key, comment in (("ssh_host_ed25519_key", "cam-hostile-hostkey"), ("id_ed25519", "privrig-hostile-client")):
        if not (state / key).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(state / key)],
                           check=True, stdin=subprocess.DEVNULL, timeout=30)
    (state / "authorized_keys").write_bytes((state / "id_ed25519.pub").read_bytes())
    return root


def host_key_line(state: Path = STATE) -> str:
    """The device's host key as a ``ssh-ed25519 AAAA…`` line, to pin in a config."""
    return " ".join((state / "ssh_host_ed25519_key.pub").read_text().split()[:2])


def sshd_argv(state: Path, root: Path, address: str) -> list[str]:
    """Write the config and return the ``sshd`` command line to run in the device's namespace."""
    cfg = state / "sshd_config"
    cfg.write_text(sshd_config(state, root, address))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return ["/usr/sbin/sshd", "-D", "-e", "-f", str(cfg)]


def pwned(state: Path = STATE) -> list[str]:
    """Files that prove something the device sent was run: ``/tmp/privrig-pwned`` on the device
    (a name put into a shell command) or on the bench host."""
    return [str(p) for p in (state / "rootfs" / "tmp" / "privrig-pwned", Path("/tmp/privrig-pwned")) if p.exists()]

