"""Datasets for the command line: a folder of images, or the demo set.

A folder becomes a dataset atomically: it is built under a temporary name
and only renamed to its final name once every sample is in, so a killed
import leaves no half-built dataset under the name a later run would reuse.
The dataset remembers which files it was built from; when the folder has
changed, :func:`sync_with_folder` adds the new images and says what else
changed.
"""

import hashlib
import os
import uuid

IMAGE_EXTENSIONS = {
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".jfif",
}

# Prefix of datasets being imported; a leftover one is a killed import.
IMPORTING_PREFIX = "image-clustering-importing-"
# dataset.info entry: the folder and a digest of its image files.
SOURCE_INFO = "image_clustering_source"


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


def folder_digest(images):
    """A digest of the image files' paths, sizes and modification times."""
    digest = hashlib.sha1()
    for path, _ in images:
        try:
            st = os.stat(path)
            digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(
                "utf-8", "surrogatepass"))
        except OSError:
            digest.update(f"{path}\0missing\n".encode("utf-8",
                                                      "surrogatepass"))
    return digest.hexdigest()


def _samples_for(images, label_field):
    import fiftyone as fo

    samples = []
    for path, label in images:
        sample = fo.Sample(filepath=path)
        if label is not None:
            sample[label_field] = fo.Classification(label=label)
        samples.append(sample)
    return samples


def remove_killed_imports():
    """Deletes datasets that an import killed half-way left behind."""
    import fiftyone as fo

    for name in fo.list_datasets(glob_patt=IMPORTING_PREFIX + "*"):
        fo.delete_dataset(name)


def dataset_from_folder(folder, name, label_field="ground_truth",
                        replace=False):
    """Creates persistent dataset ``name`` from the images under ``folder``
    (with ``replace``, in place of an existing one, which is deleted only
    once the new one is complete).

    Subfolder names, when there are any, become a classification in
    ``label_field``, so clusters can be compared with them.
    """
    import fiftyone as fo

    folder = os.path.abspath(folder)
    images = find_images(folder)
    if not images:
        raise ValueError(f"no images found under {folder}")
    remove_killed_imports()
    building = fo.Dataset(IMPORTING_PREFIX + uuid.uuid4().hex[:12],
                          persistent=True)
    building.add_samples(_samples_for(images, label_field), progress=False)
    building.info[SOURCE_INFO] = {
        "folder": folder,
        "digest": folder_digest(images),
        "label_field": label_field,
    }
    building.save()
    if replace and fo.dataset_exists(name):
        fo.delete_dataset(name)
    # The one step that makes the dataset visible under its name.
    building.name = name
    return building


def sync_with_folder(dataset, folder):
    """Brings ``dataset`` (built from ``folder``) up to date with it: new
    images are added as samples. Returns a sentence describing what changed,
    or ``None`` when nothing did."""
    folder = os.path.abspath(folder)
    source = dataset.info.get(SOURCE_INFO) or {}
    images = find_images(folder)
    digest = folder_digest(images)
    if source.get("digest") == digest:
        return None
    on_disk = {os.path.realpath(path): (path, label)
               for path, label in images}
    known = {os.path.realpath(p) for p in dataset.values("filepath")}
    added = [on_disk[p] for p in on_disk if p not in known]
    # Said only of files that are really gone: a sample whose file lies
    # elsewhere (added by hand) is neither new nor missing.
    removed = [p for p in known if p not in on_disk
               and not os.path.exists(p)]
    label_field = source.get("label_field", "ground_truth")
    if added:
        dataset.add_samples(_samples_for(added, label_field), progress=False)
    dataset.info[SOURCE_INFO] = {**source, "folder": folder,
                                 "digest": digest,
                                 "label_field": label_field}
    dataset.save()
    parts = [f"{len(added)} new image(s) added"]
    if removed:
        parts.append(f"{len(removed)} image(s) no longer on disk (they will "
                     "be skipped)")
    parts.append("edited files are embedded again")
    return f"folder {folder} has changed since the dataset was built: " + \
        "; ".join(parts)


def write_digits(folder, upscale=4):
    """Writes scikit-learn's bundled handwritten digits (1,797 images of
    8x8 pixels, 10 classes) as PNGs under ``folder/<digit>/``, enlarged
    ``upscale`` times so they are visible in the App. Returns ``folder``.

    Each file is written under a temporary name and renamed into place, so
    a killed call never leaves a truncated image."""
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
        tmp = f"{path}.{os.getpid()}.tmp"
        Image.fromarray(pixels, mode="L").resize(
            (side, side), Image.Resampling.NEAREST
        ).save(tmp, format="PNG")
        os.replace(tmp, path)
    return folder
