"""Naming clusters through a real OpenAI-compatible server on 127.0.0.1 and
with a tiny CLIP; curation (tags, groups) and export on a real dataset."""

import csv
import json
import os

import numpy as np
import pytest

import image_clustering as ic
from image_clustering.curation import export, groups, tags
from image_clustering.labeling import naming as labeling
from image_clustering.labeling.namers import parse_reply

import tiny_models
from conftest import write_gray
from openai_server import FakeOpenAI, brightness_name, error

KEY = "sk-test-DO-NOT-STORE-4242"
KMEANS3 = dict(embedder={"name": "pixels", "size": 8}, reducer="none",
               method="kmeans", n_clusters=3, map="pca")


@pytest.fixture
def levels(tmp_path, make_dataset):
    """Three grey levels, 12 large images each (so downscaling shows)."""
    items = []
    for level, value in enumerate((20, 128, 235)):
        for i in range(12):
            items.append((str(write_gray(tmp_path / f"l{level}_{i}.png",
                                         value, size=700, noise=8,
                                         seed=10 * level + i)),
                          f"level{level}"))
    ds = make_dataset(items)
    ic.compute_clusters(ds, "k", **KMEANS3)
    return ds


@pytest.fixture
def server():
    s = FakeOpenAI()
    yield s
    s.close()


def _label(ds, server, **kwargs):
    options = {"model": "vision-test", "max_retries": 1, "timeout": 10.0,
               **kwargs}
    return ic.label_clusters(ds, "k", namer="openai", base_url=server.url,
                             api_key=KEY, **options)


def test_clusters_are_named_from_representative_images(levels, server):
    out = _label(levels, server, per_cluster=4, tell_apart=False)
    assert sorted(out["named"]) == [0, 1, 2] and out["failed"] == {}
    assert len(server.requests) == 3
    for request in server.requests:
        assert request.model == "vision-test"
        assert "short name" in request.text
        assert len(request.images) == 4
        assert all(max(im.size) <= 512 for im in request.images)
        assert all(f.startswith("data:image/jpeg;base64")
                   for f in request.formats)
    run = out["run"]
    names = run.results["names"]
    assert {names[str(c)]["name"] for c in range(3)} == {
        "dark images", "bright images"}
    # the representatives: two nearest the centre, two spread
    assert all(len(names[str(c)]["images"]) == 4 for c in range(3))
    # every member carries its cluster's name; ids are unchanged
    for cluster, label in zip(*levels.values(["k_cluster", "k_label"])):
        assert label == names[str(cluster)]["name"]
    assert sorted(set(levels.values("k_cluster"))) == [0, 1, 2]


def test_later_requests_carry_the_names_of_neighbouring_clusters(levels,
                                                                 server):
    _label(levels, server, clusters=[0])
    _label(levels, server, clusters=[1, 2], concurrency=1)
    assert "Nearby groups are already named" in server.requests[-1].text


def test_siblings_named_alike_are_asked_again_together(levels, server):
    out = _label(levels, server, per_cluster=4)
    # Grey 128 and grey 235 both came back "bright images".
    assert len(server.requests) == 4 and out["requests"] == 4
    again = server.requests[-1]
    assert "nearly the same name" in again.text
    assert [len(g) for g in again.groups] == [4, 4]
    (told,) = out["told_apart"]
    names = {c: out["run"].name_of(c) for c in range(3)}
    assert len(set(names.values())) == 3
    assert all(names[c].startswith("bright images, grey") for c in told)
    assert {levels.count_values("k_label")[n] for n in names.values()} == {
        12}


def test_telling_siblings_apart_stays_within_the_request_limit(levels,
                                                               server):
    estimate = ic.estimate_labelling(levels, "k", namer="openai",
                                     base_url=server.url, api_key=KEY)
    # Three siblings can hold one set named alike.
    assert estimate["requests"] == 3 and estimate["tell_apart"] == 1
    capped = ic.estimate_labelling(levels, "k", namer="openai",
                                   base_url=server.url, api_key=KEY,
                                   max_requests=3)
    assert capped["tell_apart"] == 0

    out = _label(levels, server, per_cluster=4, max_requests=3)
    assert len(server.requests) == 3 and out["requests"] == 3
    assert out["told_apart"] == []
    ((alike, reason),) = out["alike"].items()
    assert "not asked again" in reason and "request or image limit" in reason
    assert out["images"] == 12


