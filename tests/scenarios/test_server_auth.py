"""server-auth on the simulated bench: an uplink that verifies its cloud's certificate and one
that believes any server, intercepted with nftables on the bench host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from drivers import netfilter
from rig.results import Verdict
from tests.conftest import run_shipped, scenario_of, RIG, SIM_CONFIG, run_scenario, sim_config_variant

pytestmark = pytest.mark.clause("T/AI 110.1-2020 6.2.2 a 2")

CLASSES = ("self-signed", "rig-ca", "wrong-name", "expired")


@pytest.fixture(scope="module")
def outcome(sim_bench: dict, tmp_path_factory: pytest.TempPathFactory):
    return run_shipped(["cam-secure", "cam-leaky"], ["server-auth"], tmp_path_factory.mktemp("ev"))


scenario = scenario_of


def test_a_verifying_uplink_refuses_every_forged_server(outcome) -> None:
    sc = scenario(outcome, "cam-secure")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    parts = {p.name: p for p in sc.coverage}
    assert parts["uplink cloud"].state.value == "observed" and "tls encrypted" in parts["uplink cloud"].summary
    for c in CLASSES:
        p = parts[f"cloud {c}"]
        assert p.state.value == "observed" and p.summary.startswith("refused") and p.seen["app_bytes"] == 0, (c, p.summary)
        assert p.seen["sni"] == "cloud.simcam.example"
    assert netfilter.table_name("cam-secure") not in netfilter.tables()  # the redirect is gone


def test_an_uplink_that_believes_anyone_sends_its_heartbeat_to_each_forged_server(outcome) -> None:
    sc = scenario(outcome, "cam-leaky")
    assert sc.verdict is Verdict.FAIL
    forged = sorted(f.detail["certificate"] for f in sc.findings if f.kind == "forged-server-accepted")
    assert forged == sorted(CLASSES)
    report = json.loads((outcome.bundle / "devices/cam-leaky/server-auth/forged-cloud.json").read_text())
    assert all(a["handshake"].startswith("completed") and "HEARTBEAT device=cam-leaky token=" in a["app_head"] for a in report)
    ruleset = (outcome.bundle / "devices/cam-leaky/server-auth/nft-cloud.txt").read_text()
    assert "ip saddr 198.18.0.15 ip daddr 198.19.0.50 tcp dport 8883 redirect to :" in ruleset
    assert netfilter.table_name("cam-leaky") not in netfilter.tables()


def test_an_uplink_that_never_connects_is_inconclusive(sim_bench: dict, tmp_path: Path) -> None:
    def edit(dev: dict) -> None:
        dev["uplinks"] = [{**dev["uplinks"][0], "port": 9883, "window_s": 3}]  # the device never talks to that port

    _, sc = run_scenario(tmp_path / "ev", "cam-secure", "server-auth", sim_config_variant(tmp_path, "cam-secure", edit))
    assert sc.verdict is Verdict.INCONCLUSIVE
    parts = {p.name: p for p in sc.coverage}
    assert parts["uplink cloud"].state.value == "unobserved" and "no connection from the device to 198.19.0.50:9883" in parts["uplink cloud"].summary
    assert all(parts[f"cloud {c}"].state.value == "unobserved" for c in CLASSES)


def test_a_rig_killed_mid_interception_leaves_no_rule_after_the_next_start(sim_bench: dict, tmp_path: Path) -> None:
    table = netfilter.table_name("cam-secure")
    proc = subprocess.Popen([*RIG, "run", "-c", str(SIM_CONFIG), "--device", "cam-secure", "--scenario", "server-auth", "--out", str(tmp_path / "a")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while table not in netfilter.tables() and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it intercepted"
            time.sleep(0.2)
        assert table in netfilter.tables()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert table in netfilter.tables()  # SIGKILL: nothing could clean up
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    res = subprocess.run([*RIG, "run", "-c", str(SIM_CONFIG), "--device", "cam-secure", "--scenario", "uninstall-wipe", "--out", str(tmp_path / "b")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr  # uninstall-wipe is skipped here (no storage): the run itself is what sweeps
    assert table not in netfilter.tables()
    bundle = Path(res.stdout.strip().splitlines()[-1])
    assert '"event":"interception-swept"' in (bundle / "journal.jsonl").read_text().replace(" ", "")


def test_a_silent_handshake_is_acceptance_and_a_mute_connection_no_refusal(sim_bench: dict, sim_knob, tmp_path: Path) -> None:
    """cam-leaky's uplink completes each forged handshake and then sends nothing: it took the
    forged certificate, a finding. cam-secure's opens TCP connections and never says a word
    (no ClientHello): nothing was refused, so no class is observed and the run never passes."""
    sim_knob("cam-leaky", "uplink-mode")("silent")
    sim_knob("cam-secure", "uplink-mode")("mute")
    out = run_shipped(["cam-secure", "cam-leaky"], ["server-auth"], tmp_path / "ev")
    leaky = scenario(out, "cam-leaky")
    assert leaky.verdict is Verdict.FAIL
    accepted = {f.detail["certificate"]: f for f in leaky.findings if f.kind == "forged-server-accepted"}
    assert sorted(accepted) == sorted(CLASSES)
    assert all(f.severity == "high" and f.detail["app_bytes"] == 0 and "sent nothing" in f.summary for f in accepted.values())
    secure = scenario(out, "cam-secure")
    assert secure.verdict is Verdict.INCONCLUSIVE, [f.summary for f in secure.findings]
    parts = {p.name: p for p in secure.coverage}
    for c in CLASSES:
        assert parts[f"cloud {c}"].state.value == "unobserved" and "no ClientHello" in parts[f"cloud {c}"].summary, parts[f"cloud {c}"].summary
