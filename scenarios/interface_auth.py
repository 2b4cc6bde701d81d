"""interface-auth: every open interface demands authentication; defaults are refused
(T/AI 110.1-2020 6.2.1 d, 6.2.4 b 3).

For every TCP port the device declares, the service is taken from the config or
recognised by protocol (:func:`drivers.probes.identify_login_service`), then:

* HTTP/HTTPS: the config's ``network.auth_paths`` and a built-in list of camera paths
  are fetched without credentials; a 2xx answer is ``unauthenticated-endpoint``, unless
  the server answers a path that cannot exist the same way (a soft 404). Where a
  path asks for Basic auth, the default list is tried.
* RTSP: DESCRIBE on the configured rtsp streams (or ``/``) without credentials; a 200
  is ``unauthenticated-stream``.
* SSH: which methods the server offers; if passwords are, the default list is tried.
* telnet: the default list at the login prompt.
* FTP: anonymous and a short default list.
* SNMP (declared UDP ports): the default communities ``public`` and ``private``.
* Lockout: ten wrong attempts per login mechanism are timed (ETSI TS 103 701 test
  5.1-5-2); a mechanism that neither slows down nor locks out is ``no-login-rate-limit``.

Accepted credentials are named by list entry, never by password.

Parts: one per declared port (``22/tcp``: the service answered and its authentication was
seen), one per login mechanism's lockout timing (``lockout ssh 22/tcp``, clause 6.2.4 b 3).
A declared port where nothing answers is not observed, unless the device answered on
another declared port and this one refused the connection (closed: nothing to
authenticate, ``not-applicable``). A port whose protocol the rig cannot recognise is not
observed: declare its ``service``.
"""

from __future__ import annotations

import base64
import http.client
import re
import secrets
import socket
import ssl
import time
from typing import Callable

import paramiko

from drivers import tlsprobe
from drivers.probes import LOGIN_PROMPT, PASSWORD_PROMPT, SHELL_PROMPT, LoginService, _telnet_refuse, identify_login_service, snmp_communities
from drivers.transcript import Transcript, escape_bytes, strip_ansi
from rig.config import DeviceConfig
from rig.coverage import Part
from rig.credentials import CONSOLE_CREDENTIALS, FTP_CREDENTIALS, HTTP_CREDENTIALS, NONE_AUTH_USERS
from rig.scenario import Scenario, ScenarioContext

#: Paths cameras commonly serve; each must answer 401/403 (or 404) without credentials.
HTTP_PATHS = ("/", "/admin", "/config", "/api", "/snapshot.jpg", "/snapshot.cgi", "/cgi-bin/snapshot.cgi", "/video.mjpg",
              "/stream", "/onvif/device_service", "/ISAPI/System/deviceInfo", "/system.ini", "/backup")
LOCKOUT_ATTEMPTS = 10
#: Ten wrong attempts faster than this in total, with no lockout, are not rate limited.
RATE_LIMIT_MIN_TOTAL_S = 10.0
BODY_LIMIT = 64 * 1024
INCORRECT = re.compile(rb"(?i)incorrect|denied|failed")


def _cred_detail(ctx: ScenarioContext, user: str, password: str, index: int) -> dict[str, object]:
    """What a finding says of an accepted credential: the password only if the bench config allows."""
    detail: dict[str, object] = {"user": user, "list_entry": index + 1}
    if ctx.reveal_credentials:
        detail["password"] = password
    return detail


def rate_limited(delays: list[float], locked: bool) -> bool:
    """True when the attempts were locked out, slowed to >= 1 s each on average, or grew."""
    if locked:
        return True
    if sum(delays) >= RATE_LIMIT_MIN_TOTAL_S:
        return True
    return len(delays) >= 4 and delays[-1] >= 2 * delays[0] + 0.5


