"""Redirecting a device's own connections to the rig, with Debian's nftables.

The bench host is the device's gateway: a packet the device sends to its cloud crosses the
bench host, and a ``nat prerouting`` rule can hand it to a port the rig listens on
(``redirect``). Each device gets its own table, ``ip privrig_<device>``, made when an
interception starts and deleted when it ends, whatever happens. A table left behind by a rig
that was killed is deleted by :func:`sweep`, which the engine calls for every device it is
about to drive (a device is driven by one rig at a time: its lock says so), so a stale
redirect never outlives the next run.

Nothing device-supplied reaches the ruleset: addresses are parsed as IP addresses, ports as
integers, and the table name is derived from the config's device name.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from drivers.errors import ComponentMissing, DeviceError

TABLE_PREFIX = "privrig_"


def nft_path() -> str | None:
    """Where Debian's nft is (``None``: nftables is not installed)."""
    return shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)


def table_name(device: str) -> str:
    """The device's own table."""
    return TABLE_PREFIX + re.sub(r"[^a-z0-9_]", "_", device.lower())[:40]


def _nft(args: list[str], script: str | None = None) -> subprocess.CompletedProcess[str]:
    nft = nft_path()
    if nft is None:
        raise ComponentMissing("nftables is not installed on the bench host (apt-get install nftables; scripts/setup does it)")
    return subprocess.run([nft, *args], input=script, capture_output=True, text=True, timeout=15)


def tables() -> list[str]:
    """The privrig tables present now (``ip`` family)."""
    proc = _nft(["list", "tables", "ip"])
    return [ln.split()[-1] for ln in proc.stdout.splitlines() if ln.startswith("table ip ") and ln.split()[-1].startswith(TABLE_PREFIX)]


def sweep(device: str) -> bool:
    """Delete the device's table if one was left behind; True when there was one. Quiet when
    nftables is not installed (then no rule can have been made)."""
    if nft_path() is None:
        return False
    name = table_name(device)
    if name not in tables():
        return False
    proc = _nft(["delete", "table", "ip", name])
    if proc.returncode != 0:
        raise DeviceError(f"cannot delete the leftover nftables table {name}: {proc.stderr.strip()[:200]}")
    return True


@dataclass(frozen=True)
class Redirect:
    """Connections from ``source`` to ``target:port`` (TCP) go to ``to_port`` on the bench host."""

    source: ipaddress.IPv4Address
    target: ipaddress.IPv4Address
    port: int
    to_port: int

    def rule(self) -> str:
        """The rule, in nft's syntax, from typed values only."""
        return (f"ip saddr {ipaddress.IPv4Address(self.source)} ip daddr {ipaddress.IPv4Address(self.target)} "
                f"tcp dport {int(self.port)} redirect to :{int(self.to_port)}")


class Interception:
    """A context manager: the device's table with ``redirects`` while the block runs, deleted after
    it (an exception, a KeyboardInterrupt: still deleted). Raises :class:`ComponentMissing` without
    nftables and :class:`DeviceError` when the kernel refuses the rules."""

    def __init__(self, device: str, redirects: list[Redirect]):
        self.device = device
        self.table = table_name(device)
        self.redirects = redirects

    def __enter__(self) -> "Interception":
        sweep(self.device)
        script = (f"table ip {self.table} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n"
                  + "".join(f"    {r.rule()}\n" for r in self.redirects) + "  }\n}\n")
        proc = _nft(["-f", "-"], script)
        if proc.returncode != 0:
            raise DeviceError(f"nftables refused the redirect for {self.device}: {proc.stderr.strip()[:300]}")
        return self

    def ruleset(self) -> str:
        """The table as nft lists it (for the evidence)."""
        return _nft(["list", "table", "ip", self.table]).stdout

    def __exit__(self, *exc: object) -> None:
        proc = _nft(["delete", "table", "ip", self.table])
        if proc.returncode != 0 and self.table in tables():
            raise DeviceError(f"cannot delete nftables table {self.table}: {proc.stderr.strip()[:200]}")
