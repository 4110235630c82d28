"""Read dlib's serialised face-recognition ResNet into plain arrays.

``dlib_face_recognition_resnet_model_v1.dat`` is dlib's ``serialize(net)`` of
the ``anet_type`` in dlib's ``examples/dnn_face_recognition_ex.cpp``. That
stream does not name its wrappers (a tag and a skip layer look alike), so the
network's shape is spelled out here as in the example's templates, and every
layer read from the file is checked against it.

Formats (dlib's source, see docs/faces.md for the exact files):

- integers: a control byte (low 4 bits: byte count, 0x80: negative) and that
  many little-endian bytes; bool: ASCII ``'1'``/``'0'``; string: its length as
  an integer, then the bytes; float/double scalars: two integers,
  mantissa then exponent (``mantissa * 2**exponent``);
- tensors: version 2, four integers (num_samples, k, nr, nc), then the values
  as raw little-endian float32;
- ``add_layer``: version, the subnetwork, the layer's details, then training
  state (flags and tensors) skipped here. So the stream holds the wrappers'
  versions from the loss layer inwards, then the input layer, then each
  layer's details from the input outwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from sozy.faces.errors import FaceEngineError

_T = TypeVar("_T")

# -- the network's shape, as dlib's example writes it -----------------------------------


@dataclass(frozen=True)
class Wrapper:
    """One template of the chain, outermost first: a layer, a tag or a skip."""

    kind: str  # "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc", "tag", "skip"
    args: tuple[int, ...] = ()


def _block(filters: int, stride: int) -> list[Wrapper]:
    # block<N,BN,stride,S> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,S>>>>>
    return [
        Wrapper("affine"),
        Wrapper("con", (filters, 3, 3, 1, 1)),
        Wrapper("relu"),
        Wrapper("affine"),
        Wrapper("con", (filters, 3, 3, stride, stride)),
    ]


def _ares(filters: int) -> list[Wrapper]:
    # ares<N,S> = relu<add_prev1<block<N,affine,1,tag1<S>>>>
    return [Wrapper("relu"), Wrapper("add_prev", (1,)), *_block(filters, 1), Wrapper("tag", (1,))]


def _ares_down(filters: int) -> list[Wrapper]:
    # ares_down<N,S> = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<S>>>>>>>
    return [
        Wrapper("relu"),
        Wrapper("add_prev", (2,)),
        Wrapper("avg_pool", (2, 2, 2, 2)),
        Wrapper("skip", (1,)),
        Wrapper("tag", (2,)),
        *_block(filters, 2),
        Wrapper("tag", (1,)),
    ]


# loss_metric<fc_no_bias<128,avg_pool_everything<alevel0<...alevel4<max_pool<3,3,2,2,
#   relu<affine<con<32,7,7,2,2,input_rgb_image_sized<150>>>>>>>>>>>>>, outermost first.
RESNET_CHAIN: tuple[Wrapper, ...] = (
    Wrapper("fc", (128,)),
    Wrapper("avg_pool", (0, 0, 1, 1)),
    *_ares_down(256),  # alevel0
    *_ares(256),
    *_ares(256),
    *_ares_down(256),  # alevel1
    *_ares(128),
    *_ares(128),
    *_ares_down(128),  # alevel2
    *_ares(64),
    *_ares(64),
    *_ares(64),
    *_ares_down(64),  # alevel3
    *_ares(32),
    *_ares(32),
    *_ares(32),  # alevel4
    Wrapper("max_pool", (3, 3, 2, 2)),
    Wrapper("relu"),
    Wrapper("affine"),
    Wrapper("con", (32, 7, 7, 2, 2)),
)
INPUT_SIZE = 150

# -- what is read --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Layer:
    """A layer's details as read: kind, integer settings, parameter arrays."""

    kind: str
    args: tuple[int, ...] = ()
    # con: (filters, nr, nc, stride_y, stride_x, pad_y, pad_x); pools: (nr, nc, sy, sx, pad_y, pad_x)
    weights: np.ndarray | None = None  # con: (M, C, nr, nc); fc: (inputs, outputs); affine: gamma
    bias: np.ndarray | None = None  # con: (M,) or None; affine: beta


@dataclass(frozen=True, eq=False)
class ResNet:
    """The parsed network: input averages and the chain (outermost first, tags/skips kept)."""

    avg_rgb: tuple[float, float, float]
    input_size: int
    chain: tuple[tuple[Wrapper, Layer | None], ...]


