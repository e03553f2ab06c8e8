"""The samples that stand for each cluster: those nearest its centre."""


def representatives(run, per_cluster=1):
    """Returns ``{cluster_id: [(id, filepath), ...]}`` with the
    ``per_cluster`` members of each cluster (samples, or objects of an
    object run) nearest its centre, nearest first. Noise has no centre and
    no representatives.

    Args:
        run: a :class:`~image_clustering.clustering.runs.ClusterRun`
        per_cluster: how many samples per cluster
    """
    m = run.members()
    ranked = sorted(
        (c, d, sid, p)
        for sid, p, c, d in zip(m["id"], m["filepath"], m["cluster"], m["dist"])
        if c is not None and c >= 0 and d is not None
    )
    out = {}
    for c, _, sid, path in ranked:
        chosen = out.setdefault(c, [])
        if len(chosen) < per_cluster:
            chosen.append((sid, path))
    return out
