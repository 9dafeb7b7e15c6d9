"""Hugging Face Space folders: the Gradio app (paid or ZeroGPU) and the free static page.

Since July 2026 the Hub creates Gradio and Docker Spaces only on a paid plan (PRO, Team,
Enterprise) or on ZeroGPU (a free account may host 2, with at least one ``@spaces.GPU``
function); a free account that asks for one gets HTTP 402. Static Spaces stay free, so the
course ships two folders::

    python -m utils.space --sdk static --out DIR   # the in-browser counter (notebook 08): free
    python -m utils.space --sdk gradio --out DIR   # the Gradio app (notebook 05): PRO or ZeroGPU

``write_static_space(out_dir, onnx_path)`` is ``utils.web.build_site`` (index.html, counter.js,
onnxruntime-web's pinned WASM files, the model, examples) plus a Space card with ``sdk: static``.

``write_space(out_dir, onnx_path, examples)`` writes the Gradio Space::

    app.py            six lines: OnnxPredictor(model.onnx) -> course.app.build_demo -> launch
    requirements.txt  gradio, onnxruntime, numpy, pillow, tifffile (no torch: torch + torchvision took 5.5 GB here)
    README.md         the Space card: front matter (sdk, sdk_version, app_file, ...) + usage
    model.onnx        the exported detector with its inference config in the metadata
    examples/         a few held-out images
    course/           the course modules the app imports (copied from ``utils``)

The talk's 2022 Space shipped the 74 MB PyTorch checkpoint and installed IceVision and its
PyTorch stack to serve it; this one installs ONNX Runtime (a ~15 MB wheel) and the same pre/post-
processing code the course tests. ``push_space`` uploads it with ``utils.hub.push_folder``.
"""

# One module per job, imports running one way: ``common`` (card front matter, marker, fresh
# folder) <- ``modules`` (the course modules a Gradio Space copies) <- ``gradio_space``,
# ``static_space`` <- ``push`` (push_space, HTTP 402) <- ``cli`` (``python -m utils.space``).

from .cli import main
from .common import (
    front_matter,
    list_files,
)
from .gradio_space import ZERO_GPU, readme, requirements, write_space
from .modules import PACKAGE, SPACE_MODULES
from .push import PaidSpaceError, paid_space_message, push_space, space_sdk
from .static_space import (
    write_static_space,
)

__all__ = [
    "PACKAGE",
    "SPACE_MODULES",
    "ZERO_GPU",
    "PaidSpaceError",
    "front_matter",
    "list_files",
    "main",
    "paid_space_message",
    "push_space",
    "readme",
    "requirements",
    "space_sdk",
    "write_space",
    "write_static_space",
]
