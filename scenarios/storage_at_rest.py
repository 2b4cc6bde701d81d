"""storage-at-rest: what the device keeps on its storage is protected (T/AI 110.1-2020 6.2.3,
6.2.4 b 1, Annex A; the edge AI standard's protection of model files).

Five parts, each searched on the device in one SSH session
(:class:`drivers.storage.DeviceStorage`) and judged on the rig (:mod:`rig.atrest`):

1. **raw images and video** (level 1 and 2 only: Annex A): the first 16 bytes of every
   file under the data and external roots, matched against image and video formats by
   magic and header structure, never by name. Finding ``raw-image-at-rest`` per file;
2. **secrets in plaintext**: lines assigning a literal to a key that names a secret
   (``password=``, ``"api_key": …``) under the config, data and external roots, and private
   keys that load without a password. Findings ``plaintext-secret`` (path and line, the
   value masked) and ``private-key-in-clear``;
3. **password hashes** in ``storage.shadow_files`` and ``/etc/passwd``: empty, plain,
   DES-crypt and MD5-crypt fields. Findings ``empty-password`` (critical) and
   ``weak-password-hash``;
4. **declared encryption**: each file in ``storage.encrypted`` must be indistinguishable
   from random after its first 64 bytes. Finding ``declared-encryption-missing``;
5. **models** (``storage.models``): a model whose format shows or whose bytes are not random
   is ``model-in-clear``; with ``tamper_check`` and a ``model-load`` action, the model must
   load as it is, then a tampered copy (16 bytes overwritten in the middle; the original is
   kept beside it and put back, its SHA-256 checked) must be refused: ``model-tamper-accepted``.

Evidence: ``media.json``, ``secrets.json``, ``hashes.json``, ``encrypted.json``,
``models.json``. Secrets and hashes are never copied into the bundle: a masked view and the
hash scheme are.
"""

from __future__ import annotations

import fnmatch
import json

from drivers.errors import DeviceError
from drivers.storage import DeviceStorage
from rig import atrest
from rig.config import DeviceConfig, ModelFile
from rig.results import Verdict
from rig.scenario import Scenario, ScenarioContext, run_action

#: findings of one kind listed one by one, at most (the rest are counted in the JSON)
MAX_PER_KIND = 100
#: bytes read from a declared-encrypted file or a model for the randomness test
SAMPLE = 256 << 10
TAMPER_MARK = b"PRIVRIG-TAMPERED"


