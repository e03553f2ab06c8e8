"""Executors run an embedder over many images. The local one runs it in
this process; others (Ray) run the same embedder elsewhere and return the
same :class:`~.base.Embedded`, row for row."""


def local_executor(embedder, ids, sources, num_workers=None, batch_size=None,
                   progress=None, decode="auto"):
    """Embeds ``sources`` (file paths or crops; ``ids`` name them) here."""
    return embedder.embed(sources, num_workers=num_workers,
                          batch_size=batch_size, progress=progress,
                          decode=decode)
