"""Protocol identification by parsing, never by port number.

TCP streams are recognised by their first bytes (TLS records, SSH banners, HTTP and
RTSP request/status lines, MQTT CONNECT); UDP conversations by the first-byte ranges
of RFC 7983 (STUN 0-3, DTLS 20-63, RTP/RTCP 128-191) confirmed by each protocol's
own invariants (STUN's magic cookie, DTLS's version bytes, RTP's constant SSRC and
advancing sequence numbers) and by QUIC's long-header version field. Each parser
also separates what a protocol legitimately sends in the clear (record and packet
headers, handshakes) from the protected content the randomness tests look at.
"""

from __future__ import annotations

import re
import ssl
import struct
from dataclasses import dataclass, field
from functools import lru_cache

# -- TLS ----------------------------------------------------------------------------------

TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3",
                0xFEFF: "DTLSv1.0", 0xFEFD: "DTLSv1.2", 0xFEFC: "DTLSv1.3"}
#: versions below these are findings (clause 6.2.2 b asks for current protection)
WEAK_VERSIONS = {"SSLv3", "TLSv1.0", "TLSv1.1", "DTLSv1.0"}

# suites OpenSSL 3 no longer lists, by IANA number (RFC 4346 export, RC4, DES, NULL, anon)
_LEGACY_SUITES = {
    0x0000: "TLS_NULL_WITH_NULL_NULL", 0x0001: "NULL-MD5", 0x0002: "NULL-SHA", 0x0003: "EXP-RC4-MD5", 0x0004: "RC4-MD5",
    0x0005: "RC4-SHA", 0x0006: "EXP-RC2-CBC-MD5", 0x0008: "EXP-DES-CBC-SHA", 0x0009: "DES-CBC-SHA", 0x0014: "EXP-EDH-RSA-DES-CBC-SHA",
    0x0015: "EDH-RSA-DES-CBC-SHA", 0x0017: "EXP-ADH-RC4-MD5", 0x0018: "ADH-RC4-MD5", 0x0019: "EXP-ADH-DES-CBC-SHA",
    0x001A: "ADH-DES-CBC-SHA", 0xC002: "ECDH-ECDSA-RC4-SHA", 0xC007: "ECDHE-ECDSA-RC4-SHA", 0xC00C: "ECDH-RSA-RC4-SHA",
    0xC011: "ECDHE-RSA-RC4-SHA", 0xC016: "AECDH-RC4-SHA",
}
_WEAK_MARKERS = ("NULL", "RC4", "EXP", "DES-CBC-", "DES-CBC3", "3DES", "ADH", "AECDH", "anon", "MD5", "RC2", "IDEA", "SEED")


@lru_cache(maxsize=1)
def suite_names() -> dict[int, str]:
    """IANA cipher-suite number -> OpenSSL name, for every suite this host's OpenSSL knows."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    names = dict(_LEGACY_SUITES)
    for c in ctx.get_ciphers():
        names[c["id"] & 0xFFFF] = c["name"]
    return names


def suite_name(code: int) -> str:
    """OpenSSL's name of an IANA cipher-suite number, or its hex form when unknown."""
    return suite_names().get(code, f"0x{code:04X}")


def suite_is_weak(name: str) -> bool:
    """NULL, export, RC4, DES/3DES, anonymous or MD5 suites: no protection worth the name."""
    return any(m in name for m in _WEAK_MARKERS)


