"""The rig's own TLS handshakes (mutual TLS, certificate facts, speaks_tls) against real OpenSSL servers on loopback."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from drivers import tlsprobe
from rig.sim.camera import make_pki, tls_context


@contextmanager
def served(ctx: ssl.SSLContext | None, reply: bytes = b"HTTP/1.0 200 OK\r\n\r\n") -> Iterator[int]:
    """A server on loopback for the duration of the block; yields its port. With ``ctx`` each
    connection is TLS and answered with ``reply`` after the client's first bytes; without,
    ``reply`` is sent in the clear at once (something that answers, but not TLS)."""
    port, stop = serve(ctx, reply)
    try:
        yield port
    finally:
        stop.set()


def serve(ctx: ssl.SSLContext | None, reply: bytes = b"HTTP/1.0 200 OK\r\n\r\n") -> tuple[int, threading.Event]:
    """The server of :func:`served`, until the event is set."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    lsock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            try:
                if ctx is None:
                    conn.sendall(reply)
                    conn.close()
                    continue
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    tls.recv(4096)
                    tls.sendall(reply)
            except (OSError, ssl.SSLError):
                conn.close()
        lsock.close()

    threading.Thread(target=loop, daemon=True).start()
    return lsock.getsockname()[1], stop


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"), "dut")


def test_mutual_tls_refuses_strangers_and_takes_the_configured_client(pki) -> None:
    with served(tls_context(pki, "TLSv1.2", mutual=True)) as port:
        ca = tlsprobe.client_auth("127.0.0.1", port, 5.0, (pki["client-cert"], pki["client-key"]))
    assert ca.no_certificate.startswith("refused") and ca.self_made_certificate.startswith("refused")
    assert ca.configured_certificate == "accepted"


def test_server_without_client_auth_is_caught_when_mutual_is_declared(pki) -> None:
    with served(tls_context(pki, "TLSv1.2", mutual=False)) as port:
        ca = tlsprobe.client_auth("127.0.0.1", port, 5.0, None)
    assert ca.no_certificate == "accepted" and ca.configured_certificate is None


def test_weak_certificate_facts(tmp_path: Path) -> None:
    # cryptography refuses to sign with SHA-1; openssl still does, as old firmware did
    import subprocess

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:1024", "-sha1", "-nodes", "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem"),
                    "-days", "3", "-subj", "/CN=old-cam"], check=True, capture_output=True, timeout=60)
    old = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    facts = tlsprobe.certificate_facts(old.public_bytes(serialization.Encoding.DER))
    assert facts.self_signed and facts.key == "RSA 1024" and not facts.expired
    assert sorted(facts.weaknesses) == ["RSA key of 1024 bits (< 2048)", "signed with SHA1"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lapsed-cam")])
    now = datetime.datetime.now(datetime.timezone.utc)
    lapsed = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
              .not_valid_before(now - datetime.timedelta(days=400)).not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    facts = tlsprobe.certificate_facts(lapsed.public_bytes(serialization.Encoding.DER))
    assert facts.expired and facts.weaknesses == ["outside its validity period"]


def test_nothing_listening_is_an_error_never_a_refusal() -> None:
    """A device that went away did not refuse anyone: a connect failure is the rig's error."""
    ca = tlsprobe.client_auth("127.0.0.1", 9, 1.0, None)
    assert ca.no_certificate.startswith("error: cannot connect") and tlsprobe.outcome_state(ca.no_certificate) == "error"
    assert ca.gap() is not None and ca.gap()[0] == "error"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not tlsprobe.speaks_tls("127.0.0.1", 9, timeout=1)


@contextmanager
def _raw_server(on_connection):
    """A loopback port whose first three connections go to ``on_connection`` and are held open
    until the test ends (a device that keeps the line): yields the port."""
    lsock = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        for _ in range(3):
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            held.append(conn)
            on_connection(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield lsock.getsockname()[1]
    finally:
        lsock.close()
        for c in held:
            c.close()


def test_a_server_that_never_answers_the_handshake_is_not_observed() -> None:
    """A port that takes the connection and then says nothing has judged no client."""
    with _raw_server(lambda conn: None) as port:
        ca = tlsprobe.client_auth("127.0.0.1", port, 1.0, None)
    assert ca.no_certificate.startswith("not observed:") and "did not finish" in ca.no_certificate
    assert not ca.no_certificate.startswith("refused") and ca.gap() == ("unobserved", ca.gap()[1])


def test_a_server_that_answers_the_hello_with_garbage_refused_no_one() -> None:
    """A broken exchange (a record the client cannot parse) is not a refusal: before, any TLS error
    was "refused", so a device that sent garbage after the ClientHello passed as one demanding a
    certificate."""

    def garble(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"\x16\x03\x03\x00\x08garbage!" + b"\x17\x03\x03\x40\x00" + b"\x00" * 64)

    with _raw_server(garble) as port:
        ca = tlsprobe.client_auth("127.0.0.1", port, 1.0, None)
    for outcome in (ca.no_certificate, ca.self_made_certificate):
        assert outcome.startswith("not observed: the TLS exchange broke"), outcome
    assert ca.gap()[0] == "unobserved"
    assert tlsprobe._refusal("TLSV13_ALERT_CERTIFICATE_REQUIRED").startswith("refused")  # a real refusal still is one
