"""Reproduction: a bundle holds what is needed to run its checks again with the same inputs.

``rig rerun BUNDLE`` reads, from a bundle that verifies (or is incomplete but untampered)
and is signed by this bench's key or by the key given with ``--pubkey`` (a rerun runs the
bundle's config, ``via: host`` actions included, on this bench host: a bundle signed by a key
nobody here pinned is refused):

* the config as run (``devices/_run/config/config.yaml``; passwords never sit in it, they
  come from the environment), checked against the ``config_sha256`` the results carry, with
  relative paths resolved against the original config's folder as the run did;
* the devices and scenarios that ran, narrowed by ``--device`` / ``--scenario``;
* every input a scenario drew (``measurements.inputs``: canary tokens, seeds), checked by the
  scenario (:meth:`rig.scenario.Scenario.replay_inputs`) before anything runs, and handed to
  the same scenario on the same device so it uses them again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rig.config import ConfigError, LoadedConfig, parse_config
from rig.verify import INCOMPLETE, UNTRUSTED, VERIFIED, verify_bundle

CONFIG_SNAPSHOT = "devices/_run/config/config.yaml"


class RerunError(Exception):
    """The bundle cannot be replayed (the message says why, naming the file)."""


@dataclass
class RerunSource:
    """What a bundle says about the run it records."""

    run_id: str
    config: LoadedConfig
    devices: list[str]
    scenarios: list[str]
    inputs: dict[str, dict[str, dict]] = field(default_factory=dict)  # device -> scenario -> inputs


def load_rerun(bundle: Path, pinned_key: Ed25519PublicKey | None = None) -> RerunSource:
    """Read ``bundle`` for a replay; raises :class:`RerunError` if it is not a bundle, fails
    verification, is signed by neither this bench's key nor ``pinned_key``, its config snapshot
    does not match its results, or an input it would replay is not one its scenario draws."""
    report = verify_bundle(bundle, pinned_key)
    if report.status not in (VERIFIED, INCOMPLETE, UNTRUSTED):
        raise RerunError(f"{bundle}: bundle is {report.status}" + (f" ({report.problems[0]})" if report.problems else "")
                         + ": its inputs cannot be trusted")
    if report.key_trust not in ("this-bench", "pinned", "trusted"):
        raise RerunError(f"{bundle}: signed by {report.key_fingerprint}, which is neither this bench's key nor one given with --pubkey: "
                         "or added with `rig keys trust`: a rerun runs the bundle's config (host actions included) here, so it replays only bundles it can trust")
    try:
        results = json.loads((bundle / "results.json").read_text())
    except (OSError, ValueError) as exc:
        raise RerunError(f"{bundle / 'results.json'}: cannot read: {exc}") from None
    snap = bundle / CONFIG_SNAPSHOT
    try:
        text = snap.read_text()
    except OSError as exc:
        raise RerunError(f"{snap}: cannot read the config snapshot: {exc.strerror or exc}") from None
    if hashlib.sha256(text.encode()).hexdigest() != results.get("config_sha256"):
        raise RerunError(f"{snap}: does not match the config_sha256 in results.json")
    origin = _original_config_path(bundle) or snap
    try:
        config = parse_config(text, origin)
    except ConfigError as exc:
        raise RerunError(f"{snap}: the config as run no longer validates: {exc.problems[0]}") from None
    devices, scenarios, inputs = [], [], {}
    for d in results.get("devices", []):
        devices.append(d["name"])
        for s in d.get("scenarios", []):
            if s["id"] not in scenarios:
                scenarios.append(s["id"])
            drawn = (s.get("measurements") or {}).get("inputs")
            if drawn is None or drawn == {}:
                continue
            from scenarios import REGISTRY

            if not isinstance(drawn, dict) or s["id"] not in REGISTRY:
                raise RerunError(f"{bundle / 'results.json'}: {d['name']}/{s['id']}: inputs that cannot be replayed")
            try:
                inputs.setdefault(d["name"], {})[s["id"]] = REGISTRY[s["id"]].replay_inputs(drawn)
            except ValueError as exc:
                raise RerunError(f"{bundle / 'results.json'}: {d['name']}/{s['id']}: {exc}") from None
    return RerunSource(results.get("run_id", bundle.name), config, devices, scenarios, inputs)


def _original_config_path(bundle: Path) -> Path | None:
    """Where the run read its config (the journal's run-start), so relative paths resolve as they did."""
    try:
        with (bundle / "journal.jsonl").open() as fh:
            first = json.loads(fh.readline())
    except (OSError, ValueError):
        return None
    if first.get("event") != "run-start":
        return None
    if first.get("config_abs"):
        return Path(first["config_abs"])
    return Path(first["config"]).resolve() if first.get("config") else None


def narrow(source: RerunSource, devices: list[str], scenarios: list[str]) -> tuple[list[str], list[str]]:
    """The bundle's selection narrowed to ``devices`` and ``scenarios`` (empty: all of it);
    raises :class:`RerunError` naming one the bundle did not run."""
    for d in devices:
        if d not in source.devices:
            raise RerunError(f"--device {d}: not in run {source.run_id} (devices: {', '.join(source.devices)})")
    for s in scenarios:
        if s not in source.scenarios:
            raise RerunError(f"--scenario {s}: not in run {source.run_id} (scenarios: {', '.join(source.scenarios)})")
    return (devices or source.devices), (scenarios or source.scenarios)
