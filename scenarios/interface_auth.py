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

import re
import secrets
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Callable
from urllib.parse import urlencode, urljoin, urlsplit

import paramiko

from drivers import httpauth, tlsprobe
from drivers import rtsp as rtsp_client
from drivers.httpauth import Credentials
from drivers.errors import DeviceError
from drivers.portscan import PortScanner
from drivers.probes import LOGIN_PROMPT, PASSWORD_PROMPT, SHELL_PROMPT, LoginService, _telnet_refuse, identify_login_service, probe_tcp, snmp_communities
from drivers.stream import http_status
from drivers.transcript import Transcript, escape_bytes, strip_ansi
from drivers.wire import content_length, head_complete, head_headers, read_until
from rig.config import DeviceConfig
from rig.coverage import Part
from rig.credentials import NONE_AUTH_USERS, Entry
from rig.scenario import Scenario, ScenarioContext

#: Paths cameras commonly serve; each must answer 401/403 (or 404) without credentials.
HTTP_PATHS = ("/", "/admin", "/config", "/api", "/snapshot.jpg", "/snapshot.cgi", "/cgi-bin/snapshot.cgi", "/video.mjpg",
              "/stream", "/onvif/device_service", "/ISAPI/System/deviceInfo", "/system.ini", "/backup")
LOCKOUT_ATTEMPTS = 10
#: services interface-auth logs in to; an undeclared open port carrying one gets the same checks
LOGIN_SERVICES = ("ssh", "telnet", "ftp", "http", "https", "rtsp", "tls-client-auth")
#: undeclared open ports identified at most (a device with thousands open is still bounded)
UNDECLARED_LIMIT = 64
#: a lockout shown only by silence must lift within this (seconds) to count as one; polled every LOCKOUT_POLL_S
LOCKOUT_LIFT_S = 30.0
LOCKOUT_POLL_S = 2.0
#: Ten wrong attempts faster than this in total, with no lockout, are not rate limited.
RATE_LIMIT_MIN_TOTAL_S = 10.0
BODY_LIMIT = 64 * 1024
INCORRECT = re.compile(rb"(?i)incorrect|denied|failed")


def _cred_detail(ctx: ScenarioContext, entry: Entry) -> dict[str, object]:
    """What a finding says of an accepted credential: user, list and position; the password only
    if the bench config allows."""
    detail: dict[str, object] = {"user": entry.user, "list": entry.source, "list_entry": entry.index}
    if ctx.reveal_credentials:
        detail["password"] = entry.password
    return detail


