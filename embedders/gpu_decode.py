"""JPEG decoding and preprocessing on the GPU, for CUDA machines.

Decoding in Python caps a GPU embedder far below the model's speed. Here
threads only read file bytes and headers; nvJPEG
(``torchvision.io.decode_jpeg`` on ``cuda``, on the GPU's hardware JPEG
engines where it has them) decodes hundreds of images per call, and
resizing, cropping and normalising run there as batched tensor operations
(:class:`TorchPreprocess`, which gives the same tensors as the PIL path
within float tolerance). A background thread prepares the next chunk while
the model runs on the current one, so decoding and inference overlap
instead of taking turns. EXIF orientation is read from the file header and
applied on the GPU, as the App shows the image. Files that are not JPEG,
crops of objects, and JPEGs nvJPEG cannot decode go through the CPU path,
with the same reasons for failures.
"""

import os
import struct
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from .base import Embedded
from .images import Crop, _attempt, default_num_workers, iter_decoded
from ..support import in_background

_JPEG_MAGIC = b"\xff\xd8"
# nvJPEG's batched decode pays per call, not per image: a few hundred
# images per call keep the JPEG engines busy.
CHUNK_IMAGES = 256
# Decoded pixels per nvJPEG call and per preprocessing step, so GPU memory
# stays bounded whatever the photos' size (256 VGA photos, or about six
# 12-megapixel ones, per call).
DECODE_PIXELS = 256 * 640 * 480
PREPROCESS_PIXELS = 64 * 640 * 480
# Chunks read and prepared ahead of the model: enough to hide a slow one,
# few enough to bound host and GPU memory on a dataset of millions.
CHUNKS_AHEAD = 2
# Reading runs under the GIL, beside the model's thread, which launches
# its kernels under the GIL too, and nvJPEG, which takes it back once per
# image. Two threads reading groups of files keep ahead of the GPU from a
# local disk; more threads, or a task per file, slowed the whole run down
# on an H200. ``num_workers`` overrides it, for storage with high latency.
READ_THREADS = 2
READ_GROUP = 32


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
    on whatever device the image tensors are on.

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
        self._normalisers = {}

    def target_size(self, height, width):
        if "shortest_edge" in self.size:
            edge = self.size["shortest_edge"]
            if width <= height:
                return max(1, int(edge * height / width)), edge
            return edge, max(1, int(edge * width / height))
        return self.size["height"], self.size["width"]

    def _normaliser(self, device):
        """Mean and std on ``device``, copied there once rather than on
        every call."""
        import torch

        if device not in self._normalisers:
            self._normalisers[device] = tuple(
                torch.as_tensor(v, device=device).view(1, 3, 1, 1)
                for v in (self.mean, self.std))
        return self._normalisers[device]

    def batch(self, images):
        """``images``: ``(N, 3, H, W)`` uint8, all of one size. Returns
        ``(N, 3, h, w)`` float32."""
        import torch
        import torch.nn.functional as F

        mode = {3: "bicubic", 2: "bilinear"}.get(self.resample, "bicubic")
        x = images.to(torch.float32)
        h, w = self.target_size(*images.shape[2:])
        if (h, w) != tuple(images.shape[2:]):
            x = F.interpolate(x, size=(h, w), mode=mode, antialias=True,
                              align_corners=False)
            # PIL rounds the resized image to 8 bits before the rest.
            x = x.clamp_(0, 255).round_()
        if self.crop_size:
            ch, cw = self.crop_size["height"], self.crop_size["width"]
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, :, top:top + ch, left:left + cw]
        mean, std = self._normaliser(x.device)
        return (x * self.rescale_factor - mean) / std

    def __call__(self, image):
        """``image``: a ``(3, H, W)`` uint8 tensor. Returns float32."""
        return self.batch(image.unsqueeze(0))[0]


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


class JpegFile(NamedTuple):
    """A JPEG's bytes as a uint8 tensor, its EXIF orientation, and its
    pixel count (from the header, to budget GPU memory before decoding)."""

    data: object
    orientation: object
    pixels: int


def _read(path):
    """The :class:`JpegFile` at ``path``, or ``None`` for a file the GPU
    path does not take (it then goes to the CPU decoder, which reports any
    failure in its own words)."""
    import torch

    if isinstance(path, Crop):
        return None
    try:
        data = _read_bytes(path)
    except (OSError, TypeError, ValueError):
        return None
    if not data.startswith(_JPEG_MAGIC):
        return None
    header = jpeg_header(data)
    if header is None:
        return None
    width, height, orientation = header
    return JpegFile(torch.frombuffer(data, dtype=torch.uint8), orientation,
                    width * height)


