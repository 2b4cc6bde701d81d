"""The lab config: checked like a bench config, each host's bench loaded, a device on one host only."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.config import ConfigError
from rig.lab.config import load_lab
from tests.conftest import rig
from tests.lab.benches import bench_config


def lab_file(folder: Path, hosts: dict[str, Path], broker: str = '{url: "redis://127.0.0.1:6379/0"}') -> Path:
    p = folder / "lab.yaml"
    p.write_text("version: 1\nlab:\n  name: lab-t\n  broker: " + broker + "\n  history: {url: \"sqlite:///" + str(folder / "h.sqlite")
                 + "\"}\n  evidence_store: store\n  hosts:\n" + "".join(f"    {h}: {{bench: {b.name}}}\n" for h, b in hosts.items()))
    return p


def test_a_good_lab_loads_with_its_benches(tmp_path: Path) -> None:
    a = bench_config(tmp_path, "bench-one", 50, {"one-cam": "cam-compliant"})
    b = bench_config(tmp_path, "bench-two", 51, {"two-cam": "cam-violating"})
    lab = load_lab(lab_file(tmp_path, {"host-1": a, "host-2": b}))
    assert lab.devices() == {"one-cam": "host-1", "two-cam": "host-2"} and lab.lab.evidence_store == tmp_path / "store"
    res = rig("config", "check", str(tmp_path / "lab.yaml"))
    assert res.returncode == 0 and "ok: lab lab-t, 2 host(s)" in res.stdout


def test_a_device_on_two_hosts_is_refused_naming_both(tmp_path: Path) -> None:
    a = bench_config(tmp_path, "bench-one", 50, {"same-cam": "cam-compliant"})
    b = bench_config(tmp_path, "bench-two", 51, {"same-cam": "cam-violating"})
    with pytest.raises(ConfigError) as ei:
        load_lab(lab_file(tmp_path, {"host-1": a, "host-2": b}))
    [p] = ei.value.problems
    assert p.file.endswith("lab.yaml") and p.line == 9 and "device 'same-cam' is on host 'host-1' too" in str(p)
    res = rig("config", "check", str(tmp_path / "lab.yaml"))
    assert res.returncode == 2 and "lab.yaml:9:" in res.stderr


@pytest.mark.parametrize("broker,message", [
    ('{url: "redis://:s3cret@127.0.0.1:6379/0"}', "no password in the URL"),
    ('{url: "amqp://127.0.0.1/"}', "the broker is Redis"),
])
def test_a_broker_url_with_a_password_or_not_redis_is_refused(tmp_path: Path, broker: str, message: str) -> None:
    a = bench_config(tmp_path, "bench-one", 50, {"one-cam": "cam-compliant"})
    res = rig("config", "check", str(lab_file(tmp_path, {"host-1": a}, broker)))
    assert res.returncode == 2 and message in res.stderr and "s3cret" not in res.stderr and "lab.broker.url" in res.stderr


def test_a_broken_host_bench_is_named_by_its_own_file(tmp_path: Path) -> None:
    a = bench_config(tmp_path, "bench-one", 50, {"one-cam": "cam-compliant"})
    a.write_text(a.read_text().replace("privacy_level: 2", "privacy_level: 9"))
    res = rig("config", "check", str(lab_file(tmp_path, {"host-1": a})))
    assert res.returncode == 2 and "bench-one.yaml:" in res.stderr and "privacy_level" in res.stderr


def test_the_worker_refuses_a_host_the_lab_does_not_have(tmp_path: Path) -> None:
    a = bench_config(tmp_path, "bench-one", 50, {"one-cam": "cam-compliant"})
    res = rig("lab", "worker", "-c", str(lab_file(tmp_path, {"host-1": a})), "--host", "host-9")
    assert res.returncode == 2 and "--host host-9: no such host" in res.stderr
    res = rig("lab", "submit", "-c", str(tmp_path / "lab.yaml"))
    assert res.returncode == 2 and "give --device NAME" in res.stderr


def test_the_worker_finds_its_host_by_its_bench_config(tmp_path: Path) -> None:
    a = bench_config(tmp_path, "bench-one", 50, {"one-cam": "cam-compliant"})
    lab = lab_file(tmp_path, {"host-1": a})
    res = rig("lab", "worker", "-c", str(lab), "--bench", str(tmp_path / "other.yaml"))
    assert res.returncode == 2 and "no host of" in res.stderr
    res = rig("lab", "worker", "-c", str(lab))
    assert res.returncode == 2 and "give --bench" in res.stderr


@pytest.mark.parametrize("broker,ok", [
    ('{url: "redis://198.18.7.1:6379/0"}', False),  # another host, plain, no password: anyone on the wire forges results
    ('{url: "redis://198.18.7.1:6379/0", password_env: PRIVRIG_BROKER_PASSWORD}', True),
    ('{url: "rediss://198.18.7.1:6380/0"}', True),  # TLS
    ('{url: "redis://localhost:6379/0"}', True),
    ('{url: "redis://[::1]:6379/0"}', True),
], ids=["plain-remote", "password", "tls", "localhost", "ipv6-loopback"])
def test_a_broker_outside_loopback_needs_a_password_or_tls(tmp_path: Path, broker: str, ok: bool) -> None:
    a = bench_config(tmp_path, "bench-one", 50, {"one-cam": "cam-compliant"})
    path = lab_file(tmp_path, {"host-1": a}, broker)
    if ok:
        assert load_lab(path).lab.max_attempts == 3
        return
    with pytest.raises(ConfigError) as ei:
        load_lab(path)
    [p] = ei.value.problems
    assert p.field.startswith("lab.broker") and p.line == 4 and "outside loopback with no password" in str(p), str(p)
