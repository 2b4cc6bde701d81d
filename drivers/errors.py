"""Errors a driver raises. Each carries one line a technician can act on."""

from __future__ import annotations


class DeviceError(Exception):
    """The rig could not carry out a step on the device (verdict ``error``)."""

    kind = "device-error"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Unreachable(DeviceError):
    kind = "device-unreachable"


class AuthFailed(DeviceError):
    kind = "auth-failed"


class HostKeyMismatch(DeviceError):
    kind = "host-key-mismatch"


class LinkLost(DeviceError):
    kind = "link-lost"


class CommandTimeout(DeviceError):
    kind = "timeout"


class ComponentMissing(DeviceError):
    """A tool the rig needs on the bench host (nmap, ...) is not installed."""

    kind = "component-missing"
