"""A device that attacks the rig (rig/sim/hostile.py, cam-hostile): every driver holds.

Each case's attack is met by the driver that would meet it on a bench: the stream grabber and
puller for HTTP/MJPEG, the RTSP client, the protocol probes and login-service naming for every
port, the TLS client-certificate probe, the SSH driver; over the device's real sshd
(rig/sim/hostile_ssh.py) the SSH driver's commands and the storage searches. Each call must end within its own bound
plus a margin, keep the rig's Python allocations under :data:`PEAK_LIMIT`, and return text with no
raw terminal escape. A whole run of debug-ports and interface-auth on cam-hostile (`rig run`, as
a technician would) must end within its deadline, print no escape and no traceback, write a
bundle that verifies, and pass nothing. The figures per case are printed by
``benchmarks/hostile.py`` (docs/untrusted-input.md), not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from rig.sim.hostile import ADDRESS, CASES, HostileDevice
from rig.sim import hostile_ssh
from rig.sim.hostile_udp import UDP_CASES
from tests.conftest import ROOT

HOST = str(ADDRESS)
#: Python allocations a driver call may peak at while under attack (the attacks send up to 4 GB)
PEAK_LIMIT = 96 << 20
#: seconds past a call's own bound that count as "it ended" (thread joins, a last read)
MARGIN_S = 15.0


@pytest.fixture(scope="module")
def hostile(sim_bench: dict):
    dev = HostileDevice()
    dev.up(ssh=True)
    try:
        yield HOST
    finally:
        dev.down()


def _bounded(call, bound_s: float):
    """Run ``call()``; return its result after asserting time and memory bounds."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        out = call()
    finally:
        took = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert took < bound_s + MARGIN_S, f"took {took:.1f} s (bound {bound_s:g} s)"
    assert peak < PEAK_LIMIT, f"peak {peak >> 20} MiB"
    return out


def _clean(text: object) -> None:
    s = json.dumps(text, default=str) if not isinstance(text, str) else text
    assert "\x1b" not in s and "\x00" not in s and "\x07" not in s, s[:200]


HTTP = [p for p, c in CASES.items() if c.proto == "http"]
RTSP = [p for p, c in CASES.items() if c.proto == "rtsp"]
TLS = [p for p, c in CASES.items() if c.proto == "tls"]
#: the HTTP cases the stream puller is also run on (a 2xx it may count bytes from: DELIVERS)
PULLED = ("http-endless-headers", "http-1gb-header-line", "mjpeg-2gb-part", "http-never-ends", "http-bad-content-length")
DELIVERS = ("mjpeg-2gb-part", "http-never-ends", "http-bad-content-length")


@pytest.mark.parametrize("port", HTTP, ids=[CASES[p].name for p in HTTP])
def test_http_and_mjpeg_clients_hold(hostile: str, port: int) -> None:
    from drivers.httpauth import Credentials
    from drivers.stream import grab_frames, pull

    url = f"http://{hostile}:{port}/stream.mjpg"
    grab = _bounded(lambda: grab_frames(url, 2.0, max_frames=5, connect_timeout=2.0, auth=Credentials("admin", "x")), 2.0 + 2.0)
    assert not grab.frames, f"{CASES[port].name}: frames decoded from an attack"
    _clean(grab.to_dict())
    if CASES[port].name in PULLED:  # the puller shares the grabber's connection and reads; these differ in what it keeps
        got = _bounded(lambda: pull(url, 2.0, max_bytes=8 << 20, connect_timeout=2.0), 2.0 + 2.0)
        assert got.bytes <= (8 << 20) + 65536 and (got.error or got.status is None or got.status >= 300 or CASES[port].name in DELIVERS)
        _clean(got.to_dict())


