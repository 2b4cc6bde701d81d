"""Read a capture file and rebuild its flows.

One pass over a pcap or pcapng file (framing by :mod:`dpkt`; link, IP, TCP and UDP
headers by ``struct`` on the raw bytes, which is what makes the pass fast). TCP
streams are reassembled per direction (retransmissions and overlaps trimmed,
out-of-order segments held in a bounded buffer, holes counted); UDP datagrams are
kept whole. Per direction at most ``sample_limit`` bytes (and :data:`MAX_DATAGRAMS`
datagrams) are kept for analysis;
packets and bytes beyond that are still counted, so memory stays bounded on a
capture of any size while the flow table stays exact.

A malformed record (a length no capture can have, framing dpkt cannot read) ends the
reading there: ``Capture.stopped`` names the offset and why, and the flows read so far are
kept for judging. A malformed *packet* inside a sound record is counted and skipped. At
most :data:`MAX_FLOWS` flows are tracked; the packets of further flows are counted in
``untracked_packets`` and the capture is marked ``flow_limit_reached``.
"""

from __future__ import annotations

import ipaddress
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import numpy as np

#: bytes of payload kept per flow direction for analysis (the tests saturate well before)
SAMPLE_LIMIT = 256 << 10
#: UDP datagrams kept per flow direction, at most: a flood of tiny datagrams is bounded by
#: their count as well as their bytes (4 MiB of 1-byte datagrams would be 4 million objects)
MAX_DATAGRAMS = 65_536
#: out-of-order TCP segments held per direction before a hole is declared
PENDING_LIMIT = 512
#: flows tracked per capture, at most (a device on a bench makes a few hundred; a flood of
#: distinct flows would otherwise grow the table without bound)
MAX_FLOWS = 20_000
#: the largest record a capture can hold (libpcap's largest snap length)
MAX_RECORD = 262_144
#: records read per window of the vectorised pass: its arrays cost about 540 bytes a record
#: (about 140 MB a window), whatever the capture's size
CHUNK_RECORDS = 1 << 18
#: and at most this many bytes of the file, whose pages are given back once the window is read
CHUNK_BYTES = 32 << 20
PAGE = mmap.PAGESIZE

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
        """Packets in both directions."""
        return self.up.packets + self.down.packets

    @property
    def bytes(self) -> int:
        """Transport payload bytes in both directions."""
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
    stopped: str | None = None  # why reading ended before the end of the file (offset and reason)
    untracked_packets: int = 0  # packets of flows beyond MAX_FLOWS: counted, not analysed
    flow_limit_reached: bool = False


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

    A little-endian classic pcap of Ethernet frames (what tcpdump writes on Linux)
    takes the vectorised path (:func:`_read_ethernet_pcap`); anything else (pcapng,
    other link types) is read packet by packet through dpkt.
    """
    fast = _read_ethernet_pcap(Path(path), sample_limit)
    if fast is not None:
        return fast
    with open(path, "rb") as fh:
        reader = _reader(fh)
        cap = Capture(path=str(path), linktype=reader.datalink())
        _read_generic(cap, _guarded(reader, fh, cap), sample_limit)
    return cap


def _guarded(reader, fh, cap: Capture):  # type: ignore[no-untyped-def]
    """The reader's records until one cannot be read: then ``cap.stopped`` says where and why
    (a record cut at the very end, a capture killed mid-write, is the normal end)."""
    import os

    size = os.fstat(fh.fileno()).st_size
    it = iter(reader)
    while True:
        at = fh.tell()
        try:
            rec = next(it)
        except StopIteration:
            return
        except (dpkt.dpkt.NeedData, struct.error):
            left = size - at
            if left > 0:  # dpkt cannot tell a record cut at the end from a corrupt length: say both
                cap.stopped = f"malformed record at offset {at}: the capture ends inside it ({left} bytes left; cut while written, or a corrupt length)"
            return
        except Exception as exc:  # noqa: BLE001 - any framing error ends the reading, never the run
            cap.stopped = f"malformed record at offset {at}: {type(exc).__name__}: {str(exc)[:120]}"
            return
        yield rec


def _read_generic(cap: Capture, records, sample_limit: int,  # type: ignore[no-untyped-def]
                  table: dict[tuple, tuple[Flow, tuple[bytes, int]]] | None = None) -> None:
    """Packet-by-packet pass over ``records`` ((ts, bytes) pairs), adding its flows to ``cap``.
    Given the vectorised pass's flow ``table``, adds to it instead (the caller finishes the flows)."""
    shared = table is not None
    if table is None:
        table = {}
    linktype = cap.linktype
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
        raise CaptureError(f"{cap.path}: link type {linktype} is not supported (Ethernet, raw IP, Linux cooked, loopback are)")
    packets = 0
    first_ts = None
    ts = 0.0
    for ts, buf in records:
        packets += 1
        if first_ts is None:
            first_ts = ts
        try:
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
                if len(table) >= MAX_FLOWS:
                    cap.flow_limit_reached = True
                    cap.untracked_packets += 1
                    continue
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
                if d.kept >= sample_limit or len(d.datagrams) >= MAX_DATAGRAMS:
                    d.full = True
        except (struct.error, IndexError, ValueError):
            cap.other_packets += 1  # a malformed packet in a sound record: counted, skipped
    cap.packets += packets
    if not cap.first_ts:
        cap.first_ts = first_ts or 0.0
    cap.last_ts = max(cap.last_ts, ts)
    if shared:
        return
    for flow, _ in table.values():
        for d in (flow.up, flow.down):
            _flush_pending(d, sample_limit)
    cap.flows = sorted(cap.flows + [f for f, _ in table.values()], key=lambda f: f.first_ts)


