"""server-auth: the device refuses servers that are not the one it was given, and sends them
nothing; no upstream in the clear (T/AI 110.1-2020 6.2.2 a 2, 6.2.2 b; EN 303 645 5.5).

For each of the device's ``uplinks`` (its cloud, an NVR, a broker):

1. **Baseline** (control): the device's traffic is captured for the uplink's window with
   nothing intercepted. It must connect to its upstream at all (else nothing below can be
   seen: ``inconclusive``), and the flows are judged like channel-encryption: an upstream in
   the clear (MQTT, HTTP, or any plaintext) is ``plaintext-uplink``.
2. **Forged servers** (TLS uplinks), one certificate class per attempt, in the manner of
   certmitm: ``self-signed`` (for the right name), ``rig-ca`` (the right name, signed by a CA
   the rig made), ``wrong-name`` and ``expired`` (certificates that chain to a CA the device
   trusts, which the lab provides: ``uplinks[].wrong_name`` / ``expired``; without them those
   classes do not apply). The device's connections to ``address:port`` are redirected to the
   rig's forged server with nftables on the bench host (:mod:`drivers.netfilter`), the rules
   deleted when the scenario ends, whatever happens, and swept before the next run. The
   device must abort each handshake with its own refusal: a certificate alert, or a close
   right after the forged certificate reached it. A handshake it completes is
   ``forged-server-accepted`` (critical when it then sent application data, kept as evidence
   with the handshake; high when it sent nothing). A class the device made no connection for
   in the window, a connection that sent no ClientHello, hung up before the certificate,
   stalled, or failed on something else than the certificate is not observed. Connections
   from any other address than the device's are not counted.

Evidence: ``baseline-<uplink>.pcap`` and its flows, ``intercept-<uplink>.pcap`` (every
forged handshake), ``forged-<uplink>.json`` (per class: the certificate presented, the
client's SNI, the handshake's outcome, the bytes of application data and their first 256,
escaped), and the ruleset that was installed.

Parts: ``uplink <name>`` (control: the baseline saw a judged connection to it) and
``<name> <class>`` per certificate class.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers import netfilter
from drivers.errors import DeviceError
from drivers.tlsserver import Attempt, ForgedServer
from rig.certs import issue
from rig.config import DeviceConfig, Uplink
from rig.coverage import Part
from rig.scenario import Scenario, ScenarioContext
from rig.traffic.verdict import Channel
from rig.traffic.window import JUDGED, capture_window

CLASSES = ("self-signed", "rig-ca", "wrong-name", "expired")


class ServerAuth(Scenario):
    id = "server-auth"
    title = "The device authenticates the servers it connects to"
    clauses = ("T/AI 110.1-2020 6.2.2 a 2", "T/AI 110.1-2020 6.2.2 b")

    def applies(self, device: DeviceConfig) -> str | None:
        if not device.uplinks:
            return "no uplinks: the config names no server the device connects to on its own"
        if device.network is None or device.network.capture_interface is None:
            return "no network.capture_interface: the rig cannot see the device's traffic"
        return None

    def run(self, ctx: ScenarioContext) -> None:
        for up in ctx.device.uplinks:
            base = ctx.part(f"uplink {up.name}", f"{up.address}:{up.port} ({up.protocol}): the device connects to it on its own, "
                            "and the flow is judged", clauses=self.clauses, control=True, kind="uplink-silent", interface="network", proto="tcp",
                            port=up.port)
            classes = {c: ctx.part(f"{up.name} {c}", f"{up.address}:{up.port}: a forged server with a {c} certificate is refused and sent nothing",
                                   clauses=(self.clauses[0],), kind="forged-server-unseen", interface="network", proto="tcp", port=up.port)
                       for c in CLASSES} if up.protocol == "tls" else {}
            if not self._baseline(ctx, up, base):
                for p in classes.values():
                    p.unobserved(f"the device made no connection to {up.address}:{up.port} in the baseline: nothing to intercept")
                continue
            if classes:
                self._forge(ctx, up, classes)

    # -- 1. baseline ---------------------------------------------------------------------
    def _baseline(self, ctx: ScenarioContext, up: Uplink, part: Part) -> bool:
        address = str(ctx.device.network.address)  # type: ignore[union-attr]
        try:
            win = capture_window(ctx, f"baseline-{up.name}", lambda: None, min_s=up.window_s)
        except DeviceError as exc:
            part.error(f"the baseline capture failed: {exc.reason}", exc.kind)
            return False
        flows = win.flows_to(str(up.address), up.port)
        judged = [f for f in flows if f.channel in JUDGED and f.bytes_from(address) > 0]
        for f in judged:
            if f.channel.fails or up.protocol != "tls":
                ctx.finding("plaintext-uplink" if f.channel is Channel.PLAINTEXT or up.protocol != "tls" else f"{f.channel.value}-uplink", "high",
                            f"{f.id}: the device talks to {up.name} ({up.protocol}) over {f.protocol}, {f.channel.value}: " + "; ".join(f.reasons)[:400],
                            interface="network", proto="tcp", port=up.port, flow=f.id, evidence=win.evidence,
                            detail={"uplink": up.name, "protocol": f.protocol, "from_device": f.bytes_from(address)})
                break
        if not flows:
            part.unobserved(f"no connection from the device to {up.address}:{up.port} in {up.window_s:g} s", evidence=win.evidence)
            return False
        if not judged:
            part.unobserved(f"{len(flows)} connection(s) to {up.address}:{up.port}, none carrying enough from the device to judge",
                            evidence=win.evidence)
            return True
        part.observed(f"{len(flows)} connection(s) to {up.address}:{up.port} in {up.window_s:g} s, judged "
                      + ", ".join(sorted({f"{f.protocol} {f.channel.value}" for f in judged})),
                      connections=len(flows), evidence=win.evidence)
        return True

    # -- 2. forged servers ---------------------------------------------------------------
    def _forge(self, ctx: ScenarioContext, up: Uplink, parts: dict[str, Part]) -> None:
        name = up.server_name or str(up.address)
        net = ctx.device.network
        assert net is not None
        attempts: list[Attempt] = []
        with tempfile.TemporaryDirectory(prefix="privrig-forge-") as work:
            certs = self._certificates(Path(work), name, up)
            for c in CLASSES:
                if c not in certs:
                    parts[c].not_applicable(f"no uplinks[].{c.replace('-', '_')} certificate: the lab gave none that chains to a CA the "
                                            "device trusts")
            server = ForgedServer(expect={str(net.address)})  # only the device's own connections count
            redirect = netfilter.Redirect(net.address, up.address, up.port, server.port)  # type: ignore[arg-type]
            ruleset = ""

            def work_fn() -> None:
                nonlocal ruleset
                with netfilter.Interception(ctx.device_name, [redirect]) as icpt:
                    ruleset = icpt.ruleset()
                    ctx.step("intercepting", rule=redirect.rule())
                    for c, (cert, key) in certs.items():
                        ctx.step("forged server", certificate=c, window_s=up.window_s)
                        attempts.append(server.attempt(c, cert, key, up.window_s))

            try:
                win = capture_window(ctx, f"intercept-{up.name}", work_fn, min_s=0)
            except DeviceError as exc:
                for c in certs:
                    if not parts[c].done:
                        parts[c].error(f"the interception failed: {exc.reason}", exc.kind)
                return
            finally:
                server.close()
        if ruleset:
            ctx.artifact(f"nft-{up.name}.txt", ruleset.encode()[:65536], "text/plain")
        report = f"forged-{up.name}.json"
        ctx.artifact(report, json.dumps([a.__dict__ for a in attempts], indent=1).encode(), "application/json")
        evidence = ctx.evidence_of(report) + win.evidence
        for a in attempts:
            self._judge(ctx, up, parts[a.certificate], a, evidence)

    @staticmethod
    def _judge(ctx: ScenarioContext, up: Uplink, part: Part, a: Attempt, evidence: list[str]) -> None:
        """One certificate class from what the device did with it (the refusal rules of
        :mod:`drivers.tlsserver`): a handshake it completed is acceptance, with or without data;
        only its own alert about the certificate, or its close right after it, is a refusal."""
        seen = {"handshake": a.handshake, "sni": a.sni, "app_bytes": a.app_bytes, "client": a.client, "certificate_sent": a.certificate_sent}
        where = {"interface": "network", "proto": "tcp", "port": up.port, "evidence": evidence}
        if not a.connected:
            part.unobserved(f"the device made no connection in {up.window_s:g} s while the {a.certificate} server waited"
                            + (f" ({'; '.join(a.notes[:2])})" if a.notes else ""), evidence=evidence, **seen)
        elif a.accepted:
            sent = (f"and sent it {a.app_bytes} bytes of application data" if a.sent_data else
                    "and sent nothing in the wait that followed: it took the certificate, whatever it would have sent")
            ctx.finding("forged-server-accepted", "critical" if a.sent_data else "high",
                        f"{up.name}: the device completed a handshake with a forged server presenting a {a.certificate} certificate "
                        f"({a.handshake}) {sent}", **where, detail={"uplink": up.name, "certificate": a.certificate, **seen})
            part.observed(f"accepted: {a.handshake}, {a.app_bytes} bytes sent", **seen)
        elif a.refused:
            part.observed(a.handshake, **seen)
        else:
            part.unobserved(f"{a.handshake}: the device's judgement of the {a.certificate} certificate was not seen", evidence=evidence, **seen)

    @staticmethod
    def _certificates(work: Path, name: str, up: Uplink) -> dict[str, tuple[Path, Path]]:
        """The certificate of each class the rig can present, made in ``work`` (its keys never reach
        the bundle) or given by the lab."""
        out = {"self-signed": issue(work / "self-cert.pem", work / "self-key.pem", name, usage=ExtendedKeyUsageOID.SERVER_AUTH)}
        ca = issue(work / "ca-cert.pem", work / "ca-key.pem", "privrig interception CA", ca=True)
        out["rig-ca"] = issue(work / "leaf-cert.pem", work / "leaf-key.pem", name, issuer=ca, usage=ExtendedKeyUsageOID.SERVER_AUTH)
        if up.wrong_name is not None:
            out["wrong-name"] = (up.wrong_name.cert, up.wrong_name.key)
        if up.expired is not None:
            out["expired"] = (up.expired.cert, up.expired.key)
        return out


