"""The main job, as a user runs it: the console command in a subprocess."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, write_gray

CLI = os.path.join(os.path.dirname(sys.executable), "image-clustering")


def _cli(*args, timeout=600):
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ), cwd=REPO,
    )


@pytest.fixture
def named_dataset():
    import fiftyone as fo

    names = []
    yield names.append
    for name in names:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_cluster_a_folder_prints_clusters_with_purity(tmp_path, named_dataset):
    folder = tmp_path / "shapes"
    for label, value in (("dark", 30), ("bright", 225)):
        (folder / label).mkdir(parents=True)
        for i in range(6):
            write_gray(folder / label / f"{i}.png", value, noise=10, seed=i)
    (folder / "dark" / "broken.png").write_bytes(b"not a png")
    # an image outside the class folders has no label; scores leave it out
    write_gray(folder / "loose.png", 225, noise=10, seed=9)
    named_dataset("cli-folder-test")
    out = _cli(
        "cluster", str(folder), "--dataset", "cli-folder-test",
        "--embedder", "pixels", "--embedder-param", "size=8",
        "--reducer", "none", "--method", "kmeans", "--param", "n_clusters=2",
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Created dataset 'cli-folder-test' with 14 images" in text
    assert "top class" in text and "purity" in text
    rows = re.findall(r"^\s+(\d+)\s+[67]\s+[\d.]+\s+(dark|bright)\s+100\.0%$",
                      text, flags=re.M)
    assert sorted(rows) == [("0", "bright"), ("1", "dark")] or sorted(
        rows) == [("0", "dark"), ("1", "bright")], text
    assert "ARI vs ground_truth 1.0000" in text
    assert "Skipped 1 sample(s):" in text and "broken.png" in text

    import fiftyone as fo

    dataset = fo.load_dataset("cli-folder-test")
    assert dataset.list_runs() == ["clusters"]
    assert sorted(dataset.distinct("ground_truth.label")) == ["bright", "dark"]

    again = _cli(
        "cluster", str(folder), "--dataset", "cli-folder-test",
        "--reducer", "pca:n_components=2", "--method", "agglomerative",
        "--param", "n_clusters=2", "--embedder-param", "size=8",
    )
    assert again.returncode == 0, again.stderr
    assert "Using existing dataset" in again.stdout
    assert "Run 'clusters2'" in again.stdout

    listed = _cli("list", "cli-folder-test")
    assert re.search(r"^clusters +kmeans +2 clusters +100.0% clustered",
                     listed.stdout, flags=re.M), listed.stdout
    assert re.search(r"^clusters2 +agglomerative +2 clusters", listed.stdout,
                     flags=re.M), listed.stdout
    assert _cli("delete", "cli-folder-test", "clusters").returncode == 0
    listed = _cli("list", "cli-folder-test").stdout
    assert listed.startswith("clusters2 ") and len(listed.splitlines()) == 1


def test_bad_parameters_give_one_clear_line(tmp_path, named_dataset):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(4):
        write_gray(folder / f"{i}.png", 50 * i)
    named_dataset("cli-bad-test")
    out = _cli(
        "cluster", str(folder), "--dataset", "cli-bad-test",
        "--method", "kmeans", "--param", "n_clusters=lots",
    )
    assert out.returncode == 2
    # The error names the flag that sets the parameter.
    assert out.stderr.strip().splitlines()[-1] == (
        "error: kmeans: --param n_clusters must be an integer ≥ 1 or 'auto', "
        "got 'lots'"
    )


def test_demo_set_clusters_digits_with_purity(named_dataset):
    import fiftyone as fo

    # The tests' own database: the user's demo dataset is not touched.
    if fo.dataset_exists("image-clustering-demo"):
        fo.delete_dataset("image-clustering-demo")
    named_dataset("image-clustering-demo")
    out = _cli("cluster", "--quiet")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "using the demo set (digits)" in text
    assert "Created dataset 'image-clustering-demo' with 1797 images" in text
    ari = float(text.split("ARI vs ground_truth")[1].split()[0])
    assert ari > 0.8, text
    clustered = float(text.split("% of 1797 clustered")[0].split()[-1])
    assert clustered > 95, text


def _folder_of_four(tmp_path):
    folder = tmp_path / "four"
    folder.mkdir()
    for i in range(4):
        write_gray(folder / f"{i}.png", 50 * i)
    return folder


def test_an_empty_run_key_is_an_error(tmp_path, named_dataset):
    folder = _folder_of_four(tmp_path)
    named_dataset("cli-empty-key")
    out = _cli("cluster", str(folder), "--dataset", "cli-empty-key",
               "--run-key", "", "--method", "kmeans", "--param",
               "n_clusters=2", "--reducer", "none", "--quiet")
    assert out.returncode == 2
    assert "run key must be a non-empty string" in out.stderr


def test_a_missing_dataset_is_an_error_that_lists_the_datasets(
        two_groups):
    two_groups.persistent = True
    out = _cli("cluster", "--dataset", "no-such-dataset", "--quiet")
    assert out.returncode != 0
    assert "no dataset named 'no-such-dataset'" in out.stderr
    assert two_groups.name in out.stderr
    import fiftyone as fo

    assert not fo.dataset_exists("no-such-dataset")


def test_a_killed_import_is_never_reused(zygote, tmp_path, named_dataset):
    import fiftyone as fo

    folder = _folder_of_four(tmp_path)
    named_dataset("cli-atomic")
    status, _ = zygote.run("import", folder=str(folder), name="cli-atomic",
                           kill_at=3)
    assert status["signal"] == 9
    assert not fo.dataset_exists("cli-atomic")
    out = _cli("cluster", str(folder), "--dataset", "cli-atomic",
               "--method", "kmeans", "--param", "n_clusters=2",
               "--reducer", "none", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "Created dataset 'cli-atomic' with 4 images" in out.stdout
    assert not fo.list_datasets(glob_patt="image-clustering-importing-*")


def test_a_folder_that_changed_is_noticed(tmp_path, named_dataset):
    folder = _folder_of_four(tmp_path)
    named_dataset("cli-sync")
    args = ("cluster", str(folder), "--dataset", "cli-sync", "--method",
            "kmeans", "--param", "n_clusters=2", "--reducer", "none",
            "--quiet")
    assert _cli(*args).returncode == 0
    write_gray(folder / "new.png", 240)
    out = _cli(*args)
    assert out.returncode == 0, out.stderr
    assert "has changed since the dataset was built: 1 new image(s) added" \
        in out.stdout
    assert "% of 5 clustered" in out.stdout
    out = _cli(*args)
    assert "has changed" not in out.stdout


def test_duplicates_and_uniqueness_from_the_command_line(tmp_path,
                                                         named_dataset):
    import fiftyone as fo

    from planted import write_planted

    paths, _ = write_planted(str(tmp_path / "planted"), copies_of=2,
                             exact_of=1)
    named_dataset("cli-dups-test")
    ds = fo.Dataset("cli-dups-test", persistent=True)
    ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)

    near = _cli("duplicates", "cli-dups-test", "--quiet", "--tag", "dup")
    assert near.returncode == 0, near.stderr
    assert "duplicate(s) in 3 group(s) among 49 samples" in near.stdout
    assert "Tagged 9 duplicate(s) 'dup'" in near.stdout

    exact = _cli("duplicates", "cli-dups-test", "--exact", "--delete", "5")
    assert exact.returncode == 2
    assert "pass --delete 1" in exact.stderr
    exact = _cli("duplicates", "cli-dups-test", "--exact", "--overwrite",
                 "--delete", "1")
    assert exact.returncode == 0, exact.stderr
    assert "Deleted 1 duplicate(s)" in exact.stdout

    unique = _cli("uniqueness", "cli-dups-test", "--quiet", "--top", "3")
    assert unique.returncode == 0, unique.stderr
    assert unique.stdout.count("1.000") == 1


def test_name_tag_group_and_export_from_the_command_line(tmp_path,
                                                         named_dataset):
    import csv

    import fiftyone as fo

    from openai_server import FakeOpenAI

    folder = tmp_path / "levels"
    folder.mkdir()
    for i in range(12):
        write_gray(folder / f"{i}.png", (30, 225)[i % 2], noise=8, seed=i)
    named_dataset("cli-curation-test")
    out = _cli("cluster", str(folder), "--dataset", "cli-curation-test",
               "--run-key", "k", "--embedder", "pixels", "--embedder-param",
               "size=8", "--reducer", "none", "--method", "kmeans",
               "--param", "n_clusters=2", "--quiet")
    assert out.returncode == 0, out.stderr

    server = FakeOpenAI()
    try:
        env_key = os.environ.get("OPENAI_API_KEY")
        os.environ["OPENAI_API_KEY"] = "sk-test"
        try:
            named = _cli("label", "cli-curation-test", "k", "--model",
                         "vision-test", "--base-url", server.url, "--quiet")
        finally:
            if env_key is None:
                os.environ.pop("OPENAI_API_KEY")
            else:
                os.environ["OPENAI_API_KEY"] = env_key
    finally:
        server.close()
    assert named.returncode == 0, named.stderr
    assert "Named 2 cluster(s)" in named.stdout
    assert "bright images" in named.stdout and "dark images" in named.stdout

    assert _cli("name", "cli-curation-test", "k", "0",
                "first").returncode == 0
    tagged = _cli("tag", "cli-curation-test", "k", "--clusters", "0",
                  "--tags", "review")
    assert "Tagged 6 sample(s)" in tagged.stdout, tagged.stderr
    grouped = _cli("group", "cli-curation-test", "k", "all", "--clusters",
                   "0,1")
    assert grouped.returncode == 0, grouped.stderr
    exported = _cli("export", "cli-curation-test", "k",
                    str(tmp_path / "out"), "--images", "symlink")
    assert "Wrote 12 row(s)" in exported.stdout, exported.stderr
    with open(tmp_path / "out" / "clusters.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["cluster_name"] for r in rows} >= {"first"}
    assert {r["group"] for r in rows} == {"all"}
    ds = fo.load_dataset("cli-curation-test")
    assert len(ds.match_tags("review")) == 6


def test_a_command_killed_after_its_commit_point_is_refused_at_once(
        zygote, two_groups):
    import image_clustering as ic

    ds = two_groups
    ds.persistent = True
    params = dict(embedder={"name": "pixels", "size": 8}, reducer="none",
                  method="kmeans", n_clusters=2, map="none")

    def undo():
        if "k" in ic.list_runs(ds):
            ic.delete_run(ds, "k")
            return True
        return False

    zygote.kill_after_commit(ds, undo, key="k", params=params)

    out = _cli("cluster", "--dataset", ds.name, "--run-key", "k",
               "--embedder", "pixels", "--embedder-param", "size=8",
               "--reducer", "none", "--method", "kmeans", "--param",
               "n_clusters=2", "--map", "none", "--quiet")

    assert out.returncode == 2
    assert "already exists" in out.stderr and "--overwrite" in out.stderr
    assert "another process" not in out.stderr


@pytest.fixture
def clustered(tmp_path, named_dataset):
    """A saved dataset of six dark and six bright images, with a two-cluster
    run 'k' (made in this process: the commands under test run apart)."""
    import fiftyone as fo

    import image_clustering as ic

    name = f"cli-{os.path.basename(str(tmp_path))}"
    named_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    ds.add_samples([fo.Sample(filepath=str(write_gray(
        tmp_path / f"{i}.png", (30, 225)[i % 2], noise=8, seed=i)))
        for i in range(12)], progress=False)
    ic.compute_clusters(ds, "k", embedder={"name": "pixels", "size": 8},
                        reducer="none", method="kmeans", n_clusters=2,
                        map="none")
    return ds


def _with_key(*args):
    env_key = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = "sk-test"
    try:
        return _cli(*args)
    finally:
        if env_key is None:
            os.environ.pop("OPENAI_API_KEY")
        else:
            os.environ["OPENAI_API_KEY"] = env_key


def test_label_refuses_prose_as_a_name_and_exits_1(clustered):
    import image_clustering as ic
    from openai_server import FakeOpenAI, brightness_name

    refusal = "I'm sorry, I can't identify what these images show."

    def answer(request):
        return refusal if request.brightness > 128 else \
            brightness_name(request)

    server = FakeOpenAI(answer)
    try:
        out = _with_key("label", clustered.name, "k", "--model",
                        "vision-test", "--base-url", server.url, "--quiet")
    finally:
        server.close()

    assert out.returncode == 1
    assert "Named 1 cluster(s); 0 unchanged since named; 1 failed" in \
        out.stdout
    assert "the model's reply gives no name" in out.stderr
    assert refusal in out.stderr
    names = ic.load_run(clustered, "k").results["names"]
    assert [n["name"] for n in names.values()] == ["dark images"]


def test_a_model_folder_that_does_not_exist_is_named(clustered):
    out = _cli("cluster", "--dataset", clustered.name, "--run-key", "d",
               "--embedder", "dino", "--embedder-param",
               "model=/nonexistent/dinov2", "--reducer", "none",
               "--method", "kmeans", "--param", "n_clusters=2", "--quiet")

    assert out.returncode == 2
    assert "no folder '/nonexistent/dinov2'" in out.stderr
    assert "huggingface-cli" not in out.stderr


@pytest.mark.parametrize("address, named", [("127.0.0.1:9", "127.0.0.1:9"),
                                            (None, "auto")])
def test_a_ray_cluster_that_does_not_answer_is_an_error_naming_it(
        clustered, address, named):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["IMAGE_CLUSTERING_RAY_CONNECT_SECONDS"] = "5"
    args = ["cluster", "--dataset", clustered.name, "--run-key", "r",
            "--embedder", "pixels", "--embedder-param", "size=16",
            "--reducer", "none", "--method", "kmeans", "--param",
            "n_clusters=2", "--executor", "ray", "--quiet"]
    if address:
        args += ["--ray-address", address]
    out = subprocess.run([CLI, *args], capture_output=True, text=True,
                         timeout=120, env=env, cwd=REPO)

    assert out.returncode == 2
    assert f"Ray cluster" in out.stderr and f"'{named}'" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_folder_sync_says_no_longer_on_disk_only_of_files_that_are_gone(
        tmp_path, named_dataset):
    import fiftyone as fo

    from image_clustering.cli.folders import dataset_from_folder

    folder = _folder_of_four(tmp_path)
    named_dataset("cli-sync-gone")
    ds = dataset_from_folder(str(folder), "cli-sync-gone")
    # A sample added by hand, whose file lives outside the folder.
    elsewhere = write_gray(tmp_path / "elsewhere.png", 90)
    ds.add_sample(fo.Sample(filepath=str(elsewhere)))
    args = ("cluster", str(folder), "--dataset", "cli-sync-gone",
            "--method", "kmeans", "--param", "n_clusters=2", "--reducer",
            "none", "--quiet")

    write_gray(folder / "new.png", 240)
    grown = _cli(*args, "--run-key", "a")
    os.remove(folder / "0.png")
    shrunk = _cli(*args, "--run-key", "b")

    assert grown.returncode == 0, grown.stderr
    assert "1 new image(s) added" in grown.stdout
    assert "no longer on disk" not in grown.stdout
    assert shrunk.returncode == 0, shrunk.stderr
    assert "1 image(s) no longer on disk" in shrunk.stdout


def test_reload_says_which_runs_it_deletes(tmp_path, named_dataset):
    folder = _folder_of_four(tmp_path)
    named_dataset("cli-reload")
    args = ("cluster", str(folder), "--dataset", "cli-reload", "--method",
            "kmeans", "--param", "n_clusters=2", "--reducer", "none",
            "--quiet")
    assert _cli(*args, "--run-key", "first").returncode == 0

    out = _cli(*args, "--run-key", "second", "--reload")

    assert out.returncode == 0, out.stderr
    assert "--reload: deleting dataset 'cli-reload' and its 1 run(s): " \
        "first" in out.stderr


def test_exit_codes_say_done_failed_or_refused(clustered, tmp_path):
    from image_clustering.storage.mongo import db, fs
    from image_clustering.storage.records import record_id

    name = clustered.name
    assert _cli("info", name, "k").returncode == 0
    # Refused (2): what was asked cannot be done as asked.
    missing_run = _cli("info", name, "nope")
    missing_dataset = _cli("info", "no-such-dataset", "k")
    bad_value = _cli("plot", name, "k", "--kind", "pie")
    assert [missing_run.returncode, missing_dataset.returncode,
            bad_value.returncode] == [2, 2, 2]
    assert "no clustering run 'nope'" in missing_run.stderr
    # Failed (1): it ran, and something could not be done.
    gone = clustered.values("filepath")[0]
    os.remove(gone)
    export = _cli("export", name, "k", str(tmp_path / "out"), "--images",
                  "copy")
    assert export.returncode == 1
    assert f"could not write {gone}: file not found" in export.stderr
    doc = db().runs.find_one({"_id": record_id(clustered, "k")},
                             {"results": 1})
    fs().delete(doc["results"])
    damaged = _cli("info", name, "k")
    assert damaged.returncode == 1
    assert "missing" in damaged.stderr and "repair" in damaged.stderr
    assert all("Traceback" not in out.stderr for out in (
        missing_run, missing_dataset, bad_value, export, damaged))


def test_ctrl_c_ends_a_command_with_a_sentence_and_code_130(clustered):
    import signal

    from image_clustering.storage.lease import Lease

    holder = Lease(clustered, "a test holding the lock")
    try:
        proc = subprocess.Popen(
            [CLI, "cluster", "--dataset", clustered.name, "--run-key", "w",
             "--embedder", "pixels", "--embedder-param", "size=8",
             "--reducer", "none", "--method", "kmeans", "--param",
             "n_clusters=2", "--map", "none"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ), cwd=REPO)
        before = []
        for line in proc.stderr:
            before.append(line)
            if "waiting for the lock" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        holder.release()

    assert proc.returncode == 130, "".join(before) + err
    assert "interrupted; nothing half-written is left" in err
    assert "Traceback" not in err


def test_fiftyones_own_log_lines_stay_off_stdout(clustered):
    env = dict(os.environ, FIFTYONE_DATABASE_VALIDATION="true")
    out = subprocess.run([CLI, "list", clustered.name], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=300)

    assert out.returncode == 0, out.stderr
    # The embedded MongoDB 6 makes FiftyOne log a version notice.
    assert "MongoDB" in out.stderr
    assert "MongoDB" not in out.stdout
    assert out.stdout.split()[0] == "k"


def test_progress_off_a_terminal_is_plain_lines(clustered):
    out = _cli("cluster", "--dataset", clustered.name, "--run-key", "p",
               "--embedder", "pixels", "--embedder-param", "size=8",
               "--reducer", "none", "--method", "kmeans", "--param",
               "n_clusters=2", "--map", "none")

    assert out.returncode == 0, out.stderr
    assert "\r" not in out.stderr and "[#" not in out.stderr
    lines = out.stderr.splitlines()
    assert any(re.match(r"^ *\d+% clustering with K-means$", line)
               for line in lines), out.stderr
    assert lines.count("100% done") == 1


def test_duplicate_leaks_print_as_lines(tmp_path, named_dataset):
    import fiftyone as fo

    named_dataset("cli-leaks")
    ds = fo.Dataset("cli-leaks", persistent=True)
    paths = [write_gray(tmp_path / f"d{i}.png", (60, 60, 200)[i], noise=10,
                        seed=(0, 0, 1)[i]) for i in range(3)]
    ds.add_samples([fo.Sample(filepath=str(p), tags=[t]) for p, t in
                    zip(paths, ("train", "test", "train"))], progress=False)

    out = _cli("duplicates", "cli-leaks", "--exact", "--split-tags",
               "train,test", "--quiet")

    assert out.returncode == 0, out.stderr
    assert "Groups across splits: 1 group(s), 2 sample(s)\n" \
        "  test and train: 1 group(s)" in out.stdout
    assert "{" not in out.stdout


def test_assign_with_nothing_to_place_says_why(clustered):
    out = _cli("assign", clustered.name, "k")
    tagged = _cli("assign", clustered.name, "k", "--tag", "nowhere")

    assert out.returncode == 0 and tagged.returncode == 0
    assert "Nothing to place: all 12 samples already have a cluster of " \
        "run 'k'" in out.stdout
    assert "Nothing to place: there are no samples tagged nowhere" in \
        tagged.stdout


def test_group_says_which_clusters_it_moves(clustered):
    first = _cli("group", clustered.name, "k", "a", "--clusters", "0,1")
    moved = _cli("group", clustered.name, "k", "b", "--clusters", "1")

    assert first.returncode == 0 and "moved" not in first.stdout
    assert moved.returncode == 0, moved.stderr
    assert "  cluster 1 moved out of group 'a'" in moved.stdout


def test_a_run_where_every_sample_is_noise_prints_and_shows(tmp_path,
                                                            named_dataset):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "scattered"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16)).astype(np.uint8),
                        "L").save(folder / f"{i}.png")
    named_dataset("cli-all-noise")
    made = _cli("cluster", str(folder), "--dataset", "cli-all-noise",
                "--run-key", "void", "--embedder", "pixels",
                "--embedder-param", "size=8", "--reducer", "none",
                "--method", "dbscan", "--param", "eps=0.000001", "--param",
                "min_samples=3", "--noise", "keep", "--quiet")
    shown = _cli("info", "cli-all-noise", "void")

    for out in (made, shown):
        assert out.returncode == 0, out.stderr
        assert "0 clusters, 12 noise, 0.0% of 12 clustered" in out.stdout
        assert re.search(r"noise +12 +-", out.stdout), out.stdout


def test_two_runs_with_nothing_in_common_compare_in_a_sentence(clustered):
    import image_clustering as ic

    ids = clustered.values("id")
    ic.compute_clusters(clustered.select(ids[:6]), "a",
                        embedder={"name": "pixels", "size": 8},
                        reducer="none", method="kmeans", n_clusters=2,
                        map="none")
    ic.compute_clusters(clustered.select(ids[6:]), "b",
                        embedder={"name": "pixels", "size": 8},
                        reducer="none", method="kmeans", n_clusters=2,
                        map="none")

    out = _cli("compare", clustered.name, "a", "b")

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("'a' vs 'b': no sample was clustered by "
                                  "both runs, so they cannot be compared")
