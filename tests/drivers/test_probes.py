"""Probes against local listeners: bounded, never fooled by a silent or chatty port."""

from __future__ import annotations

import socket
import time

from drivers.probes import _telnet_refuse, identify_login_service, probe_tcp, probe_udp
from rig.fuzz import loopback_server as _listener


def test_silent_port_is_unrecognised_within_bound() -> None:
    port, _ = _listener(lambda c: time.sleep(2.5))
    t0 = time.monotonic()
    res = probe_tcp("127.0.0.1", port, timeout=0.5)
    assert res.service is None and not res.debug
    assert time.monotonic() - t0 < 15


def test_http_like_banner_is_not_a_debug_service() -> None:
    def handler(c: socket.socket) -> None:
        c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    port, _ = _listener(handler)
    res = probe_tcp("127.0.0.1", port, timeout=0.5)
    assert not res.debug
    assert "HTTP/1.0 400" in res.detail.get("banner", "")


def test_telnet_negotiation_is_refused() -> None:
    reply, text = _telnet_refuse(b"\xff\xfd\x18\xff\xfb\x01login: ")
    assert reply == b"\xff\xfc\x18\xff\xfe\x01" and text == b"login: "


def test_udp_probe_of_closed_port_is_quick_and_empty() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    res = probe_udp("127.0.0.1", port, timeout=0.3)
    assert res.service is None
    assert time.monotonic() - t0 < 3


def test_a_port_silent_to_every_login_probe_is_said_silent_not_absent() -> None:
    port, _ = _listener(lambda c: None)  # takes each connection and closes it without a byte
    res = identify_login_service("127.0.0.1", port, timeout=0.5)
    assert res.service is None and res.answered and res.silent and not res.refused
    assert f"{port}/tcp" in res.note


def test_a_closed_port_is_refused_not_silent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the kernel answers with a reset
        res = identify_login_service("127.0.0.1", port, timeout=0.5)
    assert res.refused and not res.answered and not res.silent and res.service is None


def test_a_device_that_resets_mid_exchange_is_unrecognised_not_a_crash() -> None:
    """A reset after half a banner (SO_LINGER 0), on every connection the probe makes: the probe ends
    within its bound with the port unnamed (debug-ports reports an unknown open port, never a closed
    one), and what the device sent is in the transcript. A reset that lands on the probe's own send
    is caught too (drivers/probes.py notes "the connection dropped"), and one that reaches the probe
    before connect() returns leaves the port open, probed on (CI saw it "connect failed", unprobed);
    which of these happens is a race."""
    import struct

    def reset(c: socket.socket) -> None:
        c.sendall(b"\xde\xad")  # half of something
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    port, _ = _listener(reset)
    t0 = time.monotonic()
    res = probe_tcp("127.0.0.1", port, timeout=1.0)
    assert time.monotonic() - t0 < 8 * 1.0 + 2
    assert res.service is None and res.summary == "no known debug protocol recognised"
    # each connection is accounted for: the device's bytes recorded, or the reset noted (a reset that
    # beats connect() or the first recv takes the queued bytes with it: the kernel's race, not the rig's)
    assert any(" < " in line for line in res.transcript) or any("reset" in line for line in res.transcript), res.transcript
    assert not any("connect failed" in line and "refused" in line.lower() for line in res.transcript)


def test_a_reset_before_connect_returns_leaves_the_port_open_and_probed(monkeypatch) -> None:
    """The race CI hit, made certain: every connect() ends in ECONNRESET (the handshake completed, the
    device reset at once). The port is not reported unreachable: each probe was tried, each reset
    noted, and the port is unnamed ("no known debug protocol recognised", an unknown open port)."""
    import drivers.probes as probes

    calls = []

    def reset_at_once(addr, timeout=None, *a, **k):
        calls.append(addr)
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(probes.socket, "create_connection", reset_at_once)
    res = probe_tcp("127.0.0.1", 9, timeout=0.2)
    assert res.service is None and res.summary == "no known debug protocol recognised"
    assert len(calls) == 8  # the first connection, then http, rtsp, jdwp, adb, openocd_tcl, tls, raw_shell
    assert "reset the connection as it opened" in res.transcript[0]
