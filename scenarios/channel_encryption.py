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

Verdict: ``fail`` with a finding per plaintext, weak or obfuscated flow and per TLS
weakness; ``inconclusive`` when the capture dropped packets, saw no device traffic, or
no flow could be judged; ``pass`` otherwise.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from drivers.capture import PacketCapture
from drivers.errors import DeviceError
from drivers.sink import StreamSink, interface_address
from drivers.stream import pull
from drivers import tlsprobe
from rig.config import DeviceConfig
from rig.results import Verdict
from rig.scenario import Scenario, ScenarioContext, run_action
from rig.traffic.verdict import Analysis, Channel, analyse_capture

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

    def run(self, ctx: ScenarioContext) -> Verdict | None:
        dev = ctx.device
        net = dev.network
        assert net is not None and net.capture_interface is not None
        settings = dev.capture
        address = str(net.address)
        client_cert = net.client_certificate
        sink_host = net.sink_address or interface_address(net.capture_interface)

        # 1. capture, 2. work
        ctx.step("capture start", interface=net.capture_interface, filter=f"host {address}")
        stream = ctx.folder.open_stream(PCAP, "application/vnd.tcpdump.pcap")
        capture = PacketCapture(net.capture_interface, net.address, stream, max_bytes=settings.max_mb << 20)
        pulls: list[dict] = []
        try:
            capture.start()
            with StreamSink.first_free(sink_host, settings.sink_port) as sink:
                ctx.measure("sink_address", f"{sink_host}:{sink.port}")
                started = False
                try:
                    if "stream-start" in dev.actions:
                        run_action(ctx, "stream-start", sink_host=str(sink_host), sink_port=str(sink.port))
                        started = True
                    for s in (dev.camera.streams if dev.camera else []):
                        ctx.step(f"pull {s.name}", url=s.url)
                        res = pull(s.url, settings.pull_s, client_cert=client_cert)
                        pulls.append({"name": s.name, **res.to_dict()})
                    _wait_until(capture, settings.duration_s)
                finally:
                    if started and "stream-stop" in dev.actions:
                        run_action(ctx, "stream-stop")
                ctx.measure("sink", {"bytes": sink.counters.bytes, "connections": sink.counters.connections})
        finally:
            stats = capture.stop() if capture.started else None
            ctx.folder.adopt(stream)
        ctx.measure("pulls", pulls)
        if stats is None:
            raise DeviceError(f"{ctx.device_name}: capture did not start")
        ctx.measure("capture", stats.to_dict())
        evidence = ctx.evidence_of(PCAP, FLOWS)

        # 3. flows
        analysis = analyse_capture(stream.path)
        ctx.artifact(FLOWS, json.dumps({"capture": stats.to_dict(), "pulls": pulls, **analysis.to_dict()}, indent=1).encode(), "application/json")
        ctx.measure("flows", _flow_counts(analysis))
        ctx.measure("flow_table", [{"flow": f.id, "protocol": f.protocol, "channel": f.channel.value, "packets": f.packets, "bytes": f.bytes,
                                    "reason": "; ".join(f.reasons)[:400]} for f in analysis.flows[:FLOW_TABLE_LIMIT]])
        inconclusive = []
        if stats.dropped is None:
            inconclusive.append("tcpdump reported no drop count")
        elif stats.dropped:
            inconclusive.append(f"the capture dropped {stats.dropped} packets (kernel {stats.dropped_kernel}, interface {stats.dropped_interface or 0})")
        if stats.truncated:
            inconclusive.append(f"the capture reached its {settings.max_mb} MB limit and stopped early")
        if not analysis.flows:
            inconclusive.append(f"no traffic to or from {address} was captured on {net.capture_interface}")
        for p in pulls:
            if p["error"]:
                ctx.finding("stream-unavailable", "info", f"stream {p['name']} could not be pulled: {p['error']}", interface="network", path=p["url"])
        for f in analysis.flows:
            if f.channel.fails:
                device_port = f.server[1] if f.server[0] == address else f.client[1]
                ctx.finding(_FINDING_KIND[f.channel], "high", f"{f.id}: {f.protocol} {f.channel.value}: " + "; ".join(f.reasons)[:600],
                            interface="network", proto=f.proto, port=device_port, flow=f.id, evidence=evidence,
                            detail={"protocol": f.protocol, "channel": f.channel.value, "packets": f.packets, "bytes": f.bytes})
        judged = [f for f in analysis.flows if f.channel in (Channel.ENCRYPTED, Channel.PLAINTEXT, Channel.WEAK, Channel.OBFUSCATED)]
        if analysis.flows and not judged:
            inconclusive.append("no flow carried enough data to judge (all empty, control or undetermined)")
        undetermined = [f.id for f in analysis.flows if f.channel is Channel.UNDETERMINED]
        if undetermined:
            ctx.finding("undetermined-flow", "info", f"{len(undetermined)} flow(s) too short to judge: " + ", ".join(undetermined[:10]),
                        interface="network", evidence=evidence)

        # 4. tls
        for port in sorted(_tls_ports(ctx, analysis, address)):
            ctx.step("tls check", port=port)
            mutual = bool(net.tls and port in net.tls.mutual_auth)
            rep = tlsprobe.probe(address, port, client_cert=client_cert, mutual=mutual, work_dir=ctx.folder.dir.parent / ".tls-work")
            name = f"tls-{port}.json"
            ctx.artifact(name, json.dumps(rep.to_dict(), indent=1).encode(), "application/json")
            inconclusive += _tls_findings(ctx, rep, ctx.evidence_of(name))

        for reason in inconclusive:
            ctx.finding("capture-inconclusive", "info", reason, interface="network", evidence=ctx.evidence_of(PCAP))
        if any(f.severity != "info" for f in ctx.findings):
            return Verdict.FAIL
        if inconclusive:
            return Verdict.INCONCLUSIVE
        return Verdict.PASS


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


