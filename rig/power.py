"""Power strategy: switch a device off and on and wait until it is back (labgrid's strategy,
in small: it brings the device into a state with the drivers it has).

A device is power-cycled by its ``power-off`` and ``power-on`` actions (a relay, a PDU or a
lab power supply, ``via: host``) or by one ``power-cycle`` action (a PDU's cycle command
``via: host``, or a soft reboot ``via: ssh`` / ``serial``: the session it is sent on is
expected to drop). ``power.wait_for`` in the device config says what "back" means: the
network address answering on a declared TCP port, an SSH login, or a console prompt.
Every wait is bounded by ``power.timeout_s``.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable

from drivers.errors import CommandTimeout, DeviceError, LinkLost
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


@dataclass
class Cycle:
    """One power cycle: how, and when power came back (``time.monotonic()``)."""

    how: str
    on_at: float
    off_s: float


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
    try:
        if "power-off" in acts and "power-on" in acts:
            run_action(ctx, "power-off")
            time.sleep(pw.off_s)
            run_action(ctx, "power-on")
            off_s = pw.off_s
        else:
            action = acts["power-cycle"]
            try:
                run_action(ctx, "power-cycle", check=action.via == "host")
            except (LinkLost, CommandTimeout) as exc:  # a reboot drops the session it was typed on
                ctx.step("power-cycle dropped its session, as a reboot does", reason=exc.reason)
            off_s = 0.0
    except PowerError:
        raise
    except DeviceError as exc:
        raise PowerError(f"power cycle of {ctx.device_name} failed: {exc.reason}") from None
    on_at = time.monotonic()
    if on_power_on is not None:
        on_power_on()
    return Cycle(how, on_at, off_s)


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
    dev = ctx.device
    if wait_for == "console":
        p = dev.serial.prompts  # type: ignore[union-attr]
        con = ctx.serial()
        con.write(b"\r")
        res = con.expect({"login": p.login, "shell": p.shell, "password": p.password, "bootloader": p.bootloader}, timeout)
        return (res.name is not None), (f"console showed a {res.name} prompt" if res.name else "no console prompt")
    if wait_for == "ssh":
        try:
            ctx.ssh().run("true", timeout=timeout)
            return True, "ssh login"
        except DeviceError as exc:
            return False, exc.reason
    ports = [p.port for p in dev.network.open_ports if p.proto == "tcp"] if dev.network else []  # type: ignore[union-attr]
    host = str(dev.network.address) if dev.network else dev.ssh.host  # type: ignore[union-attr]
    if dev.ssh is not None and dev.ssh.port not in ports:
        ports.insert(0, dev.ssh.port)
    for port in ports[:4]:
        try:
            with socket.create_connection((host, port), timeout=min(timeout, 2.0)):
                return True, f"{host}:{port} answered"
        except OSError as exc:
            last = f"{host}:{port}: {exc.strerror or type(exc).__name__}"
    return False, last if ports else "no port to knock on"
