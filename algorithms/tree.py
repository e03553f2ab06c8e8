"""A tree of nested clusters over points, fine to coarse, and cuts through
it.

A :class:`Tree` is built from layers of labels (the finest first, −1 for
noise) that an engine gives. Nesting is enforced: each cluster of a layer
belongs to the cluster of the next coarser layer that holds most of its
points, and a point clustered in a fine layer stays in that cluster's
ancestors above. A cluster that goes on unchanged (one child) is the same
node in every layer it spans. :meth:`Tree.renumbered` gives the nodes the
ids users see: those of one cut (the default) 0, 1, 2... by size, as a
flat run's clusters are numbered, then the others coarse to fine.

A *cut* is a set of nodes that holds every clustered point exactly once
(a layer is one). Points are kept as their leaf: a point's cluster in any
cut is the cut's node on its path to the root.
"""

import numpy as np

from ..units import ParamError


class Tree:
    """Nested clusters.

    Attributes:
        parent: int array, the parent of each node (−1 for a root)
        first_layer, last_layer: int arrays, the layers each node spans
        layers: list of int arrays, the node ids of each layer, finest first
        size: int array, the points under each node
    """

    def __init__(self, parent, first_layer, last_layer, layers, size):
        self.parent = np.asarray(parent, dtype=np.int64)
        self.first_layer = np.asarray(first_layer, dtype=np.int64)
        self.last_layer = np.asarray(last_layer, dtype=np.int64)
        self.layers = [np.asarray(l, dtype=np.int64) for l in layers]
        self.size = np.asarray(size, dtype=np.int64)
        self._children = None

    # -- building ------------------------------------------------------------

    @classmethod
    def from_layers(cls, labelings):
        """``(tree, leaf)``: the tree of the nested layers ``labelings``
        (arrays of one label per point, −1 noise, finest first), and each
        point's leaf node (−1 for points clustered in no layer)."""
        labelings = [np.asarray(l, dtype=np.int64) for l in labelings]
        if not labelings:
            raise ParamError("a hierarchy needs at least one layer")
        nested = _nest(labelings)
        return _number(nested)

    def renumbered(self, first):
        """``(tree, new_id)``: the same tree with the nodes ``first`` (in
        that order) numbered 0, 1, 2..., then the other nodes coarsest
        first and largest first within a layer; ``new_id[old]`` is a node's
        new id."""
        first = [int(n) for n in first]
        chosen = set(first)
        rest = sorted((n for n in range(self.n_nodes) if n not in chosen),
                      key=lambda n: (-self.first_layer[n], -self.size[n], n))
        order = np.asarray(first + rest, dtype=np.int64)
        new_id = np.empty(self.n_nodes, dtype=np.int64)
        new_id[order] = np.arange(self.n_nodes)
        parent = self.parent[order]
        parent = np.where(parent >= 0, new_id[np.maximum(parent, 0)], -1)
        tree = Tree(parent, self.first_layer[order], self.last_layer[order],
                    [new_id[layer] for layer in self.layers],
                    self.size[order])
        return tree, new_id

    # -- reading ---------------------------------------------------------------

    @property
    def n_nodes(self):
        return len(self.parent)

    @property
    def n_layers(self):
        return len(self.layers)

    def children(self, node):
        if self._children is None:
            self._children = [[] for _ in range(self.n_nodes)]
            for child, parent in enumerate(self.parent):
                if parent >= 0:
                    self._children[parent].append(child)
        return list(self._children[node])

    def ancestors(self, node):
        """``node`` and the nodes above it, up to its root."""
        out = [int(node)]
        while self.parent[out[-1]] >= 0:
            out.append(int(self.parent[out[-1]]))
        return out

    def depth(self, node):
        return len(self.ancestors(node)) - 1

    def lowest_common_ancestor(self, nodes):
        """The lowest node above (or equal to) every one of ``nodes``, or
        ``None`` when they have no common ancestor (different roots)."""
        paths = [self.ancestors(n) for n in nodes]
        common = set(paths[0]).intersection(*map(set, paths[1:]))
        for node in paths[0]:
            if node in common:
                return node
        return None

    def leaves_under(self, node):
        """The leaves of the subtree of ``node``."""
        out, todo = [], [int(node)]
        while todo:
            n = todo.pop()
            kids = self.children(n)
            if kids:
                todo.extend(kids)
            else:
                out.append(n)
        return out

    def layer_of(self, nodes):
        """The layer a set of nodes is, or ``None`` when it is no layer."""
        chosen = sorted(int(n) for n in nodes)
        for i, layer in enumerate(self.layers):
            if sorted(layer.tolist()) == chosen:
                return i
        return None

    # -- cuts --------------------------------------------------------------------

    def check_cut(self, cut):
        """Raises unless ``cut`` holds every leaf exactly once."""
        cut = [int(c) for c in cut]
        unknown = [c for c in cut if not 0 <= c < self.n_nodes]
        if unknown:
            raise ParamError(f"cut: no cluster {unknown[0]} in the tree",
                             "clusters")
        covered = {}
        for node in cut:
            for leaf in self.leaves_under(node):
                if leaf in covered:
                    raise ParamError(
                        f"cut: clusters {covered[leaf]} and {node} overlap "
                        "(one lies inside the other)", "clusters")
                covered[leaf] = node
        missing = set(self.layers[0].tolist()) - set(covered)
        if missing:
            raise ParamError(f"cut: {len(missing)} finest cluster(s) are in "
                             "no cluster of the cut", "clusters")
        return cut

    def node_map(self, cut):
        """Leaf -> its node in ``cut`` (an array indexed by node id; −1 for
        nodes that are not leaves)."""
        out = np.full(self.n_nodes, -1, dtype=np.int64)
        for node in cut:
            for leaf in self.leaves_under(node):
                out[leaf] = node
        return out

    def labels(self, leaf, cut):
        """Each point's node in ``cut`` (−1 stays −1)."""
        leaf = np.asarray(leaf, dtype=np.int64)
        lookup = self.node_map(cut)
        out = np.full(len(leaf), -1, dtype=np.int64)
        member = leaf >= 0
        out[member] = lookup[leaf[member]]
        return out

    def expand(self, cut, node):
        """``cut`` with ``node`` replaced by its children."""
        node = int(node)
        if node not in cut:
            raise ParamError(f"cluster {node} is not in the current cut",
                             "cluster")
        kids = self.children(node)
        if not kids:
            raise ParamError(f"cluster {node} has no finer clusters",
                             "cluster")
        return [c for c in cut if c != node] + kids

    def collapse(self, cut, nodes):
        """``(new cut, parent, absorbed)``: the nodes of ``cut`` under the
        lowest common ancestor of ``nodes`` replaced by that ancestor;
        ``absorbed`` lists the other nodes of the cut it took in."""
        nodes = [int(n) for n in nodes]
        outside = [n for n in nodes if n not in cut]
        if outside:
            raise ParamError(f"cluster {outside[0]} is not in the current "
                             "cut", "clusters")
        if len(nodes) < 2:
            parent = self.parent[nodes[0]] if nodes else -1
            if parent < 0:
                raise ParamError("give two clusters or more to collapse, or "
                                 "one that has a parent", "clusters")
            nodes = [nodes[0]]
            top = int(parent)
        else:
            top = self.lowest_common_ancestor(nodes)
            if top is None:
                raise ParamError(
                    "clusters " + ", ".join(map(str, nodes)) + " have no "
                    "common parent; group them instead", "clusters")
        under = set(self.leaves_under(top))
        inside = [c for c in cut if set(self.leaves_under(c)) <= under]
        absorbed = [c for c in inside if c not in nodes]
        return [c for c in cut if c not in inside] + [top], top, absorbed

    def coarser(self, cut):
        """The cut one layer coarser: the clusters that end at the finest
        layer of the cut are replaced by their parents (a whole layer gives
        the next coarser layer)."""
        cut = [int(c) for c in cut]
        lowest = min(self.last_layer[c] for c in cut)
        if all(self.parent[c] < 0 for c in cut if self.last_layer[c] ==
               lowest):
            raise ParamError("the cut is already the coarsest layer", "cut")
        raised = {int(self.parent[c]) if self.last_layer[c] == lowest and
                  self.parent[c] >= 0 else c for c in cut}
        return self._outermost(raised)

    def finer(self, cut):
        """The cut one layer finer: the clusters that begin at the coarsest
        layer of the cut are replaced by their children (a whole layer
        gives the next finer layer)."""
        cut = [int(c) for c in cut]
        highest = max(self.first_layer[c] for c in cut)
        if highest == 0:
            raise ParamError("the cut is already the finest layer", "cut")
        out = []
        for c in cut:
            kids = self.children(c) if self.first_layer[c] == highest \
                else []
            out.extend(kids or [c])
        return sorted(out)

    def _outermost(self, nodes):
        """``nodes`` less those that lie under another of them."""
        nodes = set(nodes)
        return sorted(n for n in nodes
                      if not any(a in nodes for a in self.ancestors(n)[1:]))

    # -- kept with a run -----------------------------------------------------------

    def to_json(self):
        return {"parent": self.parent.tolist(),
                "first_layer": self.first_layer.tolist(),
                "last_layer": self.last_layer.tolist(),
                "layers": [l.tolist() for l in self.layers],
                "size": self.size.tolist()}

    @classmethod
    def from_json(cls, data):
        return cls(data["parent"], data["first_layer"], data["last_layer"],
                   data["layers"], data["size"])