def _tls_findings(ctx: ScenarioContext, rep: tlsprobe.TlsReport, evidence: list[str]) -> list[str]:
    """Findings for one TLS port; returns reasons the check could not decide."""
    undecided = []
    where = {"interface": "network", "proto": "tcp", "port": rep.port, "service": "tls", "evidence": evidence}
    old = [v for v in rep.versions if v.accepted and v.version in tlsprobe.WEAK_VERSIONS]
    if old:
        ctx.finding("weak-tls-version", "high", f"{rep.port}/tcp accepts {', '.join(v.version for v in old)} (below TLS 1.2)",
                    detail={"accepted": rep.accepted}, **where)
    if not rep.accepted:
        reasons = sorted({v.reason or "" for v in rep.versions})
        ctx.finding("tls-unreachable", "info", f"{rep.port}/tcp completed no TLS handshake: {'; '.join(reasons)[:300]}", **where)
    for version, suites in rep.weak_suites.items():
        ctx.finding("weak-tls-suite", "high", f"{rep.port}/tcp accepts weak suites over {version}: {', '.join(suites[:8])}" + (" …" if len(suites) > 8 else ""),
                    detail={"version": version, "suites": suites}, **where)
    if rep.certificate and rep.certificate.weaknesses:
        ctx.finding("weak-certificate", "medium", f"{rep.port}/tcp certificate ({rep.certificate.subject}): {'; '.join(rep.certificate.weaknesses)}", **where)
    ca = rep.client_auth
    if ca is not None:
        for label, outcome in (("no client certificate", ca.no_certificate), ("a self-made client certificate", ca.self_made_certificate)):
            if outcome.startswith("accepted"):
                ctx.finding("mutual-auth-missing", "high", f"{rep.port}/tcp is declared mutually authenticated but accepts a client with {label}",
                            detail={"client_auth": ca.__dict__}, **where)
        if ca.configured_certificate is not None and not ca.configured_certificate.startswith("accepted"):
            undecided.append(f"{rep.port}/tcp refused the configured client certificate too ({ca.configured_certificate}): "
                             "its refusals of other clients prove nothing")
    return undecided

