"""umap-learn, compiled once per machine.

numba compiles UMAP's kernels on first use in every new process (about a
minute on a small machine); most of them are not marked for numba's
on-disk cache. :func:`load_umap` turns that cache on for every kernel of
umap's modules and keeps it in a folder that is writable and survives
between runs: ``NUMBA_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/image-clustering/numba`` (``~/.cache/...``). The one
kernel that cannot be cached (pynndescent's neighbour descent, which takes
a distance function as an argument) is never run: the neighbour graph comes
from faiss (:mod:`.neighbors`).
"""

import importlib
import logging
import os
import tempfile
import threading

logger = logging.getLogger(__name__)

_UMAP_MODULES = ("umap.umap_", "umap.layouts", "umap.utils", "umap.spectral",
                 "umap.distances", "umap.sparse")
_lock = threading.Lock()
_ready = False


def cache_dir():
    """The folder numba's compiled kernels are kept in."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache")
    return os.path.join(base, "image-clustering", "numba")


def _writable(folder):
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def load_umap():
    """Imports and returns ``umap`` with its kernels cached on disk."""
    global _ready
    with _lock:
        if not _ready:
            _enable_cache()
            _ready = True
    import umap

    return umap


def _enable_cache():
    import numba
    from numba.core.registry import CPUDispatcher

    folder = cache_dir()
    if not _writable(folder):
        fallback = os.path.join(tempfile.gettempdir(),
                                "image-clustering-numba")
        logger.warning("numba cache folder %s is not writable; using %s, "
                       "which may not survive a restart", folder, fallback)
        folder = fallback
        os.makedirs(folder, exist_ok=True)
    # Read when each kernel's cache is created, so it must be set before
    # umap is imported (kernels marked cache=True) and before the others
    # are switched on below.
    numba.config.CACHE_DIR = folder
    for name in _UMAP_MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and \
                    type(obj._cache).__name__ == "NullCache":
                obj.enable_caching()