def _wrong(ctx: ScenarioContext) -> str:
    """A wrong password for the lockout timing (random), redacted like the others."""
    pw = secrets.token_hex(8)
    ctx.tried_password(pw)
    return pw


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
        scan_part = ctx.part("scan", f"every TCP port of {address}: login services the vendor did not declare get the same checks",
                             interface="network", proto="tcp")
        self._snmp(ctx, address, udp_parts, services)
        found: dict[int, LoginService] = {}
        for decl in tcp:
            found[decl.port] = LoginService(decl.service, True, f"service {decl.service} (declared)") if decl.service \
                else identify_login_service(address, decl.port)
        if tcp and not any(ls.answered or ls.refused for ls in found.values()):
            undeclared: dict[int, LoginService] = {}
            scan_part.unobserved(f"no declared TCP port of {address} answered (device off or unplugged?): the scan for undeclared "
                                 "login services was not run", kind="no-answer")
        else:
            undeclared = self._undeclared(ctx, address, set(parts), scan_part)
        for port, ls in undeclared.items():
            found[port] = ls
            parts[port] = ctx.part(f"{port}/tcp", f"{port}/tcp (open, not declared: {ls.service}): its service demands authentication and refuses defaults",
                                   interface="network", proto="tcp", port=port)
        device_answered = any(ls.answered for ls in found.values())
        for port, part in parts.items():
            ls = found[port]
            svc = ls.service
            services[str(port)] = svc or "unknown"
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
                ctx.step(f"check {svc}", port=port)
                check(ctx, address, port, part)
            elif svc is not None:
                part.unobserved(f"declared service {svc!r}: interface-auth has no check for it", kind="not-checked")
            elif ls.answered:
                part.unobserved(f"{ls.note}: whether it authenticates cannot be told (name it with {{port: {port}, service: ...}})",
                                kind="not-checked")
            elif ls.refused and device_answered:
                part.not_applicable(f"{ls.note}: the port is closed although declared, so nothing listens to authenticate")
            else:
                part.unobserved(f"nothing answered: {ls.note}" + ("" if device_answered else f" (no declared port of {address} answered: device off or unplugged?)"),
                                kind="no-answer")
        ctx.measure("services", services)
        if ctx.device.privacy_level == 3:
            ctx.finding("manual-check", "info", "6.2.4 b 3 (multi-factor authentication for level-3 data) needs a technician: `rig attest`")

    def _snmp(self, ctx: ScenarioContext, address: str, udp_parts: dict[int, Part], services: dict[str, str]) -> None:
        """The declared UDP ports: SNMP with the default communities (one datagram each, bounded),
        run before the TCP checks so that a device whose TCP services stall still has them done."""
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
            elif pr.detail.get("unparsed_replies"):
                part.unobserved(f"{port}/udp answered the SNMP requests with {pr.detail['unparsed_replies']} datagram(s) that are no SNMP response "
                                "to them (malformed or another protocol): whether an agent refuses the defaults cannot be told", kind="not-checked")
            else:
                part.unobserved("no answer to SNMP with the default communities public and private: an agent stays silent to a community it "
                                "refuses, so a refusal cannot be told from no agent", kind="not-checked")

    # -- discovery --------------------------------------------------------------------------
    def _undeclared(self, ctx: ScenarioContext, address: str, declared: set[int], part: Part) -> dict[int, LoginService]:
        """Every open TCP port (nmap, all 65535) that is not declared and carries a login service,
        by protocol: a telnet on 9527 is checked like one on 23."""
        ctx.step("tcp scan", address=address, ports="1-65535")
        try:
            scan = PortScanner().scan_tcp(address)
        except DeviceError as exc:
            part.error(f"the TCP scan was not carried out: {exc.reason}", exc.kind)
            return {}
        ref = ctx.artifact("nmap-tcp.xml", scan.xml, "application/xml")
        if scan.responded == 0:
            part.unobserved(scan.notes[0] if scan.notes else f"no TCP port of {address} answered the scan", kind="no-answer", evidence=[ref.path])
            return {}
        undeclared = [p for p in scan.open_ports if p not in declared]
        extra, beyond = undeclared[:UNDECLARED_LIMIT], undeclared[UNDECLARED_LIMIT:]
        with ThreadPoolExecutor(max_workers=8) as pool:
            named = dict(zip(extra, pool.map(lambda port: identify_login_service(address, port), extra)))
            # a port silent to every login probe may be a debug stub that waits to be spoken to
            # (gdbserver, JDWP, ADB): ask it in its own protocol before calling it unidentified
            quiet = [p for p, ls in named.items() if ls.silent]
            for port, res in zip(quiet, pool.map(lambda port: probe_tcp(address, port), quiet)):
                if res.service is not None:
                    named[port] = LoginService(res.service, True, res.summary)
        logins = {p: ls for p, ls in named.items() if ls.service in LOGIN_SERVICES}
        unnamed = [p for p, ls in named.items() if ls.service is None and (ls.silent or not ls.answered)]
        ctx.measure("undeclared_login_services", {str(p): ls.service for p, ls in logins.items()})
        seen = {"open": scan.open_ports, "undeclared": {str(p): ls.service for p, ls in named.items()}, "evidence": [ref.path]}
        found = (f"undeclared login service(s): {', '.join(f'{p}/tcp {ls.service}' for p, ls in logins.items())}" if logins
                 else "no undeclared login service among those identified")
        if unnamed or beyond:  # a port whose service was never seen, or never asked, may be a login: not a "no"
            gaps = ([f"{len(unnamed)} open port(s) answered no probe, so what they carry was not seen: "
                     + ", ".join(f"{p}/tcp" for p in unnamed[:10]) + (" …" if len(unnamed) > 10 else "")] if unnamed else []) + \
                   ([f"{len(beyond)} open port(s) beyond the first {UNDECLARED_LIMIT} were not identified: "
                     + ", ".join(f"{p}/tcp" for p in beyond[:10]) + (" …" if len(beyond) > 10 else "")] if beyond else [])
            part.unobserved(f"{len(scan.open_ports)} open TCP port(s) of {address}; {found}; " + "; ".join(gaps)
                            + " (declare them with their service)", kind="not-identified", unidentified=unnamed[:50], not_asked=beyond[:50], **seen)
            return logins
        part.observed(f"{len(scan.open_ports)} open TCP port(s) of {address}; " + found.replace(" among those identified", ""), **seen)
        return logins

    # -- TLS client certificates ----------------------------------------------------------
    def _client_certificate(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        """A TLS port that alerts ``certificate_required``: the certificate is its authentication.
        A client with a self-made certificate must be refused too."""
        tr, _ = ctx.transcript(f"tls-auth-{port}.jsonl")
        ca = tlsprobe.client_auth(address, port, 5.0, ctx.device.network.client_certificate)  # type: ignore[union-attr]
        for label, outcome in ca.outcomes():
            tr.record("info", f"client with {label}: {outcome}")
        evidence = ctx.evidence_of(f"tls-auth-{port}.jsonl")
        if ca.self_made_certificate.startswith("accepted"):
            ctx.finding("unauthenticated-endpoint", "high", f"{port}/tcp asks for a client certificate but accepts a self-made one: anyone can make one",
                        interface="network", proto="tcp", port=port, service="tls", evidence=evidence)
        gap = ca.gap()
        if gap is not None:  # a client the server never answered: its refusal of it was not seen
            state, why = gap
            if state == "error":
                part.error(f"{port}/tcp: {why}", "no-answer", evidence=evidence)
            else:
                part.unobserved(f"{port}/tcp: {why}", kind="no-answer", evidence=evidence)
            return
        if ca.no_certificate.startswith("accepted"):
            part.unobserved(f"the TLS server alerted certificate_required once but then accepted a client without one ({ca.no_certificate})")
            return
        if ca.configured_certificate is not None and not ca.configured_certificate.startswith("accepted"):  # the positive control
            part.unobserved(f"{port}/tcp refused the configured client certificate too ({ca.configured_certificate}): its refusals of "
                            "other clients prove nothing", evidence=evidence)
            return
        part.observed(f"TLS demands a client certificate: none {ca.no_certificate}; self-made {ca.self_made_certificate}"
                      + (f"; configured {ca.configured_certificate}" if ca.configured_certificate else ""), evidence=evidence)

    # -- HTTP -------------------------------------------------------------------------
    def _http(self, ctx: ScenarioContext, address: str, port: int, part: Part, tls: bool) -> None:
        """Paths without credentials (a 2xx is an open endpoint, a login form is not), the paths of
        configured streams (they must demand their ``auth``), then the default accounts and the
        lockout over each login mechanism found: Basic or Digest, and the HTML form."""
        tr, _ = ctx.transcript(f"http-{port}.jsonl")
        evidence = ctx.evidence_of(f"http-{port}.jsonl")
        scheme = "https" if tls else "http"
        web = Web(address, port, tls, tr)
        stream_paths = _stream_paths(ctx, address, port, scheme)
        paths = list(dict.fromkeys([*ctx.device.network.auth_paths, *stream_paths, *HTTP_PATHS]))  # type: ignore[union-attr]
        protected: list[tuple[str, str]] = []
        forms: list[LoginForm] = []
        answered: dict[str, int] = {}
        # soft 404: servers that answer 200 to everything (single-page UIs, s_server -WWW).
        # A path whose answer matches the answer for a path that cannot exist is "not found".
        probe_path = f"/privrig-no-such-{secrets.token_hex(6)}"
        b = web.get(probe_path)
        soft404 = b.status is not None and 200 <= b.status < 300
        baseline = _normalise(b.body, probe_path)
        ctx.measure(f"http_{port}_soft_404", soft404)
        silent = 0
        for path in paths:
            r = web.get(path)
            if r.status is None:
                silent += 1
                if not answered and silent >= 3:
                    break  # three requests and not one answer: a bounded look, not thirteen timeouts
                continue
            answered[path] = r.status
            if 200 <= r.status < 300:
                form = LoginForm.find(r.body, path)
                if form is not None:
                    if all(f.action != form.action for f in forms):
                        forms.append(form)
                    continue  # a login page is the authentication, not an open endpoint
                if soft404 and _normalise(r.body, path) == baseline:
                    continue  # the same answer as for a path that cannot exist
                if path in stream_paths:
                    ctx.finding("unauthenticated-stream", "high",
                                f"{scheme}://{address}:{port}{path} answers {r.status} without credentials although the config gives it an account: "
                                "the stream does not demand its authentication", interface="network", proto="tcp", port=port, path=path,
                                service=scheme, evidence=evidence)
                else:
                    ctx.finding("unauthenticated-endpoint", "high",
                                f"{scheme}://{address}:{port}{path} answers {r.status} without credentials ({len(r.body)} bytes)",
                                interface="network", proto="tcp", port=port, path=path, service=scheme, evidence=evidence)
            elif r.status == 401:
                chosen = httpauth.choose(r.challenges)
                if chosen is not None:
                    protected.append((path, chosen.label()))
        if not answered:
            part.unobserved(f"{scheme} on {port}/tcp answered none of {silent} requests", kind="no-answer", evidence=evidence)
            return
        mechanisms = sorted({label for _, label in protected}) + (["form login"] if forms else [])
        part.observed(f"{len(answered)} of {len(paths)} paths answered over {scheme}"
                      + (f"; login by {', '.join(mechanisms)}" if mechanisms else ""),
                      statuses={k: v for k, v in list(answered.items())[:20]}, mechanisms=mechanisms, evidence=evidence)
        if protected:
            self._http_challenge_logins(ctx, web, scheme, protected, evidence, part)
        for form in forms[:2]:
            self._form_logins(ctx, web, scheme, form, evidence, part)

    def _http_challenge_logins(self, ctx: ScenarioContext, web: "Web", scheme: str, protected: list[tuple[str, str]], evidence: list[str],
                               part: Part) -> None:
        """Default accounts, then ten wrong passwords, against the first path that asks for Basic or Digest."""
        path, label = protected[0]
        port = web.port
        answers = []
        for e in ctx.accounts("http"):
            r = web.get(path, auth=Credentials(e.user, e.password), label=e.label)
            answers.append(_web_answer(r.status))
            if r.status is not None and 200 <= r.status < 300:
                ctx.finding("default-credential-accepted", "critical",
                            f"{scheme}://{web.address}:{port}{path} accepts a default account over {r.auth or label}: user {e.user!r}, {e.label} (password redacted)",
                            interface="network", proto="tcp", port=port, path=path, service=scheme, evidence=evidence,
                            detail={**_cred_detail(ctx, e), "scheme": r.auth or label})
                break
        _defaults_answered(part, f"{scheme} {label} on {port}/tcp", answers, evidence)

        def wrong() -> str:
            r = web.get(path, auth=Credentials("admin", _wrong(ctx)), label="wrong password")
            return "rejected" if r.status in (401, 403) else "locked" if r.status in (423, 429, 503) else "no-answer" if r.status is None else "other"

        self._judge_rate(ctx, f"{scheme} {label} on {port}/tcp", port, scheme, _timed(wrong), evidence, wrong, mechanism=label.split()[0].lower())

    def _form_logins(self, ctx: ScenarioContext, web: "Web", scheme: str, form: "LoginForm", evidence: list[str], part: Part) -> None:
        """An HTML login form: a wrong account's answer first (the refusal as this device words it),
        then each default account, accepted when the answer leaves the login page (a redirect
        elsewhere, or a page with no password field) where the wrong one did not; then ten wrong
        passwords timed."""
        port = web.port
        refusal = web.submit(form, f"privrig-{secrets.token_hex(3)}", _wrong(ctx), "wrong account")
        if refusal.status is None:
            part.unobserved(f"{scheme} form login at {form.page} on {port}/tcp: a wrong account got no answer, so no refusal to compare "
                            "the defaults' answers with", kind="defaults-unanswered", evidence=evidence)
            return
        ref_sig = refusal.signature(form)
        ctx.measure(f"form_{port}", {"page": form.page, "action": form.action, "fields": [form.user_field, form.password_field],
                                     "refusal": {"status": refusal.status, "location": refusal.location}})
        answers = []
        for e in ctx.accounts("form"):
            r = web.submit(form, e.user, e.password, e.label)
            if r.status is not None and r.logged_in(form, ref_sig):
                answers.append("accepted")
                ctx.finding("default-credential-accepted", "critical",
                            f"{scheme}://{web.address}:{port}{form.action} (form login at {form.page}) accepts a default account: user {e.user!r}, "
                            f"{e.label} (password redacted); answered {r.status}" + (f" to {r.location}" if r.location else ""),
                            interface="network", proto="tcp", port=port, path=form.action, service=scheme, evidence=evidence,
                            detail={**_cred_detail(ctx, e), "scheme": "form"})
                break
            answers.append("refused" if r.signature(form) == ref_sig else _web_answer(r.status) if r.status is None or r.status >= 400
                           else f"{r.status}, not the refusal's answer")
        _defaults_answered(part, f"{scheme} form login on {port}/tcp", answers, evidence)

        def wrong() -> str:
            r = web.submit(form, "admin", _wrong(ctx), "wrong password")
            return ("no-answer" if r.status is None else "locked" if r.status in (423, 429, 503) or LOCKED_TEXT.search(r.body)
                    else "rejected" if r.signature(form) == ref_sig else "other")

        self._judge_rate(ctx, f"{scheme} form login on {port}/tcp", port, scheme, _timed(wrong), evidence, wrong, mechanism="form")

    # -- RTSP -------------------------------------------------------------------------
    def _rtsp(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        """DESCRIBE without credentials on each configured stream of this port (or ``/``): a 200 is
        an open stream; where it asks for Digest or Basic, the default accounts and the lockout."""
        tr, _ = ctx.transcript(f"rtsp-{port}.jsonl")
        evidence = ctx.evidence_of(f"rtsp-{port}.jsonl")
        urls = _stream_urls(ctx, address, port, ("rtsp",)) or [f"rtsp://{address}:{port}/"]
        statuses: dict[str, int] = {}
        protected: list[tuple[str, str]] = []
        for url in urls:
            ans = _rtsp_request(url, None, tr, "")
            if ans.status is not None:
                statuses[url] = ans.status
            if ans.status == 200:
                ctx.finding("unauthenticated-stream", "high", f"RTSP DESCRIBE {url} answers 200 without credentials: the stream is open to anyone",
                            interface="network", proto="tcp", port=port, path=url, service="rtsp", evidence=evidence)
            elif ans.status == 401 and ans.challenge:
                chosen = httpauth.choose(httpauth.challenges(*ans.headers.get("www-authenticate", [])))
                if chosen is not None:
                    protected.append((url, chosen.label()))
        if not statuses:
            part.unobserved(f"no RTSP answer to DESCRIBE on {port}/tcp", kind="no-answer", evidence=evidence)
            return
        part.observed("RTSP DESCRIBE answered: " + ", ".join(f"{u} {st}" for u, st in statuses.items())
                      + (f"; login by {', '.join(sorted({lb for _, lb in protected}))}" if protected else ""), statuses=statuses, evidence=evidence)
        if not protected:
            return
        url, label = protected[0]
        answers = []
        for e in ctx.accounts("rtsp"):
            ans = _rtsp_request(url, Credentials(e.user, e.password), tr, e.label)
            answers.append("accepted" if ans.ok else _web_answer(ans.status))
            if ans.ok:
                ctx.finding("default-credential-accepted", "critical",
                            f"RTSP {url} accepts a default account over {ans.auth or label}: user {e.user!r}, {e.label} (password redacted)",
                            interface="network", proto="tcp", port=port, path=url, service="rtsp", evidence=evidence,
                            detail={**_cred_detail(ctx, e), "scheme": ans.auth or label})
                break
        _defaults_answered(part, f"rtsp {label} on {port}/tcp", answers, evidence)

        def wrong() -> str:
            ans = _rtsp_request(url, Credentials("admin", _wrong(ctx)), tr, "wrong password")
            return ("rejected" if ans.status == 401 else "locked" if ans.status in (403, 423, 429, 453, 503) else "no-answer" if ans.status is None
                    else "other")

        self._judge_rate(ctx, f"rtsp {label} on {port}/tcp", port, "rtsp", _timed(wrong), evidence, wrong)

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
        answers = []
        for e in ctx.accounts("console"):
            ok, dropped = _ssh_password(address, port, e.user, e.password, tr, e.label)
            answers.append("accepted" if ok else "no answer (connection refused or dropped)" if dropped else "refused")
            if ok:
                ctx.finding("default-credential-accepted", "critical", f"SSH on {port}/tcp accepts a default credential: user {e.user!r}, {e.label} (password redacted)",
                            interface="network", proto="tcp", port=port, service="ssh", evidence=evidence, detail=_cred_detail(ctx, e))
                break
        _defaults_answered(part, f"ssh password on {port}/tcp", answers, evidence)

        def wrong() -> str:
            ok, dropped = _ssh_password(address, port, "root", _wrong(ctx), tr, "wrong password")
            return "silent" if dropped else "accepted" if ok else "rejected"

        self._judge_rate(ctx, f"ssh password on {port}/tcp", port, "ssh", _timed(wrong), evidence, wrong)

    # -- telnet -----------------------------------------------------------------------
    def _telnet(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        tr, _ = ctx.transcript(f"telnet-auth-{port}.jsonl")
        evidence = ctx.evidence_of(f"telnet-auth-{port}.jsonl")
        outcomes = []
        for e in ctx.accounts("telnet"):
            outcome, _ = _telnet_login(address, port, e.user, e.password, tr, e.label)
            outcomes.append(outcome)
            if outcome == "shell":
                ctx.finding("default-credential-accepted", "critical", f"telnet on {port}/tcp accepts a default credential: user {e.user!r}, {e.label} (password redacted)",
                            interface="network", proto="tcp", port=port, service="telnet", evidence=evidence, detail=_cred_detail(ctx, e))
                break
            if outcome == "no-login":  # a shell for anyone who connects: this scenario's finding too (6.2.1 d), beside debug-ports'
                ctx.finding("unauthenticated-login", "critical",
                            f"telnet on {port}/tcp hands out a shell without any login: no authentication at all (debug-ports names the "
                            "same service as an open debug service)", interface="network", proto="tcp", port=port, service="telnet",
                            evidence=evidence, detail={"also": "debug-ports open-debug-service"})
                part.observed(f"telnet on {port}/tcp hands out a shell without a login prompt", evidence=evidence)
                return
        if "shell" not in outcomes and "rejected" not in outcomes:
            part.unobserved(f"telnet on {port}/tcp never answered a login attempt ({', '.join(sorted(set(outcomes)))})", kind="no-answer", evidence=evidence)
            return
        part.observed(f"telnet login prompt; {outcomes.count('rejected')} default credential(s) refused", evidence=evidence)
        _defaults_answered(part, f"telnet login on {port}/tcp", ["accepted" if o == "shell" else "refused" if o == "rejected" else o for o in outcomes],
                           evidence)

        def wrong() -> str:
            outcome, _ = _telnet_login(address, port, "root", _wrong(ctx), tr, "wrong password")
            return {"refused": "silent", "failed": "no-answer"}.get(outcome, outcome)

        self._judge_rate(ctx, f"telnet login on {port}/tcp", port, "telnet", _timed(wrong), evidence, wrong)

    # -- FTP --------------------------------------------------------------------------
    def _ftp(self, ctx: ScenarioContext, address: str, port: int, part: Part) -> None:
        tr, _ = ctx.transcript(f"ftp-auth-{port}.jsonl")
        evidence = ctx.evidence_of(f"ftp-auth-{port}.jsonl")
        outcomes = []
        for e in ctx.accounts("ftp"):
            outcome = _ftp_login(address, port, e.user, e.password, tr, e.label)
            outcomes.append(outcome)
            if outcome == "accepted":
                ctx.finding("default-credential-accepted", "critical" if e.user != "anonymous" else "high",
                            f"FTP on {port}/tcp accepts {'anonymous login' if e.user == 'anonymous' else 'a default credential: user ' + repr(e.user)}, {e.label}",
                            interface="network", proto="tcp", port=port, service="ftp", evidence=evidence, detail=_cred_detail(ctx, e))
                break
        if "accepted" not in outcomes and "failed" not in outcomes:
            part.unobserved(f"FTP on {port}/tcp never answered a login", kind="no-answer", evidence=evidence)
            return
        part.observed(f"FTP login: {', '.join(outcomes)}", evidence=evidence)
        _defaults_answered(part, f"ftp login on {port}/tcp", ["refused" if o == "failed" else "no answer (no connection)" if o == "refused" else o
                                                              for o in outcomes], evidence)

        def wrong() -> str:
            return {"refused": "silent", "failed": "rejected"}.get(_ftp_login(address, port, "admin", _wrong(ctx), tr, "wrong password"), "other")

        self._judge_rate(ctx, f"ftp login on {port}/tcp", port, "ftp", _timed(wrong), evidence, wrong)

    def _judge_rate(self, ctx: ScenarioContext, what: str, port: int, service: str, attempts: list[tuple[float, str]], evidence: list[str],
                    retry: Callable[[], str], mechanism: str | None = None) -> None:
        """Ten timed wrong attempts: a lockout counts only after the device was seen refusing a
        wrong password at least once (a device that vanished is not "locked out"). A lockout the
        device says (423, 429, 503, "too many attempts") counts as such; one it only shows by
        going silent (connections refused or dropped) counts only when it is seen to lift: a
        wrong password refused again within ``LOCKOUT_LIFT_S`` (``retry`` makes one attempt).
        ``mechanism`` tells apart two logins of one port (``digest``, ``form``)."""
        tag = f"{service} {mechanism}" if mechanism and mechanism not in ("basic",) else service
        part = ctx.part(f"lockout {tag} {port}/tcp", f"{what}: ten wrong attempts are slowed down or locked out (ETSI TS 103 701 5.1-5-2)",
                        clauses=("T/AI 110.1-2020 6.2.4 b 3",), interface="network", proto="tcp", port=port, service=service)
        delays = [d for d, _ in attempts]
        outcomes = [o for _, o in attempts]
        first_rejection = next((i for i, o in enumerate(outcomes) if o == "rejected"), None)
        locked = first_rejection is not None and "locked" in outcomes[first_rejection:]
        silent = first_rejection is not None and not locked and "silent" in outcomes[first_rejection:]
        lifted_s = None
        if silent:  # refused once, then nothing: a lockout, or a device that went away? Only its lifting tells
            ctx.step("wait for the lockout to lift", what=what, limit_s=LOCKOUT_LIFT_S)
            t0 = time.monotonic()
            while time.monotonic() - t0 < LOCKOUT_LIFT_S:
                if retry() == "rejected":
                    lifted_s = round(time.monotonic() - t0, 1)
                    locked = True
                    break
                time.sleep(LOCKOUT_POLL_S)
        ctx.measure(f"lockout_{tag.replace(' ', '_')}_{port}", {"delays_s": delays, "total_s": round(sum(delays), 2), "locked": locked, "outcomes": outcomes,
                                                               **({"lifted_after_s": lifted_s} if silent else {})})
        if first_rejection is None:
            part.unobserved(f"{what}: no wrong attempt was answered with a refusal ({', '.join(sorted(set(outcomes)))}): "
                            "the rate limit cannot be measured", kind="no-answer", evidence=evidence)
            return
        if silent and lifted_s is None:
            part.unobserved(f"{what}: after {outcomes.count('rejected')} refusal(s) the device stopped answering and had not come back "
                            f"{LOCKOUT_LIFT_S:g} s later: a lockout cannot be told from a device that went away", kind="no-answer", evidence=evidence)
            return
        part.observed(f"{len(delays)} wrong attempts took {sum(delays):.1f} s" + (" and locked out" if locked else "")
                      + (f" (silent, lifted after {lifted_s:g} s)" if lifted_s is not None else ""),
                      delays_s=delays, locked=locked, evidence=evidence)
        if not rate_limited(delays, locked):
            ctx.finding("no-login-rate-limit", "medium",
                        f"{what}: {len(delays)} wrong attempts took {sum(delays):.1f} s with no slow-down or lockout (delays {delays})",
                        interface="network", proto="tcp", port=port, service=service, evidence=evidence, detail={"delays_s": delays})


def _timed(attempt: Callable[[], str]) -> list[tuple[float, str]]:
    """``LOCKOUT_ATTEMPTS`` wrong attempts, each with its duration and outcome."""
    out = []
    for _ in range(LOCKOUT_ATTEMPTS):
        t0 = time.monotonic()
        outcome = attempt()
        out.append((round(time.monotonic() - t0, 3), outcome))
    return out


def _web_answer(status: int | None) -> str:
    """A default account's HTTP or RTSP answer as :func:`_defaults_answered` counts it."""
    if status in (401, 403):
        return "refused"
    if status is not None and 200 <= status < 300:
        return "accepted"
    return "no answer" if status is None else f"{status}" + (" (throttled or locked)" if status in (423, 429, 453, 503) else "")


def _defaults_answered(part: Part, what: str, answers: list[str], evidence: list[str]) -> None:
    """The default accounts count as refused only when the device refused each one: a port where
    some got no answer, a throttle or anything but a refusal has not shown it refuses them, and
    its part is not observed (unless one was accepted: that finding stands on its own)."""
    if "accepted" in answers:
        return
    other = [a for a in answers if a != "refused"]
    if other:
        counts = ", ".join(f"{other.count(a)}x {a}" for a in dict.fromkeys(other))
        part.unobserved(f"{what}: {len(other)} of {len(answers)} default account(s) got no refusal ({counts}): whether the device refuses "
                        "them was not seen", kind="defaults-unanswered", evidence=evidence)


# -- protocol helpers -------------------------------------------------------------------

def _normalise(body: bytes, path: str) -> bytes:
    """A response body with the requested path (and its bare name) taken out, for soft-404 comparison."""
    out = body
    for variant in (path, path.lstrip("/")):
        if variant and variant != "/":  # a bare "/" would strip every slash of the page
            out = out.replace(variant.encode(), b"")
    return out


@dataclass
class WebAnswer:
    """One HTTP answer as interface-auth judges it (body bounded by BODY_LIMIT)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    challenges: list[httpauth.Challenge] = field(default_factory=list)
    location: str | None = None  # a redirect's target path
    auth: str | None = None  # the scheme the rig answered a challenge with

    def signature(self, form: "LoginForm") -> tuple:
        """What tells a refused login from an accepted one: status, where it sends the client, and
        whether the answer is still a page asking for a password."""
        return (self.status, self.location, LoginForm.find(self.body, form.page) is not None)

    def logged_in(self, form: "LoginForm", refusal: tuple) -> bool:
        """This answer to a form login left the login page where the refusal did not: a redirect
        somewhere else than the refusal's and the login page, or a page without a password field."""
        if self.signature(form) == refusal or self.status in (423, 429, 503) or LOCKED_TEXT.search(self.body):
            return False
        if self.status is not None and 300 <= self.status < 400:
            return bool(self.location) and self.location not in (refusal[1], form.page, form.action)
        return self.status is not None and 200 <= self.status < 300 and LoginForm.find(self.body, form.page) is None and refusal[2]


@dataclass
class LoginForm:
    """An HTML form with a password field: where it is, where it posts, and its fields."""

    page: str
    action: str
    method: str
    user_field: str | None
    password_field: str
    hidden: dict[str, str] = field(default_factory=dict)

    @classmethod
    def find(cls, body: bytes, page: str) -> "LoginForm | None":
        """The first form of ``body`` with a password input (``None``: no login form)."""
        if b"password" not in body.lower():
            return None
        parser = _FormParser()
        try:
            parser.feed(body[:BODY_LIMIT].decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 (device HTML is untrusted: a parser failure is "no form")
            return None
        for f in parser.forms:
            pw = next((i for i in f["inputs"] if i.get("type", "").lower() == "password" and i.get("name")), None)
            if pw is None:
                continue
            user = next((i for i in f["inputs"] if i.get("type", "text").lower() in ("text", "email", "") and i.get("name")), None)
            hidden = {i["name"]: i.get("value", "") for i in f["inputs"] if i.get("type", "").lower() == "hidden" and i.get("name")}
            action = urljoin(page, f.get("action") or page)
            return cls(page, urlsplit(action).path or page, (f.get("method") or "get").lower(), user and user["name"], pw["name"], hidden)
        return None


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form" and len(self.forms) < 20:
            self._current = {"action": a.get("action"), "method": a.get("method"), "inputs": []}
            self.forms.append(self._current)
        elif tag == "input":
            if self._current is None:  # an input outside any form: a script-driven login page
                self._current = {"action": None, "method": "post", "inputs": []}
                self.forms.append(self._current)
            if len(self._current["inputs"]) < 50:
                self._current["inputs"].append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


#: a login answer that says the account is locked or the client must wait
LOCKED_TEXT = re.compile(rb"(?i)locked|too many|try again later|temporarily")


#: one web request, from connect to its last byte, at most (a device dripping a byte at a time is cut here)
REQUEST_S = 10.0
#: an answer's head, at most
HEAD_LIMIT = 16 * 1024


class Web:
    """HTTP(S) requests to one port of the device, each on a fresh connection, each in the transcript.

    HTTPS reaches every TLS version this host's OpenSSL still has (security level 0): a camera
    that speaks only TLS 1.0 is still checked. Credentials are answered as the server asks
    (Basic or Digest); the transcript names the account's list entry, never the password."""

    def __init__(self, address: str, port: int, tls: bool, tr: Transcript):
        self.address, self.port, self.tls, self.tr = address, port, tls, tr
        self._sslctx: ssl.SSLContext | None = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # testing access, not trusting
            self._sslctx = tlsprobe.every_version(ctx)

    def _request(self, method: str, path: str, headers: dict[str, str], body: bytes | None, note: str,
                 shown: str | None = None) -> WebAnswer:
        """One HTTP/1.0 exchange on a fresh connection, bounded: the whole of it (connect, TLS,
        head, body) within ``REQUEST_S``, the head within ``HEAD_LIMIT``, the body within
        ``BODY_LIMIT``; a device that trickles bytes or never ends its answer is cut there, and a
        head that never completes is no answer. ``shown`` is the request target as the
        transcript writes it (a GET form login's query, with the password replaced)."""
        deadline = time.monotonic() + REQUEST_S
        self.tr.record("tx", f"{method} {shown or path}" + (f" ({note})" if note else ""))
        sock: socket.socket | ssl.SSLSocket | None = None
        try:
            sock = socket.create_connection((self.address, self.port), timeout=min(5.0, REQUEST_S))
            if self._sslctx is not None:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock = self._sslctx.wrap_socket(sock)
            host = self.address if ":" not in self.address else f"[{self.address}]"
            lines = [f"{method} {path} HTTP/1.0", f"Host: {host}:{self.port}", "User-Agent: privrig", "Connection: close",
                     *(f"{k}: {v}" for k, v in headers.items())]
            if body is not None:
                lines.append(f"Content-Length: {len(body)}")
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + (body or b""))
            data = read_until(sock, deadline, head_complete, HEAD_LIMIT)
            if not head_complete(data):
                why = "no answer" if not data else f"a head that did not end within {len(data)} bytes / {REQUEST_S:g} s"
                self.tr.record("info", f"{why} ({escape_bytes(data[:120])})" if data else why)
                return WebAnswer(None)
            head, rest = data.split(b"\r\n\r\n", 1)
            status, _ = http_status(head)
            if status is None:
                self.tr.record("info", f"not HTTP: {escape_bytes(head[:120])}")
                return WebAnswer(None)
            every = head_headers(head)
            hdrs = {k: v[0] for k, v in every.items()}
            length = content_length(every)
            want = BODY_LIMIT if length is None else min(length, BODY_LIMIT)
            payload = rest if len(rest) >= want else read_until(sock, deadline, lambda d: len(d) >= want, BODY_LIMIT, data=rest)
            payload = payload[:want]
            chs = httpauth.challenges(*every.get("www-authenticate", [])[:20]) if status == 401 else []
            loc = hdrs.get("location")
            reason = escape_bytes(head.split(b"\r\n", 1)[0][13:80])
            self.tr.record("rx", f"{status} {reason} ({len(payload)} bytes)" + (f" [{', '.join(c.label() for c in chs)}]" if chs else "")
                           + (f" -> {loc[:200]}" if loc else "") + " " + escape_bytes(payload[:200]))
            return WebAnswer(status, hdrs, payload, chs, urlsplit(urljoin(path, loc)).path if loc else None)
        except (OSError, ValueError) as exc:
            self.tr.record("info", f"{type(exc).__name__}: {exc}")
            return WebAnswer(None)
        finally:
            if sock is not None:
                sock.close()

    def get(self, path: str, auth: Credentials | None = None, label: str = "") -> WebAnswer:
        """``GET path``; with ``auth``, a 401 is answered (the strongest challenge offered) on a
        fresh request, and that answer returned with the scheme used."""
        first = self._request("GET", path, {}, None, "")
        if auth is None or first.status != 401:
            return first
        chosen = httpauth.choose(first.challenges)
        if chosen is None:
            return first
        second = self._request("GET", path, {"Authorization": httpauth.authorization(chosen, auth, "GET", path)}, None,
                               f"{chosen.label()} {auth.user}:[{label}]")
        second.auth = chosen.label()
        return second

    def submit(self, form: LoginForm, user: str, password: str, label: str) -> WebAnswer:
        """Fill ``form`` (fresh hidden fields from its page first: tokens change) and send it."""
        page = self._request("GET", form.page, {}, None, "login page")
        fresh = LoginForm.find(page.body, form.page) if page.status is not None else None
        hidden = fresh.hidden if fresh is not None and fresh.action == form.action else form.hidden
        fields = {**hidden, **({form.user_field: user} if form.user_field else {}), form.password_field: password}
        shown = {**hidden, **({form.user_field: user} if form.user_field else {}), form.password_field: f"[{label}]"}
        note = "form " + "&".join(f"{k}={v}" for k, v in shown.items())
        data = urlencode(fields).encode()
        if form.method == "get":  # the password rides in the query: the transcript shows the query with it replaced
            return self._request("GET", f"{form.action}?{data.decode()}", {}, None, note, shown=f"{form.action}?{urlencode(shown)}")
        return self._request("POST", form.action, {"Content-Type": "application/x-www-form-urlencoded"}, data, note)


def _stream_urls(ctx: ScenarioContext, address: str, port: int, schemes: tuple[str, ...]) -> list[str]:
    """The configured streams of ``schemes`` served on ``address:port``."""
    out = []
    for s in ctx.device.camera.streams if ctx.device.camera else []:
        parts = urlsplit(s.url)
        default = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}.get(parts.scheme)
        if parts.scheme in schemes and parts.hostname == address and (parts.port or default) == port:
            out.append(s.url)
    return out


def _stream_paths(ctx: ScenarioContext, address: str, port: int, scheme: str) -> list[str]:
    """Request paths of the configured streams with an ``auth`` on this port: each must demand it."""
    out = []
    for s in ctx.device.camera.streams if ctx.device.camera else []:
        parts = urlsplit(s.url)
        if s.auth is not None and s.url in _stream_urls(ctx, address, port, (scheme,)):
            out.append((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    return out


def _rtsp_request(url: str, auth: Credentials | None, tr: Transcript, label: str) -> rtsp_client.RtspAnswer:
    """DESCRIBE ``url`` (answering a challenge with ``auth``), each exchange in the transcript."""
    ans = rtsp_client.request(url, "DESCRIBE", auth, 5.0)
    for line, reply in zip(ans.sent, ans.replies + [b""] * len(ans.sent)):
        tr.record("tx", line.replace(f"user {auth.user}]", f"user {auth.user}, {label}]") if auth else line)
        if reply:
            tr.record("rx", reply[:2000])
    if ans.error:
        tr.record("info", ans.error)
    return ans


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