@dataclass
class TlsInfo:
    """What a TLS (or DTLS) handshake showed in the clear."""

    client_versions: list[str] = field(default_factory=list)
    client_suites: int = 0
    sni: str | None = None
    version: str | None = None  # negotiated (supported_versions or legacy version)
    suite: str | None = None
    alerts: int = 0
    app_records: int = 0
    change_cipher_spec: bool = False

    def to_dict(self) -> dict:
        """JSON-ready form, empty fields left out."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], 0, False)}


def explicit_nonce(info: TlsInfo) -> int:
    """Bytes of clear explicit nonce at the start of each protected record: 8 for GCM and CCM
    suites in (D)TLS 1.2 (RFC 5288, 6655), none in 1.3 or for other suites (or when the
    handshake was not captured)."""
    aead = info.suite is not None and ("GCM" in info.suite or "CCM" in info.suite)
    return 8 if aead and info.version in ("TLSv1.2", "DTLSv1.2") else 0


_TLS_HEADER = struct.Struct("!BHH")


def looks_like_tls(data: bytes) -> bool:
    """A TLS record header: content type 20-23, version 3.0-3.4, length <= 2^14 + 2048."""
    if len(data) < 5:
        return False
    ctype, version, length = _TLS_HEADER.unpack_from(data)
    return 20 <= ctype <= 23 and 0x0300 <= version <= 0x0304 and 0 < length <= 18432


def tls_records(data: bytes, limit: int = 100_000) -> tuple[list[tuple[int, bytes]], bool]:
    """Split a TLS byte stream into (content type, body); the flag says it parsed cleanly to the end
    (a last record cut by the sample limit still counts as clean)."""
    out, pos = [], 0
    while pos + 5 <= len(data) and len(out) < limit:
        ctype, version, length = _TLS_HEADER.unpack_from(data, pos)
        if not (20 <= ctype <= 24 and (version >> 8) == 3 and length <= 18432):
            return out, False
        out.append((ctype, data[pos + 5:pos + 5 + length]))
        pos += 5 + length
    return out, True


def parse_tls(client: bytes, server: bytes) -> tuple[TlsInfo, list[bytes], bool]:
    """Handshake facts, the protected record bodies (application data, both
    directions), and whether both directions parsed as TLS records throughout."""
    info = TlsInfo()
    protected: list[bytes] = []
    clean = True
    for side, data in (("client", client), ("server", server)):
        records, ok = tls_records(data)
        clean = clean and ok
        encrypted = False
        hs = bytearray()
        for ctype, body in records:
            if ctype == 22 and not encrypted:
                hs += body
            elif ctype == 20:
                info.change_cipher_spec = True
                encrypted = True  # what follows in this direction is protected (TLS <= 1.2)
            elif ctype == 21:
                info.alerts += 1
            elif ctype == 23:
                info.app_records += 1
                protected.append(body)
        _parse_handshakes(bytes(hs), side, info)
    return info, protected, clean


def _parse_handshakes(data: bytes, side: str, info: TlsInfo) -> None:
    pos = 0
    while pos + 4 <= len(data):
        mtype = data[pos]
        length = int.from_bytes(data[pos + 1:pos + 4], "big")
        body = data[pos + 4:pos + 4 + length]
        pos += 4 + length
        try:
            if mtype == 1 and side == "client":
                _client_hello(body, info)
            elif mtype == 2 and side == "server":
                _server_hello(body, info)
        except (IndexError, struct.error):
            return
        if mtype not in (1, 2):
            return  # encrypted handshake (TLS 1.3) or certificates: nothing more to read in the clear


def _extensions(body: bytes, pos: int) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    if pos + 2 > len(body):
        return out
    end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
    pos += 2
    while pos + 4 <= min(end, len(body)):
        etype, elen = struct.unpack_from("!HH", body, pos)
        out[etype] = body[pos + 4:pos + 4 + elen]
        pos += 4 + elen
    return out


def _client_hello(body: bytes, info: TlsInfo) -> None:
    legacy = int.from_bytes(body[0:2], "big")
    pos = 34
    pos += 1 + body[pos]  # session id
    nsuites = int.from_bytes(body[pos:pos + 2], "big")
    info.client_suites = nsuites // 2
    pos += 2 + nsuites
    pos += 1 + body[pos]  # compression methods
    ext = _extensions(body, pos)
    versions = [legacy]
    if 43 in ext:
        raw = ext[43][1:]
        versions = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2)]
    info.client_versions = [TLS_VERSIONS.get(v, f"0x{v:04X}") for v in versions if (v & 0x0F0F) != 0x0A0A]  # drop GREASE
    if 0 in ext and len(ext[0]) > 5:
        name = ext[0][5:5 + int.from_bytes(ext[0][3:5], "big")]
        info.sni = name.decode("ascii", "replace")[:255]


def _server_hello(body: bytes, info: TlsInfo) -> None:
    legacy = int.from_bytes(body[0:2], "big")
    pos = 34
    pos += 1 + body[pos]
    suite = int.from_bytes(body[pos:pos + 2], "big")
    pos += 3
    ext = _extensions(body, pos)
    version = int.from_bytes(ext[43][:2], "big") if 43 in ext and len(ext[43]) >= 2 else legacy
    info.version = TLS_VERSIONS.get(version, f"0x{version:04X}")
    info.suite = suite_name(suite)


# -- DTLS ---------------------------------------------------------------------------------

_DTLS_HEADER = struct.Struct("!BHHIHH")  # type, version, epoch, seq (48 bits split), length


def parse_dtls(datagrams: list[bytes]) -> tuple[TlsInfo, list[bytes], float]:
    """DTLS records in datagrams: handshake facts, protected bodies (epoch > 0) and the
    fraction of datagrams that parsed as DTLS."""
    info = TlsInfo()
    protected: list[bytes] = []
    good = 0
    for dg in datagrams:
        pos, ok = 0, True
        while pos + 13 <= len(dg):
            ctype, version, epoch, _s1, _s2, length = _DTLS_HEADER.unpack_from(dg, pos)
            if not (20 <= ctype <= 26 and version in (0xFEFF, 0xFEFD, 0xFEFC)):
                ok = False
                break
            body = dg[pos + 13:pos + 13 + length]
            if epoch > 0:
                protected.append(body)
                if ctype == 23:
                    info.app_records += 1
            elif ctype == 22 and len(body) > 12:
                mtype = body[0]
                hs = body[12:]  # DTLS handshake header is 12 bytes; fragments ignored
                try:
                    if mtype == 1:
                        _client_hello(_dtls_hello(hs), info)
                    elif mtype == 2:
                        _server_hello(hs, info)
                except (IndexError, struct.error):
                    pass
            elif ctype == 21:
                info.alerts += 1
            pos += 13 + length
        good += ok and pos == len(dg)
    return info, protected, good / len(datagrams) if datagrams else 0.0


def _dtls_hello(hs: bytes) -> bytes:
    """A DTLS ClientHello has a cookie after the session id; drop it to reuse the TLS parser."""
    pos = 34
    pos += 1 + hs[pos]
    cookie = hs[pos]
    return hs[:pos] + hs[pos + 1 + cookie:]


# -- SSH ----------------------------------------------------------------------------------

@dataclass
class SshInfo:
    """What an SSH connection showed in the clear: banners and KEXINIT cipher lists."""

    client_banner: str | None = None
    server_banner: str | None = None
    ciphers_client: list[str] = field(default_factory=list)
    ciphers_server: list[str] = field(default_factory=list)
    cipher: str | None = None  # first client cipher the server also offers (RFC 4253 7.1)
    newkeys: bool = False

    def to_dict(self) -> dict:
        """JSON-ready form, empty fields left out."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], False)}


