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
"""

from __future__ import annotations

import fnmatch
import json
import secrets

from drivers.storage import DeviceStorage, Listing, TokenHits
from rig.config import DeviceConfig
from rig.results import Verdict
from rig.scenario import Scenario, ScenarioContext, run_action

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

    def run(self, ctx: ScenarioContext) -> Verdict | None:
        st = ctx.device.storage
        assert st is not None
        roots = list(dict.fromkeys(st.data_roots + st.external_roots))
        storage = DeviceStorage(ctx.ssh(), st.search_timeout_s, st.max_files)
        token = ctx.inputs.get("canary") or new_token()
        ctx.inputs["canary"] = token
        carried = [a for a in POPULATE if a in ctx.device.actions and "{token}" in (ctx.device.actions[a].command or " ".join(ctx.device.actions[a].argv or []))]
        ctx.artifact("canary.json", json.dumps({"token": token, "carried_by": carried, "roots": roots,
                                                "raw_devices": st.raw_devices}, indent=1).encode(), "application/json")

        def snap(phase: str) -> Listing:
            listing = storage.snapshot(roots)
            ctx.artifact(f"listing-{phase}.tsv", listing.to_tsv(), "text/tab-separated-values")
            ctx.step(f"{phase} listing", files=len(listing.files), missing_roots=listing.missing_roots, truncated=listing.truncated)
            return listing

        baseline = snap("baseline")
        for root in baseline.missing_roots:
            ctx.finding("root-missing", "info", f"{root} does not exist on the device: nothing there was searched", interface="storage", path=root)
        for action in POPULATE:
            if action in ctx.device.actions:
                run_action(ctx, action, token=token)
        populated = snap("populated")
        placed = storage.find_token(roots, token, known=set(populated.files))
        created = sorted(set(populated.files) - set(baseline.files))
        ctx.measure("created_files", len(created))
        ctx.measure("canary_placed", sorted(placed.paths)[:MAX_FINDINGS])
        try:
            for action in REMOVE:
                if action in ctx.device.actions:
                    run_action(ctx, action, token=token)
        finally:
            after = snap("after")
            left = storage.find_token(roots, token, known=set(after.files))
            raw = {dev: storage.scan_raw(dev, token, st.raw_scan_mb << 20) for dev in st.raw_devices}
            ctx.measure("ssh_bytes", storage.bytes_moved)
            ctx.artifact("residue.json", json.dumps({"token": token, "created": created, "placed": sorted(placed.paths),
                                                     "token_after": {"names": left.names, "contents": left.contents}, "raw_devices": raw},
                                                    indent=1).encode(), "application/json")
        self._findings(ctx, st.external_roots, st.ignore, baseline, after, left, raw)
        if carried and not placed.paths:
            ctx.finding("canary-not-stored", "info",
                        f"the canary given to {', '.join(carried)} was found nowhere under {', '.join(roots)} before the wipe: "
                        "the check cannot show that data is wiped", interface="storage")
            return Verdict.FAIL if any(f.severity != "info" for f in ctx.findings) else Verdict.INCONCLUSIVE
        if not carried:
            ctx.finding("no-canary-action", "info", "no action carries {token}: residue is judged by the file listings alone", interface="storage")
        if any(f.severity != "info" for f in ctx.findings):
            return Verdict.FAIL
        if baseline.truncated or after.truncated:
            ctx.finding("listing-truncated", "info", f"a listing reached storage.max_files ({ctx.device.storage.max_files}): files beyond it were not compared",  # type: ignore[union-attr]
                        interface="storage")
            return Verdict.INCONCLUSIVE
        return Verdict.PASS

    def _findings(self, ctx: ScenarioContext, external: list[str], ignore: list[str], baseline: Listing, after: Listing,
                  left: TokenHits, raw: dict[str, int | None]) -> None:
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
        for dev, hits in raw.items():
            if hits is None:
                ctx.finding("raw-device-unreadable", "info", f"{dev} could not be read: its raw blocks were not searched", interface="storage", path=dev)
            elif hits:
                ctx.finding("uninstall-residue", "high",
                            f"{dev} still holds the canary {hits} time(s) in its raw blocks: the data was deleted, not wiped",
                            interface="storage", path=dev, evidence=ctx.evidence_of("residue.json"),
                            detail={"storage": "raw-device", "reasons": ["raw blocks hold the canary"], "occurrences": hits})
