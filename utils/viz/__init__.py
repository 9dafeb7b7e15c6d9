"""Pictures: boxes on images (PIL, fast enough for the Gradio app), grids and dataset histograms.

``draw_detections``/``draw``/``compare`` use only PIL so the app and the Space never import
matplotlib; ``show_grid`` and ``plot_dataset_stats`` return small matplotlib figures.

Two modules: ``draw`` (PIL only, what the app and the Space use) and ``plots`` (matplotlib,
imported by the notebooks; it uses ``draw``, never the other way).
"""

from __future__ import annotations

from .draw import (
    FALSE_COLOR,
    GT_COLOR,
    MATCH_COLOR,
    MAX_SCORE_LABELS,
    MISSED_COLOR,
    ImageLike,
    box_iou,
    compare,
    compare_legend,
    densest_window,
    draw,
    draw_detections,
    draw_tile_grid,
    labels_note,
    match_boxes,
    overview_with_closeup,
    to_pil,
)
from .plots import (
    add_compare_legend,
    box_stats,
    describe_boxes,
    plot_dataset_stats,
    plot_heatmaps,
    plot_training,
    show_augmentations,
    show_grid,
    show_image,
    show_scale_effect,
    use_jpeg_figures,
)

__all__ = [
    "FALSE_COLOR",
    "GT_COLOR",
    "ImageLike",
    "MATCH_COLOR",
    "MAX_SCORE_LABELS",
    "MISSED_COLOR",
    "add_compare_legend",
    "box_iou",
    "box_stats",
    "compare",
    "compare_legend",
    "densest_window",
    "describe_boxes",
    "draw",
    "draw_detections",
    "draw_tile_grid",
    "labels_note",
    "match_boxes",
    "overview_with_closeup",
    "plot_dataset_stats",
    "plot_heatmaps",
    "plot_training",
    "show_augmentations",
    "show_grid",
    "show_image",
    "show_scale_effect",
    "to_pil",
    "use_jpeg_figures",
]
