"""Media and protected channels as a camera produces them, for the simulated bench.

* JPEG frames of a moving synthetic scene (OpenCV), and MJPEG multipart framing;
* a real H.264 elementary stream made by ffmpeg (libx264), split into NAL units;
* RTP packetisation of H.264 (RFC 6184 single NAL and FU-A);
* SRTP with AEAD_AES_128_GCM (RFC 7714): header authenticated, payload encrypted;
* a repeating-key XOR "scrambler" (what some firmware calls encryption);
* real TLS records from an in-memory OpenSSL session.

Used by the simulated devices (:mod:`rig.sim.camera`), by the labelled traffic the
tests measure the classifier on (:mod:`rig.sim.traffic`) and by the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import ssl
import warnings
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rig.certs import self_signed


class MediaError(Exception):
    """A media tool (ffmpeg, OpenCV) is missing or failed."""


def jpeg_frame(index: int, width: int = 320, height: int = 240, seed: int = 0, quality: int = 80) -> bytes:
    """One JPEG frame of a moving scene: gradient, shapes, noise and a frame counter."""
    import cv2

    rng = np.random.default_rng(seed * 100_003 + index)
    y, x = np.mgrid[0:height, 0:width]
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x * 255 // max(1, width - 1) + index * 3 + seed * 17) % 256
    img[..., 1] = (y * 255 // max(1, height - 1) + seed * 29) % 256
    img[..., 2] = ((x + y + index * 5) % 256).astype(np.uint8)
    for _ in range(6):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(img, (cx, cy), int(rng.integers(8, max(9, height // 4))), color, -1)
    cv2.putText(img, f"privrig sim {index:05d}", (8, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    noise = rng.integers(0, 24, img.shape, dtype=np.uint8)
    img = cv2.add(img, noise)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MediaError("OpenCV could not encode a JPEG frame")
    return buf.tobytes()


def scene(width: int = 320, height: int = 240) -> np.ndarray:
    """The bench scene a simulated camera looks at: scikit-image's astronaut (a real
    photograph with a face), as BGR."""
    import cv2
    from skimage import data

    rgb = data.astronaut()
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (width, height), interpolation=cv2.INTER_AREA)


#: the astronaut's face in scikit-image's 512x512 picture (x, y, w, h), where CenterFace and Haar put it
ASTRONAUT_FACE = (177, 66, 95, 95)
DEID_MODES = ("none", "mask", "pixelate", "blur-weak", "blur-strong")


def deidentify(img: np.ndarray, mode: str, region: tuple[int, int, int, int]) -> np.ndarray:
    """What a camera's privacy filter does to one face region: nothing, a black mask,
    8-pixel blocks, a weak (sigma 1) or a strong (sigma 6) Gaussian blur."""
    import cv2

    if mode == "none":
        return img
    out = img.copy()
    x, y, w, h = region
    face = out[y:y + h, x:x + w]
    if mode == "mask":
        face[:] = 0
    elif mode == "pixelate":
        face[:] = cv2.resize(cv2.resize(face, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_NEAREST)
    elif mode in ("blur-weak", "blur-strong"):
        face[:] = cv2.GaussianBlur(face, (0, 0), 1.0 if mode == "blur-weak" else 6.0)
    else:
        raise ValueError(f"unknown de-identification {mode!r}")
    return out


def scene_face(width: int = 320, height: int = 240) -> tuple[int, int, int, int]:
    """The face region in :func:`scene` at this size."""
    x, y, w, h = ASTRONAUT_FACE
    return (x * width // 512, y * height // 512, w * width // 512, h * height // 512)


def shutter_frames(mode: str, count: int = 20, width: int = 320, height: int = 240, seed: int = 0, deid: str = "none") -> tuple[list[bytes], list[bytes]]:
    """JPEG frames with the shutter open and closed, for one shutter behaviour.

    ``works``: closed is a dark sensor (black level plus read noise); ``ignored``: closed
    shows the scene; ``partial``: the cover blocks only the left two thirds; ``dim``: the
    scene at 12 % brightness and defocused (what a failing IR-cut or a half-closed iris
    gives); ``stop``: no frames while closed (the closed list is empty); ``refuse``: like
    ``stop`` here, and the camera app answers new requests 503 while closed. ``deid``: the
    camera's privacy filter on the face (:func:`deidentify`).
    """
    import cv2

    rng = np.random.default_rng(seed)
    base = deidentify(scene(width, height), deid, scene_face(width, height)).astype(np.float32)

    def enc(img: np.ndarray, i: int) -> bytes:
        img = np.clip(img + rng.normal(0, 3.0, img.shape), 0, 255).astype(np.uint8)
        cv2.putText(img, f"{i:04d}", (width - 60, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise MediaError("OpenCV could not encode a JPEG frame")
        return buf.tobytes()

    dark = np.full_like(base, 6.0)
    closed_img = {
        "works": dark,
        "ignored": base,
        "partial": np.concatenate([dark[:, : width * 2 // 3], base[:, width * 2 // 3:]], axis=1),
        "dim": cv2.GaussianBlur(base * 0.12, (0, 0), 4),
        "stop": None,
        "refuse": None,
    }[mode]
    opened = [enc(base, i) for i in range(count)]
    closed = [] if closed_img is None else [enc(closed_img, i) for i in range(count)]
    return opened, closed


def mjpeg_part(frame: bytes, boundary: str = "privrigframe") -> bytes:
    """One part of a multipart/x-mixed-replace MJPEG stream."""
    return f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame)}\r\n\r\n".encode() + frame + b"\r\n"


def h264_clip(cache_dir: Path, seconds: int = 4, size: str = "320x240", rate: int = 15) -> bytes:
    """A real H.264 Annex B stream from ffmpeg's libx264 (cached in ``cache_dir``)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"testsrc2-{size}-{rate}-{seconds}s-superfast.h264"
    if not out.exists():
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise MediaError("ffmpeg is not installed (scripts/setup installs it)")
        tmp = out.with_suffix(".tmp.h264")
        proc = subprocess.run(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}", "-t", str(seconds),
             "-c:v", "libx264", "-preset", "superfast", "-tune", "zerolatency", "-g", str(rate), "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(tmp)],
            capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0 or not tmp.exists():
            raise MediaError(f"ffmpeg failed: {proc.stderr.decode(errors='replace')[-300:]}")
        os.replace(tmp, out)
    return out.read_bytes()


