"""The embedder interface: file paths in, one float32 row per path out."""

import numpy as np

from .images import iter_decoded
from ..units import Unit


class Embedded:
    """The output of an embedder.

    Attributes:
        vectors: a float32 array with one row per input; rows of failed
            inputs are zero and must not be used
        failures: a dict of input index -> reason it could not be embedded
    """

    def __init__(self, vectors, failures):
        self.vectors = vectors
        self.failures = failures

    @property
    def ok(self):
        """A boolean mask of the rows that were embedded."""
        mask = np.ones(len(self.vectors), dtype=bool)
        mask[list(self.failures)] = False
        return mask


class Embedder(Unit):
    """A unit that turns images into vectors.

    Subclasses implement :meth:`embed` and :meth:`fingerprint`. The
    fingerprint is stored with the embeddings so that a cached field is
    reused only by an embedder that would have produced the same vectors.
    """

    #: Whether its vectors are compared by direction, so that a run
    #: L2-normalises them unless told otherwise (model features are).
    normalize = False

    #: The side of the square grayscale image that each vector is, when
    #: the vectors are thumbnails; near-duplicates then compare them as
    #: images (:mod:`..algorithms.thumbnail_distance`). ``None`` for
    #: features.
    thumbnail_side = None

    def fingerprint(self):
        """Plain JSON that identifies the vectors this embedder produces."""
        raise NotImplementedError

    @property
    def field_name(self):
        """The default sample field that caches this embedder's vectors."""
        raise NotImplementedError

    def embed(self, paths, num_workers=None, batch_size=None, progress=None,
              decode="auto"):
        """Embeds image files.

        Args:
            paths: a list of file paths, or of
                :class:`~.images.Crop` regions of them
            num_workers: decoding workers (default: up to 8, one per core)
            batch_size: images per forward pass, where that applies
            progress: an optional callable ``progress(done, total)``
            decode: ``threads``, ``processes`` or ``auto`` (processes on
                machines with many cores)

        Returns:
            an :class:`Embedded`
        """
        raise NotImplementedError


def embed_in_batches(paths, decode, run_batch, batch_size, num_workers=None,
                     progress=None, mode="auto"):
    """The loop every embedder shares: ``decode(path)`` runs in worker
    threads a few batches ahead, ``run_batch(list of decoded items)`` turns
    each batch's decodable items into a ``(k, d)`` array, and failures keep
    their reasons and their place.

    Returns:
        an :class:`Embedded`
    """
    n = len(paths)
    vectors = None
    failures = {}
    done = 0
    for start, items, failed in iter_decoded(
        paths, decode, batch_size=batch_size, num_workers=num_workers,
        mode=mode,
    ):
        failures.update({start + j: r for j, r in failed.items()})
        ok = [j for j in range(len(items)) if j not in failed]
        if ok:
            out = np.asarray(run_batch([items[j] for j in ok]), np.float32)
            out = out.reshape(len(ok), -1)
            if vectors is None:
                vectors = np.zeros((n, out.shape[1]), dtype=np.float32)
            vectors[[start + j for j in ok]] = out
        done += len(items)
        if progress is not None:
            progress(done, n)
    if vectors is None:
        vectors = np.zeros((n, 0), dtype=np.float32)
    return Embedded(vectors, failures)
