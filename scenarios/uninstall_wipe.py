"""uninstall-wipe: after the app is uninstalled and the account deleted, nothing the app or
its user stored remains anywhere on the device (T/AI 110.1-2020 6.2.3 c, 6.2.3 d).

Phases, through the device's configured actions and its SSH shell
(:class:`drivers.storage.DeviceStorage`, one session per search):

1. **baseline**: list every regular file under ``storage.data_roots`` and
   ``storage.external_roots`` with size and SHA-256 (``listing-baseline.tsv``);
2. **populate**: ``app-install``, ``user-create``, ``data-create``, each with the run's
   canary token as ``{token}`` (kept in ``canary.json`` so a rerun can look for it again);
   list again (``listing-populated.tsv``) and search for the token. If an action carried
   the token and it is found nowhere, the check cannot show the wipe works: ``inconclusive``;
3. **remove**: ``user-delete``, ``app-uninstall``;
4. **residue**: list again (``listing-after.tsv``), search the token in names and contents
   under every root, and read each ``storage.raw_devices`` up to ``raw_scan_mb`` for it.

Each residue is a finding with its path: a file that appeared after the baseline and
remains (unless ``storage.ignore`` names it as system churn and it holds no token), a name
or file holding the token, a raw device holding it (deleted, not wiped). Residue on
external storage names 6.2.3 d as well.

Parts: ``root <path>`` per searched root (6.2.3 c; external roots 6.2.3 d too), observed
when it exists and every listing and search reached all of it; ``canary`` (the positive
control: the token given to the populate actions was found on the device before the wipe,
or without a token-carrying action, the app created files); ``raw <device>`` per raw device,
observed with the bytes read (the result says when only the first ``raw_scan_mb`` were).
"""

from __future__ import annotations

import fnmatch
import json
import secrets

from typing import Any

from drivers.storage import DeviceStorage, Listing, RawScan, Reach, TokenHits
from rig.config import DeviceConfig
from rig.scenario import Scenario, ScenarioContext, run_action

T = "T/AI 110.1-2020 "
TOKEN_RE = r"privrig-[0-9a-f]{20}"

#: the actions that put the app, the user and their data on the device, in order
POPULATE = ("app-install", "user-create", "data-create")
#: the actions that take them off, in order
REMOVE = ("user-delete", "app-uninstall")
#: residue findings listed one by one, at most (the rest are counted and in the listings)
MAX_FINDINGS = 200


def new_token() -> str:
    """A canary token nothing on a device contains by chance (letters, digits and dashes only)."""
    return f"privrig-{secrets.token_hex(10)}"


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _gap_under(reach: Reach, root: str) -> str | None:
    """What ``reach`` says was not reached under ``root`` (one line), or None."""
    if root in reach.missing_roots:
        return f"missing root(s) {root}: it does not exist"
    denied = [p for p in reach.unreadable if _under(p, [root])]
    return f"{len(denied)} folder(s) or file(s) not readable, such as {', '.join(denied[:3])}" if denied else None


