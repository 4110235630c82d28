"""Reading dlib's serialised ResNet: the real weights file, and files that are not it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sozy.faces.dlib_net import RESNET_CHAIN, WeightsError, parse_resnet, read_resnet
from sozy.faces.models import find_model_files


@pytest.fixture(scope="module")
def weights() -> bytes:
    return find_model_files().encoder.read_bytes()


def test_the_real_weights_parse_into_the_example_network(weights: bytes) -> None:
    net = parse_resnet(weights)
    assert net.input_size == 150
    # dlib's input_rgb_image_sized defaults, stored in the file as floats
    assert net.avg_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    kinds = [w.kind for w, _ in net.chain]
    assert kinds.count("con") == kinds.count("affine") == 29
    assert kinds.count("add_prev") == 14 and kinds.count("skip") == 4
    stem_con = net.chain[-1][1]
    assert stem_con is not None and stem_con.kind == "con"
    assert stem_con.args == (32, 7, 7, 2, 2, 0, 0)  # strided: no padding
    assert stem_con.weights is not None and stem_con.weights.shape == (32, 3, 7, 7)
    three_by_three = [layer for w, layer in net.chain if w.kind == "con" and w.args[3] == 1 and w.args[1] == 3]
    assert three_by_three and all(layer is not None and layer.args[5:] == (1, 1) for layer in three_by_three)
    fc = net.chain[0][1]
    assert fc is not None and fc.weights is not None and fc.weights.shape == (256, 128)
    for _, layer in net.chain:
        for array in (layer.weights, layer.bias) if layer is not None else ():
            assert array is None or (array.dtype == np.float32 and np.isfinite(array).all())


def test_chain_mirrors_the_example_templates() -> None:
    assert len(RESNET_CHAIN) == 29 + 29 + 29 + 18 + 14 + 5 + 4 + 1 + 1
    assert RESNET_CHAIN[0].kind == "fc" and RESNET_CHAIN[-1].args == (32, 7, 7, 2, 2)


@pytest.mark.parametrize("cut", [1, 100, 300, 5_000_000, -1])
def test_a_truncated_file_is_a_clear_error(weights: bytes, tmp_path: Path, cut: int) -> None:
    path = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    path.write_bytes(weights[:cut])
    with pytest.raises(WeightsError, match="face-recognition-models"):
        read_resnet(path)


def test_trailing_bytes_and_other_networks_are_refused(weights: bytes, tmp_path: Path) -> None:
    path = tmp_path / "w.dat"
    path.write_bytes(weights + b"\x00")
    with pytest.raises(WeightsError, match="unexpected bytes"):
        read_resnet(path)
    landmarks = find_model_files().landmarks
    with pytest.raises(WeightsError, match="not dlib's face recognition ResNet"):
        read_resnet(landmarks)
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(WeightsError, match="face-recognition-models"):
        read_resnet(path)


def test_a_flipped_byte_in_a_layer_header_is_caught(weights: bytes, tmp_path: Path) -> None:
    at = weights.index(b"con_")
    damaged = bytearray(weights)
    damaged[at + 3] ^= 0x20  # "con_5" → "conX5"
    path = tmp_path / "w.dat"
    path.write_bytes(bytes(damaged))
    with pytest.raises(WeightsError, match="expected a con layer"):
        read_resnet(path)


def test_a_missing_file_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="face-recognition-models"):
        read_resnet(tmp_path / "absent.dat")
