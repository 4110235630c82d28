"""Generated test images: photos without faces, pixel bombs, broken files."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def landscape(width: int = 640, height: int = 480) -> bytes:
    """A smooth sky-to-grass picture: a real photo-like JPEG with no face in it."""
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    sky = np.stack([120 + 60 * y + 0 * x, 170 + 40 * y + 0 * x, 235 - 30 * y + 0 * x], axis=-1)
    grass = np.stack([60 + 30 * x + 0 * y, 140 + 20 * x + 0 * y, 50 + 0 * x + 0 * y], axis=-1)
    pixels = np.where((y > 0.65)[..., None], grass, sky).astype(np.uint8)
    return encode(Image.fromarray(pixels))


def pixel_bomb(side: int = 9000) -> bytes:
    """A PNG of ``side``×``side`` one-bit pixels: a few kilobytes that decode to far too many pixels."""
    return encode(Image.new("1", (side, side)), "PNG", optimize=True)


def truncated(photo: bytes, keep: float = 0.4) -> bytes:
    return photo[: int(len(photo) * keep)]