def _read_bytes(path):
    """The file's bytes, read unbuffered straight into a writable buffer,
    which the tensor then wraps without another copy."""
    with open(path, "rb", buffering=0) as f:
        data = bytearray(os.fstat(f.fileno()).st_size)
        view, filled = memoryview(data), 0
        while filled < len(data):
            got = f.readinto(view[filled:])
            if not got:
                break
            filled += got
        del view
    del data[filled:]
    return data


# Start-of-frame markers: each carries the image's height and width.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_header(data):
    """``(width, height, orientation)`` from a JPEG's markers, or ``None``
    when they cannot be read. ``orientation`` is the EXIF tag's value, or
    ``None`` without one.

    Reading the few bytes that matter is some twenty times faster than
    opening the file with PIL, and at thousands of images a second this
    runs under the GIL beside the model's own thread.
    """
    size, orientation = None, None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length follows
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan
            break
        length = (data[i + 2] << 8) | data[i + 3]
        body = i + 4
        if marker in _SOF_MARKERS and body + 5 <= n:
            height, width = struct.unpack_from(">HH", data, body + 1)
            size = (width, height)
        elif (marker == 0xE1 and orientation is None
              and data[body:body + 6] == b"Exif\x00\x00"):
            orientation = _exif_orientation(data, body + 6,
                                            min(n, i + 2 + length))
        i += 2 + length
    if size is None or 0 in size:
        return None
    return size[0], size[1], orientation


def _exif_orientation(data, tiff, end):
    """The Orientation tag of the first image directory of the TIFF
    structure at ``data[tiff:end]``, or ``None``."""
    endian = {b"II": "<", b"MM": ">"}.get(bytes(data[tiff:tiff + 2]))
    if endian is None:
        return None
    try:
        (directory,) = struct.unpack_from(endian + "I", data, tiff + 4)
        start = tiff + directory
        (count,) = struct.unpack_from(endian + "H", data, start)
        for k in range(count):
            entry = start + 2 + 12 * k
            if entry + 12 > end:
                return None
            tag, kind = struct.unpack_from(endian + "HH", data, entry)
            if tag == 0x0112 and kind == 3:  # a SHORT
                return struct.unpack_from(endian + "H", data, entry + 8)[0]
    except struct.error:
        return None
    return None


def nvjpeg(datas):
    """Decodes a list of JPEG byte tensors to ``(3, H, W)`` uint8 CUDA
    tensors in one nvJPEG call."""
    from torchvision.io import ImageReadMode, decode_jpeg

    return decode_jpeg(datas, mode=ImageReadMode.RGB, device="cuda")


class Chunk(NamedTuple):
    """Consecutive images, decoded and preprocessed: ``pixels`` holds the
    model inputs of the rows in ``ok`` (chunk-local indices), in order;
    ``failures`` maps the other rows to their reasons."""

    start: int
    pixels: object
    ok: list
    failures: dict

    @property
    def size(self):
        return len(self.ok) + len(self.failures)


def embed(forward, preprocess, paths, dtype, batch_size, num_workers,
          progress, cpu_decode, device="cuda", decode_jpegs=nvjpeg):
    """Embeds ``paths`` with JPEGs decoded by ``decode_jpegs`` on
    ``device``, other images with ``cpu_decode``; returns an
    :class:`~.base.Embedded`.

    Chunks of several model batches are read, decoded and preprocessed in
    a background thread, up to :data:`CHUNKS_AHEAD` ahead of the model.
    """
    n = len(paths)
    chunk_size = batch_size * max(1, round(CHUNK_IMAGES / batch_size))
    prepare = _ChunkPreparer(paths, TorchPreprocess(preprocess), cpu_decode,
                             preprocess.output_shape(), dtype, device,
                             decode_jpegs)
    vectors = None
    failures = {}
    with ThreadPoolExecutor(num_workers or default_num_workers()) as cpu_pool:
        chunks = prepare.all(chunk_size, num_workers or READ_THREADS,
                             cpu_pool)
        for chunk in in_background(chunks, CHUNKS_AHEAD):
            failures.update({chunk.start + j: reason
                             for j, reason in chunk.failures.items()})
            if chunk.ok:
                out = _run_model(forward, chunk.pixels, batch_size)
                if vectors is None:
                    vectors = np.zeros((n, out.shape[1]), np.float32)
                vectors[[chunk.start + j for j in chunk.ok]] = out
            if progress is not None:
                progress(chunk.start + chunk.size, n)
    if vectors is None:
        vectors = np.zeros((n, 0), np.float32)
    return Embedded(vectors, failures)


