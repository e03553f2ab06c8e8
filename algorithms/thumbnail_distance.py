"""How far apart two images are as copies of one another, judged from
their grayscale thumbnails (the ``pixels`` embedder's vectors).

A copy differs from its original by what copying does: resampling,
re-encoding, a small crop, a brightness or contrast shift. The distance is
built to ignore exactly those and nothing else:

- a light blur first, so that resampling and compression noise in the
  finest detail does not count;
- brightness is removed (each thumbnail minus its own mean), and contrast
  counts only as far as the two differ: ``|a - b|^2 / (|a|^2 + |b|^2)``,
  which is 0 for equal thumbnails, 1 for unrelated ones, and unlike a
  cosine does not call a faint smooth image a copy of a strong one with
  the same layout;
- the smallest such distance over a few small zooms (up to a 10% crop)
  and shifts (3% of the side) of either image, so that a cropped copy is
  compared with the part of the original it shows.

Everything is numpy and scipy on chunks of pairs; no N x N matrix.
"""

import numpy as np
from scipy.ndimage import gaussian_filter

# Zooms about the centre tried on either image: crops of up to 10%.
ZOOMS = (1.03, 1.065, 1.1)
# Shifts tried each way, as a fraction of the side.
SHIFT = 0.03
# Gaussian blur, as a fraction of the side (0.7 pixel at 32 x 32).
BLUR = 1 / 45
# Spread (per pixel, on the [0, 1] scale) under which a thumbnail counts
# as flat: its faint residue is compared as if it had this much contrast.
FLAT = 1e-3
# Pairs compared at once: bounds memory at any scale.
PAIR_CHUNK = 1024


def prepare_thumbnails(X, side, chunk=4096):
    """Blurs each row of ``X`` (a ``side`` x ``side`` thumbnail) and
    subtracts its mean, in place; returns ``X``."""
    sigma = BLUR * side
    for start in range(0, len(X), chunk):
        part = X[start:start + chunk].reshape(-1, side, side)
        part[:] = gaussian_filter(part, (0, sigma, sigma), mode="nearest")
        flat = part.reshape(len(part), -1)
        flat -= flat.mean(axis=1, keepdims=True)
    return X


def warp_moves(side):
    """Every zoom and shift tried, the identity left out, each as a pair
    of ``side`` x ``side`` bilinear operators ``(rows, cols)``: the warped
    image is ``rows @ image @ cols.T``. Pixels that would come from outside
    the image repeat its edge."""
    step = SHIFT * side
    moves = [(1.0, dy, dx) for dy in (-step, 0.0, step)
             for dx in (-step, 0.0, step) if dy or dx]
    moves += [(z, dy, dx) for z in ZOOMS for dy in (-step, 0.0, step)
              for dx in (-step, 0.0, step)]
    return [(_bilinear(side, zoom, dy), _bilinear(side, zoom, dx))
            for zoom, dy, dx in moves]


def _bilinear(side, zoom, shift):
    """The 1-D bilinear resampling matrix of a zoom about the centre and
    a shift (in pixels)."""
    centre = (side - 1) / 2
    source = np.clip(centre + (np.arange(side) - centre) / zoom + shift, 0,
                     side - 1)
    low = np.minimum(np.floor(source).astype(np.int64), side - 2)
    frac = source - low
    out = np.zeros((side, side), dtype=np.float32)
    out[np.arange(side), low] = 1 - frac
    out[np.arange(side), low + 1] += frac
    return out


