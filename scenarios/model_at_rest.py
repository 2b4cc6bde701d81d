"""model-at-rest: the AI model files on the device cannot be read by standard tools
(T/AI 110.1-2020 6.2.4 a 5; the edge AI standard's anti-reverse model security).

Parts:

1. **parser** (a positive control): the rig's ONNX parser reads the rig's own reference
   model (``rig.modelfile.reference_model``). Without it, "no parser read the file" would
   prove nothing; every later "not readable" rests on this part.
2. **search**: every regular file under the search roots (``model.search_roots``, else the
   storage section's data, external and config roots, plus ``/opt`` and ``/usr/share``) is
   looked at by its first 16 bytes, not its name: ONNX (protobuf ModelProto), TensorFlow Lite
   (``TFL3``), ncnn (``7767517``), RKNN, GGUF, safetensors, HDF5, NumPy, PyTorch/TorchScript
   zips, OpenVINO IR (XML with a ``.bin`` beside it). Each candidate (``model.max_candidates``
   at most) is read (``model.max_read_mb``) and judged like a declared file. Observed only
   when the search reached everything.
3. **model <path>** per declared file (``model.files``, and ``storage.models``):
   read over SSH, hashed, and parsed. A framework parser that reads it: ``model-readable``
   (high), with format, version, opsets, producer, node and parameter counts and input shape.
   A known structure that the rig has no parser for, or a parse that fails on structured
   bytes: ``model-in-clear`` (high). No known structure and bytes that are structured (XOR,
   a proprietary packing): ``model-in-clear`` (medium). No known structure and bytes that pass
   channel-encryption's randomness tests: observed, protected. A file that is missing,
   unreadable or too short to judge: not observed.

The bundle keeps ``models.json``: per file its path, size, SHA-256, format, the parser's
summary or error and the randomness figures. Never the model.
"""

from __future__ import annotations

import fnmatch
import json
import os

from drivers.errors import DeviceError
from drivers.storage import DeviceStorage
from rig import atrest, modelfile
from rig.config import DeviceConfig
from rig.coverage import Part
from rig.scenario import Scenario, ScenarioContext
from scenarios.storage_at_rest import MODEL_CLAUSE

T = "T/AI 110.1-2020 "
#: searched besides the storage roots when the config names no search roots: where firmware keeps its assets
DEFAULT_EXTRA_ROOTS = ("/opt", "/usr/share")


def declared(device: DeviceConfig) -> list[str]:
    """The model files the config declares (``model.files``, then ``storage.models``), each once."""
    paths = list(device.model.files) if device.model else []
    if device.storage is not None:
        paths += [m.path for m in device.storage.models]
    return list(dict.fromkeys(paths))


def search_roots(device: DeviceConfig) -> list[str]:
    """Where the content search looks (see the module docstring)."""
    if device.model is not None and device.model.search_roots:
        return list(dict.fromkeys(device.model.search_roots))
    roots: list[str] = []
    if device.storage is not None:
        roots += device.storage.data_roots + device.storage.external_roots + device.storage.config_roots
    return list(dict.fromkeys([*roots, *DEFAULT_EXTRA_ROOTS]))


def candidates(heads: dict[str, bytes]) -> dict[str, str]:
    """The files of a listing (path -> first 16 bytes) whose content opens like a model:
    path -> format. An XML file counts only as OpenVINO's pair (a ``.bin`` beside it), a
    NumPy array only beside a model format's file, so configuration files are not read."""
    out: dict[str, str] = {}
    for path, head in heads.items():
        fmt = modelfile.recognise(head)
        if fmt is None:
            continue
        stem = os.path.splitext(path)[0]
        if fmt.startswith("XML") and stem + ".bin" not in heads:
            continue
        if fmt == "NumPy":
            continue  # an array is data, not a model; a model's weights in .npy come with a graph the search finds
        out[path] = fmt
    return out


