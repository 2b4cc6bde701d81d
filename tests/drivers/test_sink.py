"""The bench-side stream sink: receives what devices push, and moves aside when its port is taken."""

from __future__ import annotations

import ipaddress
import socket
import time

from drivers.sink import StreamSink

LO = ipaddress.IPv4Address("127.0.0.1")


def _free_block() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1] // 4 * 4 - 64


def test_sink_counts_udp_and_tcp() -> None:
    base = _free_block()
    with StreamSink.first_free(LO, base) as sink:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for _ in range(10):
                u.sendto(b"x" * 100, ("127.0.0.1", sink.port + 2))
        with socket.create_connection(("127.0.0.1", sink.port)) as t:
            t.sendall(b"y" * 5000)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (sink.counters.bytes.get(f"{sink.port}/tcp", 0) < 5000 or sink.counters.datagrams.get(sink.port + 2, 0) < 10):
            time.sleep(0.05)
        assert sink.counters.datagrams[sink.port + 2] == 10
        assert sink.counters.bytes[f"{sink.port}/tcp"] == 5000 and sink.counters.connections == 1


def test_a_taken_port_moves_the_sink_to_the_next_block() -> None:
    base = _free_block()
    with StreamSink.first_free(LO, base) as first, StreamSink.first_free(LO, base) as second:
        assert second.port >= first.port + 4


def test_what_another_sender_pushes_is_not_the_devices_stream() -> None:
    """CI saw it: a device of an earlier run still pushing to the bench's sink made a device that sent
    nothing look as if it streamed. With a source, only that address counts; the rest is set aside."""
    base = _free_block()
    with StreamSink.first_free(LO, base, source="127.0.0.2") as sink:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:  # from 127.0.0.1: another device
            for _ in range(5):
                u.sendto(b"x" * 100, ("127.0.0.1", sink.port + 1))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:  # from 127.0.0.2: the device
            u.bind(("127.0.0.2", 0))
            u.sendto(b"z" * 40, ("127.0.0.1", sink.port + 1))
        with socket.create_connection(("127.0.0.1", sink.port)) as t:
            t.sendall(b"y" * 500)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (sink.counters.others < 500 or sink.counters.others_connections < 1
                                               or not sink.counters.datagrams):
            time.sleep(0.05)
        assert sink.counters.others == 500 and sink.counters.others_connections == 1
        assert sink.counters.bytes == {f"{sink.port + 1}/udp": 40} and sink.counters.connections == 0
