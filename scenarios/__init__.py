"""Scenarios: one module per check, registered here by stable id (see results.md)."""

from __future__ import annotations

from rig.scenario import Scenario
from scenarios.debug_ports import DebugPorts

#: Every scenario privrig can run, by stable id, in the order a run takes them.
REGISTRY: dict[str, type[Scenario]] = {cls.id: cls for cls in (DebugPorts,)}

#: Ids from the contract that no module implements yet (reported, never silently dropped).
PLANNED = ("interface-auth", "channel-encryption", "camera-shutter", "deidentification", "uninstall-wipe", "storage-at-rest")
