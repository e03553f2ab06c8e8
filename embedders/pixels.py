"""Raw luminance pixels: a model-free baseline that needs no download."""

import numpy as np
from PIL import Image

from .base import Embedded, Embedder
from .images import iter_decoded, load_source
from .params import Param


class PixelEmbedder(Embedder):
    """Each image becomes its ``size`` x ``size`` grayscale thumbnail,
    flattened and scaled to [0, 1]. The aspect ratio is not kept: every
    image is squeezed to a square, so images of different shapes still
    compare pixel by pixel."""

    name = "pixels"
    label = "Raw luminance pixels"
    description = "Grayscale thumbnail of N x N pixels, scaled to [0, 1]"
    PARAMS = (
        Param(
            "size",
            "int",
            64,
            "Thumbnail side in pixels (the vector has size x size values)",
            min=2,
            max=1024,
        ),
    )

    # Bumped whenever the preprocessing changes, so old caches are not reused.
    VERSION = 1

    def fingerprint(self):
        return {
            "embedder": self.name,
            "version": self.VERSION,
            "size": self.params["size"],
            "mode": "L",
            "resample": "bilinear",
        }

    @property
    def field_name(self):
        return f"pixels{self.params['size']}_embedding"

    def _decode(self, path):
        side = self.params["size"]
        # Decode JPEGs at no less than twice the thumbnail, so the resize
        # can still antialias.
        im = load_source(path, mode="L", size=(2 * side, 2 * side))
        im = im.resize((side, side), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.float32).ravel() / 255.0

    def embed(self, paths, num_workers=None, batch_size=None, progress=None):
        n = len(paths)
        vectors = np.zeros((n, self.params["size"] ** 2), dtype=np.float32)
        failures = {}
        done = 0
        for start, items, failed in iter_decoded(
            paths, self._decode, batch_size=batch_size or 256,
            num_workers=num_workers,
        ):
            for j, item in enumerate(items):
                if item is not None:
                    vectors[start + j] = item
            failures.update({start + j: r for j, r in failed.items()})
            done += len(items)
            if progress is not None:
                progress(done, n)
        return Embedded(vectors, failures)
