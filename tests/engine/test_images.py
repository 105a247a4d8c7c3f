import io

import numpy as np
import pytest
from PIL import Image

from transfer_core.data.images import ImageReadError, open_rgb, read_image_size

from ..conftest import make_image


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_exif_orientation_is_applied(tmp_path):
    image = make_image((255, 0, 0), size=(60, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = _save(image, tmp_path / "rotated.jpg", exif=exif)
    assert Image.open(path).size == (60, 30)
    assert open_rgb(path).size == (30, 60)


@pytest.mark.parametrize(
    "mode_image",
    [
        lambda: make_image((10, 200, 30)).convert("CMYK"),
        lambda: make_image((10, 200, 30)).convert("L"),
        lambda: make_image((10, 200, 30)).convert("RGBA"),
        lambda: make_image((10, 200, 30)).convert("P"),
        lambda: Image.fromarray((np.arange(1600).reshape(40, 40) * 40).astype(np.uint16)),
    ],
    ids=["cmyk", "gray", "alpha", "palette", "16bit"],
)
def test_any_mode_becomes_rgb(tmp_path, mode_image):
    image = mode_image()
    ext = ".jpg" if image.mode == "CMYK" else ".png"
    path = _save(image, tmp_path / f"img{ext}")
    rgb = open_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (40, 40)


def test_sixteen_bit_range_is_rescaled_not_clipped(tmp_path):
    array = np.linspace(0, 65535, 1600).reshape(40, 40).astype(np.uint16)
    path = _save(Image.fromarray(array), tmp_path / "deep.png")
    rgb = np.asarray(open_rgb(path))
    assert rgb.min() == 0 and rgb.max() == 255


def test_transparent_areas_become_white(tmp_path):
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgb = open_rgb(_save(image, tmp_path / "clear.png"))
    assert rgb.getpixel((5, 5)) == (255, 255, 255)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    r, g, b = open_rgb(path).getpixel((10, 10))
    assert r > 200 and b < 50


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "not a readable image"),
        (b"hello, I am text", "not a readable image"),
    ],
)
def test_non_images_are_refused_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        open_rgb(path)


def test_truncated_jpeg_is_reported(tmp_path):
    buffer = io.BytesIO()
    make_image((1, 2, 3), size=(200, 200)).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="truncated|corrupt"):
        open_rgb(path)


def test_pixel_limit_refuses_before_decoding(tmp_path):
    path = _save(make_image((1, 2, 3), size=(100, 100)), tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="above the limit"):
        read_image_size(path, max_pixels=5_000)
    with pytest.raises(ImageReadError, match="above the limit"):
        open_rgb(path, max_pixels=5_000)
