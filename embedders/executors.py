"""Executors run an embedder over many images. The local one runs it in
this process; others (Ray) run the same embedder elsewhere and return the
same :class:`~.base.Embedded`, row for row."""

from ..units import ParamError
from .ray_executor import RayExecutor


def local_executor(embedder, ids, sources, num_workers=None, batch_size=None,
                   progress=None, decode="auto"):
    """Embeds ``sources`` (file paths or crops; ``ids`` name them) here."""
    return embedder.embed(sources, num_workers=num_workers,
                          batch_size=batch_size, progress=progress,
                          decode=decode)


def get_executor(executor=None, ray_address=None):
    """``None`` or ``"local"``: this machine; ``"ray"``: a
    :class:`.ray_executor.RayExecutor` on ``ray_address``; a callable is
    used as it is."""
    if executor is None or executor == "local":
        if ray_address is not None:
            raise ParamError("ray_address is only used with executor 'ray'",
                             "executor", "ray")
        return local_executor
    if executor == "ray":
        return RayExecutor(address=ray_address)
    if callable(executor):
        return executor
    raise ParamError(f"executor must be 'local', 'ray' or an executor, got "
                     f"{executor!r}", "executor")
