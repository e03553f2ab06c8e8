"""The members that stand for each cluster."""


def nearest_to_centre(members, per_cluster=1):
    """Returns ``{cluster_id: [(id, filepath), ...]}`` with the
    ``per_cluster`` members of each cluster nearest its centre, nearest
    first. Noise has no centre and no representatives.

    Args:
        members: a run's :meth:`~image_clustering.ClusterRun.members`
        per_cluster: how many per cluster
    """
    ranked = sorted(
        (c, d, sid, p)
        for sid, p, c, d in zip(members["id"], members["filepath"],
                                members["cluster"], members["dist"])
        if c is not None and c >= 0 and d is not None
    )
    out = {}
    for c, _, sid, path in ranked:
        chosen = out.setdefault(c, [])
        if len(chosen) < per_cluster:
            chosen.append((sid, path))
    return out