def _nest(labelings):
    """The layers with nesting enforced, bottom up: each fine cluster joins
    the coarse cluster that holds most of its points, and its points go
    with it. A fine cluster whose points are all noise in the coarser
    layer goes on alone there."""
    nested = [labelings[0].copy()]
    for coarse in labelings[1:]:
        fine = nested[-1]
        out = coarse.copy()
        clustered = fine >= 0
        if not clustered.any():
            nested.append(out)
            continue
        n_fine = int(fine.max()) + 1
        target = np.full(n_fine, -1, dtype=np.int64)
        both = clustered & (coarse >= 0)
        if both.any():
            pairs, counts = np.unique(
                np.stack([fine[both], coarse[both]]), axis=1,
                return_counts=True)
            # Most shared points first within each fine cluster.
            order = np.lexsort((-counts, pairs[0]))
            fine_ids, coarse_ids = pairs[0][order], pairs[1][order]
            first = np.ones(len(order), dtype=bool)
            first[1:] = fine_ids[1:] != fine_ids[:-1]
            target[fine_ids[first]] = coarse_ids[first]
        present = np.zeros(n_fine, dtype=bool)
        present[fine[clustered]] = True
        alone = np.flatnonzero(present & (target < 0))
        start = int(coarse.max()) + 1 if coarse.size and coarse.max() >= 0 \
            else 0
        target[alone] = start + np.arange(len(alone))
        out[clustered] = target[fine[clustered]]
        nested.append(out)
    return nested


