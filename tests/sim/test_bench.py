"""The simulated bench: real daemons up, overlapping subnets refused, nothing left after down."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from pathlib import Path

import pytest

from rig.config import parse_config
from rig.sim import net
from rig.sim.bench import SimBench, _alive, _mountpoints
from rig.sim.net import SimError
from tests.conftest import sim_config_text, BENCH_TOOLS, SIM_CONFIG, need_root, need_tools, rig


SIM_DEVICES = ("cam-compliant", "cam-violating", "cam-debug", "cam-boot", "cam-secure", "cam-leaky", "cam-mute", "cam-retail", "cam-retail-secure")


def variant(tmp_path: Path, name: str, subnet: str, bridge: str, state_dir: str, addresses: tuple[str, ...]) -> Path:
    """The shipped bench config on another subnet, bridge, state dir, device names (name-a, name-b, ...) and addresses
    (cam-absent, never built, becomes name-absent at the subnet's .99)."""
    text = sim_config_text()
    text = text.replace("198.18.0.0/24", subnet).replace("bridge: rigbr0", f"bridge: {bridge}").replace("/run/privrig/sim", state_dir)
    text = text.replace("198.18.0.30", str(ipaddress.ip_network(subnet)[99])).replace("cam-absent", f"{name}-absent")
    text = text.replace("198.19.0.50", f"198.19.{ipaddress.ip_network(subnet).network_address.packed[2]}.50")  # its own cloud
    for i, addr in enumerate(addresses):
        text = text.replace(f"198.18.0.{10 + i}", addr)
    # longest name first: cam-retail-secure must not become <name>-h-secure
    for i, dev in sorted(enumerate(SIM_DEVICES), key=lambda t: -len(t[1])):
        text = text.replace(dev, f"{name}-{'abcdefghi'[i]}")
    assert len(addresses) == len(SIM_DEVICES)
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


def test_status_shows_real_daemons(sim_bench: dict) -> None:
    res = rig("sim", "status", "-c", str(SIM_CONFIG), "--json")
    assert res.returncode == 0, res.stderr
    import json

    st = json.loads(res.stdout)
    assert st["up"]
    v = st["devices"]["cam-violating"]
    assert v["netns"] and v["console"]
    assert v["processes"] == {"sshd": True, "console": True, "telnetd-23": True, "gdbserver-2345": True, "snmpd-161": True, "tftpd-69": True,
                               "httpd-80": True, "rtsp-open-554": True, "vsftpd-21": True, "inference-8090": True}
    assert st["devices"]["cam-compliant"]["processes"] == {"sshd": True, "console": True, "inference-8090": True}  # its model on onnxruntime
    assert all(st["devices"]["cam-debug"]["processes"].values()) and len(st["devices"]["cam-debug"]["processes"]) == 10
    assert st["devices"]["cam-boot"]["processes"] == {"sshd": True, "console": True}
    # sshd really answers with an SSH banner on each device
    with socket.create_connection(("198.18.0.10", 22), timeout=5) as s:
        assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")


def test_up_refuses_subnet_overlapping_existing_route(sim_bench: dict, tmp_path: Path) -> None:
    cfg = variant(tmp_path, "overlap", "198.18.0.0/25", "rigbt9", "/run/privrig/sim-overlap", tuple(f"198.18.0.{20 + i}" for i in range(9)))
    res = rig("sim", "up", "-c", str(cfg))
    assert res.returncode == 1
    assert "overlaps the existing route 198.18.0.0/24 on rigbr0" in res.stderr
    assert not net.link_exists("rigbt9")
    assert not Path("/run/privrig/sim-overlap").exists()


def test_overlap_check_reads_every_route_of_a_namespace() -> None:
    need_root()
    need_tools("ip")
    ns = "rigt-overlap"
    net.ip("netns", "add", ns)
    try:
        net.ip("link", "add", "d0", "type", "veth", "peer", "name", "d1", netns=ns)
        net.ip("addr", "add", "198.18.200.1/24", "dev", "d0", netns=ns)
        net.ip("link", "set", "d0", "up", netns=ns)
        with pytest.raises(SimError, match="198.18.200.0/24 on d0"):
            net.check_subnet_free(ipaddress.IPv4Network("198.18.200.128/25"), netns=ns)
        with pytest.raises(SimError):
            net.check_subnet_free(ipaddress.IPv4Network("198.18.0.0/16"), netns=ns)
        net.check_subnet_free(ipaddress.IPv4Network("198.18.201.0/24"), netns=ns)
    finally:
        net.ip("netns", "del", ns, check=False)


def test_down_removes_everything_it_made(tmp_path: Path) -> None:
    need_root()
    need_tools(*BENCH_TOOLS)
    text = variant(tmp_path, "cam-t3", "198.18.3.0/24", "rigbt3", "/run/privrig/sim-t3", tuple(f"198.18.3.{10 + i}" for i in range(9))).read_text()
    cfg = parse_config(text, tmp_path / "t3.yaml")
    bench = SimBench(cfg)
    bench.down(log=lambda *_: None)
    state = bench.up(log=lambda *_: None)
    pids = [int(p) for d in state["devices"].values() for p in d["pids"].values()]
    assert pids and all(_alive(p) for p in pids)
    assert net.netns_exists("rig-cam-t3-a") and net.link_exists("rigbt3")
    assert any(m.startswith("/run/privrig/sim-t3/") for m in _mountpoints())
    with pytest.raises(SimError, match="already up"):
        bench.up(log=lambda *_: None)
    bench.down(log=lambda *_: None)
    assert not any(_alive(p) for p in pids)
    assert not any(net.netns_exists(f"rig-cam-t3-{x}") for x in "abcdefg")
    assert not net.link_exists("rigbt3") and not net.link_exists("rigbt3v0")
    assert not any(m.startswith("/run/privrig/sim-t3") for m in _mountpoints())
    assert not Path("/run/privrig/sim-t3").exists()
    assert not Path("/etc/netns/rig-cam-t3-a").exists()
    assert subprocess.run(["pgrep", "-f", "/run/privrig/sim-t3/"], capture_output=True).returncode == 1
    assert bench.down(log=lambda *_: None) == []  # idempotent


def test_sim_commands_need_a_simulator_section(tmp_path: Path) -> None:
    p = tmp_path / "real.yaml"
    p.write_text("bench: {name: lab}\ndevices:\n  d1: {privacy_level: 1}\n")
    res = rig("sim", "status", "-c", str(p))
    assert res.returncode == 2 and "no simulator section" in res.stderr
