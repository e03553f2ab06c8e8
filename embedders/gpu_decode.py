"""JPEG decoding and preprocessing on the GPU, for CUDA machines.

Decoding in Python caps a GPU embedder far below the model's speed. Here
threads only read file bytes; nvJPEG (``torchvision.io.decode_jpeg`` on
``cuda``) decodes whole batches on the GPU, and resizing, cropping and
normalising run there as tensor operations (:class:`TorchPreprocess`,
which gives the same tensors as the PIL path within float tolerance). EXIF
orientation is read from the file header and applied on the GPU, as the
App shows the image. Files that are not JPEG, crops of objects, and JPEGs
nvJPEG cannot decode go through the CPU path, with the same reasons for
failures.
"""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .base import Embedded
from .images import Crop, ImageDecodeError, default_num_workers

_JPEG_MAGIC = b"\xff\xd8"


def available():
    """Whether CUDA and torchvision's GPU JPEG decoder are both here."""
    try:
        import torch
        import torchvision.io  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available() and hasattr(torchvision.io,
                                                 "decode_jpeg")


class TorchPreprocess:
    """The :class:`~.torch_runtime.Preprocess` steps as tensor operations,
    on whatever device the image tensor is on.

    Args:
        preprocess: the :class:`~.torch_runtime.Preprocess` to follow
    """

    def __init__(self, preprocess):
        self.size = preprocess.size
        self.crop_size = preprocess.crop_size
        self.mean = np.asarray(preprocess.mean, np.float32).ravel()
        self.std = np.asarray(preprocess.std, np.float32).ravel()
        self.rescale_factor = preprocess.rescale_factor
        self.resample = int(preprocess.resample)

    def target_size(self, height, width):
        if "shortest_edge" in self.size:
            edge = self.size["shortest_edge"]
            if width <= height:
                return max(1, int(edge * height / width)), edge
            return edge, max(1, int(edge * width / height))
        return self.size["height"], self.size["width"]

    def __call__(self, image):
        """``image``: a ``(3, H, W)`` uint8 tensor. Returns float32."""
        import torch
        import torch.nn.functional as F

        mode = {3: "bicubic", 2: "bilinear"}.get(self.resample, "bicubic")
        x = image.to(torch.float32).unsqueeze(0)
        h, w = self.target_size(*image.shape[1:])
        if (h, w) != tuple(image.shape[1:]):
            x = F.interpolate(x, size=(h, w), mode=mode, antialias=True,
                              align_corners=False)
            # PIL rounds the resized image to 8 bits before the rest.
            x = x.clamp(0, 255).round()
        if self.crop_size:
            ch, cw = self.crop_size["height"], self.crop_size["width"]
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, :, top:top + ch, left:left + cw]
        mean = torch.as_tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.as_tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return ((x * self.rescale_factor - mean) / std)[0]


def orient(image, orientation):
    """Applies EXIF ``orientation`` to a ``(C, H, W)`` tensor, as
    ``PIL.ImageOps.exif_transpose`` does to an image."""
    import torch

    if orientation in (None, 1):
        return image
    flip_w = lambda t: torch.flip(t, dims=[2])  # noqa: E731
    flip_h = lambda t: torch.flip(t, dims=[1])  # noqa: E731
    transpose = lambda t: t.transpose(1, 2)  # noqa: E731
    ops = {
        2: [flip_w],
        3: [flip_w, flip_h],
        4: [flip_h],
        5: [transpose],
        6: [transpose, flip_w],
        7: [transpose, flip_w, flip_h],
        8: [transpose, flip_h],
    }.get(orientation, [])
    for op in ops:
        image = op(image)
    return image.contiguous()


def _read(path):
    """The file's bytes and EXIF orientation, or ``None`` for a file the
    GPU path does not take."""
    from PIL import Image

    if isinstance(path, Crop):
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data.startswith(_JPEG_MAGIC):
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            orientation = im.getexif().get(0x0112)
    except Exception:
        return None
    return data, orientation


def embed(forward, preprocess, paths, dtype, batch_size, num_workers,
          progress, cpu_decode):
    """Embeds ``paths`` with JPEGs decoded on the GPU, other images with
    ``cpu_decode``; returns an :class:`~.base.Embedded`."""
    import torch

    gpu_pre = TorchPreprocess(preprocess)
    n = len(paths)
    vectors = None
    failures = {}
    done = 0
    workers = num_workers or default_num_workers()
    with ThreadPoolExecutor(workers) as pool:
        reads = pool.map(_read, paths, chunksize=max(1, batch_size // 4))
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            raw = [next(reads) for _ in range(start, stop)]
            tensors, failed = _decode_batch(paths[start:stop], raw, gpu_pre,
                                            cpu_decode, pool)
            failures.update({start + j: r for j, r in failed.items()})
            ok = [j for j in range(stop - start) if j not in failed]
            if ok:
                batch = torch.stack([tensors[j] for j in ok]).to(dtype)
                out = forward(batch).float().cpu().numpy()
                out = out.reshape(len(ok), -1)
                if vectors is None:
                    vectors = np.zeros((n, out.shape[1]), np.float32)
                vectors[[start + j for j in ok]] = out
            done = stop
            if progress is not None:
                progress(done, n)
    if vectors is None:
        vectors = np.zeros((n, 0), np.float32)
    return Embedded(vectors, failures)


def _decode_batch(paths, raw, gpu_pre, cpu_decode, pool):
    """GPU tensors for one batch: JPEGs through nvJPEG, the rest (and
    JPEGs it rejects) through the CPU decoder."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors, failed = {}, {}
    gpu_rows = [j for j, r in enumerate(raw) if r is not None]
    if gpu_rows:
        data = [torch.frombuffer(bytearray(raw[j][0]), dtype=torch.uint8)
                for j in gpu_rows]
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB,
                                 device="cuda")
        except RuntimeError:
            images = [None] * len(gpu_rows)
        for j, image in zip(gpu_rows, images):
            if image is not None:
                tensors[j] = gpu_pre(orient(image, raw[j][1]))
    cpu_rows = [j for j in range(len(paths)) if j not in tensors]

    def on_cpu(j):
        try:
            return j, torch.from_numpy(cpu_decode(paths[j])).cuda(), None
        except ImageDecodeError as e:
            return j, None, str(e)

    for j, tensor, reason in pool.map(on_cpu, cpu_rows):
        if reason is not None:
            failed[j] = reason
        else:
            tensors[j] = tensor
    return tensors, failed