def test_siblings_that_cannot_be_told_apart_keep_their_names(levels):
    def same_name(request):
        return json.dumps({"name": "grey squares"})

    s = FakeOpenAI(same_name)
    try:
        out = _label(levels, s)
    finally:
        s.close()
    assert out["failed"] == {} and out["told_apart"] == []
    assert list(out["alike"]) == ["0, 1, 2"]
    assert "does not name the 3 groups" in out["alike"]["0, 1, 2"]
    assert {out["run"].name_of(c) for c in range(3)} == {"grey squares"}


def test_a_rerun_with_nothing_changed_sends_nothing(levels, server):
    _label(levels, server)
    again = _label(levels, server)
    assert len(server.requests) == 4
    assert again["named"] == [] and sorted(again["cached"]) == [0, 1, 2]
    other_model = _label(levels, server, model="another-model")
    assert len(other_model["named"]) == 3 and len(server.requests) == 8


def test_rate_limits_are_retried_honouring_retry_after(levels):
    def answer(request, n):
        if n == 1:
            return error(429, "slow down", {"Retry-After": "1"})
        return brightness_name(request)

    s = FakeOpenAI(answer)
    try:
        out = _label(levels, s, clusters=[0], max_retries=2)
    finally:
        s.close()
    assert out["named"] == [0] and len(s.requests) == 2


def test_one_failing_cluster_is_reported_and_the_others_kept(levels):
    def answer(request):
        if request.brightness > 200:
            return error(500, "the model crashed")
        return brightness_name(request)

    s = FakeOpenAI(answer)
    try:
        out = _label(levels, s, max_retries=1)
    finally:
        s.close()
    bright = [c for c, reason in out["failed"].items()]
    assert len(bright) == 1 and "500" in out["failed"][bright[0]]
    assert len(out["named"]) == 2
    names = out["run"].results["names"]
    assert str(bright[0]) not in names and len(names) == 2


def test_a_timeout_is_reported(levels, server):
    # The server holds the request until the client has given up.
    server.hold()
    try:
        out = _label(levels, server, clusters=[0], timeout=1.0,
                     max_retries=0)
    finally:
        server.release()
    assert out["named"] == [] and "Timeout" in out["failed"][0]
    assert len(server.requests) == 1


@pytest.mark.parametrize("reply,name,description", [
    ('{"name": "Dark scans", "description": "Dark."}', "Dark scans",
     "Dark."),
    ('Sure! ```json\n{"name": "Cats", "description": "Cats."}\n```', "Cats",
     "Cats."),
    ("Name: Night streets\nDescription: Streets at night.", "Night streets",
     "Streets at night."),
    ("Red cars\nMostly red cars parked.", "Red cars",
     "Mostly red cars parked."),
    ("**Name:** Foggy hills", "Foggy hills", ""),
])
def test_replies_that_are_not_clean_json_are_still_parsed(reply, name,
                                                          description):
    assert parse_reply(reply) == {"name": name, "description": description}


@pytest.mark.parametrize("reply", [
    "I'm sorry, I can't identify the people in these images.",
    "These images all seem to show a dark, mostly empty scene.",
    "Unfortunately no",
    "",
])
def test_a_reply_that_gives_no_name_is_refused_with_the_reply(reply):
    with pytest.raises(ValueError, match="reply") as e:
        parse_reply(reply)
    assert reply[:20] in str(e.value)


def test_a_cluster_whose_reply_is_prose_fails_and_keeps_no_name(levels):
    s = FakeOpenAI(lambda r: "I'm sorry, but I can't help with that.")
    try:
        out = _label(levels, s, clusters=[1])
    finally:
        s.close()
    assert out["named"] == [] and "gives no name" in out["failed"][1]
    assert "1" not in (out["run"].results.get("names") or {})


def test_a_reply_that_is_not_json_names_the_cluster(levels):
    s = FakeOpenAI(lambda r: "Name: Grey things\nDescription: Grey.")
    try:
        out = _label(levels, s, clusters=[1])
    finally:
        s.close()
    assert out["run"].results["names"]["1"]["name"] == "Grey things"


