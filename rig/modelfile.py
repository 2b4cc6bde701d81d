"""AI model files: recognised by content and read with the frameworks' own parsers.

model-at-rest (6.2.4 a 5: the AI model protected by strong encryption) asks one question of a
file found on a device: can a standard tool read it? The answer rests on the real parser, not
on a header:

* ONNX: the ``onnx`` package parses the ModelProto and its graph (the same code every ONNX
  runtime and converter uses); the summary gives IR version, opsets, producer, node count,
  parameter count and input shapes.
* PyTorch / TorchScript: the zip's own directory (``zipfile``) holds ``data.pkl`` or
  ``constants.pkl`` with the tensor records beside it; never unpickled (a pickle runs code).
* Formats the rig recognises but has no parser for here (TensorFlow Lite, ncnn, RKNN, GGUF,
  safetensors, OpenVINO IR, HDF5) are named by their structure; a finding says the format
  shows, not that the model was read.

Device bytes are untrusted: the parsers get at most what the scenario read (bounded), a parse
error is a result, and nothing here writes a file or executes what it read.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import asdict, dataclass, field

from rig import atrest

#: what the summary lists of a graph's inputs, at most
MAX_INPUTS = 8
#: zip members looked at, at most (a zip bomb's directory is not walked to its end)
MAX_ZIP_MEMBERS = 4096


@dataclass(frozen=True)
class ModelSummary:
    """What a parser read from a model: enough to prove it was read, never its weights."""

    format: str
    parser: str
    sha256: str
    size: int
    version: str = ""  # IR / format version
    opsets: dict[str, int] = field(default_factory=dict)
    producer: str = ""
    nodes: int = 0
    parameters: int = 0
    inputs: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The summary as JSON-ready data (hashes and counts; no weights)."""
        return asdict(self)


@dataclass(frozen=True)
class Parsed:
    """The outcome of reading one file: a summary when a parser read it, else why not."""

    format: str | None  # recognised by structure, or None
    summary: ModelSummary | None = None
    error: str = ""

    @property
    def readable(self) -> bool:
        """A standard parser read the model."""
        return self.summary is not None


def recognise(head: bytes) -> str | None:
    """The model format ``head`` (a file's first bytes; 16 suffice, more refine XML and zip)
    opens with, or None. A zip or XML file is only a candidate: :func:`parse` decides."""
    fmt = atrest.model_format(head[:16])
    if fmt and fmt.startswith("XML") and len(head) > 16 and not re.search(rb"<net\b", head[:4096]):
        return None  # XML, but not an OpenVINO IR network
    return fmt


def _onnx(data: bytes, digest: str) -> Parsed:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError, TypeError) as exc:
        return Parsed("ONNX", error=f"onnx could not parse it: {type(exc).__name__}")
    graph = model.graph
    if not graph.node:
        return Parsed("ONNX", error="onnx parsed a ModelProto with no graph nodes: not a model")
    params = 0
    for init in graph.initializer:
        n = 1
        for d in init.dims:
            n *= int(d)
        params += n
    init_names = {i.name for i in graph.initializer}
    inputs = []
    for inp in graph.input:
        if inp.name in init_names:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in inp.type.tensor_type.shape.dim]
        inputs.append({"name": inp.name[:80], "shape": dims[:8]})
        if len(inputs) == MAX_INPUTS:
            break
    return Parsed("ONNX", ModelSummary(
        "ONNX", f"onnx {onnx.__version__}", digest, len(data), version=str(model.ir_version),
        opsets={(o.domain or "ai.onnx")[:40]: int(o.version) for o in list(model.opset_import)[:8]},
        producer=f"{model.producer_name} {model.producer_version}".strip()[:80], nodes=len(graph.node), parameters=params, inputs=inputs))


def _torch_zip(data: bytes, digest: str) -> Parsed:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = []
            for i, info in enumerate(z.infolist()):
                if i == MAX_ZIP_MEMBERS:
                    break
                names.append(info.filename)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        return Parsed(None, error=f"not a readable zip: {type(exc).__name__}")
    pickles = [n for n in names if n.endswith(("/data.pkl", "/constants.pkl")) or n in ("data.pkl", "constants.pkl")]
    if not pickles:
        return Parsed(None, error="a zip without PyTorch records: not a model")
    tensors = [n for n in names if "/data/" in n]
    fmt = "TorchScript" if any(n.endswith("constants.pkl") for n in pickles) or any("/code/" in n for n in names) else "PyTorch"
    return Parsed(fmt, ModelSummary(fmt, "zipfile (records listed, never unpickled)", digest, len(data), version="zip",
                                    nodes=len([n for n in names if n.endswith(".py")]), parameters=0,
                                    inputs=[{"name": "tensor records", "shape": [len(tensors)]}]))


def parse(data: bytes) -> Parsed:
    """Read ``data`` (a whole model file, as read from the device) with the parser of the
    format it opens with. Guarantees: never raises on hostile bytes, never executes them; a
    summary means the framework's own parser read a model graph."""
    fmt = recognise(data[:4096])
    digest = hashlib.sha256(data).hexdigest()
    if fmt == "ONNX":
        return _onnx(data, digest)
    if fmt and fmt.startswith("zip"):
        return _torch_zip(data, digest)
    if fmt:
        return Parsed(fmt, error=f"{fmt}: recognised by its structure; no parser for it in this rig")
    return Parsed(None, error="no known model structure")


def reference_model(seed: int = 0, classes: int = 4, width: int = 8) -> bytes:
    """A small, real image classifier as ONNX (input 1x3x32x32 float; two 3x3 convolutions of
    ``width`` and ``2*width`` channels with relu, global pooling, a dense layer, softmax over
    ``classes``), its weights drawn from ``seed``. It is the parser's positive control in
    model-at-rest (``width`` 8, 1.3k parameters) and the simulated cameras' model (``width`` 32,
    20k parameters)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    arrays = {
        "w1": (rng.standard_normal((width, 3, 3, 3)) * 0.2).astype(np.float32),
        "b1": np.zeros(width, dtype=np.float32),
        "w2": (rng.standard_normal((2 * width, width, 3, 3)) * (1.0 / (3 * width ** 0.5))).astype(np.float32),
        "b2": np.zeros(2 * width, dtype=np.float32),
        "w3": (rng.standard_normal((classes, 2 * width)) * 0.5).astype(np.float32),
        "b3": np.zeros(classes, dtype=np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p1"]),
        helper.make_node("Flatten", ["p1"], ["f1"]),
        helper.make_node("Gemm", ["f1", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "simcam-detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, classes])],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    model = helper.make_model(graph, producer_name="privrig", producer_version="reference",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
