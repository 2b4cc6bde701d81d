"""The device's model, asked one image at a time (model-integrity, model-robustness).

:class:`Inference` sends an image as ``model.infer`` says (an HTTP POST to its ``url``, or the
device's ``infer`` action: via ssh the image uploaded over SFTP to ``model.upload_dir``, via
host a private bench-host file, the action's command getting the path as ``{image}``) and
returns the :class:`~drivers.infer.Answer`. Whatever is not an answer raises
:class:`NoAnswer` with a kind the scenario reports as not observed: ``refused`` (401/403),
``rate-limited`` (429, or 503 with Retry-After), ``unreachable``, ``http-error``, ``garbage``,
``wrong-shape``, ``too-large``. Every query is counted and written to the scenario's transcript
(the image's SHA-256 and the answer, never a password).
"""

from __future__ import annotations

import hashlib
import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import DeviceError
from drivers.infer import Answer, AnswerError, InferUnavailable, parse_answer, post_image
from rig.config import InferSettings, SecretMissing


class NoAnswer(Exception):
    """The device gave no answer the rig can read; ``kind`` says why (see the module docstring)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


@dataclass
class QueryStats:
    """How many queries went to the device, how long they took, how many it refused."""

    queries: int = 0
    seconds: float = 0.0
    refused: int = 0
    rate_limited: int = 0


class Inference:
    """The device's model behind ``model.infer`` (or the ``infer`` action), for one scenario run."""

    def __init__(self, ctx, settings: InferSettings, upload_dir: str = "/tmp"):
        self.ctx, self.settings, self.upload_dir = ctx, settings, upload_dir
        self.stats = QueryStats()
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._tr, _ = ctx.transcript("infer.jsonl")
        self._auth = None
        if settings.url is not None and settings.auth is not None:
            try:
                self._auth = settings.auth.credentials(f"devices.{ctx.device_name}.model.infer.auth")
            except SecretMissing as exc:
                raise NoAnswer("no-credentials", str(exc)) from None

    def describe(self) -> str:
        """Where the images go, for part descriptions (no credentials)."""
        return f"POST {self.settings.url}" if self.settings.url else f"the infer action ({self.ctx.device.actions['infer'].via})"

    def ask(self, image: bytes, name: str = "image") -> Answer:
        """The model's answer to ``image``; raises :class:`NoAnswer` for anything else."""
        s = self.settings
        self.stats.queries += 1
        digest = hashlib.sha256(image).hexdigest()
        start = time.monotonic()
        try:
            if s.url is not None:
                body, truncated = self._http(image)
            else:
                body, truncated = self._action(image, name)
            answer = parse_answer(body, s.answer.label, s.answer.score, s.answer.scores, truncated)
        except NoAnswer as exc:
            self._tr.record("info", f"{name} sha256={digest[:16]}: no answer ({exc.kind}): {exc.reason[:300]}")
            raise
        except AnswerError as exc:
            self._tr.record("info", f"{name} sha256={digest[:16]}: unreadable answer ({exc.kind}): {exc}")
            raise NoAnswer(exc.kind, str(exc)) from None
        finally:
            self.stats.seconds += time.monotonic() - start
        self._tr.record("rx", f"{name} sha256={digest[:16]}: {answer.to_dict()}".encode()[:2000])
        return answer

    def _http(self, image: bytes) -> tuple[bytes, bool]:
        s = self.settings
        try:
            reply = post_image(s.url, image, s.content_type, s.timeout_s, s.max_answer_kb << 10, self._auth)  # type: ignore[arg-type]
        except InferUnavailable as exc:
            raise NoAnswer("unreachable", str(exc)) from None
        if reply.status in (401, 403):
            self.stats.refused += 1
            why = "no credentials in model.infer.auth" if self._auth is None else "the credentials were refused"
            raise NoAnswer("refused", f"{s.url} answered {reply.status} ({why})")
        if reply.status == 429 or (reply.status == 503 and reply.retry_after):
            self.stats.rate_limited += 1
            raise NoAnswer("rate-limited", f"{s.url} answered {reply.status} (Retry-After: {(reply.retry_after or '-')[:40]})")
        if reply.status != 200:
            raise NoAnswer("http-error", f"{s.url} answered {reply.status}")
        return reply.body, reply.truncated

    def _action(self, image: bytes, name: str) -> tuple[bytes, bool]:
        from rig.scenario import run_action

        action = self.ctx.device.actions["infer"]
        suffix = ".png" if self.settings.content_type == "image/png" else ".jpg"
        try:
            if action.via == "ssh":
                path = f"{self.upload_dir.rstrip('/')}/privrig-probe{suffix}"
                self.ctx.ssh().put(image, path)
            else:
                if self._tmp is None:
                    self._tmp = tempfile.TemporaryDirectory(prefix="privrig-infer-")
                local = Path(self._tmp.name) / f"probe{suffix}"
                local.write_bytes(image)
                path = str(local)
            status, out = run_action(self.ctx, "infer", check=False, image=path)
        except DeviceError as exc:
            raise NoAnswer("unreachable", exc.reason) from None
        limit = self.settings.max_answer_kb << 10
        raw = out.encode("utf-8", "surrogateescape")
        ok = action.expect_exit if action.expect_exit is not None else 0
        if status != ok:
            text = out.strip().splitlines()[-1][:200] if out.strip() else ""
            low = text.lower()
            if "429" in low or "rate" in low or "too many" in low:
                self.stats.rate_limited += 1
                raise NoAnswer("rate-limited", f"infer exited {status}: {text}")
            if "401" in low or "403" in low or "unauthori" in low or "forbidden" in low:
                self.stats.refused += 1
                raise NoAnswer("refused", f"infer exited {status}: {text}")
            raise NoAnswer("http-error", f"infer exited {status}: {text}")
        return raw[:limit], len(raw) > limit

    def close(self) -> None:
        """Remove the uploaded probe (via ssh) and the private folder (via host); never raises."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if self.settings.url is None and self.ctx.device.actions["infer"].via == "ssh":
            suffix = ".png" if self.settings.content_type == "image/png" else ".jpg"
            try:
                self.ctx.ssh().run(f"rm -f {shlex.quote(self.upload_dir.rstrip('/') + '/privrig-probe' + suffix)}", timeout=15)
            except DeviceError:
                pass
