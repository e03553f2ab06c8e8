"""The tree of nested clusters, its cuts and merge suggestions, on plain
arrays (no FiftyOne)."""

import numpy as np
import pytest

from image_clustering.algorithms.hierarchy import HierarchyClusterer
from image_clustering.algorithms.merges import suggest
from image_clustering.algorithms.tree import Tree
from image_clustering.units import ParamError

# Eight points: four finest clusters, two middle ones, one root.
FINE = np.array([0, 0, 1, 1, 2, 2, 3, 3])
MIDDLE = np.array([0, 0, 0, 0, 1, 1, 1, 1])
TOP = np.zeros(8, dtype=int)


def _tree():
    return Tree.from_layers([FINE, MIDDLE, TOP])


def test_layers_nest_and_every_point_has_its_leaf():
    tree, leaf = _tree()
    assert [len(l) for l in tree.layers] == [4, 2, 1]
    (root,) = tree.layers[2]
    for node in tree.layers[1]:
        assert tree.parent[node] == root
        assert len(tree.children(node)) == 2
    for point, node in enumerate(leaf):
        assert node in tree.layers[0]
        # Points of one finest cluster share a leaf.
        assert leaf[point] == leaf[point ^ 1]
    assert tree.size[root] == 8


def test_a_fine_cluster_split_across_coarse_ones_joins_the_larger_share():
    fine = np.array([0, 0, 0, 1, 1])
    coarse = np.array([5, 5, 7, 7, 7])
    tree, leaf = Tree.from_layers([fine, coarse])
    # Cluster 0 has two points in 5 and one in 7: all three go with 5.
    labels = tree.labels(leaf, tree.layers[1])
    assert labels[0] == labels[1] == labels[2] != labels[3] == labels[4]


def test_renumbering_gives_the_chosen_cut_the_first_ids():
    tree, leaf = _tree()
    renamed, new_id = tree.renumbered(tree.layers[1])
    assert sorted(renamed.layers[1].tolist()) == [0, 1]
    new_leaf = new_id[leaf]
    before = tree.labels(leaf, tree.layers[0])
    after = renamed.labels(new_leaf, renamed.layers[0])
    # The same partition under new names.
    assert len(set(zip(before, after))) == len(set(before))


def test_expand_collapse_coarser_and_finer_move_between_layers():
    tree, leaf = _tree()
    middle = tree.layers[1].tolist()
    expanded = tree.expand(middle, middle[0])
    assert len(expanded) == 3
    collapsed, top, absorbed = tree.collapse(expanded,
                                             tree.children(middle[0]))
    assert sorted(collapsed) == sorted(middle) and top == middle[0]
    assert absorbed == []
    assert sorted(tree.coarser(middle)) == tree.layers[2].tolist()
    assert sorted(tree.finer(middle)) == sorted(tree.layers[0].tolist())
    with pytest.raises(ParamError, match="coarsest"):
        tree.coarser(tree.layers[2].tolist())
    with pytest.raises(ParamError, match="finest"):
        tree.finer(tree.layers[0].tolist())


def test_a_cut_must_hold_every_leaf_once():
    tree, _ = _tree()
    middle = tree.layers[1].tolist()
    leaves = tree.children(middle[0])
    with pytest.raises(ParamError, match="overlap"):
        tree.check_cut(middle + leaves[:1])
    with pytest.raises(ParamError, match="in no cluster"):
        tree.check_cut(middle[:1])
    assert tree.check_cut(leaves + middle[1:]) == leaves + middle[1:]


def test_the_tree_survives_json():
    tree, _ = _tree()
    again = Tree.from_json(tree.to_json())
    assert again.to_json() == tree.to_json()


def test_merges_suggest_the_pair_whose_points_mix_and_never_a_rejected_one():
    rng = np.random.default_rng(0)
    # Clusters 0 and 1 are halves of one blob; 2 is far away.
    blob = rng.normal(0, 1, (80, 2))
    far = rng.normal(20, 1, (40, 2))
    X = np.vstack([blob, far])
    labels = np.array([0 if x < 0 else 1 for x in blob[:, 0]] + [2] * 40)
    centres = [X[labels == c].mean(0) for c in range(3)]
    spreads = [float(np.linalg.norm(X[labels == c] - centres[c],
                                    axis=1).mean()) for c in range(3)]
    parent = {0: 5, 1: 5, 2: 6}
    out = suggest([0, 1, 2], centres, spreads, parent, X, labels, n=3)
    assert out[0]["clusters"] == [0, 1]
    assert "siblings" in out[0]["reason"]
    assert all(s["score"] >= t["score"] for s, t in zip(out, out[1:]))
    again = suggest([0, 1, 2], centres, spreads, parent, X, labels, n=3,
                    rejected={frozenset((0, 1))})
    assert [0, 1] not in [s["clusters"] for s in again]


def test_the_default_cut_takes_as_many_clusters_as_hdbscan_finds():
    # 60 tight, well-apart groups: more than a silhouette scan up to 40
    # clusters could reach.
    rng = np.random.default_rng(0)
    centres = rng.uniform(-1000, 1000, size=(60, 2))
    X = np.concatenate([c + rng.normal(size=(40, 2)) for c in centres])
    fitted = HierarchyClusterer().fit(X)
    rule = fitted.cut_rule_
    assert rule["hdbscan_clusters"] == 60
    assert rule["layers"][fitted.default_layer_] == 60
    given = HierarchyClusterer(cut=7).fit(X)
    assert given.cut_rule_["rule"] == "given"
    assert given.cut_rule_["layers"][given.default_layer_] == 7
