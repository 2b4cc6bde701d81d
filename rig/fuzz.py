"""Mutation strategies and one-case checks for privrig's untrusted inputs: configs, action
templates, captures and bundles. Shared by the property tests (``tests/``, a small budget
that fits CI) and the longer campaign (``benchmarks/fuzz.py``).

Each ``check_*`` function runs one case and returns ``None`` when privrig behaved (a clean
result or its documented refusal), or a one-line description of the misbehaviour: an
exception other than the documented one, or a wrong answer (a changed bundle verified).
A hang is caught by the caller's time bound.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

#: bytes a mutation inserts: what YAML, format strings and binary formats are made of
SPECIALS = [b"&a ", b"*a", b"<<: *a", b"!!int ", b"!!bool ", b"!!python/object ", b"{", b"}", b"[", b"]", b": ", b"- ", b"\n", b"\t",
            b"'", b'"', b"~", b"{token}", b"{0}", b"{token:>9}", b"{token!r}", b"\x00", b"\xff", b"\x1b[2J", b"%", b"\\", b"#", b"2020-02-30",
            b"a{99999}", b"(" * 50, b"[" * 60]


def mutate(data: bytes, rng: random.Random, edits: int = 3) -> bytes:
    """``data`` with a few random edits: bytes flipped, runs cut, specials inserted, lines duplicated."""
    buf = bytearray(data)
    for _ in range(edits):
        if not buf:
            buf += rng.choice(SPECIALS)
            continue
        pos = rng.randrange(len(buf))
        how = rng.randrange(5)
        if how == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif how == 1:
            del buf[pos:pos + rng.randint(1, 64)]
        elif how == 2:
            buf[pos:pos] = rng.choice(SPECIALS)
        elif how == 3:
            end = buf.find(b"\n", pos)
            start = buf.rfind(b"\n", 0, pos) + 1
            if end > start:
                buf[end:end] = b"\n" + bytes(buf[start:end])
        else:
            del buf[pos:]
    return bytes(buf)


def check_config(text: bytes, path: Path) -> str | None:
    """Load ``text`` as a bench config: a LoadedConfig or a ConfigError whose lines are single
    escaped lines naming the file; anything else is a failure."""
    from rig.config import ConfigError, load_config

    path.write_bytes(text)
    try:
        load_config(path)
    except ConfigError as exc:
        for p in exc.problems:
            line = str(p)
            if "\n" in line or "\x1b" in line or not line.startswith(str(path)):
                return f"config problem line is not one escaped line naming the file: {line[:120]!r}"
    except Exception as exc:  # noqa: BLE001 - this is what the check looks for
        return f"config: {type(exc).__name__}: {str(exc)[:120]}"
    return None


def check_template(command: str) -> str | None:
    """An action command: refused by validation, or rendered with every placeholder into a
    bounded string; anything else is a failure."""
    from pydantic import ValidationError

    from rig.config import Action

    try:
        action = Action.model_validate({"via": "ssh", "command": command})
    except ValidationError:
        return None
    except Exception as exc:  # noqa: BLE001
        return f"template validation: {type(exc).__name__}: {str(exc)[:120]}"
    values = {"token": "privrig-0123456789abcdef0123", "sink_host": "198.18.0.1", "sink_port": "25004", "model": "/data/m.bin"}
    try:
        out = action.render(**values)
    except Exception as exc:  # noqa: BLE001
        return f"template render: {type(exc).__name__}: {str(exc)[:120]}"
    if len(str(out)) > len(command) + 4 * sum(len(v) for v in values.values()) + 64:
        return f"template render grew to {len(str(out))} characters"
    return None


def check_capture(data: bytes, path: Path) -> str | None:
    """Read and judge a capture: an Analysis (perhaps stopped early) or CaptureError."""
    from rig.traffic.flows import CaptureError
    from rig.traffic.verdict import analyse_capture

    path.write_bytes(data)
    try:
        analyse_capture(path)
    except CaptureError:
        return None
    except Exception as exc:  # noqa: BLE001
        return f"capture: {type(exc).__name__}: {str(exc)[:120]}"
    return None


def tamper_bundle(src: Path, dst: Path, rng: random.Random) -> str:
    """A copy of the bundle ``src`` at ``dst`` with one random damage; returns what was done."""
    import os

    shutil.copytree(src, dst, symlinks=True)
    files = sorted(p for p in dst.rglob("*") if p.is_file())
    victim = rng.choice(files)
    rel = victim.relative_to(dst).as_posix()
    how = rng.randrange(7)
    if how == 0:
        data = bytearray(victim.read_bytes() or b"\0")
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        victim.write_bytes(bytes(data))
        return f"flip a bit of {rel}"
    if how == 1:
        victim.unlink()
        return f"delete {rel}"
    if how == 2:
        (victim.parent / "planted.bin").write_bytes(b"x")
        return f"add a file beside {rel}"
    if how == 3:
        victim.unlink()
        victim.symlink_to("/dev/zero")
        return f"{rel} -> /dev/zero"
    if how == 4:
        victim.unlink()
        os.mkfifo(victim)
        return f"{rel} replaced by a FIFO"
    if how == 5:
        victim.write_bytes(victim.read_bytes()[: max(0, victim.stat().st_size // 2)])
        return f"cut {rel} in half"
    (victim.parent / "empty-folder").mkdir()
    return f"add an empty folder beside {rel}"


def check_bundle(bundle: Path, what: str) -> str | None:
    """``rig verify`` on a damaged bundle must say tampered (or not a bundle), never verified."""
    from rig.verify import TAMPERED, UNREADABLE, verify_bundle

    try:
        rep = verify_bundle(bundle)
    except Exception as exc:  # noqa: BLE001
        return f"verify after '{what}': {type(exc).__name__}: {str(exc)[:120]}"
    if rep.status not in (TAMPERED, UNREADABLE):
        return f"verify after '{what}': {rep.status}"
    return None
