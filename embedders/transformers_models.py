"""DINOv2/DINOv3 and CLIP/SigLIP image embedders through ``transformers``.

A model is named by a Hugging Face hub id or a local folder written by
``save_pretrained``; both go through ``from_pretrained``. Loaded models stay
in memory for the life of the process, so later runs skip the load.
"""

import os
import re
import threading

from .base import Embedder
from ..units import Param, ParamError
from .torch_runtime import (
    DEVICE_PARAM,
    PRECISION_PARAM,
    Preprocess,
    embed_with,
    resolve_device,
    resolve_dtype,
)

_LOADED = {}
_LOCK = threading.Lock()


class ModelNotFoundError(ParamError):
    """A model that is neither a local folder nor loadable from the hub."""


def _load(kind, model_id, loader, device, dtype):
    key = (kind,
           os.path.abspath(model_id) if os.path.isdir(model_id) else model_id,
           device, str(dtype))
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = loader(model_id, device, dtype)
        return _LOADED[key]


def looks_like_folder(model_id):
    """Whether ``model_id`` is written as a path rather than a hub id
    (``org/name``): absolute, starting from the home or the current
    folder, or more than one level deep."""
    return (os.path.isabs(model_id) or model_id.startswith(("~", "."))
            or model_id.count("/") > 1 or "\\" in model_id)


def checked_model(owner, model_id, default):
    """``model_id`` as it will be loaded (``~`` expanded); a path to a
    folder that does not exist is refused by name, before any work."""
    if not looks_like_folder(model_id):
        return model_id
    path = os.path.expanduser(model_id)
    if not os.path.isdir(path):
        raise ModelNotFoundError(
            f"{owner}: no folder '{model_id}' for 'model': give a model "
            f"folder written by save_pretrained, or a hub id such as "
            f"'{default}'", "model", owner=owner)
    return path


def _from_pretrained(cls, model_id, **kwargs):
    try:
        return cls.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError) as e:
        if os.path.isdir(model_id):
            raise ModelNotFoundError(
                f"could not load model from folder '{model_id}': {e}"
            ) from None
        if looks_like_folder(model_id):
            raise ModelNotFoundError(
                f"no folder '{model_id}': give a model folder written by "
                "save_pretrained, or a hub id") from None
        raise ModelNotFoundError(
            f"could not load model '{model_id}': it is not a local folder, "
            "and it is neither in the Hugging Face cache nor downloadable "
            "from here. On a machine with network access run "
            f"`huggingface-cli download {model_id} --local-dir DIR` (or "
            "`save_pretrained(DIR)`), copy DIR here and pass model='DIR'."
        ) from None


def _processor_dict(model_id):
    from transformers.image_processing_base import ImageProcessingMixin

    try:
        d, _ = ImageProcessingMixin.get_image_processor_dict(model_id)
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(
            f"model '{model_id}' has no usable image processor config "
            f"(preprocessor_config.json): {e}"
        ) from None
    return d


def _slug(model_id):
    base = os.path.basename(os.path.normpath(model_id)) or model_id
    return re.sub(r"[^0-9a-z]+", "_", base.lower()).strip("_")


