"""interface-auth on the simulated bench: open interfaces demand authentication, defaults refused."""

from __future__ import annotations

import json

import pytest

from rig.config import load_config
from rig.engine import RunPlan, execute
from rig.results import Verdict
from scenarios.interface_auth import rate_limited
from tests.conftest import scenario_run, sim_config_text

pytestmark = pytest.mark.clause("T/AI 110.1-2020 6.2.1 d")


@pytest.fixture(scope="module")
def outcome(run_all):
    """interface-auth on every device, from the session's shared run (tests/conftest.py run_all)."""
    return scenario_run(run_all, "interface-auth")


def scenario(outcome, device: str):
    return outcome.of(device)


def test_compliant_device_passes(outcome) -> None:
    sc = scenario(outcome, "cam-compliant")
    assert sc.verdict is Verdict.PASS and sc.findings == []
    assert sc.measurements["ssh_22_methods"] == ["publickey"]  # keys only: nothing to guess


VIOLATING = [
    ("default-credential-accepted", "ssh", 22, None),
    ("unauthenticated-login", "ssh", 22, None),  # admin, an empty password: let in by the none method
    ("no-login-rate-limit", "ssh", 22, None),
    ("unauthenticated-endpoint", "http", 80, "/"),
    ("unauthenticated-endpoint", "http", 80, "/snapshot.jpg"),
    ("default-credential-accepted", "http", 80, "/admin/"),
    ("no-login-rate-limit", "http", 80, None),
    ("unauthenticated-stream", "rtsp", 554, "rtsp://198.18.0.11:554/"),
    ("default-credential-accepted", "ftp", 21, None),
    ("no-login-rate-limit", "ftp", 21, None),
    ("default-credential-accepted", "snmp", 161, None),
    ("unauthenticated-login", "telnet", 23, None),  # undeclared telnetd that hands out a shell with no login
]


@pytest.mark.parametrize("kind,service,port,path", VIOLATING, ids=[f"{k}-{s}-{p}" for k, s, p, _ in VIOLATING])
def test_violating_device_finding(outcome, kind: str, service: str, port: int, path: str | None) -> None:
    sc = scenario(outcome, "cam-violating")
    [f] = [f for f in sc.findings if (f.kind, f.service, f.port, f.path) == (kind, service, port, path)]
    assert f.evidence and (outcome.bundle / f.evidence[0]).is_file()


def test_a_telnet_shell_without_a_login_is_this_scenarios_finding_on_its_port(outcome) -> None:
    """cam-violating's telnetd on 23 hands a shell to anyone: interface-auth once passed over it,
    leaving it to debug-ports. Its own finding names the port and links to debug-ports'; the
    6.2.1 d cell of the matrix fails through it."""
    from rig.clauses import CLAUSES, cell

    sc = scenario(outcome, "cam-violating")
    [f] = [f for f in sc.findings if f.port == 23]
    assert (f.kind, f.severity, f.interface, f.proto, f.service) == ("unauthenticated-login", "critical", "network", "tcp", "telnet")
    assert "23/tcp" in f.summary and f.detail["also"] == "debug-ports open-debug-service"
    assert sc.coverage["scan"].seen["undeclared"]["23"] == "telnet"
    [clause] = [c for c in CLAUSES if c.id == "T/AI 110.1-2020 6.2.1 d"]
    assert cell(clause, {sc.id: sc}) == "fail" and "unauthenticated-login" in (clause.kinds or {"unauthenticated-login"})


def test_violating_device_has_exactly_the_planted_findings(outcome) -> None:
    sc = scenario(outcome, "cam-violating")
    assert sc.verdict is Verdict.FAIL
    assert sorted(((f.kind, f.service, f.port, f.path) for f in sc.findings), key=str) == sorted(VIOLATING, key=str)


def test_default_credentials_are_named_by_entry_not_password(outcome) -> None:
    sc = scenario(outcome, "cam-violating")
    [ssh] = [f for f in sc.findings if f.kind == "default-credential-accepted" and f.service == "ssh"]
    assert ssh.detail == {"user": "root", "list": "built-in console", "list_entry": 2} and "password redacted" in ssh.summary
    lines = [json.loads(l)["data"] for l in (outcome.bundle / ssh.evidence[0]).read_text().splitlines()]
    assert "ssh password root:[built-in console #2]" in lines
    assert not any(":root" in l for l in lines)
    rate = sc.measurements["lockout_ssh_22"]
    assert len(rate["delays_s"]) == 10 and rate["total_s"] < 10 and rate["locked"] is False


