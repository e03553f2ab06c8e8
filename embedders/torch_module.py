"""Any torch module as an embedder, with ImageNet-style preprocessing."""

from .base import Embedder
from ..units import Param, ParamError
from .torch_runtime import (
    DEVICE_PARAM,
    PRECISION_PARAM,
    Preprocess,
    embed_with,
    resolve_device,
    resolve_dtype,
    weights_digest,
)


def _module_on(module, device, dtype):
    """``module`` in eval mode on ``device`` in ``dtype``: the user's own
    object when it already is, otherwise a copy, so that the caller's module
    (and its weights digest) is never changed behind their back."""
    import copy

    import torch

    kind = torch.device(device).type
    tensors = list(module.parameters()) + list(module.buffers())
    in_place = not module.training and all(
        t.device.type == kind and (not t.is_floating_point() or t.dtype == dtype)
        for t in tensors
    )
    if in_place:
        return module
    return copy.deepcopy(module).to(device=device, dtype=dtype).eval()


class TorchModuleEmbedder(Embedder):
    """Embeds with a user-supplied ``torch.nn.Module`` whose output (or first
    output) is flattened to one vector per image. Images are resized so the
    shortest edge is ``size``, centre-cropped to ``size`` x ``size``, scaled
    to [0, 1] and normalised with ``mean`` and ``std``.

    The cache fingerprint includes a hash of the module's weights, so
    fine-tuned weights never reuse another model's vectors.
    """

    name = "torch"
    label = "Your own torch module"
    description = "Any torch.nn.Module that maps an image batch to vectors"
    PARAMS = (
        Param("module", "object", None, "A torch.nn.Module", nullable=False),
        Param("size", "int", 224, "Input side in pixels", min=8),
        Param("mean", "floats", [0.485, 0.456, 0.406],
              "Per-channel mean, after scaling to [0, 1]"),
        Param("std", "floats", [0.229, 0.224, 0.225],
              "Per-channel standard deviation"),
        DEVICE_PARAM,
        PRECISION_PARAM,
    )

    def check(self):
        import torch

        if not isinstance(self.params["module"], torch.nn.Module):
            raise ParamError("torch: 'module' must be a torch.nn.Module")
        for key in ("mean", "std"):
            if len(self.params[key]) != 3:
                raise ParamError(f"torch: '{key}' must have 3 values")
        self._digest = weights_digest(self.params["module"])
        side = self.params["size"]
        self._preprocess = Preprocess(
            size={"shortest_edge": side},
            crop_size={"height": side, "width": side},
            mean=self.params["mean"],
            std=self.params["std"],
        )
        self._placed = None

    def fingerprint(self):
        module = self.params["module"]
        return {
            "embedder": self.name,
            "module": f"{type(module).__module__}.{type(module).__qualname__}",
            "weights": self._digest,
            "preprocess": self._preprocess.describe(),
        }

    @property
    def field_name(self):
        cls = type(self.params["module"]).__name__.lower()
        return f"torch_{cls}_{self._digest[:8]}_embedding"

    def embed(self, paths, num_workers=None, batch_size=None, progress=None,
              decode="auto"):
        device = resolve_device(self.params["device"])
        dtype = resolve_dtype(self.params["precision"], device)
        if self._placed is None or self._placed[0] != (device, dtype):
            placed = _module_on(self.params["module"], device, dtype)
            self._placed = ((device, dtype), placed)
        module = self._placed[1]

        def forward(batch):
            out = module(batch)
            if isinstance(out, (tuple, list)):
                out = out[0]
            return out.reshape(out.shape[0], -1)

        return embed_with(forward, self._preprocess, paths, device, dtype,
                          num_workers=num_workers, batch_size=batch_size,
                          progress=progress, decode=decode)
