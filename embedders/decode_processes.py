"""Decoding in worker processes, for machines with many cores.

Decoding in threads is capped by the GIL near 600 images/s however many
cores there are: Pillow releases it while decoding, but resizing and
normalising hold it. Here each worker process decodes a slice of a batch
straight into a shared-memory block that the consumer reads as a numpy
array, so no image is pickled. A small ring of blocks lets the next
batches decode while the current one runs through the model.

The decode callable must pickle (the embedders' decoders are small
classes) and must return arrays of a fixed ``item_shape``.
"""

import math
import multiprocessing
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import shared_memory

import numpy as np

from .image_errors import ImageDecodeError

# Workers per slot slice: each task decodes this share of a batch.
_SLICES_PER_WORKER = 2


def _decode_slice(block, shape, decode, paths, offset):
    """Worker side: decodes ``paths`` into rows ``offset...`` of the shared
    block; returns ``{row: reason}`` for the failures."""
    shm = shared_memory.SharedMemory(name=block)
    try:
        rows = np.ndarray(shape, dtype=np.float32, buffer=shm.buf)
        failures = {}
        for j, path in enumerate(paths):
            try:
                rows[offset + j] = decode(path)
            except ImageDecodeError as e:
                failures[offset + j] = str(e)
            except Exception as e:
                failures[offset + j] = (
                    f"cannot decode image ({type(e).__name__}: {e})")
        return failures
    finally:
        del rows
        shm.close()


class _Slots:
    """A ring of shared-memory blocks, one batch each."""

    def __init__(self, n, batch_size, item_shape):
        self.shape = (batch_size, *item_shape)
        size = int(np.prod(self.shape)) * 4
        self.blocks = [shared_memory.SharedMemory(create=True, size=size)
                       for _ in range(n)]

    def view(self, i):
        return np.ndarray(self.shape, dtype=np.float32,
                          buffer=self.blocks[i].buf)

    def close(self):
        for block in self.blocks:
            try:
                block.close()
            except BufferError:
                # A view is still referenced; the memory goes with it.
                pass
            block.unlink()


def iter_decoded_in_processes(paths, decode, item_shape, batch_size,
                              num_workers, prefetch=2):
    """Like :func:`.images.iter_decoded`, with ``items`` an array of
    ``(batch, *item_shape)`` rows (rows of failed images are garbage). The
    array is only valid until the next batch is asked for."""
    n = len(paths)
    slots = _Slots(prefetch + 1, batch_size, item_shape)
    per_task = max(1, math.ceil(batch_size / (num_workers *
                                              _SLICES_PER_WORKER)))
    context = multiprocessing.get_context("spawn")
    starts = iter(range(0, n, batch_size))
    free = deque(range(len(slots.blocks)))
    try:
        with ProcessPoolExecutor(num_workers, mp_context=context) as pool:
            pending = deque()

            def submit_next():
                start = next(starts, None)
                if start is None:
                    return
                slot = free.popleft()
                stop = min(start + batch_size, n)
                tasks = [
                    pool.submit(_decode_slice, slots.blocks[slot].name,
                                slots.shape, decode,
                                paths[s:min(s + per_task, stop)], s - start)
                    for s in range(start, stop, per_task)
                ]
                pending.append((start, stop, slot, tasks))

            for _ in range(prefetch + 1):
                submit_next()
            while pending:
                start, stop, slot, tasks = pending.popleft()
                failures = {}
                for task in tasks:
                    failures.update(task.result())
                yield start, slots.view(slot)[:stop - start], failures
                free.append(slot)
                submit_next()
    finally:
        slots.close()
