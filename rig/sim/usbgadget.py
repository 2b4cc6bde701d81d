"""USB descriptors of the simulated devices: the bytes a real gadget answers GET_DESCRIPTOR with.

``write_gadget`` puts ``<device>.json`` (hex of the device descriptor, each full
configuration descriptor, each string descriptor) into the simulated bus folder that
:class:`drivers.usb.SimBackend` serves. IDs are those of real products of each kind
(Google's ADB/fastboot IDs, pid.codes' test IDs for the camera).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


def device_descriptor(vid: int, pid: int, bcd: int = 0x0100, cls: int = 0, sub: int = 0, proto: int = 0) -> bytes:
    return struct.pack("<BBHBBBBHHHBBBB", 18, 0x01, 0x0200, cls, sub, proto, 64, vid, pid, bcd, 1, 2, 3, 1)


def interface(num: int, cls: int, sub: int, proto: int, endpoints: list[bytes], string: int = 0, alt: int = 0, extra: bytes = b"") -> bytes:
    return struct.pack("<BBBBBBBBB", 9, 0x04, num, alt, len(endpoints), cls, sub, proto, string) + extra + b"".join(endpoints)


def endpoint(address: int, attributes: int = 0x02, max_packet: int = 512, interval: int = 0) -> bytes:
    return struct.pack("<BBBBHB", 7, 0x05, address, attributes, max_packet, interval)


def configuration(interfaces: list[bytes], n_interfaces: int) -> bytes:
    body = b"".join(interfaces)
    return struct.pack("<BBHBBBBB", 9, 0x02, 9 + len(body), n_interfaces, 1, 0, 0x80, 250) + body


def string_descriptor(text: str) -> bytes:
    raw = text.encode("utf-16-le")
    return bytes([2 + len(raw), 0x03]) + raw


BULK = lambda n: [endpoint(0x80 | n), endpoint(n)]  # noqa: E731 - a pair of bulk endpoints


def gadget_for(profile: str, serial: str) -> dict | None:
    """Descriptors of the USB port a simulated device of ``profile`` exposes (None: no USB)."""
    cdc_functional = bytes([5, 0x24, 0x00, 0x10, 0x01])  # CDC header functional descriptor
    if profile == "compliant":  # a plain UVC camera: video control + video streaming
        dev = device_descriptor(0x1209, 0x0001, cls=0xEF, sub=0x02, proto=0x01)
        intfs = [interface(0, 0x0E, 0x01, 0x00, [endpoint(0x81, 0x03, 16, 6)], string=4), interface(1, 0x0E, 0x02, 0x00, [endpoint(0x82, 0x05, 1024, 1)])]
        strings = {4: "SimCam Video"}
        product = "SimCam C1"
        n = 2
    elif profile == "violating":  # MTP + ADB + a CDC-ACM console, as engineering builds ship
        dev = device_descriptor(0x18D1, 0x4EE7)
        intfs = [
            interface(0, 0xFF, 0xFF, 0x00, BULK(1), string=4),
            interface(1, 0xFF, 0x42, 0x01, BULK(2), string=5),
            interface(2, 0x02, 0x02, 0x01, [endpoint(0x83, 0x03, 16, 9)], extra=cdc_functional),
            interface(3, 0x0A, 0x00, 0x00, BULK(4)),
        ]
        strings = {4: "MTP", 5: "ADB Interface"}
        product = "SimCam V1"
        n = 4
    elif profile == "debug-nonstd":  # a board left in its flashing gadget mode
        dev = device_descriptor(0x18D1, 0x4EE0)
        intfs = [
            interface(0, 0xFF, 0x42, 0x03, BULK(1), string=4),
            interface(1, 0xFE, 0x01, 0x02, [], string=5),
            interface(2, 0x08, 0x06, 0x50, BULK(3), string=6),
        ]
        strings = {4: "fastboot", 5: "DFU", 6: "userdata"}
        product = "SimCam D1"
        n = 3
    else:
        return None
    all_strings = {0: bytes([4, 0x03, 0x09, 0x04]), 1: string_descriptor("privrig simulated"), 2: string_descriptor(product), 3: string_descriptor(serial)}
    all_strings.update({k: string_descriptor(v) for k, v in strings.items()})
    return {"device": dev.hex(), "configurations": [configuration(intfs, n).hex()], "strings": {str(k): v.hex() for k, v in all_strings.items()}}


def write_gadget(bus_dir: Path, device: str, profile: str, serial: str) -> Path | None:
    """Attach the simulated device's USB port to the simulated bus; returns its file."""
    gadget = gadget_for(profile, serial)
    if gadget is None:
        return None
    bus_dir.mkdir(parents=True, exist_ok=True)
    path = bus_dir / f"{device}.json"
    path.write_text(json.dumps(gadget, indent=1))
    return path
