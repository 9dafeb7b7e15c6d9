"""Throughput of counting an archive: the plain engine against Ray Data with 1 and 2 workers.

    python -m utils.bench batch [--images 1000] [--workers 1 2] [--size 640]

Generates ``--images`` synthetic photos (``--unique`` distinct scenes, the rest copies under
other names: decoding and counting cost the same), counts them with ``utils.batch.run`` on
each engine into a fresh output file, and reports images per second (wall clock, from the
call to the last row written, Ray's actor start-up included), the mean seconds one image takes
inside a worker (load + predict on 1 thread: the CPU time a cost estimate needs), whether
the counts are identical, and peak memory: the driver's RSS and the sum over Ray's worker
actors (summed) and over Ray's other processes (sampled every 0.2 s). Writes ``artifacts/bench_batch.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .. import batch
from ..config import artifacts_dir, display_path
from . import machine, write_report

ACTOR_PREFIX = "ray::MapWorker"  # how Ray names the process of a map_batches actor


class MemorySampler:
    """Peak RSS (MB): this process, the Ray actors that count (summed), all other Ray processes
    (GCS, raylet, agents, idle workers: summed)."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self.psutil = psutil
        self.me = psutil.Process()
        self.interval = interval
        self.driver_mb = 0.0
        self.workers_mb = 0.0
        self.ray_system_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        mb = 1024 * 1024
        self.driver_mb = max(self.driver_mb, self.me.memory_info().rss / mb)
        workers = system = 0.0
        for child in self.me.children(recursive=True):
            try:
                name = " ".join(child.cmdline()[:1])
                rss = child.memory_info().rss / mb
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied, self.psutil.ZombieProcess):
                continue
            if name.startswith(ACTOR_PREFIX):  # the predictors; not idle workers, not agents
                workers += rss
            else:
                system += rss
        self.workers_mb = max(self.workers_mb, workers)
        self.ray_system_mb = max(self.ray_system_mb, system)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def make_images(folder: Path, n: int, size: int, unique: int) -> list[Path]:
    """``n`` photos in ``folder`` (reused when already there): ``unique`` scenes, then copies."""
    from ..synth import generate_image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo_{i:05d}.jpg" for i in range(n)]
    for i, path in enumerate(paths):
        if path.exists():
            continue
        if i < unique:
            image, _, _ = generate_image(50_000 + i, size)
            image.save(path, quality=90)
        else:
            shutil.copyfile(paths[i % unique], path)
    return paths


def _measure(label: str, files: list[Path], **kwargs) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench_batch_")) / "counts.csv"
    try:
        with MemorySampler() as memory:
            start = time.perf_counter()
            rows = batch.run(files=files, out=out, progress=False, **kwargs)
            seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    s = batch.summary(rows)
    return {
        "engine": label,
        "images": len(files),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(files) / seconds, 2),
        "seconds_per_image_in_worker": round(s["seconds_per_image"], 4),
        "errors": s["errors"],
        "peak_driver_mb": round(memory.driver_mb),
        "peak_ray_actors_mb": round(memory.workers_mb),
        "peak_ray_other_mb": round(memory.ray_system_mb),
        "counts": {Path(r["file"]).name: r["count"] for r in rows},
    }


def run(
    images: int = 1000,
    workers: tuple[int, ...] = (1, 2),
    size: int = 640,
    unique: int = 100,
    batch_size: int = 8,
    model: str | Path | None = None,
    out: str | Path | None = None,
) -> dict:
    from ..export import ensure_onnx

    model = Path(model) if model else ensure_onnx()
    folder = artifacts_dir() / "bench_batch" / f"images_{size}"
    start = time.perf_counter()
    files = make_images(folder, images, size, min(unique, images))
    print(f"{images} photos of {size} px in {display_path(folder)} ({time.perf_counter() - start:.0f} s).")
    results = [_measure("plain", files, model_path=model, engine="plain")]
    print(f"  plain: {results[-1]['images_per_second']} img/s", flush=True)
    start = time.perf_counter()
    started = batch.start_ray(num_cpus=os.cpu_count())
    ray_start = time.perf_counter() - start
    try:
        for n in workers:
            label = f"ray, {n} worker{'s' if n > 1 else ''}"
            results.append(
                _measure(label, files, model_path=model, engine="ray", workers=n,
                         batch_size=batch_size)
            )
            print(f"  {label}: {results[-1]['images_per_second']} img/s", flush=True)
    finally:
        if started:
            batch.stop_ray()
    reference = results[0]["counts"]
    for result in results:
        result["counts_identical_to_plain"] = result.pop("counts") == reference
    one = next((r for r in results if r["engine"] == "ray, 1 worker"), None)
    for result in results:
        if one and result["engine"].startswith("ray"):
            result["speedup_vs_1_worker"] = round(
                result["images_per_second"] / one["images_per_second"], 2
            )
    report = {
        "machine": machine(),
        "model": display_path(model),
        "image_size": size,
        "unique_scenes": min(unique, images),
        "batch_size": batch_size,
        "ray_init_seconds": round(ray_start, 1),
        "results": results,
    }
    write_report(Path(out) if out else artifacts_dir() / "bench_batch.json", report)
    return report


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\n{m['cpu']} ({m['cpu_count']} cores); Ray started in {report['ray_init_seconds']} s")
    print(
        f"{'engine':<16} {'img/s':>7} {'x 1 worker':>10} {'s/img in worker':>16} "
        f"{'driver MB':>9} {'actors MB':>9} {'other Ray MB':>12} {'counts = plain':>14}"
    )
    for r in report["results"]:
        print(
            f"{r['engine']:<16} {r['images_per_second']:>7.2f} "
            f"{r.get('speedup_vs_1_worker', ''):>10} {r['seconds_per_image_in_worker']:>16.3f} "
            f"{r['peak_driver_mb']:>9} {r['peak_ray_actors_mb']:>9} {r['peak_ray_other_mb']:>12} "
            f"{'yes' if r['counts_identical_to_plain'] else 'NO':>14}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench batch", description=__doc__)
    parser.add_argument("--images", type=int, default=1000, help="photos to count (default 1000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray actor counts")
    parser.add_argument("--size", type=int, default=640, help="photo side in pixels")
    parser.add_argument("--unique", type=int, default=100, help="distinct scenes among them")
    parser.add_argument("--batch-size", type=int, default=8, help="images per Ray batch")
    parser.add_argument("--model", help="model file (default: artifacts/model.onnx)")
    parser.add_argument("--out", help="JSON output (default: artifacts/bench_batch.json)")
    args = parser.parse_args(argv)
    report = run(
        images=args.images,
        workers=tuple(args.workers),
        size=args.size,
        unique=args.unique,
        batch_size=args.batch_size,
        model=args.model,
        out=args.out,
    )
    print_report(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
