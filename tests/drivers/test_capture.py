"""tcpdump capture on loopback: kernel filter, streaming into the sink, counters, errors."""

from __future__ import annotations

import io
import ipaddress
import socket
import time

import pytest

from drivers.capture import PacketCapture, bpf_filter
from drivers.errors import DeviceError
from rig.traffic.flows import read_flows
from tests.conftest import need_root, need_tools


class Sink(io.BytesIO):
    pass


@pytest.fixture
def tcpdump() -> None:
    need_root()
    need_tools("tcpdump")


def test_filter_is_rebuilt_from_the_parsed_address() -> None:
    assert bpf_filter(ipaddress.ip_address("198.18.0.10")) == "host 198.18.0.10"
    with pytest.raises(DeviceError, match="not a valid interface"):
        PacketCapture("lo; rm -rf /", ipaddress.ip_address("127.0.0.2"), Sink())


def test_capture_sees_only_the_device_and_counts_its_drops(tcpdump: None, tmp_path) -> None:
    sink = Sink()
    cap = PacketCapture("lo", ipaddress.ip_address("127.0.0.2"), sink)
    cap.start()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.2", 0))
    port = rx.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(200):
            tx.sendto(b"device %d" % i, ("127.0.0.2", port))
            tx.sendto(b"other %d" % i, ("127.0.0.3", port))  # another host: filtered out in the kernel
    time.sleep(0.3)
    stats = cap.stop()
    rx.close()
    assert stats.dropped == 0 and stats.captured == 200 and not stats.truncated
    (tmp_path / "c.pcap").write_bytes(sink.getvalue())
    flows = read_flows(tmp_path / "c.pcap").flows
    assert [f.server for f in flows] == [("127.0.0.2", port)]
    assert flows[0].up.packets == 200
    assert stats.bytes_written == len(sink.getvalue())
    assert cap.stop() is stats  # idempotent


def test_size_limit_stops_the_capture_and_says_so(tcpdump: None) -> None:
    sink = Sink()
    cap = PacketCapture("lo", ipaddress.ip_address("127.0.0.2"), sink, max_bytes=20_000)
    cap.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for _ in range(100):
            tx.sendto(bytes(1000), ("127.0.0.2", 9))
    time.sleep(0.3)
    stats = cap.stop()
    assert stats.truncated and len(sink.getvalue()) == 20_000


def test_a_missing_interface_is_one_clear_error(tcpdump: None) -> None:
    cap = PacketCapture("rignosuch0", ipaddress.ip_address("127.0.0.2"), Sink())
    with pytest.raises(DeviceError, match="capture on rignosuch0 did not start: .*No such device"):
        cap.start()
