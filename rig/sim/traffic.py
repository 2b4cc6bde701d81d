"""Labelled traffic written straight to pcap: the classifier's test set and benchmark load.

Each *kind* builds one flow whose true nature is known, from real content (OpenCV
JPEG frames, ffmpeg H.264, OpenSSL TLS records, AES-GCM): the tests measure the
classifier's error rate over many short flows of every kind, and
``benchmarks/capture.py`` writes a large capture from the same kinds.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rig.sim import media

MSS = 1448


class PcapWriter:
    """A classic pcap file (Ethernet, microsecond timestamps) with TCP/IPv4 and UDP/IPv4 packets."""

    def __init__(self, fh: BinaryIO, start: float | None = None):
        self.fh = fh
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.t = start if start is not None else time.time()
        self.packets = 0
        self.bytes = 0

    def _frame(self, src: str, dst: str, proto: int, l4: bytes) -> None:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self.packets & 0xFFFF, 0x4000, 64, proto, 0,
                         bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
        frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + l4
        self.t += 0.0002
        sec = int(self.t)
        self.fh.write(struct.pack("<IIII", sec, int((self.t - sec) * 1e6), len(frame), len(frame)))
        self.fh.write(frame)
        self.packets += 1
        self.bytes += len(frame) + 16

    def udp(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        """Append one UDP/IPv4 packet."""
        self._frame(src[0], dst[0], 17, struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload)

    def tcp(self, src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, payload: bytes = b"") -> None:
        """Append one TCP/IPv4 segment."""
        self._frame(src[0], dst[0], 6, struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0) + payload)


def tcp_conversation(w: PcapWriter, client: tuple[str, int], server: tuple[str, int], exchange: list[tuple[str, bytes]]) -> None:
    """Handshake, the (sender, bytes) exchange cut into MSS segments, and FIN."""
    seq = {"client": random.getrandbits(32), "server": random.getrandbits(32)}
    ends = {"client": (client, server), "server": (server, client)}
    w.tcp(client, server, seq["client"], 0, 0x02)
    w.tcp(server, client, seq["server"], seq["client"] + 1, 0x12)
    seq = {k: v + 1 for k, v in seq.items()}
    w.tcp(client, server, seq["client"], seq["server"], 0x10)
    for who, data in exchange:
        src, dst = ends[who]
        other = "server" if who == "client" else "client"
        for i in range(0, len(data), MSS):
            seg = data[i:i + MSS]
            w.tcp(src, dst, seq[who], seq[other], 0x18, seg)
            seq[who] += len(seg)
    w.tcp(client, server, seq["client"], seq["server"], 0x11)
    w.tcp(server, client, seq["server"], seq["client"] + 1, 0x11)


@dataclass(frozen=True)
class Kind:
    """One kind of labelled flow: how to make it and the verdict it must get."""

    name: str
    expected: str  # a rig.traffic.verdict.Channel value
    make: Callable[["Generator", PcapWriter, int], None]
    what: str


class Generator:
    """Builds labelled flows; content sources are made once and reused with offsets."""

    def __init__(self, cache_dir: Path, seed: int = 1, scale: float = 1.0):
        self.cache_dir = cache_dir
        self.scale = scale  # < 1: shorter flows (fewer frames, NAL units, events)
        self.rng = random.Random(seed)
        self._h264: list[bytes] | None = None
        self._frames: dict[int, bytes] = {}
        self._port = 20000

    def n(self, base: int) -> int:
        """``base`` items scaled to this generator's flow length (at least one)."""
        return max(1, round(base * self.scale))

    def frames(self, n: int, start: int) -> list[bytes]:
        """``n`` JPEG frames starting at ``start`` (64 distinct frames, rendered once)."""
        out = []
        for i in range(start, start + n):
            key = i % 64
            if key not in self._frames:
                self._frames[key] = media.jpeg_frame(key, seed=3)
            out.append(self._frames[key])
        return out

    def nals(self, n: int, start: int) -> list[bytes]:
        """``n`` H.264 NAL units of the ffmpeg clip starting at ``start``, cycling."""
        if self._h264 is None:
            self._h264 = media.nal_units(media.h264_clip(self.cache_dir))
        nals = self._h264
        return [nals[(start + i) % len(nals)] for i in range(n)]

    def endpoints(self) -> tuple[tuple[str, int], tuple[str, int]]:
        """A fresh (client, server) pair in 198.18.0.0/15, so every flow has its own 5-tuple."""
        self._port = self._port + 1 if self._port < 59999 else 20000  # client ports 20000-59999, in turn
        host = f"198.18.{self.rng.randrange(1, 250)}.{self.rng.randrange(2, 250)}"
        return (host, self._port), ("198.18.0.1", self.rng.choice([80, 443, 5004, 8080, 8443, 9000, 40000 + self._port % 1000]))


# -- kinds ------------------------------------------------------------------------------------

def _mjpeg_body(g: Generator, i: int, frames: int) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=privrigframe\r\n\r\n"
    return head + b"".join(media.mjpeg_part(f) for f in g.frames(frames, i))


def _mjpeg_http(g: Generator, w: PcapWriter, i: int) -> None:
    cli, srv = g.endpoints()
    tcp_conversation(w, cli, srv, [("client", b"GET /stream.mjpg HTTP/1.1\r\nHost: cam\r\n\r\n"), ("server", _mjpeg_body(g, i, g.n(2)))])


