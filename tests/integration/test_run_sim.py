"""`rig run` end to end on the simulated bench, as a technician and a nightly job use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path


from rig.results import validate_results
from tests.conftest import RIG, ROOT, SIM_CONFIG, rig


def test_run_exits_1_and_prints_bundle_last(run_all) -> None:
    res, bundle = run_all
    assert res.returncode == 1, res.stderr
    assert bundle.is_dir() and bundle.name.count("-") == 1
    assert "[cam-violating] debug-ports FAIL" in res.stderr
    assert "[cam-compliant] debug-ports pass" in res.stderr


def test_results_json_follows_the_contract(run_all) -> None:
    _, bundle = run_all
    doc = json.loads((bundle / "results.json").read_text())
    validate_results(doc)
    assert doc["status"] == "complete" and doc["schema"] == "rig-results/1"
    verdicts = {d["name"]: {s["id"]: s["verdict"] for s in d["scenarios"]} for d in doc["devices"]}
    no_stream = {"channel-encryption": "skipped", "camera-shutter": "skipped", "deidentification": "skipped"}  # no camera: skipped with the reason
    no_storage = {"uninstall-wipe": "skipped", "storage-at-rest": "skipped", "model-at-rest": "skipped", "model-integrity": "skipped"}
    no_fw = {"firmware-update": "skipped", "server-auth": "skipped"}  # no vendor image, no uplink: skipped with the reason
    expected = {"cam-compliant": {"debug-ports": "pass", "interface-auth": "pass", **no_stream, "uninstall-wipe": "pass", "storage-at-rest": "pass",
                                  "model-at-rest": "pass", "model-integrity": "pass", **no_fw},
               "cam-violating": {"debug-ports": "fail", "interface-auth": "fail", **no_stream, "uninstall-wipe": "fail", "storage-at-rest": "fail",
                                  "model-at-rest": "fail", "model-integrity": "fail", **no_fw},
               "cam-debug": {"debug-ports": "fail", "interface-auth": "fail", **no_stream, **no_storage, **no_fw},
               "cam-boot": {"debug-ports": "fail", "interface-auth": "pass", **no_stream, **no_storage, **no_fw},
               "cam-secure": {"debug-ports": "pass", "interface-auth": "pass", "channel-encryption": "pass", "camera-shutter": "pass", "deidentification": "pass",
                              **no_storage, "firmware-update": "pass", "server-auth": "pass"},
               "cam-leaky": {"debug-ports": "pass", "interface-auth": "fail", "channel-encryption": "fail", "camera-shutter": "fail", "deidentification": "fail",
                             **no_storage, "firmware-update": "fail", "server-auth": "fail"},
               # answers, sends nothing: whatever needed its media is inconclusive (tests/integration/test_absent_and_mute.py)
               "cam-mute": {"debug-ports": "pass", "interface-auth": "pass", "channel-encryption": "inconclusive", "camera-shutter": "inconclusive",
                            "deidentification": "inconclusive", **no_storage, **no_fw},
               # a camera as shops sell them: Digest default account, undeclared telnet, legacy TLS, clear RTSP; and its twin
               "cam-retail": {"debug-ports": "fail", "interface-auth": "fail", "channel-encryption": "fail", "camera-shutter": "pass",
                              "deidentification": "pass", **no_storage, **no_fw},
               "cam-retail-secure": {"debug-ports": "pass", "interface-auth": "pass", "channel-encryption": "pass", "camera-shutter": "pass",
                                     "deidentification": "pass", **no_storage, **no_fw},
               # never powered on: nothing passes
               "cam-absent": {"debug-ports": "error", "interface-auth": "inconclusive", "channel-encryption": "error", "camera-shutter": "error",
                              "deidentification": "inconclusive", "uninstall-wipe": "error", "storage-at-rest": "error",
                              "model-at-rest": "skipped", "model-integrity": "skipped", **no_fw}}
    # a mismatch names each cell that differs and the parts behind it, with what they saw (CI keeps no bundle)
    assert verdicts == expected, _why(doc, verdicts, expected)
    [viol] = [d for d in doc["devices"] if d["name"] == "cam-violating"]
    [dp] = [s for s in viol["scenarios"] if s["id"] == "debug-ports"]
    ports = {(f.get("proto"), f.get("port"), f.get("service")) for f in dp["findings"] if f.get("kind") == "open-debug-service"}
    assert ports == {("tcp", 23, "telnet"), ("tcp", 2345, "gdbserver"), ("udp", 161, "snmp"), ("udp", 69, "tftp")}
    import hashlib

    assert doc["config_sha256"] == hashlib.sha256(SIM_CONFIG.read_bytes()).hexdigest()


def _why(doc: dict, got: dict, expected: dict) -> str:
    """Each device/scenario whose verdict differs, with its parts that were not observed and why."""
    lines = []
    for d in doc["devices"]:
        for s in d["scenarios"]:
            want = expected.get(d["name"], {}).get(s["id"])
            if want != got[d["name"]][s["id"]]:
                parts = [f"{p['name']}: {p['state']}: {p.get('summary')}" for p in (s.get("coverage") or {}).get("parts", [])
                         if p.get("state") != "observed"]
                lines.append(f"{d['name']}/{s['id']}: {s['verdict']} (expected {want}): " + " | ".join(parts)[:1500])
    return "\n".join(lines)


def test_junit_has_one_case_per_device_and_scenario(run_all) -> None:
    _, bundle = run_all
    suite = ET.parse(bundle / "junit.xml").getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    devices = ("cam-compliant", "cam-violating", "cam-debug", "cam-boot", "cam-secure", "cam-leaky", "cam-mute", "cam-retail", "cam-retail-secure",
               "cam-absent")
    assert set(cases) == {(d, s) for d in devices for s in ("debug-ports", "interface-auth", "channel-encryption", "camera-shutter", "deidentification",
                                                             "uninstall-wipe", "storage-at-rest", "model-at-rest", "model-integrity", "firmware-update",
                                                             "server-auth")}
    assert cases[("cam-violating", "debug-ports")].find("failure") is not None
    assert cases[("cam-compliant", "debug-ports")].find("failure") is None
    assert suite.get("failures") == "18"  # cam-violating's model-integrity is the 18th
    assert cases[("cam-leaky", "channel-encryption")].find("failure") is not None


def test_run_is_indexed_in_the_history(run_all) -> None:
    _, bundle = run_all
    db = bundle.parent / "history.sqlite"
    assert db.exists()
    res = rig("history", "--db", f"sqlite:///{db}", "--device", "cam-violating", "--scenario", "uninstall-wipe", "--json")
    assert res.returncode == 0, res.stderr
    answer = json.loads(res.stdout)
    assert {a["clause"] for a in answer} == {"T/AI 110.1-2020 6.2.3 c", "T/AI 110.1-2020 6.2.3 d"}
    assert all(a["verdict"] == "fail" and a["failing_since"]["run_id"] == bundle.name and a["last_pass"] is None for a in answer)


def test_verify_accepts_then_rejects_one_changed_byte(run_all, tmp_path: Path) -> None:
    _, bundle = run_all
    ok = rig("verify", str(bundle))
    assert ok.returncode == 0 and "VERIFIED" in ok.stdout
    import shutil

    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    art = copy / "devices/cam-violating/debug-ports/probe-2345.txt"
    data = bytearray(art.read_bytes())
    data[10] ^= 0x20
    art.write_bytes(bytes(data))
    bad = rig("verify", str(copy))
    assert bad.returncode == 1 and "TAMPERED" in bad.stdout and "probe-2345.txt" in bad.stdout


def test_report_is_self_contained(run_all) -> None:
    _, bundle = run_all
    html = (bundle / "report.html").read_text()
    assert "cam-violating" in html and "gdbserver" in html
    import re

    assert "<script" not in html and "<link" not in html  # nothing fetched
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', html))  # images are embedded, never fetched
    assert all(not re.match(r"[a-z]+:", href) for href in re.findall(r'href="([^"]*)"', html))  # links stay in the bundle


def test_one_device_one_scenario_for_a_firmware_engineer(sim_bench: dict, tmp_path: Path) -> None:
    res = rig("run", "-c", str(SIM_CONFIG), "--device", "cam-violating", "--scenario", "interface-auth", "--out", str(tmp_path))
    assert res.returncode == 1, res.stderr
    doc = json.loads((Path(res.stdout.strip().splitlines()[-1]) / "results.json").read_text())
    assert [(d["name"], [s["id"] for s in d["scenarios"]]) for d in doc["devices"]] == [("cam-violating", ["interface-auth"])]


def _journal_events(bundle: Path) -> list[dict]:
    out = []
    for line in (bundle / "journal.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line being written
    return out


def _start_and_wait_for(tmp_path: Path, event: str, device: str | None = None) -> tuple[subprocess.Popen, Path, dict]:
    """Start `rig run` and return once the journal shows ``event`` (for ``device``)."""
    proc = subprocess.Popen(RIG + ["run", "-c", str(SIM_CONFIG), "--out", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        bundles = list(tmp_path.iterdir())
        if bundles and (bundles[0] / "journal.jsonl").exists():
            for e in _journal_events(bundles[0]):
                if e.get("event") == event and (device is None or e.get("device") == device):
                    return proc, bundles[0], e
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"run never reached {event} {device or ''}")


def test_sigkill_mid_run_leaves_bundle_verify_reads_as_incomplete(sim_bench: dict, tmp_path: Path) -> None:
    proc, bundle, first = _start_and_wait_for(tmp_path, "scenario-end")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    res = rig("verify", str(bundle))
    assert res.returncode == 3, res.stdout
    assert "INCOMPLETE" in res.stdout
    # what finished before the kill is kept and verifiable
    assert f"{first['device']}/{first['scenario']}: {first['verdict']}" in res.stdout
    assert not (bundle / "manifest.json").exists()


def test_sigterm_mid_run_seals_incomplete_bundle_exit_4(sim_bench: dict, tmp_path: Path) -> None:
    proc, bundle, first = _start_and_wait_for(tmp_path, "scenario-end")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert out.strip().splitlines()[-1] == str(bundle)
    doc = json.loads((bundle / "results.json").read_text())
    validate_results(doc)
    assert doc["status"] == "incomplete"
    done = {(d["name"], s["id"]): s["verdict"] for d in doc["devices"] for s in d["scenarios"]}
    assert done[(first["device"], first["scenario"])] == first["verdict"]  # finished scenarios keep their verdicts
    res = rig("verify", str(bundle))
    assert res.returncode == 3 and "INCOMPLETE" in res.stdout


def test_no_stream_password_anywhere_in_the_bundle_or_the_output(run_all) -> None:
    """cam-retail and its twin were grabbed through Digest with the accounts their config names
    (password_file): not one file of the bundle, nor what `rig run` printed, holds a password."""
    import base64
    from urllib.parse import quote

    res, bundle = run_all
    passwords = [Path(f"/run/privrig/sim/{d}/{u}.pw").read_text().strip() for d, u in (("cam-retail", "admin"), ("cam-retail-secure", "viewer"))]
    doc = json.loads((bundle / "results.json").read_text())
    pulls = {d["name"]: next(s for s in d["scenarios"] if s["id"] == "channel-encryption") for d in doc["devices"] if d["name"].startswith("cam-retail")}
    assert {name: [p["seen"].get("auth") for p in sc["coverage"]["parts"] if p["name"].startswith("pull ")] for name, sc in pulls.items()} == \
        {"cam-retail": ["Digest SHA-256", "Digest MD5"], "cam-retail-secure": ["Digest SHA-256"]}
    forms = set()
    for pw in passwords:
        forms |= {pw, quote(pw, safe=""), base64.b64encode(f"admin:{pw}".encode()).decode(), base64.b64encode(f"viewer:{pw}".encode()).decode()}
    files = [f for f in bundle.rglob("*") if f.is_file()]
    assert len(files) > 100
    for f in files:
        data = f.read_bytes()
        assert not [s for s in forms if s.encode() in data], f
    assert not [s for s in forms if s in res.stdout or s in res.stderr]