class StorageAtRest(Scenario):
    """The storage-at-rest scenario (see the module docstring for its parts)."""

    id = "storage-at-rest"
    title = "Data at rest: no raw images, no plaintext secrets, strong hashes, protected models"
    clauses = ("T/AI 110.1-2020 6.2.3", "T/AI 110.1-2020 6.2.4 b 1", "T/AI 110.1-2020 Annex A", "Edge AI group standard: model security (anti-tamper, anti-reverse)")

    def applies(self, device: DeviceConfig) -> str | None:
        if device.storage is None:
            return "no storage section: the rig does not know where the device keeps data"
        if device.ssh is None:
            return "no ssh transport: the storage searches run in the device's shell over SSH"
        return None

    def run(self, ctx: ScenarioContext) -> Verdict | None:
        st = ctx.device.storage
        assert st is not None
        storage = DeviceStorage(ctx.ssh(), st.search_timeout_s, st.max_files)
        data_roots = list(dict.fromkeys(st.data_roots + st.external_roots))
        errors = []
        for part in (self._media, self._secrets, self._hashes, self._encrypted, self._models):
            try:
                part(ctx, storage, data_roots)
            except DeviceError as exc:
                errors.append(exc.reason)
                ctx.finding("part-error", "info", f"{part.__name__.strip('_')}: {exc.reason}", interface="storage")
        ctx.measure("ssh_bytes", storage.bytes_moved)
        if any(f.severity != "info" for f in ctx.findings):
            return Verdict.FAIL
        if errors:
            return Verdict.ERROR
        return Verdict.PASS

    # -- 1 -------------------------------------------------------------------------------
    def _media(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Raw images and video at rest on level 1 and 2 devices."""
        if ctx.device.privacy_level == 3:
            ctx.finding("media-not-checked", "info", "privacy level 3: Annex A allows raw images at rest", interface="storage")
            return
        ignore = ctx.device.storage.ignore  # type: ignore[union-attr]
        heads = storage.heads(roots, 16)
        found = {p: kind for p, h in heads.items() if (kind := atrest.media_kind(h)) and not any(fnmatch.fnmatchcase(p, g) for g in ignore)}
        ctx.measure("files_examined", len(heads))
        ctx.artifact("media.json", json.dumps({"files_examined": len(heads), "media": [{"path": p, "format": k, "head": heads[p].hex()}
                                                                                      for p, k in sorted(found.items())]}, indent=1).encode(), "application/json")
        for i, (path, kind) in enumerate(sorted(found.items())):
            if i == MAX_PER_KIND:
                ctx.finding("media-truncated", "info", f"{len(found) - MAX_PER_KIND} more image and video files are listed in media.json", interface="storage")
                break
            ctx.finding("raw-image-at-rest", "high", f"{path} is a {kind} file in the clear on a level {ctx.device.privacy_level} device (Annex A: no raw images at rest)",
                        interface="storage", path=path, evidence=ctx.evidence_of("media.json"), detail={"format": kind})

    # -- 2 -------------------------------------------------------------------------------
    def _secrets(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Secrets assigned in the clear, and private keys that load without a password."""
        st = ctx.device.storage
        assert st is not None
        lines = storage.grep(list(dict.fromkeys(st.config_roots + roots)), atrest.SECRET_GREP)
        hits, keys_checked = [], {}
        for path, lineno, text in lines:
            hit = atrest.judge_secret_line(text)
            if hit is None or any(fnmatch.fnmatchcase(path, g) for g in st.ignore):
                continue
            if hit.kind == "private-key":
                if path not in keys_checked:
                    data = storage.read(path, 64 << 10)
                    keys_checked[path] = atrest.private_key_state(data) if data is not None else "unreadable"
                if keys_checked[path] != "unencrypted":
                    continue
            hits.append({"path": path, "line": lineno, "kind": hit.kind, "key": hit.key, "value": hit.masked})
        ctx.artifact("secrets.json", json.dumps({"lines_examined": len(lines), "private_keys": keys_checked, "secrets": hits}, indent=1).encode(),
                     "application/json")
        for i, h in enumerate(hits):
            if i == MAX_PER_KIND:
                ctx.finding("secrets-truncated", "info", f"{len(hits) - MAX_PER_KIND} more secrets are listed in secrets.json", interface="storage")
                break
            if h["kind"] == "private-key":
                ctx.finding("private-key-in-clear", "high", f"{h['path']} holds a private key that loads without a password",
                            interface="storage", path=h["path"], evidence=ctx.evidence_of("secrets.json"), detail={"line": h["line"]})
            else:
                ctx.finding("plaintext-secret", "high", f"{h['path']} line {h['line']}: {h['key']} is stored in the clear ({h['value']})",
                            interface="storage", path=h["path"], evidence=ctx.evidence_of("secrets.json"), detail={"line": h["line"], "key": h["key"]})

    # -- 3 -------------------------------------------------------------------------------
    def _hashes(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Empty, plain and weak password hashes in the shadow files and /etc/passwd."""
        st = ctx.device.storage
        assert st is not None
        rows = []
        for path in dict.fromkeys([*st.shadow_files, "/etc/passwd"]):
            data = storage.read(path, 256 << 10)
            if data is None:
                rows.append({"file": path, "missing": True})
                continue
            for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                parts = line.split(":")
                if len(parts) < 2 or not parts[0] or line.startswith("#"):
                    continue
                weakness = atrest.judge_password_field(parts[1])
                scheme = parts[1].split("$")[1] if parts[1].startswith("$") and parts[1].count("$") >= 2 else ("" if not parts[1] else parts[1][:1] if parts[1][0] in "!*x" else "?")
                rows.append({"file": path, "line": n, "user": parts[0], "scheme": scheme, "weakness": weakness})
        ctx.artifact("hashes.json", json.dumps({"accounts": rows}, indent=1).encode(), "application/json")
        for r in rows:
            if r.get("weakness") is None:
                continue
            if r["weakness"] == "empty":
                ctx.finding("empty-password", "critical", f"{r['file']}: account {r['user']} has an empty password field: it logs in without a password",
                            interface="storage", path=r["file"], evidence=ctx.evidence_of("hashes.json"), detail={"user": r["user"], "line": r["line"]})
            else:
                what = {"md5-crypt": "an MD5-crypt hash ($1$)", "des-crypt": "a DES-crypt hash", "not-a-hash": "a password that is not hashed",
                        "unknown-scheme": "a hash of an unknown scheme"}[r["weakness"]]
                ctx.finding("weak-password-hash", "high", f"{r['file']}: account {r['user']} has {what} (6.2.4 b 1)",
                            interface="storage", path=r["file"], evidence=ctx.evidence_of("hashes.json"),
                            detail={"user": r["user"], "line": r["line"], "weakness": r["weakness"]})

    # -- 4 -------------------------------------------------------------------------------
    def _encrypted(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Files the vendor declares encrypted must look random."""
        st = ctx.device.storage
        assert st is not None
        report = []
        for path in st.encrypted:
            data = storage.read(path, SAMPLE)
            if data is None:
                ctx.finding("declared-file-missing", "info", f"{path} (declared encrypted) is not on the device", interface="storage", path=path)
                report.append({"path": path, "missing": True})
                continue
            random, stats = atrest.looks_encrypted(data)
            report.append({"path": path, "bytes": len(data), "looks_random": random, "stats": stats.to_dict()})
            if random is False:
                why = ", ".join(s.name for s in stats.structure) or \
                    (f"byte histogram skewed (chi-square p={stats.chi2_p:.2g} at key period {stats.chi2_period})" if stats.nonuniform
                     else f"{stats.repeat_fraction:.1%} of 8-byte windows repeat")
                ctx.finding("declared-encryption-missing", "high", f"{path} is declared encrypted but its bytes are not random: {why}",
                            interface="storage", path=path, evidence=ctx.evidence_of("encrypted.json"))
            elif random is None:
                ctx.finding("encryption-undetermined", "info", f"{path}: {len(data)} bytes are too few to tell", interface="storage", path=path)
        ctx.artifact("encrypted.json", json.dumps({"files": report}, indent=1).encode(), "application/json")

    # -- 5 -------------------------------------------------------------------------------
    def _models(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Model files: stored encrypted, and refused by the device once tampered with."""
        st = ctx.device.storage
        assert st is not None
        report = []
        try:
            for m in st.models:
                report.append(self._model(ctx, storage, m))
        finally:
            ctx.artifact("models.json", json.dumps({"models": report}, indent=1).encode(), "application/json")

    def _model(self, ctx: ScenarioContext, storage: DeviceStorage, m: ModelFile) -> dict:
        evidence = ctx.evidence_of("models.json")
        data = storage.read(m.path, SAMPLE)
        if data is None:
            ctx.finding("model-missing", "info", f"{m.path} (a declared model) is not on the device", interface="storage", path=m.path)
            return {"path": m.path, "missing": True}
        fmt = atrest.model_format(data[:16])
        random, stats = atrest.looks_encrypted(data)
        entry: dict = {"path": m.path, "format": fmt, "looks_random": random, "stats": stats.to_dict()}
        if fmt or random is False:
            ctx.finding("model-in-clear", "high",
                        f"{m.path} is stored in the clear ({fmt + ' format' if fmt else 'its bytes are not random'}): it can be copied and reverse-engineered",
                        interface="storage", path=m.path, evidence=evidence, detail={"format": fmt})
        if not m.tamper_check:
            return entry
        if "model-load" not in ctx.device.actions:
            ctx.finding("tamper-not-checked", "info", f"{m.path}: no model-load action, so tampering cannot be tried", interface="storage", path=m.path)
            return entry
        info = storage.file_info(m.path)
        original = info.sha256 if info else None
        status, _ = run_action(ctx, "model-load", check=False, model=m.path)
        expect = ctx.device.actions["model-load"].expect_exit or 0
        entry["load_original_exit"] = status
        if status != expect:
            ctx.finding("tamper-inconclusive", "info", f"{m.path}: model-load fails (exit {status}) even on the untouched model: a refusal would prove nothing",
                        interface="storage", path=m.path)
            return entry
        size = info.size if info and info.size else len(data)
        offset = max(0, size // 2 - len(TAMPER_MARK) // 2)
        tampered = storage.tamper(m.path, offset, TAMPER_MARK)
        try:
            status, _ = run_action(ctx, "model-load", check=False, model=m.path)
        finally:
            restored = storage.restore(m.path)
        entry.update({"sha256": original, "tampered_sha256": tampered, "tamper_offset": offset, "load_tampered_exit": status, "restored_sha256": restored})
        if restored != original:
            raise DeviceError(f"{m.path} could not be restored after the tamper test (sha256 {restored} instead of {original}); "
                              f"the original is at {m.path}.privrig-orig if it still exists")
        if status == expect:
            ctx.finding("model-tamper-accepted", "high",
                        f"{m.path}: the device loaded the model with {len(TAMPER_MARK)} bytes overwritten at offset {offset}: no integrity check",
                        interface="storage", path=m.path, evidence=evidence, detail={"offset": offset, "exit": status})
        return entry
