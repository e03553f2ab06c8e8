"""Real photographs (scikit-image's sample images and quarters of the
larger ones) written to a folder, with planted copies: exact copies, and
near copies resized, re-encoded as low-quality JPEG, slightly cropped and
lightly colour-shifted. Shared by the duplicates tests and
``benchmarks/duplicates_threshold.py``."""

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


def write_planted(folder, copies_of=8, exact_of=4):
    """Writes the distinct images as PNG and planted copies of some.
    Returns ``(paths, truth)``: every path written, and path -> the path of
    the original it copies (originals map to themselves)."""
    os.makedirs(folder, exist_ok=True)
    images = distinct_images()
    paths, truth = [], {}
    for name, im in images.items():
        path = os.path.join(folder, f"{name}.png")
        im.save(path)
        paths.append(path)
        truth[path] = path
    names = sorted(images)
    rng = np.random.default_rng(0)
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
