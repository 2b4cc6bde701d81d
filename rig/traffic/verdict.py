"""Judge each flow of a capture: encrypted, plaintext, weak, obfuscated, or not judgeable.

The order of the evidence, strongest first:

1. the protocol, identified by parsing (:mod:`rig.traffic.protocols`): a clear-text
   protocol carrying data (HTTP, RTSP, MQTT) is plaintext whatever its body looks like;
   a cryptographic protocol is judged by what its handshake negotiated (TLS/DTLS
   version and suite, SSH cipher);
2. structure in the bytes that should be protected (TLS application-data bodies, SSH
   after NEWKEYS, RTP payloads, unidentified streams): media and text signatures
   counted against the chance rate (:mod:`rig.traffic.content`); for RTP, also the
   codec payload headers (H.264/H.265 NAL headers, RFC 2435 JPEG headers) per packet,
   tested against the rate random payloads would show;
3. randomness (key-period chi-square, repeated windows) as supporting evidence, and
   as the deciding evidence only for an unidentified stream without structure:
   non-random bytes there are *obfuscated*, not encrypted.

Clear protocol headers are stripped before 2 and 3 (TLS/DTLS record headers and
explicit AEAD nonces, RTP headers, the first bytes of unidentified datagrams), so a
legitimately clear header never makes ciphertext look plain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from rig.traffic import content, protocols
from rig.traffic.content import ContentStats
from rig.traffic.flows import Capture, Flow, read_flows

#: bytes at the start of each datagram of an unidentified UDP protocol left out of the
#: randomness tests: clear headers (WireGuard's 16, a session id and counter) are normal
RAW_DATAGRAM_HEAD = 16
#: RTP payload headers must be valid in at least this fraction of packets for the codec to be named
CODEC_MIN_FRACTION = 0.9
#: RTP packets needed before payloads can be called encrypted: with fewer, a clear H.264
#: stream could not have shown its NAL headers beyond chance (0.15^12 < 1e-9)
RTP_MIN_PACKETS = 12
#: bytes an unidentified stream needs before random-looking bytes are called encrypted:
#: below this, compressed media (CABAC H.264) has too few structure markers to show
RAW_MIN_BYTES = 8192


class Channel(str, Enum):
    """What a flow's traffic is, as far as its confidentiality goes."""

    ENCRYPTED = "encrypted"
    PLAINTEXT = "plaintext"
    WEAK = "weak"
    OBFUSCATED = "obfuscated"
    CONTROL = "control"  # carries no user data (STUN, a bare SSH or TLS handshake)
    EMPTY = "empty"  # no payload at all (a port probe, a refused connection)
    UNDETERMINED = "undetermined"  # too little data to tell

    @property
    def fails(self) -> bool:
        """Plaintext, weak and obfuscated channels fail the clause."""
        return self in (Channel.PLAINTEXT, Channel.WEAK, Channel.OBFUSCATED)


@dataclass
class FlowReport:
    """One flow, its verdict and the reasons for it."""

    id: str
    proto: str
    client: tuple[str, int]
    server: tuple[str, int]
    packets: int
    bytes: int
    protocol: str
    channel: Channel
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    content: dict[str, dict] = field(default_factory=dict)  # direction -> ContentStats.to_dict()
    incomplete: list[str] = field(default_factory=list)  # holes, retransmissions, sample cut
    bytes_up: int = 0  # payload bytes client -> server
    bytes_down: int = 0  # payload bytes server -> client

    def bytes_from(self, address: str) -> int:
        """Payload bytes the host ``address`` sent in this flow."""
        return (self.bytes_up if self.client[0] == address else 0) + (self.bytes_down if self.server[0] == address else 0)

    def to_dict(self) -> dict:
        """JSON-ready form for flows.json."""
        return {
            "id": self.id, "proto": self.proto, "client": f"{self.client[0]}:{self.client[1]}", "server": f"{self.server[0]}:{self.server[1]}",
            "packets": self.packets, "bytes": self.bytes, "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
            "protocol": self.protocol, "channel": self.channel.value,
            "reasons": self.reasons, "details": self.details, "content": self.content, "incomplete": self.incomplete,
        }


