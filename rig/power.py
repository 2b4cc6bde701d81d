"""Power strategy: switch a device off and on and wait until it is back (labgrid's strategy,
in small: it brings the device into a state with the drivers it has).

A device is power-cycled by its ``power-off`` and ``power-on`` actions (a relay, a PDU or a
lab power supply, ``via: host``) or by one ``power-cycle`` action (a PDU's cycle command
``via: host``, or a soft reboot ``via: ssh`` / ``serial``: the session it is sent on is
expected to drop). ``power.wait_for`` in the device config says what "back" means: the
network address answering on a declared TCP port, an SSH login, or a console prompt.
Every wait is bounded by ``power.timeout_s``.

A cycle is *observed* only when the device was seen down and then back: after power-off (or
the reboot command) the rig probes it by the same means as ``wait_for`` until it stops
answering (no port takes a connection, or the console answers nothing to a return, or
prints a boot banner), within ``power.down_s``. A relay on the wrong outlet, or a reboot
command the device ignored, leaves the device answering: :attr:`Cycle.down` is ``None`` and
whatever the cycle was meant to show is not observed.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from typing import Callable

from drivers.errors import CommandTimeout, DeviceError, LinkLost
from drivers.transcript import strip_ansi
from rig.config import DeviceConfig
from rig.scenario import ScenarioContext, run_action


class PowerError(DeviceError):
    """A power action failed, or the device did not come back in time."""

    kind = "power"


def method(device: DeviceConfig) -> str | None:
    """How the rig can power-cycle ``device`` (``None``: it cannot)."""
    acts = device.actions
    if "power-off" in acts and "power-on" in acts:
        return "power-off and power-on (via host)"
    if "power-cycle" in acts:
        return f"power-cycle (via {acts['power-cycle'].via})"
    return None


#: what a console prints only while a device starts: a restart seen from the console
BOOT_SIGNS = re.compile(r"U-Boot \d|Hit any key to stop autoboot|autoboot in|Starting kernel|Booting Linux|Linux version \d|barebox \d|"
                        r"CFE version|RedBoot\(tm\)", re.IGNORECASE)
#: each down probe waits this long for an answer
PROBE_S = 1.0
#: an autoboot countdown ("Hit any key to stop autoboot: 3"): no key may reach the console while it runs
AUTOBOOT = re.compile(r"(?i)(hit|press) (any key|ctrl-c|space|enter|esc)[^\n]{0,40}(stop|interrupt|abort)|autoboot in \d|stop autoboot|"
                      r"== Executing boot script")
#: waiting for a console prompt, the rig listens until the console was quiet this long before it sends a
#: return (U-Boot redraws its countdown every second, so a countdown is never this quiet)
QUIET_S = 2.0
#: after that return, a prompt must show within this long
WAKE_S = 3.0


@dataclass
class Cycle:
    """One power cycle: how, when power came back (``time.monotonic()``), and how the device
    was seen down in between (``None``: it never was, so the cycle is not observed)."""

    how: str
    on_at: float
    off_s: float
    down: str | None = None
    heard: str = ""  # console text the down probe read (a soft reboot's first boot lines)


def means(device: DeviceConfig) -> str | None:
    """What the rig watches to tell the device is up or down: ``power.wait_for`` when the device
    has it, else what it has (SSH, then its network, then its console); ``None``: nothing."""
    have = {"network": device.network is not None or device.ssh is not None, "ssh": device.ssh is not None,
            "console": device.serial is not None}
    if have.get(device.power.wait_for):
        return device.power.wait_for
    return next((m for m in ("ssh", "network", "console") if have[m]), None)


def cycle(ctx: ScenarioContext, on_power_on: Callable[[], None] | None = None) -> Cycle:
    """Switch the device off, wait ``power.off_s``, switch it on; ``on_power_on`` runs right
    after power returns (to start watching the console from its first byte). Raises
    :class:`PowerError` when the device has no power actions or one of them fails."""
    how = method(ctx.device)
    if how is None:
        raise PowerError(f"{ctx.device_name}: no power-off/power-on or power-cycle action: the rig cannot switch the device off and on")
    pw = ctx.device.power
    acts = ctx.device.actions
    ctx.step("power cycle", how=how)
    down: tuple[str | None, str] = (None, "")
    try:
        if "power-off" in acts and "power-on" in acts:
            run_action(ctx, "power-off")
            start = time.monotonic()
            down = _until_down(ctx, max(pw.off_s, pw.down_s))
            time.sleep(max(0.0, pw.off_s - (time.monotonic() - start)))
            run_action(ctx, "power-on")
            off_s = round(time.monotonic() - start, 2)
        else:
            action = acts["power-cycle"]
            try:
                run_action(ctx, "power-cycle", check=action.via == "host")
            except (LinkLost, CommandTimeout) as exc:  # a reboot drops the session it was typed on: expected, and no proof
                ctx.step("power-cycle dropped its session, as a reboot does", reason=exc.reason)
            down = _until_down(ctx, pw.down_s)
            off_s = 0.0
    except PowerError:
        raise
    except DeviceError as exc:
        raise PowerError(f"power cycle of {ctx.device_name} failed: {exc.reason}") from None
    on_at = time.monotonic()
    if down[0] is None:
        ctx.step("the device was never seen down", how=how, down_s=pw.down_s)
    else:
        ctx.step("device seen down", how=down[0])
    if on_power_on is not None:
        on_power_on()
    return Cycle(how, on_at, off_s, down[0], down[1])


def _until_down(ctx: ScenarioContext, limit_s: float) -> tuple[str | None, str]:
    """Probe the device until it is seen down (at most ``limit_s``, at least one probe): how it
    was seen, or ``None``; and the console text read on the way."""
    deadline = time.monotonic() + limit_s
    heard = ""
    for _ in range(10_000):
        seen, text = _down(ctx)
        heard = (heard + text)[-4096:]
        if seen is not None:
            return seen, heard
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return None, heard


def _down(ctx: ScenarioContext) -> tuple[str | None, str]:
    """One probe by :func:`means`: how the device is seen down now (``None``: it answers), and
    what its console printed."""
    how = means(ctx.device)
    if how == "console":
        con = ctx.serial()
        text, end = "", time.monotonic() + 0.3  # a rebooting device's banner, heard before a key could stop its autoboot
        try:
            while time.monotonic() < end:
                text += con.read_some().decode("utf-8", "replace")
                if BOOT_SIGNS.search(text):
                    return "its console prints a boot banner (it restarted)", text
            con.write(b"\r")
        except LinkLost as exc:
            return f"its console is gone ({exc.reason})", text
        end = time.monotonic() + PROBE_S
        while time.monotonic() < end:
            text += con.read_some().decode("utf-8", "replace")
            if BOOT_SIGNS.search(text):
                return "its console prints a boot banner (it restarted)", text
        return (None, text) if text else ("its console answered nothing to a return for 1 s", text)
    if how in ("network", "ssh"):
        host, ports = _knock(ctx.device)
        if not ports:
            return None, ""
        for port in ports[:2]:
            try:
                with socket.create_connection((host, port), timeout=PROBE_S):
                    return None, ""
            except OSError:
                continue
        return f"{host} took no connection on {', '.join(str(p) for p in ports[:2])}", ""
    return None, ""


def _knock(device: DeviceConfig) -> tuple[str | None, list[int]]:
    """The address and TCP ports that say the device is on the network (SSH's first)."""
    host = str(device.network.address) if device.network else device.ssh.host if device.ssh else None
    ports = [p.port for p in device.network.open_ports if p.proto == "tcp"] if device.network else []
    if device.ssh is not None and device.ssh.port not in ports:
        ports.insert(0, device.ssh.port)
    return host, ports


def wait_back(ctx: ScenarioContext, since: float | None = None) -> float:
    """Wait (at most ``power.timeout_s`` from ``since``) until the device is back as
    ``power.wait_for`` says; returns the seconds it took. Raises :class:`PowerError` naming
    what never answered."""
    pw = ctx.device.power
    start = since if since is not None else time.monotonic()
    deadline = start + pw.timeout_s
    ctx.step("wait for the device", wait_for=pw.wait_for, timeout_s=pw.timeout_s)
    last = "nothing tried"
    while time.monotonic() < deadline:
        ok, last = _back(ctx, pw.wait_for, min(5.0, max(0.5, deadline - time.monotonic())))
        if ok:
            took = round(time.monotonic() - start, 2)
            ctx.step("device back", wait_for=pw.wait_for, after_s=took)
            return took
        time.sleep(0.5)
    raise PowerError(f"{ctx.device_name} was not back within {pw.timeout_s:g} s of power-on ({pw.wait_for}: {last})")


def _back(ctx: ScenarioContext, wait_for: str, timeout: float) -> tuple[bool, str]:
    how = means(ctx.device)  # wait_for, unless the device lacks it: then what it has
    if how == "console":
        p = ctx.device.serial.prompts  # type: ignore[union-attr]
        prompts = {"login": p.login, "shell": p.shell, "password": p.password, "bootloader": p.bootloader}
        con = ctx.serial()
        # listen before speaking: a key sent while the bootloader counts down stops the autoboot
        # and leaves the device at its prompt, off the network, for every check after this one
        quiet = min(QUIET_S, timeout)
        start = time.monotonic()
        text = con.drain(quiet_s=quiet, limit_s=timeout)
        tail = strip_ansi(text.replace("\r\n", "\n").replace("\r", "\n"))[-4096:]
        for name, rx in prompts.items():
            if re.search(rx, tail, re.MULTILINE):
                return True, f"console showed a {name} prompt"
        if time.monotonic() - start >= timeout - 0.05 and text:
            return False, "the console is still printing (booting)"
        countdown = AUTOBOOT.search(tail[-400:])
        if countdown and not re.search(r"(?i)booting|starting kernel|executing boot", tail[countdown.end():]):
            return False, "the bootloader is counting down to autoboot (no key sent)"
        con.write(b"\r")  # quiet for QUIET_S: a device already up shows its prompt when woken
        res = con.expect(prompts, min(timeout, WAKE_S))
        return (res.name is not None), (f"console showed a {res.name} prompt" if res.name else "no console prompt")
    if how == "ssh":
        try:
            ctx.ssh().run("true", timeout=timeout)
            return True, "ssh login"
        except DeviceError as exc:
            return False, exc.reason
    if how is None:
        return False, "the device has no network, SSH or console to tell it is back"
    host, ports = _knock(ctx.device)
    last = "no port to knock on"
    for port in ports[:4]:
        try:
            with socket.create_connection((host, port), timeout=min(timeout, 2.0)):
                return True, f"{host}:{port} answered"
        except OSError as exc:
            last = f"{host}:{port}: {exc.strerror or type(exc).__name__}"
    return False, last