def _number(nested):
    """Node ids for nested layers, and each point's leaf: in each layer,
    largest cluster first, a cluster with the same points as the one finer
    cluster it holds keeps that cluster's node."""
    parent, first, last, size = [], [], [], []
    layer_nodes = []
    below = None
    leaf = None
    for i, labels in enumerate(nested):
        valid = labels >= 0
        clusters, inverse, counts = np.unique(
            labels[valid], return_inverse=True, return_counts=True)
        kids = [[] for _ in clusters]
        if below is not None:
            pairs = np.unique(np.stack([inverse, below[valid]]), axis=1)
            for j, kid in zip(*pairs):
                if kid >= 0:
                    kids[j].append(int(kid))
        node_of = np.empty(len(clusters), dtype=np.int64)
        for j in np.lexsort((clusters, -counts)):
            if len(kids[j]) == 1 and size[kids[j][0]] == counts[j]:
                node = kids[j][0]
                last[node] = i
            else:
                node = len(parent)
                parent.append(-1)
                first.append(i)
                last.append(i)
                size.append(int(counts[j]))
                for kid in kids[j]:
                    parent[kid] = node
            node_of[j] = node
        layer_nodes.append(node_of[np.lexsort((clusters, -counts))])
        below = np.full(len(labels), -1, dtype=np.int64)
        below[valid] = node_of[inverse]
        if i == 0:
            leaf = below.copy()
    return Tree(parent, first, last, layer_nodes, size), leaf
