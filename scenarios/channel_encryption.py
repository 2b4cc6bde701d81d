"""channel-encryption: everything the device sends while it works is encrypted, with a
strong protocol and suite (T/AI 110.1-2020 6.2.2 b; Annex A, transport layer).

Phases:

1. **capture**: tcpdump on the bench interface with the kernel filter ``host <device>``,
   streamed into ``capture.pcap`` as packets arrive;
2. **work**: the device is made to send what it sends in service: the ``stream-start``
   action tells it to push to a sink the rig hosts (``{sink_host}``/``{sink_port}``),
   the rig pulls every configured HTTP(S) stream as a client, then ``stream-stop``;
3. **flows**: the pcap is read back and every flow judged by
   :mod:`rig.traffic.verdict` (protocol by parsing, structure signatures, randomness);
   ``flows.json`` keeps the table with the reasons;
4. **tls**: every TLS port of the device (seen in the capture, named by a stream URL,
   or among the declared ports and answering a ClientHello) is checked actively:
   versions below TLS 1.2, weak suites, certificate weaknesses, and on ports the config
   lists under ``network.tls.mutual_auth``, that clients with no or a self-made
   certificate are refused.

Parts: ``capture`` (tcpdump's counters: nothing dropped, not cut), ``push`` (a control: the
device's own stream reached the rig's sink, and its flows were judged), ``pull <stream>``
per configured stream (it answered 2xx and sent media, and the flow carrying it was
judged), ``tls <port>`` per TLS port (a handshake completed), and ``device traffic`` (at
least one flow the device sent was judged). The rig's own SSH session to the device (the
``stream-start`` action) is excluded by its endpoints: it is the rig's control traffic, never
an observation of the device. A finding per plaintext, weak or obfuscated flow and per TLS
weakness fails the scenario.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from drivers.capture import PacketCapture
from drivers.errors import DeviceError
from drivers.sink import StreamSink, interface_address
from drivers.stream import pull
from drivers import tlsprobe, tlsscan
from rig.config import DeviceConfig, SecretMissing
from rig.coverage import Part
from rig.scenario import Scenario, ScenarioContext, run_action
from rig.traffic.flows import CaptureError
from rig.traffic.verdict import Analysis, Channel, FlowReport, analyse_capture

#: channels that are a verdict on the flow's protection (the others say nothing either way)
JUDGED = (Channel.ENCRYPTED, Channel.PLAINTEXT, Channel.WEAK, Channel.OBFUSCATED)

PCAP = "capture.pcap"
#: flows listed in results.json and the report (flows.json has them all)
FLOW_TABLE_LIMIT = 200
FLOWS = "flows.json"

_FINDING_KIND = {Channel.PLAINTEXT: "plaintext-channel", Channel.WEAK: "weak-channel", Channel.OBFUSCATED: "obfuscated-channel"}


class ChannelEncryption(Scenario):
    """The channel-encryption scenario (see the module docstring for its phases)."""

    id = "channel-encryption"
    title = "Device traffic is encrypted with a strong protocol"
    clauses = ("T/AI 110.1-2020 6.2.2 b", "T/AI 110.1-2020 Annex A transport layer")

    def applies(self, device: DeviceConfig) -> str | None:
        if device.network is None or device.network.capture_interface is None:
            return "no network.capture_interface: the rig cannot see the device's traffic"
        if "stream-start" not in device.actions and not (device.camera and device.camera.streams):
            return "no stream-start action and no camera stream: nothing makes the device send data"
        return None

    def run(self, ctx: ScenarioContext) -> None:
        dev = ctx.device
        net = dev.network
        assert net is not None and net.capture_interface is not None
        settings = dev.capture
        address = str(net.address)
        client_cert = net.client_certificate
        sink_host = net.sink_address or interface_address(net.capture_interface)
        streams = dev.camera.streams if dev.camera else []
        cap_part = ctx.part("capture", f"tcpdump on {net.capture_interface}, host {address}: every packet kept, none dropped",
                            kind="capture-inconclusive", interface="network", evidence=ctx.evidence_of(PCAP))
        push = ctx.part("push", "stream-start: the device's own stream reaches the rig's sink and its flows are judged", control=True,
                        kind="capture-inconclusive", interface="network") if "stream-start" in dev.actions else None
        pull_parts = {s.name: ctx.part(f"pull {s.name}", f"{s.url}: answers 2xx, sends media, and the flow carrying it is judged",
                                       kind="stream-unavailable", interface="network", path=s.url) for s in streams}
        traffic = ctx.part("device traffic", f"flows {address} sent while it worked, each judged", kind="capture-inconclusive", interface="network")

        # 1. capture, 2. work
        ctx.step("capture start", interface=net.capture_interface, filter=f"host {address}")
        stream = ctx.folder.open_stream(PCAP, "application/vnd.tcpdump.pcap")
        capture = PacketCapture(net.capture_interface, net.address, stream, max_bytes=settings.max_mb << 20)
        pulls: list[dict] = []
        sink_ports: list[int] = []
        sink_bytes = 0
        try:
            capture.start()
            with StreamSink.first_free(sink_host, settings.sink_port, source=address) as sink:
                ctx.measure("sink_address", f"{sink_host}:{sink.port}")
                sink_ports = [sink.port + k for k in range(4)]
                started = False
                try:
                    if "stream-start" in dev.actions:
                        run_action(ctx, "stream-start", sink_host=str(sink_host), sink_port=str(sink.port))
                        started = True
                    for s in streams:
                        ctx.step(f"pull {s.name}", url=s.url)
                        try:
                            creds = ctx.stream_credentials(s.name)
                        except SecretMissing as exc:
                            pull_parts[s.name].error(str(exc), "secret-missing")
                            continue
                        res = pull(s.url, settings.pull_s, client_cert=client_cert, auth=creds)
                        pulls.append({"name": s.name, **res.to_dict()})
                    _wait_until(capture, settings.duration_s)
                finally:
                    if started and "stream-stop" in dev.actions:
                        run_action(ctx, "stream-stop")
                sink_bytes = sum(sink.counters.bytes.values())
                ctx.measure("sink", {"bytes": sink.counters.bytes, "connections": sink.counters.connections,
                                     "from_other_senders": {"bytes": sink.counters.others, "connections": sink.counters.others_connections}})
        finally:
            stats = capture.stop() if capture.started else None
            ctx.folder.adopt(stream)
        ctx.measure("pulls", pulls)
        if stats is None:
            raise DeviceError(f"{ctx.device_name}: capture did not start")
        ctx.measure("capture", stats.to_dict())
        evidence = ctx.evidence_of(PCAP, FLOWS)

        # 3. flows: the rig's own control sessions are not the device's traffic
        try:
            analysis = analyse_capture(stream.path)
        except CaptureError as exc:
            raise DeviceError(f"the capture cannot be read: {exc}") from None
        control = _mark_rig_sessions(analysis, ctx.rig_endpoints())
        ctx.artifact(FLOWS, json.dumps({"capture": stats.to_dict(), "pulls": pulls, "rig_sessions": control, **analysis.to_dict()},
                                       indent=1).encode(), "application/json")
        ctx.measure("flows", _flow_counts(analysis))
        ctx.measure("flow_table", [{"flow": f.id, "protocol": f.protocol, "channel": f.channel.value, "packets": f.packets, "bytes": f.bytes,
                                    "from_device": f.bytes_from(address), "reason": "; ".join(f.reasons)[:400]}
                                   for f in analysis.flows[:FLOW_TABLE_LIMIT]])
        problems = []
        if stats.dropped is None:
            problems.append("tcpdump reported no drop count")
        elif stats.dropped:
            problems.append(f"the capture dropped {stats.dropped} packets (kernel {stats.dropped_kernel}, interface {stats.dropped_interface or 0})")
        if stats.truncated:
            problems.append(f"the capture reached its {settings.max_mb} MB limit and stopped early")
        if analysis.stopped:
            problems.append(f"the capture could not be read to its end ({analysis.stopped}); the flows before it are judged")
        if analysis.flow_limit_reached:
            problems.append(f"more flows than the flow table tracks: {analysis.untracked_packets} packets of further flows were counted, not judged")
        if problems:
            cap_part.unobserved("; ".join(problems), captured=stats.captured, dropped=stats.dropped)
        else:
            cap_part.observed(f"{stats.captured} packets captured, none dropped", captured=stats.captured, dropped=0, pcap_bytes=stats.bytes_written)
        device_flows = [f for f in analysis.flows if f.id not in control]
        # one finding per channel: flows of one protocol between the device's port and one peer, judged
        # alike (an RTSP DESCRIBE and the media session after it), named by the flow that carried most
        groups: dict[tuple, list[FlowReport]] = {}
        for f in device_flows:
            if f.channel.fails:
                device_end, peer = (f.server, f.client) if f.server[0] == address else (f.client, f.server)
                groups.setdefault((f.channel, f.protocol, f.proto, device_end, peer[0]), []).append(f)
        for (channel, protocol, proto, device_end, _), group in groups.items():
            f = max(group, key=lambda g: (g.bytes_from(address), g.bytes))
            also = [g.id for g in group if g is not f]
            ctx.finding(_FINDING_KIND[channel], "high", f"{f.id}: {protocol} {channel.value}: " + "; ".join(f.reasons)[:600]
                        + (f" (and {len(also)} more flow(s) alike)" if also else ""),
                        interface="network", proto=proto, port=device_end[1], flow=f.id, evidence=evidence,
                        detail={"protocol": protocol, "channel": channel.value, "packets": f.packets, "bytes": f.bytes,
                                "from_device": f.bytes_from(address), **({"flows": [f.id, *also]} if also else {})})
        undetermined = [f.id for f in device_flows if f.channel is Channel.UNDETERMINED]
        if undetermined:
            ctx.finding("undetermined-flow", "info", f"{len(undetermined)} flow(s) too short to judge: " + ", ".join(undetermined[:10]),
                        interface="network", evidence=evidence)
        judged = [f for f in device_flows if f.channel in JUDGED and f.bytes_from(address) > 0]
        if judged:
            traffic.observed(f"{len(judged)} flow(s) from {address} judged ({sum(f.bytes_from(address) for f in judged)} bytes from the device)",
                             flows={f.id: {"channel": f.channel.value, "from_device": f.bytes_from(address)} for f in judged[:50]}, evidence=evidence)
        else:
            besides = f" besides the rig's own session(s) {', '.join(control)}" if control else ""
            traffic.unobserved((f"no traffic to or from {address} was captured on {net.capture_interface}" if not device_flows else
                                "no flow the device sent carried enough to judge (all empty, control or undetermined)") + besides,
                               evidence=evidence)
        if push is not None:
            _judge_push(push, device_flows, address, str(sink_host), sink_ports, sink_bytes, evidence)
        for p in pulls:
            _judge_pull(pull_parts[p["name"]], p, device_flows, address, evidence)

        # 4. tls
        for port in sorted(_tls_ports(ctx, analysis, address)):
            ctx.step("tls check", port=port)
            mutual = bool(net.tls and port in net.tls.mutual_auth)
            rep = tlsscan.scan(address, port, client_cert=client_cert)
            if mutual and rep.handshake:
                rep.client_auth = tlsprobe.client_auth(address, port, 5.0, client_cert)
            name = f"tls-{port}.json"
            ctx.artifact(name, json.dumps(rep.to_dict(), indent=1).encode(), "application/json")
            where = {"interface": "network", "proto": "tcp", "port": port, "service": "tls", "evidence": ctx.evidence_of(name)}
            part = ctx.part(f"tls {port}", f"{port}/tcp: TLS versions, every accepted suite and the certificate (sslyze)", kind="tls-unreachable", **where)
            vulns = ctx.part(f"tls {port} vulnerabilities", f"{port}/tcp: Heartbleed, ROBOT, CCS injection, compression and renegotiation (sslyze)",
                             kind="tls-unreachable", **where)
            _tls_findings(ctx, rep, ctx.evidence_of(name), part, vulns)


def _mark_rig_sessions(analysis: Analysis, endpoints: list[tuple[tuple[str, int], tuple[str, int]]]) -> list[str]:
    """Flows that are the rig's own sessions to the device (by the endpoints the rig opened):
    relabelled ``control`` with the reason, and their ids returned. They are never judged."""
    mine = {(tuple(local), tuple(remote)) for local, remote in endpoints}
    ids = []
    for f in analysis.flows:
        if f.proto == "tcp" and ((f.client, f.server) in mine or (f.server, f.client) in mine):
            f.channel = Channel.CONTROL
            f.reasons = [f"the rig's own SSH session to the device (actions), not the device's traffic; was {f.protocol}"] + f.reasons[:2]
            f.details["rig_session"] = True
            ids.append(f.id)
    return ids


def _judge_push(part: Part, flows: list[FlowReport], address: str, sink_host: str, sink_ports: list[int], sink_bytes: int,
                evidence: list[str]) -> None:
    """The control of the work phase: the device sent its stream to the sink, and it was judged."""
    to_sink = [f for f in flows if f.server[0] == sink_host and f.server[1] in sink_ports and f.client[0] == address]
    sent = sum(f.bytes_from(address) for f in to_sink)
    seen = {"sink_bytes": sink_bytes, "flows": [f.id for f in to_sink], "bytes_from_device": sent, "evidence": evidence}
    if sink_bytes == 0 and sent == 0:
        part.unobserved("the device accepted stream-start but sent nothing to the sink", **seen)
    elif not any(f.channel in JUDGED for f in to_sink):
        part.unobserved(f"the sink received {sink_bytes} bytes but no flow to it carried enough to judge"
                        + (f" ({', '.join(f.channel.value for f in to_sink)})" if to_sink else " (none captured)"), **seen)
    else:
        part.observed(f"{sent} bytes from the device to the sink in {len(to_sink)} flow(s), judged "
                      + ", ".join(sorted({f.channel.value for f in to_sink if f.channel in JUDGED})), **seen)


def _judge_pull(part: Part, pulled: dict, flows: list[FlowReport], address: str, evidence: list[str]) -> None:
    """One configured stream: it delivered media, and a flow from its port was judged."""
    port = urlsplit(pulled["url"]).port or {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}.get(urlsplit(pulled["url"]).scheme, 0)
    mine = [f for f in flows if f.server == (address, port)]
    seen = {"status": pulled.get("status"), "bytes": pulled.get("bytes"), "frames": pulled.get("frames"), "flows": [f.id for f in mine],
            **({"auth": pulled["auth"]} if pulled.get("auth") else {})}
    if not pulled.get("delivered"):
        part.unobserved(f"{pulled['name']}: {pulled.get('error') or 'no media'}", **seen)
    elif not any(f.channel in JUDGED and f.bytes_from(address) > 0 for f in mine):
        part.unobserved(f"{pulled['name']}: delivered, but no flow from {address}:{port} carried enough to judge", **seen)
    else:
        part.observed(f"{pulled['name']}: {pulled.get('status_line') or pulled.get('status')}, "
                      f"{sum(f.bytes_from(address) for f in mine)} bytes from the device, judged "
                      + ", ".join(sorted({f.channel.value for f in mine if f.channel in JUDGED})), evidence=evidence, **seen)


def _wait_until(capture: PacketCapture, duration_s: float) -> None:
    left = duration_s - capture.elapsed()
    if left > 0:
        time.sleep(left)


def _flow_counts(analysis: Analysis) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in analysis.flows:
        out[f.channel.value] = out.get(f.channel.value, 0) + 1
    return out


def _tls_ports(ctx: ScenarioContext, analysis: Analysis, address: str) -> set[int]:
    """TLS ports: seen in the capture, named by an https stream, or declared and answering TLS."""
    ports = {f.server[1] for f in analysis.flows if f.protocol == "tls" and f.server[0] == address}
    for s in (ctx.device.camera.streams if ctx.device.camera else []):
        parts = urlsplit(s.url)
        if parts.scheme in ("https", "rtsps") and parts.hostname == address:
            ports.add(parts.port or (443 if parts.scheme == "https" else 322))
    net = ctx.device.network
    assert net is not None
    if net.tls:
        ports.update(net.tls.mutual_auth)
    for decl in net.open_ports:
        if decl.proto == "tcp" and decl.port not in ports and decl.port != 22 and tlsprobe.speaks_tls(address, decl.port):
            ports.add(decl.port)
    return ports


def _tls_findings(ctx: ScenarioContext, rep: tlsscan.TlsScan, evidence: list[str], part: Part, vulns: Part) -> None:
    """Findings for one TLS port, and what its parts observed: a port where no handshake completed
    observed nothing (never a pass), and a vulnerability test sslyze could not finish is named."""
    where = {"interface": "network", "proto": "tcp", "port": rep.port, "service": "tls", "evidence": evidence}
    if not rep.handshake:
        part.unobserved(f"{rep.port}/tcp completed no TLS handshake: {rep.error}")
        vulns.unobserved(f"{rep.port}/tcp completed no TLS handshake: nothing to test")
        return
    old = [v for v in rep.accepted if v in tlsscan.WEAK_VERSIONS]
    if old:
        ctx.finding("weak-tls-version", "critical" if any(v.startswith("SSL") for v in old) else "high",
                    f"{rep.port}/tcp accepts {', '.join(old)} (below TLS 1.2)", detail={"accepted": rep.accepted}, **where)
    for version, suites in rep.weak_suites.items():
        names = list(suites)
        ctx.finding("weak-tls-suite", "high", f"{rep.port}/tcp accepts broken suites over {version}: "
                    + ", ".join(f"{n} ({suites[n]})" for n in names[:6]) + (" …" if len(names) > 6 else ""),
                    detail={"version": version, "suites": suites}, **where)
    if rep.no_forward_secrecy:
        versions = list(rep.no_forward_secrecy)
        suites = sorted({n for v in versions for n in rep.no_forward_secrecy[v]})
        ctx.finding("tls-no-forward-secrecy", "medium", f"{rep.port}/tcp accepts static key-exchange suites over {', '.join(versions)}: "
                    f"{', '.join(suites[:4])}" + (" …" if len(suites) > 4 else "") + " (a recorded session opens once the server key leaks)",
                    detail={"suites": rep.no_forward_secrecy}, **where)
    if rep.certificate and rep.certificate.weaknesses:
        ctx.finding("weak-certificate", "medium", f"{rep.port}/tcp certificate ({rep.certificate.subject}): {'; '.join(rep.certificate.weaknesses)}", **where)
    if any(v.error for v in rep.versions):
        part.unobserved(f"{rep.port}/tcp: the suites of {', '.join(v.version for v in rep.versions if v.error)} were not scanned "
                        f"({'; '.join(v.error or '' for v in rep.versions if v.error)[:300]})")
    elif rep.certificate_error:
        part.unobserved(f"{rep.port}/tcp: the certificate was not examined ({rep.certificate_error[:300]})")
    else:
        part.observed(f"{rep.port}/tcp accepts {', '.join(rep.accepted)}; {sum(len(v.suites) for v in rep.versions)} suite(s) accepted in all",
                      accepted=rep.accepted, scanner=rep.scanner)
    ca = rep.client_auth
    if ca is not None:
        for label, outcome in (("no client certificate", ca.no_certificate), ("a self-made client certificate", ca.self_made_certificate)):
            if outcome.startswith("accepted"):
                ctx.finding("mutual-auth-missing", "high", f"{rep.port}/tcp is declared mutually authenticated but accepts a client with {label}",
                            detail={"client_auth": ca.__dict__}, **where)
        gap = ca.gap()
        if gap is not None:  # a client the server never answered: its refusal of it was not seen
            if gap[0] == "error":
                part.error(f"{rep.port}/tcp mutual TLS: {gap[1]}", "tls-unreachable")
            else:
                part.unobserved(f"{rep.port}/tcp mutual TLS: {gap[1]}")
        elif ca.configured_certificate is not None and not ca.configured_certificate.startswith("accepted"):
            part.unobserved(f"{rep.port}/tcp refused the configured client certificate too ({ca.configured_certificate}): "
                            "its refusals of other clients prove nothing")
    hits = []
    if rep.heartbleed:
        hits.append(("critical", "Heartbleed (CVE-2014-0160): the server's memory can be read"))
    if rep.robot_vulnerable:
        hits.append(("high", f"ROBOT: the RSA decryption is a Bleichenbacher oracle ({rep.robot})"))
    if rep.ccs_injection:
        hits.append(("high", "OpenSSL CCS injection (CVE-2014-0224)"))
    if rep.compression:
        hits.append(("medium", "TLS compression (CRIME)"))
    if rep.secure_renegotiation is False:
        hits.append(("medium", "no secure renegotiation (RFC 5746)"))
    if rep.client_renegotiation_dos:
        hits.append(("low", "client-initiated renegotiation accepted (a denial-of-service lever)"))
    for severity, what in hits:
        ctx.finding("tls-vulnerability", severity, f"{rep.port}/tcp: {what}", **where)
    missing = [i for i in rep.incomplete if not i.startswith(("SSL", "TLS", "certificate"))]
    if rep.robot == "UNKNOWN_INCONSISTENT_RESULTS":  # sslyze could not tell: not a pass
        missing.append("ROBOT: the server's answers were inconsistent, so whether it is an oracle was not told")
    if missing:
        vulns.unobserved(f"{rep.port}/tcp: not every test finished: {'; '.join(missing)[:300]}")
    else:
        vulns.observed(f"{rep.port}/tcp: Heartbleed {_yn(rep.heartbleed)}, ROBOT {rep.robot}, CCS injection {_yn(rep.ccs_injection)}, "
                       f"compression {_yn(rep.compression)}, secure renegotiation {_yn(rep.secure_renegotiation)}",
                       robot=rep.robot, heartbleed=rep.heartbleed, ccs_injection=rep.ccs_injection)


def _yn(value: bool | None) -> str:
    return "yes" if value else "no" if value is not None else "unknown"
