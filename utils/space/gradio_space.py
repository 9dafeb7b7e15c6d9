"""The Gradio Space (paid or ZeroGPU): app.py, requirements (no torch), card, model, examples."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import (
    EXAMPLE_SUFFIXES,
    MARKER,
    _fresh_folder,
    _yaml,
    classes_sentence,
    front_matter,
    gradio_version,
)
from .modules import copy_course_modules

APP_PY = '''\
"""Microalgae cell counter: a Gradio Space ({marker} of the deploy-without-tears course)."""

from pathlib import Path

from course.app import MAX_FILE_SIZE, build_demo
from course.runtime_choice import choose_runtime, served_by

HERE = Path(__file__).parent
examples = sorted(p for p in (HERE / "examples").glob("*") if p.is_file())
# The fastest installed runtime that keeps the counts (checked and timed at start on the first
# example: equal counts, and a score drift that would change at most 1 photo's count in 50);
# a COURSE_RUNTIME variable in the Space's settings forces one (onnxruntime, openvino, ...).
choice = choose_runtime(HERE / "model.onnx", examples[:1])
predictor = choice.predictor
print(served_by(choice, HERE / "model.onnx"))
demo = build_demo(predictor, examples=examples, title={title!r}, runtime_note=choice.describe())
{zerogpu}
if __name__ == "__main__":
    demo.launch(max_file_size=MAX_FILE_SIZE, show_error=True)
'''

# ZeroGPU (free accounts may host 2 such Spaces) starts an app only if it has a @spaces.GPU
# function. This model runs on the CPU, so the function does nothing; it exists for that check.
ZERO_GPU = "zero-a10g"
ZEROGPU_PY = '''
try:
    import spaces  # installed on ZeroGPU hardware (requirements.txt)
except ImportError:  # elsewhere: nothing to declare
    spaces = None

if spaces is not None:

    @spaces.GPU
    def zerogpu_check() -> None:
        """ZeroGPU needs one @spaces.GPU function to start the app; the model runs on CPU."""
'''


def requirements(pin_gradio: bool = True, zerogpu: bool = False) -> list[str]:
    """The Space's pip requirements: the ONNX runtime path only, never torch."""
    lines = [
        f"gradio=={gradio_version()}" if pin_gradio else "gradio>=5",
        "onnxruntime>=1.18",
        "numpy>=1.24",
        "pillow>=10",
        "tifffile>=2023.1",
        "pandas>=1.5",
    ]
    return [*lines, "spaces"] if zerogpu else lines


def readme(meta: dict[str, Any], model_info: str) -> str:
    body = f"""\
    ---
    {{yaml}}
    ---

    # {meta["title"]}

    Counts microalgae cells in a microscope photo: upload a picture (or use the webcam or
    the clipboard), move the detection threshold, read the count. {model_info}

    Built in the course *Deploy a deep-learning model without tears* ({MARKER}): a small
    cell counter (a centre-heatmap detector) trained on 17 labelled images, exported to ONNX and served here with
    ONNX Runtime - no PyTorch in this Space.

    ## Use the API

    Python (`pip install gradio_client`):

    ```python
    from gradio_client import Client, handle_file

    client = Client("<user>/<this-space>")
    image, count, table, notes = client.predict(
        image=handle_file("photo.jpg"), threshold=0.5, api_name="/count"
    )
    ```

    JavaScript (`npm install @gradio/client`):

    ```js
    import {{ Client, handle_file }} from "@gradio/client";
    const client = await Client.connect("<user>/<this-space>");
    const result = await client.predict("/count", {{ image: handle_file(blob), threshold: 0.5 }});
    ```

    Plain HTTP, one JSON body (what a phone app sends):

    ```bash
    curl -s -X POST $URL/gradio_api/call/count_base64 -H 'Content-Type: application/json' \\
      -d '{{"data": ["data:image/jpeg;base64,'$(base64 -w0 photo.jpg)'", 0.5]}}'
    # -> {{"event_id": "..."}}; then read the result:
    curl -s -N $URL/gradio_api/call/count_base64/<event_id>
    ```

    Or one request, one answer (the app's own route; HTTP 400/413/503 with an `error` sentence):

    ```bash
    curl -s --data-binary @photo.jpg -H 'Content-Type: image/jpeg' "$URL/api/count?threshold=0.5"
    ```
    """
    return textwrap.dedent(body).replace("{yaml}", _yaml(meta))


def write_space(
    out_dir: str | Path,
    onnx_path: str | Path,
    examples: Sequence[str | Path] = (),
    title: str = "Microalgae cell counter",
    short_description: str = "Count microalgae cells in microscope photos (ONNX)",
    models: Sequence[str] | None = None,
    max_examples: int = 6,
    zerogpu: bool = False,
) -> Path:
    """Write the Space folder (replacing an earlier generated one) and return its path.

    ``zerogpu=True``: for ZeroGPU hardware, the Gradio Space a free account may still host
    (app.py gets a no-op ``@spaces.GPU`` function, the card ``suggested_hardware: zero-a10g``,
    which ``push_space`` then asks the Hub for).
    """
    from ..runtime import OnnxPredictor

    out = Path(out_dir)
    onnx_path = Path(onnx_path)
    predictor = OnnxPredictor(onnx_path)  # fails early, with a clear message, on a bad model
    _fresh_folder(out)
    copy_course_modules(out)
    shutil.copy2(onnx_path, out / "model.onnx")
    example_dir = out / "examples"
    example_dir.mkdir()
    kept = [Path(p) for p in examples if Path(p).suffix.lower() in EXAMPLE_SUFFIXES]
    for path in kept[:max_examples]:
        shutil.copy2(path, example_dir / path.name)
    app_py = APP_PY.format(marker=MARKER, title=title, zerogpu=ZEROGPU_PY if zerogpu else "")
    (out / "app.py").write_text(app_py, encoding="utf-8")
    lines = requirements(zerogpu=zerogpu)
    (out / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    c = predictor.config
    info = (
        f"Model: `{c.model_name}`, {c.image_size} px input, counting threshold "
        f"{c.score_threshold:.2f}."
        + classes_sentence(c.class_names, 'the app (and `"counts"` in the JSON answer)')
    )
    meta = front_matter(title, short_description, models=models)
    if zerogpu:
        meta["suggested_hardware"] = ZERO_GPU
    (out / "README.md").write_text(readme(meta, info), encoding="utf-8")
    return out
