"""Embedders: image files in, vectors out.

Adding one is a new :class:`~.base.Embedder` subclass and one line in
:data:`EMBEDDERS`. Heavy libraries (torch, transformers) are imported only
inside the embedders that use them, when they run.
"""

from .base import Embedded, Embedder
from ..units import build_unit
from .fiftyone_models import FiftyOneModelEmbedder
from .pixels import PixelEmbedder
from .torch_module import TorchModuleEmbedder
from .transformers_models import ClipEmbedder, DinoEmbedder

EMBEDDERS = {
    cls.name: cls
    for cls in (
        PixelEmbedder,
        DinoEmbedder,
        ClipEmbedder,
        FiftyOneModelEmbedder,
        TorchModuleEmbedder,
    )
}


def get_embedder(spec, **params):
    """Returns an embedder from a name (``"pixels"``), a
    ``{"name": ..., **params}`` dict, or an :class:`Embedder` instance."""
    return build_unit(EMBEDDERS, "embedder", spec, **params)
