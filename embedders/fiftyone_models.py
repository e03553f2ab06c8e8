"""FiftyOne models as embedders: a zoo model by name (``dinov2-vits14-torch``,
``clip-vit-base32-torch``, ...) or any FiftyOne ``Model`` object that
exposes embeddings."""

import re
import threading

import numpy as np

from .base import Embedder, embed_in_batches
from .images import load_source
from ..units import Param, ParamError

_ZOO = {}
_LOCK = threading.Lock()


def load_zoo_model(name):
    """Loads (once per process) a FiftyOne zoo model that has embeddings."""
    with _LOCK:
        if name not in _ZOO:
            import fiftyone.zoo as foz

            try:
                _ZOO[name] = foz.load_zoo_model(name)
            except Exception as e:
                raise ParamError(
                    f"could not load FiftyOne zoo model '{name}': {e}. Zoo "
                    "models download their weights on first use; on a "
                    "machine without network access run `fiftyone zoo "
                    f"models download {name}` elsewhere and copy the zoo "
                    "models directory (fiftyone.config.model_zoo_dir)"
                ) from None
        return _ZOO[name]


def _rgb_array(path):
    return np.asarray(load_source(path, "RGB"))


class FiftyOneModelEmbedder(Embedder):
    """Embeds with a FiftyOne model: a zoo model name, or a
    ``fiftyone.core.models.Model`` with embeddings plus a ``model_id`` that
    names its weights (embeddings are cached under that name)."""

    # Model features: their direction carries the meaning.
    normalize = True

    name = "fiftyone"
    label = "FiftyOne zoo model"
    description = "Any FiftyOne zoo model that exposes embeddings"
    PARAMS = (
        Param("model", "object", "clip-vit-base32-torch",
              "Zoo model name, or a fiftyone Model object"),
        Param("model_id", "str", None,
              "Name of the weights, required when 'model' is an object"),
    )

    def check(self):
        model = self.params["model"]
        if isinstance(model, str):
            if self.params["model_id"] is None:
                self.params["model_id"] = model
            return
        from fiftyone.core.models import Model

        if not isinstance(model, Model):
            raise ParamError(
                "fiftyone: 'model' must be a zoo model name or a "
                "fiftyone.core.models.Model"
            )
        if not self.params["model_id"]:
            raise ParamError(
                "fiftyone: give 'model_id', a name for this model's weights, "
                "so its embeddings can be cached and reused"
            )
        self._require_embeddings(model)

    def _require_embeddings(self, model):
        if not getattr(model, "has_embeddings", False):
            raise ParamError(
                f"fiftyone: model '{self.params['model_id']}' does not "
                "expose embeddings"
            )

    def _model(self):
        model = self.params["model"]
        if isinstance(model, str):
            model = load_zoo_model(model)
            self._require_embeddings(model)
        return model

    def fingerprint(self):
        return {"embedder": self.name, "model": self.params["model_id"]}

    @property
    def field_name(self):
        slug = re.sub(r"[^0-9a-z]+", "_", self.params["model_id"].lower())
        return f"fiftyone_{slug.strip('_')}_embedding"

    def embed(self, paths, num_workers=None, batch_size=None, progress=None,
              decode="threads"):
        # Images of any size go to the model as they are: threads only.
        model = self._model()
        with model:
            return embed_in_batches(paths, _rgb_array, model.embed_all,
                                    batch_size or 16, num_workers=num_workers,
                                    progress=progress)
