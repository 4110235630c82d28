"""Converting dlib's ResNet to ONNX: deterministic, cached with its hash, clear failures."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import onnx
import pytest

from sozy.faces.dlib_net import WeightsError
from sozy.faces.models import find_model_files
from sozy.faces.onnx_model import (
    CONVERTER_VERSION,
    INPUT_NAME,
    OUTPUT_NAME,
    cached_model,
    convert,
    default_cache_dir,
)


@pytest.fixture(scope="module")
def weights() -> Path:
    return find_model_files().encoder


def test_conversion_is_deterministic(weights: Path) -> None:
    first, second = convert(weights), convert(weights)
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_the_graph_takes_uint8_chips_and_gives_128_floats(weights: Path) -> None:
    model = onnx.load_from_string(convert(weights))
    onnx.checker.check_model(model, full_check=True)
    (chips,), (out,) = model.graph.input, model.graph.output
    assert (chips.name, out.name) == (INPUT_NAME, OUTPUT_NAME)
    assert chips.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in chips.type.tensor_type.shape.dim]
    assert dims == ["batch", 150, 150, 3]
    ops = [n.op_type for n in model.graph.node]
    # every affine folded into its convolution; mismatched residual sums padded: the
    # skip path's channels in the four downsampling blocks but the last (32→64, 64→128,
    # 128→256), the block path's 3×3 and 1×1 against the pools' 4×4 and 2×2
    assert ops.count("Conv") == 29 and "BatchNormalization" not in ops
    assert ops.count("Add") == 14 and ops.count("Pad") == 5


def test_cache_converts_once_then_reads_the_verified_file(weights: Path, tmp_path: Path) -> None:
    model = cached_model(weights, tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    source_hash = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    stem = f"dlib_resnet_v1-{source_hash}-c{CONVERTER_VERSION}.onnx"
    assert files == [stem, stem + ".sha256"]
    assert (tmp_path / (stem + ".sha256")).read_text() == hashlib.sha256(model).hexdigest()
    os.utime(tmp_path / stem, (1, 1))
    assert cached_model(weights, tmp_path) == model
    assert (tmp_path / stem).stat().st_mtime == 1  # read, not rewritten


def test_a_damaged_cache_file_is_converted_again(weights: Path, tmp_path: Path, caplog) -> None:
    model = cached_model(weights, tmp_path)
    (cached,) = tmp_path.glob("*.onnx")
    cached.write_bytes(model[: len(model) // 2])
    with caplog.at_level(logging.WARNING):
        assert cached_model(weights, tmp_path) == model
    assert "does not match its hash" in caplog.text
    assert cached.read_bytes() == model


def test_an_unwritable_cache_still_gives_the_model(weights: Path, tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    with caplog.at_level(logging.WARNING):
        assert cached_model(weights, blocker / "sozy") == convert(weights)
    assert "cannot cache" in caplog.text


def test_corrupt_or_missing_weights_name_the_package(weights: Path, tmp_path: Path) -> None:
    bad = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    bad.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="face-recognition-models"):
        cached_model(bad, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    with pytest.raises(WeightsError, match="face-recognition-models"):
        cached_model(tmp_path / "missing.dat", tmp_path / "cache")


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "sozy"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "sozy"
