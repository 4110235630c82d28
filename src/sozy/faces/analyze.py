"""Decode, detect and encode faces in one process, synchronously.

This is what each engine worker runs; tests and small tools may use it
directly. dlib is called the way ``face_recognition`` calls it (frontal HOG or
mmod CNN detector, 5-point landmarks, ResNet descriptor), with two changes that
matter for speed and for large photos:

- detection runs on a copy downscaled to ``max_side``; the boxes are mapped
  back to the original pixels;
- detection is coarse to fine: without upsampling first (4× cheaper), and
  with it only when that finds no face or only small ones (``upsample_below_px``);
- landmarks and descriptors are computed on the full-resolution photo from
  those mapped boxes, so the vectors do not depend on the detection scale;
  a photo longer than ``max_decode_side`` is shrunk by an integer factor as it
  is decoded (sozy.faces.decode bounds the memory), and its boxes are given
  back in the photo's own pixels;
- every face is detected and counted, but only the largest ``max_faces`` get
  landmarks and a descriptor: a crowd costs one detection, not a descriptor a face.

Descriptors come from ``sozy.faces.descriptor``: by default dlib's own ResNet
weights run by ONNX Runtime, the same vectors as dlib's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from sozy.config import EngineSettings
from sozy.faces.decode import DecodedPhoto, decode_photo
from sozy.faces.descriptor import load_descriptor
from sozy.faces.errors import ImageError
from sozy.faces.models import find_model_files, model_id_for, resolve_detector
from sozy.records import Box, Face, PhotoFaces

__all__ = ["FaceAnalyzer", "detection_size", "model_id_for", "resolve_detector"]


def detection_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size of the copy the detector sees: the photo shrunk to ``max_side``, never enlarged."""
    longest = max(width, height)
    if max_side <= 0 or longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


# A detector hit: its rectangle in detection pixels and its score.
_Hit = tuple[dlib.rectangle, float]


@dataclass(frozen=True, slots=True)
class _Detection:
    """A detector hit mapped to original pixels (floats, right/bottom exclusive)."""

    left: float
    top: float
    right: float
    bottom: float
    score: float


