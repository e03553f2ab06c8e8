"""The hierarchy from the command line, in a subprocess: cluster a folder
into a hierarchy, read its layers, move its cut, act on merge suggestions
and carry names to a re-run; errors name the flags."""

import re

import pytest

from conftest import write_gray
from test_cli import _cli, named_dataset  # noqa: F401  (fixture)


@pytest.fixture
def tree_folder(tmp_path, named_dataset):  # noqa: F811
    """Eight grey levels, six noisy images each."""
    folder = tmp_path / "levels"
    for level in range(8):
        sub = folder / f"l{level}"
        sub.mkdir(parents=True)
        for i in range(6):
            write_gray(sub / f"{i}.png", 15 + 30 * level, noise=6,
                       seed=100 * level + i)
    named_dataset("cli-tree-test")
    out = _cli("cluster", str(folder), "--dataset", "cli-tree-test",
               "--run-key", "h", "--embedder", "pixels", "--embedder-param",
               "size=8", "--reducer", "pca", "--method", "hierarchy",
               "--map", "none", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "Layers (finest first):" in out.stdout
    return "cli-tree-test"


def test_layers_cut_and_merges_from_the_command_line(tree_folder):
    out = _cli("layers", tree_folder, "h")
    assert out.returncode == 0, out.stderr
    layers = re.findall(r"^\s+(\d+)\s+(\d+)", out.stdout, flags=re.M)
    assert len(layers) >= 3 and "<- current cut" in out.stdout

    out = _cli("cut", tree_folder, "h", "--layer", "0")
    assert out.returncode == 0, out.stderr
    finest = int(layers[0][1])
    assert f"to {finest} clusters" in out.stdout

    out = _cli("cut", tree_folder, "h", "--coarser")
    assert out.returncode == 0 and "clusters in the current cut" in out.stdout

    out = _cli("merges", tree_folder, "h", "--n", "3")
    assert out.returncode == 0, out.stderr
    pairs = re.findall(r"^\s*(\d+) \+ (\d+)", out.stdout, flags=re.M)
    assert pairs, out.stdout
    a, b = pairs[0]
    out = _cli("merges", tree_folder, "h", "--reject", f"{a},{b}")
    assert out.returncode == 0 and "will not be suggested again" in \
        out.stdout
    out = _cli("merges", tree_folder, "h", "--n", "50")
    assert f"{a} + {b}" not in out.stdout


def test_tree_errors_name_the_flag_and_exit_2(tree_folder):
    out = _cli("cut", tree_folder, "h", "--layer", "99")
    assert out.returncode == 2 and "--layer" in out.stderr, out.stderr
    out = _cli("cut", tree_folder, "h", "--expand", "x")
    assert out.returncode == 2 and "--expand" in out.stderr, out.stderr
    out = _cli("merges", tree_folder, "h", "--name", "x")
    assert out.returncode == 2 and "--accept" in out.stderr
    out = _cli("carry-over", tree_folder, "nope", "h")
    assert out.returncode == 2 and "nope" in out.stderr
    out = _cli("misfits", tree_folder, "h")
    assert out.returncode == 2 and "fit no cluster" in out.stderr


def test_names_are_carried_to_a_rerun_and_the_report_printed(tree_folder,
                                                              tmp_path):
    out = _cli("name", tree_folder, "h", "0", "darkest")
    assert out.returncode == 0, out.stderr
    out = _cli("cluster", "--dataset", tree_folder, "--run-key", "h",
               "--overwrite", "--embedder", "pixels", "--embedder-param",
               "size=8", "--reducer", "pca", "--method", "hierarchy",
               "--seed", "3", "--map", "none", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "Decisions carried from run 'h':" in out.stdout
    assert "('darkest'" in out.stdout
