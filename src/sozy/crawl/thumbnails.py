"""Face thumbnails (``crawl.thumbnails = true``): small JPEG crops in ``<data_dir>/thumbnails/``.

Cropping and encoding are CPU work done in a thread, off the event loop;
files are written with aiofiles under a temporary name and renamed, so a
killed crawl never leaves half a thumbnail behind a stored face. The file
is named after the face's point id, so a re-crawl overwrites, never adds.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Sequence
from pathlib import Path

import aiofiles
import aiofiles.os
from PIL import Image

from sozy.faces.decode import decode_image
from sozy.records import Box
from sozy.thumbnails import THUMBNAIL_DIR, thumbnail_path

# Room around the face box on each side, as a fraction of the box: hair and chin.
MARGIN = 0.25
JPEG_QUALITY = 85


def crop_faces(data: bytes, boxes: Sequence[Box], size: int, max_pixels: int) -> list[bytes]:
    """JPEG bytes of each face, at most ``size`` px on its longer side.

    The photo is decoded the way the engine decodes it (EXIF orientation
    applied), so boxes land on the faces.
    """
    if not boxes:
        return []
    image = Image.fromarray(decode_image(data, max_pixels))
    crops = []
    for box in boxes:
        mx, my = int(box.width * MARGIN), int(box.height * MARGIN)
        area = (
            max(0, box.left - mx),
            max(0, box.top - my),
            min(image.width, box.right + mx),
            min(image.height, box.bottom + my),
        )
        face = image.crop(area)
        face.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        face.save(out, format="JPEG", quality=JPEG_QUALITY)
        crops.append(out.getvalue())
    return crops


async def write_thumbnails(
    data_dir: Path, data: bytes, items: Sequence[tuple[str, Box]], size: int, max_pixels: int
) -> list[str]:
    """Write a thumbnail per ``(point id, box)``; returns their relative paths, in order."""
    crops = await asyncio.to_thread(crop_faces, data, [box for _, box in items], size, max_pixels)
    return await save_thumbnails(data_dir, [(point_id, jpeg) for (point_id, _), jpeg in zip(items, crops, strict=True)])


async def save_thumbnails(data_dir: Path, crops: Sequence[tuple[str, bytes]]) -> list[str]:
    """Write ``(point id, JPEG bytes)`` crops (cut here or on a cluster node); returns their relative paths."""
    folder = data_dir / THUMBNAIL_DIR
    await aiofiles.os.makedirs(folder, exist_ok=True)
    paths = []
    for point_id, jpeg in crops:
        rel = thumbnail_path(point_id)
        target = data_dir / rel
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        async with aiofiles.open(tmp, "wb") as fh:
            await fh.write(jpeg)
        await aiofiles.os.replace(tmp, target)
        paths.append(rel)
    return paths
