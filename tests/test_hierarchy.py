"""A hierarchy run on scikit-learn's handwritten digits written as real
images: nested layers from one fit, a cut that moves, merge suggestions,
names per level, new images placed at every layer, and decisions carried
onto a re-run."""

import collections

import fiftyone as fo
import numpy as np
import pytest

import image_clustering as ic
from image_clustering.cli.folders import find_images, write_digits

from openai_server import FakeOpenAI

HIER = dict(embedder={"name": "pixels", "size": 8}, reducer="pca",
            method="hierarchy", map="none", gt_field="ground_truth")


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    write_digits(str(folder), upscale=1)
    return find_images(str(folder))


@pytest.fixture
def digits(digit_files, make_dataset):
    ds = make_dataset([(p, label) for p, label in digit_files])
    return ds, ic.compute_clusters(ds, "h", **HIER)


def _majority(ds, key, cluster_field):
    clusters, truth = ds.values([cluster_field, "ground_truth.label"])
    votes = collections.defaultdict(collections.Counter)
    for c, t in zip(clusters, truth):
        votes[c][t] += 1
    return {c: v.most_common(1)[0][0] for c, v in votes.items()}


def test_one_fit_gives_nested_layers_and_a_default_cut(digits):
    ds, run = digits
    counts = [layer["n_clusters"] for layer in run.layers]
    assert counts == sorted(counts, reverse=True) and len(counts) >= 4
    block = run.results["hierarchy"]
    default = block["default_layer"]
    assert sorted(run.cut) == list(range(counts[default]))
    assert "HDBSCAN finds" in block["rule"]["rule"]
    # Every layer is a field, and finer layers nest in coarser ones.
    layers = [ds.values(f"h_layer{i}") for i in range(len(counts))]
    for fine, coarse in zip(layers, layers[1:]):
        parent = {}
        for f, c in zip(fine, coarse):
            assert parent.setdefault(f, c) == c
    assert ds.values("h_cluster") == layers[default]
    # Ids of the cut are by size, as a flat run's.
    sizes = [c["size"] for c in run.clusters]
    assert sizes == sorted(sizes, reverse=True)
    assert [c["id"] for c in run.clusters] == list(range(len(sizes)))
    assert run.results["external"]["ari"] > 0.5


def test_moving_the_cut_rewrites_the_fields_and_names_stay_on_their_nodes(
        digits):
    ds, run = digits
    named = run.cut[0]
    run = run.name(named, "first")
    finest = run.set_cut(layer=0)
    assert ds.values("h_cluster") == ds.values("h_layer0")
    assert finest.metrics["n_clusters"] == finest.layers[0]["n_clusters"]
    assert finest.name_of(named) == "first"
    assert "first" not in ds.distinct("h_label")
    back = finest.set_cut(layer=run.results["hierarchy"]["default_layer"])
    assert ds.count_values("h_label")["first"] == back.node(named)["size"]

    children = back.tree.children(named)
    expanded = back.expand(named)
    assert set(expanded.cut) == set(back.cut) - {named} | set(children)
    members = ds.match(fo.ViewField("h_cluster").is_in(children))
    assert len(members) == back.node(named)["size"]
    collapsed = expanded.collapse(children)
    assert sorted(collapsed.cut) == sorted(back.cut)
    assert ds.count_values("h_label")["first"] == back.node(named)["size"]

    coarser = collapsed.coarser()
    assert len(coarser.cut) < len(collapsed.cut)
    assert len(coarser.finer().cut) > len(coarser.cut)


def test_a_bad_cut_is_refused_by_name_and_changes_nothing(digits):
    ds, run = digits
    before = ds.values("h_cluster")
    with pytest.raises(ic.ParamError) as e:
        run.set_cut(layer=99)
    assert e.value.param == "layer"
    with pytest.raises(ic.ParamError) as e:
        run.set_cut(clusters=run.cut[1:])
    assert e.value.param == "clusters"
    with pytest.raises(ic.ParamError) as e:
        run.expand(run.tree.layers[0][0])
    assert ds.values("h_cluster") == before


