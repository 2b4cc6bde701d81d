"""A device that is not there and a device that sends nothing pass no scenario: each part that
could not be observed says what did not answer, and the run exits 3 (nothing failed)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rig.results import validate_results
from tests.conftest import SIM_CONFIG, rig

MEDIA = ("channel-encryption", "camera-shutter", "deidentification")


def _doc(bundle: Path) -> dict:
    doc = json.loads((bundle / "results.json").read_text())
    validate_results(doc)
    return doc


def _scenarios(doc: dict, device: str) -> dict[str, dict]:
    [d] = [d for d in doc["devices"] if d["name"] == device]
    return {s["id"]: s for s in d["scenarios"]}


def _parts(sc: dict) -> dict[str, dict]:
    return {p["name"]: p for p in sc["coverage"]["parts"]}


def test_the_absent_device_passes_nothing_and_says_what_did_not_answer(run_all) -> None:
    sc = _scenarios(_doc(run_all[1]), "cam-absent")
    assert {k: v["verdict"] for k, v in sc.items()} == {
        "debug-ports": "error", "interface-auth": "inconclusive", "channel-encryption": "error", "camera-shutter": "error",
        "deidentification": "inconclusive", "uninstall-wipe": "error", "storage-at-rest": "error", "model-at-rest": "skipped",
        "model-integrity": "skipped", "firmware-update": "skipped", "server-auth": "skipped"}
    for s in sc.values():
        if s["verdict"] == "skipped":  # model-at-rest, firmware-update, server-auth: nothing configured for them
            continue
        text = " ".join(f["summary"] for f in s["findings"])
        assert "198.18.0.30" in text or "cam-absent/console" in text, (s["id"], text)
    dp = _parts(sc["debug-ports"])
    assert dp["tcp"]["state"] == "error" and "198.18.0.30" in dp["tcp"]["summary"]
    assert dp["console"]["state"] == "error" and "does not exist" in dp["console"]["summary"]
    ia = _parts(sc["interface-auth"])
    assert {n: p["state"] for n, p in ia.items()} == {"22/tcp": "unobserved", "8443/tcp": "unobserved", "scan": "unobserved"}
    assert all("nothing answered" in p["summary"] and "device off or unplugged" in p["summary"] for n, p in ia.items() if n != "scan")
    assert "198.18.0.30" in ia["scan"]["summary"] and "not run" in ia["scan"]["summary"]  # no second full scan of an absent host
    # no relay configured: not configured, and the scenario is still error (its tcp and console parts)
    assert dp["bootloader"]["state"] == "not-configured" and dp["bootloader"]["seen"]["missing"] == "no power action"
    assert "198.18.0.30" in _parts(sc["deidentification"])["output main"]["summary"]


def test_the_mute_device_is_inconclusive_wherever_its_media_was_needed(run_all) -> None:
    sc = _scenarios(_doc(run_all[1]), "cam-mute")
    assert {k: sc[k]["verdict"] for k in MEDIA} == {k: "inconclusive" for k in MEDIA}
    assert sc["debug-ports"]["verdict"] == "pass" and sc["interface-auth"]["verdict"] == "pass"  # what it does answer is observed
    ce = _parts(sc["channel-encryption"])
    assert ce["push"]["state"] == "unobserved" and ce["push"]["seen"]["sink_bytes"] == 0  # accepted stream-start, sent nothing
    assert ce["pull main"]["state"] == "unobserved" and "401" in ce["pull main"]["summary"]
    shutter = _parts(sc["camera-shutter"])["output main"]
    assert shutter["state"] == "unobserved" and "401" in shutter["summary"]  # never "the shutter blocked the view"
    assert "401" in _parts(sc["deidentification"])["output main"]["summary"]
    assert not any(f["kind"] == "output-stopped" for f in sc["camera-shutter"]["findings"])


def test_a_run_of_only_absent_and_mute_devices_exits_3_within_its_timeouts(sim_bench: dict, tmp_path: Path) -> None:
    t0 = time.monotonic()
    res = rig("run", "-c", str(SIM_CONFIG), "--device", "cam-absent", "--device", "cam-mute", "--scenario", "interface-auth",
              *(a for s in MEDIA for a in ("--scenario", s)), "--out", str(tmp_path), "-q")
    took = time.monotonic() - t0
    assert res.returncode == 3, res.stderr
    doc = _doc(Path(res.stdout.strip().splitlines()[-1]))
    verdicts = {(d["name"], s["id"]): s["verdict"] for d in doc["devices"] for s in d["scenarios"]}
    assert "pass" not in {v for (dev, sid), v in verdicts.items() if sid in MEDIA} and "fail" not in verdicts.values()
    assert took < 150, took  # bounded by connect and window timeouts, never a hang


def test_no_device_secret_and_no_rig_key_is_in_the_bundle(run_all, sim_bench: dict) -> None:
    """cam-violating keeps admin_password=Sup3rSecret! and an unencrypted EC key: storage-at-rest
    finds both, and neither (nor any private key the rig made for its TLS checks, nor the bench
    key) is anywhere in the bundle; the finding carries the secret's hash and length instead."""
    import hashlib

    from rig.signing import privrig_home

    bundle = run_all[1]
    blobs = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    device_key = Path(sim_bench["devices"]["cam-violating"]["console"]).parent / "rootfs/data/system/etc/device.key"
    for needle in (b"Sup3rSecret!", b"c2VjcmV0LXRva2Vu-4f1a", device_key.read_bytes().split(b"\n")[1][:40],
                   (privrig_home() / "bench-ed25519.pem").read_bytes().split(b"\n")[1], b"PRIVATE KEY-----\\nMI", b"PRIVATE KEY-----\nMI"):
        assert not [str(p) for p, data in blobs.items() if needle in data], needle
    assert not any(".tls-work" in str(p) for p in blobs)
    doc = json.loads((bundle / "results.json").read_text())
    [sec] = [f for d in doc["devices"] if d["name"] == "cam-violating" for s in d["scenarios"] if s["id"] == "storage-at-rest"
             for f in s["findings"] if f["kind"] == "plaintext-secret" and f["detail"]["key"] == "admin_password"]
    assert sec["detail"]["value_sha256"] == hashlib.sha256(b"Sup3rSecret!").hexdigest() and sec["detail"]["length"] == 12
