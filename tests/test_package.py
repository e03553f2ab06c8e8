"""The package imports fast, and FiftyOne finds it as a plugin."""

import json
import os
import subprocess
import sys

from conftest import REPO, run_python


def test_import_does_not_load_heavy_libraries():
    out = run_python(
        "import sys, json, image_clustering\n"
        "heavy = ['torch', 'transformers', 'umap', 'hdbscan', 'sklearn',"
        " 'openai', 'fiftyone']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_fiftyone_lists_the_plugin(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    os.symlink(REPO, plugins / "image-clustering")
    env = {**os.environ, "FIFTYONE_PLUGINS_DIR": str(plugins)}
    fiftyone = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    out = subprocess.run(
        [fiftyone, "plugins", "list"], capture_output=True, text=True,
        env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "@image-clustering/clustering" in out.stdout


def test_imports_keep_to_the_layers():
    """The import contracts of pyproject.toml: imports only point down the
    layers, and the numeric code never reaches FiftyOne or MongoDB."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    out = subprocess.run([lint, "--no-cache"], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_a_broken_contract_is_caught(tmp_path):
    """The contract check itself fails when an arrow points up."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "image_clustering"\n'
        '[[tool.importlinter.contracts]]\nname = "upside down"\n'
        'type = "layers"\nlayers = ["image_clustering.units", '
        '"image_clustering.clustering"]\n')
    out = subprocess.run([lint, "--no-cache", "--config", str(config)],
                         capture_output=True, text=True, cwd=REPO,
                         timeout=300)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout
