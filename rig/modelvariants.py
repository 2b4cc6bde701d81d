"""Tampered models derived from the vendor's genuine one (model-integrity).

Each variant is what an attacker who reaches the device's model store or its deployment path
would hand it; a device that protects its model refuses every one and keeps running the
genuine model:

* ``trojaned``: the model's last parametrised layer overwritten so that it gives the same
  answer (class 0) for every image: a model that runs and is no longer the vendor's, told
  apart on the device by its answers alone;
* ``bitflip``: one bit flipped in the stored weights (the top exponent bit of the first weight
  of the last layer, so that the outputs change measurably and a device that runs it shows it);
* ``truncated``: the first half of the file (no parser reads it: a device that reports success
  took a broken model);
* ``resigned``: the trojaned model signed with a key the rig makes now, where the genuine
  model's signature format is given (a device that checks *a* signature, not the vendor's).

Variants are built in memory from the genuine model and written to a private temporary folder
outside the bundle; the bundle keeps their SHA-256, size and, for the variants that run, the
largest change of the raw outputs the rig measured locally with onnxruntime on random inputs
(the evidence that the variant is different where it runs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from rig.config import SignatureFormat
from rig.firmware import fit_trailer, rig_signature


@dataclass
class ModelVariant:
    """One model to deploy: its name, what was done to it, its bytes and detached signature."""

    name: str
    description: str
    data: bytes = field(repr=False)
    signature: bytes | None = field(default=None, repr=False)
    #: the largest absolute change of the raw outputs the rig measured locally (None: not run locally)
    local_change: float | None = None
    #: onnxruntime loads it on the bench host
    loads: bool = True

    @property
    def sha256(self) -> str:
        """SHA-256 of the model bytes (what the evidence keeps)."""
        return hashlib.sha256(self.data).hexdigest()

    def record(self) -> dict:
        """What the bundle keeps of the variant: never the bytes."""
        out: dict = {"name": self.name, "description": self.description, "sha256": self.sha256, "bytes": len(self.data),
                     "loads_locally": self.loads}
        if self.local_change is not None:
            out["local_output_change"] = self.local_change
        if self.signature is not None:
            out["signature_sha256"] = hashlib.sha256(self.signature).hexdigest()
        return out


class NotAModel(ValueError):
    """The genuine model is not an ONNX model the rig can derive variants from."""


def _last_layer(model):  # -> (node, [float initializer names])
    """The last node of the graph that takes float initializers (its weights and bias)."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    for node in reversed(model.graph.node):
        names = [n for n in node.input if n in inits and inits[n].data_type == TensorProto.FLOAT]
        if names:
            return node, names
    raise NotAModel("no layer with float weights: the rig cannot alter this model's outputs")


def trojaned(genuine: bytes) -> tuple[bytes, str]:
    """The model with its last parametrised layer set to answer class 0 for every input: its
    weights zero, its bias (the last float initializer of the layer, if it has two) one-hot.
    Returns the bytes and a description naming the layer."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load_from_string(genuine)
    except Exception as exc:  # noqa: BLE001 (protobuf raises DecodeError, and others on garbage)
        raise NotAModel(f"the genuine model does not parse as ONNX: {type(exc).__name__}") from None
    node, names = _last_layer(model)
    inits = {i.name: i for i in model.graph.initializer}
    for i, name in enumerate(names):
        arr = numpy_helper.to_array(inits[name]).copy()
        arr[...] = 0
        if len(names) > 1 and i == len(names) - 1 and arr.ndim == 1 and arr.size:
            arr[0] = 10.0
        inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
    return model.SerializeToString(), f"the last layer ({node.op_type} {node.name or node.output[0]!r}: {', '.join(names)}) set to answer class 0 for every image"


def bitflip(genuine: bytes) -> tuple[bytes, str]:
    """The genuine bytes with one bit flipped: the top exponent bit of the first weight of the
    last parametrised layer, found in the file as its raw little-endian float. Returns the bytes
    and a description naming the byte and the layer."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load_from_string(genuine)
    except Exception as exc:  # noqa: BLE001
        raise NotAModel(f"the genuine model does not parse as ONNX: {type(exc).__name__}") from None
    node, names = _last_layer(model)
    inits = {i.name: i for i in model.graph.initializer}
    weights = max(names, key=lambda n: numpy_helper.to_array(inits[n]).size)
    raw = numpy_helper.to_array(inits[weights]).astype("<f4").tobytes()
    at = genuine.find(raw) if len(raw) >= 16 else -1
    if at < 0 or genuine.find(raw, at + 1) >= 0:
        raise NotAModel(f"the weights of {weights} are not stored once as raw floats: no single bit to flip")
    flipped = bytearray(genuine)
    flipped[at + 3] ^= 0x40  # little-endian float32: byte 3 holds the sign and the exponent's top 7 bits
    return bytes(flipped), f"one bit flipped at byte {at + 3} (the exponent's top bit of the first weight of {weights}, {node.op_type})"


def output_change(genuine: bytes, variant: bytes, samples: int = 8, seed: int = 0) -> float | None:
    """The largest absolute difference between the raw outputs of ``genuine`` and ``variant``
    under onnxruntime on ``samples`` random inputs of the model's input shape (dynamic
    dimensions taken as 1); None when either does not load or run."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    try:
        a = ort.InferenceSession(genuine, opts, providers=["CPUExecutionProvider"])
        b = ort.InferenceSession(variant, opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 (onnxruntime raises its own Fail/InvalidGraph/...)
        return None
    rng = np.random.default_rng(seed)
    worst = 0.0
    try:
        for _ in range(samples):
            feed = {}
            for inp in a.get_inputs():
                shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
                feed[inp.name] = rng.random(shape, dtype=np.float32)
            for x, y in zip(a.run(None, feed), b.run(None, feed)):
                with np.errstate(invalid="ignore", over="ignore"):
                    d = np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64))
                worst = max(worst, float(np.nanmax(d)) if np.isfinite(d).any() else float("inf"))
                if not np.isfinite(np.asarray(y, dtype=np.float64)).all():
                    worst = float("inf")
    except Exception:  # noqa: BLE001
        return None
    return worst


def _loads(data: bytes) -> bool:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        return True
    except Exception:  # noqa: BLE001
        return False


def variants(genuine: bytes, signature: SignatureFormat | None = None, detached_sig: bytes | None = None) -> list[ModelVariant]:
    """Every variant of the genuine model (see the module docstring), in the order they are
    deployed. With a trailer signature format the model is ``genuine`` less its trailer and each
    variant carries the genuine trailer (or, ``resigned``, the rig's own); with a detached one
    each carries ``detached_sig`` (``resigned``: the rig's own). Raises :class:`NotAModel` when
    the genuine model is not ONNX with float weights."""
    trailer = signature.trailer_bytes if signature is not None and signature.trailer_bytes else 0
    if trailer and trailer >= len(genuine):
        raise NotAModel(f"the genuine model ({len(genuine)} bytes) is shorter than its {trailer}-byte signature trailer")
    content, tail = (genuine[:-trailer], genuine[-trailer:]) if trailer else (genuine, b"")
    troj, troj_how = trojaned(content)
    flip, flip_how = bitflip(content)
    out = [
        ModelVariant("trojaned", troj_how, troj + tail, detached_sig, output_change(content, troj)),
        ModelVariant("bitflip", flip_how, flip + tail, detached_sig, output_change(content, flip)),
        ModelVariant("truncated", f"cut to its first {len(content) // 2} bytes", content[: len(content) // 2] + tail, detached_sig, None, False),
    ]
    if signature is not None:
        own = rig_signature(troj, signature.algorithm)
        if trailer:
            out.append(ModelVariant("resigned", f"the trojaned model with a {trailer}-byte signature trailer of the rig's own key ({signature.algorithm})",
                                    troj + fit_trailer(own, trailer), None, out[0].local_change))
        else:
            out.append(ModelVariant("resigned", f"the trojaned model with a detached signature of the rig's own key ({signature.algorithm})",
                                    troj, own, out[0].local_change))
    for v in out:
        if v.name != "truncated":
            v.loads = _loads(v.data[:-trailer] if trailer else v.data)
    return out
