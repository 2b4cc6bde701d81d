"""HTTP and RTSP authentication as a client answers it: Basic (RFC 7617) and Digest (RFC 7616:
MD5, SHA-256 and their ``-sess`` variants, ``qop=auth`` or the RFC 2069 form without qop).

Real cameras ask for Digest almost always, often SHA-256 beside MD5, on HTTP and on RTSP
alike (RTSP reuses HTTP's scheme, RFC 2326 and RFC 7826). :func:`challenges` reads every
challenge of a ``WWW-Authenticate`` header (one header may hold several, and a server may
send several headers), :func:`choose` takes the strongest the rig can answer, and
:func:`authorization` builds the answer for one request. Nothing here logs: the caller
decides what its transcript says, and never writes the header it sends.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass, field

#: Digest algorithms the rig answers, strongest first (RFC 7616 section 3.3 prefers SHA-256)
DIGEST_ALGORITHMS = ("SHA-256-sess", "SHA-256", "MD5-sess", "MD5")
_HASH = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

#: a header longer than this is not read as challenges (a device cannot make the rig parse megabytes)
HEADER_LIMIT = 8192

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*(\"(?:[^\"\\]|\\.)*\"|{_TOKEN})\s*(,|$)")
_SCHEME = re.compile(rf"\s*({_TOKEN})(?=[\s,]|$)\s*")


@dataclass(frozen=True)
class Credentials:
    """A user and password the rig answers a challenge with. ``repr`` never shows the password."""

    user: str
    password: str = field(repr=False)


@dataclass
class Challenge:
    """One challenge: its scheme (lower case) and parameters (names lower case, values unquoted)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm(self) -> str:
        """The Digest algorithm as the server named it (MD5 when it named none, RFC 7616 3.3)."""
        return self.params.get("algorithm", "MD5")

    @property
    def answerable(self) -> bool:
        """The rig can answer this challenge (Basic, or Digest with an algorithm and qop it knows)."""
        if self.scheme == "basic":
            return True
        if self.scheme != "digest" or "nonce" not in self.params:
            return False
        if self.algorithm.upper() not in {a.upper() for a in DIGEST_ALGORITHMS}:
            return False
        qops = _qops(self)
        return not qops or "auth" in qops

    def label(self) -> str:
        """How a transcript or finding names the challenge: ``Basic``, ``Digest SHA-256``."""
        return "Basic" if self.scheme == "basic" else f"Digest {self.algorithm}" if self.scheme == "digest" else self.scheme.title()


def _qops(ch: Challenge) -> list[str]:
    return [q.strip().lower() for q in ch.params.get("qop", "").split(",") if q.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def challenges(*headers: str) -> list[Challenge]:
    """Every challenge in the given ``WWW-Authenticate`` header values, in order. Text that is
    neither a scheme nor a parameter ends the header it is in (what came before is kept);
    never raises."""
    out: list[Challenge] = []
    for header in headers:
        text, pos = header[:HEADER_LIMIT], 0
        while True:
            while pos < len(text) and text[pos] in " \t,":
                pos += 1
            m = _SCHEME.match(text, pos)
            if pos >= len(text) or not m:
                break
            ch = Challenge(m.group(1).lower())
            pos = m.end()
            while (p := _PARAM.match(text, pos)) is not None:  # "Digest realm=..." is not a parameter: the next scheme
                ch.params[p.group(1).lower()] = _unquote(p.group(2))
                pos = p.end()
            out.append(ch)
    return out


def choose(offered: list[Challenge]) -> Challenge | None:
    """The challenge the rig answers: the strongest Digest algorithm offered, else Basic; ``None``
    when nothing offered can be answered (an unknown scheme or algorithm)."""
    digests = [c for c in offered if c.scheme == "digest" and c.answerable]
    for alg in DIGEST_ALGORITHMS:
        for c in digests:
            if c.algorithm.upper() == alg.upper():
                return c
    return next((c for c in offered if c.scheme == "basic"), None)


@dataclass
class DigestSession:
    """The client state of one Digest challenge: the nonce count grows with each request."""

    challenge: Challenge
    nc: int = 0
    cnonce: str = field(default_factory=lambda: os.urandom(8).hex())


def authorization(ch: Challenge, creds: Credentials, method: str, uri: str, session: DigestSession | None = None) -> str:
    """The ``Authorization`` header value answering ``ch`` for ``method uri``.

    Basic: ``user:password`` in base64 (UTF-8). Digest (RFC 7616 section 3.4): H(A1) with the
    server's algorithm, ``-sess`` mixing in nonce and cnonce, ``qop=auth`` with a counted
    ``nc`` when the server offers it, and the RFC 2069 response otherwise; ``opaque`` is
    returned as sent. Raises ValueError for a challenge :attr:`Challenge.answerable` refuses.
    """
    if ch.scheme == "basic":
        return "Basic " + base64.b64encode(f"{creds.user}:{creds.password}".encode()).decode()
    if not ch.answerable:
        raise ValueError(f"cannot answer a {ch.label()} challenge")
    alg = ch.algorithm
    base = alg.upper().removesuffix("-SESS")
    h = _HASH["SHA-256" if base == "SHA-256" else "MD5"]

    def H(s: str) -> str:
        return h(s.encode()).hexdigest()

    realm, nonce = ch.params.get("realm", ""), ch.params["nonce"]
    sess = session or DigestSession(ch)
    sess.nc += 1
    nc = f"{sess.nc:08x}"
    ha1 = H(f"{creds.user}:{realm}:{creds.password}")
    if alg.upper().endswith("-SESS"):
        ha1 = H(f"{ha1}:{nonce}:{sess.cnonce}")
    ha2 = H(f"{method}:{uri}")
    qop = "auth" if "auth" in _qops(ch) else None
    response = H(f"{ha1}:{nonce}:{nc}:{sess.cnonce}:{qop}:{ha2}") if qop else H(f"{ha1}:{nonce}:{ha2}")

    def q(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    fields = [f"username={q(creds.user)}", f"realm={q(realm)}", f"nonce={q(nonce)}", f"uri={q(uri)}", f"response={q(response)}"]
    if "algorithm" in ch.params:
        fields.append(f"algorithm={alg}")
    if qop:
        fields += [f"qop={qop}", f"nc={nc}", f"cnonce={q(sess.cnonce)}"]
    if "opaque" in ch.params:
        fields.append(f"opaque={q(ch.params['opaque'])}")
    return "Digest " + ", ".join(fields)


def digest_response(user: str, realm: str, password: str, method: str, uri: str, nonce: str, algorithm: str = "MD5",
                    nc: str | None = None, cnonce: str | None = None, qop: str | None = None) -> str:
    """The ``response`` a server expects (RFC 7616 3.4.1), for servers that check answers (the
    simulated cameras)."""
    base = algorithm.upper().removesuffix("-SESS")
    h = _HASH["SHA-256" if base == "SHA-256" else "MD5"]

    def H(s: str) -> str:
        return h(s.encode()).hexdigest()

    ha1 = H(f"{user}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = H(f"{ha1}:{nonce}:{cnonce}")
    ha2 = H(f"{method}:{uri}")
    return H(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}") if qop else H(f"{ha1}:{nonce}:{ha2}")


def credential_params(header: str) -> dict[str, str]:
    """The parameters of an ``Authorization: Digest ...`` value (for a server to check it)."""
    chs = challenges(header)
    return chs[0].params if chs and chs[0].scheme == "digest" else {}
