"""Every kind of awkward file is decoded correctly or rejected with a
reason, through the real pixel embedder and the real pipeline."""

import numpy as np
import pytest
from PIL import Image

from image_clustering.embedders import get_embedder
from image_clustering.embedders.images import (
    ImageDecodeError,
    iter_decoded,
    load_image,
)

from conftest import write_gray


def _value_of(path, size=4):
    out = get_embedder("pixels", size=size).embed([str(path)])
    assert not out.failures, out.failures
    return out.vectors[0]


def test_plain_gray_image_is_scaled_to_unit_range(tmp_path):
    vec = _value_of(write_gray(tmp_path / "g.png", 102))
    np.testing.assert_allclose(vec, 102 / 255, atol=1e-6)


@pytest.mark.parametrize(
    "mode,color,expected",
    [
        ("CMYK", (0, 0, 0, 0), 255),  # no ink: white
        ("RGB", (255, 0, 0), 76),  # ITU-R 601 luma of pure red
        ("P", None, 76),  # palette image of pure red
    ],
)
def test_colour_modes_convert_to_luminance(tmp_path, mode, color, expected):
    path = tmp_path / f"img_{mode}.png"
    if mode == "P":
        Image.new("RGB", (8, 8), (255, 0, 0)).convert("P").save(path)
    elif mode == "CMYK":
        path = tmp_path / "img.jpg"
        Image.new("CMYK", (8, 8), color).save(path, quality=100)
    else:
        Image.new(mode, (8, 8), color).save(path)
    np.testing.assert_allclose(_value_of(path) * 255, expected, atol=2)


def test_sixteen_bit_image_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # half of full scale
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_allclose(_value_of(path), 0.5, atol=0.01)


def test_transparent_pixels_are_shown_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    np.testing.assert_allclose(_value_of(path), 1.0, atol=1e-6)


def test_animated_gif_uses_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("L", (8, 8), v) for v in (30, 220)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    np.testing.assert_allclose(_value_of(path) * 255, 30, atol=2)


@pytest.mark.parametrize("ext", ["webp", "tiff", "bmp"])
def test_other_formats_decode(tmp_path, ext):
    path = tmp_path / f"img.{ext}"
    Image.new("L", (8, 8), 128).save(path, **({"lossless": True} if ext == "webp" else {}))
    np.testing.assert_allclose(_value_of(path) * 255, 128, atol=2)


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (2048, 1024), (10, 200, 10)).save(path)
    im = load_image(str(path), mode="L", size=(64, 64))
    # JPEG decodes at 1/2, 1/4 or 1/8 scale: the smallest that is still
    # at least 64 px on each side here is 1/8
    assert im.size == (256, 128)
    full = load_image(str(path), mode="L")
    assert full.size == (2048, 1024)


def _bad_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    good = write_gray(tmp_path / "whole.png", 90, size=64)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    bomb = tmp_path / "bomb.png"
    # A 1-bit PNG of 20000 x 10000 pixels: tiny on disk, 200 M pixels.
    Image.new("1", (20000, 10000)).save(bomb)
    return {
        "missing": (tmp_path / "nope.png", "file not found"),
        "empty": (empty, "empty file"),
        "not an image": (text, "not a recognised image format"),
        "truncated": (truncated, "corrupt or truncated"),
        "bomb": (bomb, "image too large"),
    }


def test_bad_files_are_rejected_with_reasons(tmp_path):
    for kind, (path, reason) in _bad_files(tmp_path).items():
        with pytest.raises(ImageDecodeError, match=reason):
            load_image(str(path))


def test_pixel_limit_is_read_when_loading(tmp_path, monkeypatch):
    path = str(write_gray(tmp_path / "big.png", 90, size=100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError, match="over 1,000 pixels"):
        load_image(path)
    # None is Pillow's way to trust every image
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert load_image(path).size == (100, 100)


def test_unexpected_error_reaches_every_crop_of_the_image(tmp_path, monkeypatch):
    import threading

    from image_clustering.embedders import images

    path = str(write_gray(tmp_path / "one.png", 90, size=32))
    crops = [images.Crop(path, (0.1 * i, 0.1, 0.2, 0.2)) for i in range(6)]

    def broken(*args, **kwargs):
        raise RuntimeError("decoder crashed")

    monkeypatch.setattr(images, "load_image", broken)
    outcome = []

    def consume():
        try:
            list(iter_decoded(crops, images.load_crop, num_workers=4))
        except RuntimeError as e:
            outcome.append(str(e))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert outcome == ["decoder crashed"], "waiting crops must not hang"


def test_embedder_reports_failures_and_keeps_rows_aligned(tmp_path):
    bad = _bad_files(tmp_path)
    goods = [write_gray(tmp_path / f"ok{i}.png", 20 * i + 10) for i in range(4)]
    paths = [goods[0], bad["missing"][0], goods[1], bad["empty"][0],
             goods[2], bad["truncated"][0], bad["bomb"][0], goods[3],
             bad["not an image"][0]]
    out = get_embedder("pixels", size=4).embed([str(p) for p in paths])
    assert sorted(out.failures) == [1, 3, 5, 6, 8]
    for i, good in zip([0, 2, 4, 7], range(4)):
        np.testing.assert_allclose(out.vectors[i] * 255, 20 * good + 10, atol=1)
    assert out.ok.tolist() == [i not in out.failures for i in range(9)]


def test_iter_decoded_keeps_order_across_batches(tmp_path):
    paths = [str(write_gray(tmp_path / f"{i}.png", i)) for i in range(23)]
    decode = lambda p: int(np.asarray(load_image(p, "L"))[0, 0])
    seen = []
    for start, items, failures in iter_decoded(
        paths, decode, batch_size=5, num_workers=3
    ):
        assert start == len(seen) and not failures
        seen.extend(items)
    assert seen == list(range(23))


def test_pipeline_skips_bad_files_and_clusters_the_rest(
    tmp_path, make_dataset
):
    import image_clustering as ic

    bad = _bad_files(tmp_path)
    goods = []
    for i in range(10):
        value = 30 if i < 5 else 220
        goods.append(write_gray(tmp_path / f"g{i}.png", value, noise=10, seed=i))
    dataset = make_dataset(goods + [p for p, _ in bad.values()])
    run = ic.compute_clusters(
        dataset, "k", reducer="none", method="kmeans", n_clusters=2,
        embedder={"name": "pixels", "size": 8},
    )
    skipped = run.skipped
    assert skipped["count"] == 5
    by_path = {s["filepath"]: s["reason"] for s in skipped["samples"]}
    for path, reason in bad.values():
        assert reason in by_path[str(path)]
    clusters = dict(zip(*dataset.values(["filepath", "k_cluster"])))
    assert all(clusters[str(p)] is None for p, _ in bad.values())
    dark = {clusters[str(p)] for p in goods[:5]}
    bright = {clusters[str(p)] for p in goods[5:]}
    assert len(dark) == len(bright) == 1 and dark != bright
