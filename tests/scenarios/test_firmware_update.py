"""firmware-update on the simulated bench: an updater that verifies the vendor's Ed25519 signature
and the version, one that checks a CRC only, and what the rig can and cannot tell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig.results import Verdict
from tests.conftest import run_shipped, scenario_of, run_scenario, sim_config_variant

pytestmark = pytest.mark.clause("T/AI 110.1-2020 6.2.1 e")


@pytest.fixture(scope="module")
def outcome(sim_bench: dict, tmp_path_factory: pytest.TempPathFactory):
    return run_shipped(["cam-secure", "cam-leaky"], ["firmware-update"], tmp_path_factory.mktemp("ev"))


scenario = scenario_of


def test_a_device_that_verifies_refuses_every_variant_and_takes_the_genuine_image(outcome) -> None:
    sc = scenario(outcome, "cam-secure")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    parts = {p.name: p for p in sc.coverage}
    assert {n: p.state.value for n, p in parts.items()} == {
        "version": "observed", "variant bitflip": "observed", "variant truncated": "observed", "variant appended": "observed",
        "variant resigned": "observed", "variant rollback": "observed", "genuine": "observed", "update channel": "observed"}
    for name in ("bitflip", "truncated", "appended", "resigned", "rollback"):
        part = parts[f"variant {name}"]
        assert part.summary.startswith("refused (exit 22") and part.seen["before"] == part.seen["after"], (name, part.summary)
    assert "signature does not verify" in parts["variant resigned"].summary and "older than the running" in parts["variant rollback"].summary
    assert parts["genuine"].seen["after"] == "3.2.0"
    assert "tls encrypted" in parts["update channel"].summary


LEAKY = [("tampered-firmware-accepted", "appended"), ("tampered-firmware-accepted", "resigned"), ("firmware-rollback-accepted", "rollback")]


def test_a_crc_only_device_takes_what_a_crc_cannot_tell(outcome) -> None:
    sc = scenario(outcome, "cam-leaky")
    assert sc.verdict is Verdict.FAIL
    accepted = sorted((f.kind, f.detail["variant"]) for f in sc.findings if f.kind.endswith("-accepted"))
    assert accepted == sorted(LEAKY)
    [rb] = [f for f in sc.findings if f.kind == "firmware-rollback-accepted"]
    assert (rb.detail["before"], rb.detail["after"]) in (("1.0.3", "1.0.0"), ("1.1.0", "1.0.0")) and rb.severity == "high"
    variants = json.loads((outcome.bundle / "devices/cam-leaky/firmware-update/variants.json").read_text())
    by = {v["name"]: v for v in variants["variants"]}
    assert all(f.detail["sha256"] == by[f.detail["variant"]]["sha256"] for f in sc.findings if f.kind.endswith("-accepted"))
    # a bit flip and a cut image fail its CRC: refused, observed
    parts = {p.name: p for p in sc.coverage}
    assert "CRC mismatch" in parts["variant bitflip"].summary and parts["variant truncated"].summary.startswith("refused")
    [fetch] = [f for f in sc.findings if f.kind == "plaintext-update"]
    assert fetch.flow.endswith("198.19.0.50:8080") and fetch.detail["from_server"] > 70_000  # the image came down in the clear


def test_no_image_reaches_the_bundle(outcome) -> None:
    genuine = Path("/run/privrig/sim/firmware/cam-leaky/genuine.bin").read_bytes()
    chunk = genuine[1000:1064]
    for f in (outcome.bundle / "devices").rglob("*"):
        if f.is_file() and f.suffix != ".pcap":  # the pcap holds the device's own plain fetch: that is the finding's evidence
            assert chunk not in f.read_bytes(), f


def test_a_genuine_image_the_device_refuses_makes_the_run_inconclusive(sim_bench: dict, tmp_path: Path) -> None:
    """Given the older image as "genuine", a strict device refuses it (a downgrade): the rig cannot
    tell a strict device from a broken action, so nothing passes."""
    def edit(dev: dict) -> None:
        dev["firmware"] = {**dev["firmware"], "image": dev["firmware"]["older"], "version": "3.0.0"}
        dev["firmware"].pop("older")
        dev["firmware"].pop("update_servers")

    _, sc = run_scenario(tmp_path / "ev", "cam-secure", "firmware-update", sim_config_variant(tmp_path, "cam-secure", edit))
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    genuine = {p.name: p for p in sc.coverage}["genuine"]
    assert genuine.state.value == "unobserved" and "refused too" in genuine.summary


def test_a_device_that_does_not_answer_is_an_error_never_a_pass(sim_bench: dict, tmp_path: Path) -> None:
    """identify goes nowhere (the address moved to a host nobody answers on): nothing was applied,
    nothing observed, and the run says why."""
    def edit(dev: dict) -> None:
        dev["ssh"] = {**dev["ssh"], "host": "198.18.0.99", "connect_timeout_s": 3}
        dev["firmware"].pop("update_servers")

    _, sc = run_scenario(tmp_path / "ev", "cam-secure", "firmware-update", sim_config_variant(tmp_path, "cam-secure", edit))
    assert sc.verdict is Verdict.ERROR, [f.summary for f in sc.findings]
    version = {p.name: p for p in sc.coverage}["version"]
    assert version.state.value == "error" and "198.18.0.99" in version.summary
    assert not [f for f in sc.findings if f.kind.endswith("-accepted")]


#: a device on the bench host (its "flash" a file): firmware-apply checks the vendor's detached
#: Ed25519 signature over the image and nothing else (no version check); identify reads the version
DETACHED_DEVICE = r'''
import pathlib, sys
from cryptography.hazmat.primitives import serialization
state = pathlib.Path(sys.argv[1])
if sys.argv[2] == "identify":
    print("firmware=" + (state / "version").read_text().strip())
    sys.exit(0)
image, sig = pathlib.Path(sys.argv[3]).read_bytes(), sys.argv[4]
if not sig:
    print("upgrade refused: no signature")
    sys.exit(3)
try:
    serialization.load_pem_public_key((state / "pub.pem").read_bytes()).verify(pathlib.Path(sig).read_bytes(), image)
except Exception:
    print("upgrade refused: signature does not verify")
    sys.exit(3)
(state / "version").write_text(image[8:24].rstrip(b"\0").decode())
print("upgrade ok")
'''


def _detached_bench(tmp: Path, older_signature: bool) -> Path:
    import sys

    import yaml
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from rig.firmware import public_key_pem
    from rig.sim import fwimage

    key = ed25519.Ed25519PrivateKey.generate()
    (tmp / "pub.pem").write_bytes(public_key_pem(key))
    (tmp / "version").write_text("1.5.0\n")
    for name, version in (("genuine", "2.0.0"), ("older", "1.0.0")):
        image = fwimage.build(version, b"rootfs " * 2000, key)
        (tmp / f"{name}.bin").write_bytes(image)
        (tmp / f"{name}.sig").write_bytes(key.sign(image))
    (tmp / "device.py").write_text(DETACHED_DEVICE)
    run = [sys.executable, str(tmp / "device.py"), str(tmp)]
    firmware = {"image": str(tmp / "genuine.bin"), "version": "2.0.0", "older": str(tmp / "older.bin"), "settle_s": 0,
                "signature": {"detached": str(tmp / "genuine.sig")}}
    if older_signature:
        firmware["older_signature"] = str(tmp / "older.sig")
    cfg = {"bench": {"name": "detached", "evidence_dir": str(tmp / "ev")},
           "devices": {"host-fw": {"privacy_level": 2, "firmware": firmware, "actions": {
               "identify": {"via": "host", "argv": [*run, "identify"]},
               "firmware-apply": {"via": "host", "argv": [*run, "apply", "{image}", "{signature}"], "expect_exit": 0}}}}}
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("older_signature", [False, True], ids=["no-older-signature", "older-signature"])
def test_rollback_with_detached_signatures_needs_the_older_images_own_signature(tmp_path: Path, older_signature: bool) -> None:
    """A device that checks detached signatures and not versions. Handed the older image without
    its signature it refuses it on the signature, which says nothing about downgrades: without
    firmware.older_signature the rollback is not configured (shown as such, the rest passes); with
    it the downgrade is taken."""
    _, sc = run_scenario(tmp_path / "ev", "host-fw", "firmware-update", _detached_bench(tmp_path, older_signature))
    parts = {p.name: p for p in sc.coverage}
    for name in ("bitflip", "truncated", "appended", "resigned"):
        assert parts[f"variant {name}"].summary.startswith("refused (exit 3: upgrade refused: signature does not verify"), parts[f"variant {name}"].summary
    assert parts["genuine"].state.value == "observed" and parts["genuine"].seen["after"] == "2.0.0"
    if not older_signature:
        assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
        rollback = parts["variant rollback"]
        assert rollback.state.value == "not-configured" and rollback.seen["missing"] == "no firmware.older_signature"
        assert rollback.note == "variant rollback not checked, no firmware.older_signature"
    else:
        assert sc.verdict is Verdict.FAIL
        [rb] = [f for f in sc.findings if f.kind == "firmware-rollback-accepted"]
        assert (rb.detail["before"], rb.detail["after"]) == ("1.5.0", "1.0.0")


def test_a_device_that_drops_the_session_while_it_flashes_is_still_judged(sim_bench: dict, tmp_path: Path) -> None:
    """cam-leaky taking its image over SSH (SFTP upload, then posted to its updater) and killing the
    session as it flashes, as a device that reboots to flash does: a dropped session is "it may
    have flashed", so the rig waits for it and reads the version; the images it took are found."""

    def edit(dev: dict) -> None:
        dev["actions"]["firmware-apply"] = {"via": "ssh", "timeout_s": 30,
                                            "command": "n=$(wc -c < {image}); (printf 'POST /upgrade HTTP/1.0\\r\\nContent-Length: %s\\r\\n\\r\\n' $n; "
                                                       "cat {image}) | nc 127.0.0.1 8088 | tail -1; kill -9 $PPID"}

    from drivers.ssh import SshDriver
    from rig.config import load_config
    from tests.conftest import SIM_CONFIG

    with SshDriver(load_config(SIM_CONFIG).device("cam-leaky").ssh) as ssh:  # back to what it shipped with, whatever ran before
        ssh.run("sed -i 's/^firmware=.*/firmware=1.0.3/' /etc/device-info", check=True)
    _, sc = run_scenario(tmp_path / "ev", "cam-leaky", "firmware-update", sim_config_variant(tmp_path, "cam-leaky", edit))
    assert sc.verdict is Verdict.FAIL, [f.summary for f in sc.findings]
    accepted = sorted((f.kind, f.detail["variant"]) for f in sc.findings if f.kind.endswith("-accepted"))
    assert accepted == [("firmware-rollback-accepted", "rollback"), ("tampered-firmware-accepted", "appended")]
    parts = {p.name: p for p in sc.coverage}
    # re-signed, it carries 1.1.0, which the device already runs after the appended image: with no exit status, not told
    assert parts["variant resigned"].state.value == "unobserved" and "cannot be told" in parts["variant resigned"].summary
    assert parts["genuine"].state.value == "observed" and parts["genuine"].seen["after"] == "1.1.0"
    assert parts["variant bitflip"].state.value == "observed" and parts["variant bitflip"].seen["exit"] is None  # its session dropped too
