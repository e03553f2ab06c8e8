"""The embedder interface: file paths in, one float32 row per path out."""

import numpy as np

from .params import Unit


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

    def fingerprint(self):
        """Plain JSON that identifies the vectors this embedder produces."""
        raise NotImplementedError

    @property
    def field_name(self):
        """The default sample field that caches this embedder's vectors."""
        raise NotImplementedError

    def embed(self, paths, num_workers=None, batch_size=None, progress=None):
        """Embeds image files.

        Args:
            paths: a list of file paths, or of
                :class:`~.images.Crop` regions of them
            num_workers: decoding threads (default: up to 8, one per core)
            batch_size: images per forward pass, where that applies
            progress: an optional callable ``progress(done, total)``

        Returns:
            an :class:`Embedded`
        """
        raise NotImplementedError
