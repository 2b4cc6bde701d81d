"""Drivers: *how* to talk to a device over one transport or instrument.

Each driver takes a resource from the config (where the thing is) and a transcript
sink (where the evidence goes). Drivers raise :class:`drivers.errors.DeviceError`
subclasses with one readable line; they never hang: every wait has a deadline.
"""
