"""The samples that stand for each cluster: those nearest its centre."""


def representatives(run, per_cluster=1):
    """Returns ``{cluster_id: [(sample_id, filepath), ...]}`` with the
    ``per_cluster`` samples of each cluster nearest its centre, nearest
    first. Noise has no centre and no representatives.

    Args:
        run: a :class:`~image_clustering.clustering.runs.ClusterRun`
        per_cluster: how many samples per cluster
    """
    cf, df = run.fields["cluster"], run.fields["dist"]
    ids, paths, clusters, dists = run.view().exists(cf).values(
        ["id", "filepath", cf, df]
    )
    ranked = sorted(
        (c, d, sid, p)
        for sid, p, c, d in zip(ids, paths, clusters, dists)
        if c is not None and c >= 0 and d is not None
    )
    out = {}
    for c, _, sid, path in ranked:
        chosen = out.setdefault(c, [])
        if len(chosen) < per_cluster:
            chosen.append((sid, path))
    return out
