"""Port scanner driver: Debian's nmap driven through python-nmap.

Guarantees: the scan is bounded in time (``--host-timeout`` plus a hard kill), the
exact nmap XML is returned for the evidence, and a target that answered on no port at
all is reported as such (``responded == 0``) so a switched-off device is never taken
for a closed one.
"""

from __future__ import annotations

import os
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import nmap

from drivers.errors import ComponentMissing, DeviceError


@dataclass(frozen=True)
class OpenPort:
    port: int
    proto: str
    service: str
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    reason: str = ""
    tunnel: str = ""
    method: str = ""  # "probed" (nmap talked to it) or "table" (a guess from the port number)

    @property
    def identified(self) -> str | None:
        """nmap's service name if nmap identified it by talking to it, never a port-number guess."""
        return self.service if self.method == "probed" and self.service else None

    @property
    def label(self) -> str:
        """Human name of what answers, e.g. ``telnet (BusyBox telnetd)``; ``?`` marks a port-table guess."""
        extra = " ".join(x for x in (self.product, self.version) if x)
        guess = "?" if self.method != "probed" else ""
        name = ("ssl/" if self.tunnel == "ssl" else "") + (self.service or "unknown") + guess
        return f"{name} ({extra})" if extra else name


@dataclass
class ScanResult:
    address: str
    proto: str
    open: list[OpenPort]
    responded: int  # ports that answered at all (open or closed)
    filtered: int
    xml: bytes
    command: str
    elapsed_s: float
    host_state: str = "unknown"
    notes: list[str] = field(default_factory=list)
    open_filtered: list[int] = field(default_factory=list)  # UDP: no answer, nothing refused either

    @property
    def open_ports(self) -> list[int]:
        return sorted(p.port for p in self.open)


def nmap_path() -> str | None:
    return shutil.which("nmap")


#: UDP ports where debug, flashing and management services live on embedded devices
#: (TFTP, SNMP, IPMI/RMCP, SSDP, mDNS, CoAP, the VxWorks WDB debug agent).
DEBUG_UDP = (69, 161, 623, 1900, 5353, 5683, 17185)


def top_udp_ports(n: int = 100, services: str = "/usr/share/nmap/nmap-services") -> list[int]:
    """The ``n`` UDP ports nmap's frequency table ranks highest, plus :data:`DEBUG_UDP`."""
    ranked: list[tuple[float, int]] = []
    try:
        with open(services, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) >= 3 and parts[1].endswith("/udp"):
                    try:
                        ranked.append((float(parts[2]), int(parts[1].split("/")[0])))
                    except ValueError:
                        continue
    except OSError:
        pass
    top = [port for _, port in sorted(ranked, reverse=True)[:n]]
    return sorted(set(top) | set(DEBUG_UDP))


def _expand_ports(spec: str) -> list[int]:
    """``"9,17,67-69"`` -> ``[9, 17, 67, 68, 69]`` (nmap's port range notation)."""
    out: list[int] = []
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        if lo.isdigit() and (hi.isdigit() or not dash):
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _parse(xml: bytes, proto: str) -> tuple[list[OpenPort], int, int, str, list[int]]:
    root = ET.fromstring(xml)
    host = root.find("host")
    if host is None:
        return [], 0, 0, "down", []
    state_el = host.find("status")
    hstate = state_el.get("state", "unknown") if state_el is not None else "unknown"
    ports_el = host.find("ports")
    opened: list[OpenPort] = []
    open_filtered: list[int] = []
    responded = filtered = 0
    if ports_el is None:
        return opened, 0, 0, hstate, open_filtered
    for extra in ports_el.findall("extraports"):
        count = int(extra.get("count", "0"))
        st = extra.get("state", "")
        if st == "closed":
            responded += count
        elif "filtered" in st:
            filtered += count
            if st == "open|filtered":  # nmap folds many such ports here; the reasons list them
                for why in extra.findall("extrareasons"):
                    open_filtered.extend(_expand_ports(why.get("ports", "")))
    for p in ports_el.findall("port"):
        if p.get("protocol") != proto:
            continue
        st_el = p.find("state")
        st = st_el.get("state", "") if st_el is not None else ""
        reason = st_el.get("reason", "") if st_el is not None else ""
        if st == "open":
            responded += 1
            svc = p.find("service")
            opened.append(
                OpenPort(
                    port=int(p.get("portid", "0")),
                    proto=proto,
                    service=svc.get("name", "") if svc is not None else "",
                    product=svc.get("product", "") if svc is not None else "",
                    version=svc.get("version", "") if svc is not None else "",
                    extrainfo=svc.get("extrainfo", "") if svc is not None else "",
                    reason=reason,
                    tunnel=svc.get("tunnel", "") if svc is not None else "",
                    method=svc.get("method", "") if svc is not None else "",
                )
            )
        elif st == "closed":
            responded += 1
        elif "filtered" in st:
            filtered += 1
            if st == "open|filtered":
                open_filtered.append(int(p.get("portid", "0")))
    return opened, responded, filtered, hstate, open_filtered


