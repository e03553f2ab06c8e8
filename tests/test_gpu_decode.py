"""The GPU decode path (nvJPEG through torchvision, preprocessing as tensor
operations on the GPU) against the CPU path, on the real CUDA device:
the same tensors within float tolerance, EXIF orientation applied, PNGs
and broken files handed to the CPU decoder with the same reasons. Runs
where CUDA is present; skipped elsewhere."""

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device")

import tiny_models  # noqa: E402


@pytest.fixture
def images(tmp_path):
    """JPEG photos of several shapes (one stored rotated, with an EXIF
    orientation tag), a PNG and a broken JPEG."""
    from PIL import Image

    rng = np.random.default_rng(5)
    paths = []
    for i, size in enumerate([(640, 480), (480, 640), (300, 200),
                              (123, 77)]):
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        # smooth, photo-like content: JPEG keeps it nearly intact
        arr = np.cumsum(arr, axis=1) // (np.arange(size[0]) + 1)[None, :,
                                                                 None]
        path = tmp_path / f"photo{i}.jpg"
        image = Image.fromarray(arr.astype(np.uint8))
        if i == 1:
            exif = image.getexif()
            exif[0x0112] = 6  # shown rotated 90 degrees clockwise
            image.save(path, quality=95, exif=exif)
        else:
            image.save(path, quality=95)
        paths.append(str(path))
    png = tmp_path / "flat.png"
    Image.fromarray(np.full((64, 80, 3), 120, np.uint8)).save(png)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return paths + [str(png), str(broken)]


def test_gpu_preprocessing_gives_the_cpu_tensors(images):
    pytest.importorskip("torchvision")
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg

    from image_clustering.embedders import gpu_decode
    from image_clustering.embedders.images import load_source
    from image_clustering.embedders.torch_runtime import Preprocess

    assert gpu_decode.available()
    preprocess = Preprocess({"shortest_edge": 256},
                            {"height": 224, "width": 224},
                            mean=(0.485, 0.456, 0.406),
                            std=(0.229, 0.224, 0.225), resample=3)
    gpu_pre = gpu_decode.TorchPreprocess(preprocess)
    for path in images[:4]:
        file = gpu_decode._read(path)
        image = decode_jpeg(file.data, mode=ImageReadMode.RGB, device="cuda")
        on_gpu = gpu_pre(gpu_decode.orient(image, file.orientation))
        assert on_gpu.is_cuda
        on_cpu = preprocess(load_source(path, "RGB"))
        assert tuple(on_gpu.shape) == on_cpu.shape
        gap = np.abs(on_gpu.float().cpu().numpy() - on_cpu)
        # decoders and resampling kernels differ by a few grey levels
        assert gap.mean() < 0.05, path
    with Image.open(images[1]) as im:
        assert im.getexif().get(0x0112) == 6


@pytest.mark.parametrize("chunks", ["default", "split"])
def test_the_gpu_path_embeds_as_the_cpu_path_does(images, tmp_path, chunks,
                                                  monkeypatch):
    pytest.importorskip("torchvision")
    from image_clustering.embedders import get_embedder, gpu_decode

    if chunks == "split":
        # chunks of 2 images, one nvJPEG call per photo
        monkeypatch.setattr(gpu_decode, "CHUNK_IMAGES", 2)
        monkeypatch.setattr(gpu_decode, "DECODE_PIXELS", 1)

    assert gpu_decode.available()
    model = tiny_models.dinov2(tmp_path / "dino")
    on_gpu = get_embedder("dino", model=model, device="cuda").embed(
        images, batch_size=4 if chunks == "default" else 1)
    on_cpu = get_embedder("dino", model=model, device="cpu").embed(
        images, batch_size=4)
    # the PNG went through the CPU decoder on the GPU path; the broken file
    # fails on both with the same reason
    assert set(on_gpu.failures) == set(on_cpu.failures) == {5}
    assert on_gpu.failures[5] == on_cpu.failures[5]
    for j in range(5):
        a, b = on_gpu.vectors[j], on_cpu.vectors[j]
        cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        assert cosine > 0.99, (images[j], cosine)