def test_anonymous_ftp_and_snmp_communities(outcome) -> None:
    sc = scenario(outcome, "cam-violating")
    [ftp] = [f for f in sc.findings if f.service == "ftp" and f.kind == "default-credential-accepted"]
    assert ftp.detail == {"user": "anonymous", "list": "built-in ftp", "list_entry": 1} and ftp.severity == "high"
    assert "230" in (outcome.bundle / ftp.evidence[0]).read_text()  # vsftpd's own "Login successful"
    [snmp] = [f for f in sc.findings if f.service == "snmp"]
    assert (snmp.proto, snmp.detail["communities"], snmp.severity) == ("udp", ["public", "private"], "critical")
    assert sc.measurements["services"]["161/udp"] == "snmp"


def test_telnet_login_with_default_password_but_rate_limited(outcome) -> None:
    sc = scenario(outcome, "cam-debug")
    [f] = [f for f in sc.findings if f.port == 2323]
    assert (f.kind, f.service, f.detail["list_entry"]) == ("default-credential-accepted", "telnet", 2)
    rate = sc.measurements["lockout_telnet_2323"]
    assert rate["total_s"] >= 10  # busybox login waits 3 s after each failure: slowed, so no rate finding
    assert not [f for f in sc.findings if f.kind == "no-login-rate-limit"]


def test_https_endpoint_served_without_credentials(outcome) -> None:
    sc = scenario(outcome, "cam-debug")
    assert sc.measurements["services"]["8443"] == "https"  # recognised by a TLS handshake, not the port
    paths = sorted(f.path for f in sc.findings if f.port == 8443)
    # s_server -WWW answers 200 to every path (with an error text): a soft 404, recognised,
    # so only the file it really serves is a finding
    assert sc.measurements["http_8443_soft_404"] is True
    assert paths == ["/snapshot.jpg"]
    [f] = [f for f in sc.findings if f.port == 8443 and f.path == "/snapshot.jpg"]
    assert (f.kind, f.service) == ("unauthenticated-endpoint", "https")
    assert "200" in (outcome.bundle / f.evidence[0]).read_text()


def test_password_revealed_only_when_the_config_says_so(outcome, tmp_path) -> None:
    # default: redacted everywhere
    assert all("password" not in f.detail for d in outcome.record.devices for s in d.scenarios for f in s.findings)
    from rig.config import parse_config

    text = sim_config_text().replace("  evidence_dir: ../evidence", "  evidence_dir: ../evidence\n  reveal_credentials: true")
    cfg = parse_config(text, tmp_path / "reveal.yaml")
    out = execute(RunPlan.select(cfg, ["cam-violating"], ["interface-auth"], tmp_path / "ev"))
    [ssh] = [f for f in out.record.devices[0].scenarios[0].findings if f.kind == "default-credential-accepted" and f.service == "ssh"]
    assert ssh.detail == {"user": "root", "list": "built-in console", "list_entry": 2, "password": "root"}


def test_level_3_device_gets_a_manual_mfa_note(outcome) -> None:
    sc = scenario(outcome, "cam-boot")
    assert sc.verdict is Verdict.PASS
    assert [f.kind for f in sc.findings] == ["manual-check"]


def test_soft_404_normalisation() -> None:
    from scenarios.interface_auth import _normalise

    page = b"Error opening 'x' ../crypto/bio/bss_file.c fopen(x, r)"
    assert _normalise(page.replace(b"x", b"admin"), "/admin") == _normalise(page.replace(b"x", b"zz9"), "/zz9")
    assert b"/" in _normalise(b"a/b", "/")  # a bare slash is never stripped


@pytest.mark.parametrize("delays,locked,expected", [
    ([0.01] * 10, False, False),
    ([3.0] * 10, False, True),
    ([0.1, 0.2, 0.4, 0.8, 1.6], False, True),
    ([0.01] * 3, True, True),
])
def test_rate_limit_rule(delays, locked, expected) -> None:
    assert rate_limited(delays, locked) is expected


