"""channel-encryption on the simulated bench: real streams, real capture, each channel judged."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rig.config import load_config
from rig.engine import RunPlan, execute
from rig.results import Verdict
from rig.traffic.flows import read_flows
from tests.conftest import SIM_CONFIG, run_scenario, scenario_run, sim_config_variant

pytestmark = pytest.mark.clause("T/AI 110.1-2020 6.2.2 b")


@pytest.fixture(scope="module")
def outcome(run_all):
    """channel-encryption on the camera devices, from the session's shared run (tests/conftest.py run_all)."""
    return scenario_run(run_all, "channel-encryption", ["cam-secure", "cam-leaky", "cam-retail", "cam-retail-secure"])


def scenario(outcome, device: str):
    [dev] = [d for d in outcome.record.devices if d.name == device]
    return dev.scenarios[0]


def flows(outcome, device: str) -> dict:
    return json.loads((outcome.bundle / f"devices/{device}/channel-encryption/flows.json").read_text())


def test_protected_device_passes_with_each_channel_seen_encrypted(outcome) -> None:
    sc = scenario(outcome, "cam-secure")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    assert [f for f in sc.findings if f.severity != "info"] == []
    table = flows(outcome, "cam-secure")
    assert table["capture"]["dropped"] == 0 and table["capture"]["captured"] > 50
    by = {(f["protocol"], f["server"].rsplit(":", 1)[1]): f for f in table["flows"]}
    sink = sc.measurements["sink_address"].rsplit(":", 1)[1]
    srtp = by[("rtp", sink)]
    assert srtp["channel"] == "encrypted" and srtp["reasons"][0].startswith("SRTP") and srtp["client"].startswith("198.18.0.14:")
    https = by[("tls", "8443")]
    assert https["channel"] == "encrypted" and https["details"]["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    assert https["bytes"] > 100_000  # the MJPEG stream the rig pulled went through it
    ssh = by[("ssh", "22")]  # the rig's own session that ran stream-start: control, never the device's evidence
    assert ssh["channel"] == "control" and ssh["details"]["rig_session"] is True and ssh["id"] in table["rig_sessions"]
    parts = {p.name: p for p in sc.coverage}
    assert {n: p.state.value for n, p in parts.items()} == {"capture": "observed", "push": "observed", "pull main": "observed",
                                                            "device traffic": "observed", "tls 8443": "observed",
                                                            "tls 8443 vulnerabilities": "observed"}
    assert parts["push"].control and parts["push"].seen["bytes_from_device"] > 10_000 and parts["push"].seen["sink_bytes"] > 10_000
    assert parts["pull main"].seen["status"] == 200 and parts["pull main"].seen["bytes"] > 100_000
    tls = json.loads((outcome.bundle / "devices/cam-secure/channel-encryption/tls-8443.json").read_text())
    assert [v["version"] for v in tls["versions"] if v["accepted"]] == ["TLSv1.2", "TLSv1.3"]
    assert tls["client_auth"]["no_certificate"].startswith("refused") and tls["client_auth"]["self_made_certificate"].startswith("refused")
    assert tls["client_auth"]["configured_certificate"] == "accepted"
    assert tls["scanner"].startswith("sslyze") and tls["heartbleed"] is False and tls["robot"].startswith("NOT_VULNERABLE")


def test_leaky_device_fails_on_each_planted_channel(outcome) -> None:
    sc = scenario(outcome, "cam-leaky")
    assert sc.verdict is Verdict.FAIL
    sink = int(sc.measurements["sink_address"].rsplit(":", 1)[1])
    failing = sorted((f.kind, f.proto, f.detail.get("protocol"), f.flow and f.flow.split(" > ")[1]) for f in sc.findings if f.severity != "info")
    assert failing == sorted([
        ("obfuscated-channel", "udp", "raw", f"198.18.0.1:{sink + 2}"),  # XOR-scrambled JPEG, not taken for ciphertext
        ("plaintext-channel", "tcp", "http", "198.18.0.15:8080"),  # MJPEG over HTTP
        ("plaintext-channel", "tcp", "rtsp", "198.18.0.15:8554"),  # RTP/JPEG interleaved in a clear RTSP session, played by the rig
        ("plaintext-channel", "udp", "rtp", f"198.18.0.1:{sink}"),  # ffmpeg H.264 in clear RTP
        ("weak-tls-version", "tcp", None, None),  # the HTTPS server still takes TLS 1.0
    ])
    [weak] = [f for f in sc.findings if f.kind == "weak-tls-version"]
    assert weak.port == 8443 and "TLSv1.0" in weak.summary
    for f in sc.findings:
        if f.flow:
            assert re.fullmatch(r"(tcp|udp) 198\.18\.0\.\d+:\d+ > 198\.18\.0\.\d+:\d+", f.flow)
            assert f.evidence == ["devices/cam-leaky/channel-encryption/capture.pcap", "devices/cam-leaky/channel-encryption/flows.json"]
    [rtp] = [f for f in sc.findings if f.detail.get("protocol") == "rtp"]
    assert "H.264" in rtp.summary
    # the pulled HTTPS stream itself negotiated TLS 1.3 and is encrypted: the TLS 1.0 finding comes from the active check
    assert any(f["protocol"] == "tls" and f["channel"] == "encrypted" for f in flows(outcome, "cam-leaky")["flows"])


def test_shop_camera_legacy_tls_and_clear_rtsp_behind_digest(outcome) -> None:
    """Digest in front of RTSP protects nothing on the wire: the session is RTP/JPEG in the clear.
    Its TLS stack still takes TLS 1.0 and static-RSA suites beside TLS 1.3 (sslyze, suite by suite)."""
    sc = scenario(outcome, "cam-retail")
    failing = sorted((f.kind, f.port, f.detail.get("protocol")) for f in sc.findings if f.severity != "info")
    assert failing == [("plaintext-channel", 554, "rtsp"), ("tls-no-forward-secrecy", 443, None), ("weak-tls-version", 443, None)]
    [rtsp] = [f for f in sc.findings if f.kind == "plaintext-channel"]
    assert len(rtsp.detail["flows"]) == 2  # the DESCRIBE that checked the account, then the media session: one finding
    [pfs] = [f for f in sc.findings if f.kind == "tls-no-forward-secrecy"]
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in pfs.detail["suites"]["TLSv1.0"]
    parts = {p.name: p for p in sc.coverage}
    assert parts["pull main"].seen["auth"] == "Digest SHA-256" and parts["pull rtsp"].seen["auth"] == "Digest MD5"


def test_shop_camera_twin_passes_pulled_through_digest(outcome) -> None:
    sc = scenario(outcome, "cam-retail-secure")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    parts = {p.name: p for p in sc.coverage}
    assert parts["pull main"].state.value == "observed" and parts["pull main"].seen["auth"] == "Digest SHA-256"
    assert parts["tls 443"].seen["accepted"] == ["TLSv1.2", "TLSv1.3"]


def test_pcap_in_the_bundle_is_the_evidence(outcome) -> None:
    pcap = outcome.bundle / "devices/cam-leaky/channel-encryption/capture.pcap"
    cap = read_flows(pcap)
    ids = {f.id for f in cap.flows}
    assert {f.flow for f in scenario(outcome, "cam-leaky").findings if f.flow} <= ids
    manifest = json.loads((outcome.bundle / "manifest.json").read_text())
    assert "devices/cam-leaky/channel-encryption/capture.pcap" in json.dumps(manifest)


def test_a_capture_that_sees_nothing_judgeable_is_inconclusive(sim_bench: dict, tmp_path: Path) -> None:
    def edit(dev: dict) -> None:
        dev["camera"] = {"streams": [{"name": "none", "url": "http://198.18.0.10:8080/stream.mjpg"}]}  # nothing listens there
        dev["capture"] = {"duration_s": 2, "pull_s": 1}

    _, sc = run_scenario(tmp_path / "ev", "cam-compliant", "channel-encryption", sim_config_variant(tmp_path, "cam-compliant", edit))
    assert sc.verdict is Verdict.INCONCLUSIVE
    kinds = {f.kind for f in sc.findings}
    assert {"stream-unavailable", "capture-inconclusive"} <= kinds
    assert any("no flow the device sent carried enough to judge" in f.summary for f in sc.findings)
    assert any(f.kind == "stream-unavailable" and "Connection refused" in f.summary for f in sc.findings)


def test_a_device_that_sends_nothing_is_inconclusive_though_the_rigs_own_ssh_is_encrypted(sim_bench: dict, tmp_path: Path) -> None:
    """stream-start is accepted over SSH and the device sends nothing: the only flow in the capture is
    the rig's own encrypted SSH session, which once passed the scenario. It is the rig's control
    traffic, found by the endpoints the rig opened, and the sink's empty byte count is checked."""
    def edit(dev: dict) -> None:
        dev["actions"]["stream-start"] = {"via": "ssh", "command": "echo streaming to {sink_host}:{sink_port}"}
        dev["capture"] = {"duration_s": 3, "pull_s": 1}

    out, sc = run_scenario(tmp_path / "ev", "cam-compliant", "channel-encryption", sim_config_variant(tmp_path, "cam-compliant", edit))
    assert sc.verdict is Verdict.INCONCLUSIVE, [f.summary for f in sc.findings]
    parts = {p.name: p for p in sc.coverage}
    assert parts["push"].state.value == "unobserved" and "sent nothing to the sink" in parts["push"].summary
    assert parts["push"].seen["sink_bytes"] == 0 and parts["push"].seen["bytes_from_device"] == 0
    assert parts["device traffic"].state.value == "unobserved" and "rig's own session" in parts["device traffic"].summary
    table = json.loads((out.bundle / "devices/cam-compliant/channel-encryption/flows.json").read_text())
    [rig_ssh] = [f for f in table["flows"] if f["id"] in table["rig_sessions"]]
    assert rig_ssh["protocol"] == "ssh" and rig_ssh["channel"] == "control" and rig_ssh["server"] == "198.18.0.10:22"
    assert {f.kind for f in sc.findings} >= {"capture-inconclusive"}


def test_devices_without_streams_are_skipped_with_the_reason(sim_bench: dict, tmp_path: Path) -> None:
    out = execute(RunPlan.select(load_config(SIM_CONFIG), ["cam-boot"], ["channel-encryption"], tmp_path))
    sc = out.record.devices[0].scenarios[0]
    assert sc.verdict is Verdict.SKIPPED and "nothing makes the device send data" in sc.findings[0].summary


def test_a_failing_action_is_an_error_and_the_capture_is_kept(sim_bench: dict, tmp_path: Path) -> None:
    def edit(dev: dict) -> None:
        dev["actions"]["stream-start"] = {"via": "ssh", "command": "echo no such app >&2; exit 3"}
        dev["capture"] = {"duration_s": 2, "pull_s": 1}

    out, sc = run_scenario(tmp_path / "ev", "cam-secure", "channel-encryption", sim_config_variant(tmp_path, "cam-secure", edit))
    assert sc.verdict is Verdict.ERROR
    assert any("stream-start" in f.summary and "exited 3" in f.summary for f in sc.findings)
    pcap = out.bundle / "devices/cam-secure/channel-encryption/capture.pcap"
    assert pcap.stat().st_size > 24  # the SSH exchange that ran the action was captured
    assert "devices/cam-secure/channel-encryption/capture.pcap" in (out.bundle / "manifest.json").read_text()
