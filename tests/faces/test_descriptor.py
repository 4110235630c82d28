"""ONNX Runtime descriptors against dlib's own, on every face of the sample photos."""

from __future__ import annotations

import itertools

import dlib
import numpy as np
import pytest

from sozy.faces.decode import decode_image
from sozy.faces.descriptor import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DescriptorUnavailable,
    DlibDescriptor,
    OnnxDescriptor,
    batch_slices,
    face_chips,
    load_descriptor,
    providers_for,
)
from sozy.faces.models import find_model_files
from sozy.faces.onnx_model import convert

# dlib's own decision threshold for "same person"
SAME_PERSON = 0.6
# The bar: per face, dlib's and ONNX Runtime's vectors this close (L2).
MAX_L2 = 0.001


@pytest.fixture(scope="module")
def onnx_descriptor() -> OnnxDescriptor:
    return OnnxDescriptor(convert(find_model_files().encoder))


@pytest.fixture(scope="module")
def dlib_descriptor() -> DlibDescriptor:
    return DlibDescriptor(find_model_files().encoder)


@pytest.fixture(scope="module")
def photos_with_shapes(shared_embeddings, faces_dir) -> list[tuple[str, np.ndarray, dlib.full_object_detections]]:
    """Every sample photo with a face: its pixels and 5-point landmarks of every face."""
    landmarks = dlib.shape_predictor(str(find_model_files().landmarks))
    found = []
    for rel, photo in sorted(shared_embeddings.items()):
        if not photo.faces:
            continue
        rgb = decode_image((faces_dir / rel).read_bytes(), 60_000_000)
        shapes = dlib.full_object_detections()
        for face in photo.faces:
            box = face.box
            shapes.append(landmarks(rgb, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)))
        found.append((rel, rgb, shapes))
    return found


@pytest.fixture(scope="module")
def chips(photos_with_shapes) -> np.ndarray:
    return np.concatenate([face_chips(rgb, shapes) for _, rgb, shapes in photos_with_shapes])


@pytest.fixture(scope="module")
def reference(dlib_descriptor: DlibDescriptor, chips: np.ndarray) -> np.ndarray:
    return dlib_descriptor.describe(chips)


def _l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)


def test_every_sample_face_matches_dlib(onnx_descriptor, chips: np.ndarray, reference: np.ndarray) -> None:
    assert len(chips) >= 30  # 26 photos, group photos included
    vectors = onnx_descriptor.describe(chips)
    assert vectors.shape == (len(chips), 128) and vectors.dtype == np.float32
    assert _l2(vectors, reference).max() <= MAX_L2


@pytest.mark.parametrize(
    "augment",
    [
        pytest.param(lambda c: c[:, :, ::-1], id="mirrored"),
        pytest.param(lambda c: c[:, ::-1, :], id="upside-down"),
        pytest.param(lambda c: np.clip(c.astype(np.int16) + 70, 0, 255).astype(np.uint8), id="brighter"),
        pytest.param(lambda c: (c * 0.5).astype(np.uint8), id="darker"),
        pytest.param(lambda c: np.repeat(c.mean(axis=3, keepdims=True), 3, axis=3).astype(np.uint8), id="grey"),
    ],
)
def test_augmented_chips_match_dlib(onnx_descriptor, dlib_descriptor, chips: np.ndarray, augment) -> None:
    changed = np.ascontiguousarray(augment(chips))
    assert _l2(onnx_descriptor.describe(changed), dlib_descriptor.describe(changed)).max() <= MAX_L2