def test_ssh_none_method_is_no_authentication_at_all(outcome) -> None:
    """OpenSSH lets an account with an empty password in with "none" (PermitEmptyPasswords yes):
    once that was not counted as a way in."""
    sc = scenario(outcome, "cam-violating")
    [f] = [f for f in sc.findings if f.kind == "unauthenticated-login" and f.service == "ssh"]
    assert (f.severity, f.port, f.service, f.detail) == ("critical", 22, "ssh", {"users": ["admin"]})
    lines = [json.loads(line)["data"] for line in (outcome.bundle / f.evidence[0]).read_text().splitlines()]
    assert "ssh offers admin: none" in lines and any(line.startswith("ssh offers root: ") and "password" in line for line in lines)


def test_each_declared_port_records_what_answered(outcome) -> None:
    compliant = scenario(outcome, "cam-compliant")
    [part] = [p for p in compliant.coverage if p.name == "22/tcp"]
    assert part.state.value == "observed" and part.seen["methods"] == ["publickey"]
    secure = {p.name: p for p in scenario(outcome, "cam-secure").coverage}
    assert secure["8443/tcp"].state.value == "observed" and "demands a client certificate" in secure["8443/tcp"].summary
    violating = {p.name: p for p in scenario(outcome, "cam-violating").coverage}
    lock = violating["lockout ssh 22/tcp"]
    assert lock.clauses == ("T/AI 110.1-2020 6.2.4 b 3",) and lock.state.value == "observed" and len(lock.seen["delays_s"]) == 10


def test_declared_ports_where_nothing_answers_are_never_a_pass(sim_bench: dict, tmp_path) -> None:
    """Declared 22/80/554/23 at an address where nothing answers was once a pass, exit 0. A port
    that refuses while the device answers elsewhere is closed: nothing there to authenticate."""
    from tests.conftest import sim_config_variant

    cfg = sim_config_variant(tmp_path, "cam-compliant", lambda d: d["network"].update({"address": "198.18.0.99",
                                                                                        "open_ports": ["22/tcp", "80/tcp", "554/tcp", "23/tcp"]}))
    out = execute(RunPlan.select(load_config(cfg), ["cam-compliant"], ["interface-auth"], tmp_path / "gone"))
    [sc] = out.record.devices[0].scenarios
    assert sc.verdict is Verdict.INCONCLUSIVE and out.exit_code == 3
    assert {p.name: p.state.value for p in sc.coverage} == {**{f"{n}/tcp": "unobserved" for n in (22, 80, 554, 23)}, "scan": "unobserved"}
    assert all(f.kind == "no-answer" and "198.18.0.99" in f.summary for f in sc.findings)
    (tmp_path / "closed").mkdir()
    cfg = sim_config_variant(tmp_path / "closed", "cam-compliant", lambda d: d["network"].update({"open_ports": ["22/tcp", "2222/tcp"]}))
    out = execute(RunPlan.select(load_config(cfg), ["cam-compliant"], ["interface-auth"], tmp_path / "closed-ev"))
    [sc] = out.record.devices[0].scenarios
    parts = {p.name: p for p in sc.coverage}
    assert sc.verdict is Verdict.PASS and parts["2222/tcp"].state.value == "not-applicable" and "refused" in parts["2222/tcp"].summary


def test_an_rtsp_server_that_answers_http_too_is_judged_as_rtsp(outcome) -> None:
    """GStreamer's RTSP server answers an HTTP GET (its tunnel, with a 503): once taken for a web
    server whose paths all timed out and said nothing; RTSP is asked first."""
    sc = scenario(outcome, "cam-leaky")
    assert sc.measurements["services"]["8554"] == "rtsp"
    [f] = [f for f in sc.findings if f.port == 8554]
    assert (f.kind, f.path, f.service) == ("unauthenticated-stream", "rtsp://198.18.0.15:8554/main", "rtsp")
    assert {p.name: p.state.value for p in sc.coverage} == {"22/tcp": "observed", "8080/tcp": "observed", "8443/tcp": "observed",
                                                            "8554/tcp": "observed", "8088/tcp": "observed", "scan": "observed"}


