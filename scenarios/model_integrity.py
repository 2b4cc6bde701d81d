"""model-integrity: the device runs only the vendor's genuine model; a tampered or re-signed model
is refused, and the genuine one is taken (T/AI 110.1-2020 6.2.4 a 5, a 1; the edge AI group
standard's model security, anti-tamper).

The vendor's genuine model (``model.genuine``, ONNX, with its signature where
``model.signature`` says) stays on the bench host. From it the rig derives variants
(:mod:`rig.modelvariants`: trojaned, a flipped bit, truncated, and re-signed with the rig's own
key where the signature format is given) and hands each to the device with the
``model-deploy`` action (``{model}``: via ssh the path the rig uploaded it to over SFTP, via
host a bench-host file; ``{signature}``: its detached signature, if any).

Which model runs is decided by what the model answers, not by the action's exit status: the
probe images (the lab's ``model.probes``, or images the rig renders) go to the device's model
through ``model.infer`` before anything is deployed (the baseline: the genuine model's
answers, which must differ from probe to probe so that a model answering the same for every
image shows), after each variant, and after the genuine model is deployed last. A variant
whose answers differ from the baseline runs: ``tampered-model-accepted`` (critical), naming
the variant and the probes whose answer changed. So does a variant the action took (exit
status as expected) after which the model no longer answers. A variant refused by the action
with the answers unchanged is refused. Where ``identify`` reports the running model's hash
(a ``model_sha256=`` line), that is recorded and a variant's hash there is "runs" too.

After a variant the action took, the genuine model is deployed again and the baseline must
come back before the next variant (else the rest is not observed). The genuine model deployed
last must be taken and answer as the baseline did: the positive control (a device that refuses
the genuine model too cannot be told from a broken action: ``inconclusive``).

Evidence: ``variants.json`` (each variant's SHA-256, size and the output change the rig
measured locally with onnxruntime), ``answers.json`` (every probe's answer at each step), the
queries' transcript ``infer.jsonl``; never the models.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from pathlib import Path

from drivers.errors import DeviceError
from drivers.infer import Answer
from rig.config import DeviceConfig
from rig.coverage import Part
from rig.inference import Inference, NoAnswer
from rig.modelvariants import ModelVariant, NotAModel, variants
from rig.scenario import Scenario, ScenarioContext, hand_over, run_action
from rig.vision import probes as probeset

#: two scores closer than this are the same answer (devices round; a model is deterministic)
SCORE_TOLERANCE = 2e-3


def same(a: Answer, b: Answer) -> bool:
    """The two answers are the same: one label, and scores (where both give them) within
    :data:`SCORE_TOLERANCE`."""
    if a.label != b.label:
        return False
    if a.score is not None and b.score is not None and abs(a.score - b.score) > SCORE_TOLERANCE:
        return False
    if a.scores is not None and b.scores is not None:
        if len(a.scores) != len(b.scores) or any(abs(x - y) > SCORE_TOLERANCE for x, y in zip(a.scores, b.scores)):
            return False
    return True


def _fingerprint(a: Answer) -> tuple:
    return (a.label, None if a.score is None else round(a.score, 2), None if a.scores is None else tuple(round(x, 2) for x in a.scores))


def running_model(ctx: ScenarioContext) -> str | None:
    """The SHA-256 of the running model as ``identify`` reports it (``model_sha256=`` line), or
    None when there is no identify action or it reports none. Never raises."""
    if "identify" not in ctx.device.actions:
        return None
    try:
        _, out = run_action(ctx, "identify", check=False)
    except DeviceError:
        return None
    for line in out.splitlines()[:200]:
        k, sep, v = line.partition("=")
        if sep and k.strip().lower() == "model_sha256":
            v = v.strip().lower()
            return v if len(v) == 64 and all(c in "0123456789abcdef" for c in v) else None
    return None


class ModelIntegrity(Scenario):
    id = "model-integrity"
    title = "Only the vendor's genuine model runs: tampered and re-signed models are refused"
    clauses = ("T/AI 110.1-2020 6.2.4 a 5", "T/AI 110.1-2020 6.2.4 a 1")

    def applies(self, device: DeviceConfig) -> str | None:
        m = device.model
        if m is None or m.genuine is None:
            return "no model.genuine: the vendor's genuine model is needed to derive the tampered variants"
        if "model-deploy" not in device.actions:
            return "no model-deploy action: the rig cannot hand the device a model"
        if m.infer is None:
            return "no model.infer: which model runs is told by its answers to the probe images"
        return None

    def run(self, ctx: ScenarioContext) -> None:
        m = ctx.device.model
        assert m is not None and m.genuine is not None and m.infer is not None
        probes_part = ctx.part("probes", "the genuine model answers every probe image, and not all alike", control=True, kind="model-probes")
        try:
            size = m.genuine.stat().st_size
            if size > m.max_mb << 20:
                probes_part.error(f"model.genuine: {m.genuine}: {size} bytes, larger than model.max_mb ({m.max_mb} MiB)", "model-genuine")
                return
            genuine = m.genuine.read_bytes()
            detached = m.signature.detached.read_bytes()[:65536] if m.signature and m.signature.detached else None
        except OSError as exc:
            probes_part.error(f"model.genuine cannot be read: {exc.strerror or exc}", "model-genuine")
            return
        try:
            planned = variants(genuine, m.signature, detached)
        except NotAModel as exc:
            probes_part.error(f"model.genuine: {m.genuine}: {exc}", "model-genuine")
            return
        try:
            probes = probeset.from_folder(m.probes) if m.probes else probeset.rendered(fmt=".png" if m.infer.content_type == "image/png" else ".jpg")
        except probeset.ProbeError as exc:
            probes_part.error(str(exc), "model-probes")
            return
        parts = {v.name: ctx.part(f"variant {v.name}", f"{v.description}: not run (its answers never seen)", kind="model-variant") for v in planned}
        genuine_part = ctx.part("genuine", "the genuine model is taken and answers as before", control=True, kind="model-genuine")
        ctx.artifact("variants.json", json.dumps({"genuine": ModelVariant("genuine", "as the vendor gave it", genuine).record(),
                                                  "variants": [v.record() for v in planned],
                                                  "probes": [{"name": p.name, "bytes": len(p.data)} for p in probes]}, indent=1).encode(),
                     "application/json")
        try:
            inf = Inference(ctx, m.infer, m.upload_dir)
        except NoAnswer as exc:
            probes_part.error(exc.reason, "model-infer")
            return
        answers: dict[str, dict] = {}
        try:
            self._run(ctx, inf, genuine, detached, planned, probes, probes_part, parts, genuine_part, answers)
        finally:
            inf.close()
            ctx.artifact("answers.json", json.dumps(answers, indent=1).encode(), "application/json")
            ctx.measure("infer_queries", inf.stats.queries)
            ctx.measure("infer_seconds", round(inf.stats.seconds, 3))

    def _look(self, inf: Inference, probes: list, step: str, answers: dict) -> list[Answer]:
        """Every probe's answer now (raises :class:`NoAnswer` at the first probe not answered)."""
        got = []
        answers[step] = {}
        for p in probes:
            a = inf.ask(p.data, p.name)
            answers[step][p.name] = a.to_dict()
            got.append(a)
        return got

    def _run(self, ctx: ScenarioContext, inf: Inference, genuine: bytes, detached: bytes | None, planned: list[ModelVariant],
             probes: list, probes_part: Part, parts: dict[str, Part], genuine_part: Part, answers: dict) -> None:
        m = ctx.device.model
        assert m is not None
        evidence = ctx.evidence_of("variants.json", "answers.json", "infer.jsonl")
        try:
            baseline = self._look(inf, probes, "baseline", answers)
        except NoAnswer as exc:
            probes_part.unobserved(f"the model did not answer the probe images ({exc.kind}): {exc.reason}", evidence=evidence, answer=exc.kind)
            self._rest_unobserved(planned, parts, "no baseline: the model did not answer the probe images")
            genuine_part.unobserved("no baseline: the model did not answer the probe images")
            return
        distinct = len({_fingerprint(a) for a in baseline})
        ctx.measure("probe_answers_distinct", distinct)
        if distinct < 2:
            probes_part.unobserved(f"the genuine model gives the same answer ({baseline[0].label!r}) to all {len(probes)} probes: a tampered "
                                   "model answering alike would not show (give model.probes with images of different classes)",
                                   evidence=evidence, probes=len(probes))
            self._rest_unobserved(planned, parts, "the baseline answers do not vary: a tampered model could not be told")
            genuine_part.unobserved("the baseline answers do not vary")
            return
        probes_part.observed(f"{len(probes)} probes answered by {inf.describe()}: {distinct} different answers "
                             f"(labels {', '.join(sorted({a.label for a in baseline})[:6])})", evidence=evidence, probes=len(probes))
        genuine_v = ModelVariant("genuine", "the genuine model", genuine, detached)
        ok_exit = ctx.device.actions["model-deploy"].expect_exit
        ok_exit = 0 if ok_exit is None else ok_exit
        base_hash = running_model(ctx)
        if base_hash is not None:
            ctx.measure("model_sha256_before", base_hash)
        results = []
        with tempfile.TemporaryDirectory(prefix="privrig-model-") as work:
            for i, v in enumerate(planned):
                rec = self._deploy(ctx, v, Path(work))
                results.append(rec)
                part = parts[v.name]
                if "error" in rec:
                    part.error(rec["error"], "model-deploy")
                    self._rest_unobserved(planned[i + 1:], parts, "the device did not take the deploy step")
                    break
                after_hash = running_model(ctx)
                try:
                    now = self._look(inf, probes, v.name, answers)
                    gone = None
                except NoAnswer as exc:
                    now, gone = [], exc
                changed = [(p.name, b.label, a.label) for p, b, a in zip(probes, baseline, now) if not same(a, b)]
                runs_by_hash = after_hash is not None and after_hash == v.sha256
                took = rec["exit"] == ok_exit
                seen = {"exit": rec["exit"], "sha256": v.sha256, "bytes": len(v.data), "changed": len(changed)}
                if changed or runs_by_hash or (took and gone is not None):
                    how = (f"its answers differ on {len(changed)}/{len(probes)} probes (" + "; ".join(f"{n}: {b!r} -> {a!r}" for n, b, a in changed[:3]) + ")"
                           if changed else f"identify reports its SHA-256 {v.sha256[:16]}" if runs_by_hash
                           else f"the deploy succeeded (exit {rec['exit']}) and the model no longer answers ({gone.kind if gone else ''})")
                    ctx.finding("tampered-model-accepted", "critical", f"the device runs the {v.name} model ({v.description}): {how}",
                                interface="storage", path=f"{m.genuine.name} ({v.name})", evidence=evidence,  # type: ignore[union-attr]
                                detail={"variant": v.name, "sha256": v.sha256, "bytes": len(v.data), "exit": rec["exit"],
                                        "changed": [{"probe": n, "before": b, "after": a} for n, b, a in changed[:20]],
                                        "probes": len(probes), "identify_sha256": after_hash})
                    part.observed(f"runs: {how}", **seen)
                elif gone is not None:
                    part.unobserved(f"refused (exit {rec['exit']}: {rec['output']}), but the model then gave no answer ({gone.kind}): {gone.reason}",
                                    evidence=evidence, **seen)
                elif not took:
                    part.observed(f"refused (exit {rec['exit']}: {rec['output']}); all {len(probes)} probes answered as before", **seen)
                else:
                    part.unobserved(f"the deploy reported success (exit {rec['exit']}) and the model answers as before: whether the device "
                                    "runs it (a reload at restart?) cannot be told", evidence=evidence, **seen)
                if took or changed or gone is not None:  # put the genuine model back before the next variant
                    back = self._deploy(ctx, genuine_v, Path(work))
                    results.append({**back, "variant": f"genuine (after {v.name})"})
                    try:
                        again = self._look(inf, probes, f"genuine after {v.name}", answers)
                    except NoAnswer as exc:
                        again, why = [], f"the model gave no answer ({exc.kind})"
                    else:
                        why = "its answers differ from the baseline"
                    if "error" in back or len(again) != len(baseline) or not all(same(a, b) for a, b in zip(again, baseline)):
                        self._rest_unobserved(planned[i + 1:], parts, f"the genuine model could not be put back after {v.name}: "
                                              + (back.get("error") or why))
                        genuine_part.unobserved(f"after {v.name} the genuine model could not be put back: " + (back.get("error") or why),
                                                evidence=evidence)
                        ctx.artifact("deployed.json", json.dumps(results, indent=1).encode(), "application/json")
                        return
            g = self._deploy(ctx, genuine_v, Path(work))
        results.append(g)
        ctx.artifact("deployed.json", json.dumps(results, indent=1).encode(), "application/json")
        if "error" in g:
            genuine_part.error(f"the genuine model could not be deployed: {g['error']}", "model-genuine")
            return
        try:
            final = self._look(inf, probes, "genuine (last)", answers)
        except NoAnswer as exc:
            genuine_part.unobserved(f"after the genuine model was deployed (exit {g['exit']}) the model gave no answer ({exc.kind}): {exc.reason}",
                                    evidence=evidence)
            return
        if g["exit"] != ok_exit:
            genuine_part.unobserved(f"the genuine model was refused too (exit {g['exit']}: {g['output']}): a strict device cannot be told "
                                    "from a broken model-deploy action", evidence=evidence, exit=g["exit"])
        elif not all(same(a, b) for a, b in zip(final, baseline)):
            genuine_part.unobserved("the genuine model was taken but the answers differ from the baseline: the device ran another model "
                                    "before, or its answers are not stable", evidence=evidence, exit=g["exit"])
        else:
            genuine_part.observed(f"taken (exit {g['exit']}); all {len(probes)} probes answered as in the baseline", evidence=evidence,
                                  exit=g["exit"], sha256=genuine_v.sha256)

    @staticmethod
    def _rest_unobserved(rest: list[ModelVariant], parts: dict[str, Part], why: str) -> None:
        for v in rest:
            parts[v.name].unobserved(why)

    def _deploy(self, ctx: ScenarioContext, v: ModelVariant, work: Path) -> dict:
        """Hand ``v`` to the device with model-deploy and wait ``model.settle_s``; a dict for
        deployed.json (exit status and the last line of output, or an error)."""
        m = ctx.device.model
        assert m is not None
        action = ctx.device.actions["model-deploy"]
        rec: dict = {**v.record(), "variant": v.name}
        ctx.step("deploy model", variant=v.name, sha256=v.sha256, bytes=len(v.data))
        values = {"model": "", "signature": ""}
        try:
            values["model"], values["signature"] = hand_over(ctx, "model-deploy", v.data, v.signature, m.upload_dir,
                                                             f"privrig-model-{v.name}.onnx", work)
            status, out = run_action(ctx, "model-deploy", check=False, **values)
        except DeviceError as exc:
            rec["error"] = f"{v.name}: {exc.reason}"
            return rec
        rec["exit"], rec["output"] = status, out.strip().splitlines()[-1][:200] if out.strip() else ""
        time.sleep(m.settle_s)
        if action.via == "ssh":
            try:
                ctx.ssh().run(f"rm -f {shlex.quote(values['model'])} {shlex.quote(values['model'] + '.sig')}", timeout=30)
            except DeviceError as exc:
                rec["cleanup"] = f"the uploaded model was not removed: {exc.reason[:200]}"
        return rec
