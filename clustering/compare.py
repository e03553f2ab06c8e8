"""Comparing two runs on the samples (or objects) both clustered."""

from collections import Counter

from ..units import ParamError


class RunComparison:
    """How the clusters of run ``key_a`` map onto those of run ``key_b``.

    Attributes:
        key_a, key_b: the run keys
        shared: how many samples (or objects) both runs clustered
        ari, ami: agreement of the two assignments on those (noise counts
            as a group of its own), 1.0 when they partition them the same
        table: ``{cluster of A: {cluster of B: count}}``
    """

    def __init__(self, run_a, run_b, ids, clusters_a, clusters_b):
        from sklearn.metrics import (
            adjusted_mutual_info_score,
            adjusted_rand_score,
        )

        self.run_a, self.run_b = run_a, run_b
        self.key_a, self.key_b = run_a.key, run_b.key
        self.ids = ids
        self.shared = len(ids)
        self.ari = float(adjusted_rand_score(clusters_a, clusters_b)) \
            if ids else None
        self.ami = float(adjusted_mutual_info_score(clusters_a, clusters_b)) \
            if ids else None
        self._pairs = list(zip(clusters_a, clusters_b))
        self.table = {}
        for a, b in self._pairs:
            self.table.setdefault(a, Counter())[b] += 1

    def best_matches(self, side="a"):
        """For each cluster of one run (``"a"`` or ``"b"``), the cluster of
        the other that holds most of it: ``{cluster: {"match", "count",
        "size", "share"}}``."""
        counts = {}
        for a, b in self._pairs:
            mine, other = (a, b) if side == "a" else (b, a)
            counts.setdefault(mine, Counter())[other] += 1
        out = {}
        for cluster, others in sorted(counts.items()):
            match, count = others.most_common(1)[0]
            size = sum(others.values())
            out[cluster] = {"match": match, "count": count, "size": size,
                            "share": count / size}
        return out

    def cell_ids(self, cluster_a, cluster_b):
        """Ids in cluster ``cluster_a`` of A and ``cluster_b`` of B."""
        return [i for i, (a, b) in zip(self.ids, self._pairs)
                if a == int(cluster_a) and b == int(cluster_b)]

    def cell_view(self, cluster_a, cluster_b):
        """The samples (or patches) of one cell of the table, ordered by
        distance to their centre in run A."""
        ids = self.cell_ids(cluster_a, cluster_b)
        run = self.run_a
        view = run.view()
        if run.patches_field:
            view = view.to_patches(run.patches_field)
            dist = f"{run.patches_field}." + \
                run.fields["dist"].rsplit(".", 1)[-1]
            return view.select_labels(ids=ids, fields=run.patches_field) \
                .sort_by(dist)
        return view.select(ids).sort_by(run.fields["dist"])

    def to_dict(self):
        return {
            "key_a": self.key_a,
            "key_b": self.key_b,
            "shared": self.shared,
            "ari": self.ari,
            "ami": self.ami,
            "table": {str(a): {str(b): n for b, n in row.items()}
                      for a, row in sorted(self.table.items())},
            "best_matches_a": {str(k): v for k, v in
                               self.best_matches("a").items()},
            "best_matches_b": {str(k): v for k, v in
                               self.best_matches("b").items()},
        }

    def describe(self):
        """One sentence: what the runs share and how well they agree."""
        head = f"'{self.key_a}' vs '{self.key_b}': "
        if not self.shared:
            return head + ("no sample was clustered by both runs, so they "
                           "cannot be compared")
        return (head + f"{self.shared:,} shared, ARI {self.ari:.4f}, "
                f"AMI {self.ami:.4f}")

    def __repr__(self):
        return f"<RunComparison {self.describe()}>"


def compare(run_a, run_b):
    """Compares two runs (:class:`.results.ClusterRun`) on what both
    clustered. Returns a :class:`RunComparison`."""
    key_a, key_b = run_a.key, run_b.key
    if bool(run_a.patches_field) != bool(run_b.patches_field) or \
            run_a.patches_field != run_b.patches_field:
        raise ParamError(
            f"runs '{key_a}' and '{key_b}' clustered different things "
            "(samples and objects, or objects of different fields)",
            "run_b")
    a = dict(zip(*_clustered(run_a)))
    b = dict(zip(*_clustered(run_b)))
    ids = [i for i in a if i in b]
    return RunComparison(run_a, run_b, ids, [a[i] for i in ids],
                         [b[i] for i in ids])


def _clustered(run):
    m = run.members()
    pairs = [(i, c) for i, c in zip(m["id"], m["cluster"]) if c is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]
