"""metagan.data.base and metagan.data.images: value ranges, the shared resize, file reading and writing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from metagan.data import ClassDataset, from_model_space, read_image, save_grid, to_model_space, write_image
from metagan.data.base import resize_images, resize_to_uint8
from metagan.errors import DataError


def test_model_space_round_trip_and_range():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    y = to_model_space(x)
    assert y.dtype == torch.float32 and y.min() == -1.0 and y.max() == 1.0
    assert torch.equal(from_model_space(y), x)
    assert to_model_space(x, torch.float64).dtype == torch.float64
    # out-of-range generator outputs are clamped, not wrapped around
    assert from_model_space(torch.tensor([-3.0, 3.0])).tolist() == [0, 255]
    with pytest.raises(TypeError):
        to_model_space(y)


def test_resize_antialiases_and_quantizes():
    # a 1-pixel checkerboard downsampled 4x must average to grey, not alias to black/white
    board = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2
    small = resize_to_uint8(board.float()[None, None], 8)
    assert small.shape == (1, 1, 8, 8) and small.dtype == torch.uint8
    assert (small.int() - 128).abs().max() <= 1
    same = torch.rand(2, 3, 5, 5)
    assert resize_images(same, 5) is same  # already the right size: untouched
    assert torch.equal(resize_to_uint8(same, 5), (same * 255).round().to(torch.uint8))
    # bool input (Omniglot's ink masks) gives the same as its float version
    mask = torch.rand(3, 1, 21, 21) > 0.5
    assert torch.equal(resize_to_uint8(mask, 7), resize_to_uint8(mask.float(), 7))


def test_class_dataset_properties_subset_and_validation():
    images = [torch.zeros(n, 1, 4, 4, dtype=torch.uint8) for n in (5, 3, 7)]
    ds = ClassDataset("toy", images, ["a", "b", "c"])
    assert (ds.num_classes, ds.image_size, ds.channels, ds.min_class_size) == (3, 4, 1, 3)
    sub = ds.subset([2, 0])
    assert sub.class_names == ["c", "a"] and sub.images[0] is images[2]
    with pytest.raises(DataError, match="twice"):
        ClassDataset("toy", images[:2], ["a", "a"])
    with pytest.raises(DataError, match="names"):
        ClassDataset("toy", images, ["a", "b"])
    with pytest.raises(DataError, match="uint8"):
        ClassDataset("toy", [torch.zeros(2, 1, 4, 4, dtype=torch.int64)], ["a"])
    with pytest.raises(DataError, match="shape"):
        ClassDataset("toy", [images[0], torch.zeros(2, 1, 5, 5, dtype=torch.uint8)], ["a", "b"])
    with pytest.raises(IndexError):
        ds.subset([3])


def _save(path, array, mode=None, **kw):
    """Write ``array`` to ``path``, converted to PIL ``mode`` first if given."""
    img = Image.fromarray(array)
    if mode:
        img = img.convert(mode)
    img.save(path, **kw)
    return path


def test_read_image_modes_polarity_and_alpha(tmp_path):
    # dark stroke on white paper, 40x20 (non-square is stretched to size x size)
    paper = np.full((20, 40), 255, np.uint8)
    paper[:, 18:22] = 0
    grey = read_image(_save(tmp_path / "g.png", paper), 10, channels=1, invert=True)
    assert grey.shape == (1, 10, 10) and grey.dtype == torch.uint8
    assert grey[0, :, 4:6].float().mean() > 100 and grey[0, :, :3].max() == 0  # ink bright, paper 0
    # the same picture in other modes reads the same
    for name, mode in [("p.gif", "P"), ("b.bmp", "1"), ("rgb.png", "RGB"), ("rgb.webp", None)]:
        kw = {"lossless": True} if name.endswith("webp") else {}
        arr = np.stack([paper] * 3, -1) if name.endswith("webp") else paper
        other = read_image(_save(tmp_path / name, arr, mode, **kw), 10, channels=1, invert=True)
        assert torch.equal(other, grey), name
    # RGBA: transparent pixels are paper (white), whatever their colour
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red everywhere ...
    rgba[:4, :, 3] = 255  # ... but only the top half is opaque
    x = read_image(_save(tmp_path / "a.png", rgba), 8, channels=3, invert=False)
    assert x[:, 4:].eq(255).all()  # transparent -> white
    assert x[:, :4].tolist() == [[[255] * 8] * 4, [[0] * 8] * 4, [[0] * 8] * 4]  # opaque red stays red
    la = np.zeros((8, 8, 2), np.uint8)  # black, fully transparent -> white paper -> no ink
    assert read_image(_save(tmp_path / "la.png", la, "LA"), 8, 1, invert=True).max() == 0
    # 16-bit greyscale is scaled by 65535, not clipped at 255
    wide = np.array([[0, 65535], [32768, 65535]], np.uint16)
    assert read_image(_save(tmp_path / "w.png", wide), 2, 1).flatten().tolist() == [0, 255, 128, 255]
    # grey files give 3 equal channels when asked for RGB
    rgb = read_image(tmp_path / "g.png", 10, channels=3, invert=True)
    assert torch.equal(rgb, grey.expand(3, -1, -1))


def test_read_image_bad_files_name_the_file(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(DataError, match="notes.png"):
        read_image(fake, 8)
    good = _save(tmp_path / "good.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataError, match="cut.png.*corrupt"):
        read_image(truncated, 8)
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.png", 8)


def test_write_image_round_trip_both_polarities(tmp_path):
    x = torch.randint(0, 256, (1, 9, 9), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "sub" / "x.png", x, invert=True)
    assert np.asarray(Image.open(tmp_path / "sub" / "x.png")).tolist() == (255 - x[0]).tolist()
    assert torch.equal(read_image(tmp_path / "sub" / "x.png", 9, 1, invert=True), x)
    rgb = torch.randint(0, 256, (3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    write_image(tmp_path / "c.png", rgb)
    assert torch.equal(read_image(tmp_path / "c.png", 5, 3), rgb)
    with pytest.raises(TypeError, match="from_model_space"):
        write_image(tmp_path / "f.png", x.float())


def test_save_grid_layout(tmp_path):
    white = torch.full((3, 1, 4, 4), 255, dtype=torch.uint8)
    black = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    grid = save_grid(tmp_path / "grid.png", [white, black], invert=False, pad=2)
    assert grid.shape == (1, 2 + 6 + 4 + 6, 2 + 3 * 6)  # two lines, 6 apart (gap = 3 x pad) instead of 2
    on_disk = np.asarray(Image.open(tmp_path / "grid.png"))
    assert on_disk.tolist() == grid[0].tolist()
    assert grid[0, 2:6, 2:6].eq(255).all() and grid[0, 12:16, 2:6].eq(0).all()
    assert grid[0, 12:16, 8:12].eq(128).all()  # second row is short: left grey
    assert grid[0, :2].eq(128).all() and grid[0, :, 6:8].eq(128).all() and grid[0, 6:12].eq(128).all()  # separators
    inverted = save_grid(tmp_path / "inv.png", [white, black], invert=True, pad=2)
    assert inverted[0, 2:6, 2:6].eq(0).all() and inverted[0, 12:16, 2:6].eq(255).all()
    with pytest.raises(ValueError):
        save_grid(tmp_path / "empty.png", [])
    with pytest.raises(ValueError, match="columns >= 1"):
        save_grid(tmp_path / "none.png", [white], columns=0)


def numbered(n, start=0):
    """n 4x4 grey images, image i filled with the value 10 * (start + i) + 5 (never the separator's 128)."""
    return (10 * torch.arange(start, start + n) + 5).to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()


def test_save_grid_leaves_a_row_that_fits_on_one_line(tmp_path):
    row = numbered(5)
    one_line = save_grid(tmp_path / "a.png", [row], pad=2)
    assert one_line.shape == (1, 2 + 4 + 2, 2 + 5 * 6)  # a single line: pad, image, pad; five images across
    for columns in (5, 16):
        assert torch.equal(save_grid(tmp_path / "b.png", [row], pad=2, columns=columns), one_line)
    for j in range(5):
        assert one_line[0, 2:6, 2 + 6 * j:6 + 6 * j].eq(10 * j + 5).all()


def test_save_grid_wraps_long_rows_and_keeps_a_gap_between_rows(tmp_path):
    support, samples = numbered(2), numbered(7, start=2)
    grid = save_grid(tmp_path / "g.png", [support, samples], pad=2, scale=2, columns=3)
    # 3 images wide; the support row on one line, then a 6-pixel gap, then the samples on 3 lines 2 apart
    assert grid.shape == (1, 2 + 6 + 4 + 3 * 6, 2 + 3 * 6)
    assert np.asarray(Image.open(tmp_path / "g.png")).shape == (2 * 30, 2 * 20)  # the file: scaled 2x
    tops = {0: 2, 1: 2, 2: 12, 3: 12, 4: 12, 5: 18, 6: 18, 7: 18, 8: 24}  # image index -> top of its line
    for i, top in tops.items():
        left = 2 + 6 * ((i if i < 2 else i - 2) % 3)
        assert grid[0, top:top + 4, left:left + 4].eq(10 * i + 5).all(), i
    assert grid[0, 6:12].eq(128).all()  # the gap between the logical rows
    assert grid[0, 24:28, 8:20].eq(128).all()  # the last line's unused places stay grey
    # metagan adapt's grid: K = 5 support images, then 64 samples -> 16 images across, 1 + 4 lines
    adapt = save_grid(tmp_path / "a.png", [numbered(5), numbered(64)], pad=2)
    assert adapt.shape == (1, 2 + 6 + 4 + 4 * 6, 2 + 16 * 6)


def test_exif_orientation_is_applied(tmp_path):
    # a landscape picture with a dark band on the left, tagged "rotate 90 degrees clockwise to view"
    arr = np.full((10, 20), 255, np.uint8)
    arr[:, :5] = 0
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF Orientation
    Image.fromarray(arr).save(tmp_path / "photo.png", exif=exif)
    Image.fromarray(np.ascontiguousarray(np.rot90(arr, -1))).save(tmp_path / "upright.png")
    seen = read_image(tmp_path / "photo.png", 10, 1, invert=True)
    assert torch.equal(seen, read_image(tmp_path / "upright.png", 10, 1, invert=True))
    assert seen[0, :2].float().mean() > 200 and seen[0, -2:].max() == 0  # the band is now at the top


def test_pixel_limit_names_the_file_and_the_limit(tmp_path, monkeypatch):
    import metagan.data.images as images
    path = _save(tmp_path / "huge.png", np.full((20, 30), 255, np.uint8))
    monkeypatch.setattr(images, "MAX_PIXELS", 500)
    with pytest.raises(DataError, match=r"huge.png is 30x20 = 0 megapixels, over metagan's limit"):
        read_image(path, 8)
    # Pillow's own decompression-bomb warning (above its limit) and error (above twice it) become the same DataError
    monkeypatch.setattr(images, "MAX_PIXELS", 10**9)
    for pil_limit in (500, 200):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pil_limit)
        with pytest.raises(DataError, match="huge.png is over metagan's limit"):
            read_image(path, 8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**9)
    assert read_image(path, 8).shape == (1, 8, 8)


