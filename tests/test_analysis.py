"""Uniqueness, near-duplicates and exact duplicates on real photographs with
planted copies, stored as runs on a real dataset."""

import os
import shutil

import numpy as np
import pytest

import fiftyone as fo

import image_clustering as ic
from planted import write_planted


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    return write_planted(str(folder))


@pytest.fixture
def dataset(planted):
    paths, _ = planted
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
    yield ds
    ds.delete()


def _by_path(ds):
    return dict(zip(ds.values("id"), ds.values("filepath")))


def _true_groups(truth, kinds=None):
    """Original -> the set of paths planted as its copies (and itself)."""
    groups = {}
    for path, original in truth.items():
        if path == original:
            continue
        kind = path.rsplit("__", 1)[1].split(".")[0]
        if kinds is None or kind in kinds:
            groups.setdefault(original, {original}).add(path)
    return groups


def test_every_planted_copy_is_found_with_no_false_group(dataset, planted):
    _, truth = planted
    run = ic.find_near_duplicates(dataset)

    path_of = _by_path(dataset)
    found = sorted(sorted(path_of[i] for i in ids)
                   for ids in run.groups().values())
    expected = sorted(sorted(g) for g in _true_groups(truth).values())
    assert found == expected
    # The threshold was calibrated on these photos, and says how.
    calibration = run.config["params"]["calibration"]
    assert calibration["calibrated"]
    assert run.threshold == pytest.approx(min(
        calibration["ceiling"],
        calibration["fraction"] * calibration["median_farthest_candidate"]))
    assert run.results["duplicates"] == sum(len(g) - 1 for g in expected)


def test_each_group_has_one_representative_at_distance_zero(dataset):
    run = ic.find_near_duplicates(dataset, key="dups")

    for g, ids in run.groups().items():
        members = dataset.select(ids)
        assert members.count_values("dups_rep") == {True: 1,
                                                    False: len(ids) - 1}
        rep = members.match(fo.ViewField("dups_rep") == True).first()  # noqa
        assert rep.dups_dist == 0.0 and rep.id == ids[0]
        others = members.match(fo.ViewField("dups_rep") == False)  # noqa
        assert all(0 <= d <= 0.10 for d in others.values("dups_dist"))
    ungrouped = dataset.exists("dups_group", False)
    assert ungrouped.count("dups_dist") == 0
    assert ungrouped.count("dups_rep") == 0


def test_the_largest_file_can_represent_its_group(dataset):
    run = ic.find_near_duplicates(dataset, representative="largest")

    for ids in run.groups().values():
        sizes = {os.path.getsize(p) for p in
                 dataset.select(ids).values("filepath")}
        rep = dataset[ids[0]]
        assert os.path.getsize(rep.filepath) == max(sizes)


def test_groups_view_is_dynamic_groups_representative_first(dataset):
    run = ic.find_near_duplicates(dataset)

    view = run.view()
    assert view._is_dynamic_groups
    assert len(view) == len(run.groups())
    for group in view.iter_dynamic_groups():
        assert group.first().near_dups_rep is True


def test_exact_duplicates_are_only_the_identical_files(dataset, planted):
    _, truth = planted
    run = ic.find_exact_duplicates(dataset)

    path_of = _by_path(dataset)
    found = sorted(sorted(path_of[i] for i in ids)
                   for ids in run.groups().values())
    expected = sorted(sorted(g) for g in
                      _true_groups(truth, {"exact"}).values())
    assert found == expected
    assert run.config["params"]["hash"] == "blake2b"
    assert set(dataset.exists("exact_dups_group").values(
        "exact_dups_dist")) == {0.0}


def test_exact_duplicates_hash_again_the_files_that_changed(dataset,
                                                            planted):
    import fiftyone.core.utils as fou

    paths, truth = planted
    ids, filepaths = dataset.values("id"), dataset.values("filepath")
    # FiftyOne's own hashes, right when they were taken.
    dataset.add_sample_field("filehash", fo.IntField)
    dataset.set_values("filehash", dict(zip(ids, [
        fou.compute_filehash(p) for p in filepaths])), key_field="id")
    first = ic.find_exact_duplicates(dataset, key="first")
    assert first.results["hashing"] == {"hashed": len(ids), "reused": 0}

    # Then one photo is overwritten with another's bytes.
    copied = {o for p, o in truth.items() if p != o}
    lone = [p for p, o in truth.items() if p == o and p not in copied]
    edited, source = lone[0], lone[1]
    saved = edited + ".orig"
    shutil.copyfile(edited, saved)
    try:
        shutil.copyfile(source, edited)
        run = ic.find_exact_duplicates(dataset, key="second")
        grouped = [sorted(dataset.select(g).values("filepath"))
                   for g in run.groups().values()]
    finally:
        shutil.move(saved, edited)

    assert sorted([edited, source]) in grouped
    # Only the edited file was read again.
    assert run.results["hashing"] == {"hashed": 1, "reused": len(ids) - 1}


