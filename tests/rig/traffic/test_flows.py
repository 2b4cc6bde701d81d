"""Reading captures: link types, TCP reassembly (reordering, retransmission, holes), bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import CookedLinux, Ether
from scapy.utils import wrpcap

from rig.traffic.flows import CaptureError, read_flows

A, B = "198.18.0.1", "198.18.0.10"


def E() -> Ether:  # explicit MACs: scapy would otherwise try to resolve them
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _tcp_packets(chunks: list[tuple[int, bytes]], isn: int = 1000) -> list:
    pkts = [E() / IP(src=A, dst=B) / TCP(sport=40000, dport=8080, flags="S", seq=isn - 1),
            E() / IP(src=B, dst=A) / TCP(sport=8080, dport=40000, flags="SA", seq=5000, ack=isn)]
    for off, data in chunks:
        pkts.append(E() / IP(src=A, dst=B) / TCP(sport=40000, dport=8080, flags="PA", seq=isn + off) / data)
    return pkts


def test_tcp_reassembly_reorders_and_trims_retransmissions(tmp_path: Path) -> None:
    msg = bytes(range(256)) * 40
    parts = [(i, msg[i:i + 1000]) for i in range(0, len(msg), 1000)]
    order = [parts[0], parts[2], parts[1], parts[1], (500, msg[500:1700]), *parts[3:]]  # reordered, duplicated, overlapping
    wrpcap(str(tmp_path / "c.pcap"), _tcp_packets(order))
    cap = read_flows(tmp_path / "c.pcap")
    [flow] = cap.flows
    assert flow.id == f"tcp {A}:40000 > {B}:8080" and flow.syn_seen
    assert bytes(flow.up.data) == msg
    assert flow.up.holes == 0 and flow.up.retransmitted >= 1


def test_tcp_hole_is_counted_and_stream_continues(tmp_path: Path) -> None:
    msg = b"A" * 1000 + b"B" * 1000 + b"C" * 1000
    wrpcap(str(tmp_path / "c.pcap"), _tcp_packets([(0, msg[:1000]), (2000, msg[2000:])]))
    [flow] = read_flows(tmp_path / "c.pcap").flows
    assert flow.up.holes == 1
    assert bytes(flow.up.data) == b"A" * 1000 + b"C" * 1000


def test_client_is_the_syn_sender_even_when_synack_comes_first(tmp_path: Path) -> None:
    pkts = _tcp_packets([(0, b"hello")])
    wrpcap(str(tmp_path / "c.pcap"), [pkts[1], pkts[0], pkts[2]])
    [flow] = read_flows(tmp_path / "c.pcap").flows
    assert flow.client == (A, 40000) and bytes(flow.up.data) == b"hello"


def test_sample_limit_bounds_memory_but_counts_everything(tmp_path: Path) -> None:
    pkts = [E() / IP(src=B, dst=A) / UDP(sport=5004, dport=5004) / (bytes([i % 256]) * 1000) for i in range(100)]
    wrpcap(str(tmp_path / "u.pcap"), pkts)
    [flow] = read_flows(tmp_path / "u.pcap", sample_limit=10_000).flows
    assert flow.up.packets == 100 and flow.up.bytes == 100_000
    assert flow.up.kept == 10_000 and flow.up.full and len(flow.up.datagrams) == 10


def test_linux_cooked_capture_and_other_packets(tmp_path: Path) -> None:
    from scapy.layers.inet import ICMP

    pkts = [CookedLinux() / IP(src=A, dst=B) / UDP(sport=1, dport=2) / b"x", CookedLinux() / IP(src=A, dst=B) / ICMP()]
    wrpcap(str(tmp_path / "sll.pcap"), pkts)
    cap = read_flows(tmp_path / "sll.pcap")
    assert cap.linktype == 113 and len(cap.flows) == 1 and cap.other_packets == 1


def test_pcapng_is_read(tmp_path: Path) -> None:
    from scapy.utils import PcapNgWriter

    w = PcapNgWriter(str(tmp_path / "c.pcapng"))
    for p in _tcp_packets([(0, b"GET / HTTP/1.1\r\n\r\n")]):
        w.write(p)
    w.close()
    [flow] = read_flows(tmp_path / "c.pcapng").flows
    assert bytes(flow.up.data).startswith(b"GET /")


def test_a_capture_cut_mid_record_keeps_what_was_read(tmp_path: Path) -> None:
    wrpcap(str(tmp_path / "c.pcap"), _tcp_packets([(0, b"x" * 500), (500, b"y" * 500)]))
    data = (tmp_path / "c.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[:-200])  # tcpdump killed mid-write
    [flow] = read_flows(tmp_path / "cut.pcap").flows
    assert bytes(flow.up.data) == b"x" * 500


def test_not_a_capture_is_named(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"not a pcap at all" * 4)
    with pytest.raises(CaptureError, match="x.pcap"):
        read_flows(tmp_path / "x.pcap")


def test_ipv6_flow(tmp_path: Path) -> None:
    from scapy.layers.inet6 import IPv6

    wrpcap(str(tmp_path / "v6.pcap"), [E() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=9, dport=10) / b"hi"])
    [flow] = read_flows(tmp_path / "v6.pcap").flows
    assert flow.id == "udp [2001:db8::1]:9 > [2001:db8::2]:10"


def test_a_record_with_an_impossible_length_stops_the_reading_there(tmp_path: Path) -> None:
    """A bit flipped in a record header's length once sent the walk astray silently: reading
    stops at it, says where, and keeps the flows before it."""
    import struct

    wrpcap(str(tmp_path / "c.pcap"), _tcp_packets([(0, b"x" * 500)]) + [E() / IP(src=A, dst=B) / UDP(sport=9, dport=9) / b"late"])
    data = bytearray((tmp_path / "c.pcap").read_bytes())
    pos, offsets = 24, []
    while pos < len(data):
        offsets.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    struct.pack_into("<I", data, offsets[3] + 8, 0x7FFF0000)  # the UDP record's length: larger than any capture
    (tmp_path / "flip.pcap").write_bytes(bytes(data))
    cap = read_flows(tmp_path / "flip.pcap")
    assert cap.stopped == f"malformed record at offset {offsets[3]}: length {0x7FFF0000} exceeds the snap length 65535"
    [flow] = cap.flows
    assert flow.proto == "tcp" and bytes(flow.up.data) == b"x" * 500


def test_a_corrupt_pcapng_block_stops_the_reading_without_a_crash(tmp_path: Path) -> None:
    from scapy.utils import PcapNgWriter

    w = PcapNgWriter(str(tmp_path / "c.pcapng"))
    for p in _tcp_packets([(0, b"GET / HTTP/1.1\r\n\r\n"), (18, b"more")]):
        w.write(p)
    w.close()
    import struct

    data = bytearray((tmp_path / "c.pcapng").read_bytes())
    pos, blocks = 0, []
    while pos + 8 <= len(data):
        blocks.append(pos)
        pos += struct.unpack_from("<I", data, pos + 4)[0]
    struct.pack_into("<I", data, blocks[-2] + 4, 0x7FFFFFF0)  # the last-but-one block: a length no file has
    (tmp_path / "bad.pcapng").write_bytes(bytes(data))
    cap = read_flows(tmp_path / "bad.pcapng")
    assert cap.stopped is not None and cap.stopped.startswith("malformed record at offset ")


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_the_flow_table_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    import rig.traffic.flows as flows

    monkeypatch.setattr(flows, "MAX_FLOWS", 5)
    pkts = [E() / IP(src=A, dst=B) / UDP(sport=10000 + i, dport=5004) / b"x" for i in range(12) for _ in range(2)]
    if kind == "pcap":
        wrpcap(str(tmp_path / "many.pcap"), pkts)
    else:
        from scapy.utils import PcapNgWriter

        w = PcapNgWriter(str(tmp_path / "many.pcap"))
        for p in pkts:
            w.write(p)
        w.close()
    cap = read_flows(tmp_path / "many.pcap")
    assert len(cap.flows) == 5 and cap.flow_limit_reached and cap.untracked_packets == 14
    assert sorted(f.client[1] for f in cap.flows) == [10000, 10001, 10002, 10003, 10004]  # the first five, in order


def _small_captures(tmp: Path) -> dict[str, bytes]:
    from scapy.utils import PcapNgWriter

    pkts = _tcp_packets([(0, b"GET / HTTP/1.1\r\n\r\n"), (18, b"x" * 300)]) + [E() / IP(src=B, dst=A) / UDP(sport=5004, dport=5004) / (b"\x80" + b"y" * 200)]
    wrpcap(str(tmp / "s.pcap"), pkts)
    w = PcapNgWriter(str(tmp / "s.pcapng"))
    for p in pkts:
        w.write(p)
    w.close()
    return {"pcap": (tmp / "s.pcap").read_bytes(), "pcapng": (tmp / "s.pcapng").read_bytes()}


def test_mutated_captures_never_crash_the_reader(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Property: whatever bytes are flipped, cut or inserted, reading a capture returns a
    Capture (perhaps stopped early) or raises CaptureError; never anything else, never a hang.
    The flows of whatever was read are judged without an exception too."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from rig.traffic.verdict import analyse_capture

    tmp = tmp_path_factory.mktemp("fuzz")
    seeds = _small_captures(tmp)

    @settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(kind=st.sampled_from(sorted(seeds)), edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255), st.sampled_from(["flip", "cut", "insert"])),
                                                                  min_size=1, max_size=6))
    def check(kind: str, edits: list) -> None:  # noqa: ANN001
        data = bytearray(seeds[kind])
        for pos, val, how in edits:
            if not data:
                break
            pos %= len(data)
            if how == "flip":
                data[pos] ^= val or 1
            elif how == "cut":
                del data[pos:]
            else:
                data[pos:pos] = bytes([val]) * 4
        path = tmp / f"m.{kind}"
        path.write_bytes(bytes(data))
        try:
            analyse_capture(path)
        except CaptureError:
            pass

    check()


def _summary(cap) -> list[tuple]:  # noqa: ANN001
    return [(f.id, f.syn_seen, f.first_ts, f.last_ts,
             *[(d.packets, d.bytes, d.sample(), d.full, d.holes, d.retransmitted, d.first_ts, d.last_ts) for d in (f.up, f.down)])
            for f in cap.flows] + [(cap.packets, cap.ip_packets, cap.other_packets, cap.truncated_packets, cap.first_ts, cap.last_ts)]


def test_reading_in_windows_changes_no_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, media_cache: Path) -> None:
    """The vectorised pass reads the file in windows (bounded memory); a flow that spans windows,
    a TCP stream reordered across a window's edge, a sample that fills in a later window and the
    last frame read the slow way are one flow each, exactly as read in one window."""
    import rig.traffic.flows as flows
    from rig.sim.traffic import write_labelled

    write_labelled(tmp_path / "lab.pcap", 2, media_cache, seed=5)
    msg = bytes(range(256)) * 40
    chunks = [(off, msg[off:off + 500]) for off in range(0, len(msg), 500)]
    chunks[3], chunks[4] = chunks[4], chunks[3]
    tail = _tcp_packets(chunks) + [E() / IP(src=B, dst=A) / UDP(sport=5004, dport=5004) / b"z"]  # 43 bytes: the slow path
    from scapy.utils import PcapWriter as ScapyWriter

    with ScapyWriter(str(tmp_path / "lab.pcap"), append=True, sync=True) as w:
        for p in tail:
            w.write(p)
    whole = read_flows(tmp_path / "lab.pcap", sample_limit=3000)
    monkeypatch.setattr(flows, "CHUNK_RECORDS", 7)
    monkeypatch.setattr(flows, "CHUNK_BYTES", 5000)
    windowed = read_flows(tmp_path / "lab.pcap", sample_limit=3000)
    assert len(windowed.flows) == len({f.id for f in windowed.flows}) >= 20
    assert _summary(windowed) == _summary(whole)
    [reordered] = [f for f in windowed.flows if f.server == (B, 8080)]
    assert reordered.up.sample() == msg[:3000] and not reordered.up.holes


def test_a_flood_of_tiny_datagrams_is_read_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """300,000 one-byte datagrams (a device flooding the sink): one flow, every packet counted,
    at most MAX_DATAGRAMS kept, and the reading's allocations bounded by its window, not the file
    (read whole, this capture cost over 150 MiB)."""
    import struct
    import tracemalloc

    import rig.traffic.flows as flows

    monkeypatch.setattr(flows, "CHUNK_RECORDS", 1 << 14)
    monkeypatch.setattr(flows, "MAX_DATAGRAMS", 4096)
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 29, 0, 0, 64, 17, 0, bytes([198, 18, 0, 40]), bytes([198, 18, 0, 1]))
    frame = eth + ip + struct.pack(">HHHH", 40000, 25004, 9, 0) + b"\xff"
    n = 300_000
    with (tmp_path / "flood.pcap").open("wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        fh.write((struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame) * n)
    tracemalloc.start()
    try:
        cap = read_flows(tmp_path / "flood.pcap")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    [flow] = cap.flows
    assert (flow.packets, flow.bytes, cap.packets) == (n, n, n)
    assert len(flow.up.datagrams) == 4096 and flow.up.full
    assert peak < 24 << 20, f"reading took {peak >> 20} MiB"
