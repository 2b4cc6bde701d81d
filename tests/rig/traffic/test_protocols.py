"""Protocol identification by parsing: each parser on real bytes, and ports never consulted."""

from __future__ import annotations

import os
import ssl
import struct
from pathlib import Path

from rig.sim import media
from rig.traffic import protocols


def test_tls_session_is_parsed_from_real_openssl_bytes(tmp_path: Path) -> None:
    wire = media.tls_session([b"x" * 5000], b"GET / HTTP/1.1\r\n\r\n", cert_dir=tmp_path)
    client = b"".join(d for who, d in wire if who == "client")
    server = b"".join(d for who, d in wire if who == "server")
    assert protocols.identify_stream(client, server) == "tls"
    info, bodies, clean = protocols.parse_tls(client, server)
    assert clean and info.version == "TLSv1.3" and info.suite == "TLS_AES_256_GCM_SHA384"
    assert info.sni == "simcam" and "TLSv1.3" in info.client_versions
    assert sum(len(b) for b in bodies) > 5000  # the application data, record headers stripped


def test_tls12_suite_and_version(tmp_path: Path) -> None:
    wire = media.tls_session([b"y" * 100], b"hi", version=ssl.TLSVersion.TLSv1_2, cert_dir=tmp_path)
    info, _, _ = protocols.parse_tls(b"".join(d for w, d in wire if w == "client"), b"".join(d for w, d in wire if w == "server"))
    assert info.version == "TLSv1.2" and info.change_cipher_spec and "GCM" in (info.suite or "")


def test_weak_suite_names() -> None:
    assert protocols.suite_is_weak(protocols.suite_name(0x0004))  # RC4-MD5
    assert protocols.suite_is_weak("NULL-SHA256") and protocols.suite_is_weak("ADH-AES128-SHA")
    assert not protocols.suite_is_weak(protocols.suite_name(0x1302))  # TLS_AES_256_GCM_SHA384
    assert not protocols.suite_is_weak("ECDHE-RSA-AES128-GCM-SHA256")


def _ssh_packet(payload: bytes) -> bytes:
    pad = 8 - (len(payload) + 5) % 8 + 8
    return struct.pack("!IB", len(payload) + pad + 1, pad) + payload + bytes(pad)


def _kexinit(ciphers: str) -> bytes:
    lists = ["curve25519-sha256", "ssh-ed25519", ciphers, ciphers, "hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""]
    return b"\x14" + os.urandom(16) + b"".join(struct.pack("!I", len(x)) + x.encode() for x in lists) + b"\x00" + bytes(4)


def test_ssh_cipher_and_protected_part() -> None:
    secret = os.urandom(3000)
    client = b"SSH-2.0-privrig\r\n" + _ssh_packet(_kexinit("chacha20-poly1305@openssh.com,aes128-ctr")) + _ssh_packet(b"\x15") + secret
    server = b"SSH-2.0-OpenSSH_9.2\r\n" + _ssh_packet(_kexinit("aes128-ctr")) + _ssh_packet(b"\x15") + os.urandom(100)
    assert protocols.identify_stream(client, server) == "ssh"
    info, protected = protocols.parse_ssh(client, server)
    assert info.cipher == "aes128-ctr" and info.newkeys and info.server_banner == "SSH-2.0-OpenSSH_9.2"
    assert secret in protected


def test_text_protocols_by_first_line_not_port() -> None:
    assert protocols.identify_stream(b"DESCRIBE rtsp://cam/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", b"") == "rtsp"
    assert protocols.identify_stream(b"GET /x HTTP/1.1\r\n", b"") == "http"
    assert protocols.identify_stream(b"", b"HTTP/1.0 200 OK\r\n") == "http"
    connect = b"\x10\x12\x00\x04MQTT\x04\x02\x00\x3c\x00\x06camera"
    assert protocols.identify_stream(connect, b"") == "mqtt"
    assert protocols.identify_stream(os.urandom(100), b"") == "raw"


def test_udp_demultiplexing_by_rfc7983_ranges() -> None:
    stun = [b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12)] * 3
    assert protocols.identify_datagrams(stun) == "stun"
    dtls = [b"\x16\xfe\xfd" + bytes(8) + b"\x00\x05" + os.urandom(5)] * 3
    assert protocols.identify_datagrams(dtls) == "dtls"
    quic = [b"\xc3\x00\x00\x00\x01\x08" + os.urandom(60)] * 3
    assert protocols.identify_datagrams(quic) == "quic"
    pk = media.RtpPacketizer(ssrc=0x1234)
    rtp = [p for _ in range(10) for p in pk.packets(os.urandom(300), last_of_frame=True)]
    assert protocols.identify_datagrams(rtp) == "rtp"
    rtcp = [b"\x80\xc8\x00\x06" + os.urandom(24)] * 2
    assert protocols.identify_datagrams(rtcp) == "rtcp"


def test_random_datagrams_in_the_rtp_range_are_not_rtp() -> None:
    """A quarter of random first bytes fall in 128-191: RTP also needs a constant SSRC and advancing sequence."""
    fake = [bytes([0x80]) + os.urandom(200) for _ in range(30)]
    assert protocols.identify_datagrams(fake) == "raw"


def test_rtp_split_strips_headers_and_padding() -> None:
    hdr = struct.pack("!BBHII", 0xA0, 96, 1, 0, 7)  # padding bit set
    info, payloads, frac = protocols.split_rtp([hdr + b"PAYLOAD" + b"\x00\x00\x03"])
    assert payloads == [b"PAYLOAD"] and info.payload_types == {96: 1}
