"""Scenarios: one module per check, registered here by stable id (see results.md)."""

from __future__ import annotations

from rig.scenario import Scenario
from scenarios.channel_encryption import ChannelEncryption
from scenarios.debug_ports import DebugPorts
from scenarios.interface_auth import InterfaceAuth

#: Every scenario privrig can run, by stable id, in the order a run takes them.
REGISTRY: dict[str, type[Scenario]] = {cls.id: cls for cls in (DebugPorts, InterfaceAuth, ChannelEncryption)}

#: Ids from the contract that no module implements yet (reported, never silently dropped).
PLANNED = ("camera-shutter", "deidentification", "uninstall-wipe", "storage-at-rest")
