"""The browser's numbers: first-load MB, ms per photo, longest block, counts vs Python."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

from ..config import test_dir
from ..images import load_image
from .browser import count_in_browser
from .site import build_site


def gzip_bytes(path: str | Path) -> int:
    """Size after gzip -6: about what a host that compresses its responses sends."""
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=6))


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def summarize(result: dict, expected: Sequence[dict[str, int]], site: str | Path) -> dict:
    """The numbers that matter from ``count_in_browser``: first load, ms per image, counts.

    ``expected``: Python's ``counts_by_class()`` of each image; a photo counts as the same
    when every class has the same count (for one class: the same count).

    The first image is the warm-up (onnxruntime allocates its buffers on the first run);
    "per image" is the median of the others, end to end: decode, resize, model, NMS, draw.
    """
    site = Path(site)
    load, rows = result["load"], result["rows"][: len(expected)]
    downloaded = [site / _site_path(f["name"]) for f in load["files"]]
    warm = [r["timings"] for r in rows[1:]] or [rows[0]["timings"]]
    return {
        "browser": f"Chromium {result['browser']} (headless, {result['cores']} cores)",
        "threads": result["threads"],
        "isolated": result["isolated"],
        "backend": result.get("backend", "WASM (SIMD)"),
        "backend_note": result.get("backend_note", ""),
        "first_load_mb": load["transfer"] / 1e6,
        "first_load_gzip_mb": sum(gzip_bytes(p) for p in downloaded if p.is_file()) / 1e6,
        "ready_s": load["ms"] / 1000,
        "largest_files": [
            (f["name"], f["decoded"] / 1e6)
            for f in sorted(load["files"], key=lambda f: -f["decoded"])[:2]
        ],
        "images": len(rows),
        "ms_per_image": _median([t["pipeline_ms"] for t in warm]),
        "model_ms": _median([t["session_ms"] for t in warm]),
        "resize_ms": _median([t["preprocess_ms"] for t in warm]),
        "nms_ms": _median([t["postprocess_ms"] for t in warm]),
        "max_ms": max(t["pipeline_ms"] for t in warm),
        "first_image_ms": rows[0]["timings"]["pipeline_ms"],
        "longest_block_ms": max(r["longest_task_ms"] for r in result["rows"]),
        "same_counts": sum(r["counts"] == e for r, e in zip(rows, expected)),
    }


def report(s: dict) -> str:
    """``summarize``'s numbers as a few lines of text that say what each number is."""
    files = ", ".join(f"{name} {mb:.1f} MB" for name, mb in s["largest_files"])
    return "\n".join(
        [
            f"{s['browser']}, onnxruntime-web {s['backend']}, {s['threads']} thread(s), "
            f"cross-origin isolated: {s['isolated']}"
            + (f" ({s['backend_note']})" if s["backend_note"] else ""),
            f"  first load: {s['first_load_mb']:.1f} MB downloaded ({files}); a host that "
            f"gzips would send {s['first_load_gzip_mb']:.1f} MB; model ready after "
            f"{s['ready_s']:.1f} s (local server)",
            f"  per 640 px photo after the first one: median {s['ms_per_image']:.0f} ms end to "
            f"end (model {s['model_ms']:.0f} ms, resize+normalise {s['resize_ms']:.0f} ms, "
            f"NMS {s['nms_ms']:.1f} ms), slowest {s['max_ms']:.0f} ms; first photo "
            f"{s['first_image_ms']:.0f} ms",
            f"  longest time the page could not react (main-thread task): "
            f"{s['longest_block_ms']:.0f} ms",
            f"  counts identical to Python (ONNX Runtime, same file; every class): "
            f"{s['same_counts']}/{s['images']} photos",
        ]
    )


def measure(
    site: str | Path,
    images: Sequence[str | Path],
    threads: int = 1,
    onnx_path: str | Path | None = None,
    backend: str = "auto",
) -> dict:
    """Count ``images`` in the site in headless Chromium and compare with Python: a summary."""
    from ..loading import load_predictor

    site = Path(site)
    predictor = load_predictor(Path(onnx_path) if onnx_path else site / "model.onnx")
    expected = [predictor.predict(load_image(p).image).counts_by_class() for p in images]
    return summarize(count_in_browser(site, images, threads, backend=backend), expected, site)


# Issue 20's goals for the page (WASM, 2 threads, a 640 px photo).
GOAL_MS = 300.0
GOAL_RATIO = 2.5  # the page's time over native ONNX Runtime's, same file, photos and threads
GOAL_FIRST_LOAD_MB = 15.0