class PortScanner:
    """Runs nmap against one address at a time."""

    def __init__(self, timeout_s: float = 900.0):
        self.timeout_s = timeout_s
        if nmap_path() is None:
            raise ComponentMissing("nmap is not installed on the bench host (apt-get install nmap; scripts/setup does it)")
        try:
            self._nm = nmap.PortScanner()
        except nmap.PortScannerError as exc:
            raise ComponentMissing(f"nmap cannot be run: {exc}") from None

    def scan_tcp(self, address: str, ports: str = "1-65535", version: bool = False) -> ScanResult:
        """Scan TCP ``ports`` of ``address`` (SYN scan as root, connect scan otherwise).

        With ``version`` nmap's service detection names what answers on each open port.
        Returns the parsed result with nmap's XML (``responded == 0`` when no port answered
        at all); raises :class:`DeviceError` when nmap itself failed.
        """
        scan_type = "-sS" if os.geteuid() == 0 else "-sT"
        host_timeout = int(self.timeout_s)
        args = [scan_type, "-Pn", "-n", "-T4", "--max-retries", "2", "--min-rate", "1000", "--reason", "--host-timeout", f"{host_timeout}s"]
        if version:
            args += ["-sV", "--version-intensity", "5"]
        return self._run(address, ports, args, "tcp")

    def scan_udp(self, address: str, ports: list[int]) -> ScanResult:
        """UDP scan of ``ports`` (nmap sends protocol payloads where it knows one).

        ``open`` ports answered; ``open_filtered`` ones neither answered nor were refused
        (ICMP port unreachable), so a probe has to speak their protocol to tell.
        """
        args = ["-sU", "-Pn", "-n", "-T4", "--max-retries", "1", "--reason", "--host-timeout", f"{int(self.timeout_s)}s"]
        return self._run(address, ",".join(str(p) for p in sorted(set(ports))), args, "udp")

    def identify_tcp(self, address: str, ports: list[int]) -> ScanResult:
        """nmap service detection (``-sV``) on the given open ``ports`` only."""
        scan_type = "-sS" if os.geteuid() == 0 else "-sT"
        # a second opinion only: bounded tighter than the scan (single-threaded servers make -sV crawl)
        args = [scan_type, "-Pn", "-n", "-sV", "--version-intensity", "5", "--reason", "--host-timeout", f"{int(min(self.timeout_s, 120))}s"]
        return self._run(address, ",".join(str(p) for p in ports), args, "tcp")

    def _run(self, address: str, ports: str, args: list[str], proto: str) -> ScanResult:
        start = time.monotonic()
        try:
            self._nm.scan(hosts=address, ports=ports, arguments=" ".join(args), timeout=int(self.timeout_s) + 60)
        except nmap.PortScannerTimeout:
            raise DeviceError(f"nmap scan of {address} did not finish within {self.timeout_s + 60:g} s") from None
        except nmap.PortScannerError as exc:
            raise DeviceError(f"nmap failed on {address}: {str(exc).strip()[:300]}") from None
        elapsed = time.monotonic() - start
        raw = self._nm.get_nmap_last_output()
        xml = raw if isinstance(raw, bytes) else str(raw).encode()
        try:
            opened, responded, filtered, hstate, open_filtered = _parse(xml, proto)
        except ET.ParseError as exc:
            raise DeviceError(f"nmap XML for {address} unreadable: {exc}") from None
        result = ScanResult(address, proto, sorted(opened, key=lambda p: p.port), responded, filtered, xml, self._nm.command_line(), elapsed, hstate,
                            open_filtered=sorted(open_filtered))
        if proto == "tcp" and responded == 0:
            result.notes.append(f"no TCP port of {address} answered (all {filtered} filtered): device off, unplugged or wrong address?")
        return result