class FaceAnalyzer:
    """Loads the dlib models once; then turns photos into :class:`PhotoFaces`."""

    def __init__(self, settings: EngineSettings, device: str = "cpu", descriptor_device: str = "cpu") -> None:
        """``device``: where dlib runs (CUDA: the CNN detector); ``descriptor_device``:
        where ONNX Runtime computes descriptors (``engine.descriptor = "onnx"``)."""
        self.settings = settings
        self.device = device
        self.detector = resolve_detector(settings.detector, device)
        self.upsample = max(0, int(settings.upsample))
        self.upsample_below_px = max(0, int(settings.upsample_below_px)) if self.upsample else 0
        self.model_id = model_id_for(self.detector, self.upsample, self.upsample_below_px)
        files = find_model_files()
        self._landmarks = dlib.shape_predictor(str(files.landmarks))
        cache_dir = Path(settings.model_cache_dir) if settings.model_cache_dir else None
        self._descriptor = load_descriptor(settings.descriptor, descriptor_device, files.encoder, cache_dir)
        if self.detector == "cnn":
            self._cnn = dlib.cnn_face_detection_model_v1(str(files.cnn_detector))
        else:
            self._hog = dlib.get_frontal_face_detector()

    # -- public API -----------------------------------------------------------------

    def analyze(self, data: bytes, max_faces: int | None = None) -> PhotoFaces:
        """Decode photo bytes and return its largest faces, largest first. Raises ImageError."""
        photo = self._decode(data)
        return _in_original_pixels(self.analyze_array(photo.rgb, max_faces), photo)

    def analyze_array(self, rgb: np.ndarray, max_faces: int | None = None) -> PhotoFaces:
        """The largest faces in an ``H×W×3`` uint8 RGB array, largest first, boxes in its pixels.

        Every face is detected and counted (``faces_in_image``); only the largest
        ``max_faces`` (default ``engine.max_faces``) get landmarks and a descriptor.
        """
        rgb = _check_rgb(rgb)
        height, width = rgb.shape[:2]
        small_w, small_h = detection_size(width, height, self.settings.max_side)
        small = rgb if (small_w, small_h) == (width, height) else _resize(rgb, small_w, small_h)
        raw = self._detect_many([small])[0]
        detections = _map_back(raw, width / small_w, height / small_h)
        return self._encode_many([rgb], [detections], [max_faces])[0]

    def analyze_batch(
        self, items: Sequence[bytes], max_faces: Sequence[int | None] | None = None
    ) -> list[PhotoFaces | ImageError]:
        """Several photos through one batched CNN call, as a GPU worker runs them.

        dlib's batched detector needs images of one size: each photo is shrunk
        to ``max_side`` and placed at the top-left of a shared black canvas
        (letterboxing), so a box maps back by the photo's own scale alone.
        Descriptors for all faces of all photos are then computed in one call.
        Bad photos come back as their ImageError; the others are unaffected.
        """
        results: list[PhotoFaces | ImageError | None] = [None] * len(items)
        photos: list[tuple[int, DecodedPhoto]] = []
        limits = list(max_faces) if max_faces is not None else [None] * len(items)
        for i, data in enumerate(items):
            try:
                photos.append((i, self._decode(data)))
            except ImageError as exc:
                results[i] = exc
        if photos:
            chosen = self._batch_faces([photo.rgb for _, photo in photos], [limits[i] for i, _ in photos])
            for (i, photo), faces in zip(photos, chosen, strict=True):
                results[i] = _in_original_pixels(faces, photo)
        return [r for r in results if r is not None]

    # -- internals ------------------------------------------------------------------

    def _decode(self, data: bytes) -> DecodedPhoto:
        s = self.settings
        return decode_photo(data, s.max_pixels, s.max_decode_side, s.max_decode_mb << 20)

    def _batch_faces(self, images: list[np.ndarray], max_faces: list[int | None]) -> list[PhotoFaces]:
        sizes = [detection_size(im.shape[1], im.shape[0], self.settings.max_side) for im in images]
        canvas_w = max(w for w, _ in sizes)
        canvas_h = max(h for _, h in sizes)
        canvases = []
        for im, (w, h) in zip(images, sizes, strict=True):
            canvas = np.zeros((canvas_h, canvas_w, 3), dtype=np.uint8)
            canvas[:h, :w] = im if (w, h) == (im.shape[1], im.shape[0]) else _resize(im, w, h)
            canvases.append(canvas)
        raw_per_image = self._detect_many(canvases)
        detections = [
            _map_back(raw, im.shape[1] / w, im.shape[0] / h)
            for raw, im, (w, h) in zip(raw_per_image, images, sizes, strict=True)
        ]
        return self._encode_many(images, detections, max_faces)

    def _detect_many(self, images: list[np.ndarray]) -> list[list[_Hit]]:
        """Detector hits per image (detection pixels), coarse to fine."""
        if not self.upsample_below_px:
            return self._run_detector(images, self.upsample)
        hits = self._run_detector(images, 0)
        finer = [i for i, found in enumerate(hits) if self._may_miss_smaller(found)]
        if finer:
            for i, found in zip(finer, self._run_detector([images[i] for i in finer], self.upsample), strict=True):
                hits[i] = found
        return hits

    def _may_miss_smaller(self, hits: list[_Hit]) -> bool:
        """No face, or a face near the coarse pass's smallest: the fine pass may find more.

        Faces in one photo tend to be of a size; a photo whose faces are all well
        above what the coarse pass can see is not searched again for tiny ones.
        """
        return not hits or min(min(r.width(), r.height()) for r, _ in hits) < self.upsample_below_px

    def _run_detector(self, images: list[np.ndarray], upsample: int) -> list[list[_Hit]]:
        if self.detector == "cnn":
            # dlib's batched CNN: one call for the batch (images of one size).
            batches = self._cnn(images, upsample, batch_size=len(images))
            return [[(d.rect, float(d.confidence)) for d in dets] for dets in batches]
        hits = []
        for image in images:  # HOG has no batched form
            rects, scores, _ = self._hog.run(image, upsample, 0.0)
            hits.append(list(zip(rects, (float(s) for s in scores), strict=True)))
        return hits

    def _encode_many(
        self, images: list[np.ndarray], detections: list[list[_Detection]], max_faces: Sequence[int | None]
    ) -> list[PhotoFaces]:
        """Landmarks on the full-resolution photos for the largest faces, then all descriptors in one call."""
        kept: list[list[_Detection]] = []
        counts: list[int] = []
        shapes: list[dlib.full_object_detections] = []
        for rgb, dets, limit in zip(images, detections, max_faces, strict=True):
            height, width = rgb.shape[:2]
            dets = [d for d in dets if self._big_enough(d) and _clip(d, width, height).area > 0]
            dets.sort(key=lambda d: (-_clip(d, width, height).area, d.left, d.top))
            counts.append(len(dets))
            # Chosen before describing: a crowd photo costs a detection, not a descriptor per face.
            dets = dets[: self._face_limit(limit)]
            found = dlib.full_object_detections()
            for d in dets:
                found.append(self._landmarks(rgb, _dlib_rect(d)))
            kept.append(dets)
            shapes.append(found)
        with_faces = [i for i, found in enumerate(shapes) if len(found)]
        described = self._descriptor.describe_photos([images[i] for i in with_faces], [shapes[i] for i in with_faces])
        vectors = dict(zip(with_faces, described, strict=True))
        photos = []
        for i, (rgb, dets) in enumerate(zip(images, kept, strict=True)):
            height, width = rgb.shape[:2]
            faces = [
                Face(box=_clip(d, width, height), vector=np.asarray(v, dtype=np.float32), score=d.score)
                for d, v in zip(dets, vectors.get(i, []), strict=False)
            ]
            photos.append(
                PhotoFaces(width=width, height=height, faces=faces, model=self.model_id, faces_in_image=counts[i])
            )
        return photos

    def _face_limit(self, requested: int | None) -> int | None:
        """Faces to describe: as asked, else ``engine.max_faces``; ``None`` (0 in settings) = all."""
        limit = self.settings.max_faces if requested is None else requested
        return limit if limit > 0 else None

    def _big_enough(self, d: _Detection) -> bool:
        return min(d.right - d.left, d.bottom - d.top) >= self.settings.min_face_px


