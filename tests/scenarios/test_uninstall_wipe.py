"""uninstall-wipe on the simulated bench: the companion app's wipe, judged from listings and the canary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rig.results import Verdict
from tests.conftest import run_scenario, sim_config_variant

pytestmark = [pytest.mark.clause("T/AI 110.1-2020 6.2.3 c"), pytest.mark.clause("T/AI 110.1-2020 6.2.3 d")]


def run(tmp: Path, device: str, config: Path | None = None):
    return run_scenario(tmp, device, "uninstall-wipe", **({"config": config} if config else {}))


@pytest.fixture
def app_mode(sim_bench: dict):
    """Set how a simulated device's app wipes (/etc/simapp/mode in its root) for one test; put back after."""
    changed: list[tuple[Path, str]] = []

    def set_mode(device: str, mode: str) -> None:
        path = Path(sim_bench["devices"][device]["console"]).parent / "rootfs/etc/simapp/mode"
        changed.append((path, path.read_text()))
        path.write_text(mode + "\n")

    yield set_mode
    for path, old in reversed(changed):
        path.write_text(old)


def residues(sc) -> dict[str, dict]:
    return {f.path: f.detail for f in sc.findings if f.kind == "uninstall-residue"}


def test_clean_wipe_passes_and_the_canary_was_really_stored(sim_bench: dict, tmp_path: Path) -> None:
    out, sc = run(tmp_path, "cam-compliant")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    token = sc.measurements["inputs"]["canary"]
    assert re.fullmatch(r"privrig-[0-9a-f]{20}", token)
    placed = set(sc.measurements["canary_placed"])  # the check discriminates: the token was on the device before the wipe
    assert {f"/data/apps/simapp/users/u{token}", f"/data/apps/simapp/users/u{token}/events.db", "/var/log/simapp.log",
            f"/mnt/sdcard/DCIM/simapp/clip-{token}.bin"} <= placed
    folder = out.bundle / "devices/cam-compliant/uninstall-wipe"
    assert json.loads((folder / "canary.json").read_text())["token"] == token
    populated = (folder / "listing-populated.tsv").read_text()
    assert f"/data/apps/simapp/users/u{token}/profile.json" in populated and token not in (folder / "listing-after.tsv").read_text()
    assert sc.measurements["residues"] == 0 and sc.measurements["created_files"] >= 6


def test_residue_in_cache_and_logs_fails_with_each_path(sim_bench: dict, tmp_path: Path) -> None:
    _, sc = run(tmp_path, "cam-violating")
    assert sc.verdict is Verdict.FAIL
    found = residues(sc)
    [thumb] = [p for p in found if p.startswith("/data/apps/simapp/cache/thumb-")]
    assert set(found) == {thumb, "/var/log/simapp.log", "/dev/mmcblk0p1"}
    assert found[thumb]["reasons"] == ["its content holds the canary", "created after the baseline and still there"]
    assert all(found[p]["storage"] == "internal" and len(found[p]["sha256"]) == 64 for p in (thumb, "/var/log/simapp.log"))
    # the SD card's recording was deleted with rm: its blocks still hold the canary
    assert found["/dev/mmcblk0p1"]["storage"] == "raw-device" and found["/dev/mmcblk0p1"]["occurrences"] >= 1
    for f in sc.findings:
        if f.kind == "uninstall-residue":
            assert f.evidence[0].endswith("uninstall-wipe/residue.json") and f.interface == "storage"
    raw = sc.coverage["raw /dev/mmcblk0p1"]  # the raw scan says how much of the card it read
    assert raw.state.value == "observed" and raw.seen["bytes_read"] == raw.seen["size"] == 16 << 20 and raw.seen["partial"] is False
    assert "the whole device" in raw.summary
    (tmp_path / "part").mkdir()
    cfg = sim_config_variant(tmp_path / "part", "cam-violating", lambda d: d["storage"].update({"raw_scan_mb": 4}))
    _, part = run(tmp_path / "part", "cam-violating", cfg)
    raw = part.coverage["raw /dev/mmcblk0p1"]
    assert raw.seen["bytes_read"] == 4 << 20 and raw.seen["partial"] is True and "only the first 4 MiB" in raw.summary


def test_residue_only_on_external_storage(app_mode, tmp_path: Path) -> None:
    app_mode("cam-compliant", "external")  # internal storage wiped, the SD card's recordings left
    _, sc = run(tmp_path, "cam-compliant")
    assert sc.verdict is Verdict.FAIL
    token = sc.measurements["inputs"]["canary"]
    found = residues(sc)
    assert set(found) == {f"/mnt/sdcard/DCIM/simapp/clip-{token}.bin"}
    [detail] = found.values()
    assert detail["storage"] == "external" and "its name holds the canary" in detail["reasons"]
    assert any("6.2.3 d" in f.summary for f in sc.findings)


def test_deleting_files_is_not_wiping_the_card(app_mode, tmp_path: Path) -> None:
    app_mode("cam-violating", "clean")  # every file removed; the SD card's blocks not overwritten
    _, sc = run(tmp_path, "cam-violating")
    # what earlier runs of the leaky app left is in the baseline, and their canaries are not this run's
    assert sc.verdict is Verdict.FAIL
    assert set(residues(sc)) == {"/dev/mmcblk0p1"}


