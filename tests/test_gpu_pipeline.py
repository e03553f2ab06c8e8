"""The GPU path's pipeline (chunks read ahead in threads, decoded in
batches, preprocessed by size, prepared in a background thread while the
model runs), on the CPU. nvJPEG needs CUDA, so here a decoder built on PIL
stands in for it, on the same contract: a list of JPEG byte tensors in,
``(3, H, W)`` uint8 tensors out, ``RuntimeError`` for a batch it rejects.
The real nvJPEG runs in ``test_gpu_decode.py`` where CUDA is present."""

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from image_clustering.embedders import gpu_decode  # noqa: E402
from image_clustering.embedders.base import embed_in_batches  # noqa: E402
from image_clustering.embedders.torch_runtime import (  # noqa: E402
    ModelDecode,
    Preprocess,
)

PREPROCESS = Preprocess({"shortest_edge": 32}, {"height": 28, "width": 28},
                        mean=(0.485, 0.456, 0.406),
                        std=(0.229, 0.224, 0.225), resample=3)


class PilJpegs:
    """Decodes JPEG bytes with PIL as nvJPEG would: no EXIF rotation, and
    progressive JPEGs refused (a batch holding one fails as a whole)."""

    def __init__(self):
        self.calls = []

    def __call__(self, datas):
        self.calls.append(len(datas))
        images = []
        for data in datas:
            with Image.open(io.BytesIO(data.numpy().tobytes())) as im:
                if im.info.get("progressive"):
                    raise RuntimeError("unsupported JPEG")
                arr = np.asarray(im.convert("RGB"))
            images.append(torch.from_numpy(arr.copy()).permute(2, 0, 1))
        return images


def forward(batch):
    """A stand-in model: every 7th input value, as a vector."""
    return batch.flatten(1)[:, ::7]


def photo(path, size, seed, **save):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3)).astype(np.float64)
    # smooth, photo-like content: JPEG keeps it nearly intact
    arr = np.cumsum(arr, axis=1) / (np.arange(size[0]) + 1)[None, :, None]
    Image.fromarray(arr.astype(np.uint8)).save(path, quality=95, **save)
    return str(path)


