"""Benchmarks, one module each: ``python -m utils.bench train | edge | api | real``.

* ``train``: full-mode training on ``data/train``, scored on the held-out ``data/test``;
* ``real``: the default ``train`` command on any labelled folder of real photos, scored on
  a held-out one, per class (``docs/real_data.md``: BCCD);
* ``edge``: latency and accuracy of each runtime and quantized variant;
* ``api``: end-to-end latency of the Gradio app's API.

Each writes ``artifacts/bench_<name>.json``. Numbers depend on the machine (and on what
else runs on it), so every report names the CPU and thread count it was measured with.
"""

from ..atomicio import write_text

BENCHMARKS = ("train", "edge", "api", "real")


def machine() -> dict[str, object]:
    """CPU model, core and thread counts, torch threads: the context for every timing."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, object] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch"] = str(torch.__version__)
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def write_report(path, report: dict) -> None:
    """Every benchmark's JSON report, written atomically (a killed run never leaves half a file)."""
    import json


    write_text(path, json.dumps(report, indent=1) + "\n")
