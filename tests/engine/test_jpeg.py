"""The libjpeg-turbo shortcut for plain JPEGs gives Pillow's pixels, and leaves every other file to Pillow."""

import io

import pytest
import torch
from PIL import Image

from transfer_core.data.decode import read_image_tensor, shrink_to_tensor
from transfer_core.data.images import ImageReadError, open_rgb
from transfer_core.data.jpeg import decode_plain_jpeg

from ..conftest import make_image

LIMIT = 64_000_000


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _pillow_pixels(data: bytes, short_side: int = 256) -> torch.Tensor:
    return shrink_to_tensor(open_rgb(data), short_side)


def _photo(size=(97, 61)) -> Image.Image:
    return make_image((120, 80, 200), size=size, noise=90)


@pytest.mark.parametrize(
    "options",
    [dict(quality=90), dict(quality=75, subsampling=0), dict(subsampling=1), dict(progressive=True), dict(optimize=True, quality=40)],
    ids=["420", "444", "422", "progressive", "optimised"],
)
def test_plain_colour_jpegs_decode_to_pillows_pixels(options):
    data = _jpeg(_photo(), **options)
    pixels = decode_plain_jpeg(data, LIMIT)
    assert pixels is not None, "a plain colour JPEG should take the fast path"
    assert torch.equal(torch.from_numpy(pixels).permute(2, 0, 1), _pillow_pixels(data))


def test_greyscale_jpeg_decodes_to_the_same_rgb_as_pillow():
    data = _jpeg(_photo().convert("L"))
    pixels = decode_plain_jpeg(data, LIMIT)
    assert pixels is not None and pixels.shape[2] == 3
    assert torch.equal(torch.from_numpy(pixels).permute(2, 0, 1), _pillow_pixels(data))


def test_upright_exif_keeps_the_fast_path():
    exif = Image.Exif()
    exif[0x0112] = 1
    assert decode_plain_jpeg(_jpeg(_photo(), exif=exif), LIMIT) is not None


@pytest.mark.parametrize(
    "make",
    [
        lambda: _jpeg(_photo(), exif=_orientation(6)),
        lambda: _jpeg(_photo(), xmp=b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'),
        lambda: _jpeg(_photo().convert("CMYK")),
        lambda: _png(_photo()),
        lambda: _jpeg(_photo())[: 400],
        lambda: b"",
    ],
    ids=["exif-rotated", "xmp-rotated", "cmyk", "png", "truncated", "empty"],
)
def test_anything_but_a_plain_jpeg_is_left_to_pillow(make):
    assert decode_plain_jpeg(make(), LIMIT) is None


def test_pixel_limit_is_left_to_pillow_to_refuse():
    assert decode_plain_jpeg(_jpeg(_photo((100, 100))), 5_000) is None


def test_read_image_tensor_matches_pillow_for_every_kind_of_file(tmp_path):
    files = {
        "plain.jpg": _jpeg(_photo()),
        "large.jpg": _jpeg(_photo((400, 300))),  # shrunk by Pillow's own resize after the fast decode
        "rotated.jpg": _jpeg(_photo(), exif=_orientation(6)),
        "cmyk.jpg": _jpeg(_photo().convert("CMYK")),
        "image.png": _png(_photo()),
    }
    assert all(decode_plain_jpeg(files[name], LIMIT) is not None for name in ("plain.jpg", "large.jpg"))  # the shortcut
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        got = read_image_tensor(str(path), 128)
        assert torch.equal(got, shrink_to_tensor(open_rgb(path), 128)), name
    assert read_image_tensor(str(tmp_path / "rotated.jpg"), 128).shape[1:] == (97, 61)  # turned upright


@pytest.mark.parametrize(
    "data, reason",
    [(_jpeg(make_image((1, 2, 3), size=(200, 200)))[:1500], "truncated|corrupt"), (b"not an image", "not a readable image")],
    ids=["truncated", "text"],
)
def test_read_image_tensor_words_errors_as_pillows_path_does(tmp_path, data, reason):
    path = tmp_path / "bad.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageReadError, match=reason):
        read_image_tensor(str(path), 128)


def test_a_missing_file_is_reported_as_missing(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image_tensor(str(tmp_path / "gone.jpg"), 128)


def _orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
