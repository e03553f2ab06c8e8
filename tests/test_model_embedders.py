"""DINO, CLIP/SigLIP, FiftyOne-model and torch-module embedders, with tiny
models built from configs and loaded the way hub models are."""

import numpy as np
import pytest
import torch

import image_clustering as ic
from image_clustering.embedders import get_embedder
from image_clustering.embedders import transformers_models as tm

import tiny_models
from conftest import write_gray


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: build(root / name) for name, build in tiny_models.BUILDERS.items()}


@pytest.fixture
def photos(tmp_path):
    """Colour images of different sizes and aspect ratios."""
    from PIL import Image

    rng = np.random.default_rng(3)
    paths = []
    for i, size in enumerate([(50, 40), (40, 64), (33, 33), (120, 80)]):
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        path = tmp_path / f"photo{i}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(arr).save(path, quality=95)
        paths.append(str(path))
    return paths


def _reference(model_dir, processor_cls, paths):
    """pixel_values from transformers' own (PIL) image processor."""
    from PIL import Image

    processor = processor_cls.from_pretrained(model_dir)
    images = [Image.open(p).convert("RGB") for p in paths]
    return processor(images=images, return_tensors="pt")["pixel_values"]


@pytest.mark.parametrize(
    "name,processor",
    [("dinov2", "BitImageProcessorPil"), ("dinov2_registers", "BitImageProcessorPil"),
     ("dinov3", "ViTImageProcessorPil")],
)
@pytest.mark.parametrize("pooling", ["cls", "mean", "cls+mean"])
def test_dino_matches_the_model_on_its_own_preprocessing(models, photos, name, processor, pooling):
    import transformers

    out = get_embedder("dino", model=models[name], pooling=pooling).embed(photos)
    assert not out.failures
    pixels = _reference(models[name], getattr(transformers, processor), photos)
    model = transformers.AutoModel.from_pretrained(models[name]).eval()
    with torch.inference_mode():
        hidden = model(pixel_values=pixels).last_hidden_state
    registers = model.config.num_register_tokens if name != "dinov2" else 0
    cls, mean = hidden[:, 0], hidden[:, 1 + registers:].mean(dim=1)
    expected = {"cls": cls, "mean": mean, "cls+mean": torch.cat([cls, mean], 1)}[pooling]
    np.testing.assert_allclose(out.vectors, expected.numpy(), atol=2e-3)


@pytest.mark.parametrize("name,processor", [("clip", "CLIPImageProcessorPil"),
                                            ("siglip", "SiglipImageProcessorPil")])
def test_clip_and_siglip_give_projected_image_features(models, photos, name, processor):
    import transformers

    embedder = get_embedder("clip", model=models[name])
    out = embedder.embed(photos)
    pixels = _reference(models[name], getattr(transformers, processor), photos)
    model = transformers.AutoModel.from_pretrained(models[name]).eval()
    with torch.inference_mode():
        features = model.get_image_features(pixel_values=pixels)
    features = getattr(features, "pooler_output", features)
    assert out.vectors.shape == (4, features.shape[1])
    np.testing.assert_allclose(out.vectors, features.numpy(), atol=2e-3)
    if name == "clip":
        assert out.vectors.shape[1] == 16  # the projection, not the tower


def test_dino_and_clip_cluster_end_to_end(models, two_groups):
    for key, embedder in (
        ("dino", {"name": "dino", "model": models["dinov2"]}),
        ("clip", {"name": "clip", "model": models["clip"]}),
    ):
        run = ic.compute_clusters(
            two_groups, key, embedder=embedder, reducer="pca",
            normalize=True, method="kmeans", n_clusters=2, map="none",
        )
        truth, clusters = two_groups.values(["ground_truth.label", f"{key}_cluster"])
        pairs = set(zip(truth, clusters))
        assert len(pairs) == 2, (key, pairs)
        field = run.config["embeddings_field"]
        info = two_groups.get_field(field).info["fingerprint"]
        assert info["embedder"] == key and info["preprocess"]["crop_size"]
        assert run.config["fingerprint"] == info


def test_model_stays_loaded_across_runs(models, two_groups):
    spec = {"name": "dino", "model": models["dinov2"], "pooling": "mean"}
    ic.compute_clusters(two_groups, "a", embedder=spec, reducer="none",
                        method="kmeans", n_clusters=2, map="none")
    loaded = dict(tm._LOADED)
    get_embedder(spec).embed([two_groups.first().filepath])
    assert tm._LOADED == loaded


def test_pooling_choices_cache_separately(models, two_groups):
    fields = set()
    for pooling in ("cls", "mean"):
        run = ic.compute_clusters(
            two_groups, f"p_{pooling}", reducer="none", method="kmeans",
            n_clusters=2, map="none",
            embedder={"name": "dino", "model": models["dinov2"], "pooling": pooling},
        )
        fields.add(run.config["embeddings_field"])
        assert run.results["embedding"]["computed"] == 24
    assert len(fields) == 2


def test_missing_model_says_how_to_pass_a_local_path(two_groups):
    with pytest.raises(ic.ParamError) as e:
        ic.compute_clusters(two_groups, "x", embedder={"name": "dino", "model": "nobody/no-such-model"})
    message = str(e.value)
    assert "nobody/no-such-model" in message and "model='DIR'" in message
    assert "huggingface-cli download" in message
    assert not two_groups.has_run("x")


def test_a_model_without_an_image_tower_is_refused_for_clip(models, photos):
    with pytest.raises(ic.ParamError, match="no image tower"):
        get_embedder("clip", model=models["dinov2"]).embed(photos)


