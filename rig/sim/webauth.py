"""The simulated cameras' web login, as shop cameras do it: HTTP Basic or Digest (RFC 7616,
MD5 and SHA-256) on the stream and snapshot, and an HTML form login at ``/``.

Accounts come from a file of ``user:password`` lines (written by the bench, never on a
command line). Digest nonces are stateless (a time stamp and its HMAC under a key drawn
at start), so a nonce the server did not issue, or one older than :data:`NONCE_TTL_S`, is
refused. With ``throttle`` every wrong password from an address delays the answer to that
address a little more (0.3 s per failure, at most 1.2 s), and a right one resets it: the
rate limit a compliant camera has, without locking the bench out of its own streams.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from drivers.httpauth import credential_params, digest_response

NONCE_TTL_S = 300
STEP_S, MAX_DELAY_S = 0.3, 1.2
SCHEMES = ("basic", "digest-md5", "digest-sha256", "digest")  # digest: SHA-256 and MD5 offered

LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><title>SimCam Web</title></head><body>
<h1>SimCam</h1>
<form method="post" action="/login">
 <label>User name <input type="text" name="username"></label>
 <label>Password <input type="password" name="password"></label>
 <input type="submit" value="Login">
</form>
%s
</body></html>
"""


def read_accounts(path: Path) -> dict[str, str]:
    """``user:password`` lines of ``path`` (blank lines and ``#`` comments skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            user, _, pw = line.partition(":")
            out[user.strip()] = pw
    return out


@dataclass
class WebAuth:
    """One camera's accounts, challenge scheme and throttle."""

    accounts: dict[str, str]
    scheme: str = "digest"
    realm: str = "SimCam"
    throttle: bool = False
    _key: bytes = field(default_factory=lambda: os.urandom(16))
    _failures: dict[str, int] = field(default_factory=dict)
    _sessions: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- challenges -----------------------------------------------------------------------------
    def nonce(self) -> str:
        ts = str(int(time.time()))
        return ts + ":" + hmac.new(self._key, ts.encode(), hashlib.sha256).hexdigest()[:32]

    def _nonce_ok(self, nonce: str) -> bool:
        ts, _, mac = nonce.partition(":")
        good = hmac.new(self._key, ts.encode(), hashlib.sha256).hexdigest()[:32]
        return ts.isdigit() and hmac.compare_digest(mac, good) and time.time() - int(ts) < NONCE_TTL_S

    def challenges(self) -> list[str]:
        """``WWW-Authenticate`` values for a 401, strongest first."""
        if self.scheme == "basic":
            return [f'Basic realm="{self.realm}"']
        nonce = self.nonce()
        algs = {"digest-md5": ["MD5"], "digest-sha256": ["SHA-256"], "digest": ["SHA-256", "MD5"]}[self.scheme]
        return [f'Digest realm="{self.realm}", qop="auth", algorithm={a}, nonce="{nonce}", opaque="{secrets.token_hex(8)}"' for a in algs]

    # -- checks ---------------------------------------------------------------------------------
    def check(self, header: str | None, method: str, client: str) -> bool:
        """Whether ``Authorization: header`` proves an account for ``method``; failures are
        counted (and, with ``throttle``, paid for by a delay) per ``client`` address."""
        ok = header is not None and self._verify(header, method)
        self._account(ok, client, header is not None)
        return ok

    def _verify(self, header: str, method: str) -> bool:
        kind, _, rest = header.partition(" ")
        if kind.lower() == "basic" and self.scheme == "basic":
            try:
                user, _, pw = base64.b64decode(rest.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return user in self.accounts and hmac.compare_digest(self.accounts[user].encode(), pw.encode())
        if kind.lower() != "digest" or self.scheme == "basic":
            return False
        p = credential_params(header)
        user, alg = p.get("username", ""), p.get("algorithm", "MD5")
        allowed = {"digest-md5": {"MD5"}, "digest-sha256": {"SHA-256"}, "digest": {"MD5", "SHA-256"}}[self.scheme]
        if user not in self.accounts or alg not in allowed or p.get("realm") != self.realm or not self._nonce_ok(p.get("nonce", "")):
            return False
        want = digest_response(user, self.realm, self.accounts[user], method, p.get("uri", ""), p["nonce"], alg,
                               p.get("nc"), p.get("cnonce"), p.get("qop"))
        return hmac.compare_digest(want, p.get("response", ""))

    def form_login(self, user: str, password: str, client: str) -> str | None:
        """A session id for a right form login, ``None`` for a wrong one (counted as :meth:`check`)."""
        ok = user in self.accounts and hmac.compare_digest(self.accounts[user].encode(), password.encode())
        self._account(ok, client, True)
        if not ok:
            return None
        sid = secrets.token_hex(16)
        with self._lock:
            if len(self._sessions) > 1000:
                self._sessions.clear()
            self._sessions.add(sid)
        return sid

    def session_ok(self, cookie: str | None) -> bool:
        """The request carries a session id a form login handed out."""
        if not cookie:
            return False
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "session" and value in self._sessions:
                return True
        return False

    def _account(self, ok: bool, client: str, attempted: bool) -> None:
        with self._lock:
            if ok:
                self._failures.pop(client, None)
                return
            if not attempted:
                return
            n = self._failures[client] = self._failures.get(client, 0) + 1
        if self.throttle:
            time.sleep(min(STEP_S * n, MAX_DELAY_S))
