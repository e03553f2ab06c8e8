"""File content hashes, computed in parallel threads (hashlib releases the
GIL while it hashes, so threads scale with cores and with the disk)."""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

READ_BYTES = 1 << 20
SLICE = 4096
# What a digest is, stored with cached digests so that a change of method
# is never mixed with old values.
DIGEST_FINGERPRINT = {"hash": "blake2b", "digest_size": 20, "form": "size:hex"}


def file_digest(path):
    """``size:blake2b`` of the file's bytes: the size first, so files of
    different lengths never compare equal."""
    h = hashlib.blake2b(digest_size=20)
    size = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(READ_BYTES)
            if not block:
                break
            size += len(block)
            h.update(block)
    return f"{size}:{h.hexdigest()}"


def _digest_or_reason(path):
    try:
        return file_digest(path), None
    except OSError as e:
        return None, f"cannot read file: {e.strerror or e}"


def hash_files(paths, num_workers=None, progress=None):
    """``(digests, failures)``: one digest per path (``None`` where it could
    not be read) and index -> reason for those."""
    workers = num_workers or min(16, 2 * (os.cpu_count() or 1))
    digests = [None] * len(paths)
    failures = {}
    with ThreadPoolExecutor(workers) as pool:
        # In slices, so that a million paths never wait as futures at once.
        for start in range(0, len(paths), SLICE):
            part = paths[start:start + SLICE]
            for i, (digest, reason) in enumerate(
                    pool.map(_digest_or_reason, part), start):
                digests[i] = digest
                if reason is not None:
                    failures[i] = reason
            if progress is not None:
                progress(start + len(part), len(paths))
    return digests, failures
