"""Network plumbing of the simulated bench: bridge, veth pairs, namespaces, routes.

Every command is an argv list run without a shell. ``check_subnet_free`` refuses a
subnet that overlaps any route or address this host already has (the host's own
networks must never be shadowed by test hosts).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from dataclasses import dataclass


class SimError(Exception):
    """The simulated bench cannot be built or torn down; the message says why."""


def ip(*args: str, netns: str | None = None, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run ``ip`` (optionally ``ip -n NETNS``) with ``args``; raise :class:`SimError` on failure."""
    exe = shutil.which("ip")
    if exe is None:
        raise SimError("the ip command (iproute2) is not installed")
    argv = [exe] + (["-n", netns] if netns else []) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise SimError(f"{' '.join(argv[1:])}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


@dataclass(frozen=True)
class Route:
    dst: ipaddress.IPv4Network
    dev: str
    table: str
    kind: str


def routes(netns: str | None = None) -> list[Route]:
    """Every IPv4 route of every table (main, local, ...), default routes excluded."""
    proc = ip("-4", "-j", "route", "show", "table", "all", netns=netns)
    out: list[Route] = []
    for r in json.loads(proc.stdout or "[]"):
        dst = r.get("dst", "")
        if dst in ("default", "") or r.get("type") in ("broadcast", "multicast"):
            continue
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0:
            out.append(Route(net, r.get("dev", "?"), str(r.get("table", "main")), r.get("type", "unicast")))
    return out


def check_subnet_free(subnet: ipaddress.IPv4Network, netns: str | None = None, ignore_dev: str | None = None) -> None:
    """Raise :class:`SimError` if ``subnet`` overlaps a route or address of this host."""
    for r in routes(netns):
        if ignore_dev and r.dev == ignore_dev:
            continue
        if r.dst.overlaps(subnet):
            raise SimError(
                f"simulator subnet {subnet} overlaps the existing route {r.dst} on {r.dev} (table {r.table}); "
                "refusing to shadow a network this host uses. Pick another subnet inside 198.18.0.0/15 "
                "(simulator.subnet) or run `rig sim down` if it is a leftover bench."
            )


def netns_exists(name: str) -> bool:
    proc = ip("netns", "list", check=False)
    return any(line.split()[0] == name for line in proc.stdout.splitlines() if line.strip())


def link_exists(name: str, netns: str | None = None) -> bool:
    return ip("link", "show", "dev", name, netns=netns, check=False).returncode == 0


def netns_pids(name: str) -> list[int]:
    proc = ip("netns", "pids", name, check=False)
    return [int(x) for x in proc.stdout.split() if x.isdigit()]


def make_bridge(bridge: str, address: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network) -> None:
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", f"{address}/{subnet.prefixlen}", "dev", bridge)
    ip("link", "set", bridge, "up")


def make_device_netns(ns: str, veth: str, bridge: str, address: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address) -> None:
    """A namespace ``ns`` whose ``eth0`` sits on ``bridge`` with ``address``."""
    ip("netns", "add", ns)
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    ip("link", "set", veth, "master", bridge, "up")
    ip("link", "set", "lo", "up", netns=ns)
    ip("addr", "add", f"{address}/{subnet.prefixlen}", "dev", "eth0", netns=ns)
    ip("link", "set", "eth0", "up", netns=ns)
    ip("route", "add", "default", "via", str(gateway), netns=ns)