class InterfaceAuth(Scenario):
    id = "interface-auth"
    title = "Open interfaces authenticate their callers"
    clauses = ("T/AI 110.1-2020 6.2.1 d", "T/AI 110.1-2020 6.2.4 b 3")

    def applies(self, device: DeviceConfig) -> str | None:
        if device.network is None or not device.network.open_ports:
            return "the device declares no open port"
        return None

    def run(self, ctx: ScenarioContext) -> None:
        net = ctx.device.network
        assert net is not None
        address = str(net.address)
        services: dict[str, str] = {}
        tcp = [p for p in net.open_ports if p.proto == "tcp"]
        parts = {d.port: ctx.part(f"{d.port}/tcp", f"{d.port}/tcp (declared open): its service demands authentication and refuses defaults",
                                  interface="network", proto="tcp", port=d.port) for d in tcp}
        udp_parts = {d.port: ctx.part(f"{d.port}/udp", f"{d.port}/udp (declared open): SNMP refuses the default communities",
                                      interface="network", proto="udp", port=d.port) for d in net.open_ports if d.proto == "udp"}
        found: dict[int, LoginService] = {}
        for decl in tcp:
            found[decl.port] = LoginService(decl.service, True, f"service {decl.service} (declared)") if decl.service \
                else identify_login_service(address, decl.port)
        device_answered = any(ls.answered for ls in found.values())
        for decl in tcp:
            ls, part = found[decl.port], parts[decl.port]
            svc = ls.service
            services[str(decl.port)] = svc or "unknown"
            check: Callable[[ScenarioContext, str, int, Part], None] | None = {
                "http": lambda c, a, p, pt: self._http(c, a, p, pt, tls=False),
                "https": lambda c, a, p, pt: self._http(c, a, p, pt, tls=True),
                "tls-client-auth": self._client_certificate,
                "rtsp": self._rtsp,
                "ssh": self._ssh,
                "telnet": self._telnet,
                "ftp": self._ftp,
            }.get(svc or "")
            if check is not None:
                ctx.step(f"check {svc}", port=decl.port)
                check(ctx, address, decl.port, part)
            elif svc is not None:
                part.unobserved(f"declared service {svc!r}: interface-auth has no check for it", kind="not-checked")
            elif ls.answered:
                part.unobserved(f"{ls.note}: whether it authenticates cannot be told (name it with {{port: {decl.port}, service: ...}})",
                                kind="not-checked")
            elif ls.refused and device_answered:
                part.not_applicable(f"{ls.note}: the port is closed although declared, so nothing listens to authenticate")
            else:
                part.unobserved(f"nothing answered: {ls.note}" + ("" if device_answered else f" (no declared port of {address} answered: device off or unplugged?)"),
                                kind="no-answer")
        for port, part in udp_parts.items():
            ctx.step("check snmp", port=port)
            communities, pr = snmp_communities(address, port)
            if pr.transcript:
                ctx.artifact(f"snmp-{port}.txt", pr.transcript_bytes(), "text/plain")
            services[f"{port}/udp"] = "snmp" if communities else "unknown"
            if communities:
                ctx.finding("default-credential-accepted", "critical" if "private" in communities else "high",
                            f"SNMP on {port}/udp answers the default communit{'ies' if len(communities) > 1 else 'y'} {', '.join(communities)}",
                            interface="network", proto="udp", port=port, service="snmp", evidence=ctx.evidence_of(f"snmp-{port}.txt"),
                            detail={"communities": communities})
                part.observed(f"SNMP answers {', '.join(communities)}", communities=communities)
            else:
                part.unobserved("no answer to SNMP with the default communities public and private: an agent stays silent to a community it "
                                "refuses, so a refusal cannot be told from no agent", kind="not-checked")
        ctx.measure("services", services)
        if ctx.device.privacy_level == 3:
            ctx.finding("manual-check", "info", "6.2.4 b 3 (multi-factor authentication for level-3 data) needs a technician: `rig attest`")

    # -- TLS client certificates ----------------------------------------------------------
    def _client_certificate(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        """A TLS port that alerts ``certificate_required``: the certificate is its authentication.
        A client with a self-made certificate must be refused too."""
        tr, _ = ctx.transcript(f"tls-auth-{port}.jsonl")
        ca = tlsprobe.client_auth(address, port, 5.0, ctx.device.network.client_certificate)  # type: ignore[union-attr]
        for label, outcome in (("no certificate", ca.no_certificate), ("a self-made certificate", ca.self_made_certificate),
                               ("the configured certificate", ca.configured_certificate)):
            if outcome is not None:
                tr.record("info", f"client with {label}: {outcome}")
        evidence = ctx.evidence_of(f"tls-auth-{port}.jsonl")
        if ca.self_made_certificate.startswith("accepted"):
            ctx.finding("unauthenticated-endpoint", "high", f"{port}/tcp asks for a client certificate but accepts a self-made one: anyone can make one",
                        interface="network", proto="tcp", port=port, service="tls", evidence=evidence)
        if ca.no_certificate.startswith("accepted"):
            part.unobserved(f"the TLS server alerted certificate_required once but then accepted a client without one ({ca.no_certificate})")
            return
        part.observed(f"TLS demands a client certificate: none {ca.no_certificate}; self-made {ca.self_made_certificate}"
                      + (f"; configured {ca.configured_certificate}" if ca.configured_certificate else ""), evidence=evidence)

    # -- HTTP -------------------------------------------------------------------------
    def _http(self, ctx: ScenarioContext, address: str, port: int, part: Part, tls: bool) -> None:
        tr, _ = ctx.transcript(f"http-{port}.jsonl")
        evidence = ctx.evidence_of(f"http-{port}.jsonl")
        scheme = "https" if tls else "http"
        paths = list(dict.fromkeys([*ctx.device.network.auth_paths, *HTTP_PATHS]))  # type: ignore[union-attr]
        protected: list[str] = []
        answered: dict[str, int] = {}
        # soft 404: servers that answer 200 to everything (single-page UIs, s_server -WWW).
        # A path whose answer matches the answer for a path that cannot exist is "not found".
        probe_path = f"/privrig-no-such-{secrets.token_hex(6)}"
        b_status, _, b_body = _http_get(address, port, probe_path, tls, tr)
        soft404 = b_status is not None and 200 <= b_status < 300
        baseline = _normalise(b_body, probe_path)
        ctx.measure(f"http_{port}_soft_404", soft404)
        silent = 0
        for path in paths:
            status, headers, body = _http_get(address, port, path, tls, tr)
            if status is None:
                silent += 1
                if not answered and silent >= 3:
                    break  # three requests and not one answer: a bounded look, not thirteen timeouts
                continue
            answered[path] = status
            if soft404 and 200 <= status < 300 and _normalise(body, path) == baseline:
                continue  # the same answer as for a path that cannot exist
            if 200 <= status < 300:
                ctx.finding("unauthenticated-endpoint", "high",
                            f"{scheme}://{address}:{port}{path} answers {status} without credentials ({len(body)} bytes)",
                            interface="network", proto="tcp", port=port, path=path, service=scheme, evidence=evidence)
            elif status == 401 and "basic" in headers.get("www-authenticate", "").lower():
                protected.append(path)
        if not answered:
            part.unobserved(f"{scheme} on {port}/tcp answered none of {silent} requests", kind="no-answer", evidence=evidence)
            return
        part.observed(f"{len(answered)} of {len(paths)} paths answered over {scheme}"
                      + (f"; {len(protected)} ask for Basic auth" if protected else ""),
                      statuses={k: v for k, v in list(answered.items())[:20]}, evidence=evidence)
        if not protected:
            return
        path = protected[0]
        for index, (user, password) in enumerate(HTTP_CREDENTIALS):
            status, _, _ = _http_get(address, port, path, tls, tr, auth=(user, password), label=f"default credential #{index + 1}")
            if status is not None and 200 <= status < 300:
                ctx.finding("default-credential-accepted", "critical",
                            f"{scheme}://{address}:{port}{path} accepts a default credential: user {user!r}, entry #{index + 1} of the HTTP list (password redacted)",
                            interface="network", proto="tcp", port=port, path=path, service=scheme, evidence=evidence,
                            detail=_cred_detail(ctx, user, password, index))
                break
        attempts = []
        for _ in range(LOCKOUT_ATTEMPTS):
            t0 = time.monotonic()
            status, _, _ = _http_get(address, port, path, tls, tr, auth=("admin", secrets.token_hex(8)), label="wrong password")
            outcome = "rejected" if status in (401, 403) else "locked" if status in (423, 429, 503) else "no-answer" if status is None else "other"
            attempts.append((round(time.monotonic() - t0, 3), outcome))
        self._judge_rate(ctx, f"{scheme} basic auth on {port}/tcp", port, scheme, attempts, evidence)

    # -- RTSP -------------------------------------------------------------------------
    def _rtsp(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        tr, _ = ctx.transcript(f"rtsp-{port}.jsonl")
        evidence = ctx.evidence_of(f"rtsp-{port}.jsonl")
        streams = [s.url for s in (ctx.device.camera.streams if ctx.device.camera else []) if s.url.startswith("rtsp://")]
        urls = [u for u in streams if re.match(rf"rtsp://[^/]*:{port}(/|$)", u) or (port == 554 and re.match(r"rtsp://[^/:]*(/|$)", u))] or [f"rtsp://{address}:{port}/"]
        statuses = {}
        for url in urls:
            status = _rtsp_describe(address, port, url, tr)
            if status is not None:
                statuses[url] = status
            if status == 200:
                ctx.finding("unauthenticated-stream", "high", f"RTSP DESCRIBE {url} answers 200 without credentials: the stream is open to anyone",
                            interface="network", proto="tcp", port=port, path=url, service="rtsp", evidence=evidence)
        if statuses:
            part.observed("RTSP DESCRIBE answered: " + ", ".join(f"{u} {st}" for u, st in statuses.items()), statuses=statuses, evidence=evidence)
        else:
            part.unobserved(f"no RTSP answer to DESCRIBE on {port}/tcp", kind="no-answer", evidence=evidence)

    # -- SSH --------------------------------------------------------------------------
    def _ssh(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        tr, _ = ctx.transcript(f"ssh-auth-{port}.jsonl")
        evidence = ctx.evidence_of(f"ssh-auth-{port}.jsonl")
        methods: list[str] | None = None
        open_for: list[str] = []
        for user in NONE_AUTH_USERS:  # the "none" method is per user (an empty password)
            got = _ssh_methods(address, port, user, tr)
            if got is None:
                continue
            if got == ["none"]:
                open_for.append(user)
            else:
                methods = got
        if methods is None and not open_for:
            part.unobserved(f"SSH on {port}/tcp did not complete a handshake", kind="no-answer", evidence=evidence)
            return
        ctx.measure(f"ssh_{port}_methods", methods or [])
        if open_for:
            ctx.finding("unauthenticated-login", "critical",
                        f"SSH on {port}/tcp lets {', '.join(repr(u) for u in open_for)} in with the none method: no authentication at all",
                        interface="network", proto="tcp", port=port, service="ssh", evidence=evidence, detail={"users": open_for})
        part.observed(f"SSH offers {', '.join(methods or []) or 'nothing else'}" + (f"; none accepted for {', '.join(open_for)}" if open_for else ""),
                      methods=methods or [], none_accepted=open_for, evidence=evidence)
        if not {"password", "keyboard-interactive"} & set(methods or []):
            return  # keys only: nothing to guess, nothing to rate-limit
        for index, (user, password) in enumerate(CONSOLE_CREDENTIALS):
            ok, _ = _ssh_password(address, port, user, password, tr, f"default password #{index + 1}")
            if ok:
                ctx.finding("default-credential-accepted", "critical", f"SSH on {port}/tcp accepts a default credential: user {user!r}, entry #{index + 1} (password redacted)",
                            interface="network", proto="tcp", port=port, service="ssh", evidence=evidence, detail=_cred_detail(ctx, user, password, index))
                break
        attempts = []
        for _ in range(LOCKOUT_ATTEMPTS):
            t0 = time.monotonic()
            ok, refused = _ssh_password(address, port, "root", secrets.token_hex(8), tr, "wrong password")
            attempts.append((round(time.monotonic() - t0, 3), "locked" if refused else "accepted" if ok else "rejected"))
        self._judge_rate(ctx, f"ssh password on {port}/tcp", port, "ssh", attempts, evidence)

    # -- telnet -----------------------------------------------------------------------
    def _telnet(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        tr, _ = ctx.transcript(f"telnet-auth-{port}.jsonl")
        evidence = ctx.evidence_of(f"telnet-auth-{port}.jsonl")
        outcomes = []
        for index, (user, password) in enumerate(CONSOLE_CREDENTIALS):
            outcome, _ = _telnet_login(address, port, user, password, tr, f"default password #{index + 1}")
            outcomes.append(outcome)
            if outcome == "shell":
                ctx.finding("default-credential-accepted", "critical", f"telnet on {port}/tcp accepts a default credential: user {user!r}, entry #{index + 1} (password redacted)",
                            interface="network", proto="tcp", port=port, service="telnet", evidence=evidence, detail=_cred_detail(ctx, user, password, index))
                break
            if outcome == "no-login":
                part.observed("telnet hands out a shell without a login prompt (debug-ports' finding)", evidence=evidence)
                return  # an unauthenticated telnet shell is debug-ports' finding
        if "shell" not in outcomes and "rejected" not in outcomes:
            part.unobserved(f"telnet on {port}/tcp never answered a login attempt ({', '.join(sorted(set(outcomes)))})", kind="no-answer", evidence=evidence)
            return
        part.observed(f"telnet login prompt; {outcomes.count('rejected')} default credential(s) refused", evidence=evidence)
        attempts = []
        for _ in range(LOCKOUT_ATTEMPTS):
            outcome, dur = _telnet_login(address, port, "root", secrets.token_hex(8), tr, "wrong password")
            attempts.append((round(dur, 3), {"refused": "locked", "failed": "no-answer"}.get(outcome, outcome)))
        self._judge_rate(ctx, f"telnet login on {port}/tcp", port, "telnet", attempts, evidence)

    # -- FTP --------------------------------------------------------------------------
    def _ftp(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        tr, _ = ctx.transcript(f"ftp-auth-{port}.jsonl")
        evidence = ctx.evidence_of(f"ftp-auth-{port}.jsonl")
        outcomes = []
        for index, (user, password) in enumerate(FTP_CREDENTIALS):
            outcome = _ftp_login(address, port, user, password, tr, f"default password #{index + 1}")
            outcomes.append(outcome)
            if outcome == "accepted":
                ctx.finding("default-credential-accepted", "critical" if user != "anonymous" else "high",
                            f"FTP on {port}/tcp accepts {'anonymous login' if user == 'anonymous' else 'a default credential: user ' + repr(user)}, entry #{index + 1}",
                            interface="network", proto="tcp", port=port, service="ftp", evidence=evidence, detail=_cred_detail(ctx, user, password, index))
                break
        if "accepted" not in outcomes and "failed" not in outcomes:
            part.unobserved(f"FTP on {port}/tcp never answered a login", kind="no-answer", evidence=evidence)
            return
        part.observed(f"FTP login: {', '.join(outcomes)}", evidence=evidence)
        attempts = []
        for _ in range(LOCKOUT_ATTEMPTS):
            t0 = time.monotonic()
            outcome = _ftp_login(address, port, "admin", secrets.token_hex(8), tr, "wrong password")
            attempts.append((round(time.monotonic() - t0, 3), {"refused": "locked", "failed": "rejected"}.get(outcome, outcome)))
        self._judge_rate(ctx, f"ftp login on {port}/tcp", port, "ftp", attempts, evidence)

    def _judge_rate(self, ctx: ScenarioContext, what: str, port: int, service: str, attempts: list[tuple[float, str]], evidence: list[str]) -> None:
        """Ten timed wrong attempts: a lockout counts only after the device was seen refusing a
        wrong password at least once (a device that vanished is not "locked out")."""
        part = ctx.part(f"lockout {service} {port}/tcp", f"{what}: ten wrong attempts are slowed down or locked out (ETSI TS 103 701 5.1-5-2)",
                        clauses=("T/AI 110.1-2020 6.2.4 b 3",), interface="network", proto="tcp", port=port, service=service)
        delays = [d for d, _ in attempts]
        outcomes = [o for _, o in attempts]
        first_rejection = next((i for i, o in enumerate(outcomes) if o == "rejected"), None)
        locked = first_rejection is not None and "locked" in outcomes[first_rejection:]
        ctx.measure(f"lockout_{service}_{port}", {"delays_s": delays, "total_s": round(sum(delays), 2), "locked": locked, "outcomes": outcomes})
        if first_rejection is None:
            part.unobserved(f"{what}: no wrong attempt was answered with a refusal ({', '.join(sorted(set(outcomes)))}): "
                            "the rate limit cannot be measured", kind="no-answer", evidence=evidence)
            return
        part.observed(f"{len(delays)} wrong attempts took {sum(delays):.1f} s" + (" and locked out" if locked else ""),
                      delays_s=delays, locked=locked, evidence=evidence)
        if not rate_limited(delays, locked):
            ctx.finding("no-login-rate-limit", "medium",
                        f"{what}: {len(delays)} wrong attempts took {sum(delays):.1f} s with no slow-down or lockout (delays {delays})",
                        interface="network", proto="tcp", port=port, service=service, evidence=evidence, detail={"delays_s": delays})


# -- protocol helpers -------------------------------------------------------------------

def _normalise(body: bytes, path: str) -> bytes:
    """A response body with the requested path (and its bare name) taken out, for soft-404 comparison."""
    out = body
    for variant in (path, path.lstrip("/")):
        if variant and variant != "/":  # a bare "/" would strip every slash of the page
            out = out.replace(variant.encode(), b"")
    return out


def _http_get(address: str, port: int, path: str, tls: bool, tr: Transcript, auth: tuple[str, str] | None = None,
              label: str = "") -> tuple[int | None, dict[str, str], bytes]:
    if tls:
        sslctx = ssl.create_default_context()
        sslctx.check_hostname, sslctx.verify_mode = False, ssl.CERT_NONE  # testing access, not trusting
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(address, port, timeout=5, context=sslctx)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=5)
    headers = {"User-Agent": "privrig", "Connection": "close"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    tr.record("tx", f"GET {path}" + (f" (Basic {auth[0]}:[{label}])" if auth else ""))
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(BODY_LIMIT)
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        tr.record("rx", f"{resp.status} {resp.reason} ({len(body)} bytes) " + escape_bytes(body[:200]))
        return resp.status, hdrs, body
    except (OSError, http.client.HTTPException) as exc:
        tr.record("info", f"{type(exc).__name__}: {exc}")
        return None, {}, b""
    finally:
        conn.close()


def _ftp_login(address: str, port: int, user: str, password: str, tr: Transcript, label: str) -> str:
    """One FTP login on a fresh connection: accepted, failed, or refused (no connection)."""
    import ftplib

    tr.record("tx", f"USER {user} / PASS [{label}]")
    ftp = ftplib.FTP()
    try:
        tr.record("rx", ftp.connect(address, port, timeout=10)[:200])
    except (OSError, ftplib.Error) as exc:
        tr.record("info", f"connect: {exc}")
        return "refused"
    try:
        reply = ftp.login(user, password)
        tr.record("rx", reply[:200])
        return "accepted"
    except ftplib.error_perm as exc:
        tr.record("rx", str(exc)[:200])
        return "failed"
    except (OSError, ftplib.Error, EOFError) as exc:
        tr.record("info", f"{type(exc).__name__}: {exc}")
        return "refused"
    finally:
        try:
            ftp.close()
        except OSError:
            pass


def _rtsp_describe(address: str, port: int, url: str, tr: Transcript) -> int | None:
    req = f"DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\nUser-Agent: privrig\r\n\r\n".encode()
    tr.record("tx", req)
    try:
        with socket.create_connection((address, port), timeout=5) as s:
            s.sendall(req)
            data = b""
            end = time.monotonic() + 5
            while b"\r\n\r\n" not in data and len(data) < BODY_LIMIT and time.monotonic() < end:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        tr.record("info", str(exc))
        return None
    tr.record("rx", data[:2000])
    m = re.match(rb"RTSP/1\.\d (\d{3})", data)
    return int(m.group(1)) if m else None


def _ssh_methods(address: str, port: int, user: str, tr: Transcript) -> list[str] | None:
    """The authentication methods an SSH server offers ``user`` (``["none"]``: it let the user in
    with no authentication at all); ``None`` when no handshake completed."""
    try:
        with socket.create_connection((address, port), timeout=10) as sock:
            t = paramiko.Transport(sock)
            try:
                t.start_client(timeout=10)
                try:
                    t.auth_none(user)
                    methods = ["none"]
                except paramiko.BadAuthenticationType as exc:
                    methods = list(exc.allowed_types)
                except paramiko.AuthenticationException:
                    methods = []
            finally:
                t.close()
    except (OSError, paramiko.SSHException, EOFError) as exc:
        tr.record("info", f"ssh ({user}): {exc or type(exc).__name__}")
        return None
    tr.record("info", f"ssh offers {user}: {', '.join(methods) or 'nothing'}")
    return methods


def _ssh_password(address: str, port: int, user: str, password: str, tr: Transcript, label: str) -> tuple[bool, bool]:
    """(accepted, refused-at-connection): one password attempt on a fresh connection."""
    tr.record("tx", f"ssh password {user}:[{label}]")
    try:
        sock = socket.create_connection((address, port), timeout=10)
    except OSError as exc:
        tr.record("info", f"connect refused: {exc}")
        return False, True
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=10)  # host key not checked: credentials are being tested, none of ours sent
        t.auth_password(user, password)
        tr.record("rx", "accepted")
        return True, False
    except paramiko.AuthenticationException:
        tr.record("rx", "refused")
        return False, False
    except (paramiko.SSHException, OSError, EOFError) as exc:
        tr.record("info", f"connection dropped: {exc}")
        return False, True
    finally:
        t.close()


def _telnet_login(address: str, port: int, user: str, password: str, tr: Transcript, label: str) -> tuple[str, float]:
    """One login on a fresh telnet connection and its duration: ``shell``, ``rejected`` (back at the
    login prompt, or told it was wrong), ``refused`` (no connection), ``no-login`` (a shell with no
    prompt), or ``failed`` (no prompt or answer in time)."""
    t0 = time.monotonic()
    try:
        sock = socket.create_connection((address, port), timeout=5)
    except OSError as exc:
        tr.record("info", f"connect refused: {exc}")
        return "refused", time.monotonic() - t0
    text = b""

    def read_until(rxs: list[re.Pattern[bytes]], wait: float) -> bool:
        nonlocal text
        end = time.monotonic() + wait
        while time.monotonic() < end and len(text) < BODY_LIMIT:
            sock.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = sock.recv(4096)
            except (socket.timeout, TimeoutError):
                break
            except OSError:
                return False
            if not data:
                return False
            reply, t = _telnet_refuse(data)
            if reply:
                sock.sendall(reply)
            tr.record("rx", data)
            text = strip_ansi((text + t).decode("latin-1")).encode("latin-1")
            if any(rx.search(text.rstrip() + b" ") or rx.search(text.rstrip()) for rx in rxs):
                return True
        return False

    try:
        if not read_until([LOGIN_PROMPT, SHELL_PROMPT], 5):
            return "failed", time.monotonic() - t0
        if not LOGIN_PROMPT.search(text.rstrip()):
            return "no-login", time.monotonic() - t0
        text = b""
        tr.record("tx", f"{user}\\r")
        sock.sendall(user.encode() + b"\r\n")
        if read_until([PASSWORD_PROMPT], 5):
            text = b""
            tr.record("tx", f"[{label}]\\r")
            sock.sendall(password.encode() + b"\r\n")
        got = read_until([LOGIN_PROMPT, SHELL_PROMPT, INCORRECT], 8)
        if got and SHELL_PROMPT.search(text.rstrip()) and not LOGIN_PROMPT.search(text.rstrip()):
            return "shell", time.monotonic() - t0
        return ("rejected" if got else "failed"), time.monotonic() - t0
    finally:
        sock.close()