def test_a_flat_run_has_one_layer_and_refuses_cut_moves(digits):
    ds, _ = digits
    flat = ic.compute_clusters(ds, "k", embedder={"name": "pixels",
                                                   "size": 8},
                               reducer="pca", method="kmeans", n_clusters=10,
                               map="none")
    assert len(flat.layers) == 1
    with pytest.raises(ic.ParamError) as e:
        flat.coarser()
    assert e.value.param == "run_key"


def test_merge_suggestions_on_the_finest_layer_join_one_digit(digits):
    ds, run = digits
    finest = run.set_cut(layer=0)
    suggestions = finest.suggest_merges(n=10)
    assert len(suggestions) == 10
    majority = _majority(ds, "h", "h_cluster")
    same = [len({majority[c] for c in s["clusters"]}) == 1
            for s in suggestions]
    # Measured: 10 of 10 (see the README); at least 8 must hold.
    assert sum(same) >= 8, suggestions
    assert all(s["reason"] and 0 <= s["score"] <= 1 for s in suggestions)
    assert all(len(s["images"][str(c)]) == 4 for s in suggestions
               for c in s["clusters"])

    first = suggestions[0]["clusters"]
    rejected = finest.reject_merge(first)
    assert first not in [s["clusters"] for s in
                         rejected.suggest_merges(n=50)]
    assert ic.load_run(ds, "h").results["rejected_merges"] == [first]

    accepted = rejected.accept_merge(suggestions[1]["clusters"])
    joined = suggestions[1]["clusters"]
    if set(joined) & set(accepted.cut):
        group = accepted.group_of(joined[0])
        assert group and accepted.group_of(joined[1]) == group
    else:
        assert len(accepted.cut) == len(finest.cut) - 1


def test_new_images_are_placed_at_every_layer_and_misfits_are_marked(
        digits, tmp_path):
    from PIL import Image

    ds, run = digits
    originals = ds.limit(5)
    copies = []
    for i, sample in enumerate(originals):
        path = tmp_path / f"copy{i}.png"
        Image.open(sample.filepath).save(path)
        copies.append(fo.Sample(filepath=str(path)))
    stripes = np.tile(np.array([0, 255] * 4, dtype=np.uint8), (8, 1))
    Image.fromarray(stripes.T * 0 + 255).save(tmp_path / "white.png")
    odd = fo.Sample(filepath=str(tmp_path / "white.png"))
    new_ids = ds.add_samples(copies + [odd], progress=False)

    updated = run.assign(ds)

    n_layers = len(run.layers)
    for original, new_id in zip(originals, new_ids):
        placed = ds[new_id]
        for i in range(n_layers):
            assert placed[f"h_layer{i}"] == original[f"h_layer{i}"]
        assert placed["h_cluster"] == original["h_cluster"]
        assert placed["h_misfit"] is False
    white = ds[new_ids[-1]]
    assert white["h_misfit"] is True and white["h_cluster"] == -1
    assert updated.results["assigned"]["last"]["misfits"] == 1
    # Placed samples move with the cut.
    finest = updated.set_cut(layer=0)
    assert ds[new_ids[0]]["h_cluster"] == ds[new_ids[0]]["h_layer0"]
    assert finest.metrics["n_samples"] == len(ds) - len(new_ids)


def test_decisions_survive_an_overwrite_and_carry_to_another_run(digits):
    ds, run = digits
    majority = _majority(ds, "h", "h_cluster")
    for c in run.cut[:3]:
        run = run.name(c, f"digit {majority[c]}")
    run = run.group({"pair": run.cut[3:5]})
    run = run.reject_merge(run.suggest_merges(n=1)[0]["clusters"])

    again = ic.compute_clusters(ds, "h", **{**HIER, "seed": 7},
                                overwrite=True)
    report = again.results["carried"]
    assert report["from"] == "h"
    assert len(report["carried"]) + len(report["split"]) + \
        len(report["merged"]) + len(report["dropped"]) >= 3
    assert report["lines"][0].startswith("from run 'h':")
    carried = {c["name"]: c["to"] for c in report["carried"]}
    for name, node in carried.items():
        assert again.name_of(node) == name
        label = name.split()[-1]
        members = ds.match(fo.ViewField("h_label") == name)
        truth = members.values("ground_truth.label")
        assert truth.count(label) > len(truth) / 2
    if again.rejected_merges if hasattr(again, "rejected_merges") else None:
        pass
    assert "pair" in again.groups or any(
        d["name"] is None for d in report["dropped"])

    flat = ic.compute_clusters(ds, "k", embedder={"name": "pixels",
                                                   "size": 8},
                               reducer="pca", method="kmeans", n_clusters=10,
                               map="none")
    report = ic.carry_over(ds, "h", "k")
    assert report["lines"][0].startswith("from run 'h':")
    for c in report["carried"]:
        assert ic.load_run(ds, "k").name_of(c["to"]) == c["name"]
    with pytest.raises(ic.ParamError) as e:
        ic.compute_clusters(ds, "z", **HIER, carry_from="nope")
    assert e.value.param == "carry_from"