@pytest.fixture
def mixed(tmp_path):
    """JPEGs of two sizes, one rotated by EXIF, one progressive; a PNG; a
    file that starts like a JPEG but is not one; a missing file."""
    paths = [photo(tmp_path / f"a{i}.jpg", (64, 48), i) for i in range(9)]
    paths += [photo(tmp_path / f"b{i}.jpg", (40, 60), 20 + i)
              for i in range(5)]
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6
    paths.insert(3, photo(tmp_path / "rotated.jpg", (64, 48), 40,
                          exif=exif))
    paths.insert(8, photo(tmp_path / "progressive.jpg", (64, 48), 41,
                          progressive=True))
    png = tmp_path / "flat.png"
    Image.fromarray(np.full((30, 50, 3), 90, np.uint8)).save(png)
    paths.insert(11, str(png))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths.insert(5, str(broken))
    paths.insert(13, str(tmp_path / "missing.jpg"))
    return paths


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 4 images, decoder calls of at most 3 of these photos,
    preprocessing 2 at a time: every split is taken."""
    monkeypatch.setattr(gpu_decode, "CHUNK_IMAGES", 4)
    monkeypatch.setattr(gpu_decode, "DECODE_PIXELS", 3 * 64 * 48)
    monkeypatch.setattr(gpu_decode, "PREPROCESS_PIXELS", 2 * 64 * 48)


def on_cpu_path(paths):
    def run_batch(items):
        return forward(torch.from_numpy(np.stack(items))).numpy()

    return embed_in_batches(paths, ModelDecode(PREPROCESS), run_batch,
                            batch_size=2, num_workers=2, mode="threads")


def on_gpu_path(paths, decoder, **kwargs):
    kwargs = {"batch_size": 2, "num_workers": 2, "progress": None, **kwargs}
    return gpu_decode.embed(forward, PREPROCESS, paths, torch.float32,
                            cpu_decode=ModelDecode(PREPROCESS), device="cpu",
                            decode_jpegs=decoder, **kwargs)


def test_the_pipeline_gives_the_cpu_paths_vectors_and_failures(
        mixed, small_chunks):
    decoder = PilJpegs()
    with torch.inference_mode():
        got = on_gpu_path(mixed, decoder)
    expected = on_cpu_path(mixed)

    assert set(got.failures) == set(expected.failures) == {5, 13}
    assert got.failures == expected.failures
    for j in range(len(mixed)):
        if j in expected.failures:
            continue
        gap = np.abs(got.vectors[j] - expected.vectors[j])
        # resampling kernels differ by a few grey levels
        assert gap.mean() < 0.02, mixed[j]
    # Batches of at most 3 photos; the one holding the progressive JPEG is
    # retried one image at a time, and that JPEG goes to the CPU decoder.
    assert max(decoder.calls) <= 3
    assert decoder.calls.count(1) >= 3


def test_reading_stays_a_few_chunks_ahead_of_the_model(tmp_path, monkeypatch,
                                                       small_chunks):
    paths = [photo(tmp_path / f"{i}.jpg", (32, 24), i) for i in range(80)]
    reads = []
    real_read = gpu_decode._read

    def counted_read(path):
        reads.append(path)
        return real_read(path)

    monkeypatch.setattr(gpu_decode, "_read", counted_read)
    ahead = []

    def slow_progress(done, n):
        ahead.append(len(reads) - done)
        time.sleep(0.02)

    with torch.inference_mode():
        out = on_gpu_path(paths, PilJpegs(), progress=slow_progress)
    assert not out.failures and len(reads) == 80
    # A queue of CHUNKS_AHEAD prepared chunks, one in preparation, and the
    # reads of the current chunk plus CHUNKS_AHEAD more: never the dataset.
    chunk = 4
    assert max(ahead) <= (2 * gpu_decode.CHUNKS_AHEAD + 2) * chunk
    assert len(ahead) == 80 // chunk


def test_a_failure_on_either_side_stops_the_background_thread(
        tmp_path, small_chunks):
    paths = [photo(tmp_path / f"{i}.jpg", (32, 24), i) for i in range(40)]
    before = threading.active_count()

    class Refusing(PilJpegs):
        def __call__(self, datas):
            if len(self.calls) == 3:
                raise ValueError("decoder state lost")
            return super().__call__(datas)

    with torch.inference_mode():
        with pytest.raises(ValueError, match="decoder state lost"):
            on_gpu_path(paths, Refusing())

    def failing_forward(batch, seen=[]):
        seen.append(len(batch))
        if len(seen) == 5:
            raise MemoryError("out of memory in the model")
        return forward(batch)

    with torch.inference_mode():
        with pytest.raises(MemoryError, match="out of memory"):
            gpu_decode.embed(failing_forward, PREPROCESS, paths,
                             torch.float32, 2, 2, None,
                             ModelDecode(PREPROCESS), device="cpu",
                             decode_jpegs=PilJpegs())
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


def test_split_by_pixels_keeps_order_and_budget():
    pixels = [5, 5, 0, 9, 20, 1, 1]
    parts = list(gpu_decode._split_by_pixels([0, 1, 3, 4, 5, 6], pixels,
                                             10))
    assert parts == [[0, 1], [3], [4], [5, 6]]
    assert sum(parts, []) == [0, 1, 3, 4, 5, 6]


def exif_segment(orientation, endian):
    """An APP1 Exif segment holding one tag, Orientation, in ``endian``
    ("<" little, ">" big) byte order, after a tag of another kind."""
    import struct

    order = b"II" if endian == "<" else b"MM"
    entries = struct.pack(endian + "HHII", 0x010F, 2, 4, 0)  # Make
    entries += struct.pack(endian + "HHIH2x", 0x0112, 3, 1, orientation)
    tiff = order + struct.pack(endian + "HI", 42, 8) + \
        struct.pack(endian + "H", 2) + entries + b"\0\0\0\0"
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_the_jpeg_header_gives_what_pil_reads(tmp_path, orientation, endian):
    plain = io.BytesIO()
    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(plain, "JPEG")
    raw = plain.getvalue()
    # after the JFIF segment, with fill bytes before the next marker
    jfif_end = 4 + int.from_bytes(raw[4:6], "big")
    data = raw[:jfif_end] + exif_segment(orientation, endian) + \
        b"\xff\xff" + raw[jfif_end:]
    path = tmp_path / "tagged.jpg"
    path.write_bytes(data)
    with Image.open(path) as im:
        expected = (*im.size, im.getexif().get(0x0112))
    assert expected == (53, 37, orientation)
    assert gpu_decode.jpeg_header(data) == expected
    file = gpu_decode._read(str(path))
    assert (file.orientation, file.pixels) == (orientation, 53 * 37)
    assert bytes(file.data.numpy()) == data


def test_the_jpeg_header_of_other_kinds_of_jpeg(tmp_path):
    cases = {
        "progressive": (Image.new("RGB", (90, 20), "red"),
                        {"progressive": True}),
        "gray": (Image.new("L", (21, 33), 100), {}),
        "cmyk": (Image.new("CMYK", (15, 16)), {}),
        "pil exif": (Image.new("RGB", (30, 40)), {"exif": exif_segment(
            5, "<")[4:]}),
    }
    for name, (image, save) in cases.items():
        buf = io.BytesIO()
        image.save(buf, "JPEG", **save)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            expected = (*im.size, im.getexif().get(0x0112))
        assert gpu_decode.jpeg_header(buf.getvalue()) == expected, name
    assert expected == (30, 40, 5)
    # Cut before its frame header, or not a JPEG's markers at all: the
    # file goes to the CPU decoder, which gives the reason.
    whole = buf.getvalue()
    assert gpu_decode.jpeg_header(whole[:40]) is None
    assert gpu_decode.jpeg_header(b"\xff\xd8 not really a jpeg") is None
    png = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(png)
    assert gpu_decode._read(str(png)) is None


def test_a_chunk_of_one_size_is_decoded_and_preprocessed_in_one_call(
        tmp_path, monkeypatch):
    paths = [photo(tmp_path / f"{i}.jpg", (32, 24), i) for i in range(40)]
    resized = []
    real_batch = gpu_decode.TorchPreprocess.batch

    def counted_batch(self, images):
        resized.append(len(images))
        return real_batch(self, images)

    monkeypatch.setattr(gpu_decode.TorchPreprocess, "batch", counted_batch)
    decoder = PilJpegs()
    with torch.inference_mode():
        out = on_gpu_path(paths, decoder, batch_size=8)
    assert not out.failures
    # The model's batches are of 8, but decoding and preprocessing take the
    # whole chunk at once: per-image work would be 40 calls of each.
    assert decoder.calls == [40]
    assert resized == [40]
