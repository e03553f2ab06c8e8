"""Sets of distinct images written to a folder, with planted copies: exact
copies, and near copies resized, re-encoded as low-quality JPEG, slightly
cropped and lightly colour-shifted. Four kinds of image
(:data:`KINDS`):

- ``photos``: real photographs (scikit-image's sample images and quarters
  of the larger ones);
- ``faces``: the 100 faces of scikit-image's ``lfw_subset()`` (25 x 25,
  written at 64 x 64);
- ``textures``: crops of scikit-image's brick, grass and gravel, and drawn
  stripes, checks, dots and smooth noise at random scales, angles and
  phases;
- ``digits``: 150 of scikit-learn's handwritten digits (8 x 8, written at
  32 x 32), where distinct images lie closest together.

Shared by the duplicates tests and ``benchmarks/duplicates_threshold.py``."""

import os
import shutil

import numpy as np
from PIL import Image, ImageEnhance

WHOLE = ("astronaut", "brick", "camera", "cell", "chelsea", "clock",
         "coffee", "coins", "colorwheel", "grass", "gravel", "horse",
         "hubble_deep_field", "immunohistochemistry", "logo", "moon",
         "page", "rocket", "text", "retina")
QUARTERED = ("astronaut", "coffee", "rocket", "hubble_deep_field", "retina")

NEAR_COPIES = {
    "resized": lambda im: im.resize((max(8, im.width // 2),
                                     max(8, im.height // 2)),
                                    Image.Resampling.BILINEAR),
    "jpeg": None,  # saved at quality 25 instead of transformed
    "cropped": lambda im: im.crop((round(im.width * 0.03),
                                   round(im.height * 0.03),
                                   round(im.width * 0.97),
                                   round(im.height * 0.97))),
    "colour": lambda im: ImageEnhance.Brightness(
        ImageEnhance.Color(im).enhance(1.15)).enhance(1.08),
}


def _as_rgb(array):
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        array = array.astype(np.float64)
        array = (255 * (array - array.min()) /
                 max(array.max() - array.min(), 1e-9)).astype(np.uint8)
    return Image.fromarray(array)


def distinct_images():
    """Name -> PIL image of 40 distinct photographs."""
    import skimage.data as data

    out = {name: _as_rgb(getattr(data, name)()) for name in WHOLE}
    for name in QUARTERED:
        im = out[name]
        w, h = im.width // 2, im.height // 2
        for i, (x, y) in enumerate(((0, 0), (w, 0), (0, h), (w, h))):
            out[f"{name}_q{i}"] = im.crop((x, y, x + w, y + h))
    return out


def faces():
    """Name -> PIL image of the 100 faces of ``lfw_subset()``."""
    from skimage.data import lfw_subset

    return {f"face{i:03d}": _as_rgb(image).resize(
        (64, 64), Image.Resampling.BILINEAR)
        for i, image in enumerate(lfw_subset()[:100])}


def digits(count=150, seed=0):
    """Name -> PIL image of ``count`` of scikit-learn's digits."""
    from sklearn.datasets import load_digits

    data = load_digits()
    chosen = np.random.default_rng(seed).choice(len(data.images), count,
                                                replace=False)
    return {f"digit{i:04d}": _as_rgb(
        (data.images[i] * 255 / 16).astype(np.uint8)).resize(
            (32, 32), Image.Resampling.BILINEAR) for i in chosen}


def textures(drawn=40, side=128, seed=3):
    """Name -> PIL image of 48 crops of three photographed textures and
    ``drawn`` drawn ones."""
    import skimage.data as data

    out = {}
    for name in ("brick", "grass", "gravel"):
        im = _as_rgb(getattr(data, name)())
        for i in range(4):
            for j in range(4):
                out[f"{name}_{i}{j}"] = im.crop(
                    (j * side, i * side, (j + 1) * side, (i + 1) * side))
    rng = np.random.default_rng(seed)
    kinds = ("stripes", "checks", "dots", "noise")
    for k in range(drawn):
        kind = kinds[k % len(kinds)]
        out[f"drawn_{kind}{k:02d}"] = _draw_texture(kind, rng, side)
    return out


def _draw_texture(kind, rng, side):
    from scipy.ndimage import gaussian_filter

    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    if kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
        a = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle))
                   / period + rng.uniform(0, 2 * np.pi))
    elif kind == "checks":
        period, angle = rng.uniform(8, 32), rng.uniform(0, np.pi / 2)
        ox, oy = rng.uniform(0, period, 2)
        u = x * np.cos(angle) + y * np.sin(angle) + ox
        v = -x * np.sin(angle) + y * np.cos(angle) + oy
        a = np.sign(np.sin(np.pi * u / period) * np.sin(np.pi * v / period))
    elif kind == "dots":
        period = rng.uniform(10, 24)
        radius = rng.uniform(0.2, 0.4) * period
        ox, oy = rng.uniform(0, period, 2)
        a = (np.hypot((x + ox) % period - period / 2,
                      (y + oy) % period - period / 2) < radius) * 1.0
    else:
        a = gaussian_filter(rng.normal(size=(side, side)),
                            rng.uniform(1.5, 5))
    a = (a - a.min()) / max(a.max() - a.min(), 1e-9)
    low, high = sorted(rng.uniform(0, 255, 2))
    tint = rng.uniform(0.6, 1.0, 3)
    rgb = np.stack([low + (high - low) * a * t for t in tint], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


#: Each kind of image: its distinct images, and how many get near copies.
KINDS = {
    "photos": (distinct_images, 8),
    "faces": (faces, 10),
    "textures": (textures, 10),
    "digits": (digits, 15),
}


def write_kind(kind, folder, seed=0):
    """Writes the distinct images of ``kind`` and planted copies of some
    (chosen by ``seed``); returns ``(paths, truth)`` as
    :func:`plant`."""
    images, copies_of = KINDS[kind]
    return plant(folder, images(), copies_of, max(1, copies_of // 2), seed)


def write_planted(folder, copies_of=8, exact_of=4):
    """Writes the distinct photographs and planted copies of some; returns
    ``(paths, truth)`` as :func:`plant`."""
    return plant(folder, distinct_images(), copies_of, exact_of)


def plant(folder, images, copies_of, exact_of, seed=0):
    """Writes ``images`` (name -> PIL image) as PNG, near copies of
    ``copies_of`` of them (one of each kind in :data:`NEAR_COPIES`) and
    exact copies of ``exact_of``. Returns ``(paths, truth)``: every path
    written, and path -> the path of the original it copies (originals
    map to themselves)."""
    os.makedirs(folder, exist_ok=True)
    paths, truth = [], {}
    for name, im in images.items():
        path = os.path.join(folder, f"{name}.png")
        im.save(path)
        paths.append(path)
        truth[path] = path
    names = sorted(images)
    rng = np.random.default_rng(seed)
    for name in rng.choice(names, copies_of, replace=False):
        original = os.path.join(folder, f"{name}.png")
        for kind, change in NEAR_COPIES.items():
            path = os.path.join(folder, f"{name}__{kind}.jpg" if kind ==
                                "jpeg" else f"{name}__{kind}.png")
            if change is None:
                images[name].save(path, quality=25)
            else:
                change(images[name]).save(path)
            paths.append(path)
            truth[path] = original
    for name in rng.choice(names, exact_of, replace=False):
        original = os.path.join(folder, f"{name}.png")
        path = os.path.join(folder, f"{name}__exact.png")
        shutil.copyfile(original, path)
        paths.append(path)
        truth[path] = original
    return paths, truth