def test_parents_are_named_after_their_children(digits):
    ds, run = digits
    parent = next(int(run.tree.parent[c]) for c in run.cut
                  if run.tree.parent[c] >= 0)
    children = run.tree.children(parent)

    def by_digit(request):
        if "joins smaller groups" in request.text:
            return '{"name": "round digits", "description": "d"}'
        return '{"name": "a digit %d", "description": "d"}' % len(
            request.text)

    server = FakeOpenAI(by_digit)
    try:
        first = ic.label_clusters(ds, "h", namer="openai",
                                  base_url=server.url, api_key="k",
                                  clusters=children + [parent],
                                  per_cluster=2, tell_apart=False)
    finally:
        server.close()
    assert sorted(first["named"]) == sorted(children + [parent])
    last = server.requests[-1]
    assert "joins smaller groups named" in last.text
    for c in children:
        assert first["run"].name_of(c) in last.text
    assert first["run"].name_of(parent) == "round digits"

    layer = ic.estimate_labelling(ds, "h", namer="openai", base_url="x",
                                  layer=0, per_cluster=1)
    assert layer["requests"] == run.layers[0]["n_clusters"] - len(
        [c for c in children if c in run.layers[0]["nodes"]])


def test_a_noise_budget_is_met_by_the_hierarchy(digit_files, make_dataset):
    ds = make_dataset([(p, label) for p, label in digit_files[:300]])
    run = ic.compute_clusters(ds, "h", **HIER, max_noise=0.1)
    assert run.metrics["n_noise"] == 0
    assert -1 not in ds.distinct("h_cluster")
    with pytest.raises(ic.ParamError) as e:
        ic.compute_clusters(ds, "x", **HIER, noise="assign")
    assert e.value.param == "noise"


def test_misfits_become_new_clusters_of_the_run(digits, tmp_path):
    from PIL import Image

    ds, run = digits
    rng = np.random.default_rng(0)

    def odd(name, value):
        pixels = np.clip(value + rng.normal(0, 4, (8, 8)), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / name)
        return fo.Sample(filepath=str(tmp_path / name))

    # Two kinds the digits have none of: white, and mid grey.
    new_ids = ds.add_samples([odd(f"w{i}.png", 250) for i in range(5)]
                             + [odd(f"g{i}.png", 128) for i in range(5)],
                             progress=False)
    run = run.assign(ds)
    assert ds.select(new_ids).values("h_misfit") == [True] * 10

    with pytest.raises(ic.ParamError) as e:
        run.cluster_misfits(n_clusters=11)
    assert e.value.param == "n_clusters"
    updated, made = run.cluster_misfits()
    assert len(made) == 2 and set(made) <= set(updated.cut)
    clusters = ds.select(new_ids).values("h_cluster")
    assert set(clusters) == set(made)
    assert clusters[:5] == [clusters[0]] * 5 != clusters[5:]
    assert ds.select(new_ids).values("h_misfit") == [False] * 10
    for i in range(len(updated.layers)):
        assert ds.select(new_ids).values(f"h_layer{i}") == clusters
    assert {c["id"]: c["size"] for c in updated.clusters}[made[0]] == 5
    # The new clusters are nodes like the others: named, and kept by cut
    # moves.
    updated = updated.name(made[0], "blank")
    finest = updated.set_cut(layer=0)
    assert set(made) <= set(finest.cut)
    assert ds.count_values("h_label")["blank"] == 5
    # A later image like them is placed into them, not left out.
    (late,) = ds.add_samples([odd("w_late.png", 250)], progress=False)
    finest.assign(ds)
    assert ds[late]["h_misfit"] is False
    assert ds[late]["h_cluster"] == clusters[0]