def test_the_api_key_is_stored_nowhere(levels, server, caplog):
    import gridfs
    from bson import json_util
    from fiftyone.core.odm import get_db_conn

    caplog.set_level("DEBUG")
    _label(levels, server)
    db = get_db_conn()
    haystack = [json_util.dumps(levels._doc.to_dict())]
    for doc in db.runs.find({"_dataset_id": levels._doc.id}):
        haystack.append(json_util.dumps(doc))
        if doc.get("results"):
            haystack.append(gridfs.GridFS(db).get(doc["results"]).read()
                            .decode())
    for doc in db[levels._sample_collection_name].find():
        haystack.append(json_util.dumps(doc))
    haystack.append(json_util.dumps(list(db.image_clustering_leases.find())))
    haystack.append(caplog.text)
    assert not any(KEY in text for text in haystack)
    headers = {k.lower(): v for k, v in server.requests[0].headers.items()}
    assert headers["authorization"] == f"Bearer {KEY}"


def test_limits_are_checked_and_estimated_before_anything_is_sent(levels,
                                                                  server):
    est = ic.estimate_labelling(levels, "k", namer="openai",
                                base_url=server.url, per_cluster=5)
    assert est == {"requests": 3, "images": 15, "cached": 0,
                   "tell_apart": 1}
    with pytest.raises(ic.ParamError, match="max_requests"):
        _label(levels, server, max_requests=2)
    with pytest.raises(ic.ParamError, match="max_images"):
        _label(levels, server, per_cluster=5, max_images=10)
    assert server.requests == []


def test_without_a_key_or_server_the_error_says_how(levels, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ic.ParamError, match="OPENAI_API_KEY"):
        ic.label_clusters(levels, "k", namer="openai")


def test_zero_shot_names_come_from_the_vocabulary(levels, tmp_path):
    vocabulary = ["dark", "bright", "circle", "square", "noise"]
    model = tiny_models.clip(tmp_path / "clip")
    tiny_models.add_word_tokenizer(model, vocabulary +
                                   ["a", "photo", "of"])
    out = ic.label_clusters(levels, "k", namer="zero_shot", model=model,
                            vocabulary=",".join(vocabulary), top=2)
    names = out["run"].results["names"]
    assert sorted(out["named"]) == [0, 1, 2]
    for entry in names.values():
        assert entry["name"] in vocabulary
        assert len(entry["concepts"]) == 2
        assert all(0 <= c["score"] <= 1 for c in entry["concepts"])
        assert entry["concepts"][0]["concept"] == entry["name"]


def test_zero_shot_tells_siblings_apart_by_what_is_particular_to_each(
        levels, tmp_path):
    from image_clustering.labeling.namers import get_namer

    vocabulary = ["dark", "bright", "circle", "square", "noise"]
    model = tiny_models.clip(tmp_path / "clip")
    tiny_models.add_word_tokenizer(model, vocabulary +
                                   ["a", "photo", "of"])
    namer = get_namer("zero_shot", model=model,
                      vocabulary=",".join(vocabulary), top=2)
    images = labeling.choose_images(ic.load_run(levels, "k"), 4, {0, 1, 2})
    groups = [[p for _, p in images[c]] for c in (0, 1, 2)]
    answers = namer.tell_apart(groups, ["same"] * 3)
    names = [a["name"] for a in answers]
    assert len(set(names)) >= 2 and set(names) <= set(vocabulary)
    # Any two groups told apart get different concepts: what is most
    # particular to one cannot be most particular to the other.
    pair = namer.tell_apart(groups[:2], ["same"] * 2)
    assert pair[0]["name"] != pair[1]["name"]
    # The scores shown are each group's own.
    own = namer.name_cluster(groups[0])
    shown = {c["concept"]: c["score"] for c in own["concepts"]}
    for c in pair[0]["concepts"]:
        if c["concept"] in shown:
            assert c["score"] == shown[c["concept"]]


def test_a_cluster_can_be_named_by_hand(levels):
    run = ic.name_cluster(levels, "k", 0, "My cluster", "By hand.")
    assert run.results["names"]["0"]["name"] == "My cluster"
    labels = dict(zip(*levels.values(["k_cluster", "k_label"])))
    assert labels[0] == "My cluster"


def test_tag_whole_clusters_and_the_clusters_of_selected_samples(levels):
    n = ic.tag_clusters(levels, "k", [0, 2], ["check"])
    sizes = {c["id"]: c["size"] for c in ic.load_run(levels, "k").clusters}
    assert n == sizes[0] + sizes[2]
    assert len(levels.match_tags("check")) == n
    picked = levels.match({"k_cluster": 1}).limit(2).values("id")
    assert tags.clusters_of(ic.load_run(levels, "k"), picked) == [1]
    ic.tag_clusters(levels, "k", [0], ["check"], remove=True)
    assert len(levels.match_tags("check")) == sizes[2]
    with pytest.raises(ic.ParamError, match="no cluster 9"):
        ic.tag_clusters(levels, "k", [9], ["x"])


