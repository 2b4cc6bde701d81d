"""Scenarios: one module per check, registered here by stable id (see results.md)."""

from __future__ import annotations

from rig.scenario import Scenario
from scenarios.camera_shutter import CameraShutter
from scenarios.channel_encryption import ChannelEncryption
from scenarios.debug_ports import DebugPorts
from scenarios.deidentification import Deidentification
from scenarios.firmware_update import FirmwareUpdate
from scenarios.interface_auth import InterfaceAuth
from scenarios.model_at_rest import ModelAtRest
from scenarios.model_integrity import ModelIntegrity
from scenarios.server_auth import ServerAuth
from scenarios.storage_at_rest import StorageAtRest
from scenarios.uninstall_wipe import UninstallWipe

#: Every scenario privrig can run, by stable id, in the order a run takes them.
REGISTRY: dict[str, type[Scenario]] = {cls.id: cls for cls in (DebugPorts, InterfaceAuth, ChannelEncryption, CameraShutter, Deidentification,
                                                           UninstallWipe, StorageAtRest, ModelAtRest, ModelIntegrity, FirmwareUpdate,
                                                           ServerAuth)}

#: Ids from the contract that no module implements yet (reported, never silently dropped).
PLANNED: tuple[str, ...] = ()
