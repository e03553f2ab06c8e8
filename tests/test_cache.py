"""The embeddings cache: reused only for the same file as it was, written
so that a kill never leaves a vector a later run would reuse wrongly; and
EXIF orientation applied as the App shows images."""

import os
import time

import numpy as np
import pytest
from PIL import Image

import image_clustering as ic
from image_clustering.clustering import embed as embeddings

from conftest import write_gray

PIXELS8 = {"name": "pixels", "size": 8}


def _truth(path):
    im = Image.open(path).convert("L").resize((8, 8), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32).ravel() / 255.0


def _cached(dataset):
    dataset.reload()
    ids, paths, vectors = dataset.values(
        ["id", "filepath", "pixels8_embedding"])
    return {i: (p, v) for i, p, v in zip(ids, paths, vectors)
            if v is not None}


def test_a_changed_filepath_or_file_is_embedded_again(two_groups, tmp_path):
    first = embeddings.get_embeddings(two_groups, embedder=PIXELS8)
    assert first.computed == 24
    again = embeddings.get_embeddings(two_groups, embedder=PIXELS8)
    assert again.computed == 0

    sample = two_groups.first()
    other = str(write_gray(tmp_path / "other.png", 128))
    sample.filepath = other
    sample.save()
    edited = two_groups.skip(1).first()
    write_gray(edited.filepath, 5)       # rewritten in place
    future = time.time() + 10
    os.utime(edited.filepath, (future, future))

    third = embeddings.get_embeddings(two_groups, embedder=PIXELS8)
    assert third.computed == 2
    row = dict(zip(third.ids, third.vectors))
    np.testing.assert_allclose(row[sample.id], _truth(other), atol=1e-6)
    np.testing.assert_allclose(row[edited.id], _truth(edited.filepath),
                               atol=1e-6)
    for sid, (path, vector) in _cached(two_groups).items():
        np.testing.assert_allclose(vector, _truth(path), atol=1e-6)


def test_a_cache_write_killed_half_way_is_never_reused_wrongly(
        zygote, two_groups, tmp_path):
    ds = two_groups
    ds.persistent = True
    # the first slices are cached, then the process dies
    status, _ = zygote.run("embed", dataset=ds.name, slice_size=8,
                           kill_at=2)
    assert status["signal"] == 9
    cached = _cached(ds)
    assert len(cached) == 8
    for sid, (path, vector) in cached.items():
        np.testing.assert_allclose(vector, _truth(path), atol=1e-6)
    # edit a cached file: its vector must not be reused
    edited_id, (edited_path, _) = next(iter(cached.items()))
    write_gray(edited_path, 3)
    future = time.time() + 10
    os.utime(edited_path, (future, future))
    out = embeddings.get_embeddings(ds, embedder=PIXELS8)
    assert out.computed == 24 - 8 + 1
    row = dict(zip(out.ids, out.vectors))
    for sid, (path, _) in _cached(ds).items():
        np.testing.assert_allclose(row[sid], _truth(path), atol=1e-6)


def test_batch_size_and_workers_are_checked_before_anything_is_written(
        two_groups):
    before = set(two_groups.get_field_schema())
    for kwargs in ({"batch_size": -5}, {"batch_size": 0},
                   {"num_workers": 0}):
        with pytest.raises(ic.ParamError):
            ic.compute_clusters(two_groups, "k", embedder=PIXELS8,
                                reducer="none", method="kmeans",
                                n_clusters=2, **kwargs)
    assert set(two_groups.get_field_schema()) == before


def _jpeg_with_orientation(path, upright, orientation):
    """Writes the pixels that, shown with EXIF ``orientation``, look like
    ``upright``."""
    stored = {
        6: upright.transpose(Image.Transpose.ROTATE_90),
        8: upright.transpose(Image.Transpose.ROTATE_270),
        3: upright.transpose(Image.Transpose.ROTATE_180),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def _half_and_half():
    arr = np.zeros((64, 48), np.uint8)
    arr[:32] = 230  # bright top, dark bottom
    return Image.fromarray(arr, "L").convert("RGB")


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_as_the_app_shows_it(tmp_path,
                                                         orientation):
    from image_clustering.embedders.images import load_image

    upright = _half_and_half()
    path = _jpeg_with_orientation(str(tmp_path / "o.jpg"), upright,
                                  orientation)
    shown = load_image(path, "L")
    assert shown.size == upright.size
    arr = np.asarray(shown, float)
    assert arr[:32].mean() > 200 and arr[32:].mean() < 30
    # reduced-scale decoding keeps the orientation too
    small = np.asarray(load_image(path, "L", size=(12, 16)), float)
    assert small[: small.shape[0] // 2].mean() > 200


def test_patch_boxes_are_cut_from_the_image_as_shown(tmp_path):
    from image_clustering.embedders.images import Crop, load_source

    upright = _half_and_half()
    path = _jpeg_with_orientation(str(tmp_path / "o.jpg"), upright, 6)
    top = np.asarray(load_source(Crop(path, (0, 0, 1, 0.5)), "L"), float)
    bottom = np.asarray(load_source(Crop(path, (0, 0.5, 1, 0.5)), "L"),
                        float)
    assert top.mean() > 200 and bottom.mean() < 30