def test_clean_wipe_without_a_raw_device_passes_on_the_violating_device(app_mode, tmp_path: Path) -> None:
    app_mode("cam-violating", "clean")
    cfg = sim_config_variant(tmp_path, "cam-violating", lambda d: d["storage"].pop("raw_devices"))
    _, sc = run(tmp_path, "cam-violating", cfg)
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]


def test_failing_uninstall_is_an_error_and_the_listings_are_kept(sim_bench: dict, tmp_path: Path) -> None:
    cfg = sim_config_variant(tmp_path, "cam-compliant", lambda d: d["actions"].update({"app-uninstall": {"via": "ssh", "command": "simapp uninstall; exit 7"}}))
    out, sc = run(tmp_path, "cam-compliant", cfg)
    assert sc.verdict is Verdict.ERROR and any(f.kind == "device-error" and "exited 7" in f.summary for f in sc.findings)
    folder = out.bundle / "devices/cam-compliant/uninstall-wipe"
    assert all((folder / f"listing-{p}.tsv").exists() for p in ("baseline", "populated", "after")) and (folder / "residue.json").exists()


def test_devices_without_storage_are_skipped(sim_bench: dict, tmp_path: Path) -> None:
    _, sc = run(tmp_path, "cam-debug")
    assert sc.verdict is Verdict.SKIPPED and "storage" in sc.findings[0].summary


def test_rerun_reproduces_the_failure_with_the_same_canary(sim_bench: dict, tmp_path: Path) -> None:
    from tests.conftest import rig

    out, sc = run(tmp_path / "first", "cam-violating")
    assert sc.verdict is Verdict.FAIL
    again = rig("rerun", str(out.bundle), "--scenario", "uninstall-wipe", "--out", str(tmp_path / "again"), "-q")
    assert again.returncode == 1, again.stderr
    doc = json.loads((Path(again.stdout.strip().splitlines()[-1]) / "results.json").read_text())
    [dev] = doc["devices"]
    [replayed] = dev["scenarios"]
    assert dev["name"] == "cam-violating" and replayed["verdict"] == "fail"
    assert replayed["measurements"]["inputs"]["canary"] == sc.measurements["inputs"]["canary"]
    assert "/var/log/simapp.log" in {f.get("path") for f in replayed["findings"]}


def test_a_root_that_does_not_exist_is_not_a_clean_wipe(sim_bench: dict, tmp_path: Path) -> None:
    cfg = sim_config_variant(tmp_path, "cam-compliant", lambda d: d["storage"].update({"external_roots": ["/mnt/usb0"], "raw_devices": ["/dev/mmcblk9"]}))
    _, sc = run(tmp_path, "cam-compliant", cfg)
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    raw = sc.coverage["raw /dev/mmcblk9"]  # a raw device that cannot be read: not "no canary in its blocks"
    assert raw.state.value == "unobserved" and "could not be read" in raw.summary
    usb = sc.coverage["root /mnt/usb0"]
    assert usb.state.value == "unobserved" and "missing root(s) /mnt/usb0" in usb.summary and "T/AI 110.1-2020 6.2.3 d" in usb.clauses
    assert sc.coverage["root /data"].state.value == "observed" and sc.coverage["canary"].state.value == "observed"
    from rig.clauses import CLAUSES, cell

    by_id = {c.id: c for c in CLAUSES}
    assert cell(by_id["T/AI 110.1-2020 6.2.3 c"], {sc.id: sc}) == "inconclusive"  # the missing root is external: both clauses
    assert cell(by_id["T/AI 110.1-2020 6.2.3 d"], {sc.id: sc}) == "inconclusive"


def test_a_search_killed_by_its_timeout_over_real_ssh_is_never_an_empty_listing(sim_bench: dict, tmp_path: Path) -> None:
    """Over the device's real sshd a search killed on the device ends with no exit status (sshd
    reports the signal, paramiko shows -1); it was once taken as a complete, empty listing."""
    from drivers.ssh import SshDriver
    from drivers.storage import DeviceStorage, SearchIncomplete
    from rig.config import load_config
    from tests.conftest import SIM_CONFIG

    dev = load_config(SIM_CONFIG).device("cam-compliant")
    with SshDriver(dev.ssh) as ssh:  # type: ignore[arg-type]
        st = DeviceStorage(ssh, timeout_s=2)
        with pytest.raises(SearchIncomplete, match="killed on the device"):
            st._run("sleep 6; echo late", max_output=100)
        assert st._run("echo done", max_output=100)[1] == b"done\n"  # the session is still fine
    big = Path(sim_bench["devices"]["cam-compliant"]["console"]).parent / "rootfs/data/privrig-big.img"
    with big.open("wb") as fh:
        fh.truncate(64 << 30)  # 64 GiB of holes: hashing it takes far longer than the search may
    try:
        cfg = sim_config_variant(tmp_path, "cam-compliant", lambda d: d["storage"].update({"search_timeout_s": 5, "external_roots": []}))
        _, sc = run(tmp_path, "cam-compliant", cfg)
    finally:
        big.unlink()
    assert sc.verdict is Verdict.ERROR
    assert any(f.kind == "search-incomplete" and "storage.search_timeout_s" in f.summary for f in sc.findings)
    assert sc.coverage["root /data"].state.value == "error"
