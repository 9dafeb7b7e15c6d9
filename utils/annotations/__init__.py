"""Read, write and check box annotations: Pascal VOC (labelImg), labelme's JSON, COCO JSON (Label
Studio, CVAT) and YOLO text labels (Roboflow, Ultralytics, CVAT).

Every loader returns the same :class:`AnnotationSet`: a list of images with their boxes in
pixels (x1, y1, x2, y2) and class names. Whatever tool you label with, the rest of the course
sees one format.

Validation is strict and *complete*: a loader checks every file, collects every problem it
finds and raises a single :class:`AnnotationError` that lists them all, each naming its file,
so that a learner fixes a folder in one pass instead of one error per run. Nothing is dropped
silently; an image with no boxes is valid (it teaches the model what "no cells" looks like).

Decisions worth knowing:

- A box may stick out of the image by at most ``BOX_TOLERANCE_PX`` (1 px, the usual
  off-by-one of labelling tools); it is then clipped to the image. Further out is an error.
- Degenerate boxes are dropped, not refused: zero or negative width or height (a click
  without a drag in labelImg) or wholly outside the image. One :class:`DroppedBoxWarning`
  line per folder names each file and box. Broken files (unreadable XML/JSON/images, missing
  fields, non-finite numbers, a size that is not the image's) are still errors.
- An image file in a VOC folder without an XML beside it is an error: an unlabelled image
  must not be mistaken for an image without cells. Save it in labelImg (an empty XML is fine)
  or move it out of the folder.
- VOC coordinates are written as integers, rounded to the nearest pixel, as labelImg does.
- Boxes are on the photo **upright**, as the app counts it: a phone photo stored sideways with
  an EXIF orientation tag is turned by ``AnnotatedImage.load_image``, and each reader converts
  what its format stores (VOC: the stored pixels, as labelImg shows them; COCO and YOLO: the
  upright photo, as Label Studio, CVAT and Ultralytics show it; ``orientation`` module).
  ``load_image`` is the app's own loader (``utils.images``): 16-bit camera frames, alpha and
  palettes train on the pixels the app serves.
- YOLO: one split's folder at a time; an image without a label file holds no objects (the
  format's convention), said in one ``UnlabelledImageWarning`` line (``yolo`` module).

One module per job, imports running one way: ``data`` (the data model and the error),
``orientation``, ``checks`` (shared by every reader) <- ``voc``, ``labelme``, ``coco``, ``yolo``
<- ``load``
(``load_annotations``).
"""

from .checks import BOX_TOLERANCE_PX, IMAGE_SUFFIXES, DroppedBoxWarning
from .coco import read_coco, write_coco
from .data import AnnotatedImage, AnnotationError, AnnotationSet
from .labelme import read_labelme
from .load import load_annotations
from .voc import read_voc, voc_xml, write_voc
from .yolo import UnlabelledImageWarning, read_yolo, write_yolo

__all__ = [
    "BOX_TOLERANCE_PX",
    "IMAGE_SUFFIXES",
    "AnnotatedImage",
    "AnnotationError",
    "AnnotationSet",
    "DroppedBoxWarning",
    "UnlabelledImageWarning",
    "load_annotations",
    "read_coco",
    "read_labelme",
    "read_voc",
    "read_yolo",
    "voc_xml",
    "write_coco",
    "write_voc",
    "write_yolo",
]