def parse_ssh(client: bytes, server: bytes) -> tuple[SshInfo, bytes]:
    """Banners and KEXINIT cipher lists; the bytes after each side's NEWKEYS are protected."""
    info = SshInfo()
    protected = bytearray()
    for side, data in (("client", client), ("server", server)):
        end = data.find(b"\n", 0, 512)
        if end < 0:
            continue
        banner = data[:end].rstrip(b"\r").decode("ascii", "replace")[:255]
        setattr(info, f"{side}_banner", banner)
        pos = end + 1
        for _ in range(16):  # unencrypted binary packets before NEWKEYS
            if pos + 6 > len(data):
                break
            plen = int.from_bytes(data[pos:pos + 4], "big")
            if plen > 35000 or plen < 2:
                break
            msg = data[pos + 5:pos + 4 + plen - data[pos + 4]]
            pos += 4 + plen
            if msg[:1] == b"\x14":  # KEXINIT: cookie 16, then name-lists
                lists, p = [], 17
                for _ in range(4):
                    n = int.from_bytes(msg[p:p + 4], "big")
                    lists.append(msg[p + 4:p + 4 + n].decode("ascii", "replace").split(","))
                    p += 4 + n
                setattr(info, f"ciphers_{side}", lists[2] if side == "client" else lists[3])
            elif msg[:1] == b"\x15":  # NEWKEYS
                info.newkeys = True
                protected += data[pos:]
                break
    info.cipher = next((c for c in info.ciphers_client if c in info.ciphers_server), None)
    return info, bytes(protected)