def goal_lines(s: dict, native_ms: float) -> list[str]:
    """Met or not, for one summary and the native time with the same threads."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    ratio = s["ms_per_image"] / native_ms
    return [
        f"  goal first load <= {GOAL_FIRST_LOAD_MB:.0f} MB: {s['first_load_mb']:.1f} MB, "
        f"{verdict(s['first_load_mb'] <= GOAL_FIRST_LOAD_MB)}",
        f"  goal <= {GOAL_MS:.0f} ms per photo: {s['ms_per_image']:.0f} ms, "
        f"{verdict(s['ms_per_image'] <= GOAL_MS)}",
        f"  goal <= {GOAL_RATIO}x native ONNX Runtime ({s['threads']} thread(s), "
        f"{native_ms:.0f} ms): {ratio:.2f}x, {verdict(ratio <= GOAL_RATIO)}",
    ]


def bench(
    onnx_path: str | Path | None = None,
    n_images: int | None = None,
    threads: Sequence[int] = (1, 2),
    weights: str = "fp32",
    backend: str = "auto",
    calibration: Sequence[str | Path] | None = None,
) -> list[dict]:
    """Print first-load MB, ms per held-out photo after the first, counts vs Python, and a
    12 MP photo's time and longest main-thread block (``python -m utils.web --bench``).

    ``backend``: the page's ``?backend=`` (auto: WebGPU from a hardware adapter, else WASM);
    with "webgpu" Chromium is given WebGPU, which here means SwiftShader's software adapter.
    """
    import tempfile

    from PIL import Image

    from ..export import ensure_onnx

    model = ensure_onnx() if onnx_path is None else Path(onnx_path)
    images = sorted(test_dir().glob("*.jpg"))[:n_images]
    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        site = build_site(
            Path(tmp) / "site", model, examples=images[:3], weights=weights, calibration=calibration
        )
        if weights != "fp32":
            _compare_weights(model, site / "model.onnx", images, weights)
        big = Path(tmp) / "photo_12mp.jpg"  # a phone-sized photo: 4000 x 3000
        Image.open(images[0]).convert("RGB").resize((4000, 3000)).save(big, quality=92)
        for n in threads:
            native_ms, line = python_reference(site / "model.onnx", images, n)
            print("\n" + line)
            summary = measure(site, images, n, backend=backend)  # the file the page runs
            print(report(summary))
            print("\n".join(goal_lines(summary, native_ms)))
            large = count_in_browser(site, [big], n, backend=backend)["rows"][0]
            print(
                f"  12 MP photo (4000 x 3000): {large['timings']['pipeline_ms']:.0f} ms, "
                f"longest main-thread block {large['longest_task_ms']:.0f} ms"
            )
            summaries.append(summary)
    return summaries


def compare_weights(
    fp32: str | Path, other: str | Path, images: Sequence[str | Path]
) -> dict[str, float]:
    """Python counts of the float32 file and a smaller one on ``images``, and their sizes."""
    from ..loading import load_predictor

    a, b = load_predictor(Path(fp32)), load_predictor(Path(other))
    pictures = [load_image(p).image for p in images]
    return {
        "fp32_mb": Path(fp32).stat().st_size / 1e6,
        "other_mb": Path(other).stat().st_size / 1e6,
        "same_counts": sum(a.predict(x).count == b.predict(x).count for x in pictures),
        "images": len(pictures),
    }


def _compare_weights(fp32: Path, other: Path, images: Sequence[Path], weights: str) -> None:
    c = compare_weights(fp32, other, images)
    print(
        f"{weights} weights: model {c['other_mb']:.1f} MB (fp32 {c['fp32_mb']:.1f} MB); Python "
        f"counts equal to the fp32 file's on {c['same_counts']}/{c['images']} photos"
    )


def python_reference(
    onnx_path: Path, images: Sequence[Path], threads: int = 1
) -> tuple[float, str]:
    """Python's ONNX Runtime on the same file and photos, timed the same way: a yardstick for
    the browser's numbers on this machine (median ms of all photos but the first, a line)."""
    import time

    from ..loading import load_predictor

    predictor = load_predictor(onnx_path, threads=threads)
    times = []
    for path in images:
        start = time.perf_counter()
        predictor.predict(load_image(path).image)
        times.append((time.perf_counter() - start) * 1000)
    median = _median(times[1:] or times)
    return median, (
        f"Python ONNX Runtime (native, {threads} thread(s)), same file: median "
        f"{median:.0f} ms per 640 px photo (load + model + NMS)"
    )


def _site_path(name: str) -> str:
    """A downloaded file's path in the site folder (runtime files live in ort/)."""
    return f"ort/{name}" if name.startswith("ort") else name