class UninstallWipe(Scenario):
    """The uninstall-wipe scenario (see the module docstring for its phases)."""

    id = "uninstall-wipe"
    title = "Uninstall and account deletion leave nothing behind"
    clauses = ("T/AI 110.1-2020 6.2.3 c", "T/AI 110.1-2020 6.2.3 d")

    def applies(self, device: DeviceConfig) -> str | None:
        if device.storage is None:
            return "no storage section: the rig does not know where the device keeps data"
        if device.ssh is None:
            return "no ssh transport: the storage searches run in the device's shell over SSH"
        if not any(a in device.actions for a in REMOVE):
            return "no user-delete or app-uninstall action: nothing to wipe"
        return None

    @classmethod
    def replay_inputs(cls, inputs: dict[str, Any]) -> dict[str, Any]:
        """A rerun hands back the canary only, and only in the form :func:`new_token` draws."""
        import re

        extra = set(inputs) - {"canary"}
        if extra:
            raise ValueError(f"uninstall-wipe takes only a canary to replay (got {', '.join(sorted(extra))})")
        token = inputs.get("canary")
        if not isinstance(token, str) or not re.fullmatch(TOKEN_RE, token):
            raise ValueError(f"the replayed canary {str(token)[:40]!r} is not a privrig canary (privrig- and 20 hex digits)")
        return {"canary": token}

    def run(self, ctx: ScenarioContext) -> None:
        st = ctx.device.storage
        assert st is not None
        roots = list(dict.fromkeys(st.data_roots + st.external_roots))
        root_parts = {r: ctx.part(f"root {r}", f"{r}: listed before and after, searched for the canary by name and content",
                                  clauses=(T + "6.2.3 c",) + ((T + "6.2.3 d",) if _under(r, st.external_roots) else ()),
                                  kind="not-reached", interface="storage", path=r) for r in roots}
        canary_part = ctx.part("canary", "the app and its user stored data the check can look for (the canary token, or new files)", control=True,
                               kind="canary-not-stored", interface="storage")
        raw_parts = {d: ctx.part(f"raw {d}", f"{d}: raw blocks read for the canary after the wipe", kind="raw-device-unreadable",
                                 interface="storage", path=d) for d in st.raw_devices}
        storage = DeviceStorage(ctx.ssh(), st.search_timeout_s, st.max_files)
        token = ctx.inputs.get("canary") or new_token()
        ctx.inputs["canary"] = token
        carried = [a for a in POPULATE if a in ctx.device.actions and "{token}" in (ctx.device.actions[a].command or " ".join(ctx.device.actions[a].argv or []))]
        ctx.artifact("canary.json", json.dumps({"token": token, "carried_by": carried, "roots": roots,
                                                "raw_devices": st.raw_devices}, indent=1).encode(), "application/json")

        def snap(phase: str) -> Listing:
            listing = storage.snapshot(roots)
            ctx.artifact(f"listing-{phase}.tsv", listing.to_tsv(), "text/tab-separated-values")
            ctx.step(f"{phase} listing", files=len(listing.files), missing_roots=listing.missing_roots, truncated=listing.truncated,
                     unreadable=listing.unreadable[:20])
            return listing

        baseline = snap("baseline")
        for action in POPULATE:
            if action in ctx.device.actions:
                run_action(ctx, action, token=token)
        populated = snap("populated")
        placed = storage.find_token(roots, token, known=set(populated.files))
        created = sorted(set(populated.files) - set(baseline.files))
        ctx.measure("created_files", len(created))
        ctx.measure("canary_placed", sorted(placed.paths)[:MAX_FINDINGS])
        raw: dict[str, RawScan | None] = {}
        try:
            for action in REMOVE:
                if action in ctx.device.actions:
                    run_action(ctx, action, token=token)
        finally:
            after = snap("after")
            left = storage.find_token(roots, token, known=set(after.files))
            for dev in st.raw_devices:
                raw[dev] = storage.scan_raw(dev, token, st.raw_scan_mb << 20)
            ctx.measure("ssh_bytes", storage.bytes_moved)
            ctx.artifact("residue.json", json.dumps({"token": token, "created": created, "placed": sorted(placed.paths),
                                                     "token_after": {"names": left.names, "contents": left.contents},
                                                     "raw_devices": {d: (r.to_dict() if r else None) for d, r in raw.items()}},
                                                    indent=1).encode(), "application/json")
        self._findings(ctx, st.external_roots, st.ignore, baseline, after, left, raw)
        evidence = ctx.evidence_of("residue.json", "listing-baseline.tsv", "listing-after.tsv")
        for r, part in root_parts.items():
            gaps = [f"{what}: {gap}" for what, reach in (("baseline listing", baseline.reach), ("listing after", after.reach),
                                                        ("canary search", left.reach)) if (gap := _gap_under(reach, r))]
            if baseline.truncated or after.truncated:
                gaps.append(f"a listing reached storage.max_files ({st.max_files}): files beyond it were not compared")
            files = sum(1 for p in after.files if _under(p, [r]))
            if gaps:
                part.unobserved(f"{r}: " + "; ".join(gaps), files_after=files, evidence=evidence)
            else:
                part.observed(f"{r}: listed before ({sum(1 for p in baseline.files if _under(p, [r]))} files) and after ({files} files), "
                              "searched for the canary", files_after=files, evidence=evidence)
        if carried:
            if placed.paths:
                canary_part.observed(f"the canary given to {', '.join(carried)} was found in {len(placed.paths)} place(s) before the wipe",
                                     placed=sorted(placed.paths)[:20], evidence=evidence)
            else:
                canary_part.unobserved(f"the canary given to {', '.join(carried)} was found nowhere under {', '.join(roots)} before the wipe: "
                                       "the check cannot show that data is wiped", evidence=evidence)
        elif created:
            canary_part.observed(f"no action carries {{token}}: {len(created)} file(s) the app created are followed by the listings alone",
                                 created=len(created), evidence=evidence)
        else:
            canary_part.unobserved("no action carries {token} and the populate actions created no file under the roots: nothing shows "
                                   "the app stored anything that a wipe could leave", evidence=evidence)
        for dev, part in raw_parts.items():
            scan = raw[dev]
            if scan is None:
                part.unobserved(f"{dev} could not be read: its raw blocks were not searched")
            else:
                mb = scan.bytes_read / (1 << 20)
                part.observed(f"{dev}: {scan.bytes_read} bytes ({mb:.0f} MiB) read" + (f" of {scan.size}" if scan.size is not None else "")
                              + (f": only the first {st.raw_scan_mb} MiB (storage.raw_scan_mb)" if scan.partial else ", the whole device")
                              + f"; canary found {scan.hits} time(s)", **scan.to_dict())

    def _findings(self, ctx: ScenarioContext, external: list[str], ignore: list[str], baseline: Listing, after: Listing,
                  left: TokenHits, raw: dict[str, RawScan | None]) -> None:
        """One finding per residue: token in a name or content, a new file that stayed, a raw device."""
        evidence = ctx.evidence_of("residue.json", "listing-baseline.tsv", "listing-after.tsv")
        reasons: dict[str, list[str]] = {}
        for p in left.names:
            reasons.setdefault(p, []).append("its name holds the canary")
        for p in left.contents:
            reasons.setdefault(p, []).append("its content holds the canary")
        for p in sorted(set(after.files) - set(baseline.files)):
            if not any(fnmatch.fnmatchcase(p, g) for g in ignore):
                reasons.setdefault(p, []).append("created after the baseline and still there")
        count = 0
        for path in sorted(reasons):
            count += 1
            if count > MAX_FINDINGS:
                continue
            ext = _under(path, external)
            entry = after.files.get(path)
            ctx.finding("uninstall-residue", "high",
                        f"{path} remains after uninstall and account deletion: {'; '.join(reasons[path])}"
                        + (" (external storage, 6.2.3 d)" if ext else ""),
                        interface="storage", path=path, evidence=evidence,
                        detail={"storage": "external" if ext else "internal", "reasons": reasons[path],
                                "size": entry.size if entry else None, "sha256": entry.sha256 if entry else None})
        if count > MAX_FINDINGS:
            ctx.finding("residue-truncated", "info", f"{count - MAX_FINDINGS} more residues are listed in residue.json and listing-after.tsv",
                        interface="storage", evidence=evidence)
        ctx.measure("residues", count)
        for dev, scan in raw.items():
            if scan is not None and scan.hits:
                ctx.finding("uninstall-residue", "high",
                            f"{dev} still holds the canary {scan.hits} time(s) in its raw blocks (first {scan.bytes_read} bytes read): "
                            "the data was deleted, not wiped",
                            interface="storage", path=dev, evidence=ctx.evidence_of("residue.json"),
                            detail={"storage": "raw-device", "reasons": ["raw blocks hold the canary"], "occurrences": scan.hits,
                                    "bytes_read": scan.bytes_read, "size": scan.size})
