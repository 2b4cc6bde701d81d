"""One image to a device's model over HTTP and its answer back (model-integrity, model-robustness).

:func:`post_image` POSTs the image to the device's inference endpoint and reads the response,
answering one 401 with Basic or the strongest Digest offered (:mod:`drivers.httpauth`) when it
has credentials. Everything is bounded: the connect and each read by ``timeout``, the response
body by ``max_bytes`` (a longer answer is cut there and said to be cut, never read whole).
:func:`parse_answer` reads the JSON answer as the config maps it into an :class:`Answer`,
raising :class:`AnswerError` (with a kind a technician can act on) for anything else.
Nothing here logs; the password is never in a message.
"""

from __future__ import annotations

import http.client
import json
import math
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from drivers import httpauth
from drivers.httpauth import Credentials

#: the answer's label is cut to this many characters (it goes into results and reports)
LABEL_LIMIT = 120
#: at most this many scores are kept from a score vector
SCORES_LIMIT = 4096


@dataclass
class HttpReply:
    """What the endpoint answered: status, the headers the rig reads, the body (bounded)."""

    status: int
    body: bytes = field(repr=False)
    truncated: bool = False
    retry_after: str | None = None
    challenges: list[str] = field(default_factory=list)  # its WWW-Authenticate headers
    seconds: float = 0.0


class InferUnavailable(OSError):
    """Nothing answered at the endpoint (connect refused, timed out, TLS failed, the connection
    dropped); the message says which."""


def post_image(url: str, image: bytes, content_type: str, timeout: float, max_bytes: int,
               auth: Credentials | None = None) -> HttpReply:
    """POST ``image`` to ``url``; the reply with its body cut at ``max_bytes``. A 401 is answered
    once with ``auth`` (when the server offers a scheme the rig can answer); otherwise the 401
    is returned for the caller to report. Raises :class:`InferUnavailable` when nothing answers."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    start = time.monotonic()
    reply = _post(parts, target, image, content_type, timeout, max_bytes, None)
    if reply.status == 401 and auth is not None:
        chosen = httpauth.choose(httpauth.challenges(*reply.challenges))
        if chosen is not None:
            reply = _post(parts, target, image, content_type, timeout, max_bytes, httpauth.authorization(chosen, auth, "POST", target))
    reply.seconds = time.monotonic() - start
    return reply


def _post(parts, target: str, image: bytes, content_type: str, timeout: float, max_bytes: int,
          authorization: str | None) -> HttpReply:
    host, port = parts.hostname or "", parts.port
    try:
        if parts.scheme == "https":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the TLS checks judge the server, not this client
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        headers = {"Content-Type": content_type, "User-Agent": "privrig", "Connection": "close"}
        if authorization:
            headers["Authorization"] = authorization
        try:
            conn.request("POST", target, body=image, headers=headers)
            resp = conn.getresponse()
            body = resp.read(max_bytes + 1)
            return HttpReply(resp.status, body[:max_bytes], len(body) > max_bytes, resp.getheader("Retry-After"),
                             [h[:httpauth.HEADER_LIMIT] for h in (resp.headers.get_all("WWW-Authenticate") or [])[:8]])
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        what = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise InferUnavailable(f"POST {parts.scheme}://{host}{':' + str(port) if port else ''}{target}: {what[:200]}") from None


@dataclass
class Answer:
    """The model's answer to one image: its label, its top score and its score vector where the
    device gives them."""

    label: str
    score: float | None = None
    scores: list[float] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready form (the score vector cut to 16 values)."""
        out: dict = {"label": self.label}
        if self.score is not None:
            out["score"] = self.score
        if self.scores is not None:
            out["scores"] = self.scores[:16]
            out["classes"] = len(self.scores)
        return out


class AnswerError(ValueError):
    """An answer the rig cannot read as the config maps it. ``kind``: ``garbage`` (not JSON),
    ``wrong-shape`` (no label where the config says, a score that is no number), ``too-large``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _at(doc: object, path: str) -> object:
    cur = doc
    for key in path.split("."):
        if isinstance(cur, dict) and key in cur:
            cur = cur[key]
        elif isinstance(cur, list) and key.isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        else:
            raise KeyError(path)
    return cur


def parse_answer(body: bytes, label: str, score: str | None = None, scores: str | None = None,
                 truncated: bool = False) -> Answer:
    """The :class:`Answer` in a JSON ``body`` at the dotted paths given. Raises
    :class:`AnswerError` for a cut answer, anything that is not JSON, a missing label, or a
    score (vector) that is not finite numbers."""
    if truncated:
        raise AnswerError("too-large", f"the answer is longer than the rig reads ({len(body)} bytes kept)")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AnswerError("garbage", f"the answer is not JSON ({len(body)} bytes)") from None
    try:
        value = _at(doc, label)
    except KeyError:
        raise AnswerError("wrong-shape", f"the answer has no {label!r}") from None
    if isinstance(value, (dict, list)) or value is None:
        raise AnswerError("wrong-shape", f"{label!r} in the answer is a {type(value).__name__}, not a label")
    out = Answer(str(value)[:LABEL_LIMIT])
    if score is not None:
        try:
            out.score = _number(_at(doc, score), score)
        except KeyError:
            raise AnswerError("wrong-shape", f"the answer has no {score!r}") from None
    if scores is not None:
        try:
            vec = _at(doc, scores)
        except KeyError:
            raise AnswerError("wrong-shape", f"the answer has no {scores!r}") from None
        if not isinstance(vec, list) or not vec or len(vec) > SCORES_LIMIT:
            raise AnswerError("wrong-shape", f"{scores!r} in the answer is not a list of 1 to {SCORES_LIMIT} numbers")
        out.scores = [_number(v, scores) for v in vec]
        if out.score is None:
            out.score = max(out.scores)
    return out


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise AnswerError("wrong-shape", f"{path!r} in the answer is not a finite number")
    return float(value)