@dataclass
class Analysis:
    """A capture's flow table."""

    path: str
    packets: int
    other_packets: int
    truncated_packets: int
    duration_s: float
    flows: list[FlowReport]
    stopped: str | None = None  # reading ended early at a malformed record (offset and reason)
    untracked_packets: int = 0  # packets of flows beyond the flow table's limit
    flow_limit_reached: bool = False

    def to_dict(self) -> dict:
        """JSON-ready form for flows.json."""
        return {"pcap": self.path, "packets": self.packets, "other_packets": self.other_packets, "truncated_packets": self.truncated_packets,
                "duration_s": round(self.duration_s, 3), "stopped": self.stopped, "untracked_packets": self.untracked_packets,
                "flow_limit_reached": self.flow_limit_reached, "flows": [f.to_dict() for f in self.flows]}


def analyse_capture(path: str | Path, sample_limit: int = 4 << 20) -> Analysis:
    """Read ``path`` and judge every TCP and UDP flow in it. A malformed record ends the reading
    (``stopped`` says where) and the flows read so far are judged; raises
    :class:`rig.traffic.flows.CaptureError` only when the file is not a capture at all."""
    cap: Capture = read_flows(path, sample_limit=sample_limit)
    return Analysis(str(path), cap.packets, cap.other_packets, cap.truncated_packets, max(0.0, cap.last_ts - cap.first_ts),
                    [judge(f) for f in cap.flows], cap.stopped, cap.untracked_packets, cap.flow_limit_reached)


def judge(flow: Flow) -> FlowReport:
    """The verdict on one flow with its reasons (see the module docstring for the order)."""
    rep = FlowReport(flow.id, flow.proto, flow.client, flow.server, flow.packets, flow.bytes, "raw", Channel.UNDETERMINED,
                     bytes_up=flow.up.bytes, bytes_down=flow.down.bytes)
    for name, d in (("client", flow.up), ("server", flow.down)):
        if d.holes:
            rep.incomplete.append(f"{name} stream has {d.holes} hole(s) in the capture")
        if d.full:
            rep.incomplete.append(f"{name} data beyond the first {d.kept or len(d.data)} bytes counted, not analysed")
    if flow.bytes == 0:
        rep.protocol = "none"
        rep.channel = Channel.EMPTY
        rep.reasons.append("no payload (handshake, probe or refused connection)")
        return rep
    if flow.proto == "tcp":
        _judge_tcp(flow, rep)
    else:
        _judge_udp(flow, rep)
    return rep


# -- TCP ----------------------------------------------------------------------------------

def _judge_tcp(flow: Flow, rep: FlowReport) -> None:
    up, down = flow.up.sample(), flow.down.sample()
    rep.protocol = protocols.identify_stream(up, down)
    if rep.protocol == "tls":
        _judge_tls(up, down, rep)
    elif rep.protocol == "ssh":
        _judge_ssh(up, down, rep)
    elif rep.protocol in ("http", "rtsp", "mqtt"):
        rep.channel = Channel.PLAINTEXT
        for side, data in (("client", up), ("server", down)):
            if data and rep.protocol != "mqtt":
                rep.reasons.append(f"{side} sends {rep.protocol.upper()} in the clear: {protocols.first_line(data)!r}")
            elif data:
                rep.reasons.append(f"{side} sends MQTT in the clear")
        _media_reasons({"client": content.analyse(up, randomness="none"), "server": content.analyse(down, randomness="none")}, rep)
    else:
        _judge_unidentified({"client": (up, None), "server": (down, None)}, rep)


def _judge_tls(up: bytes, down: bytes, rep: FlowReport) -> None:
    info, bodies, clean = protocols.parse_tls(up, down)
    rep.details["tls"] = info.to_dict()
    if not clean:
        rep.reasons.append("the stream stops parsing as TLS records part-way")
    stats = content.analyse(b"".join(bodies), units=bodies, skip_unit_head=protocols.explicit_nonce(info), randomness="basic")
    _crypto_verdict(rep, f"TLS {info.version or '(handshake not captured)'} {info.suite or ''}".rstrip(), info.version, info.suite, stats,
                    handshake_only=not bodies)


