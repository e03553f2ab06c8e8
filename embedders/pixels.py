"""Raw luminance pixels: a model-free baseline that needs no download."""

import numpy as np
from PIL import Image

from .base import Embedder, embed_in_batches
from .images import load_source
from ..units import Param


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

    @property
    def thumbnail_side(self):
        return self.params["size"]

    def embed(self, paths, num_workers=None, batch_size=None, progress=None,
              decode="auto"):
        return embed_in_batches(paths, PixelDecode(self.params["size"]),
                                np.stack, batch_size or 256,
                                num_workers=num_workers, progress=progress,
                                mode=decode)


class PixelDecode:
    """One image file (or crop) to its flattened thumbnail; a class so that
    worker processes can receive it."""

    def __init__(self, side):
        self.side = side
        self.item_shape = (side * side,)

    def __call__(self, path):
        side = self.side
        # Decode JPEGs at no less than twice the thumbnail, so the resize
        # can still antialias.
        im = load_source(path, mode="L", size=(2 * side, 2 * side))
        im = im.resize((side, side), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.float32).ravel() / 255.0
