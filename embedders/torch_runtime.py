"""What every torch-based embedder shares: device and precision choice,
image preprocessing in the decoding threads, and the batched forward loop
that overlaps decoding with inference.

torch is imported inside functions only, so importing this module is free.
"""

import hashlib

import numpy as np
from PIL import Image

from . import gpu_decode
from .base import embed_in_batches
from .images import load_source
from ..units import Param, ParamError

DEVICE_PARAM = Param(
    "device",
    "choice",
    "auto",
    "Where the model runs (auto: cuda, then mps, then cpu)",
    choices=("auto", "cuda", "mps", "cpu"),
)
PRECISION_PARAM = Param(
    "precision",
    "choice",
    "auto",
    "Weights and activations (auto: float16 on cuda, float32 elsewhere)",
    choices=("auto", "float32", "float16", "bfloat16"),
)


def resolve_device(name):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("device 'cuda' was asked for but CUDA is not available")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None)
        and torch.backends.mps.is_available()
    ):
        raise ParamError("device 'mps' was asked for but MPS is not available")
    return name


def resolve_dtype(precision, device):
    import torch

    if precision == "auto":
        precision = "float16" if device == "cuda" else "float32"
    return getattr(torch, precision)


class Preprocess:
    """Resize, crop, rescale and normalise an RGB image the way a model's
    image processor is configured, with PIL and numpy only (no torchvision),
    so it can run in the decoding threads.

    Args:
        size: ``{"shortest_edge": n}`` (keep the aspect ratio) or
            ``{"height": h, "width": w}``
        crop_size: optional ``{"height": h, "width": w}`` centre crop
        mean, std: per-channel normalisation, after scaling to [0, 1]
        resample: a PIL resampling filter number
        rescale_factor: multiplies the 0-255 pixel values
    """

    def __init__(self, size, crop_size=None, mean=(0.5, 0.5, 0.5),
                 std=(0.5, 0.5, 0.5), resample=Image.Resampling.BICUBIC,
                 rescale_factor=1 / 255.0):
        self.size = dict(size)
        self.crop_size = dict(crop_size) if crop_size else None
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
        self.resample = Image.Resampling(int(resample))
        self.rescale_factor = float(rescale_factor)

    @classmethod
    def from_processor_dict(cls, d):
        """Builds from a Hugging Face ``preprocessor_config.json`` dict."""
        size = d.get("size") or {"height": 224, "width": 224}
        if isinstance(size, int):
            size = {"shortest_edge": size}
        if "shortest_edge" not in size and "height" not in size:
            raise ValueError(f"unsupported image processor size {size!r}")
        if d.get("do_resize") is False:
            raise ValueError("image processors that do not resize are not "
                             "supported")
        crop = d.get("crop_size") if d.get("do_center_crop") else None
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        normalize = d.get("do_normalize", True)
        rescale = d.get("do_rescale", True)
        return cls(
            size=size,
            crop_size=crop,
            mean=d.get("image_mean", (0.5,) * 3) if normalize else (0.0,) * 3,
            std=d.get("image_std", (0.5,) * 3) if normalize else (1.0,) * 3,
            resample=d.get("resample", Image.Resampling.BICUBIC),
            rescale_factor=d.get("rescale_factor", 1 / 255.0) if rescale else 1.0,
        )

    @property
    def decode_size(self):
        """The smallest ``(width, height)`` worth decoding a JPEG at: twice
        the target, so the resize still has the detail to antialias from
        (DCT scaling alone would alias) while a large photo skips most of
        its decoding."""
        if "shortest_edge" in self.size:
            edge = self.size["shortest_edge"]
            return (2 * edge, 2 * edge)
        return (2 * self.size["width"], 2 * self.size["height"])

    def output_shape(self):
        if self.crop_size:
            return (3, self.crop_size["height"], self.crop_size["width"])
        if "shortest_edge" in self.size:
            # Varies with the aspect ratio: batching needs a crop.
            return None
        return (3, self.size["height"], self.size["width"])

    def __call__(self, im):
        if "shortest_edge" in self.size:
            edge = self.size["shortest_edge"]
            w, h = im.size
            if w <= h:
                new = (edge, max(1, int(edge * h / w)))
            else:
                new = (max(1, int(edge * w / h)), edge)
        else:
            new = (self.size["width"], self.size["height"])
        if im.size != new:
            im = im.resize(new, self.resample)
        if self.crop_size:
            ch, cw = self.crop_size["height"], self.crop_size["width"]
            w, h = im.size
            left, top = (w - cw) // 2, (h - ch) // 2
            im = im.crop((left, top, left + cw, top + ch))
        arr = np.asarray(im, dtype=np.float32).transpose(2, 0, 1)
        return (arr * self.rescale_factor - self.mean) / self.std

    def describe(self):
        return {
            "size": self.size,
            "crop_size": self.crop_size,
            "mean": [round(float(v), 6) for v in self.mean.ravel()],
            "std": [round(float(v), 6) for v in self.std.ravel()],
            "resample": int(self.resample),
            "rescale_factor": self.rescale_factor,
        }


class ModelDecode:
    """One image file (or crop) to the model's input array; a class so that
    worker processes can receive it."""

    def __init__(self, preprocess):
        self.preprocess = preprocess
        self.item_shape = preprocess.output_shape()

    def __call__(self, path):
        return self.preprocess(
            load_source(path, "RGB", size=self.preprocess.decode_size)
        )


def embed_with(forward, preprocess, paths, device, dtype, num_workers=None,
               batch_size=None, progress=None, decode="auto"):
    """Runs ``forward(batch_tensor) -> (n, d) tensor`` over the images in
    ``paths``, decoding and preprocessing the next batches in worker
    threads (or processes) while the current one runs. On CUDA, JPEG files
    are decoded and preprocessed on the GPU (:mod:`.gpu_decode`) when
    torchvision's nvJPEG decoder is there."""
    import torch

    if preprocess.output_shape() is None:
        raise ValueError(
            "the image processor resizes the shortest edge without a crop, "
            "so images of different shapes cannot be batched"
        )
    batch_size = batch_size or (64 if device == "cuda" else 16)

    def run_batch(items):
        batch = torch.from_numpy(np.stack(items))
        return forward(batch.to(device=device, dtype=dtype)).float().cpu()

    with torch.inference_mode():
        if device == "cuda" and gpu_decode.available():
            return gpu_decode.embed(forward, preprocess, paths, dtype,
                                    batch_size, num_workers, progress,
                                    ModelDecode(preprocess))
        return embed_in_batches(paths, ModelDecode(preprocess), run_batch,
                                batch_size, num_workers=num_workers,
                                progress=progress, mode=decode)


def weights_digest(module):
    """A short hash of a torch module's parameters and buffers: the same
    weights give the same digest in any process."""
    import torch

    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        tensor = tensor.detach().cpu().contiguous()
        if tensor.dtype == torch.bfloat16:
            # numpy has no bfloat16; hash the same bits as 16-bit integers.
            tensor = tensor.view(torch.int16)
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]
