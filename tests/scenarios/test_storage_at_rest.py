"""storage-at-rest on the simulated bench: every planted weakness is a finding with its path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rig.results import Verdict
from tests.conftest import run_scenario, sim_config_variant

pytestmark = [pytest.mark.clause("T/AI 110.1-2020 6.2.3"), pytest.mark.clause("T/AI 110.1-2020 6.2.4 b 1")]


def run(tmp: Path, device: str, config: Path | None = None):
    return run_scenario(tmp, device, "storage-at-rest", **({"config": config} if config else {}))


def test_protected_storage_passes_and_the_tamper_check_discriminates(sim_bench: dict, tmp_path: Path) -> None:
    out, sc = run(tmp_path, "cam-compliant")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    folder = out.bundle / "devices/cam-compliant/storage-at-rest"
    [model] = json.loads((folder / "models.json").read_text())["models"]
    assert model["load_original_exit"] == 0 and model["load_tampered_exit"] == 3  # loads as it is, refused when tampered
    assert model["restored_sha256"] == model["sha256"] != model["tampered_sha256"] and model["looks_random"] is True
    secrets = json.loads((folder / "secrets.json").read_text())
    assert secrets["secrets"] == [] and secrets["lines_examined"] >= 3  # references, an empty value, an ENCRYPTED PRIVATE KEY
    [enc] = json.loads((folder / "encrypted.json").read_text())["files"]
    assert enc["path"] == "/data/system/settings.enc" and enc["looks_random"] is True


def test_each_planted_weakness_is_a_finding(sim_bench: dict, tmp_path: Path) -> None:
    root = Path(sim_bench["devices"]["cam-violating"]["console"]).parent / "rootfs"
    model = root / "data/system/models/detector.onnx"
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    out, sc = run(tmp_path, "cam-violating")
    assert sc.verdict is Verdict.FAIL
    got = sorted((f.kind, f.path, (f.detail or {}).get("format") or (f.detail or {}).get("user") or (f.detail or {}).get("key"))
                 for f in sc.findings if f.severity != "info")
    assert got == sorted([
        ("raw-image-at-rest", "/data/system/snapshots/20261123-120000.jpg", "JPEG"),
        ("raw-image-at-rest", "/data/system/snapshots/thumb-0001.dat", "PNG"),  # by its bytes, not its name
        ("raw-image-at-rest", "/mnt/sdcard/DCIM/rec-0001.264", "H.264"),
        ("plaintext-secret", "/data/system/etc/app.conf", "admin_password"),
        ("plaintext-secret", "/data/system/etc/app.conf", "cloud_token"),
        ("private-key-in-clear", "/data/system/etc/device.key", None),
        ("weak-password-hash", "/etc/shadow", "admin"),  # MD5-crypt
        ("weak-password-hash", "/etc/shadow", "service"),  # DES-crypt
        ("empty-password", "/etc/shadow", "guest"),
        ("declared-encryption-missing", "/data/system/settings.enc", None),
        ("model-in-clear", "/data/system/models/detector.onnx", "ONNX"),
        ("model-tamper-accepted", "/data/system/models/detector.onnx", None),
    ])
    assert all(f.evidence for f in sc.findings if f.severity != "info")
    bundle_text = "".join(p.read_text(errors="replace") for p in (out.bundle / "devices/cam-violating/storage-at-rest").glob("*.json"))
    assert "Sup3rSecret!" not in bundle_text and "$1$" not in bundle_text  # secrets and hashes never copied into findings' evidence
    assert hashlib.sha256(model.read_bytes()).hexdigest() == before and not model.with_name(model.name + ".privrig-orig").exists()


def test_level_3_devices_may_keep_raw_images(sim_bench: dict, tmp_path: Path) -> None:
    cfg = sim_config_variant(tmp_path, "cam-violating", lambda d: d.update({"privacy_level": 3}))
    _, sc = run(tmp_path, "cam-violating", cfg)
    assert sc.verdict is Verdict.FAIL  # the other weaknesses remain
    assert not [f for f in sc.findings if f.kind == "raw-image-at-rest"]
    media = sc.coverage["media"]
    assert media.state.value == "not-applicable" and "level 3" in media.summary
    from rig.clauses import CLAUSES, cell

    annex_a = next(c for c in CLAUSES if c.id == "T/AI 110.1-2020 Annex A")
    assert cell(annex_a, {sc.id: sc}) == "not applicable"


def test_declared_files_that_are_not_there_are_not_observed(sim_bench: dict, tmp_path: Path) -> None:
    """A declared encrypted file or model that does not exist was once a pass: nothing was judged."""
    def edit(d: dict) -> None:
        d["storage"]["encrypted"] = ["/data/system/nothing.enc"]
        d["storage"]["models"] = [{"path": "/data/system/models/none.bin"}]

    cfg = sim_config_variant(tmp_path, "cam-compliant", edit)
    _, sc = run(tmp_path, "cam-compliant", cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE
    assert {f.kind for f in sc.findings} == {"declared-file-missing", "model-missing", "tamper-inconclusive"}
    states = {p.name: p.state.value for p in sc.coverage}
    assert states == {"media": "observed", "secrets": "observed", "hashes": "observed", "encrypted /data/system/nothing.enc": "unobserved",
                      "model /data/system/models/none.bin": "unobserved", "tamper /data/system/models/none.bin": "unobserved"}
    assert "does not exist" in sc.coverage["encrypted /data/system/nothing.enc"].summary


def test_a_shadow_file_the_ssh_user_cannot_read_is_not_a_pass(sim_bench: dict, tmp_path: Path) -> None:
    """Logged in as an unprivileged account, /etc/shadow (mode 0600) cannot be read: once that was
    an empty file with no weak hash in it."""
    cfg = sim_config_variant(tmp_path, "cam-violating", lambda d: d["ssh"].update({"user": "admin"}))
    _, sc = run(tmp_path, "cam-violating", cfg)
    hashes = sc.coverage["hashes"]
    assert hashes.state.value == "unobserved" and "/etc/shadow: the device would not let the SSH user read it" in hashes.summary
    assert not [f for f in sc.findings if f.kind in ("weak-password-hash", "empty-password") and f.path == "/etc/shadow"]
    assert any(f.kind == "not-reached" and "/etc/shadow" in f.summary for f in sc.findings)
    assert sc.verdict is Verdict.FAIL  # the raw images and secrets it could read still fail it
    from rig.clauses import CLAUSES, cell

    by_id = {c.id: c for c in CLAUSES}
    assert cell(by_id["T/AI 110.1-2020 Annex A"], {sc.id: sc}) == "fail"