class ModelAtRest(Scenario):
    """The model-at-rest scenario (see the module docstring for its parts)."""

    id = "model-at-rest"
    title = "AI model files cannot be read by standard tools"
    clauses = (T + "6.2.4 a 5", MODEL_CLAUSE)

    def applies(self, device: DeviceConfig) -> str | None:
        if device.model is None and not (device.storage and device.storage.models):
            return "no model section and no storage.models: the rig does not know the device runs a model"
        if device.ssh is None:
            return "no ssh transport: model files are read in the device's shell over SSH"
        return None

    def run(self, ctx: ScenarioContext) -> None:
        dev = ctx.device
        limit = (dev.model.max_read_mb if dev.model else 64) << 20
        roots = search_roots(dev)
        control = ctx.part("parser", "the rig's ONNX parser reads the rig's reference model (positive control)", control=True)
        search = ctx.part("search", f"every file under {', '.join(roots)} examined by content for model formats", interface="storage")
        for path in declared(dev):
            ctx.part(f"model {path}", f"{path}: no standard tool reads it", interface="storage", path=path)
        report: dict = {"search_roots": roots, "declared": declared(dev), "files": []}
        try:
            parser_ok = self._control(control)
            storage = DeviceStorage(ctx.ssh(), dev.storage.search_timeout_s if dev.storage else 300.0,
                                    dev.storage.max_files if dev.storage else 200_000)
            for path in declared(dev):
                part = ctx.coverage[f"model {path}"]
                try:
                    report["files"].append(self._judge(ctx, storage, path, limit, part, parser_ok, declared_file=True))
                except DeviceError as exc:
                    part.error(f"{path}: {exc.reason}", "part-error")
            try:
                self._search(ctx, storage, roots, limit, search, parser_ok, report)
            except DeviceError as exc:
                search.error(f"search: {exc.reason}", "part-error")
            ctx.measure("ssh_bytes", storage.bytes_moved)
        finally:
            ctx.artifact("models.json", json.dumps(report, indent=1).encode(), "application/json")

    @staticmethod
    def _control(part: Part) -> bool:
        """Parse the reference model with the same code the device's files get."""
        try:
            ref = modelfile.reference_model(seed=1)
            got = modelfile.parse(ref)
        except Exception as exc:  # noqa: BLE001 - an unusable parser is this part's result
            part.error(f"the ONNX parser failed on the rig's reference model: {type(exc).__name__}: {str(exc)[:200]}", "parser-broken")
            return False
        if not got.readable:
            part.error(f"the ONNX parser did not read the rig's reference model: {got.error}", "parser-broken")
            return False
        s = got.summary
        assert s is not None
        part.observed(f"{s.parser} read the reference model: {s.nodes} nodes, {s.parameters} parameters", parser=s.parser, nodes=s.nodes)
        return True

    def _search(self, ctx: ScenarioContext, storage: DeviceStorage, roots: list[str], limit: int, part: Part, parser_ok: bool,
                report: dict) -> None:
        heads = storage.heads(roots, 16)
        reach = storage.last_reach
        if not (ctx.device.model and ctx.device.model.search_roots):
            # /opt and /usr/share are looked in where they exist; a device without them is not "not reached"
            report["absent_default_roots"] = [r for r in reach.missing_roots if r in DEFAULT_EXTRA_ROOTS]
            reach.missing_roots = [r for r in reach.missing_roots if r not in DEFAULT_EXTRA_ROOTS]
        ignore = ctx.device.storage.ignore if ctx.device.storage else []
        found = {p: f for p, f in candidates(heads).items() if not any(fnmatch.fnmatchcase(p, g) for g in ignore)}
        already = set(declared(ctx.device))
        new = sorted(p for p in found if p not in already)
        cap = ctx.device.model.max_candidates if ctx.device.model else 32
        ctx.measure("files_examined", len(heads))
        ctx.measure("model_candidates", len(found))
        report["search"] = {"files_examined": len(heads), "candidates": dict(sorted(found.items())), "not_reached": reach.__dict__}
        for path in new[:cap]:
            report["files"].append(self._judge(ctx, storage, path, limit, None, parser_ok, declared_file=False))
        if len(new) > cap:
            report["search"]["not_judged"] = new[cap:]
        seen = {"files_examined": len(heads), "candidates": len(found), "judged": min(len(new), cap), "evidence": ctx.evidence_of("models.json")}
        if not reach.complete:
            part.unobserved(f"the search did not reach everything: {reach.describe()}", kind="not-reached", **seen)
        elif len(new) > cap:
            part.unobserved(f"{len(new)} model files found beyond the declared ones; {cap} judged (model.max_candidates), the rest listed in models.json",
                            kind="not-judged", **seen)
        else:
            part.observed(f"{len(heads)} files under {', '.join(roots)} examined by content: {len(found)} model file(s)", **seen)

    def _judge(self, ctx: ScenarioContext, storage: DeviceStorage, path: str, limit: int, part: Part | None, parser_ok: bool,
               declared_file: bool) -> dict:
        """Read, hash and parse one model file; record its finding and, for a declared file, its part."""
        evidence = ctx.evidence_of("models.json")
        got = storage.read(path, limit + 1)
        if not got.ok:
            if part is not None:
                part.unobserved(f"{path} (a declared model): {got.why}", kind="model-missing")
            return {"path": path, "not_read": got.state}
        data = got.data[:limit]
        whole = len(got.data) <= limit
        parsed = modelfile.parse(data) if whole else modelfile.Parsed(modelfile.recognise(data[:4096]), error=f"larger than the read limit of {limit >> 20} MiB: not parsed")
        random, stats = atrest.looks_encrypted(data)
        entry: dict = {"path": path, "declared": declared_file, "bytes_read": len(data), "whole": whole, "format": parsed.format,
                       "sha256": parsed.summary.sha256 if parsed.summary else None, "parsed": parsed.summary.to_dict() if parsed.summary else None,
                       "parse_error": parsed.error or None, "looks_random": random, "stats": stats.to_dict()}
        where = {"interface": "storage", "path": path, "evidence": evidence}
        if parsed.summary is not None:
            s = parsed.summary
            shape = "x".join(str(d) for d in s.inputs[0]["shape"]) if s.inputs else "?"
            ctx.finding("model-readable", "high",
                        f"{path}: {s.parser} reads this {s.format} model ({s.nodes} nodes, {s.parameters} parameters, input {shape}): "
                        "it can be copied and reverse-engineered", **where,
                        detail={"format": s.format, "version": s.version, "opsets": s.opsets, "producer": s.producer, "nodes": s.nodes,
                                "parameters": s.parameters, "inputs": s.inputs, "sha256": s.sha256, "declared": declared_file})
            if part is not None:
                part.observed(f"{len(data)} bytes read: {s.parser} parsed it", bytes=len(data), format=s.format)
            return entry
        if parsed.format is not None and random is not True:
            ctx.finding("model-in-clear", "high",
                        f"{path}: a {parsed.format} model in the clear ({parsed.error}); its structure shows and its bytes are not random",
                        **where, detail={"format": parsed.format, "declared": declared_file})
            if part is not None:
                part.observed(f"{len(data)} bytes read: {parsed.format} structure, not random", bytes=len(data), format=parsed.format)
            return entry
        if not declared_file:
            # a search hit whose body is random after a model header: a clear header before ciphertext; nothing to report
            return entry
        assert part is not None
        if random is None:
            part.unobserved(f"{path}: {len(data)} bytes are too few to tell whether it is encrypted", kind="encryption-undetermined", bytes=len(data))
        elif random is False:
            ctx.finding("model-in-clear", "medium",
                        f"{path}: no standard parser reads it, but its bytes are structured, not ciphertext (XOR, a packing or a proprietary format)",
                        **where, detail={"format": None, "declared": True})
            part.observed(f"{len(data)} bytes read: no known model structure, bytes structured", bytes=len(data))
        elif not parser_ok:
            part.unobserved(f"{path}: its bytes look random, but the parser control failed: that no parser read it proves nothing",
                            kind="parser-broken", bytes=len(data))
        else:
            part.observed(f"{len(data)} bytes read: {parsed.format + ' header, ' if parsed.format else ''}no parser reads it, "
                          "indistinguishable from random", bytes=len(data), format=parsed.format)
        return entry