@pytest.mark.parametrize("port", RTSP, ids=[CASES[p].name for p in RTSP])
def test_the_rtsp_client_holds(hostile: str, port: int) -> None:
    from drivers.httpauth import Credentials
    from drivers.rtsp import request

    from drivers.rtsp import REPLY_LIMIT

    ans = _bounded(lambda: request(f"rtsp://{hostile}:{port}/main", "DESCRIBE", Credentials("admin", "x"), timeout=3.0), 3.0 * 2)
    assert sum(len(r) for r in ans.replies) <= 2 * REPLY_LIMIT
    if CASES[port].name != "rtsp-never-ends":  # a complete 200 head with a body it never ends is an answer (without SDP), read to the bound
        assert not ans.ok and ans.error or ans.status == 401, f"{CASES[port].name}: an attack answered as a stream: {ans.status} {ans.error}"
    _clean(repr(ans))


def test_probes_and_login_naming_hold_on_every_attack(hostile: str) -> None:
    """debug-ports' protocol probe and interface-auth's login naming on all the cases at once (as
    the scenarios run them, side by side): each call within its own bound, all together under
    :data:`PEAK_LIMIT`, every note and detail bounded and free of raw escapes."""
    from concurrent.futures import ThreadPoolExecutor

    from drivers.probes import identify_login_service, probe_tcp

    def timed(call, bound_s: float):
        t0 = time.monotonic()
        out = call()
        return out, time.monotonic() - t0, bound_s

    def both(port: int):
        return (timed(lambda: probe_tcp(hostile, port, timeout=1.0), 1.0 * 8),
                timed(lambda: identify_login_service(hostile, port, timeout=1.0), 1.0 * 6))

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        results = _bounded(lambda: dict(zip(CASES, pool.map(both, CASES))), 8.0 + 6.0)
    for port, ((res, took_p, bound_p), (svc, took_s, bound_s)) in results.items():
        name = CASES[port].name
        assert took_p < bound_p + MARGIN_S and took_s < bound_s + MARGIN_S, f"{name}: probe {took_p:.1f} s, naming {took_s:.1f} s"
        _clean(res.summary)
        _clean(res.detail)
        assert len(json.dumps(res.detail, default=str)) < 256 << 10, name
        _clean(svc.note)
        assert len(svc.note) < 4096, name


@pytest.mark.parametrize("port", TLS, ids=[CASES[p].name for p in TLS])
def test_the_tls_probe_holds(hostile: str, port: int) -> None:
    from drivers.tlsprobe import client_auth

    res = _bounded(lambda: client_auth(hostile, port, 3.0, None), 3.0 * 3)
    # an attack never completes a handshake, and a broken one is no refusal: nothing judged, never "demands a certificate"
    assert res.gap() is not None and res.gap()[0] == "unobserved", res
    # the control: each attack reached the client (a ServerHello OpenSSL stopped at would test nothing behind it)
    reached = {"tls-16mb-chain": "EXCESSIVE_MESSAGE_SIZE", "tls-garbage-after-hello": "WRONG_VERSION_NUMBER", "tls-stall": "did not finish"}
    assert reached[CASES[port].name] in res.no_certificate, res.no_certificate
    _clean(repr(res))


def test_the_ssh_driver_holds_against_an_endless_pre_banner(hostile: str) -> None:
    from drivers.errors import DeviceError
    from drivers.ssh import SshDriver
    from rig.config import SshTransport

    res = SshTransport(host=hostile, port=2201, user="root", password_env="PRIVRIG_HOSTILE_PW", host_key="SHA256:" + "A" * 43,
                       connect_timeout_s=5)
    os.environ["PRIVRIG_HOSTILE_PW"] = "not-a-secret"
    with pytest.raises(DeviceError) as ei:
        _bounded(lambda: SshDriver(res, device="cam-hostile").connect(), 5.0 * 3)
    assert "2201" in ei.value.reason
    _clean(ei.value.reason)


CONFIG = """\
version: 1
bench: {{name: hostile-bench, evidence_dir: {ev}, scenario_timeout_s: {deadline}}}
devices:
  cam-hostile:
    identity: {{model: Hostile H1, serial: HOSTILE-0001, firmware: 6.6.6}}
    privacy_level: 2
    network:
      address: {host}
      open_ports: [{ports}]
"""

#: the hostile run's scenario deadline: every scenario ends by it, plus the engine's grace
DEADLINE_S = 40


