"""Photo bytes → an RGB uint8 array, or a typed error.

Pillow does the decoding. What this module adds is the policy: only the five
web formats, the pixel cap checked from the header before any pixel is
decoded, EXIF orientation applied, every colour mode made RGB (transparency
laid on white), and every failure turned into an :class:`ImageError`. It never
touches Pillow's global settings (``MAX_IMAGE_PIXELS``,
``LOAD_TRUNCATED_IMAGES``), so other users of Pillow in the process are
unaffected, with one exception: a library that switched on
``LOAD_TRUNCATED_IMAGES`` (``face_recognition`` does, on import) would make
Pillow accept half a photo, so that switch is held off while we decode.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from sozy.faces.errors import CorruptImage, EmptyImage, ImageError, ImageTooLarge, NotAnImage
from sozy.imagetype import sniff_image_type

# Pillow format names for the types sozy.imagetype recognises.
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP"}
_WHITE = (255, 255, 255, 255)
_TRUNCATION_SWITCH = threading.Lock()


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode a JPEG, PNG, WebP, GIF (first frame) or BMP into an ``H×W×3`` uint8 RGB array.

    EXIF orientation is applied, so the array is the photo as a person sees it.
    Raises :class:`EmptyImage`, :class:`NotAnImage`, :class:`CorruptImage` or
    :class:`ImageTooLarge`; never anything else for bad bytes.
    """
    if not data:
        raise EmptyImage("no bytes")
    kind = sniff_image_type(bytes(data[:16]))
    if kind is None:
        raise NotAnImage(f"not a JPEG, PNG, WebP, GIF or BMP image (starts with {bytes(data[:8])!r})")
    # Pillow reports oddities (bad EXIF, palette transparency, large images) as
    # warnings; decoding is a closed boundary, so they are dealt with here and
    # never escape (under ``-W error`` they would otherwise become crashes).
    with warnings.catch_warnings(), _truncated_images_refused():
        warnings.simplefilter("ignore")
        try:
            return _decode(data, kind, max_pixels)
        except ImageError:
            raise
        except MemoryError:
            raise ImageTooLarge(f"not enough memory to decode this {kind} image") from None
        except Exception as exc:  # Pillow's plugins raise many types for damaged data
            raise CorruptImage(f"cannot decode {kind} image: {_describe(exc)}") from None


@contextmanager
def _truncated_images_refused() -> Iterator[None]:
    """Truncated data must fail even if another library told Pillow to accept it."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _TRUNCATION_SWITCH:
        saved = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _decode(data: bytes, kind: str, max_pixels: int) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]])
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except UnidentifiedImageError:
        raise CorruptImage(f"damaged {kind} image: Pillow cannot identify it") from None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise CorruptImage(f"{kind} image declares no pixels ({width}×{height})")
        # The header alone gives the size: refuse before decoding anything.
        if width * height > max_pixels:
            raise ImageTooLarge(f"{width}×{height} = {width * height} pixels exceeds the limit of {max_pixels}")
        image.load()  # GIF/WebP: the first frame only, which is what open() selected
        image = _apply_orientation(image)
        rgb = _to_rgb(image)
        array = np.asarray(rgb, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise CorruptImage(f"decoded {kind} image has unexpected shape {array.shape}")
    # dlib wants a C-contiguous array that it does not share with Pillow.
    return np.ascontiguousarray(array)


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip per the EXIF orientation tag; a damaged EXIF block is ignored."""
    try:
        rotated = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF must not cost the photo
        return image
    return rotated if rotated is not None else image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return _wide_to_rgb(image)
    if mode == "P" and "transparency" not in image.info:
        return image.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa", "P"):
        # Transparent pixels hide arbitrary colours; show them as white paper.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    # L, 1, CMYK, YCbCr, RGBX, ...: Pillow's own conversions are right for these.
    return image.convert("RGB")


def _wide_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale → 8-bit, scaled rather than clipped."""
    values = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16") or (values.size and values.max() > 255):
        values = values / 257.0  # 0..65535 → 0..255
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