def test_an_unreadable_file_is_reported_and_skipped(dataset, tmp_path):
    gone = str(tmp_path / "gone.png")
    dataset.add_sample(fo.Sample(filepath=gone))

    run = ic.find_exact_duplicates(dataset)

    assert run.results["skipped"]["count"] == 1
    assert "cannot read file" in run.results["skipped"]["samples"][0][
        "reason"]
    near = ic.find_near_duplicates(dataset)
    assert near.results["skipped"]["count"] == 1


def test_delete_needs_the_count_and_removes_only_non_representatives(
        dataset, planted):
    paths, _ = planted
    run = ic.find_near_duplicates(dataset)
    counts = run.counts()
    reps = set(run.representatives_view().values("id"))
    before = len(dataset)

    with pytest.raises(ic.ParamError, match=f"pass confirm="
                       f"{counts['duplicates']}"):
        run.delete_duplicates(confirm=counts["duplicates"] - 1)
    assert len(dataset) == before

    assert run.delete_duplicates(confirm=counts["duplicates"]) == \
        counts["duplicates"]
    assert len(dataset) == before - counts["duplicates"]
    assert reps <= set(dataset.values("id"))
    assert all(os.path.exists(p) for p in paths)
    assert run.counts() == {"groups": counts["groups"],
                            "in_groups": counts["groups"], "duplicates": 0}


def test_tagging_marks_all_but_the_representatives(dataset):
    run = ic.find_near_duplicates(dataset)

    n = run.tag_duplicates("dup")

    assert n == run.counts()["duplicates"]
    tagged = dataset.match_tags("dup")
    assert len(tagged) == n
    assert tagged.count_values("near_dups_rep") == {False: n}


def test_leaks_between_splits_are_reported_and_viewed(dataset):
    run = ic.find_near_duplicates(dataset)
    groups = list(run.groups().values())
    # One group split across train and test; the others all in train.
    dataset.select([i for ids in groups for i in ids]).tag_samples("train")
    dataset.select(groups[0][1:]).untag_samples("train")
    dataset.select(groups[0][1:]).tag_samples("test")

    leaks = run.leaks(splits=["train", "test"])

    assert len(leaks) == 1
    assert leaks.pairs == {"test/train": 1}
    assert set(leaks.ids("test")) == set(groups[0][1:])
    assert len(leaks.view()) == 1

    dataset.add_sample_field("split", fo.StringField)
    dataset.set_values("split", {i: "val" if i == groups[1][0] else "train"
                                 for i in dataset.values("id")},
                       key_field="id")
    by_field = run.leaks(split_field="split")
    assert set(by_field.groups) == {1}
    with pytest.raises(ic.ParamError, match="split_field 'nope'"):
        run.leaks(split_field="nope")


def test_uniqueness_ranks_a_planted_outlier_first(tmp_path):
    from PIL import Image

    import skimage.data as data

    base = Image.fromarray(data.camera())
    rng = np.random.default_rng(0)
    paths = []
    for i in range(30):
        arr = np.asarray(base, dtype=np.float64) + rng.normal(0, 6, (512,
                                                                     512))
        path = str(tmp_path / f"camera{i}.png")
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    outlier = str(tmp_path / "outlier.png")
    Image.fromarray(data.moon()).save(outlier)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in paths + [outlier]],
                   progress=False)
    try:
        run = ic.compute_uniqueness(ds)

        assert run.most_unique(1).first().filepath == outlier
        assert run.most_unique(1).first().uniqueness_score == 1.0
        assert ds.bounds("uniqueness_score")[0] >= 0.0
        assert run.least_unique(1).first().filepath != outlier
    finally:
        ds.delete()


def test_uniqueness_sorts_like_fiftyone_brain_on_the_same_embeddings(
        dataset):
    import fiftyone.brain as fob
    from scipy.stats import spearmanr

    ic.compute_uniqueness(dataset, key="ours")
    fob.compute_uniqueness(dataset, embeddings="pixels64_embedding",
                           uniqueness_field="brain_uniqueness",
                           progress=False)

    # Brain leaves each sample's nearest neighbour out (see
    # analysis/uniqueness.py), which only the planted copies feel.
    ours = np.array(dataset.values("ours_score"))
    brain = np.array(dataset.values("brain_uniqueness"))
    assert spearmanr(ours, brain).statistic > 0.95


