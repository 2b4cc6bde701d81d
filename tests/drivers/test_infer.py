"""The HTTP inference client: Digest once, bounded answers, and answers read as mapped or refused."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from drivers.httpauth import Credentials
from drivers.infer import AnswerError, InferUnavailable, parse_answer, post_image


@pytest.fixture()
def server():
    """A loopback endpoint: /digest wants Digest for lab:secret, /huge answers 100 MB (streamed), /ok answers JSON."""
    seen: list[dict] = []

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "bytes": len(body)})
            if self.path == "/digest" and not (self.headers.get("Authorization") or "").startswith("Digest "):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Digest realm="cam", nonce="abc123", qop="auth", algorithm=SHA-256')
                self.end_headers()
                return
            if self.path == "/huge":
                self.send_response(200)
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(1600):
                        self.wfile.write(chunk)
                except OSError:
                    pass
                return
            doc = json.dumps({"label": "person", "score": 0.9}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()
    srv.server_close()


def test_a_digest_challenge_is_answered_once_and_the_answer_read(server) -> None:
    url, seen = server
    reply = post_image(url + "/digest", b"\x89PNG" + b"0" * 100, "image/png", 5, 4096, Credentials("lab", "secret"))
    assert reply.status == 200 and parse_answer(reply.body, "label", "score").label == "person"
    assert [s["auth"] is None for s in seen] == [True, False] and seen[1]["auth"].startswith("Digest ") and "secret" not in seen[1]["auth"]


def test_without_credentials_the_401_is_handed_back(server) -> None:
    url, _ = server
    assert post_image(url + "/digest", b"img", "image/png", 5, 4096).status == 401


def test_a_100_mb_answer_is_cut_at_the_bound_and_refused_as_too_large(server) -> None:
    url, _ = server
    reply = post_image(url + "/huge", b"img", "image/png", 10, 256 << 10)
    assert reply.truncated and len(reply.body) == 256 << 10
    with pytest.raises(AnswerError) as e:
        parse_answer(reply.body, "label", truncated=reply.truncated)
    assert e.value.kind == "too-large"


def test_nothing_listening_is_unavailable_with_the_address() -> None:
    with pytest.raises(InferUnavailable, match="127.0.0.1:9"):
        post_image("http://127.0.0.1:9/infer", b"img", "image/png", 2, 1024)


@pytest.mark.parametrize("body,kind", [
    (b"<html>login</html>", "garbage"),
    (b"\xff\xfe\x00", "garbage"),
    (b'{"result": {"cls": "cat"}}', "wrong-shape"),
    (b'{"label": {"name": "cat"}}', "wrong-shape"),
    (b'{"label": "cat", "scores": "high"}', "wrong-shape"),
    (b'{"label": "cat", "scores": [0.5, NaN]}', "wrong-shape"),
    (b'{"label": "cat", "scores": []}', "wrong-shape"),
])
def test_answers_that_are_not_what_the_config_maps_are_refused_by_kind(body: bytes, kind: str) -> None:
    with pytest.raises(AnswerError) as e:
        parse_answer(body, "label", scores="scores")
    assert e.value.kind == kind


def test_dotted_paths_read_nested_answers_and_a_vector_gives_the_top_score() -> None:
    a = parse_answer(b'{"result": {"top": {"name": "car"}, "probs": [0.1, 0.7, 0.2]}}', "result.top.name", scores="result.probs")
    assert a.label == "car" and a.score == 0.7 and a.scores == [0.1, 0.7, 0.2]
    assert parse_answer(b'{"dets": [{"cls": 3}]}', "dets.0.cls").label == "3"
