"""Load whatever people upload as an RGB picture the model can read, or say clearly why not.

Phones and microscope cameras produce more than plain 8-bit RGB JPEGs: rotated photos that
rely on an EXIF tag, transparent PNGs, grayscale or 16-bit camera frames, multi-page TIFFs,
screenshots with a palette, 50-megapixel photos and, sometimes, files that are not images at
all. ``load_image`` turns each of them into an 8-bit RGB ``PIL.Image`` plus a list of short
notes (what was changed), or raises ``ImageError`` with a message that names the file and
says what to do. The Gradio app shows those notes and messages instead of crashing.

No torch here: the Space copies this module and runs without it.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_SIDE = 4096  # longer sides are downsized: the model sees 384-800 px anyway
# Pixels decoded per image, at most (decompression bombs, memory per request): 64 MP of RGB is
# ~190 MB. Below Pillow's own bomb limit (~179 MP), so this message always comes first. Big
# JPEGs count at the reduced scale they are decoded at: a 200 MP phone photo fits.
MAX_PIXELS = 64_000_000
MIN_SIDE = 16  # smaller images cannot hold a cell the detector would see

ImageSource = str | os.PathLike | bytes | bytearray | IO[bytes] | np.ndarray | Image.Image

_FORMATS_HINT = "upload a JPEG, PNG, TIFF, BMP or WebP photo of the sample"


class ImageError(ValueError):
    """An upload that cannot be turned into a picture; the message says which file and why."""


@dataclass
class LoadedImage:
    """An 8-bit RGB image and the notes on what loading changed (empty when nothing did)."""

    image: Image.Image
    notes: list[str] = field(default_factory=list)
    name: str = "image"

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_side: int = MAX_SIDE,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> LoadedImage:
    """An RGB ``PIL.Image`` from a path, bytes, a binary file object, an array or a PIL image.

    Applies the EXIF orientation, flattens transparency onto black (the colour of the
    model's letterbox padding), scales 16-bit and float pixels to 8 bits by their range,
    keeps the first page of multi-page files and downsizes images whose longer side
    exceeds ``max_side``. Raises :class:`ImageError` for anything that is not a usable image.
    """
    label = name or _source_name(source)
    notes: list[str] = []
    if isinstance(source, Image.Image):
        image = _to_rgb(source, notes, label)
    elif isinstance(source, np.ndarray):
        image = _array_to_rgb(source, notes, label)
    else:
        data = _read_bytes(source, label)
        image = _decode(data, label, notes, max_side=max_side, max_pixels=max_pixels)
    _check_size(image, label, min_side, max_pixels)
    image = _limit_side(image, max_side, notes)
    return LoadedImage(image=image, notes=notes, name=label)


# --- reading ---------------------------------------------------------------------------


def _source_name(source: Any) -> str:
    """A short name for messages: the file name, never a full path of this machine."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    if isinstance(source, (bytes, bytearray)):
        return "the uploaded data"
    if isinstance(source, np.ndarray):
        return "the array"
    if isinstance(source, Image.Image):
        return "the image"
    file_name = getattr(source, "name", None)
    if isinstance(file_name, str) and file_name:
        return Path(file_name).name
    return "the uploaded file"


def _read_bytes(source: Any, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{label}: no such file; check the path or upload the image again")
        data = path.read_bytes()
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(f"{label}: open the file in binary mode ('rb') to load it")
        data = bytes(data)
    else:
        raise ImageError(
            f"cannot load an image from a {type(source).__name__}; "
            "pass a file path, bytes, a binary file, a NumPy array or a PIL image"
        )
    if not data:
        raise ImageError(f"{label} is empty (0 bytes); {_FORMATS_HINT}")
    return data


def _sniff(data: bytes) -> str | None:
    """Names formats that Pillow cannot read but people upload, for a better message."""
    head = data[:64]
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc"):
        return "a HEIC/HEIF photo (the iPhone default); export it as JPEG (or set the camera to 'Most Compatible') and upload that"
    if head[4:8] == b"ftyp":
        return "a video or HEIF container, not a still image; " + _FORMATS_HINT
    if head.lstrip()[:5].lower() in (b"<?xml", b"<svg ") or b"<svg" in data[:512].lower():
        return "an SVG drawing, not a photo; " + _FORMATS_HINT
    if head[:4] == b"%PDF":
        return "a PDF document; export the page as PNG or JPEG and upload that"
    if head[:2] == b"PK":
        return "a ZIP archive (or an Office document); unpack it and upload one image"
    return None


def _is_text(head: bytes) -> bool:
    """Describe a non-image without echoing its bytes back (they are the client's data)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _decode(
    data: bytes, label: str, notes: list[str], *, max_side: int, max_pixels: int
) -> Image.Image:
    """Bytes -> RGB image; header checks before the (possibly huge) pixel data is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise ImageError(_bomb_message(label, None, max_pixels)) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if data[:4] in _TIFF_MAGIC:  # float or exotic TIFFs that Pillow cannot open
            return _array_to_rgb(_read_tiff(data, label, max_pixels, notes), notes, label)
        hint = _sniff(data)
        if hint:
            raise ImageError(f"{label} is {hint}") from error
        looks = "it looks like text" if _is_text(data[:512]) else "no image format matches it"
        raise ImageError(
            f"{label} is not an image file that can be read ({looks}); {_FORMATS_HINT}"
        ) from error

    width, height = image.size
    fmt = image.format or "image"
    if fmt in ("JPEG", "MPO") and max(width, height) > 2 * max_side:
        # Decode big JPEGs at 1/2, 1/4 or 1/8 scale directly: faster and far less memory.
        image.draft("RGB", (max_side, max_side))
        if image.size != (width, height):
            notes.append(
                f"Decoded the {width} x {height} px JPEG at reduced scale "
                f"({image.size[0]} x {image.size[1]} px) to save time and memory."
            )
    if image.size[0] * image.size[1] > max_pixels:  # checked before any pixel is decoded
        raise ImageError(_bomb_message(label, (width, height), max_pixels))
    frames = getattr(image, "n_frames", 1)

    bits = _bits_per_sample(image)
    if fmt == "TIFF" and (frames > 1 or bits > 8 or image.mode not in _PIL_8BIT_MODES):
        return _array_to_rgb(_read_tiff(data, label, max_pixels, notes), notes, label)

    if frames > 1 and fmt not in ("JPEG", "MPO"):
        notes.append(f"{label} has {frames} frames; counted the first one.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as error:
        raise ImageError(_bomb_message(label, (width, height), max_pixels)) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(
            f"{label} looks like a {fmt} file but its pixel data is truncated or corrupt "
            f"({error}); upload the original file again or re-save it from an image viewer"
        ) from error
    image = _apply_exif(image, notes, label)
    if bits > 8 and image.mode in ("RGB", "RGBA"):
        # Pillow keeps only the high byte of 16-bit colour PNGs: stretch what is left.
        return _array_to_rgb(_stretch_8bit(np.asarray(image), notes, label), notes, label)
    return _to_rgb(image, notes, label)


_PIL_8BIT_MODES = ("1", "L", "P", "RGB", "RGBA", "CMYK")


def _bits_per_sample(image: Image.Image) -> int:
    """16 for 16-bit files that Pillow would silently reduce to 8 bits, else 8."""
    if image.format == "TIFF":
        value = getattr(image, "tag_v2", {}).get(258, 8)
        values = value if isinstance(value, tuple) else (value,)
        return max(int(v) for v in values) if values else 8
    tiles = getattr(image, "tile", None) or []
    for tile in tiles:
        args = tile.args if hasattr(tile, "args") else tile[3]
        rawmode = args[0] if isinstance(args, tuple) else args
        if isinstance(rawmode, str) and ";16" in rawmode and image.mode in ("RGB", "RGBA"):
            return 16
    return 8


def _stretch_8bit(array: np.ndarray, notes: list[str], label: str) -> np.ndarray:
    color = array[..., :3]
    low, high = int(color.min()), int(color.max())
    notes.append(
        f"{label} is a 16-bit colour PNG; reduced to 8 bits and stretched to the full range "
        "(save 16-bit colour as TIFF to keep every bit)."
    )
    if high <= low or (low == 0 and high == 255):
        return array
    out = array.astype(np.float32)
    out[..., :3] = (color.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_tiff(data: bytes, label: str, max_pixels: int, notes: list[str]) -> np.ndarray:
    """First page of a TIFF via tifffile (16-bit RGB, float and multi-page files)."""
    try:
        import tifffile
    except ImportError as error:
        raise ImageError(
            f"{label} is a 16-bit or multi-page TIFF; install tifffile (pip install tifffile) "
            "or save it as an 8-bit PNG"
        ) from error
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            height, width = page.imagelength, page.imagewidth
            if width * height > max_pixels:
                raise ImageError(_bomb_message(label, (width, height), max_pixels))
            if len(tif.pages) > 1:
                notes.append(f"{label} has {len(tif.pages)} pages; counted the first one.")
            array = page.asarray()
            if (
                getattr(page, "planarconfig", 1) == 2
                and array.ndim == 3
                and array.shape[0] in (3, 4)
            ):
                array = np.moveaxis(array, 0, -1)  # separate colour planes -> H x W x C
            return array
    except ImageError:
        raise
    except Exception as error:  # tifffile raises many types for unusual files
        raise ImageError(
            f"{label} is a TIFF that could not be decoded ({error}); save it as PNG and upload that"
        ) from error


def _bomb_message(label: str, size: tuple[int, int] | None, max_pixels: int) -> str:
    dims = f"{size[0]} x {size[1]} px" if size else "too many pixels"
    return (
        f"{label} is {dims}, more than the {max_pixels / 1e6:.0f} megapixels this app decodes "
        "(a guard against 'decompression bomb' files); resize the photo to at most "
        f"{MAX_SIDE} px on the longer side and upload it again"
    )


# --- converting ------------------------------------------------------------------------


def _apply_exif(image: Image.Image, notes: list[str], label: str) -> Image.Image:
    """Phones store portrait photos sideways plus an orientation tag; apply the tag."""
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # unreadable EXIF block: keep the pixels as stored
        return image
    if orientation in (None, 1):
        return image
    try:
        rotated = ImageOps.exif_transpose(image)
    except Exception:
        notes.append(f"{label}: the EXIF orientation tag could not be applied; shown as stored.")
        return image
    notes.append(
        f"{label}: rotated upright using the photo's EXIF orientation tag ({orientation})."
    )
    return rotated


def _to_rgb(image: Image.Image, notes: list[str], label: str) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode == "RGB":
            return image
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _flatten_alpha(image.convert("RGBA"), notes, label)
    if mode in ("L", "1"):
        notes.append(f"{label} is grayscale; converted to RGB.")
        return image.convert("RGB")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _array_to_rgb(np.asarray(image), notes, label)
    if mode == "CMYK":
        notes.append(f"{label} is CMYK (a print file); converted to RGB, colours may shift.")
    return image.convert("RGB")


def _flatten_alpha(rgba: Image.Image, notes: list[str], label: str) -> Image.Image:
    """Composite onto black: transparent areas then look like the model's letterbox padding."""
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] < 255:
        notes.append(f"{label} has transparent areas; they were filled with black.")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return rgba.convert("RGB")


def _array_to_rgb(array: np.ndarray, notes: list[str], label: str) -> Image.Image:
    """H x W, H x W x 1/3/4 arrays of any numeric dtype -> RGB; non-8-bit data scaled by range."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # channels-first -> channels-last
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"{label} has shape {array.shape}; expected H x W (gray), H x W x 3 (RGB) "
            "or H x W x 4 (RGBA) pixels"
        )
    if array.size == 0:
        raise ImageError(f"{label} has no pixels (shape {array.shape}); {_FORMATS_HINT}")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        array = _to_uint8(array, notes, label)
    if array.ndim == 2:
        if not any("grayscale" in n for n in notes):
            notes.append(f"{label} is grayscale; converted to RGB.")
        return Image.fromarray(array, "L").convert("RGB")
    if array.shape[2] == 4:
        return _flatten_alpha(Image.fromarray(np.ascontiguousarray(array), "RGBA"), notes, label)
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def _to_uint8(array: np.ndarray, notes: list[str], label: str) -> np.ndarray:
    """Stretch the used range (min..max) to 0..255; floats already in [0, 1] just scale by 255."""
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ImageError(f"{label} has {array.dtype} pixels; expected integers or floats")
    values = array.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        values = np.where(finite, values, 0.0)
    color = values[..., :3] if values.ndim == 3 else values
    low, high = float(color.min()), float(color.max())
    if np.issubdtype(array.dtype, np.floating) and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
        notes.append(f"{label} has float pixels in [0, 1]; scaled to 8 bits.")
    else:
        span = high - low
        scaled = (values - low) * (255.0 / span) if span > 0 else np.zeros_like(values)
        bits = array.dtype.itemsize * 8
        kind = "float" if np.issubdtype(array.dtype, np.floating) else f"{bits}-bit"
        notes.append(
            f"{label} has {kind} pixels (values {low:g}-{high:g}); stretched that range to 8 bits."
        )
    if values.ndim == 3 and values.shape[2] == 4:  # keep alpha meaning: 0 transparent, max opaque
        alpha = values[..., 3]
        top = float(alpha.max()) or 1.0
        scaled[..., 3] = alpha * (255.0 / top)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _check_size(image: Image.Image, label: str, min_side: int, max_pixels: int) -> None:
    width, height = image.size
    if min(width, height) < min_side:
        raise ImageError(
            f"{label} is only {width} x {height} px; the counter needs at least {min_side} px "
            "on each side (a microscope photo is usually 500-4000 px): upload the full-size photo"
        )
    if width * height > max_pixels:
        raise ImageError(_bomb_message(label, (width, height), max_pixels))


def _limit_side(image: Image.Image, max_side: int, notes: list[str]) -> Image.Image:
    width, height = image.size
    longest = max(width, height)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    notes.append(
        f"Downscaled from {width} x {height} to {size[0]} x {size[1]} px "
        f"(longer side limited to {max_side} px); boxes refer to the smaller image."
    )
    return image.resize(size, Image.Resampling.LANCZOS if scale > 0.5 else Image.Resampling.BOX)


# --- samples for the demo notebook ---------------------------------------------------------


def write_odd_uploads(
    folder: str | Path, source: str | Path, huge_side: int = 6000
) -> dict[str, Path]:
    """Write the kinds of files people upload, made from one real photo, for trying the app.

    Returns ``{description: path}``: a sideways phone photo with an EXIF tag, a 16-bit
    camera TIFF, a transparent PNG, a palette GIF, a huge photo, and four files that are
    not usable (text renamed .jpg, a 1 x 1 PNG, a truncated JPEG, a PDF).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    photo = load_image(source).image
    out: dict[str, Path] = {}

    def path(name: str, description: str) -> Path:
        out[description] = folder / name
        return out[description]

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": how phones store portrait shots
    photo.transpose(Image.Transpose.ROTATE_90).save(
        path("phone_rotated.jpg", "phone photo stored sideways + EXIF tag"),
        quality=92,
        exif=exif.tobytes(),
    )
    gray = np.asarray(photo.convert("L"), np.float32)
    camera = (gray / 255.0 * 3000 + 500).astype(np.uint16)  # 12-bit data in a 16-bit file
    try:
        import tifffile

        tifffile.imwrite(path("camera_16bit.tif", "16-bit grayscale camera TIFF"), camera)
    except ImportError:
        Image.fromarray(camera).save(path("camera_16bit.png", "16-bit grayscale camera PNG"))
    rgba = photo.convert("RGBA")
    alpha = Image.new("L", photo.size, 255)
    alpha.paste(0, (0, 0, photo.width // 4, photo.height))
    rgba.putalpha(alpha)
    rgba.save(path("cutout.png", "PNG with a transparent strip"))
    photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(
        path("palette.gif", "GIF with a 64-colour palette")
    )
    scale = huge_side / max(photo.size)
    big = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    big.save(path("huge.jpg", f"huge photo ({big.width} x {big.height} px)"), quality=85)
    path("notes.jpg", "a text file renamed .jpg").write_text("counts: 12, 15, 9\n")
    Image.new("RGB", (1, 1)).save(path("tiny.png", "a 1 x 1 px image"))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92)
    path("truncated.jpg", "a JPEG cut off mid-download").write_bytes(
        buffer.getvalue()[: buffer.tell() // 3]
    )
    path("report.pdf", "a PDF document").write_bytes(b"%PDF-1.7\n% not a photo\n")
    return out
