"""Count a whole archive: the batch logic shared by the plain and the Ray engines.

    rows = count_files(predictor, files, threshold)             # plain: one process
    rows = ray_count(model_path, files, threshold, workers=2)  # Ray Data: an actor pool

Both engines produce the same rows (:data:`COLUMNS`): ``file`` (the path as given),
``count``, ``mean_score`` (mean score of the counted cells, empty when none), ``seconds``
(load + predict of that image) and ``error`` (one sentence; the row of a bad image, never a
failed job); a model of several classes adds ``count_<class>`` per class after ``count``
(``columns_for``; ``count`` stays the total). :class:`TableWriter` keeps the output file
(CSV or Parquet, by suffix) complete at every moment: it rewrites it atomically
(``utils.atomicio``) every few seconds and at the end, so an interrupted run loses at most
those seconds, and :func:`run` skips, on the next run, what the file already holds (rows
with an error are tried again).

Ray is an optional extra (``pip install ".[scale]"``), imported only by :func:`ray_count`.

One module per job, imports running one way: ``rows`` (one image -> one row) -> ``table``
(CSV/Parquet, atomic rewrites, resume) and ``ray_engine`` (Ray Data actor pool) -> ``job``
(``run``: either engine into one table) ; ``series`` (notebook 09's time series and cost).
"""

from __future__ import annotations

from .job import model_config, run
from .ray_engine import (
    NODE_KEY,
    ClusterError,
    RayCounter,
    ray_count,
    start_ray,
    stop_ray,
)
from .rows import (
    BOXES_KEY,
    COLUMNS,
    BatchError,
    Row,
    columns_for,
    count_image,
)
from .series import cost_estimate, make_time_series, plot_counts
from .table import (
    FORMATS,
    csv_text,
    output_format,
    read_table,
    summary,
    table,
)

__all__ = [
    "BOXES_KEY",
    "BatchError",
    "COLUMNS",
    "ClusterError",
    "FORMATS",
    "NODE_KEY",
    "RayCounter",
    "Row",
    "columns_for",
    "cost_estimate",
    "count_image",
    "csv_text",
    "make_time_series",
    "model_config",
    "output_format",
    "plot_counts",
    "ray_count",
    "read_table",
    "run",
    "start_ray",
    "stop_ray",
    "summary",
    "table",
]
