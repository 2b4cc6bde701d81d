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

Each part is a part of the record (:mod:`rig.coverage`): ``media``, ``secrets``, ``hashes``,
``encrypted <path>`` per declared file, ``model <path>`` and ``tamper <path>`` per model. A part
is observed only when its search reached everything it was asked to: a root that does not
exist, a folder or file the device would not let the SSH user read, a declared file or model
that is not there, too few bytes to judge, or a model whose untouched copy does not load
(the tamper refusal would prove nothing) leave it not observed, saying which.

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
from rig.coverage import Part
from rig.scenario import Scenario, ScenarioContext, Unconfigured, run_action

T = "T/AI 110.1-2020 "
MODEL_CLAUSE = "Edge AI group standard: model security (anti-tamper, anti-reverse)"


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

    def unconfigured(self, device: DeviceConfig) -> list[Unconfigured]:
        """A model declared with ``tamper_check`` needs a ``model-load`` action to be tried."""
        if device.storage is None or "model-load" in device.actions:
            return []
        return [Unconfigured(f"tamper {m.path}", "no model-load action", f"add a model-load action so {m.path} can be loaded untouched and tampered")
                for m in device.storage.models if m.tamper_check]

    def run(self, ctx: ScenarioContext) -> None:
        st = ctx.device.storage
        assert st is not None
        data_roots = list(dict.fromkeys(st.data_roots + st.external_roots))
        media = ctx.part("media", f"every file under {', '.join(data_roots)}: no raw image or video (level 1 and 2)", clauses=(T + "Annex A",),
                         interface="storage")
        secrets_part = ctx.part("secrets", "config, data and external roots: no secret assigned in the clear, no private key that loads without a password",
                                clauses=(T + "6.2.3", T + "6.2.4 b 1"), interface="storage")
        hashes = ctx.part("hashes", f"{', '.join(dict.fromkeys([*st.shadow_files, '/etc/passwd']))}: strong password hashes, none empty",
                          clauses=(T + "6.2.4 b 1",), interface="storage")
        for path in st.encrypted:
            ctx.part(f"encrypted {path}", f"{path}: declared encrypted, its bytes look random", clauses=(T + "6.2.3",), interface="storage", path=path)
        for m in st.models:
            ctx.part(f"model {m.path}", f"{m.path}: not stored in the clear", clauses=(MODEL_CLAUSE,), interface="storage", path=m.path)
            if m.tamper_check:
                ctx.part(f"tamper {m.path}", f"{m.path}: loads untouched, refused once 16 bytes are changed", clauses=(MODEL_CLAUSE,),
                         kind="tamper-inconclusive", interface="storage", path=m.path)
        storage = DeviceStorage(ctx.ssh(), st.search_timeout_s, st.max_files)
        for part, run in ((media, self._media), (secrets_part, self._secrets), (hashes, self._hashes), (None, self._encrypted), (None, self._models)):
            try:
                run(ctx, storage, data_roots)
            except DeviceError as exc:
                owned = [part] if part is not None else [p for p in ctx.coverage if p.name.startswith(("encrypted ", "model ", "tamper ")) and not p.done]
                for p in owned:
                    if not p.done:
                        p.error(f"{run.__name__.strip('_')}: {exc.reason}", "part-error")
        ctx.measure("ssh_bytes", storage.bytes_moved)

    # -- 1 -------------------------------------------------------------------------------
    def _media(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Raw images and video at rest on level 1 and 2 devices."""
        part = ctx.coverage["media"]
        if ctx.device.privacy_level == 3:
            part.not_applicable("privacy level 3: Annex A allows raw images at rest")
            return
        ignore = ctx.device.storage.ignore  # type: ignore[union-attr]
        heads = storage.heads(roots, 16)
        reach = storage.last_reach
        found = {p: kind for p, h in heads.items() if (kind := atrest.media_kind(h)) and not any(fnmatch.fnmatchcase(p, g) for g in ignore)}
        ctx.measure("files_examined", len(heads))
        ctx.artifact("media.json", json.dumps({"files_examined": len(heads), "not_reached": reach.__dict__,
                                               "media": [{"path": p, "format": k, "head": heads[p].hex()} for p, k in sorted(found.items())]},
                                              indent=1).encode(), "application/json")
        for i, (path, kind) in enumerate(sorted(found.items())):
            if i == MAX_PER_KIND:
                ctx.finding("media-truncated", "info", f"{len(found) - MAX_PER_KIND} more image and video files are listed in media.json", interface="storage")
                break
            ctx.finding("raw-image-at-rest", "high", f"{path} is a {kind} file in the clear on a level {ctx.device.privacy_level} device (Annex A: no raw images at rest)",
                        interface="storage", path=path, evidence=ctx.evidence_of("media.json"), detail={"format": kind})
        seen = {"files_examined": len(heads), "media": len(found), "evidence": ctx.evidence_of("media.json")}
        if not reach.complete:
            part.unobserved(f"the search did not reach everything: {reach.describe()}", kind="not-reached", **seen)
        else:
            part.observed(f"{len(heads)} files under {', '.join(roots)} examined by their first 16 bytes", **seen)

    # -- 2 -------------------------------------------------------------------------------
    def _secrets(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Secrets assigned in the clear, and private keys that load without a password."""
        st = ctx.device.storage
        assert st is not None
        searched = list(dict.fromkeys(st.config_roots + roots))
        lines = storage.grep(searched, atrest.SECRET_GREP)
        reach = storage.last_reach
        hits, keys_checked = [], {}
        for path, lineno, text in lines:
            hit = atrest.judge_secret_line(text)
            if hit is None or any(fnmatch.fnmatchcase(path, g) for g in st.ignore):
                continue
            if hit.kind == "private-key":
                if path not in keys_checked:
                    got = storage.read(path, 64 << 10)
                    keys_checked[path] = atrest.private_key_state(got.data) if got.ok else got.state
                    if not got.ok:
                        reach.unreadable.append(path)
                if keys_checked[path] != "unencrypted":
                    continue
            hits.append({"path": path, "line": lineno, "kind": hit.kind, "key": hit.key, "value": hit.masked, "value_sha256": hit.sha256,
                         "length": hit.length})
        ctx.artifact("secrets.json", json.dumps({"lines_examined": len(lines), "not_reached": reach.__dict__, "private_keys": keys_checked,
                                                 "secrets": hits}, indent=1).encode(), "application/json")
        part = ctx.coverage["secrets"]
        seen = {"lines_examined": len(lines), "private_keys": len(keys_checked), "secrets": len(hits), "evidence": ctx.evidence_of("secrets.json")}
        if not reach.complete:
            part.unobserved(f"the search did not reach everything: {reach.describe()}", kind="not-reached", **seen)
        else:
            part.observed(f"files under {', '.join(searched)} searched: {len(lines)} candidate line(s), {len(keys_checked)} private key file(s) loaded", **seen)
        for i, h in enumerate(hits):
            if i == MAX_PER_KIND:
                ctx.finding("secrets-truncated", "info", f"{len(hits) - MAX_PER_KIND} more secrets are listed in secrets.json", interface="storage")
                break
            if h["kind"] == "private-key":
                ctx.finding("private-key-in-clear", "high", f"{h['path']} holds a private key that loads without a password",
                            interface="storage", path=h["path"], evidence=ctx.evidence_of("secrets.json"), detail={"line": h["line"]})
            else:
                ctx.finding("plaintext-secret", "high", f"{h['path']} line {h['line']}: {h['key']} is stored in the clear ({h['value']})",
                            interface="storage", path=h["path"], evidence=ctx.evidence_of("secrets.json"),
                            detail={"line": h["line"], "key": h["key"], "value_sha256": h["value_sha256"], "length": h["length"]})

    # -- 3 -------------------------------------------------------------------------------
    def _hashes(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str]) -> None:
        """Empty, plain and weak password hashes in the shadow files and /etc/passwd."""
        st = ctx.device.storage
        assert st is not None
        rows = []
        not_read = []
        for path in dict.fromkeys([*st.shadow_files, "/etc/passwd"]):
            got = storage.read(path, 256 << 10)
            if not got.ok:
                rows.append({"file": path, "not_read": got.state})
                not_read.append(f"{path}: {got.why}")
                continue
            for n, line in enumerate(got.data.decode("utf-8", errors="replace").splitlines(), 1):
                parts = line.split(":")
                if len(parts) < 2 or not parts[0] or line.startswith("#"):
                    continue
                weakness = atrest.judge_password_field(parts[1])
                scheme = parts[1].split("$")[1] if parts[1].startswith("$") and parts[1].count("$") >= 2 else ("" if not parts[1] else parts[1][:1] if parts[1][0] in "!*x" else "?")
                rows.append({"file": path, "line": n, "user": parts[0], "scheme": scheme, "weakness": weakness})
        ctx.artifact("hashes.json", json.dumps({"accounts": rows}, indent=1).encode(), "application/json")
        accounts = [r for r in rows if "user" in r]
        part = ctx.coverage["hashes"]
        if not_read:
            part.unobserved("; ".join(not_read) + (" (configure storage.shadow_files to where this device keeps its hashes)"
                                                  if any("does not exist" in n for n in not_read) else ""),
                            kind="not-reached", accounts=len(accounts), evidence=ctx.evidence_of("hashes.json"))
        elif not accounts:
            part.unobserved("no account line was found in the password files", kind="not-reached", evidence=ctx.evidence_of("hashes.json"))
        else:
            part.observed(f"{len(accounts)} account line(s) judged", accounts=len(accounts), evidence=ctx.evidence_of("hashes.json"))
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
            part = ctx.coverage[f"encrypted {path}"]
            got = storage.read(path, SAMPLE)
            if not got.ok:
                part.unobserved(f"{path} (declared encrypted): {got.why}", kind="declared-file-missing")
                report.append({"path": path, "not_read": got.state})
                continue
            data = got.data
            random, stats = atrest.looks_encrypted(data)
            report.append({"path": path, "bytes": len(data), "looks_random": random, "stats": stats.to_dict()})
            if random is False:
                why = ", ".join(s.name for s in stats.structure) or \
                    (f"byte histogram skewed (chi-square p={stats.chi2_p:.2g} at key period {stats.chi2_period})" if stats.nonuniform
                     else f"{stats.repeat_fraction:.1%} of 8-byte windows repeat")
                ctx.finding("declared-encryption-missing", "high", f"{path} is declared encrypted but its bytes are not random: {why}",
                            interface="storage", path=path, evidence=ctx.evidence_of("encrypted.json"))
                part.observed(f"{len(data)} bytes read: not random ({why})", bytes=len(data))
            elif random is None:
                part.unobserved(f"{path}: {len(data)} bytes are too few to tell", kind="encryption-undetermined", bytes=len(data))
            else:
                part.observed(f"{len(data)} bytes read after the first 64: indistinguishable from random", bytes=len(data),
                              evidence=ctx.evidence_of("encrypted.json"))
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
        part = ctx.coverage[f"model {m.path}"]
        tamper: Part | None = ctx.coverage[f"tamper {m.path}"] if m.tamper_check else None
        got = storage.read(m.path, SAMPLE)
        if not got.ok:
            part.unobserved(f"{m.path} (a declared model): {got.why}", kind="model-missing")
            if tamper is not None:
                tamper.unobserved(f"{m.path}: {got.why}")
            return {"path": m.path, "not_read": got.state}
        data = got.data
        fmt = atrest.model_format(data[:16])
        random, stats = atrest.looks_encrypted(data)
        entry: dict = {"path": m.path, "format": fmt, "looks_random": random, "stats": stats.to_dict()}
        if fmt or random is False:
            ctx.finding("model-in-clear", "high",
                        f"{m.path} is stored in the clear ({fmt + ' format' if fmt else 'its bytes are not random'}): it can be copied and reverse-engineered",
                        interface="storage", path=m.path, evidence=evidence, detail={"format": fmt})
            part.observed(f"{len(data)} bytes read: {fmt + ' format' if fmt else 'not random'}", bytes=len(data), format=fmt)
        elif random is None:
            part.unobserved(f"{m.path}: {len(data)} bytes are too few to tell whether it is encrypted", kind="encryption-undetermined", bytes=len(data))
        else:
            part.observed(f"{len(data)} bytes read: no model format, indistinguishable from random", bytes=len(data))
        if tamper is None:
            return entry
        if "model-load" not in ctx.device.actions:
            tamper.not_configured("no model-load action", f"{m.path}: add a model-load action ({{model}} is the path) so the rig can "
                                  "load it untouched and then with 16 bytes changed")
            return entry
        info = storage.file_info(m.path)
        original = info.sha256 if info else None
        status, _ = run_action(ctx, "model-load", check=False, model=m.path)
        expect = ctx.device.actions["model-load"].expect_exit or 0
        entry["load_original_exit"] = status
        if status != expect:
            tamper.unobserved(f"{m.path}: model-load fails (exit {status}) even on the untouched model: a refusal would prove nothing")
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
        tamper.observed(f"untouched model loaded (exit {entry['load_original_exit']}); tampered copy {'loaded' if status == expect else 'refused'} "
                        f"(exit {status}); original restored (sha256 checked)", load_original_exit=entry["load_original_exit"], load_tampered_exit=status,
                        evidence=evidence)
        return entry
