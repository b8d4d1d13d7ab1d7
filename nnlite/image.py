"""Images in, RGB uint8 arrays out; then the geometric and numeric preprocessing models ask for.

Conventions: an image is a NumPy array (H, W, 3) uint8 in RGB order; a batch is (N, H, W, 3) float32.

- :func:`load_image` accepts a path, bytes, a binary file object, a PIL image or an array; applies the EXIF
  orientation; converts every mode to RGB (rules in its docstring); refuses images above ``max_pixels``.
  It is the one decoder: front ends call it once and pass the pixels down.
- :func:`as_rgb` is the one RGB rule for pixels already in memory (greyscale, alpha, dtypes); every layer
  that accepts arrays coerces through it. :func:`image_size` reads a file's size from its header only.
- :func:`resize` (Pillow filters), :func:`center_crop`, :func:`pad_to_square` (face-api.js's two rules, the
  one copy of them), :func:`normalize` ('tf', 'caffe', 'torch', 'raw' - the Keras ``preprocess_input``
  modes), :func:`to_batch`.

Every unreadable input raises :class:`nnlite.errors.ImageError` naming the file.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ConfigError, ImageError, ShapeError

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000: well above any photo, far below a decompression bomb

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, for 'torch' mode
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # B, G, R: the Keras 'caffe' default (VGG/ResNet50)

_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC}


# ------------------------------------------------------------------ loading

def load_image(src, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               background: tuple[int, int, int] | None = None, reduce_to: int | None = None) -> np.ndarray:
    """Load ``src`` as an (H, W, 3) uint8 RGB array.

    ``src``: path (str / Path), ``bytes``, a binary file object, a ``PIL.Image.Image`` or a NumPy array.

    Rules:
    - EXIF orientation is applied (the array is what a photo viewer shows); animated images give frame 0.
    - Alpha (RGBA, LA, P with transparency) is dropped by default - the colour channels are kept as stored,
      which is what ``keras.utils.load_img`` and ``PIL.Image.convert("RGB")`` do. With ``background=(r, g, b)``
      the image is instead composited over that colour (``out = a*rgb + (1-a)*background``).
    - Greyscale (L, 1) is repeated to three channels; P is expanded through its palette; CMYK uses Pillow's
      conversion; 16-bit (I;16*, I) is scaled by 255/65535 and rounded, 32-bit float (F) like float arrays.
    - Arrays: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4). uint8 is kept; uint16 scaled as above; bool gives
      0/255; other integers are clipped to [0, 255]; floats are taken as [0, 1] (scaled by 255) when their
      maximum is <= 1, else as [0, 255]; then rounded and clipped.
    - More than ``max_pixels`` pixels (checked from the header, before decoding) is refused. Pillow's own
      decompression-bomb limit (2 x ``Image.MAX_IMAGE_PIXELS``) still applies to larger ``max_pixels``.
    - ``reduce_to`` (thumbnails): a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as both sides stay
      at least ``reduce_to`` (the JPEG decoder's own reduced decoding); other formats decode in full.
    """
    if isinstance(src, np.ndarray):
        _check_pixels(src.shape[0] * src.shape[1] if src.ndim >= 2 else 0, max_pixels, "<array>")
        return as_rgb(src, background=background)
    if isinstance(src, Image.Image):
        _check_pixels(src.width * src.height, max_pixels, "<PIL image>")
        return _pil_to_rgb(ImageOps.exif_transpose(src), background)
    name = _source_name(src)
    image = _open(src, name, max_pixels)
    try:
        with image:
            if reduce_to:
                image.draft("RGB", (reduce_to, reduce_to))  # JPEG only; a no-op for other formats
            image.load()  # decode now, inside the try: truncated data surfaces here
            image = ImageOps.exif_transpose(image)
            return _pil_to_rgb(image, background)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, MemoryError) as exc:
        raise ImageError(f"cannot decode image {name}: {exc}") from None


def image_size(src) -> tuple[int, int]:
    """(width, height) of an image file (path, bytes or binary file object) read from its header, without
    decoding the pixels (before EXIF orientation). Unreadable input raises :class:`ImageError`."""
    with _open(src, _source_name(src), max_pixels=2 ** 62) as image:
        return image.size


def as_rgb(pixels, *, background: tuple[int, int, int] | None = None, name: str = "<array>") -> np.ndarray:
    """Pixels already in memory (a NumPy array or anything ``np.asarray`` takes) -> an (H, W, 3) uint8 RGB
    array, by :func:`load_image`'s array rules (greyscale repeated, alpha dropped unless ``background``,
    dtypes scaled as documented there); a PIL image goes through :func:`load_image` itself. An (H, W, 3)
    uint8 array comes back as it is (made contiguous). Any other shape or dtype raises :class:`ImageError`
    naming ``name``."""
    if isinstance(pixels, Image.Image):
        return load_image(pixels, background=background)
    try:
        array = np.asarray(pixels)
    except (TypeError, ValueError) as exc:   # ragged nested lists and the like
        raise ImageError(f"image {name}: not an array of pixels ({exc})") from None
    return _array_to_rgb(array, name, background)


def _source_name(src) -> str:
    if isinstance(src, (str, Path)):
        return str(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"<{len(src)} bytes>"
    return str(getattr(src, "name", "<file object>"))


def _open(src, name: str, max_pixels: int) -> Image.Image:
    """Image.open with every failure (missing, empty, not an image, bomb) turned into an ImageError."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        if not len(src):
            raise ImageError("cannot read image from empty bytes")
        src = io.BytesIO(bytes(src))
    elif isinstance(src, (str, Path)):
        path = Path(src)
        if path.is_dir():
            raise ImageError(f"{path} is a directory, not an image file")
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        if path.stat().st_size == 0:
            raise ImageError(f"image file {path} is empty (0 bytes)")
    elif not hasattr(src, "read"):
        raise ImageError(f"cannot load an image from a {type(src).__name__} (expected path, bytes, file, "
                         f"PIL image or array)")
    try:
        with warnings.catch_warnings():
            # our max_pixels check below replaces Pillow's warning; its hard error is still caught
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(src)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image {name} refused as a possible decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image Pillow can read (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {name}: {exc}") from None
    try:
        _check_pixels(image.width * image.height, max_pixels, name)
    except ImageError:
        image.close()
        raise
    return image


def _check_pixels(count: int, max_pixels: int, name: str) -> None:
    if count > max_pixels:
        raise ImageError(f"image {name} has {count} pixels, more than max_pixels={max_pixels} "
                         f"(refused as a possible decompression bomb)")


def _pil_to_rgb(image: Image.Image, background) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "LA", "La", "RGBa"):
        image = image.convert("RGBA")
    elif mode.startswith("I") or mode == "F":  # 16/32-bit: Pillow's convert would clip, not scale
        return _array_to_rgb(np.asarray(image), f"<{mode} image>", background, sixteen_bit=mode != "F")
    elif mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return _array_to_rgb(np.asarray(image), f"<{mode} image>", background)