def _mjpeg_tls(g: Generator, w: PcapWriter, i: int, version: ssl.TLSVersion | None = None) -> None:
    cli, srv = g.endpoints()
    body = _mjpeg_body(g, i, g.n(2))
    wire = media.tls_session([body[j:j + 8192] for j in range(0, len(body), 8192)], b"GET /stream.mjpg HTTP/1.1\r\nHost: cam\r\n\r\n",
                             version=version, cert_dir=g.cache_dir)
    tcp_conversation(w, cli, srv, wire)


def _tls10(g: Generator, w: PcapWriter, i: int) -> None:
    _mjpeg_tls(g, w, i, ssl.TLSVersion.TLSv1)


def _rtp_packets(g: Generator, i: int, nals: int) -> list[bytes]:
    pk = media.RtpPacketizer(ssrc=g.rng.getrandbits(32), seq=g.rng.getrandbits(16), timestamp=g.rng.getrandbits(32))
    out = []
    for nal in g.nals(nals, i * 7):
        out += pk.packets(nal, last_of_frame=(nal[0] & 0x1F) in (1, 5))
    return out


def _rtp_h264(g: Generator, w: PcapWriter, i: int) -> None:
    cli, srv = g.endpoints()
    for p in _rtp_packets(g, i, g.n(12)):
        w.udp(cli, srv, p)


def _srtp(g: Generator, w: PcapWriter, i: int) -> None:
    cli, srv = g.endpoints()
    sender = media.SrtpAeadSender(os.urandom(16), os.urandom(12))
    for p in _rtp_packets(g, i, g.n(12)):
        w.udp(cli, srv, sender.protect(p))


def _xor_udp(g: Generator, w: PcapWriter, i: int) -> None:
    cli, srv = g.endpoints()
    key = bytes(g.rng.getrandbits(8) for _ in range((1, 3, 4, 8, 13, 16, 32, 64)[i % 8]))
    for frame in g.frames(g.n(2), i):
        scrambled = media.xor_scramble(frame, key)
        for j in range(0, len(scrambled), 1200):
            w.udp(cli, srv, scrambled[j:j + 1200])


def _aead_udp(g: Generator, w: PcapWriter, i: int) -> None:
    """A custom protocol done right: clear 16-byte header (session, counter), AES-GCM body."""
    cli, srv = g.endpoints()
    aead = AESGCM(os.urandom(16))
    session = g.rng.getrandbits(32)
    for n, frame in enumerate(g.frames(g.n(2), i)):
        for j in range(0, len(frame), 1200):
            counter = n * 1000 + j
            header = struct.pack("!IIQ", 0x50525631, session, counter)
            w.udp(cli, srv, header + aead.encrypt(struct.pack("!IQ", session, counter), frame[j:j + 1200], header))


def _h264_tcp(g: Generator, w: PcapWriter, i: int) -> None:
    cli, srv = g.endpoints()
    stream = b"".join(b"\x00\x00\x00\x01" + n for n in g.nals(g.n(10), i * 5))
    tcp_conversation(w, cli, srv, [("server", stream)])


def _json_tcp(g: Generator, w: PcapWriter, i: int) -> None:
    cli, srv = g.endpoints()
    events = [json.dumps({"event": "person", "camera": "cam-1", "t": 1700000000 + n, "box": [g.rng.randrange(640) for _ in range(4)],
                          "score": round(g.rng.random(), 3)}).encode() + b"\n" for n in range(g.n(40))]
    tcp_conversation(w, cli, srv, [("client", b"".join(events))])


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("mjpeg-http", "plaintext", _mjpeg_http, "MJPEG over HTTP"),
    Kind("mjpeg-tls", "encrypted", _mjpeg_tls, "MJPEG over TLS (OpenSSL, default versions)"),
    Kind("tls1.0", "weak", _tls10, "MJPEG over TLS 1.0"),
    Kind("rtp-h264", "plaintext", _rtp_h264, "H.264 (libx264) in RTP, clear"),
    Kind("srtp-aead", "encrypted", _srtp, "the same RTP under SRTP AEAD_AES_128_GCM"),
    Kind("xor-udp", "obfuscated", _xor_udp, "JPEG frames XOR-scrambled with a 1- to 64-byte key, in UDP"),
    Kind("aead-udp", "encrypted", _aead_udp, "JPEG frames under AES-GCM with a clear 16-byte header, in UDP"),
    Kind("h264-tcp", "plaintext", _h264_tcp, "H.264 Annex B over raw TCP"),
    Kind("json-tcp", "plaintext", _json_tcp, "JSON events over raw TCP"),
)}


def write_labelled(path: Path, per_kind: int, cache_dir: Path, seed: int = 1, kinds: list[str] | None = None, scale: float = 1.0) -> list[str]:
    """Write ``per_kind`` flows of every kind to ``path``; return the kind of each flow in order."""
    g = Generator(cache_dir, seed, scale)
    labels: list[str] = []
    with path.open("wb") as fh:
        w = PcapWriter(fh)
        for i in range(per_kind):
            for name in kinds or list(KINDS):
                KINDS[name].make(g, w, i)
                labels.append(name)
    return labels
