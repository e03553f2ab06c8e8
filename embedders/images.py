"""Image decoding shared by every embedder.

Any file is either decoded to a clean 8-bit "L" or "RGB" image or rejected
with a reason a person can act on. Decoding runs in a thread pool (Pillow
releases the GIL while decoding) a few batches ahead of the consumer, so a
model's forward pass overlaps with the decoding of the next batches.
"""

import hashlib
import os
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .decode_processes import iter_decoded_in_processes
from .image_errors import ImageDecodeError

# EXIF orientations that swap width and height.
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)


def file_identity(path):
    """A short hash of ``path`` and its size and modification time, or
    ``None`` when the file cannot be read."""
    try:
        st = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:20]



class Crop(NamedTuple):
    """A region of an image: ``box`` is ``[x, y, width, height]`` relative
    to the image size, as in FiftyOne's ``Detection.bounding_box``."""

    path: str
    box: tuple


class _DecodedImages:
    """Recently decoded full images, shared by the decoding threads.

    Crops of one image arrive together and land on different threads; the
    first thread decodes the image and the others wait for that result
    instead of decoding it again.
    """

    def __init__(self, capacity):
        self.capacity = capacity
        self.lock = threading.Lock()
        self.entries = OrderedDict()

    def clear(self):
        with self.lock:
            self.entries.clear()

    def get(self, path, mode):
        key = (path, mode)
        with self.lock:
            future = self.entries.get(key)
            owner = future is None
            if owner:
                future = self.entries[key] = Future()
                while len(self.entries) > self.capacity:
                    self.entries.popitem(last=False)
            else:
                self.entries.move_to_end(key)
        if owner:
            try:
                future.set_result(load_image(path, mode))
            except BaseException as e:
                # Threads waiting on this image must not wait forever.
                future.set_exception(e)
        return future.result()


_decoded = _DecodedImages(capacity=16)


def load_crop(crop, mode="RGB"):
    """Decodes the region ``crop`` of its image as an 8-bit ``mode`` image.

    Raises:
        ImageDecodeError: if the image cannot be read or the box is empty
    """
    im = _decoded.get(crop.path, mode)
    x, y, w, h = crop.box
    width, height = im.size
    left = min(max(int(round(x * width)), 0), width)
    top = min(max(int(round(y * height)), 0), height)
    right = min(max(int(round((x + w) * width)), 0), width)
    bottom = min(max(int(round((y + h) * height)), 0), height)
    if right <= left or bottom <= top:
        raise ImageDecodeError(f"empty bounding box {list(crop.box)}")
    return im.crop((left, top, right, bottom))


def load_source(source, mode="RGB", size=None):
    """Decodes a file path or a :class:`Crop`."""
    if isinstance(source, Crop):
        return load_crop(source, mode)
    return load_image(source, mode=mode, size=size)


def default_num_workers():
    return max(1, min(8, os.cpu_count() or 1))


def load_image(path, mode="RGB", size=None):
    """Decodes ``path`` to an 8-bit ``mode`` ("L" or "RGB") image.

    Args:
        path: the image file
        mode: "L" or "RGB"
        size: an optional ``(width, height)`` the caller will shrink to;
            JPEGs are then decoded at the smallest scale at least that big

    Raises:
        ImageDecodeError: with the reason the file cannot be used
    """
    # Pillow's own limit, read per call so that a caller who raises it (or
    # sets it to None for trusted data) is obeyed.
    max_pixels = Image.MAX_IMAGE_PIXELS
    try:
        if os.path.getsize(path) == 0:
            raise ImageDecodeError("empty file")
        with Image.open(path) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise Image.DecompressionBombError(path)
            orientation = _orientation(im)
            if size is not None and im.format == "JPEG":
                w, h = size
                if orientation in _TRANSPOSED_ORIENTATIONS:
                    w, h = h, w
                im.draft(mode, (w, h))
            im.seek(0)
            im.load()
            if orientation not in (None, 1):
                # As the App (and every browser) shows the image; boxes of
                # patches are relative to that view too.
                im = ImageOps.exif_transpose(im)
            return _to_mode(im, mode)
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError("file not found") from None
    except IsADirectoryError:
        raise ImageDecodeError("path is a directory") from None
    except PermissionError:
        raise ImageDecodeError("permission denied") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not a recognised image format") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageDecodeError(
            f"image too large (over {max_pixels:,} pixels; raise "
            "PIL.Image.MAX_IMAGE_PIXELS if it is trusted)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageDecodeError(f"corrupt or truncated image: {e}") from None
    except Exception as e:
        # Pillow's plugins raise a variety of errors on malformed files;
        # one bad file must be skipped, not end the run.
        raise ImageDecodeError(
            f"cannot decode image ({type(e).__name__}: {e})"
        ) from None


