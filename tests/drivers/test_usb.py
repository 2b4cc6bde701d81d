"""USB: descriptor bytes parsed like a host stack, debug/flash interfaces named by class triple."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import usb.core

from drivers.errors import DeviceError
from drivers.usb import classify, enumerate_bus, find_device, parse_configuration
from rig.sim.usbgadget import configuration, device_descriptor, endpoint, interface, write_gadget
from tests.conftest import rig


def test_simulated_bus_enumerates_through_pyusb(tmp_path: Path) -> None:
    write_gadget(tmp_path, "cam-v", "violating", "SER-1")
    write_gadget(tmp_path, "cam-c", "compliant", "SER-2")
    devs = {d.serial: d for d in enumerate_bus(f"sim:{tmp_path}")}
    v = devs["SER-1"]
    assert (v.vidpid, v.product_name) == ("18d1:4ee7", "SimCam V1")
    assert [i.triple() for i in v.interfaces] == ["ff/ff/00", "ff/42/01", "02/02/01", "0a/00/00"]
    assert v.interfaces[1].name == "ADB Interface"  # a string descriptor fetched by control transfer
    assert v.where(v.interfaces[1]) == "18d1:4ee7 if 1 class ff/42/01"
    assert [d.serial for d in find_device(f"sim:{tmp_path}", serial="SER-2")] == ["SER-2"]
    assert find_device(f"sim:{tmp_path}", vendor=0x18D1, product=0x4EE0) == []


@pytest.mark.parametrize("triple,name", [((0xFF, 0x42, 0x01), "adb"), ((0xFF, 0x42, 0x03), "fastboot"), ((0xFE, 0x01, 0x02), "dfu"),
                                         ((0x02, 0x02, 0x01), "cdc-acm"), ((0x08, 0x06, 0x50), "mass-storage")])
def test_classification(triple, name) -> None:
    assert classify(*triple)[0] == name


@pytest.mark.parametrize("triple", [(0x0E, 0x01, 0x00), (0x03, 0x00, 0x00), (0xFF, 0x42, 0x02), (0xFF, 0xFF, 0x00)])
def test_ordinary_interfaces_are_not_flagged(triple) -> None:
    assert classify(*triple) is None


def test_malformed_descriptors_are_bounded(tmp_path: Path) -> None:
    good = configuration([interface(0, 0xFF, 0x42, 0x01, [endpoint(0x81), endpoint(0x01)])], 1)
    parsed = parse_configuration(good + b"\x40\x04")  # a trailing descriptor claiming 64 bytes
    assert len(parsed["interfaces"]) == 1 and len(parsed["interfaces"][0][0].endpoints) == 2
    with pytest.raises(ValueError):
        parse_configuration(b"\x09\x04" + b"\x00" * 7)  # no configuration descriptor
    (tmp_path / "bad.json").write_text(json.dumps({"device": "1201", "configurations": []}))
    (tmp_path / "ok.json").write_text(json.dumps({"device": device_descriptor(0x1209, 0x0002).hex(), "configurations": [good.hex()],
                                                  "strings": {"0": "04030904"}}))
    assert [d.vidpid for d in enumerate_bus(f"sim:{tmp_path}")] == ["1209:0002"]  # garbage device not enumerated


def test_unsupported_request_stalls(tmp_path: Path) -> None:
    write_gadget(tmp_path, "cam-v", "violating", "SER-1")
    from drivers.usb import SimBackend

    dev = next(iter(usb.core.find(find_all=True, backend=SimBackend(tmp_path))))
    with pytest.raises(usb.core.USBError):
        dev.ctrl_transfer(0x40, 0x01, 0, 0, b"")


def test_missing_bus_is_named(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="does not exist"):
        enumerate_bus(f"sim:{tmp_path / 'nope'}")


def test_rig_devices_lists_the_simulated_bus(tmp_path: Path) -> None:
    write_gadget(tmp_path, "cam-d", "debug-nonstd", "SER-3")
    res = rig("devices", "--usb-bus", f"sim:{tmp_path}")
    assert res.returncode == 0, res.stderr
    assert "18d1:4ee0" in res.stdout and "class ff/42/03 fastboot  <- fastboot" in res.stdout
    assert "serial ports" in res.stdout