# -- RTP / RTCP / STUN / QUIC -------------------------------------------------------------

@dataclass
class RtpInfo:
    """RTP/RTCP counts of a conversation: payload types, SSRCs, packets."""

    payload_types: dict[int, int] = field(default_factory=dict)
    ssrcs: int = 0
    rtcp_packets: int = 0
    rtp_packets: int = 0

    def to_dict(self) -> dict:
        """JSON-ready form, empty fields left out."""
        return {"payload_types": {str(k): v for k, v in sorted(self.payload_types.items())}, "ssrcs": self.ssrcs,
                "rtp_packets": self.rtp_packets, "rtcp_packets": self.rtcp_packets}


def rtp_header_len(dg: bytes) -> int | None:
    """Length of the RTP header (fixed part, CSRCs, extension) or None if not RTP v2."""
    if len(dg) < 12 or dg[0] >> 6 != 2:
        return None
    n = 12 + 4 * (dg[0] & 0x0F)
    if dg[0] & 0x10:
        if len(dg) < n + 4:
            return None
        n += 4 + 4 * int.from_bytes(dg[n + 2:n + 4], "big")
    return n if n <= len(dg) else None


def is_rtcp(dg: bytes) -> bool:
    """RTCP (RFC 3550): version 2, packet type 192-223, first packet's length within the datagram."""
    return len(dg) >= 8 and dg[0] >> 6 == 2 and 192 <= dg[1] <= 223 and (int.from_bytes(dg[2:4], "big") + 1) * 4 <= len(dg)