def _orientation(im):
    try:
        return im.getexif().get(0x0112)
    except Exception:
        # A malformed EXIF block must not cost the image.
        return None


def _to_mode(im, mode):
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        im = _high_depth_to_l(im)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        im.mode == "P" and "transparency" in im.info
    ):
        # Transparent pixels carry arbitrary colour; show them on white, as
        # image viewers do, so two copies of a logo embed alike.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    if im.mode != mode:
        im = im.convert(mode)
    return im


def _high_depth_to_l(im):
    # Pillow's own conversion clips 16-bit values at 255, turning most
    # 16-bit images white; scale by the range the data can hold instead.
    arr = np.asarray(im, dtype=np.float64)
    if im.mode.startswith("I;16"):
        top = 65535.0
    else:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if lo >= 0 and hi <= 255:
            top = 255.0
        elif lo >= 0 and hi <= 65535:
            top = 65535.0
        else:
            arr = arr - lo
            top = max(hi - lo, 1e-12)
    arr = np.nan_to_num(arr / top * 255.0, nan=0.0)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")


def _attempt(decode, path):
    try:
        return decode(path), None
    except ImageDecodeError as e:
        return None, str(e)


DECODE_MODES = ("auto", "threads", "processes")
# From this many cores on, threads are capped by the GIL and processes pay.
PROCESS_DECODE_CORES = 8
# Starting worker processes costs a second or two: not for a few images.
PROCESS_DECODE_MIN_IMAGES = 1000


def decode_mode(decode, mode, n):
    """``threads`` or ``processes`` for ``mode`` (``auto`` chooses)."""
    eligible = getattr(decode, "item_shape", None) is not None and \
        type(decode).__module__.startswith("image_clustering.")
    if mode == "processes":
        return "processes" if eligible else "threads"
    if mode == "auto" and eligible and n >= PROCESS_DECODE_MIN_IMAGES and \
            (os.cpu_count() or 1) >= PROCESS_DECODE_CORES:
        return "processes"
    return "threads"


def iter_decoded(paths, decode, batch_size=64, num_workers=None, prefetch=2,
                 mode="auto", group=1):
    """Decodes ``paths`` in parallel, yielding one batch at a time.

    ``decode(path)`` runs in worker threads (or, see :func:`decode_mode`,
    worker processes) and may raise :class:`ImageDecodeError`. At most
    ``prefetch`` batches are decoded ahead of the consumer, which bounds
    memory on large datasets. In threads, each task decodes ``group``
    paths: more than one when ``decode`` is so quick that handing out
    tasks would cost more than the work.

    Yields:
        ``(start, items, failures)``: the index of the batch's first path,
        the decoded items in order (a list with ``None`` where decoding
        failed, or an array whose failed rows are to be ignored), and a
        dict of batch-local index -> reason
    """
    workers = num_workers or default_num_workers()
    if decode_mode(decode, mode, len(paths)) == "processes":
        yield from iter_decoded_in_processes(
            paths, decode, decode.item_shape, batch_size, workers, prefetch)
        return
    # A file may have changed since an earlier call decoded it.
    _decoded.clear()
    try:
        yield from _decode_batches(paths, decode, batch_size, workers,
                                   prefetch, group)
    finally:
        # Do not keep full-size images alive after the run.
        _decoded.clear()


def _attempt_each(decode, paths):
    return [_attempt(decode, path) for path in paths]


def _decode_batches(paths, decode, batch_size, workers, prefetch, group):
    n = len(paths)
    starts = iter(range(0, n, batch_size))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()

        def submit_next():
            start = next(starts, None)
            if start is not None:
                stop = min(start + batch_size, n)
                futures = [
                    pool.submit(_attempt_each, decode,
                                paths[i:min(i + group, stop)])
                    for i in range(start, stop, group)
                ]
                pending.append((start, futures))

        for _ in range(prefetch + 1):
            submit_next()
        while pending:
            start, futures = pending.popleft()
            submit_next()
            items, failures = [], {}
            results = (r for future in futures for r in future.result())
            for j, (item, reason) in enumerate(results):
                items.append(item)
                if reason is not None:
                    failures[j] = reason
            yield start, items, failures
