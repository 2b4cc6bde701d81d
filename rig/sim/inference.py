"""A simulated camera's model service: the device's model on onnxruntime behind a local HTTP API.

Run by the simulated bench inside a device's network namespace, listening on the namespace's
loopback only (the device's own processes use it; the rig reaches it through the device shell,
``simapp infer`` and ``simapp model-deploy``)::

    python -m rig.sim.inference --root ROOT --port 8090 --model /data/system/models/detector.onnx
    python -m rig.sim.inference --root ROOT --port 8090 --sealed /data/system/models/detector.bin
        --key KEYFILE --pubkey PEM [--rate N] [--top1]

* ``POST /infer`` with a PNG or JPEG as the body (at most 4 MiB; base64 with
  ``Content-Transfer-Encoding: base64``, as busybox wget must send it): the image decoded, resized to
  the model's 32x32 input, and the model's answer as JSON: ``{"label", "index", "score",
  "scores"}`` (the full score vector), or with ``--top1`` the label and the score rounded to two
  decimals only. With ``--rate N`` at most N queries a second are answered (a token bucket of
  2N), the rest get 429 with Retry-After.
* ``POST /model`` with ``model=PATH&signature=PATH`` (paths inside the device's root, as
  ``simapp model-deploy`` sends them): the model file loaded with onnxruntime and, once it
  loads, run from then on. With ``--pubkey`` the file's detached Ed25519 signature must verify
  against the vendor's key (403 otherwise) and the model is stored sealed (AES-GCM under
  ``--key``, a key outside the device's data roots, as a secure element would hold it); without,
  whatever onnxruntime loads is taken and stored in the clear at ``--model``.

The running model's SHA-256 is written to ``/run/model-info`` of the root (``model_sha256=``:
what the device's identify reports). Bounded: 4 MiB per image, 64 MiB per model; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

MAX_IMAGE = 4 << 20
MAX_MODEL = 64 << 20
#: the classes of the simulated cameras' model (rig.modelfile.reference_model with classes=4)
LABELS = ("person", "vehicle", "animal", "background")
SEALED_MAGIC = b"SIMENC01"


def seal(plain: bytes, key: bytes) -> bytes:
    """A model sealed as the compliant camera stores it: magic, nonce, AES-GCM ciphertext."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return SEALED_MAGIC + nonce + AESGCM(key).encrypt(nonce, plain, None)


