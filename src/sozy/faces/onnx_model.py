"""dlib's face-recognition ResNet as an ONNX graph, converted once and cached.

The graph takes what dlib's network takes, 150×150 RGB face chips as
``uint8 [N, 150, 150, 3]``, and returns its 128-d descriptors ``float32 [N, 128]``:

- input normalisation as ``input_rgb_image_sized``: ``(pixel - channel average) / 256``;
- each ``affine`` (a batch norm frozen into per-channel scale and shift) folded
  into the convolution before it;
- ``add_prev`` of tensors of different sizes as dlib does it: the smaller one
  padded with zeros (extra channels; rows and columns at the bottom and right).
  In the downsampling blocks the skip path keeps its fewer channels, and the
  3×3/2 convolutions and 2×2/2 average pools disagree on 8×8 and 4×4 inputs;
- pools as dlib's: no padding here, averages over the window.

Conversion is deterministic: the same weights file gives the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sozy.faces.dlib_net import REINSTALL, Layer, ResNet, WeightsError, read_resnet

log = logging.getLogger(__name__)

# Bump when the graph this module builds changes: cached files carry it in their name.
CONVERTER_VERSION = 1
OPSET = 17
IR_VERSION = 8  # the IR of opset 17, so onnxruntime >= 1.14 loads it
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"
DESCRIPTOR_SIZE = 128


def build_model(net: ResNet) -> onnx.ModelProto:
    """The ONNX graph of a parsed network."""
    graph = _GraphBuilder()
    size = net.input_size
    x = graph.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
    x = graph.node("Sub", [x, graph.const("avg_rgb", np.asarray(net.avg_rgb, dtype=np.float32))])
    x = graph.node("Mul", [x, graph.const("inv_256", np.asarray(1 / 256, dtype=np.float32))])
    x = graph.node("Transpose", [x], perm=[0, 3, 1, 2])
    shape = (3, size, size)
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    pending_conv: tuple[Layer, str] | None = None  # a convolution whose affine may follow
    for wrapper, layer in reversed(net.chain):  # innermost (next to the input) first
        if wrapper.kind != "affine" and pending_conv is not None:
            x = graph.conv(pending_conv[1], pending_conv[0], None)
            pending_conv = None
        if wrapper.kind == "tag":
            tags[wrapper.args[0]] = (x, shape)
        elif wrapper.kind == "skip":
            x, shape = tags[wrapper.args[0]]
        elif layer is None:
            raise ValueError(f"no parameters for {wrapper}")
        elif layer.kind == "con":
            pending_conv = (layer, x)
            filters, nr, nc, sy, sx, py, px = layer.args
            shape = (filters, 1 + (shape[1] + 2 * py - nr) // sy, 1 + (shape[2] + 2 * px - nc) // sx)
        elif layer.kind == "affine":
            if pending_conv is None:
                raise ValueError("an affine layer that does not follow a convolution")
            x = graph.conv(pending_conv[1], pending_conv[0], layer)
            pending_conv = None
        elif layer.kind == "relu":
            x = graph.node("Relu", [x])
        elif layer.kind in ("max_pool", "avg_pool"):
            x, shape = graph.pool(x, layer, shape)
        elif layer.kind == "add_prev":
            other, other_shape = tags[layer.args[0]]
            x, shape = graph.add_padded(x, shape, other, other_shape)
        elif layer.kind == "fc":
            x = graph.node("Flatten", [x], axis=1)
            assert layer.weights is not None
            x = graph.node("MatMul", [x, graph.const("fc_weights", layer.weights)])
        else:
            raise ValueError(f"unsupported layer {layer.kind}")
    graph.nodes[-1].output[0] = OUTPUT_NAME
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["batch", size, size, 3])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", DESCRIPTOR_SIZE])]
    model = helper.make_model(
        helper.make_graph(graph.nodes, "dlib_face_recognition_resnet_model_v1", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="sozy",
        producer_version=str(CONVERTER_VERSION),
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        name = f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        name = f"{name}_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def conv(self, x: str, con: Layer, affine: Layer | None) -> str:
        """A convolution, with the affine layer after it folded in (scale filters and bias)."""
        assert con.weights is not None
        filters, nr, nc, sy, sx, py, px = con.args
        weights = con.weights.astype(np.float32)
        bias = con.bias.astype(np.float32) if con.bias is not None else np.zeros(filters, np.float32)
        if affine is not None:
            assert affine.weights is not None and affine.bias is not None
            gamma, beta = affine.weights.reshape(-1), affine.bias.reshape(-1)
            weights = weights * gamma[:, None, None, None]
            bias = bias * gamma + beta
        return self.node(
            "Conv",
            [x, self.const("conv_w", weights), self.const("conv_b", bias)],
            kernel_shape=[nr, nc],
            strides=[sy, sx],
            pads=[py, px, py, px],
        )

    def pool(self, x: str, layer: Layer, shape: tuple[int, int, int]) -> tuple[str, tuple[int, int, int]]:
        nr, nc, sy, sx, py, px = layer.args
        if layer.kind == "avg_pool" and nr == 0 and nc == 0:  # avg_pool_everything
            return self.node("GlobalAveragePool", [x]), (shape[0], 1, 1)
        op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
        attrs: dict[str, Any] = {"kernel_shape": [nr, nc], "strides": [sy, sx], "pads": [py, px, py, px]}
        if op == "AveragePool":
            attrs["count_include_pad"] = 0  # dlib averages what lies inside the image
        out = (shape[0], 1 + (shape[1] + 2 * py - nr) // sy, 1 + (shape[2] + 2 * px - nc) // sx)
        return self.node(op, [x], **attrs), out

    def add_padded(
        self, a: str, a_shape: tuple[int, int, int], b: str, b_shape: tuple[int, int, int]
    ) -> tuple[str, tuple[int, int, int]]:
        """dlib's add_prev: the sum over the larger extent, missing values as zeros."""
        target = tuple(max(p, q) for p, q in zip(a_shape, b_shape, strict=True))
        a, b = self._pad_to(a, a_shape, target), self._pad_to(b, b_shape, target)
        return self.node("Add", [a, b]), (target[0], target[1], target[2])

    def _pad_to(self, x: str, shape: tuple[int, ...], target: tuple[int, ...]) -> str:
        if shape == target:
            return x
        extra = [t - s for s, t in zip(shape, target, strict=True)]
        pads = np.asarray([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        name = f"pads_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(pads, name))
        return self.node("Pad", [x, name], mode="constant")


# -- conversion and the cache ----------------------------------------------------------------


def convert(weights: Path) -> bytes:
    """The serialised ONNX model of dlib's weights file (raises WeightsError)."""
    serialised: bytes = build_model(read_resnet(weights)).SerializeToString()
    return serialised


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sozy``, else ``~/.cache/sozy``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sozy"


def cached_model(weights: Path, cache_dir: Path | None = None) -> bytes:
    """The converted model, from the cache when it holds a verified copy.

    Cached files are named by the weights' sha256 and the converter version, and
    come with the sha256 of their own bytes: a file that does not match it
    (truncated, edited) is converted again. Writes are atomic (rename), so
    workers converting at once all end up with the same complete file.
    """
    try:
        source = weights.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read {weights}: {exc}; {REINSTALL}") from None
    directory = cache_dir or default_cache_dir()
    stem = f"dlib_resnet_v1-{hashlib.sha256(source).hexdigest()[:16]}-c{CONVERTER_VERSION}"
    model_path, hash_path = directory / f"{stem}.onnx", directory / f"{stem}.onnx.sha256"
    cached = _read_verified(model_path, hash_path)
    if cached is not None:
        return cached
    model = convert(weights)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomic(model_path, model)
        _write_atomic(hash_path, hashlib.sha256(model).hexdigest().encode())
        log.info("converted %s to ONNX: %s", weights.name, model_path)
    except OSError as exc:  # a read-only cache costs a conversion per start, nothing else
        log.warning("cannot cache the ONNX descriptor model in %s: %s", directory, exc)
    return model


def _read_verified(model_path: Path, hash_path: Path) -> bytes | None:
    try:
        model, expected = model_path.read_bytes(), hash_path.read_text().strip()
    except OSError:
        return None
    if hashlib.sha256(model).hexdigest() != expected:
        log.warning("cached ONNX model %s does not match its hash; converting again", model_path)
        return None
    return model


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
