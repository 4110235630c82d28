"""Which dlib models the engine uses, where their files are, and how they are named.

Kept free of ``import dlib`` so the engine's parent process can plan and name
things without loading dlib itself.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sozy.config import Detector
from sozy.faces.errors import FaceEngineError

# Names the descriptor model + landmark set; vectors with different ids don't mix. Both
# descriptor backends (engine.descriptor) give the same vectors, so they share it.
ENCODER_ID = "dlib_resnet_v1+5pt"


class ModelFilesMissing(FaceEngineError):
    """The dlib model weights (package ``face_recognition_models``) are not installed."""

    code = "models_missing"


@dataclass(frozen=True)
class ModelFiles:
    """Paths of the dlib weight files shipped by ``face_recognition_models``."""

    encoder: Path
    landmarks: Path
    cnn_detector: Path


def find_model_files() -> ModelFiles:
    """Locate the weights without importing ``face_recognition_models``.

    Its ``__init__`` imports ``pkg_resources``, which setuptools 82 removed;
    the files themselves sit in the package's ``models/`` folder.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        models = Path(location) / "models"
        files = ModelFiles(
            encoder=models / "dlib_face_recognition_resnet_model_v1.dat",
            landmarks=models / "shape_predictor_5_face_landmarks.dat",
            cnn_detector=models / "mmod_human_face_detector.dat",
        )
        if all(p.is_file() for p in (files.encoder, files.landmarks, files.cnn_detector)):
            return files
    raise ModelFilesMissing(
        "dlib model files not found: install the package 'face-recognition-models' "
        "(pip install face-recognition-models)"
    )


def resolve_detector(setting: Detector, device: str) -> Literal["hog", "cnn"]:
    """``"auto"`` is HOG on CPU (fast) and CNN on a GPU (accurate, batched)."""
    if setting == "auto":
        return "cnn" if device == "cuda" else "hog"
    return setting


def model_id_for(detector: str, upsample: int, upsample_below_px: int = 0) -> str:
    """The id stored with every vector, e.g. ``dlib_resnet_v1+5pt/hog-up1``.

    Coarse-to-fine detection (upsampling only where needed) is ``hog-up0..1``.
    """
    upsample = max(0, upsample)
    if upsample and upsample_below_px > 0:
        return f"{ENCODER_ID}/{detector}-up0..{upsample}"
    return f"{ENCODER_ID}/{detector}-up{upsample}"
