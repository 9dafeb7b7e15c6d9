"""utils.images.load_image: every odd upload becomes RGB with a note, or a clear ImageError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from utils.images import ImageError, LoadedImage, load_image


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _photo(width: int = 120, height: int = 80) -> Image.Image:
    """A small picture whose left half is red and right half blue (orientation is visible)."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (220, 20, 20)
    array[:, width // 2 :] = (20, 20, 220)
    return Image.fromarray(array)


def _png16_rgb(array: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), written by hand."""
    height, width, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _check(result: LoadedImage, size: tuple[int, int] | None = None) -> np.ndarray:
    assert isinstance(result, LoadedImage)
    assert result.image.mode == "RGB"
    if size is not None:
        assert result.image.size == size
    return np.asarray(result.image)


# --- plain inputs --------------------------------------------------------------------------


def test_path_bytes_file_array_and_pil_give_the_same_pixels(tmp_path):
    data = _bytes(_photo(), "PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    results = [
        load_image(path),
        load_image(str(path)),
        load_image(data),
        load_image(io.BytesIO(data)),
        load_image(np.asarray(_photo())),
        load_image(_photo()),
    ]
    reference = np.asarray(_photo())
    for result in results:
        assert np.array_equal(_check(result, (120, 80)), reference)
        assert result.notes == []
    assert results[0].name == "photo.png"  # the file name, never the full path


def test_jpeg_roundtrip_has_no_notes():
    result = load_image(_bytes(_photo(), "JPEG", quality=95), name="a.jpg")
    _check(result, (120, 80))
    assert result.notes == []


# --- not images ------------------------------------------------------------------------------


def test_text_file_renamed_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my lab notes, not a photo\n")
    with pytest.raises(ImageError, match=r"notes\.jpg is not an image file.*upload a JPEG"):
        load_image(path)


def test_random_bytes_and_empty_file(tmp_path):
    with pytest.raises(ImageError, match="not an image file"):
        load_image(bytes(range(256)) * 4, name="blob.bin")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png is empty"):
        load_image(empty)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (b"%PDF-1.7\n", "PDF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"PK\x03\x04" + b"\x00" * 40, "ZIP"),
    ],
)
def test_known_non_images_get_specific_advice(head, expected):
    with pytest.raises(ImageError, match=expected):
        load_image(head + b"\x00" * 64, name="upload")


def test_truncated_jpeg():
    array = (np.random.default_rng(0).random((300, 400, 3)) * 255).astype(np.uint8)
    data = _bytes(Image.fromarray(array), "JPEG", quality=90)
    with pytest.raises(ImageError, match=r"cut\.jpg looks like a JPEG file but .*truncated"):
        load_image(data[: len(data) // 2], name="cut.jpg")


def test_unsupported_source_type():
    with pytest.raises(ImageError, match="cannot load an image from a int"):
        load_image(42)  # type: ignore[arg-type]


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (15, 200), (300, 8)])
def test_too_small(size):
    with pytest.raises(ImageError, match=r"only \d+ x \d+ px.*at least 16 px"):
        load_image(_bytes(Image.new("RGB", size), "PNG"), name="tiny.png")


def test_large_image_is_downscaled_with_a_note():
    result = load_image(_photo(600, 300), max_side=200)
    _check(result, (200, 100))
    assert any("Downscaled from 600 x 300 to 200 x 100" in n for n in result.notes)


def test_large_jpeg_is_decoded_at_reduced_scale():
    data = _bytes(_photo(1600, 800), "JPEG")
    result = load_image(data, name="big.jpg", max_side=200)
    _check(result, (200, 100))
    assert any("reduced scale" in n for n in result.notes)


def test_decompression_bomb_guard_refuses_before_decoding():
    data = _bytes(_photo(400, 300), "PNG")
    with pytest.raises(ImageError, match=r"400 x 300 px, more than .*decompression bomb"):
        load_image(data, name="bomb.png", max_pixels=100_000)


# --- colour modes --------------------------------------------------------------------------


def test_rgba_transparency_is_flattened_onto_black():
    rgba = Image.new("RGBA", (40, 30), (255, 255, 255, 255))
    rgba.paste((0, 255, 0, 0), (0, 0, 20, 30))  # left half fully transparent
    result = load_image(_bytes(rgba, "PNG"), name="cutout.png")
    pixels = _check(result, (40, 30))
    assert pixels[0, 0].tolist() == [0, 0, 0]
    assert pixels[0, -1].tolist() == [255, 255, 255]
    assert any("transparent" in n and "black" in n for n in result.notes)


def test_opaque_rgba_has_no_note():
    result = load_image(_photo().convert("RGBA"))
    _check(result)
    assert result.notes == []


def test_grayscale():
    gray = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (20, 1)), "L")
    result = load_image(_bytes(gray, "PNG"))
    pixels = _check(result, (64, 20))
    assert np.array_equal(pixels[..., 0], pixels[..., 2])
    assert any("grayscale" in n for n in result.notes)


def test_palette_with_and_without_transparency():
    palette = _photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pixels = _check(load_image(_bytes(palette, "PNG")), (120, 80))
    assert pixels[0, 0, 0] > 150 and pixels[0, -1, 2] > 150
    gif = _bytes(palette, "GIF", transparency=0)
    _check(load_image(gif, name="anim.gif"), (120, 80))


def test_16bit_grayscale_png_is_stretched_by_range():
    values = np.linspace(1000, 5000, 64 * 20).reshape(20, 64).astype(np.uint16)
    data = _bytes(Image.fromarray(values), "PNG")
    result = load_image(data, name="camera.png")
    pixels = _check(result, (64, 20))
    assert pixels.min() == 0 and pixels.max() == 255
    assert any("16-bit" in n and "1000-5000" in n for n in result.notes)


def test_16bit_color_png():
    array = np.zeros((20, 30, 3), np.uint16)
    array[..., 1] = np.linspace(0, 4095, 30, dtype=np.uint16)  # 12-bit data in 16 bits
    result = load_image(_png16_rgb(array), name="rgb48.png")
    pixels = _check(result, (30, 20))
    assert pixels[..., 1].max() == 255  # not the near-black high byte
    assert any("16-bit colour PNG" in n for n in result.notes)


def test_16bit_tiff_gray_rgb_and_multipage():
    tifffile = pytest.importorskip("tifffile")
    gray = np.linspace(200, 3000, 40 * 30).reshape(30, 40).astype(np.uint16)
    rgb = np.stack([gray, gray // 2, gray // 3], axis=-1)
    for array, name in ((gray, "gray16.tif"), (rgb, "rgb16.tif")):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array)
        result = load_image(buffer.getvalue(), name=name)
        pixels = _check(result, (40, 30))
        assert pixels.max() == 255, name  # Pillow alone would keep the dark high byte
        assert any("16-bit" in n for n in result.notes)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.stack([gray, gray]))
    result = load_image(buffer.getvalue(), name="stack.tif")
    _check(result, (40, 30))
    assert any("2 pages" in n for n in result.notes)


def test_float_tiff_and_float_array():
    tifffile = pytest.importorskip("tifffile")
    array = np.linspace(0, 1, 30 * 40 * 3, dtype=np.float32).reshape(30, 40, 3)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    _check(load_image(buffer.getvalue(), name="float.tif"), (40, 30))
    result = load_image(array)
    assert _check(result).max() == 255
    assert any("float" in n for n in result.notes)


def test_bad_array_shape():
    with pytest.raises(ImageError, match="has shape"):
        load_image(np.zeros((4, 30, 30, 3), np.uint8))


# --- orientation -----------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(orientation):
    """A phone stores a portrait photo sideways plus a tag; we must show it upright."""
    upright = _photo(120, 80)  # red left, blue right
    # What the camera writes for each tag: the upright picture turned the other way.
    stored = {
        3: upright.transpose(Image.Transpose.ROTATE_180),
        6: upright.transpose(Image.Transpose.ROTATE_90),
        8: upright.transpose(Image.Transpose.ROTATE_270),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _bytes(stored, "JPEG", quality=95, exif=exif.tobytes())
    result = load_image(data, name="phone.jpg")
    pixels = _check(result, (120, 80)).astype(int)
    assert pixels[40, 10, 0] > 150 and pixels[40, 10, 2] < 100  # left is red again
    assert pixels[40, 110, 2] > 150 and pixels[40, 110, 0] < 100  # right is blue
    assert any("EXIF orientation" in n for n in result.notes)
