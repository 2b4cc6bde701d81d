"""The forged TLS server: what a verifying, a believing, an old and a non-TLS client look like."""

from __future__ import annotations

import socket
import ssl
import threading
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


def _attempt(forged, ctx: ssl.SSLContext | None, payload: bytes = b"HEARTBEAT token=s3cr3t\n"):
    server = ForgedServer("127.0.0.1")
    t = threading.Thread(target=_client, args=(server.port, ctx, payload), daemon=True)
    t.start()
    try:
        return server.attempt("self-signed", forged[0], forged[1], window_s=5, data_wait_s=1.0)
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