def _array_to_rgb(array: np.ndarray, name: str, background, *, sixteen_bit: bool = False) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise ImageError(f"image {name}: expected an array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                         f"found shape {array.shape}")
    pixels = _to_uint8(array, name, sixteen_bit or array.dtype == np.uint16)
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:
        return _drop_alpha(pixels, background)
    return np.ascontiguousarray(pixels)


def _to_uint8(array: np.ndarray, name: str, sixteen_bit: bool) -> np.ndarray:
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if kind in "ui" and sixteen_bit:  # uint16 arrays, Pillow's I;16 / I modes: 0..65535
        return np.rint(np.clip(array, 0, 65535) * (255.0 / 65535.0)).astype(np.uint8)
    if kind in "ui":
        return np.clip(array, 0, 255).astype(np.uint8)
    if kind == "f":
        values = array.astype(np.float64)
        if not np.isfinite(values).all():
            raise ImageError(f"image {name}: float array holds NaN or infinity")
        if values.max() <= 1.0:
            values = values * 255.0
        return np.rint(np.clip(values, 0, 255)).astype(np.uint8)
    raise ImageError(f"image {name}: unsupported array dtype {array.dtype}")


def _drop_alpha(rgba: np.ndarray, background) -> np.ndarray:
    if background is None:
        return np.ascontiguousarray(rgba[:, :, :3])
    alpha = rgba[:, :, 3:].astype(np.float32) / 255.0
    bg = np.asarray(background, np.float32).reshape(1, 1, 3)
    return np.rint(alpha * rgba[:, :, :3] + (1.0 - alpha) * bg).astype(np.uint8)


# ------------------------------------------------------------------ geometry

def _check_rgb(img: np.ndarray, what: str) -> np.ndarray:
    """The geometry functions' precondition (not a coercion: callers coerce first, with :func:`as_rgb`)."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        found = (img.shape, img.dtype) if isinstance(img, np.ndarray) else type(img).__name__
        raise ShapeError(f"{what}: expected an (H, W, 3) uint8 image, found {found}")
    return img


def _size_pair(size, what: str) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if h < 1 or w < 1:
        raise ShapeError(f"{what}: size must be positive, found {size}")
    return int(h), int(w)


def resize(img: np.ndarray, size, *, method: str = "bilinear", antialias: bool = True) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to ``size`` = (h, w) (or an int for a square).

    ``antialias=True`` (default): Pillow's ``Image.resize`` with the named filter. Pillow samples at pixel
    centres (half-pixel rule) and, when shrinking, widens the filter by the shrink factor so every source
    pixel contributes (area-aware, no aliasing); when enlarging it is plain interpolation. This is what
    torchvision's ``Resize`` does to a PIL image and what ``keras.utils.load_img(target_size=...)`` does
    (Keras's default there is 'nearest').
    ``antialias=False``: TensorFlow's ``tf.image.resize`` rule (half-pixel centres, only the 2 nearest
    pixels per axis), computed by :mod:`nnlite.ops` in float32 and rounded to uint8; 'bilinear' and
    'nearest' only. 'nearest' is the same either way.
    """
    img = _check_rgb(img, "resize")
    h, w = _size_pair(size, "resize")
    if method not in _RESAMPLE:
        raise ConfigError(f"resize: method must be one of {sorted(_RESAMPLE)}, found {method!r}")
    if antialias:
        return np.asarray(Image.fromarray(img).resize((w, h), resample=_RESAMPLE[method]))
    from . import ops  # numba kernels: imported only when needed

    if method == "bicubic":
        raise ConfigError("resize: method='bicubic' needs antialias=True (Pillow's filter)")
    op = ops.resize_bilinear if method == "bilinear" else ops.resize_nearest
    out = op(img[None].astype(np.float32), size=(h, w), half_pixel_centers=True)[0]
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def center_crop(img: np.ndarray, size) -> np.ndarray:
    """The central (h, w) window; when the margin is odd the extra row/column is left at the bottom/right
    (top = (H - h) // 2, as Keras's CenterCrop)."""
    img = _check_rgb(img, "center_crop")
    h, w = _size_pair(size, "center_crop")
    if h > img.shape[0] or w > img.shape[1]:
        raise ShapeError(f"center_crop: crop {h}x{w} is larger than the image {img.shape[0]}x{img.shape[1]}")
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return np.ascontiguousarray(img[top:top + h, left:left + w])


def pad_to_square(img: np.ndarray, *, center: bool = True, value: int = 0) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the shorter side with ``value`` to make the image square; return (padded, (top, left)).

    ``center=False``: all padding goes bottom/right, the image stays at (0, 0) (face-api.js detectors).
    ``center=True``: face-api.js's centring rule for landmark/recognition nets - of a difference d, round(d/2)
    (half rounded up) goes after the image and the rest, d - round(d/2), before it; so an odd extra row or
    column lands at the bottom/right. (top, left) is where the original pixel (0, 0) now sits: subtract it
    (and divide by the side) to map coordinates back.
    """
    img = _check_rgb(img, "pad_to_square")
    height, width = img.shape[:2]
    side, diff = max(height, width), abs(height - width)
    before = diff - (diff + 1) // 2 if center else 0  # (diff + 1) // 2 == JavaScript Math.round(diff / 2)
    top, left = (before, 0) if height < width else (0, before)
    out = np.full((side, side, 3), value, dtype=np.uint8)
    out[top:top + height, left:left + width] = img
    return out, (top, left)


# ------------------------------------------------------------------ numbers

def normalize(img: np.ndarray, mode: str, *, mean=None, std=None) -> np.ndarray:
    """uint8 RGB (…, 3) -> float32, Keras ``preprocess_input`` modes, computed in float32 in this order:

    - 'tf': x / 127.5 - 1, range [-1, 1] (MobileNet, Xception, NASNet, EfficientNet-Lite in TF form).
    - 'caffe': RGB -> BGR, then minus ``mean`` given in B, G, R order (default 103.939, 116.779, 123.68;
      SqueezeNet's Caffe model uses 104.006, 116.669, 122.679). No scaling.
    - 'torch': x / 255, minus ``mean`` (default ImageNet 0.485, 0.456, 0.406), divided by ``std``
      (default 0.229, 0.224, 0.225), RGB order.
    - 'raw': the values as float32 (nets that normalise inside, e.g. face-api.js).
    Works on one image (H, W, 3) or a batch (N, H, W, 3).
    """
    img = np.asarray(img)
    if img.shape[-1:] != (3,):
        raise ShapeError(f"normalize: expected RGB values on the last axis (…, 3), found shape {img.shape}")
    x = img.astype(np.float32)
    if mode == "tf":
        return x / np.float32(127.5) - np.float32(1.0)
    if mode == "caffe":
        return x[..., ::-1] - np.asarray(CAFFE_MEAN_BGR if mean is None else mean, np.float32)
    if mode == "torch":
        x = x / np.float32(255.0) - np.asarray(IMAGENET_MEAN if mean is None else mean, np.float32)
        return x / np.asarray(IMAGENET_STD if std is None else std, np.float32)
    if mode == "raw":
        return x
    raise ConfigError(f"normalize: mode must be 'tf', 'caffe', 'torch' or 'raw', found {mode!r}")


def to_batch(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (1, H, W, 3) float32 (values unchanged)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ShapeError(f"to_batch: expected an (H, W, 3) image, found shape {img.shape}")
    return np.ascontiguousarray(img[None].astype(np.float32))