class _Words:
    """64-bit words at arbitrary byte offsets of a buffer: eight zero-copy views, one per
    alignment, so reading N unaligned words is eight gathers, not 8N byte lookups."""

    def __init__(self, buf: mmap.mmap, dtype: str):
        n = len(buf)
        self.views = [np.frombuffer(buf, dtype=dtype, offset=k, count=(n - k) // 8) for k in range(8) if n - k >= 8]

    def at(self, offsets: np.ndarray) -> np.ndarray:
        """The 64-bit word at each byte offset in ``offsets`` (each offset + 8 within the buffer)."""
        out = np.empty(len(offsets), dtype=np.uint64)
        align = offsets & 7
        for k, view in enumerate(self.views):
            sel = align == k
            if sel.any():
                out[sel] = view[(offsets[sel] - k) >> 3]
        return out


def _read_ethernet_pcap(path: Path, sample_limit: int) -> Capture | None:
    """The vectorised pass: record offsets in one tight loop, then every IPv4 TCP/UDP
    header field for all packets at once with numpy, flows grouped by a sort, and the
    payload bytes touched only for the packets inside each direction's sample.
    VLAN-tagged and IPv6 frames go through :func:`_read_generic`. ``None``: not this format.

    The file is read in windows of :data:`CHUNK_RECORDS` records or :data:`CHUNK_BYTES`, each window's pages given
    back once it is read, so memory is bounded by the window and the kept samples, never by
    the capture's size (a flood of 4.5 million datagrams in 256 MiB took 2.4 GB read whole)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
        if len(head) < 24 or head[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") or struct.unpack_from("<I", head, 20)[0] != _ETHERNET:
            return None
        nanos = head[:4] == b"\x4d\x3c\xb2\xa1"
        size = path.stat().st_size
        if size <= 24:
            return Capture(path=str(path), linktype=_ETHERNET)
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    cap = Capture(path=str(path), linktype=_ETHERNET)
    table: dict[tuple, tuple[Flow, tuple[bytes, int]]] = {}
    snaplen = struct.unpack_from("<I", head, 16)[0] or MAX_RECORD
    bound = min(max(snaplen, 65535), MAX_RECORD)
    words = _Words(mm, "<u8"), _Words(mm, ">u8")
    view = memoryview(mm)
    incl_at = struct.Struct("<I").unpack_from
    pos, n, slow_seen, done = 24, len(mm), False, False
    try:
        while not done:
            # 1. record offsets of one window: the one sequential step
            recs: list[int] = []
            add = recs.append
            stop = pos + CHUNK_BYTES
            try:
                for _ in range(CHUNK_RECORDS):  # ends early when a header does not fit (struct.error)
                    add(pos)
                    pos += 16 + incl_at(view, pos + 8)[0]
                    if pos > stop:
                        break
            except struct.error:
                recs.pop()
                done = True
            # a record longer than the file's snap length (or any capture's) is not a record: the walk
            # went astray there, so reading stops at it and what came before is kept
            whole = len(recs)
            while whole and recs[whole - 1] + 16 > n:  # the header itself is cut: the normal end, below
                whole -= 1
            if whole:
                lens = (words[0].at(np.array(recs[:whole], dtype=np.int64) + 8) & 0xFFFFFFFF).astype(np.int64)
                bad = np.flatnonzero(lens > bound)
                if len(bad):
                    first_bad = int(bad[0])
                    cap.stopped = f"malformed record at offset {recs[first_bad]}: length {int(lens[first_bad])} exceeds the snap length {snaplen}"
                    del recs[first_bad:]
                    done = True
            while recs and recs[-1] + 16 + incl_at(view, recs[-1] + 8)[0] > n:
                recs.pop()  # a record cut short at the end (tcpdump killed mid-write): the normal end
                done = True
            if recs:
                slow_seen |= _read_window(cap, table, mm, words, np.array(recs, dtype=np.int64), nanos, sample_limit)
            if not done and pos > PAGE:  # this window's pages are read: give them back (the samples are copies)
                mm.madvise(mmap.MADV_DONTNEED, 0, (min(pos, n) // PAGE) * PAGE)
    finally:
        view.release()
    for flow, _ in table.values():
        for d in (flow.up, flow.down):
            _flush_pending(d, sample_limit)
    flows = [f for f, _ in table.values()]
    cap.flows = sorted(flows, key=lambda f: f.first_ts) if slow_seen else flows
    return cap


def _read_window(cap: Capture, table: dict[tuple, tuple[Flow, tuple[bytes, int]]], mm: mmap.mmap,
                 words: tuple[_Words, _Words], rec: np.ndarray, nanos: bool, sample_limit: int) -> bool:
    """Add the records starting at offsets ``rec`` to ``cap`` and its flow ``table`` (shared with
    the windows before, so a flow that spans windows is one flow); True if some took the slow path."""
    le, be = words
    cap.packets += len(rec)
    w0, w8 = le.at(rec), le.at(rec + 8)  # record header: ts_sec ts_frac | incl orig
    ts = (w0 & 0xFFFFFFFF).astype(np.float64) + (w0 >> 32).astype(np.float64) * (1e-9 if nanos else 1e-6)
    del w0
    incl = (w8 & 0xFFFFFFFF).astype(np.int64)
    del w8
    start = rec + 16
    if not cap.first_ts:
        cap.first_ts = float(ts[0])
    cap.last_ts = max(cap.last_ts, float(ts.max()))
    # 2. Ethernet / IPv4 (no options) / TCP-UDP headers: five 64-bit words per frame, read
    # at any byte offset from zero-copy views; every field is a shift and a mask of them.
    # VLAN, IPv6 and IPv4 with options take the generic path.
    big = (incl >= 34) & (start + 50 <= len(mm))
    fit = np.flatnonzero(big)
    w12 = be.at(start[fit] + 12)  # type(2) vihl tos total(2) id(2)
    etype = (w12 >> 48).astype(np.int64)
    vihl = (w12 >> 40) & 0xFF
    simple_f = (etype == 0x0800) & (vihl == 0x45)
    slow = np.zeros(len(rec), dtype=bool)
    slow[fit] = np.isin(etype, (0x8100, 0x88A8, 0x86DD)) | ((etype == 0x0800) & (vihl != 0x45) & ((vihl >> 4) == 4))
    slow |= (incl >= 34) & ~big  # a frame at the very end of the file: read it the slow way
    v4 = fit[simple_f]
    total = ((w12[simple_f] >> 16) & 0xFFFF).astype(np.int64)
    del w12, etype, vihl, simple_f, fit, big
    w20 = be.at(start[v4] + 20)  # frag(2) ttl proto csum(2) src(2 of 4)
    frag = (w20 >> 48) & 0x1FFF
    proto = ((w20 >> 32) & 0xFF).astype(np.int64)
    del w20
    l3 = start[v4] + 14
    rec_end = start[v4] + incl[v4]
    end = np.where(total > 0, l3 + total, rec_end)
    l4 = l3 + 20
    del l3, total
    hdr_len = np.where(proto == 6, 20, 8)
    transport = ((proto == 6) | (proto == 17)) & (frag == 0)
    truncated = transport & ((end > rec_end) | (end < l4 + hdr_len))
    good = transport & ~truncated
    del rec_end, hdr_len, transport, frag
    n_slow = int(slow.sum())
    cap.truncated_packets += int(truncated.sum())
    n_good = int(good.sum())
    cap.ip_packets += n_good
    cap.other_packets += len(rec) - n_good - int(truncated.sum()) - n_slow
    idx, l4, end, proto = v4[good], l4[good], end[good], proto[good]
    del v4, good, truncated
    s0 = start[idx]
    w26, w34, w42 = be.at(s0 + 26), be.at(s0 + 34), be.at(s0 + 42)
    del s0
    src, dst = w26 >> 32, w26 & 0xFFFFFFFF
    sport, dport = w34 >> 48, (w34 >> 32) & 0xFFFF
    is_tcp = proto == 6
    flags = np.where(is_tcp, (w42 >> 16) & 0xFF, 0).astype(np.int64)  # bytes 42-45 ack, 46 offset, 47 flags, 48-49 window
    doff = np.where(is_tcp, ((w42 >> 28) & 0xF).astype(np.int64) * 4, 8)
    pstart = l4 + doff
    plen = np.maximum(end - pstart, 0)
    seq = np.where(is_tcp, w34 & 0xFFFFFFFF, 0)
    del w26, w42, doff, l4, end
    ep_src, ep_dst = (src << 16) | sport, (dst << 16) | dport
    del src, dst
    lo, hi = np.minimum(ep_src, ep_dst), np.maximum(ep_src, ep_dst)
    key = (lo | (is_tcp.astype(np.uint64) << 48)).astype(np.float64) + 1j * hi.astype(np.float64)  # 49 and 48 bits: exact in float64
    del lo, hi
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    del key
    order = np.argsort(inv, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(inv))))
    del inv
    # 3. per flow: direction, counts, and the sample (flows are tracked by first packet, at most MAX_FLOWS)
    for f in np.argsort(first, kind="stable"):
        pk = order[bounds[f]:bounds[f + 1]]
        tcp = bool(is_tcp[pk[0]])
        a_ep, b_ep = int(ep_src[pk[0]]), int(ep_dst[pk[0]])
        a, b = (a_ep >> 16).to_bytes(4, "big"), (b_ep >> 16).to_bytes(4, "big")
        ka, kb = (a, a_ep & 0xFFFF), (b, b_ep & 0xFFFF)
        fkey = (6 if tcp else 17, ka, kb) if ka < kb else (6 if tcp else 17, kb, ka)
        entry = table.get(fkey)
        if entry is None:
            if len(table) >= MAX_FLOWS:
                cap.flow_limit_reached = True
                cap.untracked_packets += len(pk)
                continue
            client = _client_endpoint(pk, tcp, flags, ep_src, ep_dst, sport, dport)
            c_key = ka if client == a_ep else kb
            s_ep = b_ep if client == a_ep else a_ep
            flow = Flow("tcp" if tcp else "udp", (_ipv4(client >> 16), client & 0xFFFF), (_ipv4(s_ep >> 16), s_ep & 0xFFFF))
            flow.first_ts = float(ts[idx[pk[0]]])
            entry = table[fkey] = (flow, c_key)
        flow, c_key = entry
        client = (int.from_bytes(c_key[0], "big") << 16) | c_key[1]
        up = ep_src[pk] == client
        flow.last_ts = max(flow.last_ts, float(ts[idx[pk[-1]]]))
        flow.syn_seen = flow.syn_seen or bool(tcp and (flags[pk] & SYN).any())
        for d, mask in ((flow.up, up), (flow.down, ~up)):
            dp = pk[mask]
            if not len(dp):
                continue
            if not d.packets:
                d.first_ts = float(ts[idx[dp[0]]])
            d.packets += len(dp)
            d.last_ts = max(d.last_ts, float(ts[idx[dp[-1]]]))
            lens = plen[dp]
            prior = d.bytes
            d.bytes += int(lens.sum())
            if d.full:  # its sample is complete: counted only
                continue
            before = prior + np.cumsum(lens) - lens
            take = dp[before < sample_limit * (1.5 if tcp else 1.0)]
            if not tcp:
                take = take[:MAX_DATAGRAMS - len(d.datagrams)]
            cut = len(take) < len(dp)
            starts, stops = pstart[take].tolist(), (pstart[take] + plen[take]).tolist()
            if tcp:
                for s0_, s1, sq, fl in zip(starts, stops, seq[take].tolist(), flags[take].tolist()):
                    _tcp_segment(d, flow, sq, fl, mm[s0_:s1], sample_limit)
                if cut:
                    _flush_pending(d, sample_limit)
            else:
                got = [mm[s0_:s1] for s0_, s1 in zip(starts, stops) if s1 > s0_]
                d.datagrams.extend(got)
                d.kept += sum(len(x) for x in got)
                d.full = d.kept >= sample_limit
            d.full = d.full or cut
    if n_slow:
        others = np.flatnonzero(slow)
        _read_generic(cap, ((float(ts[i]), mm[int(start[i]):int(start[i] + incl[i])]) for i in others), sample_limit, table)
        cap.packets -= n_slow  # counted above already
    return bool(n_slow)


def _client_endpoint(pk: np.ndarray, tcp: bool, flags: np.ndarray, ep_src: np.ndarray, ep_dst: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> int:
    """The endpoint that opened the conversation (SYN sender; else the first sender, unless
    a mid-stream capture starts on the well-known side)."""
    if tcp:
        fl = flags[pk]
        syn = np.flatnonzero((fl & 0x12) == SYN)
        if len(syn):
            return int(ep_src[pk[syn[0]]])
        synack = np.flatnonzero((fl & 0x12) == 0x12)
        if len(synack):
            return int(ep_dst[pk[synack[0]]])
        if sport[pk[0]] < 1024 <= dport[pk[0]]:
            return int(ep_dst[pk[0]])
    return int(ep_src[pk[0]])


def _ipv4(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


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