def _run_model(forward, pixels, batch_size):
    """The model's ``(k, d)`` outputs for ``pixels``, in batches, with one
    copy back to the host per chunk rather than one wait per batch."""
    import torch

    outs = [forward(pixels[i:i + batch_size])
            for i in range(0, len(pixels), batch_size)]
    outs = [o.reshape(len(o), -1) for o in outs]
    return torch.cat(outs).float().cpu().numpy()


class _ChunkPreparer:
    """Turns consecutive paths into :class:`Chunk` s of model inputs on
    ``device``."""

    def __init__(self, paths, gpu_pre, cpu_decode, shape, dtype, device,
                 decode_jpegs):
        self.paths = paths
        self.gpu_pre = gpu_pre
        self.cpu_decode = cpu_decode
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.decode_jpegs = decode_jpegs

    def all(self, chunk_size, readers, cpu_pool):
        """Every chunk in order, the files read by ``readers`` threads."""
        import torch

        with torch.inference_mode():
            for start, files, _ in iter_decoded(
                self.paths, _read, batch_size=chunk_size,
                num_workers=readers, prefetch=CHUNKS_AHEAD, mode="threads",
                group=READ_GROUP,
            ):
                yield self.chunk(start, files, cpu_pool)

    def chunk(self, start, files, cpu_pool):
        import torch

        n = len(files)
        pixels = torch.empty((n, *self.shape), dtype=self.dtype,
                             device=self.device)
        on_gpu = self._decode_jpegs_into(pixels, files)
        rest = [j for j in range(n) if j not in on_gpu]
        failures = self._decode_on_cpu_into(pixels, start, rest, cpu_pool)
        ok = [j for j in range(n) if j not in failures]
        if len(ok) < n:
            pixels = pixels[ok]
        return Chunk(start, pixels, ok, failures)

    def _decode_jpegs_into(self, pixels, files):
        """Decodes the chunk's JPEGs into their rows of ``pixels``, a
        pixel budget at a time; returns the rows done."""
        done = set()
        rows = [j for j, f in enumerate(files) if f is not None]
        for part in _split_by_pixels(rows, [f.pixels if f else 0
                                            for f in files], DECODE_PIXELS):
            images = self._decode_each_if_needed([files[j].data
                                                  for j in part])
            decoded = {j: orient(image, files[j].orientation)
                       for j, image in zip(part, images)
                       if image is not None}
            self._preprocess_into(pixels, decoded)
            done.update(decoded)
        return done

    def _decode_each_if_needed(self, datas):
        """One call for the whole list; if the decoder rejects it, one call
        per image, so a single odd JPEG sends only itself to the CPU."""
        try:
            return self.decode_jpegs(datas)
        except RuntimeError:
            if len(datas) == 1:
                return [None]
        images = []
        for data in datas:
            try:
                images.extend(self.decode_jpegs([data]))
            except RuntimeError:
                images.append(None)
        return images

    def _preprocess_into(self, pixels, images):
        """Preprocesses ``{row: (3, H, W) uint8}`` into ``pixels``, the
        images of each size together."""
        import torch

        by_size = defaultdict(list)
        for j, image in images.items():
            by_size[tuple(image.shape[1:])].append(j)
        for (height, width), rows in by_size.items():
            step = max(1, PREPROCESS_PIXELS // (height * width))
            for i in range(0, len(rows), step):
                part = rows[i:i + step]
                out = self.gpu_pre.batch(torch.stack([images[j]
                                                      for j in part]))
                index = torch.as_tensor(part, device=pixels.device)
                pixels.index_copy_(0, index, out.to(pixels.dtype))

    def _decode_on_cpu_into(self, pixels, start, rows, cpu_pool):
        """Decodes ``rows`` with the CPU path into ``pixels``; returns the
        failures' reasons by row."""
        import torch

        def attempt(j):
            return _attempt(self.cpu_decode, self.paths[start + j])

        arrays, failures = {}, {}
        for j, (array, reason) in zip(rows, cpu_pool.map(attempt, rows)):
            if reason is None:
                arrays[j] = array
            else:
                failures[j] = reason
        if arrays:
            rows = sorted(arrays)
            batch = torch.from_numpy(np.stack([arrays[j] for j in rows]))
            index = torch.as_tensor(rows, device=pixels.device)
            pixels.index_copy_(0, index, batch.to(pixels.device,
                                                  pixels.dtype))
        return failures


def _split_by_pixels(rows, pixels, budget):
    """``rows`` in consecutive parts whose ``pixels`` add up to at most
    ``budget`` (a part holds at least one row)."""
    part, total = [], 0
    for j in rows:
        if part and total + pixels[j] > budget:
            yield part
            part, total = [], 0
        part.append(j)
        total += pixels[j]
    if part:
        yield part
