"""FaceAnalyzer on the real shared photos: the installed models, identity, boxes, orientation."""

from __future__ import annotations

import importlib.util
import io
import itertools
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sozy.config import ApiSettings, EngineSettings
from sozy.faces.analyze import FaceAnalyzer, detection_size
from sozy.faces.errors import CorruptImage, NotAnImage
from sozy.faces.models import find_model_files, model_id_for, resolve_detector
from sozy.records import VECTOR_SIZE, Box
from tests.faces.images import distance, encode
from tests.faces.test_decode import with_orientation

# dlib's own same-person threshold on the L2 distance between descriptors, the API's default.
SAME_PERSON_DISTANCE = ApiSettings().same_person_threshold


def iou(a: Box, b: Box) -> float:
    w = max(0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = w * h
    return inter / (a.area + b.area - inter)


# -- install --------------------------------------------------------------------------------


def test_installed_package_loads_the_models_and_encodes_a_real_face(photo_bytes) -> None:
    """A fresh interpreter, as a user's would be: import sozy, load the weights, encode Obama."""
    script = (
        "import sys\n"
        "from sozy.config import EngineSettings\n"
        "from sozy.faces.analyze import FaceAnalyzer\n"
        "faces = FaceAnalyzer(EngineSettings()).analyze(sys.stdin.buffer.read())\n"
        "v = faces.faces[0].vector\n"
        "print(len(faces.faces), v.shape[0], v.dtype, round(float((v * v).sum()) ** 0.5, 2))\n"
        "print('pkg_resources' in sys.modules, 'face_recognition_models' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        input=photo_bytes("obama/obama.jpg"),
        capture_output=True,
        timeout=120,
        check=True,
    )
    first, second = run.stdout.decode().split("\n")[:2]
    count, size, dtype, norm = first.split()
    assert (int(count), int(size), dtype) == (1, VECTOR_SIZE, "float32")
    assert 0.2 < float(norm) < 2.0  # a real descriptor, not zeros
    # The weights were found without importing face_recognition_models (and so pkg_resources).
    assert second == "False False"


def test_onnx_and_dlib_descriptors_give_the_same_faces(analyzer: FaceAnalyzer, photo_bytes, model_cache) -> None:
    """The default (ONNX Runtime) and dlib's own descriptor: same faces, same vectors, same model id."""
    with_dlib = FaceAnalyzer(EngineSettings(descriptor="dlib"))
    for rel in ("group/obama-biden-and-one-more.jpg", "obama/obama-240p.jpg"):
        ours, theirs = analyzer.analyze(photo_bytes(rel)), with_dlib.analyze(photo_bytes(rel))
        assert ours.model == theirs.model and [f.box for f in ours.faces] == [f.box for f in theirs.faces]
        assert max(distance(a.vector, b.vector) for a, b in zip(ours.faces, theirs.faces, strict=False)) <= 0.001
    assert list(model_cache.glob("dlib_resnet_v1-*.onnx"))  # converted once, into the cache


def test_model_files_are_found_on_disk() -> None:
    files = find_model_files()
    for path in (files.encoder, files.landmarks, files.cnn_detector):
        assert path.is_file() and path.stat().st_size > 50_000
    assert files.landmarks.name == "shape_predictor_5_face_landmarks.dat"


def test_model_id_names_encoder_landmarks_and_detector(analyzer: FaceAnalyzer) -> None:
    assert analyzer.model_id == "dlib_resnet_v1+5pt/hog-up0..1"  # coarse to fine
    assert FaceAnalyzer(EngineSettings(upsample_below_px=0)).model_id == "dlib_resnet_v1+5pt/hog-up1"
    assert model_id_for("cnn", 0) == "dlib_resnet_v1+5pt/cnn-up0"
    assert model_id_for("cnn", 0, 120) == "dlib_resnet_v1+5pt/cnn-up0"  # nothing finer to go to
    assert resolve_detector("auto", "cpu") == "hog"
    assert resolve_detector("auto", "cuda") == "cnn"
    assert resolve_detector("cnn", "cpu") == "cnn"


def test_detection_size() -> None:
    assert detection_size(2000, 1000, 1024) == (1024, 512)
    assert detection_size(1000, 2000, 1024) == (512, 1024)
    assert detection_size(800, 600, 1024) == (800, 600)  # never enlarged
    assert detection_size(800, 600, 0) == (800, 600)  # 0 = no limit


# -- identity -------------------------------------------------------------------------------


def test_every_photo_gives_the_manifest_face_count(shared_embeddings, face_photos, faces_dir) -> None:
    for p in face_photos:
        found = shared_embeddings[str(p.path.relative_to(faces_dir))]
        assert len(found.faces) == p.faces, p.path.name
        assert (found.width, found.height) == (p.width, p.height)
        for face in found.faces:
            assert face.vector.shape == (VECTOR_SIZE,) and face.vector.dtype == np.float32
            b = face.box
            assert 0 <= b.left < b.right <= p.width and 0 <= b.top < b.bottom <= p.height


def test_faces_are_ordered_largest_first(shared_embeddings) -> None:
    for found in shared_embeddings.values():
        areas = [f.box.area for f in found.faces]
        assert areas == sorted(areas, reverse=True)


def test_same_person_is_near_and_different_people_are_far(shared_embeddings, face_photos, faces_dir) -> None:
    singles = [
        (p.person, shared_embeddings[str(p.path.relative_to(faces_dir))].faces[0].vector)
        for p in face_photos
        if p.person and p.faces == 1
    ]
    assert len({person for person, _ in singles}) >= 6
    same, different = [], []
    for (pa, va), (pb, vb) in itertools.combinations(singles, 2):
        (same if pa == pb else different).append(distance(va, vb))
    assert max(same) < SAME_PERSON_DISTANCE
    assert min(different) > SAME_PERSON_DISTANCE


def test_group_photos_give_one_face_per_person(shared_embeddings, face_photos, faces_dir) -> None:
    references: dict[str, list[np.ndarray]] = {}
    for p in face_photos:
        if p.person and p.faces == 1:
            references.setdefault(p.person, []).append(
                shared_embeddings[str(p.path.relative_to(faces_dir))].faces[0].vector
            )
    groups = [p for p in face_photos if len(p.people) > 1]
    assert groups
    for p in groups:
        found = shared_embeddings[str(p.path.relative_to(faces_dir))]
        assert len(found.faces) == len(p.people)
        named = []
        for face in found.faces:
            near = {
                person
                for person, vectors in references.items()
                if min(distance(face.vector, v) for v in vectors) < SAME_PERSON_DISTANCE
            }
            assert len(near) <= 1, (p.path.name, near)
            named.append(near.pop() if near else "unknown")
        assert sorted(named) == sorted(p.people), p.path.name


# -- detection scale ------------------------------------------------------------------------


@pytest.mark.slow
def test_downscaled_detection_finds_the_same_boxes(photo_bytes) -> None:
    """Detecting on a 640 px copy vs the full photo: same faces, boxes within 5% of the photo.

    HOG boxes come in pyramid steps of 1/5 of their size at any scale, so the
    comparison is to the photo's size, plus a minimum overlap of the two boxes.
    Landmarks and descriptors use the full-resolution pixels either way.
    """
    full = FaceAnalyzer(EngineSettings(max_side=8192))
    small = FaceAnalyzer(EngineSettings(max_side=640))
    for rel in ["obama/obama-1080p.jpg", "group/obama-biden-and-one-more.jpg"]:
        data = photo_bytes(rel)
        big_faces, small_faces = full.analyze(data), small.analyze(data)
        assert len(big_faces.faces) == len(small_faces.faces), rel
        width, height = big_faces.width, big_faces.height
        assert max(width, height) > 2 * 640  # the test means something only if it really shrank
        for face in big_faces.faces:
            match = max(small_faces.faces, key=lambda f: iou(face.box, f.box))
            assert iou(face.box, match.box) > 0.7, rel
            assert abs(face.box.left - match.box.left) <= 0.05 * width
            assert abs(face.box.right - match.box.right) <= 0.05 * width
            assert abs(face.box.top - match.box.top) <= 0.05 * height
            assert abs(face.box.bottom - match.box.bottom) <= 0.05 * height
            assert distance(face.vector, match.vector) < 0.15


def test_min_face_px_drops_small_faces(photo_bytes) -> None:
    data = photo_bytes("group/kit-harington-and-rose-leslie.jpg")
    everything = FaceAnalyzer(EngineSettings(min_face_px=20)).analyze(data)
    sides = sorted(min(f.box.width, f.box.height) for f in everything.faces)
    assert len(sides) == 2
    cut = (sides[0] + sides[1]) // 2
    only_big = FaceAnalyzer(EngineSettings(min_face_px=cut)).analyze(data)
    assert [f.box for f in only_big.faces] == [everything.faces[0].box]


def test_upsample_zero_misses_small_faces_that_upsample_one_finds(faces_dir, analyzer: FaceAnalyzer) -> None:
    image = Image.open(faces_dir / "obama/obama-240p.jpg")
    small = image.resize((image.width * 7 // 10, image.height * 7 // 10), Image.Resampling.BILINEAR)
    data = encode(small, "PNG")  # a face of about 40 px: too small for HOG's window unless upsampled
    assert len(analyzer.analyze(data).faces) == 1  # the coarse pass found nothing, so the fine pass ran
    coarse = FaceAnalyzer(EngineSettings(upsample=0))
    assert coarse.model_id.endswith("hog-up0")
    assert len(coarse.analyze(data).faces) == 0


@pytest.fixture(scope="module")
def always_upsampled() -> FaceAnalyzer:
    """Upsampling on every photo, as face_recognition detects."""
    return FaceAnalyzer(EngineSettings(upsample_below_px=0))


@pytest.fixture(scope="module")
def never_upsampled() -> FaceAnalyzer:
    return FaceAnalyzer(EngineSettings(upsample=0))


def test_coarse_pass_alone_when_its_faces_are_large(
    analyzer: FaceAnalyzer, never_upsampled: FaceAnalyzer, always_upsampled: FaceAnalyzer, photo_bytes
) -> None:
    """A portrait whose face is far above the coarse pass's limit is not scanned again."""
    data = photo_bytes("obama/obama.jpg")
    found = analyzer.analyze(data)
    coarse = never_upsampled.analyze(data)
    assert min(found.faces[0].box.width, found.faces[0].box.height) > 1.5 * analyzer.upsample_below_px
    # The boxes are the coarse pass's own (upsampling places them differently) ...
    assert [f.box for f in found.faces] == [f.box for f in coarse.faces]
    assert [f.box for f in found.faces] != [f.box for f in always_upsampled.analyze(data).faces]
    # ... and the vector is the same person's either way.
    assert distance(found.faces[0].vector, always_upsampled.analyze(data).faces[0].vector) < 0.1


@pytest.mark.parametrize("rel", ["group/kit-harington-and-rose-leslie.jpg", "obama/obama-240p.jpg"])
def test_fine_pass_when_the_coarse_faces_are_small(
    analyzer: FaceAnalyzer, always_upsampled: FaceAnalyzer, photo_bytes, rel: str
) -> None:
    """Faces near the coarse pass's limit (under upsample_below_px): the photo is detected again, upsampled."""
    data = photo_bytes(rel)
    found = analyzer.analyze(data)
    assert any(min(f.box.width, f.box.height) < analyzer.upsample_below_px for f in found.faces)
    assert [f.box for f in found.faces] == [f.box for f in always_upsampled.analyze(data).faces]


def test_a_small_face_beside_a_large_one_needs_upsample_below_px_zero(
    analyzer: FaceAnalyzer, always_upsampled: FaceAnalyzer, faces_dir
) -> None:
    """The trade-off, pinned down: a large face and a tiny one in one photo.

    Coarse to fine skips the fine pass (the large face is far above the limit), so
    the tiny face is not found; upsample_below_px = 0 finds both.
    """
    large = Image.open(faces_dir / "obama/obama-480p.jpg")
    tiny = Image.open(faces_dir / "obama/obama-240p.jpg")
    tiny = tiny.resize((tiny.width * 7 // 10, tiny.height * 7 // 10), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (large.width, large.height + tiny.height), (128, 128, 128))
    canvas.paste(large, (0, 0))
    canvas.paste(tiny, (0, large.height))
    assert max(canvas.size) <= analyzer.settings.max_side  # detected at this size, not shrunk
    data = encode(canvas, "PNG")
    assert len(analyzer.analyze(data).faces) == 1
    assert len(always_upsampled.analyze(data).faces) == 2


# -- orientation and colour ------------------------------------------------------------------


@pytest.fixture(scope="module")
def upright(faces_dir) -> Image.Image:
    image = Image.open(faces_dir / "obama/obama.jpg")
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_rotated_copies_give_the_same_face(analyzer: FaceAnalyzer, upright: Image.Image, orientation: int) -> None:
    reference = analyzer.analyze(encode(upright, "PNG"))
    rotated = analyzer.analyze(with_orientation(upright, orientation))
    assert (rotated.width, rotated.height) == (reference.width, reference.height)
    assert len(rotated.faces) == 1
    assert rotated.faces[0].box == reference.faces[0].box
    assert distance(rotated.faces[0].vector, reference.faces[0].vector) < 0.05


def test_exif_rotated_jpeg_gives_the_same_person(analyzer: FaceAnalyzer, upright: Image.Image) -> None:
    reference = analyzer.analyze(encode(upright, "PNG"))
    rotated = analyzer.analyze(with_orientation(upright, 6, "JPEG"))
    assert (rotated.width, rotated.height) == (reference.width, reference.height)
    assert distance(rotated.faces[0].vector, reference.faces[0].vector) < 0.15  # JPEG noise only


def test_rgba_png_matches_its_rgb_twin(shared_embeddings) -> None:
    # obama-rgba.png is obama2.jpg with an alpha channel.
    rgba = shared_embeddings["obama/obama-rgba.png"].faces[0]
    rgb = shared_embeddings["obama/obama2.jpg"].faces[0]
    assert iou(rgba.box, rgb.box) > 0.9
    assert distance(rgba.vector, rgb.vector) < 0.1


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("L", "JPEG"),
        ("L", "PNG"),
        ("P", "PNG"),
        ("CMYK", "JPEG"),
        ("LA", "PNG"),
        ("RGB", "WEBP"),
        ("RGB", "GIF"),
        ("RGB", "BMP"),
    ],
)
def test_other_modes_and_formats_find_the_same_person(
    analyzer: FaceAnalyzer, upright: Image.Image, mode: str, fmt: str
) -> None:
    reference = analyzer.analyze(encode(upright, "PNG")).faces[0]
    found = analyzer.analyze(encode(upright.convert(mode), fmt)).faces
    assert len(found) == 1
    assert iou(found[0].box, reference.box) > 0.8
    assert distance(found[0].vector, reference.vector) < 0.25


def test_sixteen_bit_grayscale_photo(analyzer: FaceAnalyzer, upright: Image.Image) -> None:
    grey = np.asarray(upright.convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(grey)
    assert image.mode.startswith("I;16")
    found = analyzer.analyze(encode(image, "PNG")).faces
    reference = analyzer.analyze(encode(upright.convert("L"), "PNG")).faces
    assert len(found) == 1
    assert distance(found[0].vector, reference[0].vector) < 1e-4


def test_bad_bytes_raise_typed_errors(analyzer: FaceAnalyzer, photo_bytes) -> None:
    with pytest.raises(NotAnImage):
        analyzer.analyze(b"<html><body>not here</body></html>")
    with pytest.raises(CorruptImage):
        analyzer.analyze(photo_bytes("obama/obama.jpg")[:5000])


def test_a_photo_without_faces(analyzer: FaceAnalyzer) -> None:
    found = analyzer.analyze(encode(Image.new("RGB", (300, 200), (120, 160, 200)), "PNG"))
    assert (found.width, found.height, found.faces) == (300, 200, [])
    assert found.model == analyzer.model_id


def test_analyze_array_rejects_wrong_arrays(analyzer: FaceAnalyzer) -> None:
    with pytest.raises(ValueError):
        analyzer.analyze_array(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError):
        analyzer.analyze_array(np.zeros((10, 10, 3), dtype=np.float32))


# -- batched path (what a GPU worker runs), exercised on CPU --------------------------------


def test_batched_path_matches_single_photos(analyzer: FaceAnalyzer, photo_bytes) -> None:
    """Letterboxed batch with HOG: same faces as one photo at a time, bad input kept in place."""
    settings = EngineSettings(max_side=400)
    batched = FaceAnalyzer(settings)
    items = [photo_bytes("obama/obama-small.jpg"), b"", photo_bytes("group/kit-harington-and-rose-leslie.jpg")]
    results = batched.analyze_batch(items)
    assert len(results) == 3
    assert results[1].__class__.__name__ == "EmptyImage"
    for data, result in zip([items[0], items[2]], [results[0], results[2]], strict=False):
        single = batched.analyze(data)
        assert [f.box for f in result.faces] == [f.box for f in single.faces]
        for a, b in zip(result.faces, single.faces, strict=False):
            assert distance(a.vector, b.vector) < 1e-4
    assert len(results[2].faces) == 2


@pytest.mark.slow
def test_batched_cnn_on_letterboxed_photos(photo_bytes, shared_embeddings) -> None:
    """dlib's batched mmod CNN (the GPU path) on two small photos of different sizes."""
    cnn = FaceAnalyzer(EngineSettings(detector="cnn", max_side=300))
    assert cnn.model_id == "dlib_resnet_v1+5pt/cnn-up0..1"
    rels = ["obama/obama-small.jpg", "group/kit-harington-and-rose-leslie.jpg"]
    results = cnn.analyze_batch([photo_bytes(r) for r in rels])
    for rel, result in zip(rels, results, strict=False):
        hog = shared_embeddings[rel]
        assert len(result.faces) == len(hog.faces), rel
        for face in result.faces:
            assert face.score > 0
            best = max(hog.faces, key=lambda f: iou(face.box, f.box))
            assert iou(face.box, best.box) > 0.5
            assert distance(face.vector, best.vector) < 0.3


# -- parity with face_recognition ------------------------------------------------------------


def _face_recognition():
    """face_recognition, if it can be imported here (it needs pkg_resources, i.e. setuptools < 82)."""
    if importlib.util.find_spec("face_recognition") is None or importlib.util.find_spec("pkg_resources") is None:
        return None
    try:
        import face_recognition
    except (ImportError, SystemExit):  # it calls quit() when its models package fails to import
        return None
    return face_recognition


@pytest.mark.filterwarnings("ignore::UserWarning")  # pkg_resources' deprecation notice
@pytest.mark.parametrize("rel", ["obama/obama-480p.jpg", "group/kit-harington-and-rose-leslie.jpg"])
def test_parity_with_face_recognition(always_upsampled: FaceAnalyzer, photo_bytes, rel: str) -> None:
    fr = _face_recognition()
    if fr is None:
        pytest.skip("face_recognition does not import here (install the [test] extra: setuptools<82)")
    data = photo_bytes(rel)
    image = fr.load_image_file(io.BytesIO(data))
    assert max(image.shape[:2]) <= 1024  # not downscaled: the boxes must agree exactly
    ours = always_upsampled.analyze(data)
    # face_recognition's (top, right, bottom, left) uses inclusive right/bottom.
    theirs = sorted(fr.face_locations(image, 1, model="hog"), key=lambda c: -(c[1] - c[3]) * (c[2] - c[0]))
    assert [(f.box.top, f.box.right - 1, f.box.bottom - 1, f.box.left) for f in ours.faces] == theirs
    vectors = fr.face_encodings(image, known_face_locations=theirs, model="small")
    for face, vector in zip(ours.faces, vectors, strict=False):
        assert distance(face.vector, vector) < 1e-4


# -- how many faces are described --------------------------------------------------------------


def test_only_the_largest_faces_are_described_and_every_face_is_counted(analyzer: FaceAnalyzer, photo_bytes) -> None:
    data = photo_bytes("group/obama-biden-and-one-more.jpg")
    every = analyzer.analyze(data, max_faces=0)  # 0 = no cap
    assert len(every.faces) == every.faces_in_image == 3
    for cap in (1, 2):
        chosen = analyzer.analyze(data, max_faces=cap)
        assert chosen.faces_in_image == 3
        assert [f.box for f in chosen.faces] == [f.box for f in every.faces[:cap]]
        for a, b in zip(chosen.faces, every.faces, strict=False):
            assert distance(a.vector, b.vector) < 1e-6


def test_engine_max_faces_is_the_default_cap(photo_bytes) -> None:
    capped = FaceAnalyzer(EngineSettings(max_faces=2))
    found = capped.analyze(photo_bytes("group/obama-biden-and-one-more.jpg"))
    assert (len(found.faces), found.faces_in_image) == (2, 3)
    batched = capped.analyze_batch([photo_bytes("group/obama-biden-and-one-more.jpg")] * 2, [1, None])
    assert [(len(r.faces), r.faces_in_image) for r in batched] == [(1, 3), (2, 3)]  # type: ignore[union-attr]


def test_a_photo_shrunk_while_decoding_gives_boxes_in_its_own_pixels(analyzer: FaceAnalyzer, photo_bytes) -> None:
    """Over engine.max_decode_side (4096) the photo is halved as it decodes; the boxes and size
    still come back in the photo's pixels, on the same face, with the same person's vector."""
    small = Image.open(io.BytesIO(photo_bytes("obama/obama.jpg"))).convert("RGB")
    big = small.resize((small.width * 5, small.height * 5), Image.Resampling.BICUBIC)  # 4550 x 5685
    found = analyzer.analyze(encode(big, "JPEG", quality=92))
    reference = analyzer.analyze(photo_bytes("obama/obama.jpg"))
    assert (found.width, found.height) == big.size
    assert len(found.faces) == found.faces_in_image == 1
    expected = reference.faces[0].box
    scaled = Box(expected.left * 5, expected.top * 5, expected.right * 5, expected.bottom * 5)
    assert iou(found.faces[0].box, scaled) > 0.8
    assert distance(found.faces[0].vector, reference.faces[0].vector) < SAME_PERSON_DISTANCE / 3
