"""Progress bars: tqdm's plain-text bars, the same in a terminal, Jupyter and Colab.

Why text and not ipywidgets: a saved notebook keeps a widget bar's first frame (it reads
"0%", as if training never ran) and GitHub cannot render widget state, while a text bar,
once ``scripts/run_course.py`` coalesces its ``\\r`` updates, is saved in its final state.
One import here instead of one per module also keeps tqdm's settings in one place.
"""

from __future__ import annotations

from tqdm.std import tqdm

__all__ = ["tqdm"]
