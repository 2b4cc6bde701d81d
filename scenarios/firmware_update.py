"""firmware-update: the device refuses every tampered or older image, keeps running what it ran,
takes the genuine one, and fetches updates over an encrypted channel (T/AI 110.1-2020 6.2.1 e;
EN 303 645 5.3).

The vendor's genuine image (``firmware.image``, reporting ``firmware.version`` once it runs)
and, where there is one, an older genuine image (``firmware.older``) stay on the bench host.
From the genuine image the rig derives tampered variants (:mod:`rig.firmware`: a flipped bit,
truncated, a byte appended, re-signed with the rig's own key where the signature format is
given) and the rollback to the older image. Each is applied with the ``firmware-apply``
action (``{image}``: via host, the variant's path on the bench host; via ssh, the path the rig
uploaded it to over SFTP; ``{signature}``: its detached signature, if any). Before and after
each, ``identify`` reads the running version. A variant is refused when the action reports
failure and the version is unchanged; the device answering afterwards is checked too. The
genuine image is applied last: it must be accepted and the device must then report
``firmware.version`` (the positive control: a device that refuses even the genuine image
cannot be told from a broken action, so that run is ``inconclusive``).

With ``firmware.update_servers`` and an ``update-check`` action, the device's own fetch is
captured and judged like channel-encryption: an image fetched in the clear is a finding.

Evidence keeps each variant's SHA-256 and size (``variants.json``), never the images.

Parts: ``version`` (identify reports a version), one per variant (``variant bitflip``...:
the device answered and its verdict was seen), ``genuine`` (control), ``update channel``.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from pathlib import Path

from drivers.errors import CommandTimeout, DeviceError, LinkLost
from rig import power
from rig.config import DeviceConfig
from rig.coverage import Part
from rig.firmware import ImageTooLarge, Variant, read_image, rollback, variants
from rig.scenario import Scenario, ScenarioContext, Unconfigured, hand_over, run_action
from rig.traffic.verdict import Channel
from rig.traffic.window import JUDGED, capture_window

#: finding kind and severity for an accepted variant
ACCEPTED = {"rollback": ("firmware-rollback-accepted", "high")}
DEFAULT_ACCEPTED = ("tampered-firmware-accepted", "critical")


def running_version(ctx: ScenarioContext) -> str | None:
    """The firmware version ``identify`` reports now (``firmware=...``); None if it reports none.
    Raises :class:`DeviceError` when the device does not answer."""
    _, out = run_action(ctx, "identify")
    for line in out.splitlines()[:200]:
        k, sep, v = line.partition("=")
        if sep and k.strip().lower() == "firmware":
            return v.strip()[:64]
    return None


class FirmwareUpdate(Scenario):
    id = "firmware-update"
    title = "Firmware updates only from genuine, current images over a protected channel"
    clauses = ("T/AI 110.1-2020 6.2.1 e",)

    def applies(self, device: DeviceConfig) -> str | None:
        if device.firmware is None:
            return "no firmware section: the vendor's genuine image is needed to derive the variants"
        if "firmware-apply" not in device.actions:
            return "no firmware-apply action: the rig cannot hand the device an image"
        if "identify" not in device.actions:
            return "no identify action: the running version cannot be read before and after"
        return None

    def unconfigured(self, device: DeviceConfig) -> list[Unconfigured]:
        """The rollback variant needs the vendor's older genuine image (and, when the images carry
        detached signatures, the older image's own signature)."""
        fw = device.firmware
        if fw is None:
            return []
        if fw.older is None:
            return [Unconfigured("variant rollback", "no firmware.older", "add firmware.older: an older genuine image of the vendor's, to show a "
                                 "downgrade is refused")]
        if fw.signature is not None and fw.signature.detached is not None and fw.older_signature is None:
            return [Unconfigured("variant rollback", "no firmware.older_signature",
                                 "the images carry detached signatures: add firmware.older_signature (the older image's own signature), "
                                 "or a refusal would show nothing about downgrades")]
        return []

    def run(self, ctx: ScenarioContext) -> None:
        fw = ctx.device.firmware
        assert fw is not None
        version_part = ctx.part("version", "identify reports the running firmware version", control=True, kind="firmware-version")
        try:
            genuine = read_image(fw.image, fw.max_mb)
            older = read_image(fw.older, fw.max_mb) if fw.older else None
            detached = fw.signature.detached.read_bytes()[:65536] if fw.signature and fw.signature.detached else None
        except (OSError, ImageTooLarge) as exc:
            version_part.error(f"the vendor's image cannot be read: {getattr(exc, 'strerror', None) or exc}", "firmware-image")
            return
        planned = variants(genuine, fw, detached)
        # an older image without its own signature when the images carry detached ones would test the
        # signature check again, not the version check: that rollback is not configured (below)
        if older is not None and not (detached is not None and fw.older_signature is None):
            try:
                older_sig = fw.older_signature.read_bytes()[:65536] if fw.older_signature is not None else None
            except OSError as exc:
                version_part.error(f"firmware.older_signature cannot be read: {exc.strerror or exc}", "firmware-image")
                return
            planned.append(rollback(older, older_sig))
        parts = {v.name: ctx.part(f"variant {v.name}", f"{v.description}: refused, and the device keeps its version", kind="firmware-variant")
                 for v in planned}
        aside = {u.part: u for u in self.unconfigured(ctx.device)}
        if "variant rollback" in aside:
            u = aside["variant rollback"]
            ctx.part("variant rollback", "the older genuine image: refused (no downgrade)", kind="firmware-variant").not_configured(u.missing, u.add)
        genuine_part = ctx.part("genuine", f"the genuine image is accepted and the device then reports {fw.version}", control=True,
                                kind="firmware-genuine")
        channel = None
        if fw.update_servers and "update-check" in ctx.device.actions:
            channel = ctx.part("update channel", f"the device's own fetch from {', '.join(map(str, fw.update_servers))}: encrypted",
                               kind="update-channel", interface="network")
        ctx.artifact("variants.json", json.dumps({"genuine": Variant("genuine", "as the vendor gave it", genuine).record(),
                                                  "variants": [v.record() for v in planned]}, indent=1).encode(), "application/json")
        try:
            before = running_version(ctx)
        except DeviceError as exc:
            version_part.error(f"identify failed: {exc.reason}", exc.kind)
            return
        if before is None:
            version_part.unobserved("identify reports no firmware=VERSION line: whether an image took cannot be told")
            return
        version_part.observed(f"the device runs {before}", version=before)
        ctx.measure("version_before", before)
        results = []
        with tempfile.TemporaryDirectory(prefix="privrig-fw-") as work:
            for v in planned:
                results.append(self._apply(ctx, v, Path(work), parts[v.name]))
            g = self._apply(ctx, Variant("genuine", "the genuine image", genuine, detached), Path(work), None)
        results.append(g)
        ctx.artifact("applied.json", json.dumps(results, indent=1).encode(), "application/json")
        evidence = ctx.evidence_of("variants.json", "applied.json")
        if g.get("error"):
            genuine_part.error(f"the genuine image could not be applied: {g['error']}", "firmware-genuine")
        elif g["accepted"] and g["after"] == fw.version:
            genuine_part.observed(f"accepted (action exit {g['exit']}); the device now runs {g['after']}", evidence=evidence, **_seen(g))
        elif g["accepted"]:
            genuine_part.unobserved(f"the action succeeded but the device reports {g['after']!r}, not {fw.version!r}: firmware.version, or the "
                                    "device did not take it", evidence=evidence, **_seen(g))
        else:
            genuine_part.unobserved(f"the genuine image was refused too (exit {g['exit']}: {g['output']}): a strict device cannot be told "
                                    "from a broken firmware-apply action", evidence=evidence, **_seen(g))
        for r in results[:-1]:
            part = parts[r["variant"]]
            if r.get("error"):
                part.error(r["error"], "firmware-variant")
            elif r["exit"] is None and not r["accepted"] and r["variant"] != "rollback" and r["before"] == fw.version:
                # no exit status and a version that cannot change: built from the genuine image, it carries the version already running
                part.unobserved(f"the session dropped during the apply and the device runs {r['before']}, the version this image carries "
                                "too: whether it took it cannot be told", **_seen(r))
            elif r["accepted"]:
                kind, severity = ACCEPTED.get(r["variant"], DEFAULT_ACCEPTED)
                ctx.finding(kind, severity, f"the device accepted the {r['variant']} image ({r['description']}): action exit {r['exit']}, "
                            f"version {r['before']} -> {r['after']}", interface="storage", path=f"{fw.image.name} ({r['variant']})", evidence=evidence,
                            detail={"variant": r["variant"], "sha256": r["sha256"], "bytes": r["bytes"], "before": r["before"], "after": r["after"]})
                part.observed(f"accepted: version {r['before']} -> {r['after']}", **_seen(r))
            else:
                part.observed(f"refused (exit {r['exit']}: {r['output']}); still {r['after']}", **_seen(r))
        if channel is not None:
            self._update_channel(ctx, channel, [str(a) for a in fw.update_servers])

    def _apply(self, ctx: ScenarioContext, v: Variant, work: Path, part: Part | None) -> dict:
        """Apply one image and read the version before and after; a dict for applied.json.

        The apply and the clean-up are separate steps: a device that reboots to flash drops the
        session it was handed the image on, and that is no error but "it may have flashed": the
        rig waits until the device is back and reads the version. ``firmware.settle_s`` is
        waited after every apply, whatever its exit (a device may flash in the background after
        answering), and a clean-up that fails is noted, never the variant's verdict."""
        fw = ctx.device.firmware
        assert fw is not None
        action = ctx.device.actions["firmware-apply"]
        rec: dict = {**v.record(), "variant": v.name}
        ctx.step("apply image", variant=v.name, sha256=v.sha256, bytes=len(v.data))
        try:
            rec["before"] = running_version(ctx)
            values = self._hand_over(ctx, v, work)
        except DeviceError as exc:
            rec["error"] = f"{v.name}: {exc.reason}"
            return rec
        dropped = None
        try:
            status, out = run_action(ctx, "firmware-apply", check=False, **values)
            rec["exit"], rec["output"] = status, out.strip().splitlines()[-1][:200] if out.strip() else ""
        except (LinkLost, CommandTimeout) as exc:  # the device went away while it took the image: it may have flashed
            dropped = exc.reason
            rec["exit"], rec["output"] = None, f"the session dropped during firmware-apply ({exc.reason[:160]})"
            ctx.step("the device dropped the session while it took the image", variant=v.name, reason=exc.reason)
        except DeviceError as exc:
            rec["error"] = f"{v.name}: {exc.reason}"
            return rec
        time.sleep(fw.settle_s)
        try:
            if dropped is not None:
                power.wait_back(ctx)
            try:
                rec["after"] = running_version(ctx)
            except DeviceError as exc:  # a device that reboots to flash: wait until it is back, then ask again
                ctx.step("device away after the image", reason=exc.reason)
                power.wait_back(ctx)
                rec["after"] = running_version(ctx)
        except DeviceError as exc:
            rec["error"] = f"{v.name}: the version after the image could not be read: {exc.reason}"
            return rec
        if action.via == "ssh":
            try:
                ctx.ssh().run(f"rm -f {shlex.quote(values['image'])} {shlex.quote(values['image'] + '.sig')}", timeout=30)
            except DeviceError as exc:
                rec["cleanup"] = f"the uploaded image was not removed: {exc.reason[:200]}"
        ok_exit = action.expect_exit if action.expect_exit is not None else 0
        rec["accepted"] = rec["exit"] == ok_exit or rec["after"] != rec["before"]
        return rec

    @staticmethod
    def _hand_over(ctx: ScenarioContext, v: Variant, work: Path) -> dict[str, str]:
        """Put the image (and its detached signature) where firmware-apply takes it: uploaded over
        SFTP for an action via ssh, a private bench-host file otherwise; the placeholders' values."""
        fw = ctx.device.firmware
        assert fw is not None
        image, signature = hand_over(ctx, "firmware-apply", v.data, v.signature, fw.upload_dir, f"privrig-{v.name}.img", work)
        return {"image": image, "signature": signature}

    def _update_channel(self, ctx: ScenarioContext, part: Part, servers: list[str]) -> None:
        """Make the device check for updates and judge the fetch it makes."""
        try:
            win = capture_window(ctx, "update-fetch", lambda: run_action(ctx, "update-check"), min_s=ctx.device.capture.pull_s + 2)
        except DeviceError as exc:
            part.error(f"the update fetch could not be captured: {exc.reason}", exc.kind)
            return
        uplinks = {(str(u.address), u.port) for u in ctx.device.uplinks}  # its heartbeats to the same host are not the fetch
        flows = [f for s in servers for f in win.flows_to(s) if f.server not in uplinks and f.client not in uplinks]
        judged = [f for f in flows if f.channel in JUDGED]
        address = str(ctx.device.network.address)  # type: ignore[union-attr]
        for f in judged:
            if f.channel.fails:
                ctx.finding("plaintext-update" if f.channel is Channel.PLAINTEXT else f"{f.channel.value}-update", "high",
                            f"{f.id}: the device fetched its update over {f.protocol} ({f.channel.value}): " + "; ".join(f.reasons)[:400],
                            interface="network", proto=f.proto, port=f.server[1], flow=f.id, evidence=win.evidence,
                            detail={"protocol": f.protocol, "from_server": f.bytes_from(f.server[0]), "from_device": f.bytes_from(address)})
        if not judged:
            part.unobserved(f"no fetch to {', '.join(servers)} carried enough to judge after update-check "
                            f"({len(flows)} flow(s) seen)", evidence=win.evidence)
        else:
            part.observed(f"{len(judged)} flow(s) to the update server judged: "
                          + ", ".join(sorted({f"{f.protocol} {f.channel.value}" for f in judged})), evidence=win.evidence,
                          flows={f.id: f.channel.value for f in judged})


def _seen(r: dict) -> dict:
    return {k: r.get(k) for k in ("sha256", "bytes", "exit", "before", "after")}
