"""nnlite.image: loading (sources, EXIF, modes, bombs, bad files) and preprocessing, against hand-made values."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from nnlite.errors import ConfigError, ImageError, ShapeError
from nnlite.image import as_rgb, center_crop, image_size, load_image, normalize, pad_to_square, resize, to_batch


def _pattern(h=2, w=3) -> np.ndarray:
    return np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3) * 7


def _png(image: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **params)
    return buf.getvalue()


# ---------------------------------------------------------------- sources


def test_every_source_kind(tmp_path):
    rgb = _pattern()
    data = _png(Image.fromarray(rgb))
    (tmp_path / "p.png").write_bytes(data)
    for src in (tmp_path / "p.png", str(tmp_path / "p.png"), data, bytearray(data), io.BytesIO(data),
                Image.fromarray(rgb), rgb):
        out = load_image(src)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 3), type(src)
        np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("orientation,turn", [(1, lambda a: a), (3, lambda a: np.rot90(a, 2)),
                                              (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1)),
                                              (2, lambda a: a[:, ::-1])])
def test_exif_orientation(orientation, turn):
    rgb = _pattern(2, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation: 6 = display rotated 90 degrees clockwise
    out = load_image(_png(Image.fromarray(rgb), exif=exif.tobytes()))
    np.testing.assert_array_equal(out, turn(rgb))


# ---------------------------------------------------------------- modes


def test_rgba_drops_alpha_or_composites():
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [10, 20, 30, 128]]], np.uint8)
    data = _png(Image.fromarray(rgba, "RGBA"))
    np.testing.assert_array_equal(load_image(data), rgba[:, :, :3])
    white = load_image(data, background=(255, 255, 255))
    a = 128 / 255
    want = [[200, 100, 50], [255, 255, 255], [round(10 * a + 255 * (1 - a)), round(20 * a + 255 * (1 - a)),
                                              round(30 * a + 255 * (1 - a))]]
    np.testing.assert_allclose(white[0].astype(int), want, atol=1)


def test_la_p_grey_and_bilevel():
    la = Image.fromarray(np.array([[[90, 255], [30, 0]]], np.uint8), "LA")
    np.testing.assert_array_equal(load_image(_png(la))[0], [[90] * 3, [30] * 3])
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putdata([1, 0])
    np.testing.assert_array_equal(load_image(_png(palette))[0], [[0, 0, 255], [255, 0, 0]])
    palette.info["transparency"] = 0
    np.testing.assert_array_equal(load_image(_png(palette, transparency=0))[0], [[0, 0, 255], [255, 0, 0]])
    grey = Image.fromarray(np.array([[0, 77, 255]], np.uint8), "L")
    np.testing.assert_array_equal(load_image(grey)[0], [[0] * 3, [77] * 3, [255] * 3])
    bilevel = Image.fromarray(np.array([[True, False]]))
    np.testing.assert_array_equal(load_image(_png(bilevel))[0], [[255] * 3, [0] * 3])


def test_cmyk():
    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putdata([(0, 0, 0, 0), (0, 0, 0, 255), (255, 0, 0, 0)])
    buf = io.BytesIO()
    cmyk.save(buf, format="TIFF")
    np.testing.assert_array_equal(load_image(buf.getvalue())[0], [[255, 255, 255], [0, 0, 0], [0, 255, 255]])


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 257 * 100, 65535]], np.uint16)
    png16 = _png(Image.fromarray(values))  # Pillow writes a 16-bit greyscale PNG
    assert Image.open(io.BytesIO(png16)).mode.startswith("I")
    np.testing.assert_array_equal(load_image(png16)[0], [[0] * 3, [100] * 3, [255] * 3])
    np.testing.assert_array_equal(load_image(values)[0], [[0] * 3, [100] * 3, [255] * 3])


def test_arrays():
    np.testing.assert_array_equal(load_image(np.array([[[0.0, 0.5, 1.0]]], np.float32))[0], [[0, 128, 255]])
    np.testing.assert_array_equal(load_image(np.array([[[0.0, 127.6, 300.0]]]))[0], [[0, 128, 255]])
    np.testing.assert_array_equal(load_image(np.array([[True, False]]))[0], [[255] * 3, [0] * 3])
    np.testing.assert_array_equal(load_image(np.array([[[-5, 20, 999, 7]]], np.int32))[0], [[0, 20, 255]])
    for bad in (np.zeros((2, 2, 2), np.uint8), np.zeros((4,), np.uint8), np.array([[np.nan]]),
                np.zeros((0, 3, 3), np.uint8)):
        with pytest.raises(ImageError):
            load_image(bad)


def test_pixels_in_memory_follow_the_one_rgb_rule():
    grey = np.array([[0, 90], [200, 255]], np.uint8)
    np.testing.assert_array_equal(as_rgb(grey), np.dstack([grey] * 3))
    np.testing.assert_array_equal(as_rgb(grey[:, :, None]), np.dstack([grey] * 3))
    rgba = np.dstack([grey, grey, grey, np.zeros_like(grey)])
    np.testing.assert_array_equal(as_rgb(rgba), np.dstack([grey] * 3))   # alpha dropped, not composited
    np.testing.assert_array_equal(as_rgb(rgba, background=(255, 255, 255)), np.full((2, 2, 3), 255))
    np.testing.assert_array_equal(as_rgb([[[0.0, 0.5, 1.0]]]), [[[0, 128, 255]]])   # lists, floats in [0, 1]
    np.testing.assert_array_equal(as_rgb(np.array([[[0, 32768, 65535]]], np.uint16)), [[[0, 128, 255]]])
    rgb = _pattern()
    assert as_rgb(rgb) is rgb   # already RGB uint8 and contiguous: no copy
    np.testing.assert_array_equal(as_rgb(Image.fromarray(rgb)), rgb)
    for bad in (np.zeros((2, 2, 2), np.uint8), np.zeros((3, 0, 3), np.uint8), [[1, 2], [3]], np.array([["a"]])):
        with pytest.raises(ImageError, match="face input"):
            as_rgb(bad, name="face input")


def test_image_size_reads_the_header_only():
    assert image_size(_png_header_only(12000, 9000)) == (12000, 9000)   # no pixel data to decode
    with pytest.raises(ImageError):
        image_size(b"not an image")


def test_reduce_to_decodes_a_jpeg_at_reduced_scale():
    buf = io.BytesIO()
    Image.fromarray(np.full((400, 640, 3), 120, np.uint8)).save(buf, "JPEG")
    assert load_image(buf.getvalue()).shape == (400, 640, 3)
    assert load_image(buf.getvalue(), reduce_to=96).shape == (100, 160, 3)    # 1/4: both sides stay >= 96
    assert load_image(_png(Image.fromarray(_pattern(40, 40))), reduce_to=8).shape == (40, 40, 3)   # PNG: full


# ---------------------------------------------------------------- refusals


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny (invalid) data chunk: a bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width,height,max_pixels", [(30000, 30000, 10**12), (9000, 9000, None), (100, 100, 5000)])
def test_decompression_bombs_refused_without_leaking_warnings(tmp_path, width, height, max_pixels):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(width, height))
    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="bomb.png"):
            load_image(path, **kwargs)


def test_pil_and_array_inputs_obey_max_pixels():
    with pytest.raises(ImageError, match="max_pixels=10"):
        load_image(Image.new("RGB", (4, 4)), max_pixels=10)
    with pytest.raises(ImageError, match="max_pixels=10"):
        load_image(np.zeros((4, 4, 3), np.uint8), max_pixels=10)


def test_bad_files(tmp_path):
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    cases = {"empty.jpg": b"", "random.jpg": bytes(range(256)) * 8, "weights.png": b"\x89HDF\r\n\x1a\n" + bytes(99),
             "cut.jpg": jpeg.getvalue()[:600], "cut.png": _png(Image.fromarray(_pattern(40, 40)))[:80]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name)
    with pytest.raises(ImageError, match="not found.*missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="directory|not found"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="empty bytes"):
        load_image(b"")
    with pytest.raises(ImageError, match="bytes"):
        load_image(b"not an image")
    with pytest.raises(ImageError, match="int"):
        load_image(42)


# ---------------------------------------------------------------- geometry and numbers


def test_resize_rules_by_hand():
    row = np.zeros((1, 4, 3), np.uint8)
    row[0, :, 0] = [0, 40, 80, 120]
    # antialiased shrink 4 -> 2: triangle filter twice as wide; pixel centres 0.5, 1.5, 2.5 around
    # output centre 1.0 weigh 0.75, 0.75, 0.25 -> (0*.75 + 40*.75 + 80*.25) / 1.75 = 28.6
    assert resize(row, (1, 2))[0, :, 0].tolist() == [29, 91]
    # TF rule: source (i + 0.5) * 2 - 0.5 = 0.5, 2.5 -> mean of the two neighbours
    assert resize(row, (1, 2), antialias=False)[0, :, 0].tolist() == [20, 100]
    pair = np.zeros((1, 2, 3), np.uint8)
    pair[0, :, 0] = [0, 100]
    # enlarging: sources -0.25 (clamped), 0.25, 0.75, 1.25 (clamped) -> both rules agree
    for antialias in (True, False):
        assert resize(pair, (1, 4), antialias=antialias)[0, :, 0].tolist() == [0, 25, 75, 100]
        assert resize(pair, (1, 4), method="nearest", antialias=antialias)[0, :, 0].tolist() == [0, 0, 100, 100]
    assert resize(_pattern(5, 7), (3, 4), method="bicubic").shape == (3, 4, 3)
    assert resize(_pattern(5, 7), 6).shape == (6, 6, 3)
    with pytest.raises(ConfigError):
        resize(pair, (2, 2), method="lanczos")
    with pytest.raises(ShapeError):
        resize(np.zeros((2, 2), np.uint8), (4, 4))


def test_center_crop():
    img = _pattern(5, 8)
    np.testing.assert_array_equal(center_crop(img, (3, 4)), img[1:4, 2:6])
    np.testing.assert_array_equal(center_crop(img, 4), img[0:4, 2:6])
    with pytest.raises(ShapeError, match="larger"):
        center_crop(img, (6, 2))


@pytest.mark.parametrize("h,w", [(3, 8), (8, 3), (2, 7), (4, 4)])
def test_pad_to_square(h, w):
    img = np.full((h, w, 3), 9, np.uint8)
    diff = abs(h - w)
    corner, origin = pad_to_square(img, center=False)
    assert corner.shape == (max(h, w), max(h, w), 3) and origin == (0, 0)
    np.testing.assert_array_equal(corner[:h, :w], img)
    assert corner.sum() == img.sum()
    centred, (top, left) = pad_to_square(img, value=255)
    # face-api.js: Math.round(d / 2) after the image, the rest before (d = 5: 2 before, 3 after)
    before = diff - int(np.floor(diff / 2 + 0.5))
    assert (top, left) == ((before, 0) if h < w else (0, before))
    np.testing.assert_array_equal(centred[top:top + h, left:left + w], img)
    assert (centred == 255).all(axis=2).sum() == max(h, w) ** 2 - h * w


def test_normalize_modes():
    img = np.array([[[0, 127, 255], [10, 20, 30]]], np.uint8)
    np.testing.assert_allclose(normalize(img, "tf")[0, 0], [-1.0, 127 / 127.5 - 1, 1.0], rtol=1e-6)
    np.testing.assert_allclose(normalize(img, "caffe")[0, 1], [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(normalize(img, "caffe", mean=(104.006, 116.669, 122.679))[0, 0],
                               [255 - 104.006, 127 - 116.669, -122.679], rtol=1e-6)
    want = [(0 / 255 - 0.485) / 0.229, (127 / 255 - 0.456) / 0.224, (255 / 255 - 0.406) / 0.225]
    np.testing.assert_allclose(normalize(img, "torch")[0, 0], want, rtol=1e-6)
    raw = normalize(img[None], "raw")
    assert raw.dtype == np.float32 and raw.shape == (1, 1, 2, 3) and raw.max() == 255
    assert all(normalize(img, m).dtype == np.float32 for m in ("tf", "caffe", "torch"))
    with pytest.raises(ConfigError):
        normalize(img, "keras")
    with pytest.raises(ShapeError):
        normalize(np.zeros((2, 2)), "tf")


def test_to_batch():
    batch = to_batch(_pattern())
    assert batch.shape == (1, 2, 3, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], _pattern())
    with pytest.raises(ShapeError):
        to_batch(np.zeros((1, 2, 2, 3)))