def split_rtp(datagrams: list[bytes]) -> tuple[RtpInfo, list[bytes], float]:
    """RTP payloads (headers and padding stripped, RTCP set aside), and the fraction of
    datagrams that are RTP/RTCP with a consistent SSRC and advancing sequence numbers."""
    info = RtpInfo()
    payloads: list[bytes] = []
    last_seq: dict[int, int] = {}
    consistent = 0
    for dg in datagrams:
        if is_rtcp(dg):
            info.rtcp_packets += 1
            consistent += 1
            continue
        hl = rtp_header_len(dg)
        if hl is None:
            continue
        info.rtp_packets += 1
        pt = dg[1] & 0x7F
        info.payload_types[pt] = info.payload_types.get(pt, 0) + 1
        seq = int.from_bytes(dg[2:4], "big")
        ssrc = int.from_bytes(dg[8:12], "big")
        prev = last_seq.get(ssrc)
        if prev is not None and 0 < (seq - prev) & 0xFFFF < 64:
            consistent += 1
        last_seq[ssrc] = seq
        end = len(dg)
        if dg[0] & 0x20 and dg[-1] and dg[-1] <= end - hl:  # padding
            end -= dg[-1]
        payloads.append(dg[hl:end])
    info.ssrcs = len(last_seq)
    if not datagrams or info.ssrcs > max(2, len(datagrams) // 4):
        return info, payloads, 0.0  # a new "SSRC" in most packets: random bytes, not RTP
    # the first packet of each SSRC has no predecessor: do not hold it against the flow
    frac = (consistent + len(last_seq)) / len(datagrams)
    return info, payloads, min(1.0, frac)


def is_stun(dg: bytes) -> bool:
    """A STUN message (RFC 5389): first byte 0-3, magic cookie, length matching the datagram."""
    return len(dg) >= 20 and dg[0] < 4 and dg[4:8] == b"\x21\x12\xa4\x42" and int.from_bytes(dg[2:4], "big") + 20 == len(dg)


QUIC_VERSIONS = {0x00000001: "QUICv1", 0x6B3343CF: "QUICv2"}


def quic_version(dg: bytes) -> str | None:
    """The QUIC version named by a long-header packet, or None."""
    if len(dg) < 7 or dg[0] & 0xC0 != 0xC0:
        return None
    v = int.from_bytes(dg[1:5], "big")
    if v in QUIC_VERSIONS:
        return QUIC_VERSIONS[v]
    if v >> 8 == 0xFF0000:
        return f"QUIC draft-{v & 0xFF}"
    return None


# -- text protocols -----------------------------------------------------------------------

_HTTP_REQ = re.compile(rb"^(GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|CONNECT) \S{1,2048} HTTP/1\.[01]\r?\n")
_HTTP_RESP = re.compile(rb"^HTTP/1\.[01] \d{3}")
_RTSP_REQ = re.compile(rb"^(OPTIONS|DESCRIBE|SETUP|PLAY|PAUSE|TEARDOWN|ANNOUNCE|RECORD|GET_PARAMETER|SET_PARAMETER) \S{1,2048} RTSP/1\.0\r?\n")
_RTSP_RESP = re.compile(rb"^RTSP/1\.0 \d{3}")


def first_line(data: bytes) -> str:
    """The first line of a text protocol, bounded and decoded for a report."""
    line = data[:200].split(b"\n", 1)[0].rstrip(b"\r")
    return line.decode("latin-1")


def identify_stream(client: bytes, server: bytes) -> str:
    """Name the protocol of a TCP stream from its first bytes (either direction)."""
    for data in (client, server):
        if not data:
            continue
        if looks_like_tls(data):
            return "tls"
        if data.startswith(b"SSH-"):
            return "ssh"
        if _HTTP_REQ.match(data) or _HTTP_RESP.match(data):
            return "http"
        if _RTSP_REQ.match(data) or _RTSP_RESP.match(data):
            return "rtsp"
        if _is_mqtt_connect(data):
            return "mqtt"
    return "raw"


def _is_mqtt_connect(data: bytes) -> bool:
    if len(data) < 10 or data[0] != 0x10:
        return False
    pos = 1
    for _ in range(4):  # remaining length varint
        if pos >= len(data):
            return False
        if not data[pos] & 0x80:
            break
        pos += 1
    pos += 1
    return data[pos:pos + 6] == b"\x00\x04MQTT" or data[pos:pos + 8] == b"\x00\x06MQIsdp"


def identify_datagrams(datagrams: list[bytes]) -> str:
    """Name the protocol of a UDP conversation by RFC 7983 first-byte ranges plus each
    protocol's invariants, by majority over the first datagrams."""
    head = datagrams[:64]
    if not head:
        return "raw"
    votes: dict[str, int] = {}
    for dg in head:
        b0 = dg[0] if dg else -1
        if 0 <= b0 <= 3 and is_stun(dg):
            kind = "stun"
        elif 20 <= b0 <= 63 and len(dg) >= 13 and dg[1:3] in (b"\xfe\xff", b"\xfe\xfd", b"\xfe\xfc"):
            kind = "dtls"
        elif 128 <= b0 <= 191 and (is_rtcp(dg) or rtp_header_len(dg) is not None):
            kind = "rtp"
        elif b0 >= 192 and quic_version(dg):
            kind = "quic"
        else:
            kind = "raw"
        votes[kind] = votes.get(kind, 0) + 1
    kind, count = max(votes.items(), key=lambda kv: kv[1])
    if kind == "rtp":
        if all(is_rtcp(dg) for dg in head) and all(200 <= dg[1] <= 204 for dg in head):
            return "rtcp"  # SR, RR, SDES, BYE, APP with consistent lengths
        # random bytes fall in 128-191 a quarter of the time: demand RTP's invariants
        _, _, consistent = split_rtp(head)
        if consistent < 0.8 or len(head) < 3:
            return "raw"
    if kind == "quic" and count < len(head) / 4:
        return "raw"
    if kind != "quic" and count < len(head) * 0.6:
        # QUIC short-header packets carry no version; a flow that opened with long headers stays QUIC
        return "quic" if votes.get("quic", 0) and quic_version(head[0]) else "raw"
    return kind
