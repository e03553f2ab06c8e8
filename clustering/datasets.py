"""Datasets for the command line: a folder of images, or the demo set."""

import os

IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".jfif",
}


def find_images(folder):
    """Image files under ``folder`` (by extension), sorted, with the name of
    the first-level subfolder each lies in (``None`` at the top level)."""
    folder = os.path.abspath(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        rel = os.path.relpath(root, folder)
        label = None if rel == "." else rel.split(os.sep)[0]
        for name in sorted(files):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append((os.path.join(root, name), label))
    return found


def dataset_from_folder(folder, name, label_field="ground_truth"):
    """Creates persistent dataset ``name`` from the images under ``folder``.

    Subfolder names, when there are any, become a classification in
    ``label_field``, so clusters can be compared with them.
    """
    import fiftyone as fo

    images = find_images(folder)
    if not images:
        raise ValueError(f"no images found under {folder}")
    dataset = fo.Dataset(name, persistent=True)
    samples = []
    for path, label in images:
        sample = fo.Sample(filepath=path)
        if label is not None:
            sample[label_field] = fo.Classification(label=label)
        samples.append(sample)
    dataset.add_samples(samples, progress=False)
    return dataset


def write_digits(folder, upscale=4):
    """Writes scikit-learn's bundled handwritten digits (1,797 images of
    8x8 pixels, 10 classes) as PNGs under ``folder/<digit>/``, enlarged
    ``upscale`` times so they are visible in the App. Returns ``folder``."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    side = 8 * upscale
    for i, (image, target) in enumerate(zip(digits.images, digits.target)):
        sub = os.path.join(folder, str(target))
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"{i:04d}.png")
        if os.path.exists(path):
            continue
        pixels = (image * (255.0 / 16.0)).astype(np.uint8)
        Image.fromarray(pixels, mode="L").resize(
            (side, side), Image.Resampling.NEAREST
        ).save(path)
    return folder