class WeightsError(FaceEngineError):
    """The dlib weights file is missing, truncated or not the expected network."""

    code = "models_corrupt"


def read_resnet(path: Path) -> ResNet:
    """Parse ``dlib_face_recognition_resnet_model_v1.dat``; raises :class:`WeightsError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read {path}: {exc}; {REINSTALL}") from None
    try:
        return parse_resnet(data)
    except (_Truncated, ValueError) as exc:
        raise WeightsError(f"{path} is not dlib's face recognition ResNet ({exc}); {REINSTALL}") from None


REINSTALL = "reinstall the package 'face-recognition-models' (pip install --force-reinstall face-recognition-models)"


def parse_resnet(data: bytes) -> ResNet:
    stream = _Stream(data)
    _expect(stream.integer(), (1,), "loss layer version")
    loss = stream.string()
    if loss == "loss_metric_2":
        stream.real(), stream.real()  # margin, distance threshold: training only
    elif loss != "loss_metric_":
        raise ValueError(f"expected loss_metric, found {loss!r}")
    versions = []
    for i, wrapper in enumerate(RESNET_CHAIN):
        innermost = i == len(RESNET_CHAIN) - 1
        allowed = (1,) if wrapper.kind in ("tag", "skip") else ((2, 3) if innermost else (1, 2))
        versions.append(_expect(stream.integer(), allowed, f"{wrapper.kind} wrapper version"))
    avg_rgb, size = _read_input(stream)
    layers: list[Layer | None] = [None] * len(RESNET_CHAIN)
    for i in reversed(range(len(RESNET_CHAIN))):
        wrapper = RESNET_CHAIN[i]
        if wrapper.kind in ("tag", "skip"):
            continue
        layers[i] = _read_layer(stream, wrapper)
        _skip_training_state(stream, versions[i], with_input=i == len(RESNET_CHAIN) - 1)
    if not stream.at_end():
        raise ValueError(f"{stream.remaining()} unexpected bytes after the network")
    return ResNet(avg_rgb=avg_rgb, input_size=size, chain=tuple(zip(RESNET_CHAIN, layers, strict=True)))


def _read_input(stream: _Stream) -> tuple[tuple[float, float, float], int]:
    version = stream.string()
    if version != "input_rgb_image_sized":
        raise ValueError(f"expected input_rgb_image_sized, found {version!r}")
    avg = (stream.real(), stream.real(), stream.real())
    nr, nc = stream.integer(), stream.integer()
    if (nr, nc) != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"expected a {INPUT_SIZE}x{INPUT_SIZE} input, found {nr}x{nc}")
    return avg, nr


def _read_layer(stream: _Stream, wrapper: Wrapper) -> Layer:
    version = stream.string()
    kind = wrapper.kind
    if kind == "con" and version in ("con_4", "con_5", "con_6"):
        params = stream.tensor()
        filters, nr, nc, sy, sx, py, px = (stream.integer() for _ in range(7))
        shape = stream.alias_tensor()
        stream.alias_tensor()  # biases' shape: (1, filters)
        for _ in range(4):
            stream.real()  # learning-rate and weight-decay multipliers
        use_bias = stream.flag() if version in ("con_5", "con_6") else True
        if version == "con_6" and stream.flag():
            raise ValueError("con_6 with a fused relu is not this network")
        _expect((filters, nr, nc, sy, sx), (wrapper.args,), "con settings")
        count = int(np.prod(shape))
        if shape[0] != filters or params.size != count + (filters if use_bias else 0):
            raise ValueError(f"con parameters of {params.size} values do not fit filters {shape}")
        weights = params[:count].reshape(shape)
        bias = params[count:] if use_bias else None
        return Layer(kind, (filters, nr, nc, sy, sx, py, px), weights, bias)
    if kind == "affine" and version in ("affine_", "affine_2"):
        params = stream.tensor()
        gamma_shape = stream.alias_tensor()
        stream.alias_tensor()
        mode = stream.integer()
        if version == "affine_2" and stream.flag():
            raise ValueError("a disabled affine layer is not this network")
        _expect(mode, (0,), "affine mode (CONV_MODE)")
        n = int(np.prod(gamma_shape))
        return Layer(kind, (), params[:n].copy(), params[n : 2 * n].copy())
    if kind == "affine" and version == "bn_con2":
        return _read_batch_norm(stream)
    if kind == "relu" and version in ("relu_", "relu_2"):
        if version == "relu_2" and stream.flag():
            raise ValueError("a disabled relu layer is not this network")
        return Layer(kind)
    if kind in ("max_pool", "avg_pool") and version == f"{kind}_2":
        nr, nc, sy, sx, py, px = (stream.integer() for _ in range(6))
        _expect((nr, nc, sy, sx), (wrapper.args,), f"{kind} settings")
        return Layer(kind, (nr, nc, sy, sx, py, px))
    if kind == "add_prev" and version == "add_prev_":
        return Layer(kind, wrapper.args)
    if kind == "fc" and version in ("fc_2", "fc_3"):
        outputs, inputs = stream.integer(), stream.integer()
        params = stream.tensor()
        shape = stream.alias_tensor()
        stream.alias_tensor()
        bias_mode = stream.integer()
        for _ in range(4):
            stream.real()
        if version == "fc_3" and stream.flag():
            raise ValueError("an fc layer with a bias is not this network")
        _expect((outputs, bias_mode), ((wrapper.args[0], 1),), "fc_no_bias settings")
        if shape[:2] != (inputs, outputs) or params.size != inputs * outputs:
            raise ValueError(f"fc parameters of {params.size} values do not fit {inputs}x{outputs}")
        return Layer(kind, (outputs,), params.reshape(inputs, outputs))
    raise ValueError(f"expected a {kind} layer, found {version!r}")


def _read_batch_norm(stream: _Stream) -> Layer:
    """A bn_con layer, folded into an affine one exactly as dlib's ``affine_(bn_)`` does."""
    params = stream.tensor()
    gamma_shape = stream.alias_tensor()
    stream.alias_tensor()
    stream.tensor(), stream.tensor()  # batch means, invstds
    running_means, running_variances = stream.tensor(), stream.tensor()
    stream.integer(), stream.integer()  # num_updates, running_stats_window_size
    for _ in range(4):
        stream.real()
    eps = np.float32(stream.real())
    n = int(np.prod(gamma_shape))
    gamma = params[:n] / np.sqrt(running_variances + eps)
    beta = params[n : 2 * n] - gamma * running_means
    return Layer("affine", (), gamma.astype(np.float32), beta.astype(np.float32))