class TransformersEmbedder(Embedder):
    """Shared loading, fingerprinting and batching; subclasses choose the
    model class and how a forward pass becomes one vector per image."""

    DEFAULT_MODEL = None
    VERSION = 1
    # Their direction carries the meaning.
    normalize = True
    # ``model`` names a hub id or a local folder (forms check it).
    loads_from_hub = True

    def check(self):
        self.params["model"] = checked_model(self.name, self.params["model"],
                                             self.DEFAULT_MODEL)

    def _loaded(self):
        device = resolve_device(self.params["device"])
        dtype = resolve_dtype(self.params["precision"], device)
        return device, dtype, _load(
            self.name, self.params["model"], self._load_model, device, dtype
        )

    @classmethod
    def _load_model(cls, model_id, device, dtype):
        model = _from_pretrained(cls._model_class(), model_id)
        model = model.to(device=device, dtype=dtype).eval()
        preprocess = Preprocess.from_processor_dict(_processor_dict(model_id))
        return model, preprocess

    def fingerprint(self):
        _, _, (model, preprocess) = self._loaded()
        model_id = self.params["model"]
        return {
            "embedder": self.name,
            "version": self.VERSION,
            "model": os.path.abspath(model_id)
            if os.path.isdir(model_id) else model_id,
            "revision": getattr(model.config, "_commit_hash", None),
            "model_type": model.config.model_type,
            "preprocess": preprocess.describe(),
            **self._output_spec(),
        }

    def _output_spec(self):
        return {}

    @property
    def field_name(self):
        suffix = "".join(f"_{v}" for v in self._output_spec().values())
        return f"{self.name}_{_slug(self.params['model'])}{suffix}_embedding"

    def embed(self, paths, num_workers=None, batch_size=None, progress=None,
              decode="auto"):
        device, dtype, (model, preprocess) = self._loaded()
        return embed_with(
            lambda batch: self._forward(model, batch),
            preprocess, paths, device, dtype,
            num_workers=num_workers, batch_size=batch_size, progress=progress,
            decode=decode,
        )


class DinoEmbedder(TransformersEmbedder):
    """DINOv2 (with or without registers) and DINOv3 ViT image features.

    ``pooling`` picks the vector: the CLS token (the default: what DINO's
    own k-NN and linear evaluations use, and the best single summary of an
    image), the mean of the patch tokens (more weight on texture and
    layout), or both concatenated.
    """

    name = "dino"
    label = "DINOv2 / DINOv3 (visual structure)"
    description = "Self-supervised ViT features: groups by what images look like"
    DEFAULT_MODEL = "facebook/dinov2-small"
    PARAMS = (
        Param("model", "str", DEFAULT_MODEL,
              "Hugging Face hub id or local folder"),
        Param("pooling", "choice", "cls",
              "CLS token, mean of patch tokens, or both concatenated",
              choices=("cls", "mean", "cls+mean")),
        DEVICE_PARAM,
        PRECISION_PARAM,
    )

    @staticmethod
    def _model_class():
        from transformers import AutoModel

        return AutoModel

    def _output_spec(self):
        return {"pooling": self.params["pooling"].replace("+", "_")}

    def _forward(self, model, batch):
        import torch

        hidden = model(pixel_values=batch).last_hidden_state
        # Register tokens (DINOv2 with registers, DINOv3) sit between the CLS
        # token and the patch tokens; they are neither.
        registers = getattr(model.config, "num_register_tokens", 0) or 0
        cls = hidden[:, 0]
        patches = hidden[:, 1 + registers:].mean(dim=1)
        pooling = self.params["pooling"]
        if pooling == "cls":
            return cls
        if pooling == "mean":
            return patches
        return torch.cat([cls, patches], dim=1)


class ClipEmbedder(TransformersEmbedder):
    """The image tower of CLIP or SigLIP: projected image embeddings, the
    space where images and text are compared."""

    name = "clip"
    label = "CLIP / SigLIP (semantics)"
    description = "Image-text model features: groups by what images show"
    DEFAULT_MODEL = "openai/clip-vit-base-patch32"
    PARAMS = (
        Param("model", "str", DEFAULT_MODEL,
              "Hugging Face hub id or local folder"),
        DEVICE_PARAM,
        PRECISION_PARAM,
    )

    @staticmethod
    def _model_class():
        from transformers import AutoModel

        return AutoModel

    @classmethod
    def _load_model(cls, model_id, device, dtype):
        model, preprocess = super()._load_model(model_id, device, dtype)
        if not hasattr(model, "get_image_features"):
            raise ParamError(
                f"model '{model_id}' ({model.config.model_type}) has no image "
                "tower with projected features; use a CLIP or SigLIP "
                "checkpoint, or the 'dino' embedder"
            )
        return model, preprocess

    def _forward(self, model, batch):
        out = model.get_image_features(pixel_values=batch)
        # transformers 5 returns a model output whose pooler_output holds
        # the projected features; older versions return the tensor itself.
        return getattr(out, "pooler_output", out)
