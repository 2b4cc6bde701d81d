"""RTSP requests against servers that are not there, say nothing, or want an account: each is a
reason, never an answer the caller could take for a stream."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from drivers import rtsp
from drivers.httpauth import Credentials
from drivers.stream import grab_frames


@contextmanager
def server(reply: bytes | None) -> Iterator[int]:
    """A TCP server on loopback that answers each request with ``reply`` (None: accepts and says nothing)."""
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def answer(conn: socket.socket) -> None:
        try:
            while conn.recv(4096):  # every request on the connection gets the reply
                conn.sendall(reply)  # type: ignore[arg-type]
        except OSError:
            pass

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listening socket was closed: the block ended
            held.append(conn)
            if reply is not None:
                threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    try:
        yield lsock.getsockname()[1]
    finally:
        stop.set()
        for c in held:
            c.close()
        lsock.close()


def test_a_server_that_says_nothing_is_no_answer_within_the_timeout() -> None:
    with server(None) as port:
        t0 = time.monotonic()
        ans = rtsp.request(f"rtsp://127.0.0.1:{port}/main", "DESCRIBE", None, timeout=1.0)
        assert time.monotonic() - t0 < 3
        assert ans.status is None and not ans.ok and ans.error == "no RTSP answer"
        g = grab_frames(f"rtsp://127.0.0.1:{port}/main", seconds=1.0, connect_timeout=1.0)
        assert g.frames == [] and g.error and "no RTSP answer" in g.error


def test_nothing_listening_is_a_connect_error() -> None:
    ans = rtsp.request("rtsp://127.0.0.1:9/main", "DESCRIBE", Credentials("u", "p"), timeout=1.0)
    assert ans.status is None and ans.error.startswith("connect to 127.0.0.1:9")


def test_a_challenge_without_an_account_is_a_401_with_what_it_asked_for() -> None:
    reply = b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm="cam", nonce="n1"\r\n\r\n'
    with server(reply) as port:
        ans = rtsp.request(f"rtsp://127.0.0.1:{port}/main", "DESCRIBE", None, timeout=2.0)
        assert ans.status == 401 and not ans.ok and ans.challenge == "Digest MD5" and ans.auth is None
        # answered with an account the server still refuses: the rig says it answered, never "ok"
        again = rtsp.request(f"rtsp://127.0.0.1:{port}/main", "DESCRIBE", Credentials("admin", "wrong"), timeout=2.0)
        assert again.status == 401 and again.auth == "Digest MD5" and not again.ok
        assert all("wrong" not in line for line in again.sent)


def test_not_rtsp_at_all_is_said() -> None:
    with server(b"HTTP/1.0 400 Bad Request\r\n\r\n") as port:
        ans = rtsp.request(f"rtsp://127.0.0.1:{port}/main", "DESCRIBE", None, timeout=2.0)
        assert ans.status is None and ans.error == "not an RTSP answer"