def test_clusters_merge_into_named_groups(levels):
    run = ic.group_clusters(levels, "k", {"lightish": [1, 2]})
    assert run.results["groups"] == {"lightish": [1, 2]}
    values = dict(zip(*levels.values(["k_cluster", "k_group"])))
    assert values[1] == values[2] == "lightish" and values[0] is None
    view = ic.load_run(levels, "k").groups_view(["lightish"])
    assert sum(len(g) for g in view.iter_dynamic_groups()) == \
        len(levels.match({"k_cluster": {"$in": [1, 2]}}))
    # moving a cluster to another group takes it out of the first
    run = ic.group_clusters(levels, "k", {"other": [2]})
    assert run.results["groups"] == {"lightish": [1], "other": [2]}
    run = ic.load_run(levels, "k").rename_group("other", "bright")
    assert set(run.results["groups"]) == {"lightish", "bright"}
    assert set(levels.values("k_group")) == {None, "lightish", "bright"}
    with pytest.raises(ic.ParamError, match="both"):
        ic.group_clusters(levels, "k", {"a": [0], "b": [0]})


def test_export_writes_the_csv_and_the_images(levels, tmp_path):
    ic.name_cluster(levels, "k", 0, "Zero")
    ic.group_clusters(levels, "k", {"g": [0, 1]})
    ic.tag_clusters(levels, "k", [0], ["keep"])
    out = ic.export_clusters(levels, "k", str(tmp_path / "out"),
                             clusters=[0, 1], images="copy")
    with open(out["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(export.COLUMNS)
    sizes = {c["id"]: c["size"] for c in ic.load_run(levels, "k").clusters}
    assert len(rows) == out["rows"] == sizes[0] + sizes[1]
    zero = [r for r in rows if r["cluster"] == "cluster_0"]
    assert all(r["cluster_name"] == "Zero" and r["tags"] == "keep" and
               r["group"] == "g" for r in zero)
    assert all(os.path.basename(r["filepath"]) == r["image_name"]
               for r in rows)
    folders = sorted(os.listdir(tmp_path / "out" / "images"))
    assert folders == ["cluster_0 Zero", "cluster_1"]
    assert out["images"] == len(rows)
    # nothing is overwritten without being asked
    with pytest.raises(ic.ParamError, match="overwrite"):
        ic.export_clusters(levels, "k", str(tmp_path / "out"),
                           clusters=[0], images="copy")
    again = ic.export_clusters(levels, "k", str(tmp_path / "out"),
                               clusters=[0], images="symlink",
                               overwrite=True)
    assert again["rows"] == sizes[0]
    by_group = ic.export_clusters(levels, "k", str(tmp_path / "g"),
                                  groups=["g"], images="symlink",
                                  folders="group")
    assert os.listdir(tmp_path / "g" / "images") == ["g"]
    assert by_group["rows"] == sizes[0] + sizes[1]


def test_export_never_writes_outside_its_folder(levels, tmp_path):
    ic.name_cluster(levels, "k", 0, "../../escape")
    root = tmp_path / "out"
    out = ic.export_clusters(levels, "k", str(root), clusters=[0],
                             images="copy")
    written = [os.path.join(d, f) for d, _, files in os.walk(tmp_path)
               for f in files]
    assert all(p.startswith(str(root)) or "l0_" in p or "l1_" in p or
               "l2_" in p for p in written)
    assert not (tmp_path / "escape").exists()
    assert out["images"] > 0
    with pytest.raises(ic.ParamError, match="csv_name"):
        ic.export_clusters(levels, "k", str(root), csv_name="../x.csv",
                           overwrite=True)
    # a folder inside that is a link to somewhere else
    outside = tmp_path / "outside"
    outside.mkdir()
    trap = tmp_path / "trap"
    (trap / "images").parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, trap / "images")
    with pytest.raises(ic.ParamError, match="outside the export folder"):
        ic.export_clusters(levels, "k", str(trap), clusters=[0],
                           images="copy")
    assert os.listdir(outside) == []