def test_support_images_that_cannot_be_a_drawing(tmp_path):
    from metagan.data.images import ink_share, read_support_image
    stroke = np.full((20, 20), 255, np.uint8)
    stroke[4:16, 9:11] = 0  # a dark stroke on white paper
    ok = read_support_image(_save(tmp_path / "ok.png", stroke), 8, 1, invert=True)
    assert torch.equal(ok, read_image(tmp_path / "ok.png", 8, 1, invert=True)) and ink_share(ok) < 0.5
    cases = [("dot.png", np.zeros((1, 1), np.uint8), None, "1x1 pixels"),
             ("thin.png", stroke[:3], None, "20x3 pixels"),
             ("blank.png", np.full((20, 20), 250, np.uint8), None, "blank"),
             ("faint.png", np.where(stroke == 0, 240, 250).astype(np.uint8), None, "blank")]
    for name, arr, mode, message in cases:
        with pytest.raises(DataError, match=f"{name}.*{message}"):
            read_support_image(_save(tmp_path / name, arr, mode), 8, 1, invert=True)
    # transparency: none opaque or nearly none is refused; ink drawn on a transparent background is fine
    la = np.zeros((20, 20, 2), np.uint8)
    with pytest.raises(DataError, match="clear.png is fully transparent"):
        read_support_image(_save(tmp_path / "clear.png", la, "LA"), 8, 1, invert=True)
    la[5, 5, 1] = 255
    with pytest.raises(DataError, match="speck.png is nearly fully transparent"):
        read_support_image(_save(tmp_path / "speck.png", la, "LA"), 8, 1, invert=True)
    la[5, 5, 1], la[4:16, 9:11, 1] = 0, 255  # opaque black stroke on a transparent background: dark ink on white paper
    glyph = read_support_image(_save(tmp_path / "glyph.png", la, "LA"), 8, 1, invert=True)
    assert torch.equal(glyph, ok)


def test_support_polarity_check(tmp_path):
    from metagan.data.images import read_support_image
    stroke = np.full((20, 20), 255, np.uint8)
    stroke[4:16, 9:11] = 0  # dark on light: inverted for a model of light ink on dark
    path = _save(tmp_path / "dark_on_light.png", stroke)
    with pytest.raises(DataError, match="dark_on_light.png seems to have the opposite polarity.*"
                                        "--polarity dark-on-light"):
        read_support_image(path, 8, 1, invert=False)
    assert read_support_image(path, 8, 1, invert=True).float().mean() < 128  # read right: little ink
    as_is = read_support_image(path, 8, 1, invert=False, check_polarity=False)  # said explicitly: no check
    assert torch.equal(as_is, read_image(path, 8, 1))
    with pytest.raises(DataError, match="--polarity light-on-dark"):  # and the other way round
        read_support_image(_save(tmp_path / "light_on_dark.png", 255 - stroke), 8, 1, invert=True)
