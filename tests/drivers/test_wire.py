"""The one HTTP/RTSP head parser: bounded, repeated headers kept, odd lengths refused."""

from __future__ import annotations

from drivers.wire import content_length, head_headers


def test_repeated_headers_are_kept_in_order_and_names_lowered() -> None:
    head = (b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"a\"\r\n"
            b"www-authenticate: Digest realm=\"b\", nonce=\"n\"\r\nContent-Length: 12\r\n\r\nbody: ignored")
    hdrs = head_headers(head)
    assert hdrs["www-authenticate"] == ['Basic realm="a"', 'Digest realm="b", nonce="n"']
    assert "body" not in hdrs and content_length(hdrs) == 12


def test_a_hostile_head_stays_bounded() -> None:
    head = b"RTSP/1.0 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10_000)) + b"Big: " + b"a" * 100_000 + b"\r\n\r\n"
    hdrs = head_headers(head, max_lines=100, max_value=8192)
    assert sum(len(v) for v in hdrs.values()) == 100
    assert "big" not in hdrs  # past the line bound
    assert len(head_headers(b"HTTP/1.0 200 OK\r\nBig: " + b"a" * 100_000 + b"\r\n\r\n")["big"][0]) == 8192


def test_content_length_that_is_not_a_plain_number_is_none() -> None:
    for value in ("-1", "1e9", "12, 12", "9" * 13, ""):
        assert content_length({"content-length": [value]}) is None
    assert content_length({}) is None
