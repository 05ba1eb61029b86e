"""Bad and unusual inputs, as real files written by the tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from charaid.errors import ImageError
from charaid.pipeline.images import iter_image_paths, load_image, load_image_bytes


def _jpeg(tmp: Path, name="ok.jpg", size=(64, 48), colour=(200, 30, 30)) -> Path:
    p = tmp / name
    Image.new("RGB", size, colour).save(p, "JPEG", quality=95)
    return p


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels in a few dozen bytes: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_plain_rgb_loads(tmp_path):
    im = load_image(_jpeg(tmp_path))
    assert im.mode == "RGB" and im.size == (64, 48)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is not an image at all\n" * 10, "not an image"),
        (bytes(range(256)) * 40, "not an image"),
    ],
)
def test_unreadable_files_name_the_file_and_reason(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError) as e:
        load_image(p)
    msg = str(e.value)
    assert str(p) in msg and reason in msg and "\n" not in msg


def test_truncated_jpeg(tmp_path):
    good = _jpeg(tmp_path, size=(400, 300))
    data = good.read_bytes()
    p = tmp_path / "truncated.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(p, "JPEG", quality=95)  # pure red in CMYK
    im = load_image(p)
    r, g, b = im.getpixel((16, 16))
    assert im.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "deep.png"
    a = np.full((20, 20), 32768, dtype=np.uint16)  # half of full scale
    Image.fromarray(a).save(p)  # uint16 -> mode I;16
    im = load_image(p)
    v = im.getpixel((5, 5))
    assert im.mode == "RGB" and 120 <= v[0] <= 135, v


def test_palette_with_transparency_is_laid_on_white(tmp_path):
    p = tmp_path / "pal.png"
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((0, 0), 1)
    im.save(p, transparency=0)  # index 0 (black) is transparent
    out = load_image(p)
    assert out.getpixel((5, 5)) == (255, 255, 255)  # transparent -> white, not black
    assert out.getpixel((0, 0)) == (255, 0, 0)


def test_rgba_is_laid_on_white(tmp_path):
    p = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8), (0, 0, 255, 0)).save(p)
    assert load_image(p).getpixel((1, 1)) == (255, 255, 255)


def test_animated_gif_gives_first_frame(tmp_path):
    p = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, g, b = load_image(p).getpixel((8, 8))
    assert r > 200 and b < 60


def test_exif_rotation_is_honoured(tmp_path):
    p = tmp_path / "rotated.jpg"
    im = Image.new("RGB", (60, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    im.save(p, "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(p)
    assert out.size == (20, 60)  # portrait after rotation
    assert sum(out.getpixel((10, 3))) > 600  # the left band is now at the top


def test_decompression_bomb_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(png_header_only(100_000, 100_000))  # 10 gigapixels declared in 60 bytes
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(p)


def test_pixel_limit_is_a_setting(tmp_path, monkeypatch):
    p = _jpeg(tmp_path, size=(100, 100))
    with pytest.raises(ImageError, match="over the limit of 5,000"):
        load_image(p, max_pixels=5000)
    monkeypatch.setenv("CHARAID_MAX_PIXELS", "5000")
    with pytest.raises(ImageError, match="CHARAID_MAX_PIXELS"):
        load_image(p)


def test_bytes_loader_trusts_content_not_name(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (5, 5), (1, 2, 3)).save(buf, "PNG")
    assert load_image_bytes(buf.getvalue(), "looks_like.txt").size == (5, 5)
    with pytest.raises(ImageError, match="not an image"):
        load_image_bytes(b"<html>", "fake.png")


def test_folder_walk_is_recursive_sorted_and_skips_non_images(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for rel in ["a/2.png", "a/b/1.jpg", "a/notes.txt", "z.webp", ".hidden.png"]:
        (tmp_path / rel).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_paths([tmp_path])]
    assert found == ["a/2.png", "a/b/1.jpg", "z.webp"]


def test_folder_walk_does_not_follow_links_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"x")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    assert list(iter_image_paths([root])) == []


def test_special_files_with_an_image_name_are_refused_before_reading(tmp_path):
    """A FIFO would block for ever and a link to /dev/zero never ends: refused at stat time."""
    import os

    from charaid.pipeline.images import sha256_file

    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    for p, kind in ((fifo, "a FIFO"), (zero, "a character device")):
        with pytest.raises(ImageError, match=f"not a regular file \\({kind}\\)"):
            load_image(p)
        with pytest.raises(OSError, match="not a regular file"):
            sha256_file(p)