def test_duplicates_of_objects_are_written_on_the_objects(tmp_path):
    from PIL import Image

    import skimage.data as data

    # Each image holds the same astronaut crop twice and one other box.
    paths = []
    for i in range(3):
        canvas = Image.new("RGB", (600, 300), (20 * i, 0, 0))
        face = Image.fromarray(data.astronaut()).crop((150, 30, 330, 210))
        canvas.paste(face, (10, 10))
        canvas.paste(Image.fromarray(data.coffee()).resize((180, 180)),
                     (400, 100))
        path = str(tmp_path / f"scene{i}.png")
        canvas.save(path)
        paths.append(path)
    ds = fo.Dataset()
    for i, path in enumerate(paths):
        boxes = [fo.Detection(label="face", bounding_box=[10 / 600, 10 / 300,
                                                          180 / 600, 0.6]),
                 fo.Detection(label="cup", bounding_box=[400 / 600, 100 / 300,
                                                         0.3, 0.6])]
        if i == 0:
            boxes.append(fo.Detection(label="sky", bounding_box=[
                0.4, 0.0, 0.1, 0.2]))
        ds.add_sample(fo.Sample(filepath=path,
                                ground_truth=fo.Detections(detections=boxes)))
    try:
        run = ic.find_near_duplicates(ds, patches_field="ground_truth")

        groups = run.groups()
        assert len(groups) == 2
        labels = {d.id: d.label for s in ds for d in s.ground_truth.detections}
        assert sorted(sorted(labels[i] for i in ids)
                      for ids in groups.values()) == [["cup"] * 3,
                                                      ["face"] * 3]
        assert ds.count("ground_truth.detections.near_dups_group") == 6
        assert len(run.view()) == 2
        assert run.delete_duplicates(confirm=4) == 4
        assert ds.count("ground_truth.detections") == 3
    finally:
        ds.delete()


def test_a_bad_parameter_is_refused_by_name_before_any_work(dataset):
    with pytest.raises(ic.ParamError, match="threshold"):
        ic.find_near_duplicates(dataset, threshold=-1)
    with pytest.raises(ic.ParamError, match="representative"):
        ic.find_near_duplicates(dataset, representative="median")
    with pytest.raises(ic.ParamError, match="run key"):
        ic.compute_uniqueness(dataset, key="")
    assert dataset.get_field("pixels8_embedding") is None
    assert ic.list_analyses(dataset) == {}


def test_runs_of_other_kinds_are_never_overwritten(dataset):
    ic.find_exact_duplicates(dataset, key="mine")

    with pytest.raises(ic.ParamError, match="already exists"):
        ic.find_exact_duplicates(dataset, key="mine")
    with pytest.raises(ic.ParamError, match="not a run of this kind"):
        ic.compute_uniqueness(dataset, key="mine", overwrite=True)
    ic.find_exact_duplicates(dataset, key="mine", overwrite=True)
    assert ic.list_analyses(dataset) == {"mine": "duplicates"}


def test_deleting_a_run_removes_only_its_fields(dataset):
    ic.find_near_duplicates(dataset, key="a")
    ic.compute_uniqueness(dataset, key="u")

    ic.delete_analysis(dataset, "a")

    assert dataset.get_field("a_group") is None
    assert dataset.get_field("u_score") is not None
    assert ic.list_analyses(dataset) == {"u": "uniqueness"}
    # The cached vectors stay for the next run.
    assert dataset.get_field("pixels32_embedding") is not None


def test_an_edited_file_gets_a_new_vector_before_grouping(dataset, planted):
    ic.find_near_duplicates(dataset, key="before")
    paths, truth = planted
    copy = next(p for p in paths if p.endswith("__colour.png"))
    saved = copy + ".orig"
    shutil.copyfile(copy, saved)
    try:
        from PIL import Image

        noise = np.random.default_rng(1).integers(0, 255, (64, 64, 3))
        Image.fromarray(noise.astype(np.uint8)).save(copy)
        os.utime(copy, ns=(1, 1))
        run = ic.find_near_duplicates(dataset, key="after")
        grouped = {dataset[i].filepath for ids in run.groups().values()
                   for i in ids}
        assert copy not in grouped
        assert run.results["embedding"]["computed"] == 1
    finally:
        shutil.move(saved, copy)