class ThumbnailDistance:
    """The distance between rows of a set of prepared thumbnails.

    Args:
        unit: the prepared thumbnails (:func:`prepare_thumbnails`) scaled
            to unit length, one row each
        norms: the length of each prepared thumbnail before scaling
        side: the thumbnails' side in pixels

    Each row of a chunk of pairs is warped once, whatever number of pairs
    it is in; warping ``b`` and comparing with ``a`` is read off ``a``
    warped by the transposed operators, since ``(W b) . a = b . (W' a)``.
    """

    def __init__(self, unit, norms, side):
        self.unit = unit
        self.norms = np.asarray(norms, dtype=np.float32)
        self.side = side
        self.moves = warp_moves(side)
        self._floor = np.float32(FLAT ** 2 * side * side)

    def __call__(self, left, right, progress=None):
        left = np.asarray(left, dtype=np.int64)
        right = np.asarray(right, dtype=np.int64)
        out = np.empty(len(left), dtype=np.float32)
        order = np.argsort(left, kind="stable")
        for start in range(0, len(left), PAIR_CHUNK):
            chunk = order[start:start + PAIR_CHUNK]
            out[chunk] = self._chunk(left[chunk], right[chunk])
            if progress is not None:
                progress(min(start + PAIR_CHUNK, len(left)), len(left))
        return out

    def rows(self, index):
        return self.unit[index] * self.norms[index, None]

    def _chunk(self, left, right):
        lefts, local = np.unique(left, return_inverse=True)
        A = self.rows(lefts)
        B = self.rows(right)
        a2 = self.norms[left] ** 2
        b2 = self.norms[right] ** 2
        best = self._distance(a2, b2, np.einsum("ij,ij->i", A[local], B))
        rights, right_local = np.unique(right, return_inverse=True)
        right_stats = self._warped_stats(rights)
        for k, (rows, cols) in enumerate(self.moves):
            warped = self._warp(A, rows, cols)
            w2, wmean = _centred_stats(warped)
            dots = np.einsum("ij,ij->i", warped[local], B)
            np.minimum(best, self._distance(w2[local] - self._n * wmean[
                local] ** 2, b2, dots), out=best)
            back = self._warp(A, rows.T, cols.T)
            dots = np.einsum("ij,ij->i", back[local], B)
            v2, vmean = (stat[right_local] for stat in right_stats[k])
            # b is centred, so (W b - mean) . a = (W b) . a = b . (W' a).
            np.minimum(best, self._distance(v2 - self._n * vmean ** 2, a2,
                                            dots), out=best)
        return best

    @property
    def _n(self):
        return self.side * self.side

    def _warp(self, X, rows, cols):
        side = self.side
        images = X.reshape(-1, side, side)
        return np.matmul(np.matmul(rows, images), cols.T).reshape(len(X), -1)

    def _warped_stats(self, index):
        """Per move, the squared length and the mean of each row warped."""
        X = self.rows(index)
        return [_centred_stats(self._warp(X, rows, cols))
                for rows, cols in self.moves]

    def _distance(self, a2, b2, ab):
        """``|a - b|^2 / (|a|^2 + |b|^2)`` of centred ``a`` and ``b`` from
        their squared lengths and dot product, each length floored."""
        spread = np.maximum(a2, self._floor) + np.maximum(b2, self._floor)
        return np.maximum(a2 + b2 - 2 * ab, 0) / spread


def _centred_stats(X):
    """Squared length and mean of each row."""
    return np.einsum("ij,ij->i", X, X), X.mean(axis=1)


class CosineDistance:
    """``1 - cos`` between rows of unit vectors: the distance for vectors
    that are not thumbnails (a model's, or an existing field's)."""

    def __init__(self, unit):
        self.unit = unit

    def __call__(self, left, right, progress=None):
        left = np.asarray(left, dtype=np.int64)
        right = np.asarray(right, dtype=np.int64)
        out = np.empty(len(left), dtype=np.float32)
        for start in range(0, len(left), PAIR_CHUNK * 8):
            stop = start + PAIR_CHUNK * 8
            sims = np.einsum("ij,ij->i", self.unit[left[start:stop]],
                             self.unit[right[start:stop]])
            out[start:stop] = np.clip(1.0 - sims, 0.0, 2.0)
            if progress is not None:
                progress(min(stop, len(left)), len(left))
        return out
