"""The forged TLS server: what a verifying, a believing, an old and a non-TLS client look like."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import warnings
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.tlsserver import ForgedServer
from rig.certs import issue


@pytest.fixture(scope="module")
def forged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("forge")
    return issue(d / "c.pem", d / "k.pem", "cloud.example", usage=ExtendedKeyUsageOID.SERVER_AUTH)


def _client(port: int, ctx: ssl.SSLContext | None, payload: bytes) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            if ctx is None:
                raw.sendall(payload)
                raw.recv(10)
                return
            with ctx.wrap_socket(raw, server_hostname="cloud.example") as tls:
                tls.sendall(payload)
    except (OSError, ssl.SSLError):
        pass


def _attempt(forged, ctx: ssl.SSLContext | None, payload: bytes = b"HEARTBEAT token=s3cr3t\n", client=None):
    server = ForgedServer("127.0.0.1")
    t = threading.Thread(target=client or _client, args=(server.port, ctx, payload), daemon=True)
    t.start()
    try:
        return server.attempt("self-signed", forged[0], forged[1], window_s=5, data_wait_s=1.0, handshake_s=1.5)
    finally:
        t.join(timeout=5)
        server.close()


def test_a_verifying_client_refuses_with_an_alert(forged, tmp_path: Path) -> None:
    other = issue(tmp_path / "ca.pem", tmp_path / "ca-key.pem", "someone else's CA", ca=True)
    a = _attempt(forged, ssl.create_default_context(cafile=str(other[0])))
    assert a.connected and a.handshake.startswith("refused:") and "UNKNOWN_CA" in a.handshake and not a.sent_data and a.sni == "cloud.example"


def test_a_client_that_believes_anyone_sends_its_data(forged) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    a = _attempt(forged, ctx)
    assert a.accepted and a.sent_data and "token=s3cr3t" in a.app_head


def test_an_old_client_is_not_refused_by_the_forged_server_itself(forged) -> None:
    """A TLS 1.0-only firmware that believes anyone must still be caught: the forged server
    takes every version this host has, so the handshake never fails on its side."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    a = _attempt(forged, ctx)
    assert a.accepted and a.version == "TLSv1" and a.sent_data


def test_no_connection_and_not_tls_are_never_a_refusal(forged) -> None:
    server = ForgedServer("127.0.0.1")
    try:
        idle = server.attempt("rig-ca", forged[0], forged[1], window_s=0.5)
    finally:
        server.close()
    assert not idle.connected and idle.handshake == "no connection"
    plain = _attempt(forged, None, b"GET / HTTP/1.0\r\n\r\n")
    assert plain.connected and plain.handshake.startswith("no handshake:") and not plain.accepted


def _believer() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def _mute(port: int, _ctx, _payload) -> None:
    """Opens the connection and sends nothing (a half-open device, a port scanner)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        time.sleep(2.5)


def _hangup(port: int, _ctx, _payload) -> None:
    """Opens the connection and closes it at once, before any ClientHello."""
    socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _tls_step(port: int, after_flight) -> None:  # noqa: ANN001
    """A client that sends its ClientHello, reads the server's first flight (its certificate
    in it) and then does ``after_flight(raw socket)`` instead of finishing the handshake."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _believer().wrap_bio(incoming, outgoing, server_hostname="cloud.example")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
        raw.settimeout(3)
        got = b""
        while len(got) < 600:  # the certificate alone is several hundred bytes
            chunk = raw.recv(65536)
            if not chunk:
                return
            got += chunk
        after_flight(raw)


def test_a_connection_that_sends_nothing_is_not_a_refusal(forged) -> None:
    """A TCP connect that never sends a ClientHello says nothing about the certificate."""
    a = _attempt(forged, None, client=_mute)
    assert a.connected and not a.refused and not a.accepted and not a.certificate_sent
    assert a.handshake.startswith("no handshake: no ClientHello"), a.handshake


def test_a_hang_up_before_the_client_hello_is_not_a_refusal(forged) -> None:
    a = _attempt(forged, None, client=_hangup)
    assert a.connected and not a.refused and a.handshake == "no handshake: the client closed before its ClientHello", a.handshake


def test_a_close_right_after_the_certificate_is_the_clients_refusal(forged) -> None:
    """Some embedded stacks hang up without an alert once they dislike the certificate."""
    a = _attempt(forged, None, client=lambda port, _c, _p: _tls_step(port, lambda raw: None))
    assert a.certificate_sent and a.refused and "right after the server's certificate" in a.handshake, a.handshake


def test_a_stall_after_the_certificate_is_not_observed(forged) -> None:
    a = _attempt(forged, None, client=lambda port, _c, _p: _tls_step(port, lambda raw: time.sleep(2.5)))
    assert a.certificate_sent and not a.refused and not a.accepted
    assert a.handshake.startswith("no handshake: the client stalled after the server's certificate"), a.handshake


def test_a_completed_handshake_with_no_data_is_acceptance(forged) -> None:
    """A client that finishes the handshake and says nothing has still taken the forged certificate."""

    def silent(port: int, ctx, _payload) -> None:  # noqa: ANN001
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="cloud.example"):
            time.sleep(0.2)

    a = _attempt(forged, _believer(), client=silent)
    assert a.accepted and not a.refused and not a.sent_data and a.certificate_sent


def test_an_alert_that_is_not_about_the_certificate_is_no_refusal(forged) -> None:
    """A client that shares no suite with the server fails the handshake, and that is no judgement of the certificate."""
    ctx = _believer()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("PSK")  # the forged server has no pre-shared key
    a = _attempt(forged, ctx)
    assert a.connected and not a.refused and a.handshake.startswith("no handshake:"), a.handshake


def test_connections_from_another_address_are_not_counted(forged) -> None:
    """Only the device's connections count: a stranger's is closed and noted, the device's served."""
    server = ForgedServer("0.0.0.0", expect={"127.0.0.2"})

    def both() -> None:
        _client(server.port, None, b"x")  # from 127.0.0.1: not the device
        with socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.2", 0)) as raw, \
                _believer().wrap_socket(raw, server_hostname="cloud.example") as tls:
            tls.sendall(b"HEARTBEAT from the device\n")

    t = threading.Thread(target=both, daemon=True)
    t.start()
    try:
        a = server.attempt("self-signed", forged[0], forged[1], window_s=5, data_wait_s=1.0)
    finally:
        t.join(timeout=5)
        server.close()
    assert a.client is not None and a.client.startswith("127.0.0.2:") and a.sent_data
    assert any("127.0.0.1" in n and "not the device" in n for n in a.notes)
