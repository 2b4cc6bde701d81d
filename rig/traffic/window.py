"""A capture around a piece of work: tcpdump on the device's capture interface while the work
runs (and at least ``min_s``), the pcap sealed into the bundle, and every flow judged.

Used by the scenarios that watch a connection the device makes on its own: the update fetch
(firmware-update) and the uplink to its cloud (server-auth).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

from drivers.capture import CaptureStats, PacketCapture
from drivers.errors import DeviceError
from rig.scenario import ScenarioContext
from rig.traffic.flows import CaptureError
from rig.traffic.verdict import Analysis, Channel, FlowReport, analyse_capture

#: channels a flow was judged by (the rest: control, empty, undetermined)
JUDGED = (Channel.ENCRYPTED, Channel.PLAINTEXT, Channel.WEAK, Channel.OBFUSCATED)


@dataclass
class Window:
    """What one capture window saw: the flows, tcpdump's counters, and the evidence paths."""

    analysis: Analysis
    stats: CaptureStats
    evidence: list[str]

    def flows_to(self, address: str, port: int | None = None) -> list[FlowReport]:
        """Flows between the device and ``address`` (on ``port`` at that end, if given)."""
        out = []
        for f in self.analysis.flows:
            for end in (f.server, f.client):
                if end[0] == address and (port is None or end[1] == port):
                    out.append(f)
                    break
        return out

    @property
    def complete(self) -> bool:
        """Nothing dropped, the pcap read to its end, no flow left untracked."""
        return bool(self.stats.dropped == 0 and not self.stats.truncated and self.analysis.stopped is None and not self.analysis.flow_limit_reached)


def capture_window(ctx: ScenarioContext, name: str, work: Callable[[], None], min_s: float) -> Window:
    """Capture the device's traffic into ``<name>.pcap`` while ``work`` runs and for at least
    ``min_s`` seconds, then judge it (``<name>-flows.json``). Raises :class:`DeviceError` when
    the capture cannot start or be read; ``work``'s own exceptions pass through, the pcap kept."""
    net = ctx.device.network
    if net is None or net.capture_interface is None:
        raise DeviceError(f"{ctx.device_name}: no network.capture_interface: the rig cannot see the device's traffic")
    pcap = f"{name}.pcap"
    stream = ctx.folder.open_stream(pcap, "application/vnd.tcpdump.pcap")
    cap = PacketCapture(net.capture_interface, net.address, stream, max_bytes=ctx.device.capture.max_mb << 20)
    try:
        cap.start()
        t0 = time.monotonic()
        work()
        left = min_s - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
    finally:
        stats = cap.stop() if cap.started else None
        ctx.folder.adopt(stream)
    if stats is None:
        raise DeviceError(f"{ctx.device_name}: capture did not start")
    try:
        analysis = analyse_capture(stream.path)
    except CaptureError as exc:
        raise DeviceError(f"the capture cannot be read: {exc}") from None
    flows = f"{name}-flows.json"
    ctx.artifact(flows, json.dumps({"capture": stats.to_dict(), **analysis.to_dict()}, indent=1).encode(), "application/json")
    return Window(analysis, stats, ctx.evidence_of(pcap, flows))