RETAIL = [
    ("default-credential-accepted", "https", 443, "/stream.mjpg"),  # Digest, the quick-start guide's account
    ("default-credential-accepted", "https", 443, "/login"),  # the same account through the form login at /
    ("no-login-rate-limit", "https", 443, None),  # Digest: ten wrong passwords, no slow-down
    ("no-login-rate-limit", "https", 443, None),  # the form: the same
    ("default-credential-accepted", "rtsp", 554, "rtsp://198.18.0.17/main"),  # RTSP Digest
    ("no-login-rate-limit", "rtsp", 554, None),
    ("default-credential-accepted", "telnet", 9527, None),  # a telnet the vendor never declared
]


def test_shop_camera_fails_on_digest_form_rtsp_and_undeclared_telnet(outcome) -> None:
    sc = scenario(outcome, "cam-retail")
    assert sc.verdict is Verdict.FAIL, [(p.name, p.state.value, p.what) for p in sc.coverage if p.state.value != "observed"]
    assert sorted(((f.kind, f.service, f.port, f.path) for f in sc.findings), key=str) == sorted(RETAIL, key=str)
    by = {(f.service, f.path): f for f in sc.findings if f.kind == "default-credential-accepted"}
    digest, form, rtsp = by[("https", "/stream.mjpg")], by[("https", "/login")], by[("rtsp", "rtsp://198.18.0.17/main")]
    # the vendor's documented account, named by its list entry, answered as the server asked
    assert digest.detail == {"user": "admin", "list": "simcam-r1.txt", "list_entry": 1, "scheme": "Digest SHA-256"}
    assert form.detail["scheme"] == "form" and "302 to /live.html" in form.summary
    assert rtsp.detail["scheme"] == "Digest MD5" and rtsp.detail["list"] == "simcam-r1.txt"
    telnet = by[("telnet", None)]
    assert telnet.detail == {"user": "root", "list": "built-in console", "list_entry": 6}
    parts = {p.name: p for p in sc.coverage}
    assert parts["9527/tcp"].state.value == "observed" and "not declared" in parts["9527/tcp"].what
    assert parts["scan"].seen["undeclared"] == {"9527": "telnet"}
    assert "Digest SHA-256" in parts["443/tcp"].seen["mechanisms"] and "form login" in parts["443/tcp"].seen["mechanisms"]
    assert not any("/" == f.path for f in sc.findings)  # the login page at / is the authentication, not an open endpoint
    evidence = (outcome.bundle / digest.evidence[0]).read_text()
    assert "simcam1234" not in evidence and "admin:[simcam-r1.txt #1]" in evidence


def test_shop_camera_twin_passes_with_its_rate_limit_measured(outcome) -> None:
    sc = scenario(outcome, "cam-retail-secure")
    assert sc.verdict is Verdict.PASS, [f.summary for f in sc.findings]
    parts = {p.name: p for p in sc.coverage}
    for name in ("lockout https digest 443/tcp", "lockout https form 443/tcp"):
        assert parts[name].state.value == "observed" and sum(parts[name].seen["delays_s"]) >= 10, name
    assert parts["443/tcp"].seen["mechanisms"] == ["Digest SHA-256", "form login"]


def test_a_stream_that_does_not_demand_its_configured_account_is_a_finding(sim_bench: dict, tmp_path) -> None:
    """cam-leaky's MJPEG on 8080 answers anyone; the config says it wants an account: that is a finding."""
    from tests.conftest import sim_config_variant

    cfg = sim_config_variant(tmp_path, "cam-leaky", lambda d: d["camera"]["streams"][0].update(
        {"auth": {"user": "viewer", "password_env": "PRIVRIG_TEST_UNUSED_PW"}}))
    out = execute(RunPlan.select(load_config(cfg), ["cam-leaky"], ["interface-auth"], tmp_path / "ev"))
    sc = out.record.devices[0].scenarios[0]
    [f] = [f for f in sc.findings if f.port == 8080 and f.path == "/stream.mjpg"]
    assert f.kind == "unauthenticated-stream" and "does not demand" in f.summary