def _crypto_verdict(rep: FlowReport, what: str, version: str | None, suite: str | None, stats: ContentStats, handshake_only: bool) -> None:
    rep.content["protected"] = stats.to_dict()
    if version in protocols.WEAK_VERSIONS:
        rep.channel = Channel.WEAK
        rep.reasons.append(f"{what}: {version} is below TLS 1.2")
    if suite and protocols.suite_is_weak(suite):
        rep.channel = Channel.WEAK
        rep.reasons.append(f"{what}: cipher suite {suite} gives no real protection")
    if stats.structure or stats.is_text:
        rep.channel = Channel.PLAINTEXT
        rep.reasons.append(f"{what}: the protected records carry readable structure: " + _structure_text(stats))
        return
    if rep.channel is Channel.WEAK:
        return
    if handshake_only:
        rep.channel = Channel.CONTROL
        rep.reasons.append(f"{what}: handshake only, no application data")
        return
    rep.channel = Channel.ENCRYPTED
    rep.reasons.append(f"{what}: protected bytes show no plaintext structure")
    if stats.looks_random is False:
        rep.reasons.append("supporting test: protected bytes are not uniform " + _random_text(stats) + " (does not override the protocol)")


def _judge_ssh(up: bytes, down: bytes, rep: FlowReport) -> None:
    info, protected = protocols.parse_ssh(up, down)
    rep.details["ssh"] = info.to_dict()
    stats = content.analyse(protected, randomness="basic")
    what = f"SSH ({info.server_banner or 'banner not captured'})"
    if info.cipher == "none":
        rep.content["protected"] = stats.to_dict()
        rep.channel = Channel.PLAINTEXT
        rep.reasons.append(f"{what}: cipher 'none' negotiated")
        return
    _crypto_verdict(rep, f"{what}, cipher {info.cipher or 'not captured'}", None, None, stats, handshake_only=not info.newkeys)


# -- UDP ----------------------------------------------------------------------------------

def _judge_udp(flow: Flow, rep: FlowReport) -> None:
    ups, downs = flow.up.datagrams, flow.down.datagrams
    rep.protocol = protocols.identify_datagrams(ups or downs)
    if rep.protocol == "stun":
        rep.channel = Channel.CONTROL
        rep.reasons.append("STUN binding traffic (RFC 5389 magic cookie): connectivity checks, no media")
    elif rep.protocol == "rtcp":
        rep.channel = Channel.CONTROL
        rep.reasons.append("RTCP reports (RFC 3550): reception statistics and timing, no media")
    elif rep.protocol == "dtls":
        info, bodies, frac = protocols.parse_dtls(ups + downs)
        rep.details["dtls"] = info.to_dict()
        stats = content.analyse(b"".join(bodies), units=bodies, skip_unit_head=protocols.explicit_nonce(info), randomness="basic")
        _crypto_verdict(rep, f"DTLS {info.version or '(handshake not captured)'} {info.suite or ''}".rstrip(), info.version, info.suite, stats,
                        handshake_only=not bodies)
    elif rep.protocol == "quic":
        first = ups[0] if ups else downs[0]
        version = protocols.quic_version(first) or "QUIC"
        rep.details["quic"] = {"version": version}
        units = ups + downs
        stats = content.analyse(b"".join(units), units=units, skip_unit_head=21, randomness="basic")  # 1 + up to 20 bytes of connection id
        _crypto_verdict(rep, version, None, None, stats, handshake_only=False)
    elif rep.protocol == "rtp":
        _judge_rtp(ups, downs, rep)
    else:
        _judge_unidentified({"client": (b"".join(ups), ups), "server": (b"".join(downs), downs)}, rep)


