"""Descriptor benchmark: the same face chips through dlib and through ONNX Runtime, one thread each.

    python bench/descriptor.py            # every face of examples/faces, 5 rounds (about a minute)
    python bench/descriptor.py --rounds 2

Side by side, in one process, on the 150×150 chips of every face of the sample
photos (dlib's HOG, 5-point landmarks, ``get_face_chips``, as the engine cuts them):

1. dlib's ``face_recognition_model_v1`` (the installed dlib, e.g. dlib-bin), all chips
   in one call (dlib batches 16 at a time);
2. ONNX Runtime on the converted weights, one intra-op thread, as the engine calls
   it (all faces of one photo per call), and in batches of 32 (a crowd, or a task);
3. the largest L2 distance between the two backends' vectors, per face.

Times are CPU seconds of this process (single-threaded both: barely moved by other
load), best of the rounds. The last line is the key figure: dlib ms ÷ ONNX ms per face.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

import dlib  # noqa: E402

from sozy.config import EngineSettings  # noqa: E402
from sozy.faces.analyze import FaceAnalyzer  # noqa: E402
from sozy.faces.decode import decode_image  # noqa: E402
from sozy.faces.descriptor import DlibDescriptor, OnnxDescriptor, face_chips  # noqa: E402
from sozy.faces.models import find_model_files  # noqa: E402
from sozy.faces.onnx_model import convert  # noqa: E402

FACES_DIR = Path(os.environ.get("SOZY_TEST_FACES", REPO_ROOT / "examples" / "faces"))


def sample_chips() -> list[np.ndarray]:
    """Per photo, the chips of its faces (photos without a face left out)."""
    analyzer = FaceAnalyzer(EngineSettings(descriptor="dlib"))
    landmarks = dlib.shape_predictor(str(find_model_files().landmarks))
    with (FACES_DIR / "manifest.csv").open(newline="") as fh:
        paths = [FACES_DIR / row["path"] for row in csv.DictReader(fh)]
    photos = []
    for path in paths:
        rgb = decode_image(path.read_bytes(), EngineSettings.max_pixels)
        shapes = dlib.full_object_detections()
        for face in analyzer.analyze_array(rgb).faces:
            b = face.box
            shapes.append(landmarks(rgb, dlib.rectangle(b.left, b.top, b.right - 1, b.bottom - 1)))
        if len(shapes):
            photos.append(face_chips(rgb, shapes))
    return photos


def best_cpu_ms_per_face(run: Callable[[], np.ndarray], faces: int, rounds: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), np.zeros(0)
    for _ in range(rounds):
        started = time.process_time()
        out = run()
        best = min(best, time.process_time() - started)
    return 1000 * best / faces, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per backend (best is kept)")
    args = parser.parse_args()
    import onnxruntime

    photos = sample_chips()
    chips = np.concatenate(photos)
    faces = len(chips)
    weights = find_model_files().encoder
    reference = DlibDescriptor(weights)
    onnx = OnnxDescriptor(convert(weights))
    print(
        f"{faces} faces from {len(photos)} photos in {FACES_DIR}; dlib {dlib.__version__} (BLAS {dlib.DLIB_USE_BLAS}), "
        f"onnxruntime {onnxruntime.__version__} {onnx.active_providers}, one thread each, best of {args.rounds} rounds"
    )
    reference.describe(chips[:2]), onnx.describe(chips[:2])  # warm-up

    dlib_ms, dlib_vectors = best_cpu_ms_per_face(lambda: reference.describe(chips), faces, args.rounds)
    onnx_ms, onnx_vectors = best_cpu_ms_per_face(
        lambda: np.concatenate([onnx.describe(p) for p in photos]), faces, args.rounds
    )
    batch_ms, _ = best_cpu_ms_per_face(lambda: onnx.describe(chips), faces, args.rounds)
    one_ms, _ = best_cpu_ms_per_face(
        lambda: np.concatenate([onnx.describe(c[None]) for c in chips]), faces, args.rounds
    )
    worst = float(np.linalg.norm(dlib_vectors.astype(np.float64) - onnx_vectors, axis=1).max())
    print(f"  dlib face_recognition_model_v1          {dlib_ms:7.1f} CPU ms/face")
    print(f"  ONNX Runtime, a photo's faces per call  {onnx_ms:7.1f} CPU ms/face  ({dlib_ms / onnx_ms:.1f}× dlib)")
    print(f"  ONNX Runtime, one face per call         {one_ms:7.1f} CPU ms/face  ({dlib_ms / one_ms:.1f}× dlib)")
    print(
        f"  ONNX Runtime, batches of {onnx.batch:<3}           {batch_ms:7.1f} CPU ms/face  "
        f"({dlib_ms / batch_ms:.1f}× dlib)"
    )
    print(f"  max L2(dlib, ONNX) over {faces} faces = {worst:.2e}  (goal ≤ 0.001)")
    print(f"speedup = {dlib_ms / onnx_ms:.1f}")


if __name__ == "__main__":
    main()