def unseal(data: bytes, key: bytes) -> bytes:
    """The plain model of :func:`seal`'s output; raises ValueError when it is not one."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not data.startswith(SEALED_MAGIC) or len(data) < 8 + 12 + 16:
        raise ValueError("not a sealed model")
    try:
        return AESGCM(key).decrypt(data[8:20], data[20:], None)
    except InvalidTag:
        raise ValueError("the sealed model does not decrypt") from None


class ModelService:
    """The running model and how the device guards it."""

    def __init__(self, root: Path, key: bytes | None, pubkey, rate: float | None, top1: bool):
        self.root, self.key, self.pubkey, self.top1 = root, key, pubkey, top1
        self.lock = threading.Lock()
        self.session = None
        self.rate = rate
        self.tokens = 2 * rate if rate else 0.0
        self.stamp = time.monotonic()

    def load(self, data: bytes) -> None:
        """Run ``data`` from now on; raises ValueError when onnxruntime does not load it."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 (onnxruntime's own exception types)
            raise ValueError(f"the model does not load: {str(exc).splitlines()[0][:120]}") from None
        with self.lock:
            self.session = session
        info = self.root / "run" / "model-info"
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(f"model_sha256={hashlib.sha256(data).hexdigest()}\n")

    def allow(self) -> bool:
        """A query may be answered now (the rate limit's token bucket)."""
        if not self.rate:
            return True
        with self.lock:
            now = time.monotonic()
            self.tokens = min(2 * self.rate, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    def infer(self, image: bytes) -> dict:
        """The model's answer to one encoded image; raises ValueError for an image that does not decode."""
        import cv2
        import numpy as np

        img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("not an image")
        x = cv2.resize(img, (32, 32), interpolation=cv2.INTER_AREA)[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        with self.lock:
            session = self.session
        if session is None:
            raise RuntimeError("no model loaded")
        scores = [float(s) for s in session.run(None, {session.get_inputs()[0].name: x})[0][0]]
        best = max(range(len(scores)), key=scores.__getitem__)
        label = LABELS[best] if best < len(LABELS) else f"class-{best}"
        if self.top1:
            return {"label": label, "score": round(scores[best], 2)}
        return {"label": label, "index": best, "score": scores[best], "scores": scores}


def _inside(root: Path, path: str) -> Path | None:
    p = (root / path.lstrip("/")).resolve()
    return p if p.is_relative_to(root.resolve()) and p.is_file() else None


def _handler(svc: ModelService, model_path: str, sealed_path: str | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "SimCamModel/1.0"
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def _send(self, code: int, doc: dict, headers: tuple[tuple[str, str], ...] = ()) -> None:
            body = (json.dumps(doc) + "\n").encode()
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if self.path == "/infer":
                if length <= 0 or length > MAX_IMAGE:
                    self._send(413, {"error": "image too large or empty"})
                    return
                body = self.rfile.read(length)
                if self.headers.get("Content-Transfer-Encoding", "").lower() == "base64":
                    import base64
                    import binascii

                    try:
                        body = base64.b64decode(body, validate=False)
                    except (binascii.Error, ValueError):
                        self._send(400, {"error": "bad base64"})
                        return
                if not svc.allow():
                    self._send(429, {"error": "rate limited"}, (("Retry-After", "1"),))
                    return
                try:
                    self._send(200, svc.infer(body))
                except ValueError as exc:
                    self._send(400, {"error": str(exc)})
                except RuntimeError as exc:
                    self._send(503, {"error": str(exc)})
                return
            if self.path != "/model":
                self._send(404, {"error": "no such endpoint"})
                return
            form = parse_qs(self.rfile.read(min(length, 8192)).decode("utf-8", "replace"))
            path = _inside(svc.root, form.get("model", [""])[0])
            if path is None or path.stat().st_size > MAX_MODEL:
                self._send(400, {"error": "no such model file"})
                return
            data = path.read_bytes()
            if svc.pubkey is not None:
                from cryptography.exceptions import InvalidSignature

                sig_path = _inside(svc.root, form.get("signature", [""])[0])
                if sig_path is None:
                    self._send(403, {"error": "model refused: no signature"})
                    return
                try:
                    svc.pubkey.verify(sig_path.read_bytes()[:1024], data)
                except InvalidSignature:
                    self._send(403, {"error": "model refused: the vendor's signature does not verify"})
                    return
            try:
                svc.load(data)
            except ValueError as exc:
                self._send(400, {"error": str(exc)})
                return
            if sealed_path is not None and svc.key is not None:
                target = svc.root / sealed_path.lstrip("/")
                sealed = seal(data, svc.key)
                target.write_bytes(sealed)
                target.with_name(target.name + ".sha256").write_text(hashlib.sha256(sealed).hexdigest() + "\n")  # what simapp model-load checks
            else:
                (svc.root / model_path.lstrip("/")).write_bytes(data)
            self._send(200, {"ok": True, "sha256": hashlib.sha256(data).hexdigest()})

    return Handler


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--model", default="/data/system/models/detector.onnx", help="the plaintext model in the root (violating)")
    ap.add_argument("--sealed", help="the sealed model in the root (compliant)")
    ap.add_argument("--key", type=Path, help="the sealing key, outside the root")
    ap.add_argument("--pubkey", type=Path, help="the vendor's Ed25519 public key (PEM): deployments must carry its signature")
    ap.add_argument("--rate", type=float, default=None, help="queries a second answered, at most")
    ap.add_argument("--top1", action="store_true", help="answer the label and a rounded score only")
    ap.add_argument("--ready", type=Path, help="written once the model is loaded and the port listens")
    args = ap.parse_args(argv)
    key = args.key.read_bytes()[:32] if args.key else None
    pubkey = None
    if args.pubkey:
        from cryptography.hazmat.primitives import serialization

        pubkey = serialization.load_pem_public_key(args.pubkey.read_bytes())
    svc = ModelService(args.root, key, pubkey, args.rate, args.top1)
    if args.sealed:
        if key is None:
            print("--sealed needs --key", file=sys.stderr)
            return 2
        svc.load(unseal((args.root / args.sealed.lstrip("/")).read_bytes(), key))
    else:
        svc.load((args.root / args.model.lstrip("/")).read_bytes())
    server = ThreadingHTTPServer((args.listen, args.port), _handler(svc, args.model, args.sealed))
    server.daemon_threads = True
    if args.ready:
        args.ready.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