def test_same_person_decisions_and_nearest_neighbours_are_unchanged(onnx_descriptor, chips, reference) -> None:
    vectors = onnx_descriptor.describe(chips)

    def distances(v: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(v[:, None, :].astype(np.float64) - v[None, :, :], axis=2)
        np.fill_diagonal(d, np.inf)
        return d

    ours, theirs = distances(vectors), distances(reference)
    assert ((ours < SAME_PERSON) == (theirs < SAME_PERSON)).all()
    assert (ours.argmin(axis=1) == theirs.argmin(axis=1)).all()
    # neighbours in the same order, not only the nearest
    assert (np.argsort(ours, axis=1)[:, :5] == np.argsort(theirs, axis=1)[:, :5]).all()


def test_whole_photos_match_dlibs_compute_face_descriptor(onnx_descriptor, dlib_descriptor, photos_with_shapes) -> None:
    """The engine's path: chips cut from the photo here, by dlib inside compute_face_descriptor there."""
    groups = [p for p in photos_with_shapes if len(p[2]) > 1] + photos_with_shapes[:2]
    images, shapes = [rgb for _, rgb, _ in groups], [s for _, _, s in groups]
    ours = onnx_descriptor.describe_photos(images, shapes)
    theirs = dlib_descriptor.describe_photos(images, shapes)
    assert [len(v) for v in ours] == [len(s) for s in shapes] == [len(v) for v in theirs]
    for a, b in zip(ours, theirs, strict=False):
        assert _l2(a, b).max() <= MAX_L2
    single = dlib_descriptor.describe_photos(images[:1], shapes[:1])
    assert _l2(single[0], theirs[0]).max() == 0


def test_batches_split_and_join_in_order(chips: np.ndarray, onnx_descriptor) -> None:
    small = OnnxDescriptor(convert(find_model_files().encoder), batch=4)
    assert small.batch == 4 and onnx_descriptor.batch == 32
    some = chips[:10]
    np.testing.assert_allclose(small.describe(some), onnx_descriptor.describe(some), atol=1e-6)
    one_by_one = np.concatenate([onnx_descriptor.describe(some[i : i + 1]) for i in range(len(some))])
    np.testing.assert_allclose(one_by_one, onnx_descriptor.describe(some), atol=1e-6)
    assert batch_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert batch_slices(0, 4) == [] and batch_slices(3, 0) == [slice(0, 1), slice(1, 2), slice(2, 3)]


def test_photos_without_faces_and_empty_batches(onnx_descriptor, photos_with_shapes) -> None:
    assert onnx_descriptor.describe(np.zeros((0, 150, 150, 3), np.uint8)).shape == (0, 128)
    _, rgb, shapes = photos_with_shapes[0]
    out = onnx_descriptor.describe_photos(
        [rgb, rgb, rgb], [dlib.full_object_detections(), shapes, dlib.full_object_detections()]
    )
    assert [v.shape for v in out] == [(0, 128), (len(shapes), 128), (0, 128)]
    assert onnx_descriptor.describe_photos([], []) == []
    with pytest.raises(ValueError, match="uint8 chips"):
        onnx_descriptor.describe(np.zeros((1, 112, 112, 3), np.uint8))


def test_one_thread_per_session(onnx_descriptor) -> None:
    options = onnx_descriptor._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert onnx_descriptor.active_providers == [CPU_PROVIDER]


def test_provider_list_for_each_device() -> None:
    both = [CUDA_PROVIDER, CPU_PROVIDER]
    assert providers_for("cuda", ["TensorrtExecutionProvider", *both]) == both
    assert providers_for("cpu", both) == [CPU_PROVIDER]
    with pytest.raises(DescriptorUnavailable, match=r"onnxruntime-gpu.*sozy\[gpu\]"):
        providers_for("cuda", [CPU_PROVIDER, "AzureExecutionProvider"])
    with pytest.raises(ValueError):
        providers_for("tpu", both)


def test_cuda_batches_are_larger_and_cuda_without_the_provider_is_refused() -> None:
    import onnxruntime as ort

    model = convert(find_model_files().encoder)
    if CUDA_PROVIDER in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed: the refusal cannot be seen here")
    with pytest.raises(DescriptorUnavailable):
        OnnxDescriptor(model, device="cuda")


def test_load_descriptor_picks_the_backend(tmp_path) -> None:
    weights = find_model_files().encoder
    assert isinstance(load_descriptor("onnx", "cpu", weights, tmp_path), OnnxDescriptor)
    assert list(tmp_path.glob("*.onnx"))  # converted into the cache given
    assert isinstance(load_descriptor("dlib", "cpu", weights), DlibDescriptor)


def test_pairs_of_people_stay_apart(onnx_descriptor, photos_with_shapes) -> None:
    """Two faces of one group photo are different people, as dlib says."""
    for _, rgb, shapes in photos_with_shapes:
        if len(shapes) > 1:
            vectors = onnx_descriptor.describe(face_chips(rgb, shapes))
            for a, b in itertools.combinations(vectors, 2):
                assert np.linalg.norm(a - b) > SAME_PERSON
