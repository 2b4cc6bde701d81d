"""Read a capture file and rebuild its flows.

One pass over a pcap or pcapng file (framing by :mod:`dpkt`; link, IP, TCP and UDP
headers by ``struct`` on the raw bytes, which is what makes the pass fast). TCP
streams are reassembled per direction (retransmissions and overlaps trimmed,
out-of-order segments held in a bounded buffer, holes counted); UDP datagrams are
kept whole. Per direction at most ``sample_limit`` bytes are kept for analysis;
packets and bytes beyond that are still counted, so memory stays bounded on a
capture of any size while the flow table stays exact.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

#: bytes of payload kept per flow direction for analysis
SAMPLE_LIMIT = 4 << 20
#: out-of-order TCP segments held per direction before a hole is declared
PENDING_LIMIT = 512

_U16 = struct.Struct("!H")
_TCP = struct.Struct("!HHIIBB")  # sport dport seq ack offset flags
_UDP = struct.Struct("!HHH")

SYN, FIN, RST = 0x02, 0x01, 0x04

# link types: Ethernet, raw IP (three numbers), Linux cooked v1 and v2, BSD loopback
_ETHERNET, _RAW, _SLL, _SLL2, _NULL = 1, (12, 14, 101), 113, 276, 0


class CaptureError(Exception):
    """The file is not a capture privrig can read (named in the message)."""


@dataclass(slots=True)
class Direction:
    """One direction of a flow: what it carried and the sample kept of it."""

    packets: int = 0
    bytes: int = 0  # transport payload bytes seen (TCP: before reassembly)
    data: bytearray = field(default_factory=bytearray)  # TCP: reassembled stream prefix
    datagrams: list[bytes] = field(default_factory=list)  # UDP: kept payloads
    kept: int = 0
    full: bool = False  # the sample limit was reached
    next_seq: int | None = None
    pending: dict[int, bytes] = field(default_factory=dict)
    holes: int = 0
    retransmitted: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0

    def sample(self) -> bytes:
        """The kept bytes of this direction (TCP stream prefix or datagrams joined)."""
        return bytes(self.data) if self.data else b"".join(self.datagrams)


@dataclass(slots=True)
class Flow:
    """A TCP connection or UDP conversation; ``client`` is the side that spoke first."""

    proto: str  # "tcp" | "udp"
    client: tuple[str, int]
    server: tuple[str, int]
    up: Direction = field(default_factory=Direction)  # client -> server
    down: Direction = field(default_factory=Direction)  # server -> client
    syn_seen: bool = False
    first_ts: float = 0.0
    last_ts: float = 0.0

    @property
    def id(self) -> str:
        """``tcp 198.18.0.1:40000 > 198.18.0.14:8443``: stable and readable."""
        return f"{self.proto} {_ep(self.client)} > {_ep(self.server)}"

    @property
    def packets(self) -> int:
        return self.up.packets + self.down.packets

    @property
    def bytes(self) -> int:
        return self.up.bytes + self.down.bytes


@dataclass
class Capture:
    """Everything one pass over a capture file produced."""

    path: str
    linktype: int
    packets: int = 0
    ip_packets: int = 0
    other_packets: int = 0  # ARP, ICMP, IPv6 ND, fragments: counted, not analysed
    truncated_packets: int = 0  # captured shorter than on the wire (snaplen, cut file): counted, not analysed
    flows: list[Flow] = field(default_factory=list)
    first_ts: float = 0.0
    last_ts: float = 0.0


def _ep(ep: tuple[str, int]) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reader(fh):  # type: ignore[no-untyped-def]
    magic = fh.read(4)
    fh.seek(0)
    try:
        if magic == b"\x0a\x0d\x0d\x0a":
            return dpkt.pcapng.Reader(fh)
        return dpkt.pcap.Reader(fh)
    except (ValueError, dpkt.dpkt.NeedData, dpkt.dpkt.UnpackError) as exc:
        raise CaptureError(f"{fh.name}: not a pcap or pcapng file ({exc})") from None


def read_flows(path: str | Path, sample_limit: int = SAMPLE_LIMIT) -> Capture:
    """Read ``path`` once and return its flows in order of first packet.

    Guarantees: every IPv4/IPv6 TCP or UDP packet is counted in exactly one flow;
    at most ``sample_limit`` payload bytes per direction are held in memory; a
    truncated last record ends the pass without an exception.
    """
    table: dict[tuple, tuple[Flow, tuple[bytes, int]]] = {}
    with open(path, "rb") as fh:
        reader = _reader(fh)
        linktype = reader.datalink()
        cap = Capture(path=str(path), linktype=linktype)
        if linktype == _ETHERNET:
            l3 = _l3_ethernet
        elif linktype in _RAW:
            l3 = _l3_raw
        elif linktype == _SLL:
            l3 = _l3_sll
        elif linktype == _SLL2:
            l3 = _l3_sll2
        elif linktype == _NULL:
            l3 = _l3_null
        else:
            raise CaptureError(f"{path}: link type {linktype} is not supported (Ethernet, raw IP, Linux cooked, loopback are)")
        packets = 0
        first_ts = None
        ts = 0.0
        try:
            for ts, buf in reader:
                packets += 1
                if first_ts is None:
                    first_ts = ts
                off, ver = l3(buf)
                if ver == 4:
                    if len(buf) < off + 20:
                        cap.other_packets += 1
                        continue
                    ihl = (buf[off] & 0x0F) * 4
                    total = _U16.unpack_from(buf, off + 2)[0]
                    frag = _U16.unpack_from(buf, off + 6)[0]
                    proto = buf[off + 9]
                    if frag & 0x1FFF or (proto != 6 and proto != 17):
                        cap.other_packets += 1
                        continue
                    src = buf[off + 12:off + 16]
                    dst = buf[off + 16:off + 20]
                    end = off + total if total else len(buf)
                    if end > len(buf):  # cut by the snap length or a capture killed mid-write
                        cap.truncated_packets += 1
                        continue
                    t = off + ihl
                elif ver == 6:
                    if len(buf) < off + 40:
                        cap.other_packets += 1
                        continue
                    plen = _U16.unpack_from(buf, off + 4)[0]
                    proto = buf[off + 6]
                    src = buf[off + 8:off + 24]
                    dst = buf[off + 24:off + 40]
                    t = off + 40
                    end = t + plen
                    if end > len(buf):
                        cap.truncated_packets += 1
                        continue
                    while proto in (0, 43, 60) and t + 8 <= end:  # hop-by-hop, routing, destination options
                        proto, t = buf[t], t + 8 + buf[t + 1] * 8
                    if proto != 6 and proto != 17:
                        cap.other_packets += 1
                        continue
                else:
                    cap.other_packets += 1
                    continue
                cap.ip_packets += 1
                if proto == 6:
                    if end < t + 20:
                        cap.truncated_packets += 1
                        continue
                    sport, dport, seq, _ack, doff, flags = _TCP.unpack_from(buf, t)
                    payload = buf[t + (doff >> 4) * 4:end]
                else:
                    if end < t + 8:
                        cap.truncated_packets += 1
                        continue
                    sport, dport, _ulen = _UDP.unpack_from(buf, t)
                    payload = buf[t + 8:end]
                    flags = seq = 0
                a, b = (src, sport), (dst, dport)
                key = (proto, a, b) if a < b else (proto, b, a)
                entry = table.get(key)
                if entry is None:
                    entry = table[key] = _new_flow(proto, a, b, flags, ts)
                flow, client = entry
                d = flow.up if client == a else flow.down
                if not d.packets:
                    d.first_ts = ts
                d.packets += 1
                d.last_ts = ts
                flow.last_ts = ts
                n = len(payload)
                d.bytes += n
                if proto == 6:
                    _tcp_segment(d, flow, seq, flags, payload, sample_limit)
                elif n and not d.full:
                    d.datagrams.append(payload)
                    d.kept += n
                    if d.kept >= sample_limit:
                        d.full = True
        except (dpkt.dpkt.NeedData, struct.error, ValueError):
            pass  # a capture cut short (tcpdump killed): keep what was read
        cap.packets = packets
        cap.first_ts = first_ts or 0.0
        cap.last_ts = ts
    for flow, _ in table.values():
        for d in (flow.up, flow.down):
            _flush_pending(d, sample_limit)
    cap.flows = sorted((f for f, _ in table.values()), key=lambda f: f.first_ts)
    return cap


def _new_flow(proto: int, a: tuple[bytes, int], b: tuple[bytes, int], flags: int, ts: float) -> tuple[Flow, tuple[bytes, int]]:
    # the sender of the first packet is the client, unless it is a SYN-ACK or the
    # conversation was caught mid-stream from the well-known side
    if proto == 6 and flags & SYN and flags & 0x10:
        client, server = b, a
    elif proto == 6 and not flags & SYN and a[1] < 1024 <= b[1]:
        client, server = b, a
    else:
        client, server = a, b
    flow = Flow("tcp" if proto == 6 else "udp", (_ip(client[0]), client[1]), (_ip(server[0]), server[1]))
    flow.syn_seen = bool(proto == 6 and flags & SYN)
    flow.first_ts = flow.last_ts = ts
    return flow, client


def _ip(raw: bytes) -> str:
    return str(ipaddress.ip_address(bytes(raw)))


def _tcp_segment(d: Direction, flow: Flow, seq: int, flags: int, payload: bytes, limit: int) -> None:
    if flags & SYN:
        d.next_seq = (seq + 1) & 0xFFFFFFFF
        flow.syn_seen = True
        return
    if d.next_seq is None:
        d.next_seq = seq
    if not payload or d.full:
        return
    nxt = d.next_seq
    if seq == nxt:
        _append(d, payload, limit)
        if d.pending:
            _drain(d, limit)
    elif (nxt - seq) & 0xFFFFFFFF < 0x80000000:  # starts before what we have: retransmission/overlap
        skip = (nxt - seq) & 0xFFFFFFFF
        if skip < len(payload):
            _append(d, payload[skip:], limit)
            if d.pending:
                _drain(d, limit)
        else:
            d.retransmitted += 1
    else:  # a segment from the future: hold it
        d.pending[seq] = payload
        if len(d.pending) > PENDING_LIMIT:
            _skip_hole(d, limit)


def _append(d: Direction, data: bytes, limit: int) -> None:
    d.next_seq = (d.next_seq + len(data)) & 0xFFFFFFFF  # type: ignore[operator]
    room = limit - len(d.data)
    if len(data) >= room:
        d.data += data[:room]
        d.full = True
        d.pending.clear()
    else:
        d.data += data


def _drain(d: Direction, limit: int) -> None:
    while d.pending and not d.full:
        nxt = d.next_seq
        seg = d.pending.pop(nxt, None)  # type: ignore[arg-type]
        if seg is not None:
            _append(d, seg, limit)
            continue
        # an overlapping held segment (starts before next_seq)
        for s in list(d.pending):
            if (nxt - s) & 0xFFFFFFFF < 0x80000000:  # type: ignore[operator]
                data = d.pending.pop(s)
                skip = (nxt - s) & 0xFFFFFFFF  # type: ignore[operator]
                if skip < len(data):
                    _append(d, data[skip:], limit)
                break
        else:
            return


def _skip_hole(d: Direction, limit: int) -> None:
    """Data is missing from the capture: count a hole and go on from the next held segment."""
    nxt = d.next_seq
    first = min(d.pending, key=lambda s: (s - nxt) & 0xFFFFFFFF)  # type: ignore[operator]
    d.holes += 1
    d.next_seq = first
    _drain(d, limit)


def _flush_pending(d: Direction, limit: int) -> None:
    while d.pending and not d.full:
        _skip_hole(d, limit)
    d.pending.clear()


def _l3_ethernet(buf: bytes) -> tuple[int, int]:
    if len(buf) < 14:
        return 0, 0
    etype = _U16.unpack_from(buf, 12)[0]
    off = 14
    while etype in (0x8100, 0x88A8) and len(buf) >= off + 4:
        etype = _U16.unpack_from(buf, off + 2)[0]
        off += 4
    return off, 4 if etype == 0x0800 else 6 if etype == 0x86DD else 0


def _l3_raw(buf: bytes) -> tuple[int, int]:
    return 0, (buf[0] >> 4) if buf else 0


def _l3_sll(buf: bytes) -> tuple[int, int]:
    if len(buf) < 16:
        return 0, 0
    etype = _U16.unpack_from(buf, 14)[0]
    return 16, 4 if etype == 0x0800 else 6 if etype == 0x86DD else 0


def _l3_sll2(buf: bytes) -> tuple[int, int]:
    if len(buf) < 20:
        return 0, 0
    etype = _U16.unpack_from(buf, 0)[0]
    return 20, 4 if etype == 0x0800 else 6 if etype == 0x86DD else 0


def _l3_null(buf: bytes) -> tuple[int, int]:
    if len(buf) < 4:
        return 0, 0
    return 4, (buf[4] >> 4) if len(buf) > 4 else 0