def test_a_camera_that_speaks_only_tls_1_0_is_still_named_and_checked(tmp_path) -> None:
    """Old firmware with TLS 1.0 alone: a client at OpenSSL 3's defaults fails the handshake and
    would say nothing answered; the rig's clients go down to security level 0 to reach it."""
    import socket
    import ssl
    import warnings

    from drivers.probes import identify_login_service
    from drivers.transcript import Transcript
    from rig.sim.camera import make_pki
    from scenarios.interface_auth import Web
    from tests.drivers.test_tlsprobe import served

    pki = make_pki(tmp_path / "pki", "old-cam")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["rsa-cert"], pki["rsa-key"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with served(ctx, b'HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm="old", nonce="n1", qop="auth"\r\nContent-Length: 0\r\n\r\n') as port:
        strict = ssl.create_default_context()
        strict.check_hostname, strict.verify_mode = False, ssl.CERT_NONE
        with pytest.raises(ssl.SSLError):  # the control: a default client cannot talk to it at all
            with socket.create_connection(("127.0.0.1", port), timeout=3) as raw, strict.wrap_socket(raw):
                pass
        ls = identify_login_service("127.0.0.1", port)
        assert (ls.service, ls.note) == ("https", "TLS handshake (TLSv1)")
        answer = Web("127.0.0.1", port, True, Transcript(None)).get("/admin")
        assert answer.status == 401 and [c.label() for c in answer.challenges] == ["Digest MD5"]


def test_a_client_certificate_port_that_went_away_or_stalls_is_never_a_refusal(tmp_path) -> None:
    """A port once seen demanding a client certificate: if the device then goes away, the rig's
    clients were refused by nobody (an error); if it takes connections and says nothing, no
    refusal was seen (not observed). Neither is "TLS demands a client certificate"."""
    import socket

    from rig.coverage import PartState
    from scenarios.interface_auth import InterfaceAuth
    from tests.conftest import device_context

    device = {"privacy_level": 2, "network": {"address": "127.0.0.1", "open_ports": [9]}}
    with device_context(tmp_path / "a", device) as ctx:
        gone = ctx.part("9/tcp", "gone")
        InterfaceAuth()._client_certificate(ctx, "127.0.0.1", 9, gone)
    assert gone.state is PartState.ERROR and "cannot connect" in gone.summary, gone.summary
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.listen(8)  # connections queue in the backlog and are never answered
    try:
        with device_context(tmp_path / "b", device) as ctx:
            mute = ctx.part("mute", "mute")
            InterfaceAuth()._client_certificate(ctx, "127.0.0.1", lsock.getsockname()[1], mute)
    finally:
        lsock.close()
    assert mute.state is PartState.UNOBSERVED and "did not finish" in mute.summary, mute.summary


def test_an_undeclared_debug_stub_silent_to_login_probes_is_identified(outcome) -> None:
    """gdbserver says nothing until spoken to in its own protocol: the scan part names it (a
    silent port left unnamed would make the scan not observed, never "no login service")."""
    sc = scenario(outcome, "cam-violating")
    part = sc.coverage["scan"]
    assert part.state.value == "observed", part.summary
    assert part.seen["undeclared"]["2345"] == "gdbserver" and part.seen["undeclared"]["23"] == "telnet"


class _Loopback:
    """A TCP server on loopback that runs ``serve(conn)`` for each connection (bounded: 200 of them)."""

    def __init__(self, serve):
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []

        def loop() -> None:
            for _ in range(200):
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                threading.Thread(target=self._one, args=(conn, serve), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()

    def _one(self, conn, serve) -> None:
        conn.settimeout(5)
        try:
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.requests.append(data)
            serve(conn, data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_a_web_server_that_drips_its_answer_is_cut_at_the_request_bound(monkeypatch) -> None:
    """A device sending one byte every 0.2 s, forever: each byte would renew a socket timeout;
    the request as a whole is bounded and a head that never ends is no answer."""
    import time

    import scenarios.interface_auth as ia
    from drivers.transcript import Transcript

    monkeypatch.setattr(ia, "REQUEST_S", 2.0)

    def drip(conn, _req) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\nX-Slow: ")
        for _ in range(100):  # 20 s at most
            conn.sendall(b"a")
            time.sleep(0.2)

    srv = _Loopback(drip)
    try:
        t0 = time.monotonic()
        answer = ia.Web("127.0.0.1", srv.port, False, Transcript(None)).get("/")
        took = time.monotonic() - t0
    finally:
        srv.close()
    assert answer.status is None and took < 4, took


def test_a_get_form_login_keeps_the_password_out_of_the_transcript() -> None:
    """A form with method=get sends the password in the query: the transcript shows the query
    with the password replaced by its label, and a device echoing it gets it redacted."""
    from drivers.transcript import Transcript
    from scenarios.interface_auth import LoginForm, Web

    srv = _Loopback(lambda conn, req: conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 40\r\n\r\n" + req.split(b"\r\n")[0][:40].ljust(40)))
    class Lines:
        def __init__(self) -> None:
            self.data = b""

        def write(self, data: bytes) -> None:
            self.data += data

    sink = Lines()
    tr = Transcript(sink)
    tr.add_word("s3cretPW")  # as ScenarioContext.tried_password registers it
    try:
        form = LoginForm(page="/", action="/login.cgi", method="get", user_field="user", password_field="pass")
        answer = Web("127.0.0.1", srv.port, False, tr).submit(form, "admin", "s3cretPW", "built-in form #3")
    finally:
        srv.close()
    recorded = [json.loads(line)["data"] for line in sink.data.decode().splitlines()]
    assert answer.status == 200 and any(b"s3cretPW" in r for r in srv.requests)  # the device did get it, and echoed it
    assert any("/login.cgi?user=admin&pass=%5Bbuilt-in+form+%233%5D" in r for r in recorded), recorded
    assert any("[redacted]" in r for r in recorded) and not any("s3cretPW" in r for r in recorded), recorded


def test_defaults_that_meet_a_throttle_are_not_refused(tmp_path) -> None:
    """A camera that answers 429 to every login try never refused a default account: its
    defaults part is not observed, and ten 429s with no refusal measure no lockout."""
    from rig.coverage import PartState
    from scenarios.interface_auth import InterfaceAuth, Web
    from tests.conftest import device_context

    def throttled(conn, req) -> None:
        if b"authorization:" in req.lower():
            conn.sendall(b"HTTP/1.0 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
        else:
            conn.sendall(b'HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\nContent-Length: 0\r\n\r\n')

    srv = _Loopback(throttled)
    device = {"privacy_level": 2, "network": {"address": "127.0.0.1", "open_ports": [srv.port]}}
    try:
        with device_context(tmp_path, device) as ctx:
            part = ctx.part("http", "web logins")
            part.observed("a web server answered")
            tr, _ = ctx.transcript("web.jsonl")
            InterfaceAuth()._http_challenge_logins(ctx, Web("127.0.0.1", srv.port, False, tr), "http", [("/admin", "Basic")], [], part)
            parts = {p.name: p for p in ctx.coverage}
    finally:
        srv.close()
    assert part.state is PartState.UNOBSERVED and part.kind == "defaults-unanswered" and "429" in part.summary, part.summary
    [lock] = [p for n, p in parts.items() if n.startswith("lockout")]
    assert lock.state is PartState.UNOBSERVED and "no wrong attempt was answered with a refusal" in lock.summary


@pytest.mark.parametrize("lifts", [True, False], ids=["lifts", "never-lifts"])
def test_a_lockout_shown_only_by_silence_counts_when_it_lifts(tmp_path, monkeypatch, lifts: bool) -> None:
    """Refused twice, then connections dropped: a lockout, or a device that went away. It counts
    as a lockout only when a wrong password is refused again within the lift bound."""
    import scenarios.interface_auth as ia
    from rig.coverage import PartState
    from tests.conftest import device_context

    monkeypatch.setattr(ia, "LOCKOUT_LIFT_S", 1.5)
    monkeypatch.setattr(ia, "LOCKOUT_POLL_S", 0.2)
    tries = iter(["silent", "silent", "rejected"] if lifts else [])
    attempts = [(0.05, "rejected"), (0.05, "rejected")] + [(0.01, "silent")] * 8
    device = {"privacy_level": 2, "network": {"address": "127.0.0.1", "open_ports": [22]}}
    with device_context(tmp_path, device) as ctx:
        ia.InterfaceAuth()._judge_rate(ctx, "ssh on 22/tcp", 22, "ssh", attempts, [], lambda: next(tries, "silent"))
        [lock] = list(ctx.coverage)
        rate = ctx.measurements["lockout_ssh_22"]
        findings = list(ctx.findings)
    if lifts:
        assert lock.state is PartState.OBSERVED and "silent, lifted after" in lock.summary and rate["locked"] is True
        assert not findings  # locked out: rate limited
    else:
        assert lock.state is PartState.UNOBSERVED and "had not come back" in lock.summary and rate["lifted_after_s"] is None
        assert not findings
