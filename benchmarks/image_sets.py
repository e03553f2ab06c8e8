"""Four labelled image sets built on this machine (nothing is downloaded),
each a FiftyOne dataset with ground truth, for judging the defaults:

- ``digits``: scikit-learn's 1,797 handwritten digits, 10 classes;
- ``faces``: scikit-image's ``lfw_subset()``, 100 faces against 100
  non-faces;
- ``shapes``: 600 drawn images, 6 classes of bright shapes and textures
  near the centre of dark backgrounds, at random sizes, offsets, phases and
  colours;
- ``patches``: 120 street-like scenes holding 4 kinds of objects, clustered
  as objects (``patches_field``).
"""

import os

import numpy as np

import synthetic  # noqa: F401  (the benchmark database)

SETS = ("digits", "faces", "shapes", "patches")
# Sets only built when asked for.
EXTRA_SETS = ("digits5k",)


def _dataset(name, items, label_field="ground_truth"):
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    samples = []
    for path, label in items:
        sample = fo.Sample(filepath=path)
        sample[label_field] = fo.Classification(label=str(label))
        samples.append(sample)
    ds.add_samples(samples, progress=False)
    return ds


def digits(folder):
    from image_clustering.cli.folders import find_images, write_digits

    write_digits(os.path.join(folder, "digits"))
    return _dataset("set-digits", find_images(os.path.join(folder,
                                                           "digits")))


def digits5k(folder, copies=3):
    """scikit-learn's digits three times over, each copy moved a little
    (rotation up to 12 degrees, shifts up to 2 pixels, blur): 5,391 images,
    the size of the sets the defaults are judged on elsewhere."""
    from PIL import Image, ImageFilter
    from sklearn.datasets import load_digits

    data = load_digits()
    out = os.path.join(folder, "digits5k")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    items = []
    for i, (image, target) in enumerate(zip(data.images, data.target)):
        base = Image.fromarray((image * 255 / 16).astype(np.uint8)).resize(
            (32, 32), Image.Resampling.BILINEAR)
        for c in range(copies):
            im = base.rotate(float(rng.uniform(-12, 12)),
                             translate=tuple(int(v) for v in
                                             rng.integers(-2, 3, 2)),
                             resample=Image.Resampling.BILINEAR)
            if rng.random() < 0.5:
                im = im.filter(ImageFilter.GaussianBlur(0.6))
            path = os.path.join(out, f"{i:04d}_{c}.png")
            im.save(path)
            items.append((path, int(target)))
    return _dataset("set-digits5k", items)


def faces(folder):
    from PIL import Image
    from skimage.data import lfw_subset

    images = lfw_subset()
    out = os.path.join(folder, "faces")
    os.makedirs(out, exist_ok=True)
    items = []
    for i, image in enumerate(images):
        path = os.path.join(out, f"{i:03d}.png")
        Image.fromarray((image * 255).astype(np.uint8)).resize(
            (50, 50)).save(path)
        items.append((path, "face" if i < 100 else "other"))
    return _dataset("set-faces", items)


def _background(rng, size, low=0, high=256):
    from PIL import Image

    base = rng.integers(low, high, 3)
    arr = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255)
    return Image.fromarray(arr.astype(np.uint8))


def draw_shape(kind, rng, size=64):
    """A bright shape or texture on a dark background: placed near the
    centre at a random size, phase and colour."""
    from PIL import ImageDraw

    im = _background(rng, size, 0, 70)
    draw = ImageDraw.Draw(im)
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(size // 2 + v) for v in rng.integers(-6, 7, 2))
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)],
                     fill=colour)
    elif kind == "stripes":
        step = int(rng.integers(4, 8))
        for y in range(int(rng.integers(0, step)), size, 2 * step):
            draw.rectangle([0, y, size, y + step - 1], fill=colour)
    elif kind == "checks":
        step = int(rng.integers(6, 10))
        for x in range(0, size, step):
            for y in range(0, size, step):
                if (x // step + y // step) % 2:
                    draw.rectangle([x, y, x + step - 1, y + step - 1],
                                   fill=colour)
    elif kind == "rings":
        for radius in range(size // 2, 2, -int(rng.integers(5, 8))):
            draw.ellipse([cx - radius, cy - radius, cx + radius,
                          cy + radius], outline=colour, width=2)
    return im


SHAPES = ("circle", "square", "triangle", "stripes", "checks", "rings")


def shapes(folder, per_class=100):
    out = os.path.join(folder, "shapes")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    items = []
    for kind in SHAPES:
        for i in range(per_class):
            path = os.path.join(out, f"{kind}{i:03d}.png")
            draw_shape(kind, rng).save(path)
            items.append((path, kind))
    return _dataset("set-shapes", items)


def patches(folder, scenes=120):
    """Scenes of 4 kinds of objects (wheel, window, sign, tree) drawn at
    random places; the objects are boxes in ``ground_truth``."""
    import fiftyone as fo
    from PIL import ImageDraw

    out = os.path.join(folder, "street")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)
    kinds = ("wheel", "window", "sign", "tree")
    name = "set-patches"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    samples = []
    for s in range(scenes):
        im = _background(rng, 256, 0, 256)
        draw = ImageDraw.Draw(im)
        detections = []
        for _ in range(4):
            kind = kinds[int(rng.integers(0, 4))]
            w = int(rng.integers(40, 70))
            x, y = (int(v) for v in rng.integers(0, 256 - w, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            if kind == "wheel":
                draw.ellipse([x, y, x + w, y + w], outline=colour, width=6)
            elif kind == "window":
                draw.rectangle([x, y, x + w, y + w], fill=colour)
                draw.line([x + w // 2, y, x + w // 2, y + w], fill=(0, 0, 0),
                          width=3)
                draw.line([x, y + w // 2, x + w, y + w // 2], fill=(0, 0, 0),
                          width=3)
            elif kind == "sign":
                draw.polygon([(x + w // 2, y), (x, y + w), (x + w, y + w)],
                             fill=colour)
            else:
                draw.rectangle([x + w // 2 - 4, y + w // 2, x + w // 2 + 4,
                                y + w], fill=(90, 60, 30))
                draw.ellipse([x, y, x + w, y + 2 * w // 3], fill=colour)
            detections.append(fo.Detection(
                label=kind, bounding_box=[x / 256, y / 256, w / 256,
                                          w / 256]))
        path = os.path.join(out, f"scene{s:03d}.png")
        im.save(path)
        samples.append(fo.Sample(filepath=path, ground_truth=fo.Detections(
            detections=detections)))
    ds.add_samples(samples, progress=False)
    return ds


def build(name, folder):
    return {"digits": digits, "digits5k": digits5k, "faces": faces,
            "shapes": shapes, "patches": patches}[name](folder)
