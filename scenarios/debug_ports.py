"""debug-ports: no debug, burning or diagnostic interface reachable (T/AI 110.1-2020 6.2.1 b).

Network: every TCP port is scanned with nmap (its XML kept), each open port is probed
by privrig's own protocol probes (transcript kept per port), and compared with the
ports the vendor declares. A debug service is a finding even on a declared port; any
other undeclared open port is a finding too.

Serial console: the console is woken and what answers classified. An unauthenticated
shell (proved by running a command) or a bootloader prompt is a finding on ``serial``.

Parts: ``tcp``, ``udp``, ``bootloader``, ``console``, ``usb``. One the config gives no means
for (no network section, no serial section, no power action for the bootloader, no usb
section) is ``not-configured``, saying what to add. A part is observed when the device
answered on it: a TCP port answered (open or refused), a UDP port
answered, the console spoke a prompt the rig recognised, the USB device enumerated. A
silent console is not observed; a part the rig could not carry out is an error.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import re
import time

import json
from dataclasses import dataclass
from typing import Callable

from drivers.errors import CommandTimeout, DeviceError, Unreachable
from drivers.portscan import DEBUG_UDP, OpenPort, PortScanner, ScanResult, top_udp_ports
from drivers.probes import ProbeResult, probe_tcp, probe_udp
from drivers.transcript import escape_bytes, strip_ansi
from drivers.usb import classify, find_device
from rig import power
from rig.config import DeviceConfig
from rig.coverage import Part, PartState
from rig.results import ArtifactRef
from rig.scenario import Scenario, ScenarioContext, Unconfigured

#: Open ports probed at once (a device with hundreds open ports is still bounded).
PROBE_WORKERS = 16

#: What a bootloader prints while it counts down to autoboot (U-Boot, barebox, CFE, RedBoot ...).
AUTOBOOT = power.AUTOBOOT

#: keys a technician holds down from power-on to stop autoboot: space (U-Boot's default) and Ctrl-C (many vendors' builds)
INTERRUPT_KEYS = b" \x03"

#: A bootloader's command prompt once autoboot is stopped (U-Boot, and U-Boot-likes).
BOOT_PROMPT = r"(?:^|\n)(?:=>|U-Boot>|[A-Za-z0-9_-]{1,20}(?:#|>)) ?$"

#: UDP ports probed at most (each probe costs up to three 1 s waits, run side by side).
UDP_PROBE_LIMIT = 64

#: What a debug service hands out without credentials that makes it critical, not just high.
CRITICAL_ACCESS = {"unauthenticated-shell", "unauthenticated-debugger", "open"}

#: nmap service names that are debug, flashing or diagnostic services by themselves.
NMAP_DEBUG_SERVICES = {"telnet", "jdwp", "adb", "gdb", "gdbserver", "openocd", "tftp", "rlogin", "rsh", "rexec"}


@dataclass
class TcpSurvey:
    """Every open TCP port of one address and what answers on it."""

    scan: ScanResult
    probes: dict[int, ProbeResult]
    ports: list[OpenPort]  # nmap's view, with -sV names where the probes named nothing
    sv_xml: bytes | None


def survey_tcp(address: str, on_step: Callable[..., None] | None = None, on_scan: Callable[[ScanResult], None] | None = None,
               on_probes: Callable[[ScanResult, dict[int, ProbeResult]], None] | None = None) -> TcpSurvey:
    """Scan all 65535 TCP ports, probe every open one by protocol (side by side), and run
    nmap's ``-sV`` only on ports the probes could not name. Bounded in time throughout.
    ``on_scan`` gets the scan the moment it is back and ``on_probes`` the probes before ``-sV``
    starts, so what was seen is recorded even when a device that feeds ``-sV`` slowly runs the
    scenario into its deadline."""
    step = on_step or (lambda *a, **k: None)
    scanner = PortScanner()
    scan = scanner.scan_tcp(address)
    if on_scan is not None:
        on_scan(scan)
    if scan.responded == 0:
        return TcpSurvey(scan, {}, [], None)
    step("probe", ports=scan.open_ports)
    with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
        probes = dict(zip(scan.open_ports, pool.map(lambda port: probe_tcp(address, port), scan.open_ports)))
    if on_probes is not None:
        on_probes(scan, probes)
    unknown = [op.port for op in scan.open if probes[op.port].service is None]
    names: dict[int, OpenPort] = {}
    sv_xml = None
    if unknown:
        step("service detection", ports=unknown)
        sv = scanner.identify_tcp(address, unknown)
        sv_xml = sv.xml
        names = {op.port: op for op in sv.open}
    return TcpSurvey(scan, probes, [names.get(op.port, op) for op in scan.open], sv_xml)


class DebugPorts(Scenario):
    id = "debug-ports"
    title = "Debug and diagnostic interfaces closed"
    clauses = ("T/AI 110.1-2020 6.2.1 b",)

    def applies(self, device: DeviceConfig) -> str | None:
        if device.network is None and device.serial is None and device.usb is None:
            return "the config gives this device no network address, serial console or USB port"
        return None

    def unconfigured(self, device: DeviceConfig) -> list[Unconfigured]:
        """Interfaces the config does not give (network, serial, USB) and, with a console but no
        power action, the bootloader: a bootloader listens only at power-on."""
        out = []
        if device.network is None:
            add = "add a network section (address, open_ports) to scan the device's ports"
            out += [Unconfigured("tcp", "no network section", add), Unconfigured("udp", "no network section", add)]
        if device.serial is None:
            add = "add a serial section (the UART adapter on the board's console pins: port, baud)"
            out += [Unconfigured("bootloader", "no serial section", add + " and a power action"), Unconfigured("console", "no serial section", add)]
        elif power.method(device) is None:
            out.append(Unconfigured("bootloader", "no power action",
                                    "add power-off and power-on via host (a relay or PDU outlet), or power-cycle via ssh or serial (a soft "
                                    "reboot such as {via: ssh, command: reboot}): a bootloader listens only while the device starts"))
        if device.usb is None:
            out.append(Unconfigured("usb", "no usb section", "add a usb section (bus and serial, or vid:pid) to list the device's USB interfaces"))
        return out

    #: what each part checks, for a part declared only to say it is not configured
    WHAT = {"tcp": "every TCP port: what answers, by protocol", "udp": "the UDP ports that matter (nmap's top 100, debug and declared ports)",
            "bootloader": "the console watched from power-on, interrupt keys sent: autoboot must not stop at a bootloader prompt",
            "console": "the serial console: woken and classified", "usb": "the device's USB interfaces"}

    def run(self, ctx: ScenarioContext) -> None:
        dev = ctx.device
        parts = []
        aside = {u.part: u for u in self.unconfigured(dev)}
        if dev.network is not None:
            address = str(dev.network.address)
            tcp = ctx.part("tcp", f"every TCP port of {address}: what answers, by protocol", interface="network")
            udp = ctx.part("udp", f"the UDP ports that matter on {address} (nmap's top 100, debug and declared ports)", interface="network")
            parts.append((("network",), lambda: (self._network(ctx, tcp), self._udp(ctx, udp)), (tcp, udp)))
        boot_found: list[bool] = []
        if dev.serial is not None:
            # first: the power cycle brings the device up (and back) before anything else looks at it
            boot = ctx.part("bootloader", f"serial console {dev.serial.port} watched from power-on, interrupt keys sent: autoboot must not stop "
                            "at a bootloader prompt", interface="serial", path=dev.serial.port)
            console = ctx.part("console", f"serial console {dev.serial.port}: woken and classified", interface="serial", path=dev.serial.port)
            parts.insert(0, (("serial",), lambda: (boot_found.append(self._boot(ctx, boot)), self._serial(ctx, console, bool(boot_found and boot_found[0]))),
                             (boot, console)))
        for name, u in aside.items():
            ctx.part(name, self.WHAT[name], interface={"tcp": "network", "udp": "network", "usb": "usb"}.get(name, "serial")).not_configured(u.missing, u.add)
        if dev.usb is not None:
            usb = ctx.part("usb", f"USB interfaces of the device on {dev.usb.bus}", interface="usb")
            parts.append((("usb",), lambda: self._usb(ctx, usb), (usb,)))
        evidence_for = {"network": "nmap-tcp.xml", "serial": "console.jsonl", "usb": "usb-interfaces.json"}
        for (iface,), carry_out, owned in parts:
            try:
                carry_out()
            except DeviceError as exc:
                evidence = ctx.evidence_of(evidence_for[iface]) if (ctx.folder.dir / evidence_for[iface]).exists() else []
                for p in owned:
                    if p.state is PartState.UNSET:  # what a part already recorded (a bootloader not checked) stays
                        p.error(f"{iface} part not carried out: {exc.reason}", exc.kind, evidence)

    # -- network ----------------------------------------------------------------------
    def _network(self, ctx: ScenarioContext, part: Part) -> None:
        net = ctx.device.network
        assert net is not None
        address = str(net.address)
        ctx.step("tcp scan", address=address, ports="1-65535")
        refs: list[ArtifactRef] = []

        def probed(scan: ScanResult, probes: dict[int, ProbeResult]) -> None:
            for op in scan.open:  # nmap's label from the scan: -sV's names are in nmap-sv.xml
                ctx.artifact(f"probe-{op.port}.txt", _probe_text(op, probes[op.port]), "text/plain")

        survey = survey_tcp(address, on_step=lambda msg, **kw: ctx.step(msg, **kw),
                            on_scan=lambda scan: refs.append(ctx.artifact("nmap-tcp.xml", scan.xml, "application/xml")), on_probes=probed)
        scan, probes, scan_open = survey.scan, survey.probes, survey.ports
        xml_ref = refs[0]
        if survey.sv_xml is not None:
            ctx.artifact("nmap-sv.xml", survey.sv_xml, "application/xml")
        ctx.measure("scan_s", round(scan.elapsed_s, 2))
        ctx.measure("open_tcp", scan.open_ports)
        ctx.measure("nmap_command", scan.command)
        if scan.responded == 0:
            raise Unreachable(scan.notes[0] if scan.notes else f"no answer from {address}")
        declared = {(p.port, p.proto) for p in net.open_ports}
        ctx.measure("services", {str(op.port): probes[op.port].service or op.label for op in scan_open})
        for op in scan_open:
            pr = probes[op.port]
            is_declared = (op.port, "tcp") in declared
            evidence = [ctx.evidence_of(f"probe-{op.port}.txt")[0], xml_ref.path]
            service = pr.service or op.identified or "unknown"
            debug = pr.debug or op.identified in NMAP_DEBUG_SERVICES
            if debug:
                access = pr.detail.get("access")
                sev = "critical" if access in CRITICAL_ACCESS else "high"
                # a shell for anyone who connects is also a login without authentication (6.2.1 d):
                # interface-auth records it as unauthenticated-login on the same port; each names the other
                also = {"also": "interface-auth unauthenticated-login"} if access == "unauthenticated-shell" else {}
                ctx.finding(
                    "open-debug-service", sev,
                    f"{service} answers on {op.port}/tcp{' (declared, still a debug service)' if is_declared else ''}: "
                    f"{pr.summary or op.label}" + (" (interface-auth names it an unauthenticated login)" if also else ""),
                    interface="network", proto="tcp", port=op.port, service=service, evidence=evidence,
                    detail={"nmap": op.label, **pr.detail, **also},
                )
            elif not is_declared:
                ctx.finding(
                    "undeclared-open-port", "medium",
                    f"{op.port}/tcp is open but not declared ({pr.summary if pr.service else op.label})",
                    interface="network", proto="tcp", port=op.port, service=service, evidence=evidence,
                    detail={"nmap": op.label},
                )
        closed = sorted(p for (p, proto) in declared if proto == "tcp" and p not in scan.open_ports)
        if closed:
            ctx.measure("declared_but_closed_tcp", closed)
        named = {str(op.port): probes[op.port].service or op.identified or "unknown" for op in scan_open}
        part.observed(f"{scan.responded} of 65535 TCP ports answered (open or refused); open: "
                      + (", ".join(f"{p}/{n}" for p, n in named.items()) or "none"),
                      answered=scan.responded, open=named, filtered=scan.filtered, evidence=xml_ref.path)

    # -- UDP --------------------------------------------------------------------------
    def _udp(self, ctx: ScenarioContext, part: Part) -> None:
        """The UDP ports that matter: nmap's top 100, debug/management ports, declared ones."""
        net = ctx.device.network
        assert net is not None
        address = str(net.address)
        declared = {p.port for p in net.open_ports if p.proto == "udp"}
        ports = sorted(set(top_udp_ports(100)) | declared)
        ctx.step("udp scan", address=address, ports=len(ports))
        scan = PortScanner().scan_udp(address, ports)
        xml_ref = ctx.artifact("nmap-udp.xml", scan.xml, "application/xml")
        candidates = sorted(set(scan.open_ports) | set(scan.open_filtered))
        ctx.measure("udp_scanned", len(ports))
        ctx.measure("open_udp", scan.open_ports)
        ctx.measure("open_filtered_udp", scan.open_filtered)
        if len(candidates) > UDP_PROBE_LIMIT:
            # a firewall that drops everything makes every port open|filtered: probe what matters
            keep = [p for p in candidates if p in declared or p in DEBUG_UDP or p in scan.open_ports]
            ctx.measure("udp_probe_note", f"{len(candidates)} candidate ports; probed {len(keep)} (answered, declared and debug ports)")
            candidates = keep[:UDP_PROBE_LIMIT]
        ctx.step("udp probe", ports=candidates)
        with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
            probes = dict(zip(candidates, pool.map(lambda port: probe_udp(address, port), candidates)))
        by_port = {op.port: op for op in scan.open}
        for port, pr in probes.items():
            if pr.service is None and port not in by_port:
                continue  # silent and refused nothing: nothing to name, nothing proven open
            op = by_port.get(port)
            ctx.artifact(f"probe-{port}-udp.txt", _probe_text(op or OpenPort(port, "udp", ""), pr, "udp"), "text/plain")
            evidence = [ctx.evidence_of(f"probe-{port}-udp.txt")[0], xml_ref.path]
            if pr.debug:
                ctx.finding(
                    "open-debug-service", "high",
                    f"{pr.service} answers on {port}/udp{' (declared, still a debug service)' if port in declared else ''}: {pr.summary}",
                    interface="network", proto="udp", port=port, service=pr.service, evidence=evidence, detail=dict(pr.detail),
                )
            elif port not in declared:
                ctx.finding(
                    "undeclared-open-port", "medium", f"{port}/udp answers but is not declared ({op.label if op else 'unknown'})",
                    interface="network", proto="udp", port=port, service=(op.identified if op else None) or "unknown", evidence=evidence,
                )
        ctx.measure("services_udp", {str(p): pr.service for p, pr in probes.items() if pr.service})
        named = {str(p): pr.service for p, pr in probes.items() if pr.service}
        seen = {"ports": len(ports), "answered": scan.responded, "open": scan.open_ports, "open_filtered": len(scan.open_filtered),
                "probed": len(candidates), "named": named, "evidence": xml_ref.path}
        if scan.responded == 0 and not named:
            part.unobserved(f"none of {len(ports)} UDP ports answered, not even with ICMP port unreachable, and no probe got a reply: "
                            "closed and filtered ports cannot be told apart (a firewall dropping UDP?)", **seen)
        else:
            part.observed(f"{scan.responded} of {len(ports)} UDP ports answered; {len(candidates)} probed"
                          + (f"; named: {', '.join(f'{p}/{n}' for p, n in named.items())}" if named else ""), **seen)

    # -- USB --------------------------------------------------------------------------
    def _usb(self, ctx: ScenarioContext, part: Part) -> None:
        """Enumerate the device's USB interfaces (pyusb) and flag debug, flashing and storage ones."""
        u = ctx.device.usb
        assert u is not None
        ctx.step("usb enumerate", bus=u.bus)
        found = find_device(u.bus, u.serial, u.vendor, u.product)
        listing = [
            {"vidpid": d.vidpid, "bus": d.bus, "address": d.address, "manufacturer": d.manufacturer, "product": d.product_name, "serial": d.serial,
             "interfaces": [{"number": i.number, "alt": i.alt, "class": i.triple(), "name": i.name} for i in d.interfaces]}
            for d in found
        ]
        ref = ctx.artifact("usb-interfaces.json", json.dumps(listing, indent=2).encode(), "application/json")
        if not found:
            raise Unreachable(f"no USB device matching {u.serial or ''} {u.vendor or ''} on {u.bus} (cable unplugged, or device in another mode?)")
        ctx.measure("usb_interfaces", [f"{d.vidpid} if {i.number} {i.triple()}" for d in found for i in d.interfaces])
        part.observed(f"{len(found)} USB device(s) enumerated: " + "; ".join(f"{d.vidpid} with {len(d.interfaces)} interface(s)" for d in found),
                      interfaces=[f"{d.vidpid} if {i.number} {i.triple()}" for d in found for i in d.interfaces], evidence=ref.path)
        for d in found:
            for i in d.interfaces:
                kind = classify(i.cls, i.sub, i.proto)
                if kind is None:
                    continue
                name, what, severity = kind
                ctx.finding(
                    "usb-debug-interface" if name != "mass-storage" else "usb-mass-storage", severity,
                    f"USB {d.vidpid} interface {i.number} ({i.triple()}{', ' + i.name if i.name else ''}) is {what}",
                    interface="usb", usb=d.where(i), service=name, evidence=[ref.path],
                )

    # -- serial -----------------------------------------------------------------------
    # -- power-on: the bootloader ----------------------------------------------------
    def _boot(self, ctx: ScenarioContext, part: Part) -> bool:
        """Power-cycle the device with the console open, send interrupt keys from power-on and
        watch what answers: a bootloader prompt is a finding. Then power-cycle again without
        keys so the device boots as it would, and wait until it is back. Returns whether the
        bootloader was reached (its finding recorded)."""
        dev = ctx.device
        ser = dev.serial
        assert ser is not None
        how = power.method(dev)
        if how is None:  # not configured (recorded by run): the console is never seen from power-on
            return False
        con = ctx.serial()
        con.drain(quiet_s=0.2, limit_s=1.0)
        evidence = ctx.evidence_of("console.jsonl", "console.raw")
        pw = dev.power
        p = ser.prompts
        cyc = power.cycle(ctx)
        if cyc.down is None:  # a relay on another outlet, a reboot the device ignored: what follows is no power-on
            part.unobserved(f"{cyc.how}: the device was never seen down ({power.means(dev)} kept answering for {pw.down_s:g} s after "
                            "it was switched off): the console cannot be watched from a power-on that did not happen "
                            "(is the relay on the right outlet?)", kind="power-cycle-unseen", evidence=evidence)
            power.wait_back(ctx, since=time.monotonic())
            return False
        ctx.step("watch the console from power-on", keys="space, Ctrl-C every 0.2 s", seconds=pw.boot_watch_s)
        text, heard, state, countdown = strip_ansi(cyc.heard.replace("\r\n", "\n").replace("\r", "\n")), len(cyc.heard), None, False
        deadline = cyc.on_at + pw.boot_watch_s
        next_key = time.monotonic()
        while time.monotonic() < deadline and state is None:
            if time.monotonic() >= next_key:
                con.write(INTERRUPT_KEYS)
                next_key = time.monotonic() + 0.2
            data = con.read_some()
            if not data:
                continue
            heard += len(data)
            text = strip_ansi(text + data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n"))[-8192:]
            countdown = countdown or bool(AUTOBOOT.search(text))
            tail = re.sub(r"(?:[ \t]|\^C|\x03)+$", "", text)
            for name, rx in (("bootloader", BOOT_PROMPT), ("login", p.login), ("shell", p.shell)):
                if re.search(rx, tail, re.MULTILINE):
                    state = name
                    break
        after = round(time.monotonic() - cyc.on_at, 2)
        ctx.measure("power_on_console", {"how": cyc.how, "down": cyc.down, "bytes": heard, "state": state or "none", "countdown": countdown, "after_s": after})
        reached = False
        if state == "bootloader":
            reached = self._bootloader(ctx, con, ser.port, ser.timeout_s, evidence, after_power_on=after)
            part.observed(f"{cyc.how}: seen down ({cyc.down}); from power-on, interrupt keys stopped autoboot at a bootloader prompt after {after:g} s", state=state,
                          countdown=countdown, bytes=heard, evidence=evidence)
            power.cycle(ctx)  # boot again, untouched: leave the device as found
        elif state is not None:
            part.observed(f"{cyc.how}: seen down ({cyc.down}); console watched from power-on with interrupt keys sent; no bootloader prompt, a {state} prompt "
                          f"after {after:g} s" + (" (an autoboot countdown was shown, and the keys did not stop it)" if countdown else ""),
                          state=state, countdown=countdown, bytes=heard, evidence=evidence)
        elif heard:
            part.unobserved(f"{cyc.how}: the console printed {heard} bytes in {pw.boot_watch_s:g} s after power-on and no prompt the rig knows "
                            "(set serial.prompts, or a longer power.boot_watch_s)", kind="console-silent", bytes=heard, evidence=evidence)
        else:
            part.unobserved(f"{cyc.how}: the console stayed silent for {pw.boot_watch_s:g} s after power-on: wrong port or baud rate, or the "
                            "relay did not switch the device?", kind="console-silent", bytes=0, evidence=evidence)
        power.wait_back(ctx, since=time.monotonic())
        con.drain(quiet_s=0.5, limit_s=5.0)  # the boot's output so far: the console part starts from what the device shows now
        return reached

    def _serial(self, ctx: ScenarioContext, part: Part, bootloader_found: bool = False) -> None:
        ser = ctx.device.serial
        assert ser is not None
        con = ctx.serial()
        p = ser.prompts
        prompts = {"bootloader": p.bootloader, "password": p.password, "login": p.login, "shell": p.shell}
        state = None
        heard_text = ""
        for attempt in range(3):  # bounded wake-up: a few returns, each waited for
            ctx.step("wake console", attempt=attempt + 1)
            con.write(b"\r")
            res = con.expect(prompts, ser.timeout_s)
            heard_text = (heard_text + res.text)[-4096:]
            if res.name:
                state = res.name
                break
        ctx.measure("console", state or "silent")
        evidence = ctx.evidence_of("console.jsonl", "console.raw")
        if state is None:
            heard = escape_bytes(heard_text.strip().encode()[-120:]).strip()
            part.unobserved((f"the console printed text no prompt pattern matches ({heard!r}): an unknown prompt, or the wrong baud rate? "
                             "set serial.prompts or serial.baud" if heard else
                             f"the console stayed silent after 3 carriage returns ({ser.baud} baud): wrong port or baud rate, or the device is off?"),
                            kind="console-silent", heard=heard, baud=ser.baud, evidence=evidence)
            return
        if state == "shell":
            # a prompt-like text is no shell until a command runs: a console flooding noise or escapes
            # matches a shell pattern, and a pass on it would say the console was seen
            try:
                status, out = con.run_command("id", timeout=ser.timeout_s)
            except CommandTimeout:
                part.unobserved(f"the console showed what looks like a shell prompt, but `id` typed at it gave no end of output within "
                                f"{ser.timeout_s:g} s: no shell proved (a flood, noise, or a prompt of another program?)",
                                kind="console-silent", state=state, evidence=evidence)
                return
            part.observed(f"the console answered with a shell prompt, and `id` ran (exit {status})", state=state, evidence=evidence)
            ctx.measure("console_id", escape_bytes(out.encode()[:200]))
            if status == 0:
                ctx.finding(
                    "unauthenticated-console", "critical",
                    f"serial console {ser.port} gives a shell without login ({escape_bytes(out.encode()[:80]).strip()})",
                    interface="serial", path=ser.port, evidence=evidence,
                )
            return
        part.observed(f"the console answered with a {state} prompt", state=state, evidence=evidence)
        try:
            if state == "bootloader":
                if not bootloader_found:  # already the bootloader part's finding
                    self._bootloader(ctx, con, ser.port, ser.timeout_s, evidence)
            elif state in ("login", "password"):
                if state == "password":  # a stale password prompt: let it fail back to login
                    con.write(b"\r")
                    con.expect({"login": p.login}, ser.timeout_s + 4)
                note = self._default_credentials(ctx, con, ser, evidence)
                if note:
                    part.unobserved(f"login prompt seen, but {note}: not every default credential was tried", kind="console-silent",
                                    state=state, evidence=evidence)
                else:
                    part.observed("the console answered with a login prompt; every default credential tried was answered and none let the rig in",
                                  state=state, evidence=evidence)
        except DeviceError as exc:  # a prompt seen is not a check done: the part ends as the error that cut it
            part.error(f"console part not carried out: {exc.reason}", exc.kind, evidence)
            raise

    def _bootloader(self, ctx: ScenarioContext, con, port: str, timeout: float, evidence: list[str], after_power_on: float | None = None) -> bool:
        """Interrupt autoboot like a technician would (a key; a carriage return when the power-on
        watch already stopped it at the prompt), and prove the prompt answers (``version``).
        Returns whether the prompt took a command (the critical finding)."""
        ctx.step("interrupt autoboot")
        con.write(b"\r" if after_power_on is not None else b" ")
        res = con.expect({"prompt": BOOT_PROMPT}, timeout)
        if res.name is None:
            con.write(b"\r")
            res = con.expect({"prompt": BOOT_PROMPT}, timeout)
        when = f" {after_power_on:g} s after power-on" if after_power_on is not None else ""
        if res.name is None:
            ctx.finding("bootloader-console", "high", f"serial console {port} stopped at a bootloader prompt{when}; the prompt did not answer",
                        interface="serial", path=port, evidence=evidence)
            return False
        con.drain(quiet_s=0.3, limit_s=2.0)  # keys still queued from the watch make prompts of their own
        con.write(b"version\r")
        ver = con.expect({"prompt": BOOT_PROMPT}, timeout)
        line = next((ln.strip() for ln in ver.text.splitlines() if "boot" in ln.lower() and "version" not in ln.lower()), "")
        ctx.measure("bootloader", escape_bytes(line.encode()[:120]))
        ctx.finding(
            "bootloader-console", "critical",
            f"serial console {port}: autoboot can be interrupted{when} and the bootloader prompt takes commands "
            f"({escape_bytes(line.encode()[:80]) or 'version answered'})",
            interface="serial", path=port, evidence=evidence, detail={"bootloader": escape_bytes(line.encode()[:120]),
                                                                      **({"after_power_on_s": after_power_on} if after_power_on is not None else {})},
        )
        return True

    def _default_credentials(self, ctx: ScenarioContext, con, ser, evidence: list[str]) -> str | None:
        """Try the vendor's default accounts (the device's and the bench's ``credentials:`` files),
        then the bounded built-in list, at the login prompt; stop at the first that works. Every
        password is redacted from the transcripts before it is typed. Returns why the list could
        not be finished (the console stopped answering), or None."""
        p = ser.prompts
        tried = 0
        for entry in ctx.accounts("console"):
            tried += 1
            ctx.step("console login attempt", entry=entry.label)
            con.write(entry.user + "\r")
            res = con.expect({"password": p.password, "shell": p.shell, "login": p.login}, ser.timeout_s)
            if res.name == "password":
                con.write(entry.password + "\r", secret=True, label=f"password {entry.label}")
                # a failed login is answered after the device's delay (busybox: 3 s)
                res = con.expect({"shell": p.shell, "login": p.login}, ser.timeout_s + 5)
            if res.name == "shell":
                status, out = con.run_command("id", timeout=ser.timeout_s)
                con.write(b"exit\r")
                if status == 0:
                    ctx.measure("console_default_credential", entry.index)  # its position in its list, as before
                    ctx.measure("console_default_credential_list", entry.source)
                    ctx.finding(
                        "default-credential-accepted", "critical",
                        f"serial console {ser.port} accepts a default credential: user {entry.user!r}, {entry.label} "
                        f"(password redacted); shell: {escape_bytes(out.encode()[:60]).strip()}",
                        interface="serial", path=ser.port, evidence=evidence,
                        detail={"user": entry.user, "list": entry.source, "list_entry": entry.index,
                                **({"password": entry.password} if ctx.reveal_credentials else {})},
                    )
                    break
            elif res.name is None:
                con.write(b"\r")  # re-synchronise once; a console that stays silent ends the attempts
                if con.expect({"login": p.login}, ser.timeout_s + 4).name is None:
                    note = f"the console stopped answering after {tried} attempt(s)"
                    ctx.measure("console_login_note", note)
                    ctx.measure("console_credentials_tried", tried)
                    return note
        ctx.measure("console_credentials_tried", tried)
        return None


def _probe_text(op: OpenPort, pr: ProbeResult, proto: str = "tcp") -> bytes:
    head = (
        f"port: {op.port}/{proto}\n"
        f"nmap: {escape_bytes(op.label.encode())} (reason {op.reason})\n"
        f"probe: {pr.service or 'unrecognised'}: {pr.summary}\n"
        "--- transcript (> sent, < received; bytes escaped) ---\n"
    )
    return head.encode() + pr.transcript_bytes()
