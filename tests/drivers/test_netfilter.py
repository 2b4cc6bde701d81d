"""The nftables redirect: made from typed values only, gone after the block whatever happens,
and a table a killed rig left behind swept."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from drivers import netfilter
from tests.conftest import need, need_root

DEVICE = "nft-selftest-cam"


def _redirect() -> netfilter.Redirect:
    return netfilter.Redirect(ipaddress.IPv4Address("198.18.250.9"), ipaddress.IPv4Address("198.19.250.9"), 8883, 18883)


@pytest.fixture
def nft():
    need_root()
    need(netfilter.nft_path() is not None, "nftables (Debian nftables; scripts/setup installs it)")
    netfilter.sweep(DEVICE)
    yield
    netfilter.sweep(DEVICE)


def test_the_rule_exists_only_inside_the_block(nft) -> None:
    with netfilter.Interception(DEVICE, [_redirect()]) as icpt:
        assert netfilter.table_name(DEVICE) in netfilter.tables()
        assert "ip saddr 198.18.250.9 ip daddr 198.19.250.9 tcp dport 8883 redirect to :18883" in icpt.ruleset()
    assert netfilter.table_name(DEVICE) not in netfilter.tables()
    with pytest.raises(RuntimeError):
        with netfilter.Interception(DEVICE, [_redirect()]):
            raise RuntimeError("the scenario failed mid-interception")
    assert netfilter.table_name(DEVICE) not in netfilter.tables()


def test_a_leftover_table_is_swept(nft) -> None:
    name = netfilter.table_name(DEVICE)
    subprocess.run([netfilter.nft_path(), "add", "table", "ip", name], check=True, timeout=10)  # what a SIGKILLed rig leaves
    assert netfilter.sweep(DEVICE) is True and name not in netfilter.tables()
    assert netfilter.sweep(DEVICE) is False


def test_names_and_values_are_typed() -> None:
    assert netfilter.table_name("Cam-01; drop table") == "privrig_cam_01__drop_table"
    with pytest.raises(ValueError):
        netfilter.Redirect("198.18.0.1; flush ruleset", ipaddress.IPv4Address("198.19.0.1"), 1, 2).rule()  # type: ignore[arg-type]