def _judge_rtp(ups: list[bytes], downs: list[bytes], rep: FlowReport) -> None:
    info, payloads, frac = protocols.split_rtp(ups + downs)
    rep.details["rtp"] = info.to_dict()
    codec = _rtp_codec(payloads)
    headers = _payload_headers_repeat(ups) or _payload_headers_repeat(downs)
    stats = content.analyse(b"".join(payloads), units=payloads, randomness="none")
    if not (codec or headers or stats.structure or stats.is_text):
        stats = content.analyse(b"".join(payloads), units=payloads, prior=stats)  # randomness decides: run every test
    rep.content["payload"] = stats.to_dict()
    pts = ", ".join(str(p) for p in sorted(info.payload_types))
    if codec:
        rep.details["rtp"]["codec"] = codec[0]
    if codec or headers or stats.structure or stats.is_text:
        rep.channel = Channel.PLAINTEXT
        parts = [f"RTP (payload type {pts}) in the clear"]
        if headers:
            parts.append(f"the first payload byte repeats between consecutive packets in {headers[0]} of {headers[1]} pairs "
                         f"(p={headers[2]:.2g} for encrypted payloads): codec payload headers are readable")
        if codec:
            parts.append(f"{codec[0]} payload headers valid in {codec[1]} of {codec[2]} packets (p={codec[3]:.2g} for random payloads)")
        if stats.structure:
            parts.append(_structure_text(stats))
        rep.reasons.append("; ".join(parts))
        return
    if stats.looks_random is None or info.rtp_packets < RTP_MIN_PACKETS:
        rep.channel = Channel.UNDETERMINED
        rep.reasons.append(f"RTP (payload type {pts}): {info.rtp_packets} packets, {stats.size} payload bytes: too few to tell SRTP from clear media "
                           f"(need {RTP_MIN_PACKETS} packets and {content.MIN_RANDOM_SAMPLE} bytes)")
        return
    if stats.looks_random:
        rep.channel = Channel.ENCRYPTED
        rep.reasons.append(f"SRTP: RTP headers in the clear (payload type {pts}), payloads show no codec structure and are indistinguishable from random "
                           + _random_text(stats))
        return
    rep.channel = Channel.PLAINTEXT
    rep.reasons.append(f"RTP (payload type {pts}): payloads are not random {_random_text(stats)}: unencrypted media of a codec privrig does not parse")


def _payload_headers_repeat(datagrams: list[bytes]) -> tuple[int, int, float] | None:
    """Consecutive RTP packets of one SSRC whose first payload byte is equal.

    Every RTP payload format starts with a header that stays the same across the packets
    of a frame (H.264 FU indicator, H.265 payload header, RFC 2435's type-specific byte,
    VP8's descriptor); under SRTP the first payload byte is ciphertext and repeats with
    probability 1/256. Returns (repeats, pairs, p-value) when significant.
    """
    last: dict[bytes, int] = {}
    pairs = hits = 0
    for dg in datagrams[:4000]:
        hl = protocols.rtp_header_len(dg)
        if hl is None or hl >= len(dg) or protocols.is_rtcp(dg):
            continue
        ssrc, first = dg[8:12], dg[hl]
        if ssrc in last:
            pairs += 1
            hits += last[ssrc] == first
        last[ssrc] = first
    if pairs < 3:
        return None
    p = content.binomial_sf(hits, pairs, 1 / 256)
    return (hits, pairs, p) if hits >= 3 and p < content.SIGNIFICANCE else None


#: NAL unit types cameras send (slices, SEI, SPS, PPS, AUD, end of sequence/stream, filler);
#: data partitioning and the SVC/MVC types are left out, which keeps the chance rate low
_H264_TYPES = frozenset({1, 5, 6, 7, 8, 9, 10, 11, 12})
_H264_FU_TYPES = frozenset({1, 5, 6})  # what FU-A fragments in practice: slices, a long SEI


def _h264_ok(p: bytes) -> bool:
    if not p or p[0] & 0x80:
        return False
    t = p[0] & 0x1F
    if t in _H264_TYPES:
        return True
    if t == 24:  # STAP-A: first aggregated NAL size and header
        return len(p) >= 4 and 0 < int.from_bytes(p[1:3], "big") <= len(p) - 3 and not p[3] & 0x80 and (p[3] & 0x1F) in _H264_TYPES
    if t == 28:  # FU-A: start and end never both set, reserved bit clear
        return len(p) >= 2 and (p[1] & 0xC0) != 0xC0 and not p[1] & 0x20 and (p[1] & 0x1F) in _H264_FU_TYPES
    return False


def _h265_ok(p: bytes) -> bool:
    if len(p) < 2 or p[0] & 0x80:
        return False
    t = (p[0] >> 1) & 0x3F
    layer = ((p[0] & 1) << 5) | (p[1] >> 3)
    return t <= 49 and layer == 0 and (p[1] & 7) >= 1


