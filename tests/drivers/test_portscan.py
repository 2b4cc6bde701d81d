"""nmap XML parsing: folded open|filtered ports, port-table guesses never trusted."""

from __future__ import annotations

from drivers.portscan import DEBUG_UDP, _expand_ports, _parse, top_udp_ports

XML = b"""<?xml version="1.0"?><nmaprun><host><status state="up"/><ports>
<extraports state="open|filtered" count="5"><extrareasons reason="no-response" count="5" proto="udp" ports="9,67-69,5353"/></extraports>
<port protocol="udp" portid="161"><state state="open" reason="udp-response"/><service name="snmp" method="probed"/></port>
<port protocol="udp" portid="1900"><state state="closed" reason="port-unreach"/><service name="upnp" method="table"/></port>
<port protocol="udp" portid="2345"><state state="open" reason="udp-response"/><service name="dbm" method="table"/></port>
</ports></host></nmaprun>"""


def test_folded_open_filtered_ports_are_expanded() -> None:
    opened, responded, filtered, state, open_filtered = _parse(XML, "udp")
    assert state == "up"
    assert open_filtered == [9, 67, 68, 69, 5353]
    assert [p.port for p in opened] == [161, 2345]
    assert responded == 3 and filtered == 5


def test_port_table_guess_is_not_an_identification() -> None:
    opened, *_ = _parse(XML, "udp")
    by_port = {p.port: p for p in opened}
    assert by_port[161].identified == "snmp"
    assert by_port[2345].identified is None and by_port[2345].label == "dbm?"


def test_expand_ports_and_udp_list() -> None:
    assert _expand_ports("1,3-5, 9") == [1, 3, 4, 5, 9]
    assert _expand_ports("x,7-") == []
    ports = top_udp_ports(100)
    assert set(DEBUG_UDP) <= set(ports) and len(ports) >= 100
