"""Local executor against the Ray executor on the same machine and the same
images, in the same run: images per second and Ray's overhead ratio
(Ray's throughput / local's; goal >= 0.8x). On a machine with GPUs each
Ray actor takes one, and the per-actor rate is what the README's
arithmetic for 10M images on N GPUs uses.

    python benchmarks/ray_overhead.py [--n 4000] [--embedder pixels|dino|clip]
        [--model FOLDER] [--actors 2] [--batch-size 256] [--address ADDRESS]

With ``dino`` or ``clip`` and no ``--model``, the DINOv2-small or CLIP
ViT-B/32 architecture with random weights (speed does not depend on the
weights).

Without ``--address`` a local Ray instance is started with the machine's
cores. The images are JPEGs of 256 x 256 written once to a temp folder.
"""

import argparse
import os
import tempfile
import time

import numpy as np


def write_images(folder, n):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    os.makedirs(folder, exist_ok=True)
    base = rng.integers(0, 255, (16, 16, 3)).astype(np.uint8)
    for i in range(n):
        path = os.path.join(folder, f"{i:06d}.jpg")
        if not os.path.exists(path):
            tile = np.roll(base, i % 16, axis=i % 2)
            Image.fromarray(tile).resize((256, 256)).save(path, quality=90)
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--embedder", default="pixels")
    parser.add_argument("--model", help="model folder (dino, clip; default: "
                        "the architecture with random weights)")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--address", default=None)
    args = parser.parse_args()

    import ray

    from image_clustering.embedders import get_embedder
    from image_clustering.embedders.executors import local_executor
    from image_clustering.embedders.ray_executor import RayExecutor

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    paths = write_images(os.path.join(tempfile.gettempdir(),
                                      "ray-overhead-images"), args.n)
    ids = [str(i) for i in range(len(paths))]
    spec = {"name": args.embedder}
    if args.model:
        spec["model"] = args.model
    elif args.embedder in ("dino", "clip"):
        from embedder_speed import build_models

        spec["model"] = build_models(tempfile.mkdtemp())[args.embedder]
    embedder = get_embedder(spec)

    t = time.time()
    local = local_executor(embedder, ids, paths,
                           batch_size=args.batch_size)
    local_rate = len(paths) / (time.time() - t)

    ray.init(address=args.address, log_to_driver=False,
             logging_level="ERROR")
    gpus = ray.cluster_resources().get("GPU", 0)
    executor = RayExecutor(concurrency=args.actors,
                           batch_size=args.batch_size)
    # The first job starts the actors and loads the model: timed apart.
    t = time.time()
    executor(embedder, ids[:args.batch_size], paths[:args.batch_size])
    warm_up = time.time() - t
    t = time.time()
    remote = executor(embedder, ids, paths)
    ray_rate = len(paths) / (time.time() - t)

    same = np.allclose(local.vectors, remote.vectors, atol=1e-4)
    print(f"{len(paths):,} images, embedder {args.embedder}, "
          f"{args.actors} Ray actor(s), {int(gpus)} GPU(s) in the cluster")
    print(f"local executor: {local_rate:8.1f} images/s")
    print(f"Ray executor:   {ray_rate:8.1f} images/s "
          f"(first job with actor start-up: {warm_up:.1f} s)")
    ratio = ray_rate / local_rate
    print(f"overhead ratio Ray/local: {ratio:.2f}x (goal >= 0.8x: "
          f"{'met' if ratio >= 0.8 else 'NOT met'}); same vectors: {same}")
    if gpus:
        print(f"per GPU actor: {ray_rate / args.actors:.1f} images/s")


if __name__ == "__main__":
    main()
