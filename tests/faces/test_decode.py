"""decode_image: formats, colour modes, EXIF orientation and every kind of bad input."""

from __future__ import annotations

import math
import random
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sozy.config import EngineSettings
from sozy.faces.decode import decode_image, decode_photo
from sozy.faces.errors import CorruptImage, EmptyImage, ImageError, ImageTooLarge, NotAnImage
from tests.faces.images import encode

LIMIT = 60_000_000


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header that claims ``width × height`` RGB pixels."""
    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def rgb_image() -> Image.Image:
    """A small image whose four quadrants have distinct colours (so flips show)."""
    array = np.zeros((40, 60, 3), dtype=np.uint8)
    array[:20, :30] = (255, 0, 0)
    array[:20, 30:] = (0, 255, 0)
    array[20:, :30] = (0, 0, 255)
    array[20:, 30:] = (255, 255, 0)
    return Image.fromarray(array)


# -- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "GIF", "JPEG"])
def test_each_web_format_decodes_to_rgb(rgb_image: Image.Image, fmt: str) -> None:
    params = {"lossless": True} if fmt == "WEBP" else {}
    array = decode_image(encode(rgb_image, fmt, **params), LIMIT)
    assert array.shape == (40, 60, 3) and array.dtype == np.uint8
    assert array.flags["C_CONTIGUOUS"]
    # Colour survives (JPEG is lossy: compare loosely away from the block edges).
    tolerance = 40 if fmt == "JPEG" else 2
    assert np.abs(array[5, 5].astype(int) - (255, 0, 0)).max() <= tolerance
    assert np.abs(array[35, 55].astype(int) - (255, 255, 0)).max() <= tolerance


def test_gif_gives_the_first_frame() -> None:
    red = Image.new("RGB", (16, 16), (255, 0, 0))
    blue = Image.new("RGB", (16, 16), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(__import__("io").BytesIO(data)).n_frames == 2
    assert tuple(decode_image(data, LIMIT)[8, 8]) == (255, 0, 0)


def test_animated_webp_gives_the_first_frame() -> None:
    green = Image.new("RGB", (16, 16), (0, 255, 0))
    blue = Image.new("RGB", (16, 16), (0, 0, 255))
    data = encode(green, "WEBP", save_all=True, append_images=[blue], lossless=True)
    assert tuple(decode_image(data, LIMIT)[8, 8]) == (0, 255, 0)


# -- colour modes ---------------------------------------------------------------------------


def test_rgba_transparency_is_composited_on_white() -> None:
    array = np.zeros((10, 10, 4), dtype=np.uint8)
    array[..., :3] = (10, 200, 30)  # hidden colour under full transparency
    array[:, :5, 3] = 0
    array[:, 5:, 3] = 255
    out = decode_image(encode(Image.fromarray(array, "RGBA"), "PNG"), LIMIT)
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 9]) == (10, 200, 30)


def test_half_transparent_pixels_blend_with_white() -> None:
    array = np.zeros((4, 4, 4), dtype=np.uint8)
    array[..., 3] = 128  # black at ~50 % → mid grey on white
    out = decode_image(encode(Image.fromarray(array, "RGBA"), "PNG"), LIMIT)
    assert 120 <= int(out[0, 0, 0]) <= 135


def test_la_mode() -> None:
    image = Image.new("LA", (8, 8), (50, 255))
    image.putpixel((0, 0), (50, 0))
    out = decode_image(encode(image, "PNG"), LIMIT)
    assert tuple(out[1, 1]) == (50, 50, 50)
    assert tuple(out[0, 0]) == (255, 255, 255)


def test_palette_with_transparency() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)
    data = encode(image, "PNG", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's palette-transparency warning must not escape
        out = decode_image(data, LIMIT)
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[4, 4]) == (200, 10, 10)


def test_palette_without_transparency(rgb_image: Image.Image) -> None:
    out = decode_image(encode(rgb_image.convert("P"), "PNG"), LIMIT)
    assert out.shape == (40, 60, 3)
    assert tuple(out[5, 5]) == (255, 0, 0)


def test_grayscale_becomes_three_equal_channels() -> None:
    out = decode_image(encode(Image.new("L", (8, 8), 77), "PNG"), LIMIT)
    assert out.shape == (8, 8, 3)
    assert tuple(out[3, 3]) == (77, 77, 77)


def test_cmyk_jpeg(rgb_image: Image.Image) -> None:
    out = decode_image(encode(rgb_image.convert("CMYK"), "JPEG", quality=95), LIMIT)
    assert out.shape == (40, 60, 3)
    assert np.abs(out[5, 5].astype(int) - (255, 0, 0)).max() <= 40


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    wide = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    image = Image.fromarray(wide)
    assert image.mode.startswith("I;16")
    out = decode_image(encode(image, "PNG"), LIMIT)
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_one_bit_bmp() -> None:
    image = Image.new("1", (8, 8), 1)
    image.putpixel((0, 0), 0)
    out = decode_image(encode(image, "BMP"), LIMIT)
    assert tuple(out[0, 0]) == (0, 0, 0) and tuple(out[1, 1]) == (255, 255, 255)


# -- EXIF orientation -----------------------------------------------------------------------

# The stored pixels for each orientation: what a camera writes so that applying
# the tag gives the upright picture back.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def with_orientation(image: Image.Image, orientation: int, fmt: str = "PNG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(STORED_AS[orientation]) if orientation in STORED_AS else image
    return encode(stored, fmt, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(rgb_image: Image.Image, orientation: int) -> None:
    out = decode_image(with_orientation(rgb_image, orientation), LIMIT)
    assert np.array_equal(out, np.asarray(rgb_image))


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_in_jpeg(rgb_image: Image.Image, orientation: int) -> None:
    out = decode_image(with_orientation(rgb_image, orientation, "JPEG"), LIMIT)
    assert out.shape == (40, 60, 3)
    assert np.abs(out[5, 5].astype(int) - (255, 0, 0)).max() <= 40


def test_broken_exif_does_not_cost_the_photo(rgb_image: Image.Image) -> None:
    data = encode(rgb_image, "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = decode_image(data, LIMIT)
    assert out.shape == (40, 60, 3)


# -- bad input ------------------------------------------------------------------------------


def test_zero_bytes() -> None:
    with pytest.raises(EmptyImage) as info:
        decode_image(b"", LIMIT)
    assert info.value.code == "empty_image"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        b"Just some text, certainly not a picture.\n",
        b'{"error": "forbidden"}',
        b"\x00",
    ],
    ids=["html", "text", "json", "one-byte"],
)
def test_non_images(data: bytes) -> None:
    with pytest.raises(NotAnImage) as info:
        decode_image(data, LIMIT)
    assert info.value.code == "not_an_image"


def test_random_bytes() -> None:
    data = random.Random(1234).randbytes(4096)
    with pytest.raises(NotAnImage):
        decode_image(data, LIMIT)


def test_truncated_jpeg(photo_bytes) -> None:
    data = photo_bytes("obama/obama.jpg")
    with pytest.raises(CorruptImage) as info:
        decode_image(data[: len(data) // 2], LIMIT)
    assert info.value.code == "corrupt_image"


@pytest.mark.parametrize("keep", [3, 20, 200])
def test_jpeg_cut_inside_its_header(photo_bytes, keep: int) -> None:
    with pytest.raises(CorruptImage):
        decode_image(photo_bytes("obama/obama.jpg")[:keep], LIMIT)


def test_truncated_data_fails_even_when_pillow_was_told_to_accept_it(
    photo_bytes, rgb_image: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what importing face_recognition does
    jpeg = photo_bytes("obama/obama.jpg")
    png = encode(rgb_image, "PNG")
    with pytest.raises(CorruptImage):
        decode_image(jpeg[: len(jpeg) // 2], LIMIT)
    with pytest.raises(CorruptImage):
        decode_image(png[: len(png) - 30], LIMIT)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is left as it was
    assert decode_image(jpeg, LIMIT).shape == (1137, 910, 3)


def test_truncated_png(rgb_image: Image.Image) -> None:
    data = encode(rgb_image, "PNG")
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) - 30], LIMIT)


def test_png_with_garbage_after_the_signature() -> None:
    with pytest.raises(CorruptImage):
        decode_image(b"\x89PNG\r\n\x1a\n" + random.Random(5).randbytes(500), LIMIT)


def test_gif_with_damaged_data(rgb_image: Image.Image) -> None:
    data = bytearray(encode(rgb_image, "GIF"))
    with pytest.raises(CorruptImage):
        decode_image(bytes(data[:40]), LIMIT)


def test_decompression_bomb_header_is_refused_before_decoding() -> None:
    bomb = png_declaring(100_000, 100_000)
    assert len(bomb) < 200
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge) as info:
        decode_image(bomb, LIMIT)
    assert time.perf_counter() - started < 1.0
    assert info.value.code == "too_many_pixels"


def test_pixel_cap_is_our_own_not_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even with Pillow's global guard switched off, the engine's limit holds...
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageTooLarge, match="3000×3000"):
        decode_image(png_declaring(3000, 3000), 1_000_000)
    # ...and the engine never changes Pillow's global settings itself.
    monkeypatch.undo()
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge):
        decode_image(png_declaring(100_000, 100_000), LIMIT)
    assert before == Image.MAX_IMAGE_PIXELS


def test_image_just_under_the_cap_decodes(rgb_image: Image.Image) -> None:
    assert decode_image(encode(rgb_image, "PNG"), 40 * 60).shape == (40, 60, 3)
    with pytest.raises(ImageTooLarge):
        decode_image(encode(rgb_image, "PNG"), 40 * 60 - 1)


def test_unsupported_format_is_not_an_image(rgb_image: Image.Image) -> None:
    with pytest.raises(NotAnImage):
        decode_image(encode(rgb_image, "TIFF"), LIMIT)


def test_every_error_is_an_image_error_and_pickles() -> None:
    import pickle

    for cls in (EmptyImage, NotAnImage, CorruptImage, ImageTooLarge):
        error = pickle.loads(pickle.dumps(cls("why")))
        assert type(error) is cls and isinstance(error, ImageError) and str(error) == "why"


# -- large photos: shrunk as they decode, memory bounded ------------------------------------------

CAP_SIDE = 7740  # 59.9 Mpx, just under the default pixel cap


def _sixteen_bit_png(side: int, level: int) -> bytes:
    image = Image.new("I;16", (side, side), level)
    return encode(image, "PNG")


def test_a_16_bit_png_at_the_pixel_cap_is_shrunk_with_its_levels_scaled() -> None:
    photo = decode_photo(_sixteen_bit_png(CAP_SIDE, 30000), LIMIT, max_side=4096)
    assert photo.rgb.shape == (3870, 3870, 3)  # halved while decoding: 7740 / 2
    assert (photo.width, photo.height) == (CAP_SIDE, CAP_SIDE)
    assert photo.scale == (2.0, 2.0)
    assert np.all(photo.rgb == round(30000 / 257))  # scaled to 8 bits, not clipped


def test_a_16_bit_gradient_is_averaged_and_rounded_in_integers() -> None:
    ramp = np.tile(np.arange(0, 65536, 64, dtype=np.uint16), (64, 1))  # 1024 wide
    image = Image.frombytes("I;16", (1024, 64), ramp.astype("<u2").tobytes())
    out = decode_photo(encode(image, "PNG"), LIMIT, max_side=512).rgb[..., 0]
    expected = np.rint(ramp.reshape(32, 2, 512, 2).mean(axis=(1, 3)) / 257)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_an_rgba_photo_over_the_decode_budget_fails_alone_before_decoding() -> None:
    image = Image.new("RGBA", (CAP_SIDE, CAP_SIDE), (0, 0, 0, 0))
    data = encode(image, "PNG")
    del image
    with pytest.raises(ImageTooLarge, match=r"needs about 285 MB, over the limit of 256 MB"):
        decode_photo(data, LIMIT, max_side=4096, max_bytes=256 << 20)
    photo = decode_photo(data, LIMIT, max_side=4096, max_bytes=320 << 20)
    assert photo.rgb.shape == (3870, 3870, 3)
    assert np.all(photo.rgb == 255)  # transparent → white paper, after shrinking


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(rgb_image: Image.Image) -> None:
    big = rgb_image.resize((6000, 4000))
    photo = decode_photo(encode(big, "JPEG", quality=90), LIMIT, max_side=4096)
    assert photo.rgb.shape == (2000, 3000, 3)
    assert (photo.width, photo.height) == (6000, 4000)


def test_a_large_exif_turned_photo_reports_the_size_a_person_sees(rgb_image: Image.Image) -> None:
    data = with_orientation(rgb_image.resize((5000, 3000)), 6, "JPEG")  # stored 3000 wide, 5000 high
    photo = decode_photo(data, LIMIT, max_side=4096)
    assert (photo.width, photo.height) == (5000, 3000)
    assert photo.rgb.shape == (1500, 2500, 3)


def test_small_photos_are_not_shrunk(rgb_image: Image.Image) -> None:
    photo = decode_photo(encode(rgb_image, "PNG"), LIMIT, max_side=4096)
    assert photo.rgb.shape[:2] == (rgb_image.height, rgb_image.width)
    assert photo.scale == (1.0, 1.0)


_PEAK_SCRIPT = """
import sys
from sozy.config import EngineSettings
from sozy.faces.decode import decode_photo
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024
s = EngineSettings()
data = open(sys.argv[1], "rb").read()
before = hwm()
decode_photo(data, s.max_pixels, s.max_decode_side, s.max_decode_mb << 20)
print(hwm() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
@pytest.mark.parametrize("kind", ["16-bit", "rgba"])
def test_decoding_the_largest_allowed_photo_stays_within_its_budget(tmp_path, kind: str) -> None:
    """Peak memory of a fresh process decoding it (VmHWM), not a guess: within the budget + 10%."""
    budget = EngineSettings().max_decode_mb << 20
    if kind == "16-bit":
        data = _sixteen_bit_png(CAP_SIDE, 12345)
    else:  # the largest RGBA the default budget allows: 4 bytes a pixel plus the halved copy
        side = math.isqrt(budget // 5)
        data = encode(Image.new("RGBA", (side, side), (10, 200, 30, 128)), "PNG")
        with pytest.raises(ImageTooLarge):
            bigger = encode(Image.new("RGBA", (side + 8, side + 8)), "PNG")
            decode_photo(bigger, LIMIT, 4096, budget)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    assert int(result.stdout) < 1.1 * budget, result.stdout