def test_device_that_is_not_there_is_a_clear_error(models, photos):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ic.ParamError, match="CUDA is not available"):
        get_embedder("dino", model=models["dinov2"], device="cuda").embed(photos)


def test_broken_files_are_skipped_by_model_embedders(models, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    out = get_embedder("dino", model=models["dinov2"]).embed(
        [photos[0], str(broken), photos[1]]
    )
    assert list(out.failures) == [1]
    assert np.abs(out.vectors[[0, 2]]).sum() > 0


class _MeanColour(torch.nn.Module):
    """Pools each channel: a real module whose output is easy to check."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x.mean(dim=(2, 3)) * self.scale


def test_torch_module_embedder(two_groups):
    module = _MeanColour()
    run = ic.compute_clusters(
        two_groups, "t", embedder={"name": "torch", "module": module, "size": 16,
                                   "mean": [0, 0, 0], "std": [1, 1, 1]},
        reducer="none", method="kmeans", n_clusters=2, map="none",
    )
    assert run.config["embedder"]["params"]["module"].endswith("_MeanColour>")
    vectors = np.array(two_groups.values(run.config["embeddings_field"]))
    truth = two_groups.values("ground_truth.label")
    dark = vectors[[t == "dark" for t in truth]]
    assert vectors.shape[1] == 3 and (dark < 0.4).all()

    first_field = run.config["embeddings_field"]
    with torch.no_grad():
        module.scale.mul_(2)
    again = ic.compute_clusters(
        two_groups, "t2", embedder={"name": "torch", "module": module, "size": 16},
        reducer="none", method="kmeans", n_clusters=2, map="none",
    )
    assert again.config["embeddings_field"] != first_field
    with pytest.raises(ic.ParamError, match="torch.nn.Module"):
        get_embedder("torch", module="resnet")


def test_torch_module_of_the_caller_is_left_as_it_was(two_groups):
    from image_clustering.embedders.torch_runtime import weights_digest

    module = _MeanColour().to(torch.bfloat16)  # and in training mode
    digest = weights_digest(module)
    embedder = get_embedder("torch", module=module, size=16)
    out = embedder.embed(two_groups.values("filepath"))
    assert out.vectors.shape == (len(two_groups), 3) and not out.failures
    assert module.training and module.scale.dtype == torch.bfloat16
    assert weights_digest(module) == digest


class _FiftyOneModel:
    """Built lazily so fiftyone's model classes load only in this test."""

    @staticmethod
    def make(with_embeddings=True):
        import fiftyone.core.models as fom

        class MeanModel(fom.Model, fom.EmbeddingsMixin):
            media_type = "image"
            ragged_batches = True
            transforms = None
            preprocess = False
            has_embeddings = with_embeddings

            def predict(self, arg):
                raise NotImplementedError

            def embed(self, arg):
                return np.asarray(arg, dtype=np.float32).mean(axis=(0, 1))

            def embed_all(self, args):
                return np.stack([self.embed(a) for a in args])

        return MeanModel()


def test_fiftyone_model_object_embeds(two_groups):
    model = _FiftyOneModel.make()
    with pytest.raises(ic.ParamError, match="model_id"):
        get_embedder("fiftyone", model=model)
    run = ic.compute_clusters(
        two_groups, "fom", embedder={"name": "fiftyone", "model": model, "model_id": "mean-rgb"},
        reducer="none", method="kmeans", n_clusters=2, map="none",
    )
    assert run.config["embeddings_field"] == "fiftyone_mean_rgb_embedding"
    truth, clusters = two_groups.values(["ground_truth.label", "fom_cluster"])
    assert len(set(zip(truth, clusters))) == 2
    with pytest.raises(ic.ParamError, match="does not expose embeddings"):
        get_embedder("fiftyone", model=_FiftyOneModel.make(False), model_id="x")


def test_unknown_zoo_model_is_a_clear_error(photos):
    with pytest.raises(ic.ParamError, match="could not load FiftyOne zoo model 'no-such-model-torch'"):
        get_embedder("fiftyone", model="no-such-model-torch").embed(photos)


def test_model_presets_normalise_before_reducing(models, two_groups):
    run = ic.compute_clusters(
        two_groups, "preset", preset="dino",
        embedder={"name": "dino", "model": models["dinov2"]},
        reducer={"name": "pca", "n_components": 4}, method="kmeans",
        n_clusters=2, map="none",
    )
    assert run.config["normalize"] is True and run.config["preset"] == "dino"


def test_command_line_preset_with_a_local_model(models, tmp_path):
    import os
    import subprocess
    import sys

    import fiftyone as fo

    folder = tmp_path / "imgs"
    for label, value in (("dark", 30), ("bright", 225)):
        (folder / label).mkdir(parents=True)
        for i in range(10):
            write_gray(folder / label / f"{i}.png", value, noise=10, seed=i)
    cli = os.path.join(os.path.dirname(sys.executable), "image-clustering")
    name = "cli-dino-test"
    try:
        out = subprocess.run(
            [cli, "cluster", str(folder), "--dataset", name, "--preset",
             "dino", "--embedder-param", f"model={models['dinov2']}",
             "--reducer", "pca:n_components=4", "--method", "kmeans",
             "--param", "n_clusters=2", "--quiet"],
            capture_output=True, text=True, timeout=300, env=dict(os.environ),
        )
        assert out.returncode == 0, out.stderr
        assert "kmeans on dino(model=" in out.stdout
        assert "-> l2 -> pca" in out.stdout
        assert "ARI vs ground_truth 1.0000" in out.stdout
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
