"""Photo bytes → an RGB uint8 array, or a typed error.

Pillow does the decoding. What this module adds is the policy: only the five
web formats, the pixel cap checked from the header before any pixel is
decoded, EXIF orientation applied, every colour mode made RGB (transparency
laid on white), and every failure turned into an :class:`ImageError`.

Memory is bounded as well as pixels. A photo longer than ``max_side`` is
shrunk as early as its format allows: a JPEG is decoded at a reduced DCT
scale (``draft``), anything else is decoded once and reduced by an integer
factor (box averaging) before any mode conversion, and 16-bit greyscale is
reduced in strips of rows with integer arithmetic. What decoding will need is
estimated from the header first; a photo that would need more than
``max_bytes`` fails alone with :class:`ImageTooLarge` before it is decoded. It never
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
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from sozy.faces.errors import CorruptImage, EmptyImage, ImageError, ImageTooLarge, NotAnImage
from sozy.imagetype import sniff_image_type

# Bytes per pixel of Pillow's in-memory modes (RGB is stored as 4 bytes too).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Modes Image.reduce() handles; P and 1 hold indexes or bits, not levels, and I;16 is not supported.
_REDUCIBLE = frozenset({"L", "LA", "La", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F"})
# Rows of output reduced at a time (times the factor of input rows): strips keep the copies small.
_STRIP_ROWS = 32
# Pillow format names for the types sozy.imagetype recognises.
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP"}
_WHITE = (255, 255, 255, 255)
_TRUNCATION_SWITCH = threading.Lock()


@dataclass(frozen=True, slots=True)
class DecodedPhoto:
    """The photo's pixels (perhaps shrunk) and its size as a person sees it (EXIF applied)."""

    rgb: np.ndarray
    width: int
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Original pixels per array pixel, horizontally and vertically."""
        return self.width / self.rgb.shape[1], self.height / self.rgb.shape[0]


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode a JPEG, PNG, WebP, GIF (first frame) or BMP into an ``H×W×3`` uint8 RGB array.

    EXIF orientation is applied, so the array is the photo as a person sees it.
    Raises :class:`EmptyImage`, :class:`NotAnImage`, :class:`CorruptImage` or
    :class:`ImageTooLarge`; never anything else for bad bytes.
    """
    return decode_photo(data, max_pixels).rgb


def decode_photo(data: bytes, max_pixels: int, max_side: int = 0, max_bytes: int = 0) -> DecodedPhoto:
    """:func:`decode_image`, shrunk by an integer factor to at most ``max_side`` (0 = never),
    refusing a photo whose decoding would need more than ``max_bytes`` (0 = no limit)."""
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
            return _decode(data, kind, max_pixels, max_side, max_bytes)
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


def _decode(data: bytes, kind: str, max_pixels: int, max_side: int, max_bytes: int) -> DecodedPhoto:
    try:
        opened = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]])
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except UnidentifiedImageError:
        raise CorruptImage(f"damaged {kind} image: Pillow cannot identify it") from None
    with opened:
        width, height = opened.size
        if width <= 0 or height <= 0:
            raise CorruptImage(f"{kind} image declares no pixels ({width}×{height})")
        # The header alone gives the size: refuse before decoding anything.
        if width * height > max_pixels:
            raise ImageTooLarge(f"{width}×{height} = {width * height} pixels exceeds the limit of {max_pixels}")
        factor = _shrink_factor(width, height, max_side)
        if factor > 1 and kind == "jpeg":
            # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT: the full size never exists.
            opened.draft("RGB", (-(-width // factor), -(-height // factor)))
            factor = _shrink_factor(*opened.size, max_side)
        needed = _decode_bytes(opened.mode, *opened.size, factor)
        if max_bytes and needed > max_bytes:
            raise ImageTooLarge(
                f"decoding this {width}×{height} {opened.mode} {kind} needs about {needed >> 20} MB, "
                f"over the limit of {max_bytes >> 20} MB"
            )
        opened.load()  # GIF/WebP: the first frame only, which is what open() selected
        image = _shrink(opened, factor)
        if image is not opened:
            opened.close()  # the full-size pixels go now, before any conversion
        _apply_orientation(image)
        rgb = _to_rgb(image)
        if rgb is not image:
            image.close()
        array = np.asarray(rgb, dtype=np.uint8)
        rgb.close()
        del image, rgb
    if array.ndim != 3 or array.shape[2] != 3:
        raise CorruptImage(f"decoded {kind} image has unexpected shape {array.shape}")
    # The size as a person sees it: swapped if EXIF turned the photo a quarter.
    turned = (array.shape[1] >= array.shape[0]) != (width >= height) and width != height
    seen_w, seen_h = (height, width) if turned else (width, height)
    # dlib wants a C-contiguous array that it does not share with Pillow.
    return DecodedPhoto(np.ascontiguousarray(array), seen_w, seen_h)


def _shrink_factor(width: int, height: int, max_side: int) -> int:
    """The smallest integer factor that brings the longest side to ``max_side`` or under."""
    longest = max(width, height)
    if max_side <= 0 or longest <= max_side:
        return 1
    return -(-longest // max_side)


def _decode_bytes(mode: str, width: int, height: int, factor: int) -> int:
    """Pillow's buffer for the decoded photo plus its shrunk copy (4 bytes a pixel for RGB)."""
    full = width * height * _MODE_BYTES.get(mode, 4)
    return full + full // (factor * factor) if factor > 1 else full


def _shrink(image: Image.Image, factor: int) -> Image.Image:
    if factor <= 1:
        return image
    if image.mode in _REDUCIBLE:
        return _reduce_in_strips(image, factor)
    if image.mode.startswith("I;16"):
        return _reduce_16bit(image, factor)
    # P and 1: nearest neighbour keeps palette indexes and bits meaningful.
    size = (max(1, image.width // factor), max(1, image.height // factor))
    return image.resize(size, Image.Resampling.NEAREST)


def _reduce_in_strips(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)`` a strip of rows at a time: reduce() copies an RGBA or LA photo
    whole to premultiply its alpha, which at the pixel cap is another 240 MB."""
    out_w, out_h = max(1, image.width // factor), max(1, image.height // factor)
    out = Image.new(image.mode, (out_w, out_h))
    for top in range(0, out_h, _STRIP_ROWS):
        rows = min(_STRIP_ROWS, out_h - top)
        strip = image.crop((0, top * factor, out_w * factor, (top + rows) * factor))
        out.paste(strip.reduce(factor), (0, top))
    return out


def _reduce_16bit(image: Image.Image, factor: int) -> Image.Image:
    """16-bit greyscale → 8-bit, averaged over ``factor``×``factor`` blocks, a strip of rows at a time."""
    out_w, out_h = max(1, image.width // factor), max(1, image.height // factor)
    out = np.empty((out_h, out_w), dtype=np.uint8)
    dtype = np.dtype(">u2") if image.mode == "I;16B" else np.dtype("<u2")
    for top in range(0, out_h, _STRIP_ROWS):
        rows = min(_STRIP_ROWS, out_h - top)
        strip = image.crop((0, top * factor, out_w * factor, (top + rows) * factor))
        values = np.frombuffer(strip.tobytes(), dtype=dtype).reshape(rows, factor, out_w, factor)
        sums = values.sum(axis=(1, 3), dtype=np.uint64)
        # Mean over the block, then 0..65535 → 0..255, rounded: (sum + n·257/2) // (n·257).
        n = factor * factor * 257
        out[top : top + rows] = (sums + n // 2) // n
    return Image.fromarray(out, "L")


def _apply_orientation(image: Image.Image) -> None:
    """Rotate/flip in place per the EXIF orientation tag; a damaged EXIF block is ignored."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # broken EXIF must not cost the photo
        return


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
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        paper = Image.new("RGB", rgba.size, _WHITE[:3])
        paper.paste(rgba, (0, 0), rgba)  # blended by its own alpha, without a converted copy
        return paper
    # L, 1, CMYK, YCbCr, RGBX, ...: Pillow's own conversions are right for these.
    return image.convert("RGB")


def _wide_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale → 8-bit, scaled rather than clipped, in integers (float32 for F)."""
    values = np.asarray(image)
    if image.mode == "F":
        values = np.clip(np.rint(values), 0, 65535).astype(np.uint32)
    if image.mode.startswith("I;16") or (values.size and values.max() > 255):
        wide = np.clip(values, 0, 65535).astype(np.uint32)
        grey = ((wide + 128) // 257).astype(np.uint8)  # 0..65535 → 0..255, rounded
    else:
        grey = np.clip(values, 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