def _in_original_pixels(found: PhotoFaces, photo: DecodedPhoto) -> PhotoFaces:
    """Faces found on a shrunk copy, with their boxes (and the size) in the photo's own pixels."""
    if (photo.width, photo.height) == (found.width, found.height):
        return found
    sx, sy = photo.scale
    faces = [
        Face(
            box=Box(
                left=min(round(f.box.left * sx), photo.width),
                top=min(round(f.box.top * sy), photo.height),
                right=min(round(f.box.right * sx), photo.width),
                bottom=min(round(f.box.bottom * sy), photo.height),
            ),
            vector=f.vector,
            score=f.score,
        )
        for f in found.faces
    ]
    return replace(found, width=photo.width, height=photo.height, faces=faces)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError("expected an H×W×3 uint8 RGB array")
    return np.ascontiguousarray(rgb)


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    # Pillow's bilinear filter widens its support when shrinking, so small
    # copies are properly anti-aliased (a plain subsample would alias).
    small = Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.uint8)


def _map_back(raw: list[_Hit], sx: float, sy: float) -> list[_Detection]:
    """Detector rectangles (inclusive corners, detection pixels) → original pixels."""
    return [
        _Detection(
            left=r.left() * sx,
            top=r.top() * sy,
            right=(r.right() + 1) * sx,
            bottom=(r.bottom() + 1) * sy,
            score=score,
        )
        for r, score in raw
    ]


def _dlib_rect(d: _Detection) -> dlib.rectangle:
    # Not clipped: a face cut by the photo's edge still aligns from its full box.
    return dlib.rectangle(round(d.left), round(d.top), round(d.right) - 1, round(d.bottom) - 1)


def _clip(d: _Detection, width: int, height: int) -> Box:
    return Box(
        left=min(max(round(d.left), 0), width),
        top=min(max(round(d.top), 0), height),
        right=min(max(round(d.right), 0), width),
        bottom=min(max(round(d.bottom), 0), height),
    )
