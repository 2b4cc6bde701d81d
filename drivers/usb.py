"""USB driver (pyusb): enumerate a device's interfaces and name the debug and flashing ones.

Two buses, one code path: ``libusb`` (real hardware, pyusb's libusb1 backend) and
``sim:DIR`` (the simulated bench), a pyusb backend that serves *raw descriptor bytes*
(the answers a device gives to GET_DESCRIPTOR) from files in DIR and parses them the
way a host stack does. Everything above the backend (``usb.core``, string descriptors,
configuration and interface iteration) is pyusb's own.

Guarantees: descriptors are parsed with bounds checks (a malformed one is skipped, never
trusted past its end); string descriptors are bounded (255 bytes) and escaped.
"""

from __future__ import annotations

import json
import struct
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import usb.backend
import usb.core
import usb.util

from drivers.errors import ComponentMissing, DeviceError
from drivers.transcript import escape_bytes

#: (class, subclass, protocol) -> (name, what it gives, severity). ``None`` matches any.
INTERFACE_KINDS: tuple[tuple[tuple[int, int | None, int | None], str, str, str], ...] = (
    ((0xFF, 0x42, 0x01), "adb", "Android Debug Bridge: a shell and file access over USB", "high"),
    ((0xFF, 0x42, 0x03), "fastboot", "fastboot: flash or boot any image over USB", "critical"),
    ((0xFE, 0x01, None), "dfu", "USB DFU: firmware download/upload over USB", "critical"),
    ((0x02, 0x02, None), "cdc-acm", "CDC-ACM serial port: a console over USB", "high"),
    ((0x08, None, None), "mass-storage", "USB mass storage: device storage readable over USB", "medium"),
)


def classify(cls: int, sub: int, proto: int) -> tuple[str, str, str] | None:
    """(name, description, severity) of a debug/flashing/storage interface, else None."""
    for (c, s, p), name, what, sev in INTERFACE_KINDS:
        if c == cls and (s is None or s == sub) and (p is None or p == proto):
            return name, what, sev
    return None


@dataclass(frozen=True)
class UsbInterface:
    number: int
    alt: int
    cls: int
    sub: int
    proto: int
    name: str | None

    def triple(self) -> str:
        return f"{self.cls:02x}/{self.sub:02x}/{self.proto:02x}"