def nal_units(stream: bytes) -> list[bytes]:
    """Split an Annex B stream at its start codes (00 00 01 / 00 00 00 01)."""
    out, pos = [], stream.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = stream.find(b"\x00\x00\x01", start)
        end = len(stream) if nxt < 0 else nxt
        nal = stream[start:end]
        if nxt >= 0 and nal.endswith(b"\x00"):  # the zero of a 4-byte start code
            nal = nal[:-1]
        if nal:
            out.append(nal)
        pos = nxt
    return out


@dataclass
class RtpPacketizer:
    """RFC 6184 packetisation (single NAL unit and FU-A) with one SSRC."""

    ssrc: int
    payload_type: int = 96
    mtu_payload: int = 1200
    seq: int = 0
    timestamp: int = 0

    def packets(self, nal: bytes, last_of_frame: bool, ts_step: int = 6000) -> list[bytes]:
        """RTP packets carrying one NAL unit (one packet, or FU-A fragments); advances the timestamp after a frame."""
        out = []
        if len(nal) <= self.mtu_payload:
            chunks = [nal]
        else:
            hdr, body = nal[0], nal[1:]
            indicator = (hdr & 0xE0) | 28
            pieces = [body[i:i + self.mtu_payload - 2] for i in range(0, len(body), self.mtu_payload - 2)]
            chunks = []
            for i, piece in enumerate(pieces):
                fu = (hdr & 0x1F) | (0x80 if i == 0 else 0) | (0x40 if i == len(pieces) - 1 else 0)
                chunks.append(bytes([indicator, fu]) + piece)
        for i, chunk in enumerate(chunks):
            marker = 0x80 if last_of_frame and i == len(chunks) - 1 else 0
            header = struct.pack("!BBHII", 0x80, marker | self.payload_type, self.seq & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
            self.seq += 1
            out.append(header + chunk)
        if last_of_frame:
            self.timestamp += ts_step
        return out


class SrtpAeadSender:
    """SRTP protection with AEAD_AES_128_GCM (RFC 7714 section 8): IV from SSRC, ROC and
    sequence number XOR the salt; the RTP header is the associated data; 16-byte tag."""

    def __init__(self, key: bytes, salt: bytes):
        if len(key) != 16 or len(salt) != 12:
            raise ValueError("AEAD_AES_128_GCM takes a 16-byte key and a 12-byte salt")
        self._aead = AESGCM(key)
        self._salt = int.from_bytes(salt, "big")
        self._roc = 0
        self._last_seq: int | None = None

    def protect(self, rtp: bytes) -> bytes:
        """The SRTP packet for one RTP packet: header in the clear, payload encrypted and tagged."""
        hl = 12 + 4 * (rtp[0] & 0x0F)
        seq = int.from_bytes(rtp[2:4], "big")
        if self._last_seq is not None and seq < self._last_seq and self._last_seq - seq > 0x8000:
            self._roc = (self._roc + 1) & 0xFFFFFFFF
        self._last_seq = seq
        ssrc = int.from_bytes(rtp[8:12], "big")
        iv = ((ssrc << 48) | (self._roc << 16) | seq) ^ self._salt
        return rtp[:hl] + self._aead.encrypt(iv.to_bytes(12, "big"), rtp[hl:], rtp[:hl])


def xor_scramble(data: bytes, key: bytes) -> bytes:
    """Repeating-key XOR from the start of ``data``: obfuscation, not encryption."""
    arr = np.frombuffer(data, dtype=np.uint8)
    k = np.resize(np.frombuffer(key, dtype=np.uint8), len(arr))
    return (arr ^ k).tobytes()


def tls_session(server_payload: list[bytes], client_payload: bytes, version: ssl.TLSVersion | None = None,
                cert_dir: Path | None = None) -> list[tuple[str, bytes]]:
    """The TLS bytes of a real OpenSSL session, as (sender, bytes) in order.

    The client sends ``client_payload`` after the handshake and the server answers with
    each of ``server_payload``; ``version`` pins both ends (TLS 1.0 needs SECLEVEL=0).
    """
    cert_dir = cert_dir or Path(tempfile.gettempdir()) / "privrig-media"
    cert, key = self_signed(cert_dir, "simcam")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    if version is not None:
        for ctx in (sctx, cctx):
            with warnings.catch_warnings():  # an old TLS version on purpose (labelled "weak" traffic)
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ctx.maximum_version = version
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    cin, cout, sin, sout = (ssl.MemoryBIO() for _ in range(4))
    client = cctx.wrap_bio(cin, cout, server_hostname="simcam")
    server = sctx.wrap_bio(sin, sout, server_side=True)
    wire: list[tuple[str, bytes]] = []

    def pump() -> None:
        for src, dst, who in ((cout, sin, "client"), (sout, cin, "server")):
            data = src.read()
            if data:
                wire.append((who, data))
                dst.write(data)

    for _ in range(20):
        done = 0
        for end in (client, server):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        pump()
        if done == 2:
            break
    else:
        raise MediaError("in-memory TLS handshake did not complete")
    client.write(client_payload)
    pump()
    server.read(65536)
    for chunk in server_payload:
        server.write(chunk)
        pump()
        try:
            while client.read(65536):
                pass
        except ssl.SSLWantReadError:
            pass
    return wire