def _jpeg_ok(p: bytes) -> bool:  # RFC 2435 main JPEG header
    return len(p) >= 8 and p[4] in (0, 1, 64, 65) and p[5] >= 1 and p[6] > 0 and p[7] > 0


# chance that a random payload passes each check (measured over 10^6 random payloads:
# H.264 0.141, H.265 0.0053, JPEG 0.0154), rounded up
_CODECS = (("H.264 (RFC 6184)", _h264_ok, 0.15), ("H.265 (RFC 7798)", _h265_ok, 0.02), ("JPEG (RFC 2435)", _jpeg_ok, 0.02))


def _rtp_codec(payloads: list[bytes]) -> tuple[str, int, int, float] | None:
    """The codec whose payload headers the packets carry, if any is beyond chance."""
    sample = payloads[:2000]
    n = len(sample)
    if n < 8:
        return None
    for name, ok, chance in _CODECS:
        k = sum(1 for p in sample if ok(p))
        if k >= CODEC_MIN_FRACTION * n:
            p = content.binomial_sf(k, n, chance)
            if p < content.SIGNIFICANCE:
                return name, k, n, p
    return None


# -- unidentified -------------------------------------------------------------------------

def _judge_unidentified(sides: dict[str, tuple[bytes, list[bytes] | None]], rep: FlowReport) -> None:
    stats = {}
    for side, (data, units) in sides.items():
        if data:
            skip = RAW_DATAGRAM_HEAD if units is not None else 0
            st = content.analyse(data, units=units, skip_unit_head=skip, randomness="none")
            # randomness decides only where no structure does
            stats[side] = st if (st.structure or st.is_text) else content.analyse(data, units=units, skip_unit_head=skip, prior=st)
    for side, st in stats.items():
        rep.content[side] = st.to_dict()
    plain = {s: st for s, st in stats.items() if st.structure or st.is_text}
    if plain:
        rep.channel = Channel.PLAINTEXT
        for side, st in plain.items():
            rep.reasons.append(f"{side} sends readable data on an unidentified protocol: " + _structure_text(st))
        return
    skewed = {s: st for s, st in stats.items() if st.looks_random is False}
    if skewed:
        rep.channel = Channel.OBFUSCATED
        for side, st in skewed.items():
            rep.reasons.append(f"{side} bytes are scrambled, not encrypted: {_random_text(st)}, and no cryptographic protocol was identified")
        return
    if not any(st.looks_random and st.size >= RAW_MIN_BYTES for st in stats.values()):
        rep.channel = Channel.UNDETERMINED
        rep.reasons.append(f"unidentified protocol with too few bytes to judge ({', '.join(f'{s} {st.size}' for s, st in stats.items())}; "
                           f"random-looking bytes count as encrypted from {RAW_MIN_BYTES} on)")
        return
    rep.channel = Channel.ENCRYPTED
    rep.reasons.append("unidentified protocol whose bytes have no structure and pass the randomness tests "
                       + "; ".join(f"{s} {st.size} bytes {_random_text(st)}" for s, st in stats.items() if st.looks_random)
                       + " (consistent with encryption; the protocol is not named)")


def _structure_text(stats: ContentStats) -> str:
    parts = [f"{s.what} x{s.hits} (expected {s.trials * s.chance:.2g} by chance)" for s in stats.structure]
    if stats.is_text:
        parts.append(f"{stats.text_fraction:.0%} printable text")
    return "; ".join(parts)


def _random_text(stats: ContentStats) -> str:
    bits = f"{stats.entropy_bits:.3f} bits/byte" if stats.entropy_bits is not None else "entropy n/a"
    parts = [bits]
    if stats.chi2_p is not None:
        parts.append(f"histogram chi-square p={stats.chi2_p:.2g}" + (f" at key period {stats.chi2_period}" if stats.chi2_period and stats.chi2_period > 1 else ""))
    if stats.repeat_fraction is not None:
        parts.append(f"{stats.repeat_fraction:.2%} repeated 8-byte windows")
    return "(" + ", ".join(parts) + ")"


def _media_reasons(stats: dict[str, ContentStats], rep: FlowReport) -> None:
    for side, st in stats.items():
        rep.content[side] = st.to_dict()
        if st.structure:
            rep.reasons.append(f"{side} payload: " + _structure_text(st))