@dataclass
class UsbDevice:
    vendor: int
    product: int
    bus: int | None
    address: int | None
    manufacturer: str | None
    product_name: str | None
    serial: str | None
    interfaces: list[UsbInterface] = field(default_factory=list)

    @property
    def vidpid(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"

    def where(self, intf: UsbInterface) -> str:
        """The ``usb`` field of a finding, e.g. ``18d1:4ee7 if 1 class ff/42/01``."""
        return f"{self.vidpid} if {intf.number} class {intf.triple()}"


# -- descriptor parsing ---------------------------------------------------------------

def _descriptors(blob: bytes) -> Iterator[bytes]:
    """Split a configuration blob into descriptors, stopping at the first malformed one."""
    i = 0
    while i + 2 <= len(blob):
        length = blob[i]
        if length < 2 or i + length > len(blob):
            return
        yield blob[i : i + length]
        i += length


def parse_device_descriptor(raw: bytes) -> SimpleNamespace:
    if len(raw) < 18 or raw[1] != 0x01:
        raise ValueError("not a device descriptor")
    f = struct.unpack("<BBHBBBBHHHBBBB", raw[:18])
    names = ("bLength", "bDescriptorType", "bcdUSB", "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol", "bMaxPacketSize0",
             "idVendor", "idProduct", "bcdDevice", "iManufacturer", "iProduct", "iSerialNumber", "bNumConfigurations")
    return SimpleNamespace(**dict(zip(names, f)))


def parse_configuration(blob: bytes) -> dict[str, Any]:
    """A configuration blob -> {"config": ns, "interfaces": [[alt ns, ...], ...]} (endpoints inside)."""
    config = None
    interfaces: dict[int, list[SimpleNamespace]] = {}
    current: SimpleNamespace | None = None
    for d in _descriptors(blob):
        dtype = d[1]
        if dtype == 0x02 and len(d) >= 9:
            t = struct.unpack("<BBHBBBBB", d[:9])
            config = SimpleNamespace(bLength=t[0], bDescriptorType=t[1], wTotalLength=t[2], bNumInterfaces=t[3], bConfigurationValue=t[4],
                                     iConfiguration=t[5], bmAttributes=t[6], bMaxPower=t[7], extra_descriptors=[])
        elif dtype == 0x04 and len(d) >= 9:
            t = struct.unpack("<BBBBBBBBB", d[:9])
            current = SimpleNamespace(bLength=t[0], bDescriptorType=t[1], bInterfaceNumber=t[2], bAlternateSetting=t[3], bNumEndpoints=t[4],
                                      bInterfaceClass=t[5], bInterfaceSubClass=t[6], bInterfaceProtocol=t[7], iInterface=t[8],
                                      extra_descriptors=[], endpoints=[])
            interfaces.setdefault(current.bInterfaceNumber, []).append(current)
        elif dtype == 0x05 and len(d) >= 7 and current is not None:
            t = struct.unpack("<BBBBHB", d[:7])
            current.endpoints.append(SimpleNamespace(bLength=t[0], bDescriptorType=t[1], bEndpointAddress=t[2], bmAttributes=t[3],
                                                     wMaxPacketSize=t[4], bInterval=t[5], bRefresh=0, bSynchAddress=0, extra_descriptors=[]))
        elif current is not None:
            current.extra_descriptors.extend(d)  # class-specific (CDC functional, UVC, ...)
    if config is None:
        raise ValueError("no configuration descriptor")
    config.bNumInterfaces = len(interfaces)
    return {"config": config, "interfaces": [interfaces[k] for k in sorted(interfaces)]}


# -- the simulated bus ----------------------------------------------------------------

class _SimDev:
    def __init__(self, path: Path, index: int):
        data = json.loads(path.read_text())
        self.name = path.stem
        self.device = parse_device_descriptor(bytes.fromhex(data["device"]))
        self.device.bus, self.device.address = 1, index + 2
        self.device.port_number, self.device.port_numbers, self.device.speed = index + 1, (index + 1,), 3
        self.configs = [parse_configuration(bytes.fromhex(c)) for c in data["configurations"]]
        self.strings = {int(k): bytes.fromhex(v) for k, v in data.get("strings", {}).items()}
        self.raw_device = bytes.fromhex(data["device"])
        self.raw_configs = [bytes.fromhex(c) for c in data["configurations"]]


class SimBackend(usb.backend.IBackend):
    """A pyusb backend whose bus is a folder of descriptor files (one device per ``*.json``)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def enumerate_devices(self):  # noqa: D401 - pyusb's interface
        for i, path in enumerate(sorted(self.folder.glob("*.json"))):
            try:
                yield _SimDev(path, i)
            except (ValueError, KeyError, OSError):
                continue  # a device that answers garbage is not enumerated, as on a real bus

    def get_device_descriptor(self, dev: _SimDev):
        return dev.device

    def get_configuration_descriptor(self, dev: _SimDev, config: int):
        return dev.configs[config]["config"]

    def get_interface_descriptor(self, dev: _SimDev, intf: int, alt: int, config: int):
        alts = dev.configs[config]["interfaces"][intf]
        if alt >= len(alts):
            raise IndexError("no such alternate setting")
        return alts[alt]

    def get_endpoint_descriptor(self, dev: _SimDev, ep: int, intf: int, alt: int, config: int):
        return dev.configs[config]["interfaces"][intf][alt].endpoints[ep]

    def open_device(self, dev: _SimDev):
        return dev

    def close_device(self, dev_handle: _SimDev) -> None:
        pass

    def get_configuration(self, dev_handle: _SimDev) -> int:
        return dev_handle.configs[0]["config"].bConfigurationValue

    def ctrl_transfer(self, dev_handle: _SimDev, bmRequestType: int, bRequest: int, wValue: int, wIndex: int, data: array, timeout: int) -> int:
        """Standard GET_DESCRIPTOR (device, configuration, string); anything else stalls."""
        if bmRequestType != 0x80 or bRequest != 0x06:
            raise usb.core.USBError("pipe error (request not supported by the simulated device)", errno=32)
        dtype, index = wValue >> 8, wValue & 0xFF
        if dtype == 0x01:
            payload = dev_handle.raw_device
        elif dtype == 0x02 and index < len(dev_handle.raw_configs):
            payload = dev_handle.raw_configs[index]
        elif dtype == 0x03 and index in dev_handle.strings:
            payload = dev_handle.strings[index]
        else:
            raise usb.core.USBError("pipe error (no such descriptor)", errno=32)
        n = min(len(payload), len(data))
        data[:n] = array("B", payload[:n])
        return n


def backend_for(bus: str):
    """The pyusb backend for a ``bus`` spec: ``libusb`` or ``sim:DIR``."""
    if bus.startswith("sim:"):
        folder = Path(bus[4:])
        if not folder.is_dir():
            raise DeviceError(f"simulated USB bus {folder} does not exist (is the simulated bench up?)")
        return SimBackend(folder)
    if bus == "libusb":
        import usb.backend.libusb1

        be = usb.backend.libusb1.get_backend()
        if be is None:
            raise ComponentMissing("libusb-1.0 is not installed on the bench host (apt-get install libusb-1.0-0)")
        return be
    raise DeviceError(f"unknown USB bus {bus!r} (use libusb or sim:DIR)")


def _string(dev: usb.core.Device, index: int) -> str | None:
    if not index:
        return None
    try:
        text = usb.util.get_string(dev, index)
    except (usb.core.USBError, ValueError, NotImplementedError):
        return None
    return escape_bytes((text or "").encode()[:255]) or None


def enumerate_bus(bus: str) -> list[UsbDevice]:
    """Every device on ``bus`` with its interfaces (all configurations, all alternates)."""
    backend = backend_for(bus)
    found: list[UsbDevice] = []
    try:
        devices = list(usb.core.find(find_all=True, backend=backend))
    except usb.core.NoBackendError as exc:
        raise ComponentMissing(f"no USB backend: {exc}") from None
    for dev in devices:
        ud = UsbDevice(dev.idVendor, dev.idProduct, getattr(dev, "bus", None), getattr(dev, "address", None),
                       _string(dev, dev.iManufacturer), _string(dev, dev.iProduct), _string(dev, dev.iSerialNumber))
        try:
            for cfg in dev:
                for intf in cfg:
                    ud.interfaces.append(UsbInterface(intf.bInterfaceNumber, intf.bAlternateSetting, intf.bInterfaceClass,
                                                      intf.bInterfaceSubClass, intf.bInterfaceProtocol, _string(dev, intf.iInterface)))
        except usb.core.USBError:
            pass  # keep what was read: a device that stalls mid-enumeration still shows its first interfaces
        found.append(ud)
    return found


def find_device(bus: str, serial: str | None = None, vendor: int | None = None, product: int | None = None) -> list[UsbDevice]:
    """Devices on ``bus`` matching every given criterion."""
    return [d for d in enumerate_bus(bus)
            if (serial is None or d.serial == serial) and (vendor is None or d.vendor == vendor) and (product is None or d.product == product)]