def test_a_whole_run_on_the_hostile_device_ends_escapes_and_passes_nothing(hostile: str, tmp_path: Path) -> None:
    cfg = tmp_path / "hostile.yaml"
    ports = [f"{p}/tcp" for p in CASES] + [f"{p}/udp" for p in UDP_CASES]
    cfg.write_text(CONFIG.format(ev=tmp_path / "ev", deadline=DEADLINE_S, host=hostile, ports=", ".join(ports)))
    env = {**os.environ, "COLUMNS": "200"}
    t0 = time.monotonic()
    proc = subprocess.Popen([str(ROOT / ".venv/bin/rig"), "run", "-c", str(cfg), "--scenario", "debug-ports", "--scenario", "interface-auth",
                             "--out", str(tmp_path / "ev")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(timeout=2 * DEADLINE_S + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    took = time.monotonic() - t0
    assert took < 2 * DEADLINE_S + 60, f"{took:.0f} s"  # two scenarios, each within its deadline and grace
    for stream in (out, err):
        assert b"\x1b]" not in stream and b"\x1b[2J" not in stream and b"\x00" not in stream and b"\x07" not in stream
        assert b"Traceback" not in stream
    bundle = Path(out.decode().strip().splitlines()[-1])
    assert subprocess.run([str(ROOT / ".venv/bin/rig"), "verify", str(bundle)], capture_output=True).returncode == 0
    doc = json.loads((bundle / "results.json").read_text())
    [dev] = doc["devices"]
    verdicts = {s["id"]: s["verdict"] for s in dev["scenarios"]}
    assert set(verdicts) == {"debug-ports", "interface-auth"} and "pass" not in verdicts.values(), verdicts
    # over UDP: the agents that answer the default communities are named by port, the lying ones observed nothing
    auth = next(s for s in dev["scenarios"] if s["id"] == "interface-auth")
    snmp = {f["port"] for f in auth["findings"] if f["kind"] == "default-credential-accepted" and f.get("proto") == "udp"}
    assert snmp == {1611, 1614}, auth["findings"]
    udp_parts = {p["name"]: p["state"] for p in auth["coverage"]["parts"] if p["name"].endswith("/udp")}
    assert udp_parts == {"1611/udp": "observed", "1612/udp": "unobserved", "1613/udp": "unobserved", "1614/udp": "observed"}, udp_parts
    assert all("no SNMP response" in p["summary"] for p in auth["coverage"]["parts"] if p["name"] in ("1612/udp", "1613/udp"))
    # what was seen before the deadline is kept: the scan and every probe, though -sV on the hostile ports ran past it
    kept = {p.name for p in (bundle / "devices/cam-hostile/debug-ports").iterdir()}
    assert {"nmap-tcp.xml", *(f"probe-{p}.txt" for p in CASES)} <= kept, sorted(kept)
    assert proc.returncode in (1, 3)
    html = (bundle / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "\x1b" not in html  # the device's markup is escaped
    assert not Path("/tmp/privrig-pwned").exists()  # nothing the device sent ran
    for p in bundle.rglob("*"):  # nothing landed outside the bundle's folders, and every file is the rig's
        assert p.resolve().is_relative_to(bundle.resolve()) and not p.is_symlink()


@pytest.mark.parametrize("port", list(UDP_CASES), ids=[c.name for c in UDP_CASES.values()])
def test_the_udp_probes_hold_on_hostile_snmp_answers(hostile: str, port: int) -> None:
    """A 64 KB answer, lying BER, 10,000 datagrams for one request, escapes: each probe within its
    bound, its transcript bounded and escaped; an agent that echoes every community is named as
    answering the defaults, the others are no SNMP at all."""
    from drivers.probes import probe_udp, snmp_communities

    communities, pr = _bounded(lambda: snmp_communities(hostile, port), 2 * 1.0)
    res = _bounded(lambda: probe_udp(hostile, port), 3 * 1.0)
    well_formed = UDP_CASES[port].name in ("snmp-64k-answer", "snmp-escapes")
    assert communities == (["public", "private"] if well_formed else [])
    assert well_formed or pr.detail["unparsed_replies"] == 2  # it answered both requests, with no SNMP response
    assert res.service == ("snmp" if well_formed else None), res.summary
    for r in (pr, res):
        assert len(r.transcript_bytes()) < 1 << 20
        _clean(r.transcript_bytes().decode())
        _clean(r.summary)
        _clean(r.detail)
    if well_formed:
        assert len(res.detail["sysDescr"]) <= 200 and "\\x1b" in res.detail["sysDescr"]


#: cam-hostile reached over its real sshd (key login as root), for the runs that need its shell
SSH_CONFIG = """\
version: 1
bench: {{name: hostile-bench, evidence_dir: {ev}, scenario_timeout_s: 60}}
devices:
  cam-hostile:
    identity: {{model: Hostile H1, serial: HOSTILE-0001, firmware: 6.6.6}}
    privacy_level: 2
    ssh: {{host: {host}, user: root, key_file: {key}, host_key: "{host_key}", command_timeout_s: {command_s}}}
"""


def _ssh_config(path: Path, hostile: str, body: str, command_s: int) -> Path:
    """Write a config for cam-hostile over SSH with ``body`` (its further sections) to ``path``."""
    path.write_text(SSH_CONFIG.format(ev=path.parent / "ev", host=hostile, key=hostile_ssh.STATE / "id_ed25519",
                                      host_key=hostile_ssh.host_key_line(), command_s=command_s) + body.format(host=hostile))
    return path


FLOOD_CONFIG = """\
    network: {{address: {host}, capture_interface: rigbr0}}
    capture: {{duration_s: 3, max_mb: 16}}
    actions:
      stream-start: {{via: ssh, command: 'echo {{sink_host}} {{sink_port}} > /run/stream.sink'}}
      stream-stop: {{via: ssh, command: rm -f /run/stream.sink}}
"""


def test_a_flood_at_the_sink_is_bounded_and_fails_on_what_it_carried(hostile: str, tmp_path: Path) -> None:
    """Told where to stream, cam-hostile floods the sink's four ports (20,000 datagrams a second of
    markup and escapes, ignoring stream-stop): the run ends within its window, the capture stops at
    its size limit and is not observed, the flood is judged and named (plaintext, to the sink's
    port), the rig's peak memory stays bounded, nothing raw reaches the terminal or the report."""
    cfg = _ssh_config(tmp_path / "flood.yaml", hostile, FLOOD_CONFIG, 20)
    t0 = time.monotonic()
    proc = subprocess.Popen([str(ROOT / ".venv/bin/rig"), "run", "-c", str(cfg), "--scenario", "channel-encryption", "--out", str(tmp_path / "ev")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    took = time.monotonic() - t0
    assert took < 60 + MARGIN_S, f"{took:.0f} s"
    for stream in (out, err):
        assert b"\x1b]" not in stream and b"\x1b[2J" not in stream and b"\x00" not in stream and b"\x07" not in stream
        assert b"Traceback" not in stream
    assert proc.returncode == 1, err.decode(errors="replace")[-2000:]
    bundle = Path(out.decode().strip().splitlines()[-1])
    assert subprocess.run([str(ROOT / ".venv/bin/rig"), "verify", str(bundle)], capture_output=True).returncode == 0
    [dev] = json.loads((bundle / "results.json").read_text())["devices"]
    [sc] = dev["scenarios"]
    parts = {p["name"]: p for p in sc["coverage"]["parts"]}
    assert sc["verdict"] == "fail"
    assert parts["capture"]["state"] == "unobserved" and "16 MB limit" in parts["capture"]["summary"], parts["capture"]
    measures = sc["measurements"]
    sink_port = int(measures["sink_address"].rsplit(":", 1)[1])
    [finding] = [f for f in sc["findings"] if f["kind"] == "plaintext-channel"]
    assert finding["flow"].startswith(f"udp {hostile}:") and finding["flow"].split(":")[-1] in {str(sink_port + k) for k in range(4)}, finding
    assert measures["sink"]["bytes"] and sum(measures["sink"]["bytes"].values()) > 16 << 20  # the flood outran the capture
    html = (bundle / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "\x1b" not in html
    assert (bundle / "devices/cam-hostile/channel-encryption/capture.pcap").stat().st_size <= 16 << 20
    assert not Path("/tmp/privrig-pwned").exists() and not hostile_ssh.pwned()


class _Sink:
    """A transcript sink that keeps what was written (to check its bound and its escaping)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def _ssh(port: int, command_timeout_s: float = 20.0):
    from drivers.ssh import SshDriver
    from drivers.transcript import Transcript
    from rig.config import SshTransport

    res = SshTransport(host=HOST, port=port, user="root", key_file=hostile_ssh.STATE / "id_ed25519", host_key=hostile_ssh.host_key_line(),
                       connect_timeout_s=5, command_timeout_s=command_timeout_s)
    sink = _Sink()
    return SshDriver(res, Transcript(sink), device="cam-hostile"), sink


def _transcript_clean(sink: _Sink) -> None:
    from drivers.transcript import DEFAULT_LIMIT

    assert len(sink.data) <= DEFAULT_LIMIT + 4096, f"transcript {len(sink.data) >> 20} MiB"
    assert b"\x1b" not in sink.data and b"\x00" not in sink.data and b"\x07" not in sink.data  # JSON escapes them


def test_ssh_output_of_200_mb_is_cut_at_the_bound(hostile: str) -> None:
    """Cut at ``max_output`` (and the transcript at its limit); a link too slow to take 200 MB
    within the command's deadline (tracemalloc slows the rig's reads here) is a CommandTimeout by it."""
    from drivers.errors import CommandTimeout

    drv, sink = _ssh(2210)
    with drv:
        try:
            res = _bounded(lambda: drv.run("cat /etc/device-info", timeout=20.0, max_output=1 << 20), 20.0)
        except CommandTimeout as exc:
            assert "20 s" in exc.reason
        else:
            assert res.truncated and len(res.stdout) == 1 << 20 and res.exit_status == 0
    _transcript_clean(sink)
    assert b"transcript limit" in sink.data  # 200 MB met the transcript's own bound, said so


def test_ssh_output_that_never_ends_times_out(hostile: str) -> None:
    from drivers.errors import CommandTimeout

    drv, sink = _ssh(2211)
    with drv:
        with pytest.raises(CommandTimeout) as ei:
            _bounded(lambda: drv.run("cat /etc/device-info", timeout=5.0, max_output=1 << 20), 5.0)
    assert "5 s" in ei.value.reason
    _transcript_clean(sink)


def test_ssh_escapes_reach_no_terminal_and_no_shell(hostile: str) -> None:
    from drivers.ssh import escape_tail

    drv, sink = _ssh(2212)
    with drv:
        res = _bounded(lambda: drv.run("cat /etc/device-info"), 20.0)
    assert b"\x1b]52" in res.stdout and b"\x1b]52" in res.stderr  # the attack arrived...
    _clean(escape_tail(res.stdout))  # ...and is shown escaped
    _transcript_clean(sink)
    assert b"\\\\x1b]52" in sink.data or b"\\u001b]52" in sink.data or b"\\\\x1b" in sink.data
    assert not hostile_ssh.pwned()


def test_a_gzip_bomb_for_a_listing_is_cut_in_bounded_memory(hostile: str) -> None:
    from drivers.storage import DeviceStorage

    drv, sink = _ssh(2213)
    with drv:
        listing = _bounded(lambda: DeviceStorage(drv, timeout_s=20).snapshot(["/data"]), 20.0 + 15)
    assert listing.truncated and not listing.files  # 1 GiB of zeros: no file, and never a complete listing
    _transcript_clean(sink)


def test_storage_searches_hold_on_a_tree_of_hostile_names(hostile: str) -> None:
    """Every search over the names tree: paths kept whole and escaped (a newline forges no line),
    no symlink followed out of the tree or round a loop, the FIFO never opened, nothing run."""
    from drivers.storage import DeviceStorage
    from drivers.transcript import escape_bytes

    drv, sink = _ssh(22)
    with drv:
        st = DeviceStorage(drv, timeout_s=20)
        listing = _bounded(lambda: st.snapshot(["/data/names"]), 20.0 + 15)
        expect = {"/data/names/" + escape_bytes(n) for n in hostile_ssh.NAMES}
        frame = "/data/names/" + escape_bytes(hostile_ssh.SNAPSHOT)
        assert set(listing.files) == expect | {frame}, sorted(set(listing.files) ^ expect)
        assert not listing.truncated
        heads = _bounded(lambda: st.heads(["/data/names"]), 20.0 + 15)
        assert set(heads) == expect | {frame} and all(h == hostile_ssh.ESCAPES[:16] for p, h in heads.items() if p != frame)
        assert heads[frame] == hostile_ssh.JPEG[:16]
        rows = _bounded(lambda: st.grep(["/data/names"], "alert"), 20.0 + 15)
        assert rows and all(p.startswith("/data/names/") for p, _, _ in rows)
        hits = _bounded(lambda: st.find_token(["/data/names"], "privrig-pwned"), 20.0 + 15)
        assert all(p.startswith("/data/names/") for p in hits.paths)
    for p in listing.files:
        _clean(p)
    _transcript_clean(sink)
    assert not hostile_ssh.pwned()


def test_a_tree_of_a_million_entries_is_cut_by_the_search_bound(hostile: str) -> None:
    from drivers.storage import DeviceStorage, SearchIncomplete

    drv, _ = _ssh(22)
    with drv:
        st = DeviceStorage(drv, timeout_s=8, max_files=20_000)
        try:
            listing = _bounded(lambda: st.snapshot(["/data/many"]), 8.0 + 15)
        except SearchIncomplete as exc:  # killed on the device at its search timeout
            assert "killed" in exc.reason or "incomplete" in exc.reason
        else:
            assert listing.truncated and len(listing.files) <= 20_000  # cut at max_files


STORAGE_CONFIG = """\
    storage:
      data_roots: [/data]
      config_roots: [/data/names]
      shadow_files: [/etc/shadow]
      search_timeout_s: 10
      max_files: 50000
"""


def test_a_storage_run_on_the_hostile_tree_fails_on_the_frame_by_its_whole_name_and_escapes(hostile: str, tmp_path: Path) -> None:
    from drivers.transcript import escape_bytes

    cfg = _ssh_config(tmp_path / "hostile-storage.yaml", hostile, STORAGE_CONFIG, 30)
    t0 = time.monotonic()
    proc = subprocess.run([str(ROOT / ".venv/bin/rig"), "run", "-c", str(cfg), "--scenario", "storage-at-rest", "--out", str(tmp_path / "ev")],
                          capture_output=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert time.monotonic() - t0 < 60 + 60
    for stream in (proc.stdout, proc.stderr):
        assert b"\x1b]" not in stream and b"\x1b[2J" not in stream and b"\x00" not in stream and b"\x07" not in stream
        assert b"Traceback" not in stream
    bundle = Path(proc.stdout.decode().strip().splitlines()[-1])
    assert subprocess.run([str(ROOT / ".venv/bin/rig"), "verify", str(bundle)], capture_output=True).returncode == 0
    [dev] = json.loads((bundle / "results.json").read_text())["devices"]
    [sc] = dev["scenarios"]
    # the frame under its hostile name is found, by its whole path; the million entries were searched
    assert sc["verdict"] == "fail", sc
    frame = "/data/names/" + escape_bytes(hostile_ssh.SNAPSHOT)
    assert [f for f in sc["findings"] if f["kind"] == "raw-image-at-rest" and f.get("path") == frame], sc["findings"]
    html = (bundle / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "\x1b" not in html
    assert not hostile_ssh.pwned()
    for p in bundle.rglob("*"):
        assert p.resolve().is_relative_to(bundle.resolve()) and not p.is_symlink()