def _skip_training_state(stream: _Stream, version: int, *, with_input: bool) -> None:
    """What add_layer writes after its details: three flags, then gradient buffers."""
    stream.flag(), stream.flag(), stream.flag()
    stream.tensor(), stream.tensor()  # x_grad, cached_output
    if with_input:
        stream.tensor()  # grad_final
        if version >= 3:
            stream.integer()  # sample_expansion_factor
    elif version == 2:
        stream.tensor()  # params_grad


def _expect(value: _T, allowed: tuple[_T, ...], what: str) -> _T:
    if value not in allowed:
        raise ValueError(f"{what}: expected {' or '.join(map(str, allowed))}, found {value}")
    return value


# -- dlib's serialisation primitives ------------------------------------------------------


class _Truncated(Exception):
    def __str__(self) -> str:
        return "the file ends too early"


class _Stream:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def _take(self, n: int) -> memoryview:
        if n < 0 or self._pos + n > len(self._data):
            raise _Truncated()
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise ValueError(f"bad integer control byte {control:#04x} at offset {self._pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def flag(self) -> bool:
        byte = bytes(self._take(1))
        if byte not in (b"0", b"1"):
            raise ValueError(f"bad bool {byte!r} at offset {self._pos - 1}")
        return byte == b"1"

    def string(self) -> str:
        size = self.integer()
        if size > 1024:
            raise ValueError(f"implausible string length {size} at offset {self._pos}")
        return bytes(self._take(size)).decode("latin-1")

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if exponent >= 32000:  # dlib's float_details: 32000 inf, 32001 -inf, 32002 nan
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(mantissa, exponent)

    def tensor(self) -> np.ndarray:
        _expect(self.integer(), (2,), "tensor version")
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise ValueError(f"bad tensor shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        _expect(self.integer(), (1,), "alias tensor version")
        n, k, nr, nc = (self.integer() for _ in range(4))
        return n, k, nr, nc
